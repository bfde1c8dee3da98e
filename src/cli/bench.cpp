// sbox bench [-p P1,P2,...] [-n RUNS] [--warmup N] [--concurrency C] [--image IMG] [--command CMD]
//            [--exec-repeat K] [--seed N] [--export-json F] [--export-csv F] [--export-markdown F]
//            [--export-svg F]
// How fast each provider gives a working sandbox, measured here and now through the Provider interface: a
// table like hyperfine's on stdout (the JSON export with --json), a progress line on stderr while it runs.
// The engine is in bench/: runner (measurement), stats, report (tables and exports), chart and svg.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>

#include <CLI/CLI.hpp>

#include "cli/bench/report.hpp"
#include "cli/bench/runner.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "cli/output_file.hpp"
#include "providers/log.hpp"

namespace sbox::cli {

namespace {

struct BenchOptions {
    bench::Settings settings; // its providers come from -p, its seed from --seed or at random
    std::optional<std::uint64_t> seed;
    std::string json_file, csv_file, markdown_file, svg_file;
};

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        auto comma = text.find(',', start);
        std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!item.empty() && std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

void write_export(const std::string& path, const std::string& content) {
    std::cout.flush(); // "-" is stdout, after the table
    OutputFile out(path);
    if (!local::write_all(out.fd(), content))
        throw Error(ErrorKind::invalid, "cannot write " + path + ": " + std::strerror(errno));
    out.commit();
}

int terminal_width() {
    struct winsize ws {};
    if (::ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) return std::min<int>(ws.ws_col, 160);
    return 100;
}

// The providers to measure: -p's list, or every configured one.
std::vector<bench::Target> targets(Context& ctx, const BenchOptions& opt) {
    std::vector<std::string> names;
    const bool chosen = !ctx.global.provider.empty();
    if (chosen) {
        names = split_list(ctx.global.provider);
        if (names.empty())
            throw Error(ErrorKind::usage, "-p: give one or more providers, separated by commas");
        for (const auto& n : names)
            if (!ctx.registry.contains(n))
                throw Error(ErrorKind::usage, "-p: unknown provider '" + n + "' (see sbox providers)");
    } else {
        for (const auto& n : ctx.registry.names()) {
            if (!ctx.registry.may_be_configured(n)) continue;
            try {
                ctx.usable_provider(n);
                names.push_back(n);
            } catch (const std::exception& e) {
                log(n, std::string("not benchmarked: ") + e.what());
            }
        }
    }
    std::vector<bench::Target> out;
    for (const auto& n : names) {
        bench::Target t;
        t.name = n;
        t.provider = &ctx.usable_provider(n);
        require(*t.provider, Capability::exec, "bench (it runs a command in each sandbox)");
        CreateFlags flags;
        flags.image = opt.settings.image;
        t.create = with_provider(n, [&] { return build_create_spec(flags, {}, *t.provider); });
        t.create.labels["sbox-bench"] = "true";
        if (!t.provider->capabilities().has(Capability::labels)) t.create.labels.clear();
        // A benchmark that dies (power, SIGKILL) leaves nothing running for long where the provider can say
        // so.
        if (t.provider->capabilities().has(Capability::lifetime))
            t.create.lifetime = std::chrono::minutes(10);
        out.push_back(std::move(t));
    }
    return out;
}

int run_bench(const BenchOptions& opt, Context& ctx) {
    if (opt.settings.runs < 1) throw Error(ErrorKind::usage, "-n/--runs must be at least 1");
    if (opt.settings.warmup < 0) throw Error(ErrorKind::usage, "--warmup must be 0 or more");
    if (opt.settings.concurrency < 1 || opt.settings.concurrency > 1000)
        throw Error(ErrorKind::usage, "--concurrency must be between 1 and 1000");
    if (opt.settings.exec_repeat < 0 || opt.settings.exec_repeat > 1000)
        throw Error(ErrorKind::usage, "--exec-repeat must be between 0 and 1000");
    if (opt.settings.command.empty()) throw Error(ErrorKind::usage, "--command must not be empty");
    OutputFile::check(opt.json_file, "--export-json");
    OutputFile::check(opt.csv_file, "--export-csv");
    OutputFile::check(opt.markdown_file, "--export-markdown");
    OutputFile::check(opt.svg_file, "--export-svg");

    std::vector<bench::Target> chosen = targets(ctx, opt);
    if (chosen.empty())
        throw Error(ErrorKind::invalid,
                    "no provider is configured to benchmark (see sbox providers, or -p local)");

    bench::Settings settings = opt.settings;
    for (const auto& t : chosen)
        settings.providers.push_back(t.name);
    settings.seed = opt.seed ? *opt.seed : std::random_device{}();

    const bool live = !ctx.global.quiet && ::isatty(2) == 1;
    if (!ctx.global.quiet) {
        std::string list;
        for (const auto& n : settings.providers)
            list += (list.empty() ? "" : ", ") + n;
        std::cerr << "sbox bench: " << list << "; " << settings.runs << " rounds";
        if (settings.warmup) std::cerr << " after " << settings.warmup << " warmup";
        if (settings.concurrency > 1) std::cerr << ", " << settings.concurrency << " sandboxes at once";
        std::cerr << std::endl;
    }
    bench::ProgressFn progress;
    if (live)
        progress = [](const std::string& line) {
            std::string shown = line.size() > 150 ? line.substr(0, 147) + "..." : line;
            std::cerr << "\r\033[K" << shown << std::flush;
        };
    bench::Results results = bench::run(settings, std::move(chosen), progress);
    if (live) std::cerr << "\r\033[K" << std::flush;

    bench::Summary summary = bench::summary_of(results);
    if (ctx.global.json)
        std::cout << bench::export_json(results, summary).dump(2) << '\n';
    else
        std::cout << bench::render_terminal(results, summary, ::isatty(1) == 1, terminal_width());
    std::cout.flush();
    if (!opt.json_file.empty())
        write_export(opt.json_file, bench::export_json(results, summary).dump(2) + "\n");
    if (!opt.csv_file.empty()) write_export(opt.csv_file, bench::export_csv(results));
    if (!opt.markdown_file.empty()) write_export(opt.markdown_file, bench::export_markdown(results, summary));
    if (!opt.svg_file.empty()) write_export(opt.svg_file, bench::export_svg(results, summary));

    if (!results.leaked.empty())
        throw Error(ErrorKind::internal,
                    std::to_string(results.leaked.size()) +
                        " sandboxes could not be removed (see above): remove them with sbox kill");
    if (results.interrupted_by)
        throw Error(ErrorKind::internal, std::string("interrupted by SIG") +
                                             ::sigabbrev_np(results.interrupted_by) +
                                             ": every sandbox it created is removed; the results are of the "
                                             "rounds that finished");
    for (const auto& p : summary.providers)
        if (p.ok == 0)
            throw Error(ErrorKind::unavailable, "no sandbox of " + p.name + " worked (see the errors above)",
                        p.name);
    return exit_success;
}

} // namespace

CLI::App* setup_bench(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<BenchOptions>();
    CLI::App* sub = app.add_subcommand(
        "bench",
        "Measure how fast providers give a working sandbox (-p P1,P2; default: every configured one)");
    sub->fallthrough();
    sub->add_option("-n,--runs", opt->settings.runs, "Measured rounds (default 10)");
    sub->add_option("--warmup", opt->settings.warmup,
                    "Rounds before them, recorded but not counted (default 1)");
    sub->add_option("--concurrency", opt->settings.concurrency,
                    "Sandboxes started at once per provider and round (default 1: one after another)");
    sub->add_option("--image", opt->settings.image,
                    "What to create each sandbox from (default: each provider's own)");
    sub->add_option("--command", opt->settings.command,
                    "The command each sandbox runs, by its shell (default: echo sbox-bench)");
    sub->add_option("--exec-repeat", opt->settings.exec_repeat,
                    "How often it runs again on the warm sandbox (default 3)");
    sub->add_option("--seed", opt->seed, "Seed of the rounds' shuffled provider order (default: random)");
    sub->add_option("--export-json", opt->json_file,
                    "Write every raw sample and the summary as JSON (each export: a file, or - for stdout)");
    sub->add_option("--export-csv", opt->csv_file, "Write every sample as CSV (one row per timing)");
    sub->add_option("--export-markdown", opt->markdown_file, "Write the summary as a Markdown table");
    sub->add_option("--export-svg", opt->svg_file, "Write a box plot of the time to first exec as SVG");
    sub->callback([opt, &ctx] { ctx.exit_code = run_bench(*opt, ctx); });
    return sub;
}

} // namespace sbox::cli

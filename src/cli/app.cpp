#include "cli/app.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "providers/log.hpp"

namespace sbox::cli {

namespace {

// --json given before a `--`: for reporting a parse error when CLI11 stopped before it saw the flag.
bool json_requested(const std::vector<std::string>& args) {
    for (const auto& a : args) {
        if (a == "--") break;
        if (a == "--json") return true;
    }
    return false;
}

} // namespace

int run(std::vector<std::string> args, Registry& registry) {
    Context ctx(registry);
    registry.set_config([&ctx]() -> const Config& { return ctx.config(); });
    if (const char* nc = std::getenv("NO_COLOR"); nc != nullptr && *nc != '\0') ctx.global.no_color = true;

    CLI::App app{
        "sbox: create code sandboxes and run commands in them, on this machine (local) and in the cloud",
        "sbox"};
    app.set_help_flag("-h,--help", "Print this help and exit");
    add_global_options(app, ctx.global);
    app.require_subcommand(1);
    // Runs once the whole command line is parsed, before the subcommand's callback.
    app.parse_complete_callback([&ctx] { set_verbose(ctx.global.verbose); });

    setup_create(app, ctx);
    CLI::App* run_cmd = setup_run(app, ctx);
    CLI::App* exec_cmd = setup_exec(app, ctx);
    CLI::App* shell_cmd = setup_shell(app, ctx);
    setup_ls(app, ctx);
    setup_inspect(app, ctx);
    setup_kill(app, ctx);
    setup_cp(app, ctx);
    setup_snapshot(app, ctx);
    setup_pause(app, ctx);
    setup_bench(app, ctx);
    setup_providers(app, ctx);
    setup_version(app, ctx);

    const std::vector<std::string> original = args;
    auto kind = [&] {
        return (run_cmd->parsed() || exec_cmd->parsed() || shell_cmd->parsed()) ? CommandKind::command
                                                                                : CommandKind::management;
    };

    int code = exit_success;
    try {
        ctx.after_separator = split_at_separator(app, args);
        std::reverse(args.begin(), args.end()); // CLI11 takes the arguments last first
        app.parse(args);
        code = ctx.exit_code;
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) {
            std::cout << app.help("", dynamic_cast<const CLI::CallForAllHelp*>(&e) != nullptr
                                          ? CLI::AppFormatMode::All
                                          : CLI::AppFormatMode::Normal);
            code = exit_success;
        } else {
            ctx.global.json = ctx.global.json || json_requested(original);
            std::vector<std::string> extra = app.remaining();
            if (app.get_subcommands().empty() && !extra.empty()) {
                // CLI11 only says "A subcommand is required".
                bool option = extra.front().size() > 1 && extra.front().starts_with("-");
                report_error(ctx, Error(ErrorKind::usage,
                                        std::string(option ? "unknown option '" : "unknown subcommand '") +
                                            extra.front() + "' (see sbox --help)"));
            } else {
                report_error(ctx, e);
            }
            code = exit_code_for(e, kind());
        }
    } catch (const std::exception& e) {
        report_error(ctx, e);
        code = exit_code_for(e, kind());
    }

    registry.set_config({}); // ctx and its configuration end here
    std::cout.flush();
    if (!std::cout.good()) {
        std::cerr << "sbox: cannot write to stdout\n";
        if (code == exit_success) code = kind() == CommandKind::command ? exit_sbox_failed : exit_failure;
    }
    return code;
}

int main(int argc, char** argv) {
    Registry registry;
    std::vector<std::string> args;
    args.reserve(argc > 0 ? static_cast<std::size_t>(argc - 1) : 0);
    for (int i = 1; i < argc; ++i)
        args.emplace_back(argv[i]);
    return run(std::move(args), registry);
}

} // namespace sbox::cli

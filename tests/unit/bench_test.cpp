// sbox bench: its statistics against known samples, and whole runs in this process against a scripted
// provider (failures, bursts, exports, cleanup).
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <mutex>
#include <set>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "cli/bench/chart.hpp"
#include "cli/bench/stats.hpp"
#include "helpers.hpp"

using namespace sbox;
using namespace sbox::cli::bench;
using sbox::test::read_file;
using sbox::test::run_cli;
using sbox::test::ScopedEnv;
using sbox::test::TempDir;

TEST_CASE("bench stats: percentiles by linear interpolation between closest ranks (Hyndman-Fan 7)") {
    std::vector<double> one_to_ten = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    // numpy.percentile(range(1, 11), [0, 25, 50, 90, 95, 99, 100]) = 1, 3.25, 5.5, 9.1, 9.55, 9.91, 10
    CHECK(percentile(one_to_ten, 0) == doctest::Approx(1));
    CHECK(percentile(one_to_ten, 25) == doctest::Approx(3.25));
    CHECK(percentile(one_to_ten, 50) == doctest::Approx(5.5));
    CHECK(percentile(one_to_ten, 90) == doctest::Approx(9.1));
    CHECK(percentile(one_to_ten, 95) == doctest::Approx(9.55));
    CHECK(percentile(one_to_ten, 99) == doctest::Approx(9.91));
    CHECK(percentile(one_to_ten, 100) == doctest::Approx(10));
    CHECK(percentile({42}, 99) == 42);

    Stats s = summarize({10, 1, 9, 2, 8, 3, 7, 4, 6, 5}); // any order
    CHECK(s.n == 10);
    CHECK(s.min == 1);
    CHECK(s.max == 10);
    CHECK(s.p50 == doctest::Approx(5.5));
    CHECK(s.p90 == doctest::Approx(9.1));
    CHECK(s.mean == doctest::Approx(5.5));
    // The sample standard deviation: sqrt(sum (x - 5.5)^2 / 9) = sqrt(82.5 / 9).
    CHECK(s.stddev == doctest::Approx(std::sqrt(82.5 / 9)));
    CHECK(s.outliers == 0);

    CHECK(summarize({}).n == 0);
    Stats single = summarize({3.5});
    CHECK(single.p99 == 3.5);
    CHECK(single.stddev == 0);
}

TEST_CASE("bench stats: outliers by modified z-score, samples a percentile needs, the bootstrap ratio") {
    // median 10, MAD 0.1: 50 scores 0.6745 * 40 / 0.1 = 269.8, far above 3.5; 10.3 scores 2.02.
    Stats s = summarize({10, 10.1, 9.9, 10, 10.2, 9.8, 10.3, 50});
    CHECK(s.outliers == 1);
    CHECK(s.max == 50);                           // untrimmed: the outlier still counts
    CHECK(summarize({5, 5, 5, 5}).outliers == 0); // MAD 0: nothing is called an outlier

    CHECK(samples_needed_for(90) == 10);
    CHECK(samples_needed_for(95) == 20);
    CHECK(samples_needed_for(99) == 100);

    auto r = median_ratio({1, 1, 1, 1}, {3, 3, 3});
    REQUIRE(r);
    CHECK(r->value == doctest::Approx(3));
    CHECK(r->low == doctest::Approx(3));
    CHECK(r->high == doctest::Approx(3));
    auto spread = median_ratio({1, 1.1, 0.9, 1, 1.05}, {2, 2.2, 1.8, 2, 2.1});
    REQUIRE(spread);
    CHECK(spread->value == doctest::Approx(2));
    CHECK(spread->low <= spread->value);
    CHECK(spread->high >= spread->value);
    CHECK(spread->low > 1.5);
    // The same samples give the same interval.
    auto again = median_ratio({1, 1.1, 0.9, 1, 1.05}, {2, 2.2, 1.8, 2, 2.1});
    CHECK(again->low == spread->low);
    CHECK_FALSE(median_ratio({}, {1}));

    Axis wide = axis_for(0.5, 400);
    CHECK(wide.log);
    CHECK(wide.lo == doctest::Approx(0.1));
    CHECK(wide.hi == doctest::Approx(1000));
    CHECK(wide.position(10) == doctest::Approx(0.5));
    Axis narrow = axis_for(4.5, 5.7);
    CHECK_FALSE(narrow.log);
    CHECK(narrow.lo == 0);
    CHECK(narrow.hi >= 5.7);
    CHECK(narrow.ticks.size() >= 3);
}

namespace {

// A provider for whole bench runs: thread-safe (bursts call it from many threads), its command prints at
// once, and it fails where told to.
class ScriptedProvider final : public Provider {
  public:
    explicit ScriptedProvider(std::string name) : name_(std::move(name)) {}
    std::string name_;
    int fail_create_every = 0; // every Nth create throws
    int fail_exec_every = 0;   // every Nth exec exits 3
    bool silent = false;       // the command prints nothing
    bool kill_fails = false;   // every kill throws
    std::atomic<int> creates{0}, execs{0}, kills{0};
    std::mutex mutex;
    std::set<std::string> live;
    std::set<std::string> ever;
    std::atomic<bool> exec_from_threads_ok{true};

    std::string_view name() const override { return name_; }
    Capabilities capabilities() const override {
        return {Capability::exec, Capability::labels, Capability::lifetime, Capability::exec_timeout};
    }
    bool configured(std::string&) const override { return true; }
    nlohmann::json about() const override { return {{"version", "scripted 1"}}; }
    SandboxInfo create(const CreateSpec& spec) override {
        int n = ++creates;
        if (fail_create_every && n % fail_create_every == 0)
            throw Error(ErrorKind::unavailable, "no capacity (HTTP 503)", name_);
        SandboxInfo info;
        info.provider = name_;
        info.id = name_ + "-" + std::to_string(n);
        info.labels = spec.labels;
        std::lock_guard lock(mutex);
        live.insert(info.id);
        ever.insert(info.id);
        return info;
    }
    std::vector<SandboxInfo> list() override { return {}; }
    std::optional<SandboxInfo> get(std::string_view) override { return std::nullopt; }
    int exec(std::string_view id, const ExecSpec& spec) override {
        int n = ++execs;
        {
            std::lock_guard lock(mutex);
            if (!live.count(std::string(id))) throw Error(ErrorKind::not_found, "no sandbox", name_);
        }
        if (spec.owns_process || spec.stdout_fd < 0) exec_from_threads_ok = false;
        if (fail_exec_every && n % fail_exec_every == 0) {
            [[maybe_unused]] auto w = ::write(spec.stderr_fd, "boom\n", 5);
            return 3;
        }
        if (!silent) {
            [[maybe_unused]] auto w = ::write(spec.stdout_fd, "sbox-bench\n", 11);
        }
        return 0;
    }
    void kill(std::string_view id) override {
        ++kills;
        if (kill_fails) throw Error(ErrorKind::unavailable, "the service is down", name_);
        std::lock_guard lock(mutex);
        if (!live.erase(std::string(id))) throw Error(ErrorKind::not_found, "no sandbox", name_);
    }
};

struct BenchWorld {
    TempDir dir;
    ScopedEnv root{"SBOX_ROOT", dir.path.string()};
    ScopedEnv config{"XDG_CONFIG_HOME", dir.path.string()};
    ScopedEnv provider{"SBOX_PROVIDER", std::nullopt};
    ScriptedProvider* a = nullptr;
    ScriptedProvider* b = nullptr;
    std::function<void(ScriptedProvider&)> setup_a = [](ScriptedProvider&) {};
    std::function<void(ScriptedProvider&)> setup_b = [](ScriptedProvider&) {};
    Registry registry{{
        {"alpha",
         [this] {
             auto p = std::make_unique<ScriptedProvider>("alpha");
             setup_a(*p);
             a = p.get();
             return p;
         }},
        {"beta",
         [this] {
             auto p = std::make_unique<ScriptedProvider>("beta");
             setup_b(*p);
             b = p.get();
             return p;
         }},
    }};
    std::string file(const char* name) const { return (dir.path / name).string(); }
};

std::vector<std::string> csv_rows(const std::string& text) {
    std::vector<std::string> rows;
    std::size_t start = 0;
    while (start < text.size()) {
        auto nl = text.find('\n', start);
        rows.push_back(text.substr(start, nl - start));
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
    return rows;
}

} // namespace

TEST_CASE(
    "bench: failures are counted with their errors, left out of the timings, and every sample is exported") {
    BenchWorld w;
    w.setup_a = [](ScriptedProvider& p) { p.fail_create_every = 4; }; // creates 4 and 8 fail
    w.setup_b = [](ScriptedProvider& p) { p.fail_exec_every = 7; };
    auto r = run_cli(w.registry, {"bench", "-p", "alpha,beta", "-n", "8", "--warmup", "1", "--exec-repeat",
                                  "2", "--seed", "7", "--export-json", w.file("b.json"), "--export-csv",
                                  w.file("b.csv"), "--export-markdown", w.file("b.md")});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(r.out.find("alpha: 6 of 8 sandboxes ok (75%)") != std::string::npos);
    CHECK(r.out.find("failed 2x in create: no capacity (HTTP 503)") != std::string::npos);
    CHECK(r.out.find("first exec") != std::string::npos);

    auto j = nlohmann::json::parse(read_file(w.file("b.json")));
    CHECK(j["format"] == "sbox-bench/1");
    CHECK(j["settings"]["runs"] == 8);
    CHECK(j["settings"]["seed"] == 7);
    CHECK(j["rounds"].size() == 9); // the warmup round, then 8
    CHECK(j["providers"]["alpha"]["version"] == "scripted 1");
    CHECK(j["machine"].contains("kernel"));
    CHECK(j["sbox"].contains("version"));
    // Every sandbox's sample, warmup included: 9 rounds of 2 providers.
    REQUIRE(j["samples"].size() == 18);
    int alpha_failed = 0, alpha_ok = 0, beta_failed = 0, beta_ok = 0, exec_samples = 0;
    for (const auto& s : j["samples"]) {
        if (s["warmup"].get<bool>()) continue;
        bool ok = s["ok"].get<bool>();
        if (s["provider"] == "alpha") (ok ? alpha_ok : alpha_failed)++;
        if (s["provider"] == "beta") (ok ? beta_ok : beta_failed)++;
        if (!ok) {
            CHECK(s["error"].is_string());
            CHECK(s["failed_in"].is_string());
        } else {
            CHECK(s["create_ms"].get<double>() >= 0);
            CHECK(s["first_exec_ms"].get<double>() >= s["create_ms"].get<double>());
            CHECK(s["exec_ms"].size() == 2);
            CHECK(s["kill_ms"].get<double>() >= 0);
            exec_samples += 2;
        }
    }
    const auto& sum = j["summary"];
    CHECK(sum["alpha"]["attempted"] == 8);
    CHECK(sum["alpha"]["ok"] == alpha_ok);
    CHECK(sum["alpha"]["failed"] == alpha_failed);
    CHECK(sum["beta"]["ok"] == beta_ok);
    CHECK(sum["beta"]["failed"] == beta_failed);
    CHECK(beta_failed >= 1);
    // Timings hold the successful sandboxes only.
    CHECK(sum["alpha"]["phases"]["create"]["n"] == alpha_ok);
    CHECK(sum["beta"]["phases"]["first_exec"]["n"] == beta_ok);
    CHECK(sum["alpha"]["phases"]["exec"]["n"].get<int>() + sum["beta"]["phases"]["exec"]["n"].get<int>() ==
          exec_samples);
    CHECK(sum["alpha"]["success_rate"].get<double>() == doctest::Approx(0.75));
    bool beta_error_kept = false;
    for (const auto& [msg, count] : sum["beta"]["errors"].items())
        if (msg.find("exited with status 3: boom") != std::string::npos) beta_error_kept = true;
    CHECK(beta_error_kept);
    CHECK(j["comparisons"].size() == 1);

    // CSV: a header, a row per timing, and a row per failure that says why.
    auto rows = csv_rows(read_file(w.file("b.csv")));
    REQUIRE(!rows.empty());
    CHECK(rows.front() ==
          "provider,round,warmup,slot,sandbox,started_at,phase,index,ms,ok,interrupted,failed_in,error");
    std::size_t timings = 0, failures = 0;
    for (const auto& s : j["samples"]) {
        timings += (s["create_ms"].is_number() ? 1 : 0) + (s["first_exec_ms"].is_number() ? 1 : 0) +
                   s["exec_ms"].size() + (s["kill_ms"].is_number() ? 1 : 0);
        if (!s["ok"].get<bool>()) ++failures;
    }
    CHECK(rows.size() == 1 + timings + failures);

    std::string md = read_file(w.file("b.md"));
    CHECK(md.find("| provider | phase | n |") != std::string::npos);
    CHECK(md.find("| alpha | first exec | 6 | 75% |") != std::string::npos);

    // Every sandbox created was removed, and exec was asked to leave the process alone.
    CHECK(w.a->live.empty());
    CHECK(w.b->live.empty());
    CHECK(w.a->exec_from_threads_ok.load());
}

TEST_CASE("bench: the SVG is well-formed XML with one series per provider") {
    BenchWorld w;
    auto r = run_cli(w.registry, {"bench", "-p", "beta,alpha", "-n", "5", "--export-svg", w.file("b.svg")});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    std::string svg = read_file(w.file("b.svg"));
    CHECK(svg.rfind("<?xml", 0) == 0);
    // Parsed by Python's XML parser (python3 is a test dependency): each series, in -p's order, with a dot
    // per successful sandbox.
    std::string cmd =
        "python3 -c \"import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); "
        "ns = '{http://www.w3.org/2000/svg}'; assert r.tag == ns + 'svg'; "
        "print(' '.join(g.get('data-provider') + ':' + str(len(g.findall(ns + 'circle'))) "
        "for g in r.iter(ns + 'g') if g.get('class') == 'series'))\" " +
        w.file("b.svg") + " > " + w.file("series.txt");
    REQUIRE(std::system(cmd.c_str()) == 0);
    CHECK(read_file(w.file("series.txt")) == "beta:5 alpha:5\n");
}

TEST_CASE("bench: bursts start sandboxes at once, report readiness, and remove every one") {
    BenchWorld w;
    auto r = run_cli(w.registry, {"bench", "-p", "alpha,beta", "-n", "3", "--warmup", "0", "--concurrency",
                                  "5", "--export-json", w.file("b.json")});
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    auto j = nlohmann::json::parse(read_file(w.file("b.json")));
    CHECK(j["samples"].size() == 30);
    REQUIRE(j["bursts"].size() == 6);
    for (const auto& b : j["bursts"]) {
        CHECK(b["concurrency"] == 5);
        CHECK(b["ready"] == 5);
        CHECK(b["first_ready_ms"].get<double>() <= b["all_ready_ms"].get<double>());
        CHECK(b["per_second"].get<double>() > 0);
    }
    std::set<int> slots;
    for (const auto& s : j["samples"])
        slots.insert(s["slot"].get<int>());
    CHECK(slots == std::set<int>{0, 1, 2, 3, 4});
    CHECK(j["summary"]["alpha"]["all_ready"]["n"] == 3);
    CHECK(r.out.find("sandboxes ready per second") != std::string::npos);
    CHECK(w.a->ever.size() == 15);
    CHECK(w.a->live.empty());
    CHECK(w.b->live.empty());
}

TEST_CASE("bench: a sandbox that cannot be removed is reported, never forgotten") {
    BenchWorld w;
    w.setup_a = [](ScriptedProvider& p) { p.kill_fails = true; };
    auto r = run_cli(w.registry, {"bench", "-p", "alpha", "-n", "2", "--warmup", "0"});
    CHECK(r.code == 1);
    CHECK(r.out.find("error: could not remove alpha/alpha-1: the service is down") != std::string::npos);
    CHECK(r.out.find("error: could not remove alpha/alpha-2") != std::string::npos);
    CHECK(r.err.find("2 sandboxes could not be removed") != std::string::npos);
    CHECK(w.a->kills == 4); // each tried twice
}

TEST_CASE("bench: a command that prints nothing is timed to its end, and said so") {
    BenchWorld w;
    w.setup_a = [](ScriptedProvider& p) { p.silent = true; };
    auto r = run_cli(w.registry, {"bench", "-p", "alpha", "-n", "2", "--warmup", "0"});
    CHECK(r.code == 0);
    CHECK(r.out.find("the command printed nothing in 2 sandboxes") != std::string::npos);
}

TEST_CASE("bench: a provider none of whose sandboxes worked fails the run") {
    BenchWorld w;
    w.setup_b = [](ScriptedProvider& p) { p.fail_create_every = 1; };
    auto r = run_cli(w.registry, {"bench", "-p", "alpha,beta", "-n", "2", "--warmup", "0"});
    CHECK(r.code == 1);
    CHECK(r.out.find("beta: 0 of 2 sandboxes ok (0%)") != std::string::npos);
    CHECK(r.err.find("sbox: beta: no sandbox of beta worked") != std::string::npos);
}

TEST_CASE("bench: usage errors are refused before anything is created") {
    BenchWorld w;
    struct Case {
        std::vector<std::string> args;
        std::string says;
    };
    std::vector<Case> cases = {
        {{"bench", "-p", "alpha", "-n", "0"}, "-n/--runs must be at least 1"},
        {{"bench", "-p", "alpha", "--concurrency", "0"}, "--concurrency must be between 1 and 1000"},
        {{"bench", "-p", "alpha", "--warmup", "-1"}, "--warmup must be 0 or more"},
        {{"bench", "-p", "alpha", "--command", ""}, "--command must not be empty"},
        {{"bench", "-p", "alpha,gamma"}, "-p: unknown provider 'gamma'"},
        {{"bench", "-p", "alpha", "--export-json", "/nonexistent/dir/b.json"},
         "cannot write in /nonexistent/dir"},
    };
    for (const auto& c : cases) {
        auto r = run_cli(w.registry, c.args);
        INFO(c.args.back() << ": " << r.err);
        CHECK(r.code == 2);
        CHECK(r.err.find(c.says) != std::string::npos);
    }
    CHECK((w.a == nullptr || w.a->creates == 0));
}

TEST_CASE("bench: an export to a device or a pipe is written to it, never renamed over it") {
    BenchWorld w;
    auto r = run_cli(w.registry, {"bench", "-p", "alpha", "-n", "1", "--export-json", "/dev/null",
                                  "--export-csv", "/dev/stdout"});
    INFO(r.err);
    CHECK(r.code == 0);
    struct stat st {};
    REQUIRE(::stat("/dev/null", &st) == 0);
    CHECK(S_ISCHR(st.st_mode)); // as root, a rename would have replaced the device with a file
    REQUIRE(::lstat("/dev/stdout", &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
    CHECK(r.out.find("provider,round,warmup,slot") != std::string::npos);
}

TEST_CASE("bench --json: the JSON export on stdout instead of the table") {
    BenchWorld w;
    auto r = run_cli(w.registry, {"bench", "--json", "-p", "alpha,beta", "-n", "2", "--warmup", "0"});
    REQUIRE(r.code == 0);
    auto j = nlohmann::json::parse(r.out);
    CHECK(j["samples"].size() == 4);
    CHECK(j["summary"]["beta"]["ok"] == 2);
    CHECK(r.out.find("sandboxes ok") == std::string::npos);
}

// sbox bench's own overhead per measured phase (a benchmark program, not a test): `sbox bench` runs, in this
// process and through the same code as the binary, against a provider that does nothing (create returns at
// once, exec writes one byte to the command's stdout and returns 0, kill returns). Whatever bench measures
// for a phase is then the tool itself: clocks, the output probe's pipe and thread, the interrupt guard,
// bookkeeping. The same calls made directly, without bench around them, give the provider's own share, which
// is subtracted.
//
//   build/sbox-bench-overhead [-n RUNS]     (default 2000 rounds; target: below 0.2 ms per phase)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/app.hpp"
#include "providers/registry.hpp"

namespace {

class NullProvider final : public sbox::Provider {
  public:
    // `linger`: exec returns this long after its byte, so that the byte is noticed by bench's probe thread as
    // it arrives rather than collected once exec returned: the probe's own latency shows.
    explicit NullProvider(std::string name = "null", std::chrono::microseconds linger = {})
        : name_(std::move(name)), linger_(linger) {}
    std::string_view name() const override { return name_; }
    sbox::Capabilities capabilities() const override { return {sbox::Capability::exec}; }
    bool configured(std::string&) const override { return true; }
    sbox::SandboxInfo create(const sbox::CreateSpec&) override {
        sbox::SandboxInfo info;
        info.provider = "null";
        info.id = "null" + std::to_string(++counter_);
        return info;
    }
    std::vector<sbox::SandboxInfo> list() override { return {}; }
    std::optional<sbox::SandboxInfo> get(std::string_view) override { return std::nullopt; }
    int exec(std::string_view, const sbox::ExecSpec& spec) override {
        [[maybe_unused]] auto n = ::write(spec.stdout_fd >= 0 ? spec.stdout_fd : 1, "x", 1);
        if (linger_.count() > 0) std::this_thread::sleep_for(linger_);
        return 0;
    }
    void kill(std::string_view) override {}

  private:
    std::string name_;
    std::chrono::microseconds linger_;
    std::atomic<long> counter_{0};
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : (v[(v.size() - 1) / 2] + v[v.size() / 2]) / 2;
}

// The provider's own time per call (ms), measured directly: create, exec (its byte written to a pipe that is
// then read, as bench's probe reads it) and kill.
struct Direct {
    double create = 0, exec = 0, kill = 0;
};
Direct direct_costs(int runs) {
    using Clock = std::chrono::steady_clock;
    NullProvider p;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) std::exit(1);
    sbox::ExecSpec spec;
    spec.argv = {"sh", "-c", "echo"};
    spec.stdout_fd = fds[1];
    std::vector<double> c, e, k;
    auto ms = [](Clock::time_point a, Clock::time_point b) {
        return std::chrono::duration<double, std::milli>(b - a).count();
    };
    for (int i = 0; i < runs; ++i) {
        auto t0 = Clock::now();
        auto info = p.create({});
        auto t1 = Clock::now();
        p.exec(info.id, spec);
        char byte;
        [[maybe_unused]] auto n = ::read(fds[0], &byte, 1);
        auto t2 = Clock::now();
        p.kill(info.id);
        auto t3 = Clock::now();
        c.push_back(ms(t0, t1));
        e.push_back(ms(t1, t2));
        k.push_back(ms(t2, t3));
    }
    ::close(fds[0]);
    ::close(fds[1]);
    return {median(c), median(e), median(k)};
}

} // namespace

int main(int argc, char** argv) {
    int runs = 2000;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string(argv[i]) == "-n" || std::string(argv[i]) == "--runs") runs = std::atoi(argv[i + 1]);
    if (runs < 1) {
        std::fprintf(stderr, "usage: sbox-bench-overhead [-n RUNS]\n");
        return 2;
    }
    char dir[] = "/tmp/sbox-bench-overhead-XXXXXX";
    if (!::mkdtemp(dir)) return 1;
    std::string json_path = std::string(dir) + "/bench.json";
    ::setenv("SBOX_ROOT", dir, 1);

    sbox::Registry registry(
        {{"null", [] { return std::make_unique<NullProvider>(); }},
         {"lingering",
          [] { return std::make_unique<NullProvider>("lingering", std::chrono::milliseconds(2)); }}});
    // The table goes nowhere: only the JSON export is read.
    int saved = ::dup(1);
    int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    ::dup2(null, 1);
    int code = sbox::cli::run({"bench", "-q", "-p", "null,lingering", "-n", std::to_string(runs), "--warmup",
                               "50", "--export-json", json_path},
                              registry);
    std::fflush(stdout);
    ::dup2(saved, 1);
    if (code != 0) {
        std::fprintf(stderr, "sbox bench failed (exit %d)\n", code);
        return 1;
    }
    std::ifstream in(json_path);
    auto j = nlohmann::json::parse(in);
    ::unlink(json_path.c_str());
    ::rmdir(dir);

    Direct d = direct_costs(runs);
    std::printf("sbox bench's own overhead per phase, against a provider that does nothing (%d rounds; "
                "medians, ms)\n",
                runs);
    std::printf("%-11s %10s %10s %10s %12s %10s   %s\n", "phase", "measured", "p95", "provider", "overhead",
                "target", "");
    bool all_ok = true;
    auto row = [&](const char* phase, double provider_share, const char* provider = "null") {
        const auto& s = j["summary"][provider]["phases"][phase];
        double p50 = s["p50"].get<double>(), p95 = s["p95"].get<double>();
        double overhead = p50 - provider_share;
        bool ok = overhead < 0.2;
        all_ok = all_ok && ok;
        std::printf("%-11s %10.4f %10.4f %10.4f %12.4f %10s   %s (%.3fx the target)\n",
                    provider == std::string("null") ? phase : "first_exec*", p50, p95, provider_share,
                    overhead, "< 0.2", ok ? "ok" : "OVER", overhead / 0.2);
    };
    row("create", d.create);
    row("first_exec", d.create + d.exec);
    row("exec", d.exec);
    row("kill", d.kill);
    // The byte arrives while exec still runs: from its write to the probe's noticing it.
    row("first_exec", d.create + d.exec, "lingering");
    std::printf(
        "first_exec*: exec returns 2 ms after its byte, so the probe thread notices the byte as it comes\n");
    return all_ok ? 0 : 1;
}

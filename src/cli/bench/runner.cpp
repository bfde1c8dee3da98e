#include "cli/bench/runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "local/system.hpp"
#include "providers/guard.hpp"

namespace sbox::cli::bench {

const char* to_string(Phase phase) {
    switch (phase) {
    case Phase::create:
        return "create";
    case Phase::first_exec:
        return "first_exec";
    case Phase::exec:
        return "exec";
    case Phase::kill:
        return "kill";
    }
    return "?";
}

const char* title_of(Phase phase) {
    return phase == Phase::first_exec ? "first exec" : to_string(phase);
}

std::string format_ms(double ms) {
    char buf[32];
    if (ms >= 10000)
        std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000);
    else if (ms >= 1000)
        std::snprintf(buf, sizeof buf, "%.2f s", ms / 1000);
    else if (ms >= 100)
        std::snprintf(buf, sizeof buf, "%.0f ms", ms);
    else if (ms >= 10)
        std::snprintf(buf, sizeof buf, "%.1f ms", ms);
    else if (ms >= 1)
        std::snprintf(buf, sizeof buf, "%.2f ms", ms);
    else
        std::snprintf(buf, sizeof buf, "%.3f ms", ms);
    return buf;
}

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
}

double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Where a command's stdout and stderr go: a pipe whose reader thread notes when the first byte arrives. The
// thread waits in poll, so the time is taken as the byte arrives, not when exec returns; settle() then reads
// whatever is left, so that every byte the command wrote before it ended is counted.
class OutputProbe {
  public:
    struct Output {
        std::optional<Clock::time_point> first_byte;
        std::size_t bytes = 0;
        std::string head; // the first 4 KiB, for error messages
    };

    OutputProbe() {
        ::fcntl(output_pipe_.read.get(), F_SETFL, O_NONBLOCK);
        reader_ = std::thread([this] { read_loop(); });
    }
    ~OutputProbe() {
        char byte = 0;
        [[maybe_unused]] auto n = ::write(stop_.write.get(), &byte, 1);
        reader_.join();
    }
    OutputProbe(const OutputProbe&) = delete;
    OutputProbe& operator=(const OutputProbe&) = delete;

    // The command's stdout and stderr.
    int fd() const { return output_pipe_.write.get(); }

    // A new command starts: what came before is forgotten.
    void arm() {
        std::lock_guard lock(mutex_);
        drain(Clock::now()); // late output of the previous command (a background process of it) is not this
                             // one's
        output_ = Output{};
    }

    // The command has ended: returns its output once everything it wrote has been read.
    Output settle() {
        std::lock_guard lock(mutex_);
        drain(Clock::now());
        return output_;
    }

  private:
    void read_loop() {
        for (;;) {
            struct pollfd fds[2] = {{output_pipe_.read.get(), POLLIN, 0}, {stop_.read.get(), POLLIN, 0}};
            if (::poll(fds, 2, -1) == -1) {
                if (errno == EINTR) continue;
                return;
            }
            Clock::time_point now = Clock::now();
            if (fds[1].revents != 0) return;
            std::lock_guard lock(mutex_);
            drain(now);
        }
    }

    // Reads what is there (under mutex_), noting `now` as the first byte's arrival.
    void drain(Clock::time_point now) {
        char buf[16384];
        for (;;) {
            ssize_t n = ::read(output_pipe_.read.get(), buf, sizeof buf);
            if (n <= 0) return;
            if (!output_.first_byte) output_.first_byte = now;
            output_.bytes += static_cast<std::size_t>(n);
            if (output_.head.size() < 4096)
                output_.head.append(
                    buf, std::min<std::size_t>(static_cast<std::size_t>(n), 4096 - output_.head.size()));
        }
    }

    local::Pipe output_pipe_; // the command's stdout and stderr
    local::Pipe stop_;        // a byte ends the reader
    std::mutex mutex_;
    Output output_;
    std::thread reader_;
};

// A burst's sandboxes wait for each other at the end of each stage (ready; warm execs done), whatever
// happened to them, so that the stages do not overlap. Sequential runs have no barriers.
class Stages {
  public:
    Stages(std::barrier<>* ready, std::barrier<>* warm) : ready_(ready), warm_(warm) {}
    ~Stages() {
        reached_ready();
        reached_warm();
    }
    Stages(const Stages&) = delete;
    Stages& operator=(const Stages&) = delete;
    void reached_ready() {
        if (ready_) std::exchange(ready_, nullptr)->arrive_and_wait();
    }
    void reached_warm() {
        reached_ready();
        if (warm_) std::exchange(warm_, nullptr)->arrive_and_wait();
    }

  private:
    std::barrier<>* ready_;
    std::barrier<>* warm_;
};

std::string one_line(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.pop_back();
    std::replace(text.begin(), text.end(), '\n', ' ');
    if (text.size() > 200) text = text.substr(0, 200) + "...";
    return text;
}

class Runner {
  public:
    Runner(const Settings& settings, std::vector<Target> targets, const ProgressFn& progress)
        : settings_(settings), targets_(std::move(targets)), progress_(progress) {}

    Results run() {
        results_.settings = settings_;
        results_.started_at = unix_now();
        for (const auto& t : targets_)
            results_.providers[t.name] = t.provider->about();
        SandboxGuard session; // from here on, a signal stops the run instead of ending sbox
        std::vector<OutputProbe> probes(static_cast<std::size_t>(std::max(1, settings_.concurrency)));
        std::mt19937_64 order_rng(settings_.seed);
        const int rounds = settings_.warmup + settings_.runs;
        for (int r = 0; r < rounds && !stopped(session); ++r) {
            const bool warmup = r < settings_.warmup;
            const int round = warmup ? r + 1 : r - settings_.warmup + 1;
            std::vector<std::size_t> order(targets_.size());
            for (std::size_t i = 0; i < order.size(); ++i)
                order[i] = i;
            std::shuffle(order.begin(), order.end(), order_rng);
            std::vector<std::string> names;
            for (auto i : order)
                names.push_back(targets_[i].name);
            results_.orders.push_back(names);
            for (auto i : order) {
                if (stopped(session)) break;
                if (settings_.concurrency <= 1)
                    sequential(targets_[i], round, warmup, probes.front());
                else
                    burst(targets_[i], round, warmup, probes);
            }
        }
        results_.interrupted_by = session.signal();
        results_.finished_at = unix_now();
        return std::move(results_);
    }

  private:
    bool stopped(const SandboxGuard& session) const { return session.signal() != 0; }

    std::string round_label(int round, bool warmup) const {
        return warmup ? "warmup " + std::to_string(round) + "/" + std::to_string(settings_.warmup)
                      : "round " + std::to_string(round) + "/" + std::to_string(settings_.runs);
    }

    void report(const std::string& line) {
        if (progress_) progress_(line);
    }

    void sequential(const Target& t, int round, bool warmup, OutputProbe& probe) {
        Sample s = measure(t, round, warmup, 0, probe, nullptr, nullptr, nullptr);
        std::string line = round_label(round, warmup) + "  " + t.name + "  ";
        if (s.ok)
            line += "first exec " + format_ms(*s.first_exec_ms);
        else if (s.interrupted)
            line += "interrupted";
        else
            line += "failed in " + s.failed_in + ": " + s.error;
        add(std::move(s));
        report(line);
    }

    void burst(const Target& t, int round, bool warmup, std::vector<OutputProbe>& probes) {
        const int c = settings_.concurrency;
        std::barrier<> start(c + 1), ready(c), warm(c);
        std::vector<std::optional<Clock::time_point>> ready_at(static_cast<std::size_t>(c));
        std::vector<Sample> samples(static_cast<std::size_t>(c));
        Clock::time_point t0;
        std::vector<std::thread> threads;
        threads.reserve(static_cast<std::size_t>(c));
        for (int i = 0; i < c; ++i)
            threads.emplace_back([&, i] {
                start.arrive_and_wait();
                auto slot = static_cast<std::size_t>(i);
                samples[slot] = measure(t, round, warmup, i, probes[slot], &ready, &warm, &ready_at[slot]);
            });
        t0 = Clock::now();
        start.arrive_and_wait();
        for (auto& th : threads)
            th.join();

        Burst b;
        b.provider = t.name;
        b.round = round;
        b.warmup = warmup;
        b.concurrency = c;
        std::optional<Clock::time_point> first, last;
        bool interrupted = false;
        for (std::size_t i = 0; i < samples.size(); ++i) {
            interrupted = interrupted || samples[i].interrupted;
            if (!ready_at[i]) continue;
            ++b.ready;
            if (!first || *ready_at[i] < *first) first = ready_at[i];
            if (!last || *ready_at[i] > *last) last = ready_at[i];
        }
        if (first) b.first_ready_ms = ms_between(t0, *first);
        if (last && b.ready == c) {
            b.all_ready_ms = ms_between(t0, *last);
            if (*b.all_ready_ms > 0) b.per_second = c / (*b.all_ready_ms / 1000.0);
        }
        std::string line = round_label(round, warmup) + "  " + t.name + "  " + std::to_string(b.ready) + "/" +
                           std::to_string(c) + " ready";
        if (b.all_ready_ms) line += " in " + format_ms(*b.all_ready_ms);
        for (auto& s : samples)
            add(std::move(s));
        if (!interrupted) {
            std::lock_guard lock(mutex_);
            results_.bursts.push_back(b);
        }
        report(line);
    }

    void add(Sample s) {
        std::lock_guard lock(mutex_);
        results_.samples.push_back(std::move(s));
    }

    // One sandbox's life. `ready`/`warm`: a burst's barriers; `ready_at`: when its first output came.
    Sample measure(const Target& t, int round, bool warmup, int slot, OutputProbe& probe,
                   std::barrier<>* ready, std::barrier<>* warm, std::optional<Clock::time_point>* ready_at) {
        Stages stages(ready, warm);
        Sample s;
        s.provider = t.name;
        s.round = round;
        s.warmup = warmup;
        s.slot = slot;
        Provider& p = *t.provider;
        SandboxGuard guard(p);
        auto failed = [&](const char* phase, const std::string& why) {
            s.ok = false;
            if (guard.signal() != 0) {
                s.interrupted = true; // the sandbox was removed under it
                return;
            }
            s.failed_in = phase;
            s.error = one_line(why);
        };
        auto run_command = [&](const char* phase) -> std::optional<OutputProbe::Output> {
            probe.arm();
            try {
                int status = p.exec(s.sandbox, exec_spec(t, probe));
                OutputProbe::Output out = probe.settle();
                if (status == 0) return out;
                std::string why = status == 124 ? "the command did not finish within " +
                                                      std::to_string(kExecTimeout.count() / 1000) + " s"
                                                : "the command exited with status " + std::to_string(status);
                if (!out.head.empty()) why += ": " + out.head;
                failed(phase, why);
            } catch (const std::exception& e) {
                probe.settle();
                failed(phase, e.what());
            }
            return std::nullopt;
        };

        s.started_at = unix_now();
        Clock::time_point t0 = Clock::now();
        try {
            SandboxInfo info = p.create(t.create);
            Clock::time_point t1 = Clock::now();
            s.create_ms = ms_between(t0, t1);
            s.sandbox = info.id;
        } catch (const std::exception& e) {
            failed("create", e.what());
            return s;
        }
        if (guard.created(s.sandbox) != 0) {
            s.interrupted = true;
            return s;
        }
        // After a failure the sandbox is removed at once (not left to the guard, which would swallow an
        // error).
        auto abandon = [&] {
            try {
                guard.remove();
            } catch (const std::exception&) {
                if (!s.interrupted) retry_removal(t, s.sandbox);
            }
            return s;
        };
        auto first = run_command("first_exec");
        if (!first) return abandon();
        Clock::time_point done = Clock::now();
        s.silent = !first->first_byte;
        s.first_exec_ms = ms_between(t0, first->first_byte.value_or(done));
        if (ready_at) *ready_at = first->first_byte.value_or(done);
        stages.reached_ready();

        for (int k = 0; k < settings_.exec_repeat; ++k) {
            Clock::time_point a = Clock::now();
            if (!run_command("exec")) return abandon();
            s.exec_ms.push_back(ms_between(a, Clock::now()));
        }
        stages.reached_warm();

        Clock::time_point k0 = Clock::now();
        try {
            guard.remove();
            s.kill_ms = ms_between(k0, Clock::now());
        } catch (const std::exception& e) {
            failed("kill", e.what());
            if (!s.interrupted) retry_removal(t, s.sandbox);
            return s;
        }
        if (guard.signal() != 0) {
            s.interrupted = true; // removed by the signal's watcher, perhaps before this kill
            return s;
        }
        s.ok = true;
        return s;
    }

    // A kill that failed is tried once more; a sandbox that still stays is reported, never forgotten.
    void retry_removal(const Target& t, const std::string& id) {
        try {
            t.provider->kill(id);
            return;
        } catch (const Error& e) {
            if (e.kind() == ErrorKind::not_found) return;
            std::lock_guard lock(mutex_);
            results_.leaked.push_back(t.name + "/" + id + ": " + e.what());
        } catch (const std::exception& e) {
            std::lock_guard lock(mutex_);
            results_.leaked.push_back(t.name + "/" + id + ": " + e.what());
        }
    }

    static constexpr std::chrono::seconds kExecTimeout{120};

    ExecSpec exec_spec(const Target& t, const OutputProbe& probe) const {
        ExecSpec e;
        // --command is one string, as in hyperfine: the sandbox's shell runs it.
        e.argv = {"sh", "-c", settings_.command};
        e.stdout_fd = probe.fd();
        e.stderr_fd = probe.fd();
        e.owns_process = false;
        if (t.provider->capabilities().has(Capability::exec_timeout)) e.timeout = kExecTimeout;
        return e;
    }

    const Settings& settings_;
    std::vector<Target> targets_;
    const ProgressFn& progress_;
    std::mutex mutex_;
    Results results_;
};

} // namespace

Results run(const Settings& settings, std::vector<Target> targets, const ProgressFn& progress) {
    return Runner(settings, std::move(targets), progress).run();
}

} // namespace sbox::cli::bench

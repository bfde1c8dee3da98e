// Commands in an E2B sandbox: envd's process.Process/Start, a Connect server stream of events (start, data,
// keepalive, end), with stdin through SendInput/CloseStdin, a pseudo-terminal resized through Update, and
// signals through SendSignal.
//
// Threads: the calling thread reads the event stream; one helper thread ("input") waits for stdin, for a
// window-size change and for a signal to sbox, and turns each into a unary call. The Client is shared; each
// call has its own curl handle.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <sys/ioctl.h>
#include <thread>
#include <unistd.h>

#include "local/pty.hpp"
#include "providers/e2b/e2b.hpp"
#include "providers/log.hpp"

namespace sbox::e2b {

namespace {

constexpr const char* kProvider = "e2b";

// ---- base64 (envd's bytes fields) ----
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

// ---- signals to sbox while a command runs ----
// A handler that only writes the signal's number to a pipe, read by the input thread. Installed only where
// the signal has its default action: `run` has its own (which removes the sandbox).
std::atomic<int> signal_pipe_write{-1};
std::atomic<int> window_pipe_write{-1};

extern "C" void on_exec_signal(int sig) {
    int saved = errno;
    char byte = static_cast<char>(sig);
    [[maybe_unused]] auto n = ::write(signal_pipe_write.load(), &byte, 1);
    errno = saved;
}

extern "C" void on_window_change(int) {
    int saved = errno;
    char byte = 1;
    [[maybe_unused]] auto n = ::write(window_pipe_write.load(), &byte, 1);
    errno = saved;
}

struct Pipe {
    int r = -1, w = -1;
    Pipe() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
            throw Error(ErrorKind::internal, std::string("pipe: ") + std::strerror(errno), kProvider);
        r = fds[0];
        w = fds[1];
    }
    ~Pipe() {
        ::close(r);
        ::close(w);
    }
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;
    void drain() const {
        char buf[64];
        while (::read(r, buf, sizeof buf) > 0) {
        }
    }
};

// Catches `signals` for its lifetime where they have their default action, restoring them after.
class SignalCatcher {
  public:
    SignalCatcher(std::initializer_list<int> signals, void (*handler)(int), std::atomic<int>& target, int fd)
        : target_(target) {
        target_.store(fd);
        for (int sig : signals) {
            struct sigaction old {};
            ::sigaction(sig, nullptr, &old);
            if (old.sa_handler != SIG_DFL) continue; // ignored, or someone (run) handles it
            struct sigaction sa {};
            sa.sa_handler = handler;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESTART;
            ::sigaction(sig, &sa, nullptr);
            saved_.emplace_back(sig, old);
        }
    }
    ~SignalCatcher() {
        for (auto& [sig, old] : saved_)
            ::sigaction(sig, &old, nullptr);
        target_.store(-1);
    }
    SignalCatcher(const SignalCatcher&) = delete;
    SignalCatcher& operator=(const SignalCatcher&) = delete;

  private:
    std::atomic<int>& target_;
    std::vector<std::pair<int, struct sigaction>> saved_;
};

void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd p {
                    fd, POLLOUT, 0
                };
                ::poll(&p, 1, -1);
                continue;
            }
            return; // the reader went away: the rest is dropped, as a closed pipe would
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

// Go's signal descriptions (envd's "signal: killed") to numbers.
int signal_from_status(std::string_view status) {
    static const std::pair<const char*, int> names[] = {
        {"hangup", SIGHUP},
        {"interrupt", SIGINT},
        {"quit", SIGQUIT},
        {"illegal instruction", SIGILL},
        {"trace/breakpoint trap", SIGTRAP},
        {"aborted", SIGABRT},
        {"bus error", SIGBUS},
        {"floating point exception", SIGFPE},
        {"killed", SIGKILL},
        {"user defined signal 1", SIGUSR1},
        {"segmentation fault", SIGSEGV},
        {"user defined signal 2", SIGUSR2},
        {"broken pipe", SIGPIPE},
        {"alarm clock", SIGALRM},
        {"terminated", SIGTERM},
    };
    constexpr std::string_view prefix = "signal: ";
    auto at = status.find(prefix);
    if (at == std::string_view::npos) return 0;
    std::string_view name = status.substr(at + prefix.size());
    if (auto space = name.find(" (core dumped)"); space != std::string_view::npos)
        name = name.substr(0, space);
    for (auto [n, sig] : names)
        if (name == n) return sig;
    return 0;
}

// A start failure envd reports ("exec: \"nope\": executable file not found in $PATH") as exit 127/126.
[[noreturn]] void rethrow_start_failure(const Error& e, const std::string& cmd) {
    std::string m = e.what();
    if (m.find("executable file not found") != std::string::npos ||
        m.find("no such file or directory") != std::string::npos)
        throw CommandError(127, cmd + ": command not found in the sandbox (" + m + ")", kProvider);
    if (m.find("permission denied") != std::string::npos || m.find("is a directory") != std::string::npos)
        throw CommandError(126, cmd + ": cannot be executed in the sandbox (" + m + ")", kProvider);
    throw e;
}

struct Outcome {
    bool ended = false;
    int exit_code = 0;
    bool exited = false;
    std::string status, error;
};

// Where a command's output goes.
struct Sink {
    int out_fd = 1, err_fd = 2;
    std::string* out = nullptr; // captured instead of written when set
    std::string* err = nullptr;
};

http::connect::Channel channel_for(Provider& p, const Envd& envd, const std::string& user) {
    http::Headers h = envd.headers;
    if (!user.empty()) h.emplace_back("Authorization", basic_user(user));
    return http::connect::Channel(p.client(), envd.base, std::move(h), kProvider);
}

// Runs the Start stream; `interactive` handles stdin, the window and signals once the pid is known.
int stream_process(Provider& p, const Envd& envd, const ExecSpec& spec, const nlohmann::json& start,
                   const Sink& sink, bool detach) {
    http::connect::Channel channel = channel_for(p, envd, spec.user);
    const std::string cmd = start["process"]["cmd"].get<std::string>();

    std::mutex mutex;
    std::condition_variable started_cv;
    std::uint32_t pid = 0;
    bool stream_over = false;
    Outcome outcome;

    // The input side, for -i, -t, and signals to sbox.
    const bool tty = spec.tty;
    const bool forward_input = spec.stdin_open && !detach;
    Pipe stop, sig_pipe, win_pipe;
    std::optional<SignalCatcher> sig_catcher, win_catcher;
    std::optional<local::RawTerminal> raw;
    // Signals to sbox are the caller's business unless exec owns the process (see ExecSpec::owns_process).
    const bool catch_signals = !detach && spec.owns_process;
    if (catch_signals) {
        sig_catcher.emplace(std::initializer_list<int>{SIGINT, SIGTERM, SIGHUP, SIGQUIT}, &on_exec_signal,
                            signal_pipe_write, sig_pipe.w);
    }
    if (!detach) {
        if (tty)
            win_catcher.emplace(std::initializer_list<int>{SIGWINCH}, &on_window_change, window_pipe_write,
                                win_pipe.w);
        if (tty && forward_input && ::isatty(0)) raw.emplace(0);
    }
    std::atomic<int> caught_signal{0};
    std::exception_ptr input_error;

    auto input = [&] {
        std::uint32_t my_pid = 0;
        {
            std::unique_lock lock(mutex);
            started_cv.wait(lock, [&] { return pid != 0 || stream_over; });
            if (stream_over) return;
            my_pid = pid;
        }
        nlohmann::json selector = {{"pid", my_pid}};
        bool stdin_open = forward_input;
        int signals_sent = 0;
        try {
            for (;;) {
                struct pollfd fds[4] = {{stop.r, POLLIN, 0},
                                        {sig_pipe.r, POLLIN, 0},
                                        {win_pipe.r, POLLIN, 0},
                                        {stdin_open ? 0 : -1, POLLIN, 0}};
                if (::poll(fds, 4, -1) < 0) {
                    if (errno == EINTR) continue;
                    return;
                }
                if (fds[0].revents != 0) return;
                if (fds[1].revents != 0) {
                    char buf[16];
                    ssize_t n = ::read(sig_pipe.r, buf, sizeof buf);
                    if (n > 0 && caught_signal.load() == 0)
                        caught_signal.store(static_cast<unsigned char>(buf[0]));
                    // E2B knows SIGTERM and SIGKILL: the first signal asks politely, the next one does not.
                    const char* name = signals_sent++ == 0 ? "SIGNAL_SIGTERM" : "SIGNAL_SIGKILL";
                    channel.unary("process.Process/SendSignal", {{"process", selector}, {"signal", name}},
                                  http::Retry::idempotent);
                }
                if (fds[2].revents != 0) {
                    win_pipe.drain();
                    if (auto size = local::user_terminal_size())
                        channel.unary("process.Process/Update",
                                      {{"process", selector},
                                       {"pty", {{"size", {{"cols", size->ws_col}, {"rows", size->ws_row}}}}}},
                                      http::Retry::idempotent);
                }
                if (fds[3].revents != 0) {
                    char buf[64 * 1024];
                    ssize_t n = ::read(0, buf, sizeof buf);
                    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
                    if (n <= 0) {
                        stdin_open = false;
                        // A terminal's end of input is a byte (Ctrl-D) that went through already.
                        if (!tty)
                            channel.unary("process.Process/CloseStdin", {{"process", selector}},
                                          http::Retry::idempotent);
                        continue;
                    }
                    std::string data = base64_encode(std::string_view(buf, static_cast<std::size_t>(n)));
                    nlohmann::json in = tty ? nlohmann::json{{"pty", data}} : nlohmann::json{{"stdin", data}};
                    // Input is not idempotent: a repeated chunk would reach the command twice.
                    channel.unary("process.Process/SendInput", {{"process", selector}, {"input", in}},
                                  http::Retry::never);
                }
            }
        } catch (const Error& e) {
            // The command may simply have ended meanwhile; the stream tells.
            log(kProvider, std::string("input: ") + e.what());
            std::lock_guard lock(mutex);
            if (!stream_over) input_error = std::current_exception();
        }
    };
    std::thread input_thread;
    if (catch_signals || forward_input || (tty && !detach)) input_thread = std::thread(input);
    auto finish_input = [&] {
        {
            std::lock_guard lock(mutex);
            stream_over = true;
        }
        started_cv.notify_all();
        char byte = 0;
        [[maybe_unused]] auto n = ::write(stop.w, &byte, 1);
        if (input_thread.joinable()) input_thread.join();
    };

    bool timed_out = false;
    try {
        channel.server_stream(
            "process.Process/Start", start,
            [&](const nlohmann::json& message) {
                const auto& ev = message.value("event", nlohmann::json::object());
                if (auto s = ev.find("start"); s != ev.end()) {
                    {
                        std::lock_guard lock(mutex);
                        pid = s->value("pid", 0u);
                    }
                    started_cv.notify_all();
                    log(kProvider, "process started, pid " + std::to_string(pid));
                    if (detach) return false;
                } else if (auto d = ev.find("data"); d != ev.end()) {
                    for (auto& [stream, value] : d->items()) {
                        if (!value.is_string()) continue;
                        std::string bytes = base64_decode(value.get_ref<const std::string&>());
                        if (stream == "stderr") {
                            if (sink.err != nullptr)
                                sink.err->append(bytes);
                            else
                                write_all(sink.err_fd, bytes);
                        } else {
                            if (sink.out != nullptr)
                                sink.out->append(bytes);
                            else
                                write_all(sink.out_fd, bytes);
                        }
                    }
                } else if (auto e = ev.find("end"); e != ev.end()) {
                    outcome.ended = true;
                    const auto& code = e->value("exitCode", nlohmann::json(0));
                    outcome.exit_code = code.is_number()   ? code.get<int>()
                                        : code.is_string() ? std::stoi(code.get<std::string>())
                                                           : 0;
                    outcome.exited = e->value("exited", false);
                    outcome.status = e->value("status", std::string());
                    outcome.error = e->value("error", std::string());
                }
                return true;
            },
            spec.timeout, nullptr);
    } catch (const Error& e) {
        finish_input();
        raw.reset();
        if (spec.timeout && e.kind() == ErrorKind::timeout) {
            timed_out = true;
        } else if (int sig = caught_signal.load(); sig != 0) {
            return 128 + sig;
        } else {
            bool started = false;
            {
                std::lock_guard lock(mutex);
                started = pid != 0;
            }
            if (!started) rethrow_start_failure(e, cmd);
            throw;
        }
    }
    finish_input();
    raw.reset();
    if (detach) {
        if (pid == 0)
            throw Error(ErrorKind::unavailable, "the command was not started (envd's stream ended first)",
                        kProvider);
        return 0;
    }
    if (timed_out) return 124;
    if (input_error) std::rethrow_exception(input_error);
    if (!outcome.ended)
        throw Error(ErrorKind::unavailable, "the command's stream ended without its end event", kProvider);
    if (pid == 0 && !outcome.error.empty())
        rethrow_start_failure(Error(ErrorKind::invalid, outcome.error, kProvider), cmd);
    if (outcome.exited) return outcome.exit_code & 0xff;
    // Ended by a signal. When it was the deadline (envd kills the command then), that is a timeout.
    int sig = signal_from_status(outcome.status);
    if (spec.timeout && sig == SIGKILL && caught_signal.load() == 0 &&
        outcome.status.find("deadline") != std::string::npos)
        return 124;
    if (int caught = caught_signal.load(); caught != 0 && raw.has_value()) return 128 + caught;
    if (sig != 0) return 128 + sig;
    if (!outcome.error.empty())
        throw Error(ErrorKind::internal, "the command failed: " + outcome.error, kProvider);
    return outcome.exit_code >= 0 ? (outcome.exit_code & 0xff) : 128 + SIGKILL;
}

nlohmann::json start_request(const ExecSpec& spec) {
    nlohmann::json process = nlohmann::json::object();
    nlohmann::json envs = nlohmann::json::object();
    for (const auto& [k, v] : spec.env)
        envs[k] = v;
    const bool tty = spec.tty;
    if (tty && !envs.contains("TERM")) {
        const char* term = std::getenv("TERM");
        envs["TERM"] = (term != nullptr && *term != '\0') ? term : "xterm-256color";
    }
    if (spec.login_shell) {
        // The SDK's terminal: bash, a login shell, interactive on a terminal (without one, with piped input,
        // it reads commands from stdin as `docker run -i` would).
        process["cmd"] = "/bin/bash";
        process["args"] = tty ? std::vector<std::string>{"-i", "-l"} : std::vector<std::string>{"-l"};
    } else {
        if (spec.argv.empty()) throw Error(ErrorKind::usage, "no command given", kProvider);
        process["cmd"] = spec.argv.front();
        process["args"] = std::vector<std::string>(spec.argv.begin() + 1, spec.argv.end());
    }
    process["envs"] = std::move(envs);
    if (!spec.cwd.empty()) process["cwd"] = spec.cwd;
    nlohmann::json req = {{"process", std::move(process)}};
    if (tty) {
        auto size = local::user_terminal_size();
        unsigned cols = size ? size->ws_col : 80, rows = size ? size->ws_row : 24;
        req["pty"] = {{"size", {{"cols", cols}, {"rows", rows}}}};
    }
    // Said either way: envd leaves stdin open when the field is absent (older SDKs never sent it), and a
    // command that reads it would then wait forever.
    req["stdin"] = spec.stdin_open && !spec.detach && !tty;
    return req;
}

} // namespace

std::string base64_encode(std::string_view data) {
    std::string out;
    out.reserve((data.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < data.size(); i += 3) {
        unsigned v = (static_cast<unsigned char>(data[i]) << 16) |
                     (static_cast<unsigned char>(data[i + 1]) << 8) | static_cast<unsigned char>(data[i + 2]);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (i < data.size()) {
        unsigned v = static_cast<unsigned char>(data[i]) << 16;
        if (i + 1 < data.size()) v |= static_cast<unsigned char>(data[i + 1]) << 8;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += i + 1 < data.size() ? kAlphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::string base64_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size() / 4 * 3);
    unsigned acc = 0;
    int bits = 0;
    for (char c : text) {
        if (c == '=' || c == '\n' || c == '\r') continue;
        int v = base64_value(c);
        if (v < 0) throw Error(ErrorKind::internal, "envd sent malformed base64 data", kProvider);
        acc = (acc << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return out;
}

std::string basic_user(std::string_view user) {
    return "Basic " + base64_encode(std::string(user) + ":");
}

int run_process(Provider& provider, const Envd& envd, const ExecSpec& spec) {
    Sink sink;
    if (spec.stdout_fd >= 0) sink.out_fd = spec.stdout_fd;
    if (spec.stderr_fd >= 0) sink.err_fd = spec.stderr_fd;
    if (spec.stdout_fd < 0) std::fflush(stdout);
    return stream_process(provider, envd, spec, start_request(spec), sink, spec.detach);
}

Captured run_captured(Provider& provider, const Envd& envd, const std::vector<std::string>& argv,
                      const std::string& user, int out_fd) {
    ExecSpec spec;
    spec.argv = argv;
    spec.user = user;
    Captured c;
    Sink sink;
    sink.err = &c.err;
    if (out_fd >= 0)
        sink.out_fd = out_fd;
    else
        sink.out = &c.out;
    c.status = stream_process(provider, envd, spec, start_request(spec), sink, false);
    return c;
}

int Provider::exec(std::string_view id, const ExecSpec& spec) {
    return run_process(*this, envd(id), spec);
}

} // namespace sbox::e2b

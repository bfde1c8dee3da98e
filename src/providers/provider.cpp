// Names of error kinds and capabilities, and the default Provider::run (create, exec, kill) with its cleanup
// on SIGINT/SIGTERM/SIGHUP.
#include "providers/provider.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <exception>
#include <fcntl.h>
#include <mutex>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace sbox {

std::string_view to_string(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::usage:
        return "usage";
    case ErrorKind::invalid:
        return "invalid";
    case ErrorKind::not_found:
        return "not_found";
    case ErrorKind::conflict:
        return "conflict";
    case ErrorKind::auth:
        return "auth";
    case ErrorKind::rate_limited:
        return "rate_limited";
    case ErrorKind::unavailable:
        return "unavailable";
    case ErrorKind::timeout:
        return "timeout";
    case ErrorKind::unsupported:
        return "unsupported";
    case ErrorKind::internal:
        return "internal";
    }
    return "internal";
}

namespace {
constexpr Capability all_capabilities[] = {
    Capability::exec,           Capability::exec_stdin, Capability::exec_detach, Capability::exec_timeout,
    Capability::exec_user,      Capability::exec_cwd,   Capability::lifetime,    Capability::labels,
    Capability::names,          Capability::image_dir,  Capability::copy,        Capability::snapshots,
    Capability::snapshot_files, Capability::pause,      Capability::cpu_limit,   Capability::memory_limit,
    Capability::disk_limit,     Capability::pids_limit, Capability::seccomp,     Capability::network,
    Capability::ports,          Capability::exec_tty,
};
} // namespace

std::string_view to_string(Capability c) {
    switch (c) {
    case Capability::exec:
        return "exec";
    case Capability::exec_stdin:
        return "exec_stdin";
    case Capability::exec_detach:
        return "exec_detach";
    case Capability::exec_timeout:
        return "exec_timeout";
    case Capability::exec_user:
        return "exec_user";
    case Capability::exec_cwd:
        return "exec_cwd";
    case Capability::lifetime:
        return "lifetime";
    case Capability::labels:
        return "labels";
    case Capability::names:
        return "names";
    case Capability::image_dir:
        return "image_dir";
    case Capability::copy:
        return "copy";
    case Capability::snapshots:
        return "snapshots";
    case Capability::snapshot_files:
        return "snapshot_files";
    case Capability::pause:
        return "pause";
    case Capability::cpu_limit:
        return "cpu_limit";
    case Capability::memory_limit:
        return "memory_limit";
    case Capability::disk_limit:
        return "disk_limit";
    case Capability::pids_limit:
        return "pids_limit";
    case Capability::seccomp:
        return "seccomp";
    case Capability::network:
        return "network";
    case Capability::ports:
        return "ports";
    case Capability::exec_tty:
        return "exec_tty";
    }
    return "unknown";
}

std::vector<std::string> Capabilities::names() const {
    std::vector<std::string> out;
    for (auto c : all_capabilities)
        if (has(c)) out.emplace_back(to_string(c));
    return out;
}

namespace {

// Interrupt handling for Provider::run. SIGINT, SIGTERM and SIGHUP are caught while at least one run is in
// progress (several threads may run at once, e.g. a benchmark); the handler only records the signal and wakes
// a watcher thread through a pipe, and the watcher removes every sandbox whose run is under way. Signals that
// were ignored when the first run started (nohup, background jobs) stay ignored.
constexpr int watched_signals[] = {SIGINT, SIGTERM, SIGHUP};

struct RunState {
    std::mutex mutex;
    Provider* provider = nullptr;
    std::string id; // empty until create returned
    bool removed = false;
    int signal = 0;
};

// Removes the sandbox once; errors (and "already gone") are swallowed: this is cleanup.
void remove_quietly(RunState& st) {
    if (st.removed || st.id.empty()) return;
    st.removed = true;
    try {
        st.provider->kill(st.id);
    } catch (...) {
    }
}

class InterruptHub {
  public:
    static InterruptHub& instance() {
        static InterruptHub hub; // constructed on first run, not at start-up
        return hub;
    }

    void enter(const std::shared_ptr<RunState>& st) {
        std::lock_guard lock(mutex_);
        if (runs_.empty()) install();
        runs_.push_back(st);
        int pending = pending_.load();
        if (pending != 0) {
            std::lock_guard l(st->mutex);
            st->signal = pending;
        }
    }

    void leave(const std::shared_ptr<RunState>& st) {
        std::lock_guard lock(mutex_);
        std::erase(runs_, st);
        if (runs_.empty()) uninstall();
    }

  private:
    static void on_signal(int sig) {
        int saved = errno;
        int expected = 0;
        pending_.compare_exchange_strong(expected, sig);
        char byte = static_cast<char>(sig);
        [[maybe_unused]] auto n = ::write(write_fd_.load(), &byte, 1);
        errno = saved;
    }

    void install() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return; // without the pipe, signals keep their default effect
        read_fd_ = fds[0];
        write_fd_.store(fds[1]);
        pending_.store(0);
        watcher_ = std::thread([this, fd = fds[0]] { watch(fd); });
        for (std::size_t i = 0; i < std::size(watched_signals); ++i) {
            struct sigaction old {};
            ::sigaction(watched_signals[i], nullptr, &old);
            saved_[i] = old;
            installed_[i] = old.sa_handler != SIG_IGN;
            if (!installed_[i]) continue;
            struct sigaction sa {};
            sa.sa_handler = &InterruptHub::on_signal;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = SA_RESTART;
            ::sigaction(watched_signals[i], &sa, nullptr);
        }
        active_ = true;
    }

    void uninstall() {
        if (!active_) return;
        for (std::size_t i = 0; i < std::size(watched_signals); ++i)
            if (installed_[i]) ::sigaction(watched_signals[i], &saved_[i], nullptr);
        char quit = 0;
        [[maybe_unused]] auto n = ::write(write_fd_.load(), &quit, 1);
        watcher_.join();
        ::close(write_fd_.exchange(-1));
        ::close(read_fd_);
        read_fd_ = -1;
        active_ = false;
    }

    void watch(int fd) {
        for (;;) {
            char byte = 0;
            ssize_t n = ::read(fd, &byte, 1);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0 || byte == 0) return;
            std::vector<std::shared_ptr<RunState>> runs;
            {
                std::lock_guard lock(mutex_);
                runs = runs_;
            }
            for (auto& st : runs) {
                std::lock_guard l(st->mutex);
                if (st->signal == 0) st->signal = static_cast<unsigned char>(byte);
                remove_quietly(*st);
            }
        }
    }

    std::mutex mutex_;
    std::vector<std::shared_ptr<RunState>> runs_;
    std::thread watcher_;
    int read_fd_ = -1;
    static inline std::atomic<int> write_fd_{-1};
    static inline std::atomic<int> pending_{0};
    struct sigaction saved_[std::size(watched_signals)]{};
    bool installed_[std::size(watched_signals)] = {};
    bool active_ = false;
};

class RunGuard {
  public:
    explicit RunGuard(Provider& p) : st_(std::make_shared<RunState>()) {
        st_->provider = &p;
        InterruptHub::instance().enter(st_);
    }
    ~RunGuard() {
        {
            std::lock_guard l(st_->mutex);
            remove_quietly(*st_);
        }
        InterruptHub::instance().leave(st_);
    }
    RunGuard(const RunGuard&) = delete;
    RunGuard& operator=(const RunGuard&) = delete;

    // Records the sandbox; returns the signal that arrived meanwhile (0: none).
    int created(const std::string& id) {
        std::lock_guard l(st_->mutex);
        st_->id = id;
        if (st_->signal != 0) remove_quietly(*st_);
        return st_->signal;
    }
    int signal() {
        std::lock_guard l(st_->mutex);
        return st_->signal;
    }
    // Someone else is now responsible for removing the sandbox (a detached run).
    void release() {
        std::lock_guard l(st_->mutex);
        st_->removed = true;
    }
    // Removes the sandbox now; a failure other than "already gone" is reported.
    void remove() {
        std::lock_guard l(st_->mutex);
        if (st_->removed) return;
        st_->removed = true;
        try {
            st_->provider->kill(st_->id);
        } catch (const Error& e) {
            if (e.kind() != ErrorKind::not_found) throw;
        }
    }

  private:
    std::shared_ptr<RunState> st_;
};

// `run -d`: like `docker run -d --rm`. A background process (detached from the terminal, its own session,
// stdio on /dev/null) runs the command to its end and then removes the sandbox; the caller returns at once.
int run_detached(Provider& p, const std::string& id, const ExecSpec& exec) {
    std::fflush(nullptr); // nothing buffered may be written twice
    pid_t child = ::fork();
    if (child < 0)
        throw Error(ErrorKind::internal, std::string("cannot start the background run: fork failed"));
    if (child == 0) {
        // Only _exit from here on: the parent's stack must never be unwound in the children.
        ::setsid();
        pid_t grandchild = ::fork();
        if (grandchild != 0) ::_exit(grandchild < 0 ? 1 : 0);
        for (int sig : watched_signals)
            ::signal(sig, SIG_DFL);
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::dup2(null, 2);
        }
        int status = 125;
        try {
            ExecSpec spec = exec;
            spec.detach = false;
            spec.stdin_open = false;
            status = p.exec(id, spec);
        } catch (const CommandError& e) {
            status = e.exit_status();
        } catch (...) {
        }
        try {
            p.kill(id);
        } catch (...) {
        }
        ::_exit(status & 0xff);
    }
    int wstatus = 0;
    while (::waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
        throw Error(ErrorKind::internal, "cannot start the background run: fork failed");
    return 0;
}

} // namespace

int Provider::run(const CreateSpec& create_spec, const ExecSpec& exec_spec, RunObserver& observer) {
    RunGuard guard(*this);
    SandboxInfo info = create(create_spec);
    if (int sig = guard.created(info.id)) return 128 + sig;
    observer.created(info);

    if (exec_spec.detach) {
        if (int sig = guard.signal()) return 128 + sig;
        int status = run_detached(*this, info.id, exec_spec);
        guard.release();
        return status;
    }

    int status = 0;
    try {
        status = exec(info.id, exec_spec);
    } catch (...) {
        // Interrupted: exec may well fail because its sandbox was removed under it.
        if (int sig = guard.signal()) return 128 + sig;
        throw; // the guard removes the sandbox on the way out
    }
    if (int sig = guard.signal()) return 128 + sig;
    guard.remove();
    if (int sig = guard.signal()) return 128 + sig;
    return status;
}

} // namespace sbox

namespace sbox {

namespace {
[[noreturn]] void unsupported(const Provider& p, const char* operation) {
    throw Error(ErrorKind::unsupported, std::string(operation) + " is not supported by this provider",
                std::string(p.name()));
}
} // namespace

std::vector<SandboxInfo> Provider::list_filtered(const Labels&) {
    return list();
}

PathInfo Provider::stat_path(std::string_view, const std::string&, bool) {
    unsupported(*this, "cp");
}
void Provider::upload(std::string_view, const UploadSpec&, int) {
    unsupported(*this, "cp");
}
void Provider::download(std::string_view, const DownloadSpec&, int) {
    unsupported(*this, "cp");
}
SnapshotInfo Provider::create_snapshot(std::string_view, const std::string&) {
    unsupported(*this, "snapshot");
}
std::vector<SnapshotInfo> Provider::list_snapshots() {
    unsupported(*this, "snapshot");
}
std::optional<SnapshotInfo> Provider::get_snapshot(std::string_view) {
    unsupported(*this, "snapshot");
}
void Provider::delete_snapshot(std::string_view) {
    unsupported(*this, "snapshot");
}
void Provider::export_snapshot(std::string_view, int) {
    unsupported(*this, "snapshot export");
}
SnapshotInfo Provider::import_snapshot(int) {
    unsupported(*this, "snapshot import");
}
void Provider::pause(std::string_view) {
    unsupported(*this, "pause");
}
void Provider::resume(std::string_view) {
    unsupported(*this, "resume");
}

} // namespace sbox

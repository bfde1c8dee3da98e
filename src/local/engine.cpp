#include "local/engine.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>

#include "local/namespaces.hpp"
#include "local/pty.hpp"
#include "local/supervisor.hpp"
#include "local/trace.hpp"

namespace sbox::local {

namespace {

constexpr const char* kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::int64_t unix_now() {
    return static_cast<std::int64_t>(::time(nullptr));
}

// K=V lists where a later key replaces an earlier one.
void merge_env(std::vector<std::string>& into, const std::vector<std::string>& from) {
    for (const auto& kv : from) {
        std::string key = kv.substr(0, kv.find('='));
        bool replaced = false;
        for (auto& existing : into) {
            if (existing.compare(0, key.size() + 1, key + "=") == 0) {
                existing = kv;
                replaced = true;
                break;
            }
        }
        if (!replaced) into.push_back(kv);
    }
}

LaunchSpec launch_spec(const SandboxConfig& config, const ExecRequest& request, int error_fd) {
    LaunchSpec spec;
    spec.argv = request.argv;
    spec.env = {kDefaultPath, "HOSTNAME=" + config.hostname};
    if (request.tty) {
        // As docker: the terminal's type comes along (the sandbox's defaults and -e override it).
        const char* term = ::getenv("TERM");
        spec.env.push_back(std::string("TERM=") + (term && *term ? term : "xterm"));
    }
    merge_env(spec.env, config.env);
    merge_env(spec.env, request.env);
    spec.cwd = request.cwd;
    spec.user = request.user;
    spec.stdin_open = request.stdin_open;
    spec.detached = request.detach;
    spec.setgroups = config.idmap.setgroups;
    spec.seccomp = config.seccomp;
    spec.max_processes = config.limits.pids.value_or(kDefaultPids);
    spec.error_fd = error_fd;
    if (request.tty) {
        // The pty starts with the user's terminal's size.
        spec.tty = true;
        spec.tty_size = user_terminal_size();
    }
    spec.login_shell = request.login_shell;
    spec.stdout_fd = request.stdout_fd;
    spec.stderr_fd = request.stderr_fd;
    return spec;
}

// Where a sandbox's processes live: its own cgroup (for pause and kill) under `main`, and the cgroups that
// enforce its limits.
struct CgroupPlan {
    std::optional<CgroupParent> main;
    CgroupLimits limits;
    std::string data_dir; // names this store's cgroups
};

// The cgroups a sandbox needs. `with_main`: whether it wants its own cgroup even without limits (create: for
// pause; run: only when a limit needs one).
std::optional<CgroupPlan> cgroup_plan(const Store& store, const SandboxConfig& config, bool with_main) {
    CgroupPlan plan;
    plan.limits.memory = config.limits.memory;
    plan.limits.cpu_millis = config.limits.cpu_millis;
    plan.limits.pids = config.limits.pids;
    plan.data_dir = store.paths().data;
    bool limited = plan.limits.memory || plan.limits.cpu_millis || plan.limits.pids;
    if (!with_main && !limited) return std::nullopt;
    plan.main = cgroup_parent(store.paths().data);
    return plan;
}

void check_tty_request(const ExecRequest& request) {
    if (request.tty && request.detach)
        throw Error(Error::Kind::invalid, "a detached command cannot have a terminal (-t with -d)");
}

// Signals that end `run` (removing the sandbox) and that `exec` forwards to its command.
sigset_t terminating_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
        sigaddset(&set, sig);
    return set;
}

struct WaitResult {
    int status = 0; // wait(2) status, when the child ended
    int signal = 0; // a terminating signal arrived (and was not forwarded)
    bool timed_out = false;
};

// Waits for child `pid` (pidfd `pidfd`), for `timeout`, and for the terminating signals, which are read
// from `sigfd` and either forwarded to the child's process group or returned. With a `relay` (-t), relays the
// terminal meanwhile and passes SIGWINCH on as a resize; and it returns SIGTERM and SIGHUP even when
// forwarding (every terminating signal when the user's terminal is raw, where Ctrl-C is a byte for the pty,
// not a SIGINT for sbox): the caller hangs the terminal up, as ssh does, since an interactive shell ignores
// SIGTERM.
WaitResult wait_child(pid_t pid, int pidfd, int sigfd, std::optional<std::chrono::milliseconds> timeout,
                      bool forward_signals, int notify_fd = -1, const std::function<void()>& on_notify = {},
                      PtyRelay* relay = nullptr) {
    struct timespec start;
    ::clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int wait_ms = -1;
        if (timeout) {
            struct timespec now;
            ::clock_gettime(CLOCK_MONOTONIC, &now);
            std::int64_t elapsed =
                (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
            std::int64_t left = timeout->count() - elapsed;
            if (left <= 0) return WaitResult{0, 0, true};
            wait_ms = static_cast<int>(std::min<std::int64_t>(left, 1 << 30));
        }
        struct pollfd fds[3 + PtyRelay::kPollFds] = {
            {pidfd, POLLIN, 0}, {sigfd, POLLIN, 0}, {notify_fd, POLLIN, 0}};
        int count = notify_fd >= 0 ? 3 : 2;
        if (relay) {
            relay->poll_fds(fds + 3);
            count = 3 + PtyRelay::kPollFds; // an unused notify entry has fd -1, which poll skips
        }
        int n = ::poll(fds, count, wait_ms);
        if (n == -1) {
            if (errno == EINTR) continue;
            throw_errno("poll");
        }
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo info;
            if (::read(sigfd, &info, sizeof info) == sizeof info) {
                int sig = static_cast<int>(info.ssi_signo);
                if (sig == SIGWINCH) {
                    // Before the input that came with it: keys typed after a resize meet the new size.
                    if (relay) relay->resize();
                } else if (!forward_signals || (relay && (sig == SIGTERM || sig == SIGHUP || relay->raw()))) {
                    return WaitResult{0, sig, false};
                } else {
                    ::kill(-pid, sig);
                    ::kill(pid, sig);
                }
            }
        }
        if (relay) relay->handle(fds + 3);
        if (notify_fd >= 0 && fds[2].revents) {
            notify_fd = -1; // once
            if (on_notify) on_notify();
            continue;
        }
        if (fds[0].revents & POLLIN) {
            if (relay) relay->drain();
            WaitResult r;
            while (::waitpid(pid, &r.status, 0) == -1) {
                if (errno != EINTR) throw_errno("waitpid");
            }
            return r;
        }
    }
}

// Blocks the terminating signals for the life of the object and reads them from a signalfd, so a Ctrl-C
// at any moment is handled rather than killing sbox halfway.
class SignalCatcher {
  public:
    // `window_changes`: SIGWINCH too, for a terminal relay (-t).
    explicit SignalCatcher(bool window_changes = false) {
        sigset_t set = terminating_signals();
        if (window_changes) sigaddset(&set, SIGWINCH);
        check(::sigprocmask(SIG_BLOCK, &set, &old_), "sigprocmask");
        fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC));
        if (!fd_) throw_errno("signalfd");
    }
    ~SignalCatcher() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }
    int fd() const { return fd_.get(); }
    // A signal that arrived while nothing was waiting for it.
    int pending() const {
        struct pollfd p = {fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, 0) != 1) return 0;
        struct signalfd_siginfo info;
        if (::read(fd_.get(), &info, sizeof info) != sizeof info) return 0;
        return static_cast<int>(info.ssi_signo);
    }

  private:
    sigset_t old_;
    Fd fd_;
};

struct Started {
    pid_t pid = 0;
    Fd pidfd;
    Fd sync; // the conversation with the supervisor
    bool base_idmapped = false;
    Cgroup cgroup;                     // where every process of the sandbox lives (none: pause uses signals)
    std::vector<Cgroup> limit_cgroups; // v1 controllers' cgroups that enforce its limits
    NetworkStack network;              // --network full: pasta, a child of this process
};

// SIGKILL to a supervisor, whose end takes every process of the sandbox, and waits for it. A task frozen by
// the v1 freezer does not die before it is thawed, so a frozen sandbox is thawed first, and again should a
// pause have frozen it meanwhile.
void end_supervisor(int pidfd, const Cgroup& cgroup) {
    if (!cgroup) {
        kill_and_wait(pidfd);
        return;
    }
    for (;;) {
        try {
            cgroup.thaw();
        } catch (const Error&) {
        }
        if (::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) == -1 && errno != ESRCH)
            throw_errno("pidfd_send_signal(SIGKILL)");
        struct pollfd p = {pidfd, POLLIN, 0};
        int n = ::poll(&p, 1, 200);
        if (n == 1) return;
        if (n == -1 && errno != EINTR) throw_errno("poll(pidfd)");
    }
}

// Ends a sandbox's monitor and waits for it. A foreground `sbox run` (or `sbox shell`) is its own sandbox's
// monitor: SIGTERM first lets it remove its sandbox and put its user's terminal back as it was, which SIGKILL
// would not. A daemon monitor dies of SIGTERM at once. Whatever still runs after 10 s is killed.
void end_monitor(int pidfd) {
    if (::syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, nullptr, 0) == 0) {
        struct pollfd p = {pidfd, POLLIN, 0};
        int n;
        while ((n = ::poll(&p, 1, 10000)) == -1 && errno == EINTR) {
        }
        if (n == 1) return;
    } else if (errno == ESRCH) {
        return;
    }
    kill_and_wait(pidfd);
}

// Removes a sandbox's cgroup once its supervisor has ended, quietly: what stays is swept by a later kill.
void remove_cgroup(const Cgroup& cgroup) {
    try {
        if (!cgroup.remove()) {
            cgroup.kill_all();
            cgroup.remove();
        }
    } catch (...) {
    }
}

void remove_cgroups(const Cgroup& main, const std::vector<Cgroup>& limits) {
    remove_cgroup(main);
    for (const auto& c : limits)
        remove_cgroup(c);
}

// Clones the supervisor into fresh namespaces, maps its ids, hands it the idmapped lower layers and
// waits until it reports ready. Runs in the process that will watch over the sandbox. With `cgroups`, the
// supervisor is moved into a cgroup of its own before it is told to go, so every process it starts is born
// there.
Started start_sandbox(const SandboxConfig& config, const SupervisorPlan& plan, int keep_fd,
                      const std::optional<CgroupPlan>& cgroups = std::nullopt) {
    int pair[2];
    check(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), "socketpair");
    Fd parent_end(pair[0]), child_end(pair[1]);
    Started started;
    Fd cgroup_dir; // v2: the supervisor is born in its cgroup; v1: it is moved there below
    auto clone = [&] {
        if (cgroup_dir) {
            try {
                return clone_into_namespaces(kSandboxNamespaces, started.pidfd, cgroup_dir.get());
            } catch (const Error&) {
                cgroup_dir.reset(); // refused (a chroot, or the cgroup): retried without it
            }
        }
        return clone_into_namespaces(kSandboxNamespaces, started.pidfd);
    };
    try {
        if (cgroups) {
            if (cgroups->main) {
                started.cgroup = Cgroup::create(*cgroups->main, config.id);
                trace("cgroup made");
            }
            CgroupLimits limits = cgroups->limits;
            // The default cap on processes costs nothing in a v2 cgroup the sandbox is born in.
            if (!limits.pids && v2_controller_enabled(started.cgroup, "pids")) limits.pids = kDefaultPids;
            started.limit_cgroups = make_limit_cgroups(limits, started.cgroup, cgroups->data_dir, config.id);
            if (started.cgroup.version() == CgroupVersion::v2) cgroup_dir = started.cgroup.open_dir();
        }
        try {
            started.pid = clone();
        } catch (const Error& e) {
            if (e.kind() != Error::Kind::unavailable || ::geteuid() != 0) throw;
            leave_chroot(); // refused because this process is chrooted: stop being so, and try again
            started.pid = clone();
        }
    } catch (...) {
        remove_cgroups(started.cgroup, started.limit_cgroups);
        throw;
    }
    if (started.pid == 0) {
        parent_end.reset();
        supervisor_main(plan, child_end.get(), keep_fd);
    }
    child_end.reset();
    auto abort_start = [&] {
        started.network.stop();
        kill_and_wait(started.pidfd.get());
        ::waitpid(started.pid, nullptr, 0);
        remove_cgroups(started.cgroup, started.limit_cgroups);
    };
    try {
        // Before the first "go": the supervisor starts nothing before it, so every process of the sandbox
        // is born in the cgroup. (A move costs the kernel an RCU grace period: v1 only.)
        if (started.cgroup && !cgroup_dir) started.cgroup.add(started.pid);
        for (const auto& c : started.limit_cgroups)
            c.add(started.pid);
        cgroup_dir.reset();
        write_idmap(started.pid, config.idmap);
        send_go(parent_end.get(), {}); // the supervisor sets itself up while the lower layers are made
        // The network stack sets itself up meanwhile too: it needs only the namespaces and the id maps.
        if (plan.network)
            started.network = NetworkStack::start(*plan.network, started.pid, config.idmap, config.rootless,
                                                  "sbox-" + config.id);
        std::vector<Fd> lowers;
        if (!config.rootless) {
            Fd userns(
                ::open(("/proc/" + std::to_string(started.pid) + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
            if (!userns) throw_errno("open the sandbox's user namespace");
            std::string why;
            for (const auto& path : plan.rootfs.lower_paths()) {
                Fd mnt = make_idmapped_mount(path, userns.get(), why);
                if (!mnt) {
                    // The filesystem cannot be idmapped (for example an overlayfs root): the base stays
                    // read-only to root inside where the host's root owns it.
                    lowers.clear();
                    break;
                }
                lowers.push_back(std::move(mnt));
            }
        }
        started.base_idmapped = !lowers.empty();
        // The snapshot layers, after the base's: as root, idmapped mounts that show the store's ids
        // (kStoreIdBase + N) as the sandbox's (its slot + N); rootless, the supervisor opens them itself.
        if (!plan.layer_paths.empty() && !config.rootless) {
            IdMap shift;
            shift.uids = {{kStoreIdBase, config.idmap.root_uid(), kRangeSize}};
            shift.gids = {{kStoreIdBase, config.idmap.root_gid(), kRangeSize}};
            Fd store_userns = make_userns(shift);
            for (const auto& path : plan.layer_paths) {
                std::string why;
                Fd mnt = make_idmapped_mount(path, store_userns.get(), why);
                if (!mnt)
                    throw Error(Error::Kind::unavailable,
                                "cannot stack the snapshot's layers: " + why +
                                    " (as root, snapshots need a data directory whose file system supports "
                                    "idmapped mounts)");
                lowers.push_back(std::move(mnt));
            }
        }
        std::vector<int> fds;
        for (const auto& l : lowers)
            fds.push_back(l.get());
        // A supervisor that failed meanwhile has closed its end; its error message is read below.
        try {
            send_go(parent_end.get(), fds);
        } catch (const Error&) {
        }
    } catch (...) {
        abort_start();
        throw;
    }
    std::string text = receive_text(parent_end.get());
    if (text != "ready") {
        abort_start();
        if (text.rfind("error\t", 0) == 0)
            throw Error(Error::Kind::internal, "cannot set up the sandbox: " + text.substr(6));
        throw Error(Error::Kind::internal, "the sandbox's supervisor died while setting up");
    }
    if (started.network) {
        try {
            started.network.wait_ready();
        } catch (...) {
            abort_start();
            throw;
        }
        trace("network ready");
        if (plan.command) send_text(parent_end.get(), "network"); // the command may start now
    }
    started.sync = std::move(parent_end);
    return started;
}

SupervisorPlan supervisor_plan(const Store& store, const SandboxConfig& config) {
    SupervisorPlan plan;
    plan.rootfs = plan_rootfs(config.image, config.hostname, {store.paths().data, store.paths().runtime},
                              store.fs_dir(config.id));
    plan.idmap = config.idmap;
    plan.sandbox_dir = store.sandbox_dir(config.id);
    if (config.limits.disk) {
        // --disk: the writable layers in a tmpfs of that size, so writes past it fail with ENOSPC and never
        // reach the host's disk.
        plan.rootfs.layers_in_memory = true;
        plan.rootfs.disk_bytes = *config.limits.disk;
    }
    plan.owner_must_join = config.rootless;
    if (config.lifetime_ms) plan.lifetime = std::chrono::milliseconds(*config.lifetime_ms);
    for (const auto& layer : config.layers)
        plan.layer_paths.push_back(snapshot_layer_dir(store.paths(), layer));
    plan.rootfs.layer_count = plan.layer_paths.size();
    if (config.rootless) plan.rootfs.layer_paths_to_open = plan.layer_paths;
    if (config.network == NetworkMode::full) {
        plan.network = plan_network(config.ports);
        plan.rootfs.resolv_conf = sandbox_resolv_conf();
        plan.rootfs.extra_hosts = sandbox_hosts_entries(*plan.network);
    }
    return plan;
}

RuntimeState runtime_state(const Started& started, const SupervisorPlan& plan) {
    RuntimeState rt;
    if (auto s = identify(started.pid)) rt.supervisor = *s;
    if (auto m = identify(::getpid())) rt.monitor = *m;
    rt.started_at = unix_now();
    rt.base_idmapped = started.base_idmapped;
    rt.layers_in_memory = plan.rootfs.layers_in_memory;
    rt.cgroup = started.cgroup.path();
    rt.cgroup_version = started.cgroup.version();
    for (const auto& c : started.limit_cgroups)
        rt.limit_cgroups.push_back(c.path());
    if (started.network && plan.network) {
        RuntimeState::Network n;
        if (auto stack = identify(started.network.pid())) n.stack = *stack;
        n.address = plan.network->address;
        n.prefix_length = plan.network->prefix_length;
        n.gateway = plan.network->gateway;
        n.ports = plan.network->ports;
        rt.network = std::move(n);
    }
    return rt;
}

// Starts the sandbox from a forked, daemonized monitor that outlives the caller and watches the supervisor:
// when it ends by itself (lifetime over, or the command of a detached run done) the monitor removes the
// sandbox; when it is killed, the monitor records how, for ls. Returns once the sandbox is ready.
//
// The two talk over a socket pair: "ready" (or "error\t<message>"), then the caller's "ack", then
// "recorded" once the runtime record is written. A caller that dies before its ack never learns of the
// sandbox, so the monitor removes it; and the sandbox shows as running only from its record on.
void start_monitored(const Store& store, const SandboxConfig& config, const SupervisorPlan& plan) {
    int pair[2];
    check(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), "socketpair");
    Fd caller_end(pair[0]), monitor_end(pair[1]);
    pid_t monitor = ::fork();
    if (monitor == -1) throw_errno("fork");
    if (monitor == 0) {
        caller_end.reset();
        ::prctl(PR_SET_NAME, "sbox-monitor", 0, 0, 0);
        // Not the signal mask of a `run -d` that forked it: kill's SIGTERM ends a monitor at once
        // (end_monitor).
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::setsid();
        ::signal(SIGPIPE, SIG_IGN);
        ::signal(SIGHUP, SIG_IGN);
        // Nor the caller's handlers (a long-lived caller such as sbox bench catches SIGTERM and SIGINT).
        ::signal(SIGTERM, SIG_DFL);
        ::signal(SIGINT, SIG_DFL);
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        for (int fd = 0; fd < 3; ++fd)
            ::dup2(null, fd);
        // Nothing the caller had open (its pipes, its terminal) may stay open in a long-lived process.
        int keep = monitor_end.get();
        if (keep > 3) ::syscall(SYS_close_range, 3, keep - 1, 0);
        ::syscall(SYS_close_range, keep + 1, ~0U, 0);
        auto remove_quietly = [&] {
            try {
                store.remove(config);
            } catch (...) {
            }
        };
        Started started;
        try {
            started = start_sandbox(config, plan, -1, cgroup_plan(store, config, true));
        } catch (const std::exception& e) {
            remove_quietly();
            send_text(keep, std::string("error\t") + e.what());
            ::_exit(1);
        }
        auto abandon = [&] {
            started.network.stop();
            end_supervisor(started.pidfd.get(), started.cgroup);
            ::waitpid(started.pid, nullptr, 0);
            remove_cgroups(started.cgroup, started.limit_cgroups);
            remove_quietly();
            ::_exit(1);
        };
        char ack[8];
        send_text(keep, "ready");
        if (::recv(keep, ack, sizeof ack, 0) <= 0) abandon(); // the caller died: nobody knows of the sandbox
        try {
            // Removed meanwhile (sbox kill of a sandbox still being created): end it.
            if (!store.write_runtime_if_present(config.id, runtime_state(started, plan))) abandon();
        } catch (const std::exception&) {
            abandon();
        }
        send_text(keep, "recorded");
        monitor_end.reset();
        int status = 0;
        while (::waitpid(started.pid, &status, 0) == -1 && errno == EINTR) {
        }
        started.network.stop(); // before the records go: a removed sandbox has no process left
        // the supervisor's end took every process of the sandbox
        remove_cgroups(started.cgroup, started.limit_cgroups);
        try {
            if (WIFEXITED(status))
                store.remove(config);
            else
                store.write_exit(config.id, ExitState{WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                                                      exit_status_of(status), unix_now()});
        } catch (...) {
        }
        ::_exit(0);
    }
    monitor_end.reset();
    std::string reply = receive_text(caller_end.get());
    if (reply == "ready") {
        send_text(caller_end.get(), "ack");
        reply = receive_text(caller_end.get());
        if (reply == "recorded") return;
    }
    ::waitpid(monitor, nullptr, 0);
    if (reply.rfind("error\t", 0) == 0) throw Error(Error::Kind::internal, reply.substr(6));
    store.remove(config);
    throw Error(Error::Kind::internal, "the sandbox's monitor died while starting it");
}

} // namespace

Engine::Engine(Paths paths, ArchiverSource archiver)
    : store_(std::move(paths)), archiver_(std::move(archiver)) {}

Archiver& Engine::archiver() {
    if (!archiver_) throw Error(Error::Kind::unavailable, "archive support is not available to this engine");
    return archiver_();
}

SandboxConfig Engine::register_sandbox(const CreateRequest& request, bool ephemeral) {
    if (!request.name.empty() && !valid_name(request.name))
        throw Error(Error::Kind::invalid,
                    "invalid name '" + request.name +
                        "': use up to 63 letters, digits, '-', '_' or '.', starting with a "
                        "letter or digit");
    if (request.lifetime && request.lifetime->count() <= 0)
        throw Error(Error::Kind::invalid, "the lifetime must be longer than zero");
    for (const auto& kv : request.env)
        if (kv.find('=') == std::string::npos || kv.front() == '=')
            throw Error(Error::Kind::invalid, "invalid environment entry '" + kv + "' (use KEY=VALUE)");

    if (request.limits.cpu_millis) {
        long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
        if (cpus > 0 && *request.limits.cpu_millis > static_cast<std::uint64_t>(cpus) * 1000) {
            char asked[32];
            std::snprintf(asked, sizeof asked, "%g", static_cast<double>(*request.limits.cpu_millis) / 1000);
            throw Error(Error::Kind::invalid, std::string("--cpus ") + asked + ": this machine has only " +
                                                  std::to_string(cpus) + " CPUs (give at most " +
                                                  std::to_string(cpus) + ")");
        }
    }
    if (request.limits.pids && *request.limits.pids < 2)
        throw Error(Error::Kind::invalid,
                    "--pids must allow at least 2 processes (the supervisor and a command)");

    SandboxConfig config;
    config.name = request.name;
    config.image = request.image;
    config.labels = request.labels;
    config.env = request.env;
    config.limits = request.limits;
    config.seccomp = request.seccomp;
    if (!request.snapshot.empty()) {
        if (!request.image.empty())
            throw Error(Error::Kind::invalid, "--snapshot and --image exclude each other: a snapshot brings "
                                              "the base it was taken on");
        auto snapshot = find_snapshot(request.snapshot);
        if (!snapshot)
            throw Error(Error::Kind::not_found,
                        "no snapshot '" + request.snapshot + "' (see sbox snapshot ls)");
        config.snapshot = snapshot->id;
        config.layers = snapshot_chain(*snapshot);
        config.image = snapshot->image;
        config.env = snapshot->env;
        merge_env(config.env, request.env);
    }
    config.created_at = unix_now();
    if (request.lifetime) {
        config.lifetime_ms = request.lifetime->count();
        config.expires_at = config.created_at + (request.lifetime->count() + 999) / 1000;
    }
    config.network = request.network;
    config.ports = request.ports;
    if (!config.ports.empty() && config.network != NetworkMode::full)
        throw Error(Error::Kind::invalid, "--port needs --network full");
    config.rootless = ::geteuid() != 0;
    config.ephemeral = ephemeral;
    if (auto me = identify(::getpid())) config.creator = *me;
    {
        auto held = store_.lock();
        auto existing = store_.list();
        if (!config.name.empty()) {
            for (const auto& s : existing)
                if (s.config.name == config.name)
                    throw Error(Error::Kind::conflict, "the name '" + config.name +
                                                           "' is already used by local/" + s.config.id +
                                                           " (remove it with sbox kill, or choose another)");
        }
        config.id = store_.new_id();
        config.hostname = config.name.empty() ? config.id : config.name;
        if (config.rootless) {
            config.idmap = rootless_idmap();
        } else {
            config.slot = store_.free_slot(existing);
            config.idmap = slot_idmap(config.slot);
        }
        store_.add(config);
    }
    return config;
}

SandboxState Engine::create(const CreateRequest& request) {
    SandboxConfig config = register_sandbox(request, false);
    try {
        SupervisorPlan plan = supervisor_plan(store_, config);
        start_monitored(store_, config, plan);
    } catch (...) {
        store_.remove(config);
        throw;
    }
    auto state = store_.load(config.id);
    if (!state) throw Error(Error::Kind::internal, "sandbox " + config.id + " vanished while being created");
    return *state;
}

int Engine::run(const CreateRequest& create, const ExecRequest& exec,
                const std::function<void(const SandboxState&)>& created) {
    if (exec.argv.empty() && !exec.login_shell) throw Error(Error::Kind::invalid, "no command given");
    check_tty_request(exec);
    SignalCatcher signals(exec.tty);
    trace("run: start");
    SandboxConfig config = register_sandbox(create, true);
    trace("run: registered");
    Pipe errors;
    std::optional<Started> started;
    std::optional<PtyRelay> relay; // -t
    bool removed = false;
    auto remove = [&] {
        if (started) {
            started->network.stop();
            end_supervisor(started->pidfd.get(), started->cgroup);
            ::waitpid(started->pid, nullptr, 0);
            remove_cgroups(started->cgroup, started->limit_cgroups);
        }
        store_.remove(config);
    };
    try {
        SupervisorPlan plan = supervisor_plan(store_, config);
        // What a one-shot command writes dies with it: its layers live in memory, which spares the disk
        // writes of setting them up and, above all, of removing them afterwards.
        plan.rootfs.layers_in_memory = true;
        plan.command = launch_spec(config, exec, errors.write.get());
        if (exec.detach) {
            start_monitored(store_, config, plan);
            if (created)
                if (auto state = store_.load(config.id)) created(*state);
            return 0;
        }
        plan.die_with_parent = true;
        // No cgroup unless a limit needs one: making and removing one would cost every run about 0.1 ms
        // (cgroup v2; about 8 ms with v1, where the supervisor must be moved into it). Its sandbox pauses
        // with signals; the default cap on processes is RLIMIT_NPROC's.
        started = start_sandbox(config, plan, errors.write.get(), cgroup_plan(store_, config, false));
        trace("run: sandbox ready");
        errors.write.reset();
        store_.write_runtime(config.id, runtime_state(*started, plan));
        if (created)
            if (auto state = store_.load(config.id)) created(*state);
        if (exec.tty) {
            // The command's first word on the supervisor's socket is its pty; one that failed before making
            // it says nothing, and the supervisor then reports it "ended".
            Message m = receive_message(started->sync.get());
            if (m.fd) {
                relay.emplace(std::move(m.fd), exec.stdin_open);
                if (exec.stdin_open) relay->take_terminal();
            } else if (m.text == "ended") {
                store_.remove(config);
                removed = true;
            }
        }
    } catch (...) {
        relay.reset(); // the user's terminal first
        remove();
        throw;
    }
    WaitResult r;
    int sig = signals.pending();
    if (sig == SIGWINCH) {
        if (relay) relay->resize();
        sig = 0;
    }
    if (sig)
        r.signal = sig;
    else
        r = wait_child(
            started->pid, started->pidfd.get(), signals.fd(), exec.timeout, false,
            removed ? -1 : started->sync.get(),
            [&] {
                // The command is over: its sandbox's records go while the kernel ends the rest.
                if (receive_text(started->sync.get()) == "ended") {
                    store_.remove(config);
                    removed = true;
                }
            },
            relay ? &*relay : nullptr);
    int status;
    if (r.signal || r.timed_out) {
        status = r.timed_out ? 124 : 128 + r.signal;
        remove();
        return status;
    }
    Cgroup cgroup = started->cgroup;
    std::vector<Cgroup> limit_cgroups = started->limit_cgroups;
    started.reset(); // reaped by wait_child
    trace("run: sandbox ended");
    remove_cgroups(cgroup, limit_cgroups);
    status = exit_status_of(r.status);
    auto failure = read_launch_failure(errors.read.get());
    if (!removed) store_.remove(config);
    trace("run: removed");
    if (failure && failure->exit_status == status)
        throw CommandFailed(failure->exit_status, failure->message);
    return status;
}

int Engine::exec(std::string_view id_or_name, const ExecRequest& request) {
    if (request.argv.empty() && !request.login_shell) throw Error(Error::Kind::invalid, "no command given");
    check_tty_request(request);
    auto state = store_.find(id_or_name);
    if (!state) throw Error(Error::Kind::not_found, "no sandbox '" + std::string(id_or_name) + "'");
    auto not_running = [&] {
        return Error(Error::Kind::conflict, "sandbox " + state->config.id + " is not running (" +
                                                std::string(to_string(state->status)) +
                                                "); remove it with sbox kill");
    };
    if (state->status == Status::paused)
        throw Error(Error::Kind::conflict, "sandbox " + state->config.id +
                                               " is paused; resume it with sbox resume " + state->config.id);
    if (state->status != Status::running) throw not_running();
    Fd supervisor = open_pidfd(state->runtime->supervisor);
    if (!supervisor) throw not_running();

    std::optional<SignalCatcher> signals; // none: the caller handles signals (and may be one thread of many)
    if (request.owns_process) signals.emplace(request.tty);
    Pipe errors;
    LaunchSpec spec = launch_spec(state->config, request, errors.write.get());
    Fd tty_socket, tty_socket_child; // -t: the command sends its pty's master over it
    if (request.tty) {
        int pair[2];
        check(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), "socketpair");
        tty_socket.reset(pair[0]);
        tty_socket_child.reset(pair[1]);
        spec.tty_socket = tty_socket_child.get();
    }
    // The command joins the sandbox's cgroup, opened while the host's /sys is in sight. v2: it is born there,
    // and joins the sandbox's cgroup namespace afterwards (a clone into a cgroup is checked against the
    // cloning process's cgroup namespace); v1: it moves itself there.
    Cgroup cgroup = cgroup_of(*state);
    Fd cgroup_fd;
    if (cgroup) cgroup_fd = cgroup.version() == CgroupVersion::v2 ? cgroup.open_dir() : cgroup.open_procs();
    const bool born_inside = cgroup && cgroup.version() == CgroupVersion::v2;
    // The v1 cgroups of its limits: the command moves itself into each before it execs.
    std::vector<Fd> limit_procs;
    for (const auto& path : state->runtime->limit_cgroups)
        limit_procs.push_back(Cgroup(CgroupVersion::v1, path).open_procs());
    Fd cgroupns; // joined by the command once it is born: by a namespace fd, as it cannot ptrace the
                 // supervisor
    if (born_inside) {
        cgroupns.reset(
            ::open(("/proc/" + std::to_string(state->runtime->supervisor.pid) + "/ns/cgroup").c_str(),
                   O_RDONLY | O_CLOEXEC));
        if (!cgroupns || !alive(state->runtime->supervisor)) throw not_running();
    }
    pid_t child = -1;
    if (request.owns_process) {
        join_namespaces(supervisor.get(), born_inside ? CLONE_NEWCGROUP : 0);
        child = born_inside ? fork_into_cgroup(cgroup_fd.get()) : ::fork();
        if (child == -1)
            throw_errno(born_inside ? "clone3 into the sandbox's cgroup " + cgroup.path() : "fork");
    } else {
        child = spawn_in_sandbox(supervisor.get(), born_inside ? CLONE_NEWCGROUP : 0,
                                 born_inside ? cgroup_fd.get() : -1);
    }
    if (child == 0) {
        int err = born_inside ? (::setns(cgroupns.get(), CLONE_NEWCGROUP) == -1 ? errno : 0)
                              : join_cgroup(cgroup_fd.get());
        std::string failed = cgroup.path();
        for (size_t i = 0; err == 0 && i < limit_procs.size(); ++i)
            if ((err = join_cgroup(limit_procs[i].get())) != 0) failed = state->runtime->limit_cgroups[i];
        if (err != 0) {
            (void)write_all(errors.write.get(),
                            "125\tcannot join the sandbox's cgroup " + failed + ": " + std::strerror(err));
            ::_exit(125);
        }
        if (request.detach) {
            // The command's parent exits at once: the sandbox's PID 1 adopts and reaps it.
            pid_t grandchild = ::fork();
            if (grandchild != 0) ::_exit(grandchild == -1 ? 1 : 0);
        }
        launch(spec);
    }
    errors.write.reset();
    tty_socket_child.reset();
    Fd child_fd(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));
    if (!child_fd) throw_errno("pidfd_open");
    std::optional<PtyRelay> relay;
    if (request.tty) {
        try {
            // Nothing comes when the command failed before making its pty: its error follows below.
            Message m = receive_message(tty_socket.get());
            tty_socket.reset();
            if (m.fd) {
                relay.emplace(std::move(m.fd), request.stdin_open);
                if (request.stdin_open) relay->take_terminal();
            }
        } catch (...) {
            relay.reset();
            ::kill(child, SIGKILL);
            ::waitpid(child, nullptr, 0);
            throw;
        }
    }
    WaitResult r;
    if (request.detach) {
        while (::waitpid(child, &r.status, 0) == -1 && errno == EINTR) {
        }
    } else {
        // (With a terminal, a signal that came meanwhile is read by wait_child: it may be a SIGWINCH.)
        if (!request.tty && signals)
            if (int sig = signals->pending()) ::kill(child, sig);
        r = wait_child(child, child_fd.get(), signals ? signals->fd() : -1, request.timeout, true, -1, {},
                       relay ? &*relay : nullptr);
        if (r.timed_out) {
            ::kill(-child, SIGKILL);
            ::kill(child, SIGKILL);
            ::waitpid(child, nullptr, 0);
            return 124;
        }
        if (r.signal) {
            // -t, and sbox was told to end: the terminal hangs up under the command (SIGHUP to its session),
            // as when a terminal window closes. The command is still reaped here: left to a host process, its
            // zombie would hold up the sandbox's end. One that ignores the hangup is killed after 5 s.
            relay.reset();
            struct pollfd p = {child_fd.get(), POLLIN, 0};
            int n;
            while ((n = ::poll(&p, 1, 5000)) == -1 && errno == EINTR) {
            }
            if (n != 1) {
                ::kill(-child, SIGKILL);
                ::kill(child, SIGKILL);
            }
            while (::waitpid(child, nullptr, 0) == -1 && errno == EINTR) {
            }
            return 128 + r.signal;
        }
    }
    auto failure = read_launch_failure(errors.read.get());
    int status = request.detach ? 0 : exit_status_of(r.status);
    if (failure && (request.detach || failure->exit_status == status))
        throw CommandFailed(failure->exit_status, failure->message);
    return status;
}

std::vector<SandboxState> Engine::list() const {
    return store_.list();
}

std::optional<SandboxState> Engine::find(std::string_view id_or_name) const {
    return store_.find(id_or_name);
}

void Engine::sweep_store_cgroups() const {
    auto known = [&](std::string_view id) {
        struct stat st;
        return ::stat(store_.sandbox_dir(id).c_str(), &st) == 0;
    };
    try {
        if (auto parent = cgroup_parent(store_.paths().data)) sweep_cgroups(*parent, known);
    } catch (const Error&) {
        // SBOX_CGROUP names a hierarchy that is not there: nothing of it to sweep
    }
    for (const auto& parent : limit_cgroup_parents(store_.paths().data))
        sweep_cgroups(parent, known);
}

void Engine::kill(std::string_view id_or_name) {
    auto state = store_.find(id_or_name);
    if (!state) throw Error(Error::Kind::not_found, "no sandbox '" + std::string(id_or_name) + "'");
    std::string id = state->config.id;
    for (;;) {
        // The monitor first, so it does not race us to record or remove anything; then the supervisor,
        // whose end takes every process of the sandbox, and with the last of them its mounts.
        // A paused sandbox is thawed first (end_supervisor).
        Cgroup cgroup = cgroup_of(*state);
        if (state->runtime) {
            if (Fd m = open_pidfd(state->runtime->monitor)) end_monitor(m.get());
            if (Fd s = open_pidfd(state->runtime->supervisor)) end_supervisor(s.get(), cgroup);
            // The network stack dies with the monitor (its parent); this waits until it has.
            if (state->runtime->network)
                if (Fd n = open_pidfd(state->runtime->network->stack)) kill_and_wait(n.get());
        } else if (state->status == Status::creating && state->config.creator.pid != ::getpid()) {
            if (Fd c = open_pidfd(state->config.creator)) kill_and_wait(c.get());
        }
        std::string trash;
        {
            auto held = store_.lock();
            auto now = store_.load(id);
            if (!now) return; // removed by its monitor meanwhile
            // A sandbox that was still being created may have been recorded since we looked: end it too.
            if (now->runtime && (alive(now->runtime->monitor) || alive(now->runtime->supervisor))) {
                state = std::move(now);
                continue;
            }
            trash = store_.detach(id);
            auto all = cgroups_of(*state);
            for (const auto& c : all)
                remove_cgroup(c);
            sweep_store_cgroups();
        }
        store_.purge(trash, state->config);
        store_.sweep(); // and whatever sbox processes killed halfway left behind
        return;
    }
}

} // namespace sbox::local

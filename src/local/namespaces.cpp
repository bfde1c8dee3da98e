#include "local/namespaces.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace sbox::local {

const unsigned long kSandboxNamespaces =
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;

namespace {

std::optional<std::uint64_t> start_time_of(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    char buf[1024];
    ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    if (n <= 0) return std::nullopt;
    buf[n] = '\0';
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    const char* p = std::strrchr(buf, ')');
    if (!p) return std::nullopt;
    char state = 0;
    unsigned long long start = 0;
    // Fields 3 (state) .. 22 (starttime): skip 18 fields between them.
    if (std::sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                    &state, &start) != 2)
        return std::nullopt;
    if (state == 'Z' || state == 'X') return std::nullopt;
    return start;
}

} // namespace

std::optional<ProcessId> identify(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    auto start = start_time_of(pid);
    if (!start) return std::nullopt;
    return ProcessId{pid, *start};
}

bool alive(const ProcessId& id) {
    auto now = identify(id.pid);
    return now && now->start_time == id.start_time;
}

Fd open_pidfd(const ProcessId& id) {
    if (id.pid <= 0) return {};
    Fd fd(static_cast<int>(::syscall(SYS_pidfd_open, id.pid, 0)));
    if (!fd) return {};
    if (!alive(id)) return {};
    return fd;
}

void kill_and_wait(int pidfd) {
    if (::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0) == -1 && errno != ESRCH)
        throw_errno("pidfd_send_signal(SIGKILL)");
    struct pollfd p = {pidfd, POLLIN, 0};
    while (::poll(&p, 1, -1) == -1) {
        if (errno != EINTR) throw_errno("poll(pidfd)");
    }
}

pid_t clone_into_namespaces(unsigned long flags, Fd& pidfd, int cgroup_fd) {
    int fd = -1;
    struct clone_args args = {};
    args.flags = flags | CLONE_PIDFD;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = static_cast<std::uint64_t>(cgroup_fd);
    }
    args.pidfd = reinterpret_cast<std::uint64_t>(&fd);
    args.exit_signal = SIGCHLD;
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == -1) {
        int err = errno;
        if (err == EPERM || err == ENOSPC || err == EUSERS)
            throw Error(
                Error::Kind::unavailable,
                std::string("cannot create namespaces: ") + std::strerror(err) +
                    " (user namespaces may be disabled: check /proc/sys/user/max_user_namespaces and "
                    "kernel.apparmor_restrict_unprivileged_userns; they are also refused inside a chroot)");
        throw_errno("clone3", err);
    }
    if (pid > 0) pidfd.reset(fd);
    return static_cast<pid_t>(pid);
}

void join_namespaces(int pidfd, unsigned long except) {
    if (::setns(pidfd, static_cast<int>(kSandboxNamespaces & ~except)) == -1) {
        int err = errno;
        if (err == ESRCH) throw Error(Error::Kind::conflict, "the sandbox's supervisor has exited");
        throw_errno("setns into the sandbox's namespaces", err);
    }
}

pid_t spawn_in_sandbox(int supervisor_pidfd, unsigned long except, int cgroup_dir) {
    Pipe report;
    pid_t helper = ::fork();
    if (helper == -1) throw_errno("fork");
    if (helper == 0) {
        report.read.reset();
        // Only the helper's one thread is here: it may join a user namespace, which a threaded process may
        // not.
        pid_t child = -1;
        int err = 0;
        if (::setns(supervisor_pidfd, static_cast<int>(kSandboxNamespaces & ~except)) == -1) {
            err = errno;
        } else {
            struct clone_args args = {};
            args.flags = CLONE_PARENT | (cgroup_dir >= 0 ? CLONE_INTO_CGROUP : 0);
            args.cgroup = static_cast<std::uint64_t>(cgroup_dir >= 0 ? cgroup_dir : 0);
            // clone3 wants no exit signal with CLONE_PARENT: the child takes the helper's, SIGCHLD.
            args.exit_signal = 0;
            child = static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
            if (child == 0) return 0;
            if (child == -1) err = errno;
        }
        std::int32_t reply[2] = {child, err};
        ::_exit(::write(report.write.get(), reply, sizeof reply) == sizeof reply ? 0 : 1);
    }
    report.write.reset();
    std::int32_t reply[2] = {-1, EIO};
    ssize_t n;
    while ((n = ::read(report.read.get(), reply, sizeof reply)) == -1 && errno == EINTR) {
    }
    while (::waitpid(helper, nullptr, 0) == -1 && errno == EINTR) {
    }
    if (n != sizeof reply) throw Error(Error::Kind::internal, "the helper that starts the command failed");
    if (reply[0] <= 0) {
        if (reply[1] == ESRCH) throw Error(Error::Kind::conflict, "the sandbox's supervisor has exited");
        throw_errno(cgroup_dir >= 0 ? "join the sandbox and clone3 into its cgroup"
                                    : "join the sandbox and clone",
                    reply[1]);
    }
    return reply[0];
}

} // namespace sbox::local

#include <sys/mount.h>
#include <sys/stat.h>

namespace sbox::local {

void leave_chroot() {
    check(::unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)");
    // Opened after unshare: a descriptor opened before would name the mount of the old namespace.
    Fd chroot_root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!chroot_root) throw_errno("open /");
    check(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "make mounts private");
    // Climb out of the chroot to this mount namespace's real root...
    check(::chdir("/"), "chdir /");
    check(::chroot("/proc"), "chroot /proc");
    for (int i = 0; i < 64; ++i)
        check(::chdir(".."), "chdir ..");
    check(::chroot("."), "chroot .");
    // ...then make the chroot's directory the namespace's root.
    check(::fchdir(chroot_root.get()), "fchdir to the chroot");
    check(::syscall(SYS_pivot_root, ".", "."), "pivot_root into the chroot's root");
    check(::umount2(".", MNT_DETACH), "detach the host's root");
    check(::chdir("/"), "chdir /");
}

} // namespace sbox::local

#include "local/supervisor.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "local/network.hpp"
#include "local/system.hpp"
#include "local/trace.hpp"

namespace sbox::local {

namespace {

constexpr size_t kMaxFds = 64;

void close_all_but(std::vector<int> keep) {
    std::sort(keep.begin(), keep.end());
    unsigned next = 3;
    for (int fd : keep) {
        if (fd < 3) continue;
        if (static_cast<unsigned>(fd) > next) ::syscall(SYS_close_range, next, fd - 1, 0);
        next = static_cast<unsigned>(fd) + 1;
    }
    ::syscall(SYS_close_range, next, ~0U, 0);
}

std::int64_t now_ms() {
    struct timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

} // namespace

void send_text(int sock, const std::string& text) {
    (void)::send(sock, text.data(), text.size(), MSG_NOSIGNAL);
}

std::string receive_text(int sock) {
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(sock, buf, sizeof buf, 0)) == -1 && errno == EINTR) {
    }
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

void send_go(int sock, const std::vector<int>& fds) {
    char byte = 'g';
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    if (!fds.empty()) {
        if (fds.size() > kMaxFds) throw Error(Error::Kind::internal, "too many lower layers");
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    if (::sendmsg(sock, &msg, MSG_NOSIGNAL) == -1) throw_errno("send to the supervisor");
}

std::vector<int> receive_go(int sock) {
    char byte = 0;
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n != 1 || byte != 'g')
        throw Error(Error::Kind::internal, "the sbox process that started the sandbox went away");
    std::vector<int> fds;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        fds.resize(count);
        std::memcpy(fds.data(), CMSG_DATA(c), sizeof(int) * count);
    }
    return fds;
}

void supervisor_main(const SupervisorPlan& plan, int sync, int keep) {
    try {
        // Not dumpable: no core dumps and no ptrace of PID 1 from inside, whatever the credentials. A
        // rootless sandbox's owner joins it (sbox exec) only while it is dumpable, as the kernel checks
        // ptrace access for setns; there PID 1 has no more privilege than the sandbox's own root.
        if (!plan.owner_must_join) check(::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)");
        ::prctl(PR_SET_NAME, "sbox-supervisor", 0, 0, 0);
        if (plan.die_with_parent)
            check(::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)");
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        check(::sigprocmask(SIG_SETMASK, &chld, nullptr), "sigprocmask");
        check(::setsid(), "setsid");

        receive_go(sync); // the id maps are written
        // Opened while this process still has its host credentials, which can traverse sbox's private
        // state directories; the sandbox's root cannot, and never needs to.
        Fd sandbox_dir(::open(plan.sandbox_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!sandbox_dir) throw_errno("open " + plan.sandbox_dir);
        check(::setresgid(0, 0, 0), "setresgid(0)");
        check(::setresuid(0, 0, 0), "setresuid(0)");
        if (plan.idmap.setgroups) check(::setgroups(0, nullptr), "setgroups");
        if (plan.die_with_parent) {
            // Taking the sandbox's host ids cleared the parent-death signal: set it again, and end now if
            // the parent died in between (its end of the socket pair is closed then).
            check(::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)");
            struct pollfd peer = {sync, 0, 0};
            if (::poll(&peer, 1, 0) == 1 && (peer.revents & POLLHUP)) ::_exit(1);
        }

        trace("supervisor: credentials set");
        Fd layers = build_rootfs(
            plan.rootfs, sandbox_dir.get(),
            [&] {
                std::vector<Fd> lowers;
                for (int fd : receive_go(sync))
                    lowers.emplace_back(fd);
                return lowers;
            },
            plan.idmap);
        sandbox_dir.reset();
        check(::sethostname(plan.rootfs.hostname.data(), plan.rootfs.hostname.size()), "sethostname");
        bring_up_loopback();
        check(::dup3(layers.get(), kLayersFd, O_CLOEXEC), "dup3 the layers' directory");
        layers.reset();
        close_all_but({sync, keep, kLayersFd});
    } catch (const std::exception& e) {
        send_text(sync, std::string("error\t") + e.what());
        ::_exit(1);
    }
    trace("supervisor: ready");
    send_text(sync, "ready");
    // With a command, the end of the conversation tells its starter the command is over, so the starter
    // removes the sandbox's records while the kernel is still tearing the namespaces down.
    if (!plan.command) ::close(sync);

    pid_t command = 0;
    if (plan.command && plan.network && receive_text(sync) != "network") ::_exit(125); // the starter failed
    if (plan.command) {
        command = ::fork();
        if (command == -1) ::_exit(125);
        if (command == 0) {
            if (plan.command->tty) {
                // The command's pty goes to the sbox process over this conversation, before "ended".
                LaunchSpec spec = *plan.command;
                spec.tty_socket = sync;
                launch(spec);
            }
            launch(*plan.command);
        }
        trace("supervisor: command started");
        ::close(keep);
    }
    // PID 1 keeps no terminal or pipe of the caller open: only the command holds those.
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < (tracing() ? 2 : 3) && null >= 0; ++fd)
        ::dup2(null, fd);

    std::int64_t deadline = plan.lifetime ? now_ms() + plan.lifetime->count() : 0;
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    for (;;) {
        // Reap every child and orphan; the command's end ends the sandbox with its status.
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == command) {
                trace("supervisor: command ended");
                send_text(sync, "ended");
                ::_exit(exit_status_of(status));
            }
        }
        if (deadline) {
            std::int64_t left = deadline - now_ms();
            if (left <= 0) ::_exit(0); // the lifetime is over; the kernel ends every process with PID 1
            struct timespec ts = {left / 1000, (left % 1000) * 1000000};
            ::sigtimedwait(&chld, nullptr, &ts);
        } else {
            ::sigwaitinfo(&chld, nullptr);
        }
    }
}

} // namespace sbox::local

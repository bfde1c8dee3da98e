#include "local/child.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "local/namespaces.hpp"

namespace sbox::local {

namespace {

// The report's first line: "ok", or the Error's kind as a number; the rest is the result or the message.
void report(int fd, const std::string& head, const std::string& text) {
    (void)write_all(fd, head + "\n" + text);
}

void close_all_but(std::vector<int> keep) {
    std::sort(keep.begin(), keep.end());
    unsigned next = 3;
    for (int fd : keep) {
        if (fd < 3 || static_cast<unsigned>(fd) < next) continue;
        if (static_cast<unsigned>(fd) > next) ::syscall(SYS_close_range, next, fd - 1, 0);
        next = static_cast<unsigned>(fd) + 1;
    }
    ::syscall(SYS_close_range, next, ~0U, 0);
}

} // namespace

Child::Child(const std::function<std::string()>& body, std::vector<int> keep, const IdMap* userns) {
    int fds[2];
    check(::pipe2(fds, O_CLOEXEC), "pipe2");
    Fd read_end(fds[0]), write_end(fds[1]);
    // The user namespace handshake: the child says "unshared", the parent writes its maps and says "mapped".
    Fd parent_sync, child_sync;
    if (userns) {
        int pair[2];
        check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), "socketpair");
        parent_sync.reset(pair[0]);
        child_sync.reset(pair[1]);
    }
    pid_ = ::fork();
    if (pid_ == -1) throw_errno("fork");
    if (pid_ == 0) {
        read_end.reset();
        parent_sync.reset();
        keep.push_back(write_end.get());
        if (userns) keep.push_back(child_sync.get());
        close_all_but(keep);
        int fd = write_end.get();
        try {
            if (userns) {
                char c = 'u';
                if (::unshare(CLONE_NEWUSER) == -1) {
                    // Refused even to root inside a chroot: leave it (this process only), as start_sandbox
                    // does, and try again.
                    if (errno != EPERM || ::geteuid() != 0) throw_errno("unshare(CLONE_NEWUSER)");
                    leave_chroot();
                    check(::unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)");
                }
                if (::write(child_sync.get(), &c, 1) != 1 || ::read(child_sync.get(), &c, 1) != 1 || c != 'm')
                    throw Error(Error::Kind::internal,
                                "the user namespace of a helper process was not mapped");
                child_sync.reset();
                check(::setresgid(0, 0, 0), "setresgid(0)");
                check(::setresuid(0, 0, 0), "setresuid(0)");
            }
            std::string result = body();
            report(fd, "ok", result);
            ::_exit(0);
        } catch (const Error& e) {
            report(fd, std::to_string(static_cast<int>(e.kind())), e.what());
        } catch (const std::invalid_argument& e) {
            report(fd, std::to_string(static_cast<int>(Error::Kind::invalid)), e.what());
        } catch (const std::exception& e) {
            report(fd, std::to_string(static_cast<int>(Error::Kind::internal)), e.what());
        }
        ::_exit(1);
    }
    report_ = std::move(read_end);
    if (userns) {
        child_sync.reset();
        char c = 0;
        if (::read(parent_sync.get(), &c, 1) == 1 && c == 'u') {
            write_idmap(pid_, *userns); // on failure the destructor kills the child
            c = 'm';
            if (::write(parent_sync.get(), &c, 1) != 1) throw_errno("map a helper's user namespace");
        }
        // A child that died before unsharing reports why through wait().
    }
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), report_(std::move(other.report_)) {}

Child::~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) == -1 && errno == EINTR) {
    }
}

std::string Child::wait() {
    std::string text;
    int err = read_to_end(report_.get(), text);
    report_.reset();
    int status = 0;
    while (::waitpid(pid_, &status, 0) == -1) {
        if (errno != EINTR) throw_errno("waitpid");
    }
    pid_ = -1;
    if (err != 0) throw_errno("read a child's report", err);
    auto newline = text.find('\n');
    std::string head = text.substr(0, newline);
    std::string body = newline == std::string::npos ? std::string() : text.substr(newline + 1);
    if (head == "ok" && WIFEXITED(status) && WEXITSTATUS(status) == 0) return body;
    if (!head.empty() && head != "ok") {
        int kind = std::atoi(head.c_str());
        if (kind < 0 || kind > static_cast<int>(Error::Kind::internal))
            kind = static_cast<int>(Error::Kind::internal);
        throw Error(static_cast<Error::Kind>(kind), body);
    }
    if (WIFSIGNALED(status))
        throw Error(Error::Kind::internal,
                    std::string("a helper process was killed by signal ") + ::strsignal(WTERMSIG(status)));
    throw Error(Error::Kind::internal, "a helper process ended without reporting (status " +
                                           std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                                           ")");
}

} // namespace sbox::local

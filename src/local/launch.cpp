#include "local/launch.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "local/pty.hpp"
#include "local/seccomp.hpp"
#include "local/security.hpp"
#include "local/system.hpp"
#include "local/user.hpp"

extern char** environ;

namespace sbox::local {

namespace {

[[noreturn]] void fail(int fd, int status, const std::string& message) {
    std::string record = std::to_string(status) + "\t" + message;
    (void)write_all(fd, record);
    ::_exit(status);
}

std::string read_or_empty(const char* path) {
    try {
        return read_file(path);
    } catch (const Error&) {
        return {};
    }
}

void reset_signals() {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        ::signal(sig, SIG_DFL);
    }
}

void redirect(int target, const char* path, int flags) {
    int fd = ::open(path, flags | O_CLOEXEC);
    if (fd == -1) throw_errno(std::string("open ") + path);
    if (::dup2(fd, target) == -1) throw_errno("dup2");
    ::close(fd);
}

// The user's login shell in the sandbox: passwd's, else /bin/bash, else /bin/sh (as `docker exec` users reach
// for).
std::string login_shell(uid_t uid) {
    std::string own = passwd_shell(read_or_empty("/etc/passwd"), uid);
    for (const std::string& shell : {own, std::string("/bin/bash"), std::string("/bin/sh")})
        if (!shell.empty() && ::access(shell.c_str(), X_OK) == 0) return shell;
    return "/bin/sh"; // its exec fails and says so
}

bool has_key(const std::vector<std::string>& env, std::string_view key) {
    for (const auto& kv : env)
        if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0 && kv[key.size()] == '=')
            return true;
    return false;
}

} // namespace

User become_user(const std::string& spec, bool setgroups) {
    User user;
    // Root, the default, needs no lookup: its home is /root whatever passwd says about it.
    if (spec.empty())
        user = User{0, 0, {0}, "root", "/root"};
    else
        user = resolve_user(spec, read_or_empty("/etc/passwd"), read_or_empty("/etc/group"));
    restrict_bounding_set();
    if (setgroups) {
        if (::setgroups(user.groups.size(), user.groups.data()) == -1) throw_errno("setgroups");
    }
    if (::setresgid(user.gid, user.gid, user.gid) == -1) {
        if (errno == EINVAL)
            throw std::invalid_argument("group " + std::to_string(user.gid) +
                                        " is not mapped in this sandbox");
        throw_errno("setresgid");
    }
    if (::setresuid(user.uid, user.uid, user.uid) == -1) {
        if (errno == EINVAL)
            throw std::invalid_argument("user " + std::to_string(user.uid) +
                                        " is not mapped in this sandbox (a rootless sandbox without "
                                        "/etc/subuid ranges has only root)");
        throw_errno("setresuid");
    }
    restrict_capabilities(user.uid);
    return user;
}

void launch(const LaunchSpec& spec) {
    int efd = spec.error_fd;
    User user;
    try {
        reset_signals();
        if (::setsid() == -1) throw_errno("setsid");
        if (spec.detached) {
            redirect(0, "/dev/null", O_RDONLY);
            redirect(1, "/dev/null", O_WRONLY);
            redirect(2, "/dev/null", O_WRONLY);
        } else {
            if (!spec.stdin_open) redirect(0, "/dev/null", O_RDONLY);
            if (spec.stdout_fd >= 0 && spec.stdout_fd != 1 && ::dup2(spec.stdout_fd, 1) == -1)
                throw_errno("dup2 onto stdout");
            if (spec.stderr_fd >= 0 && spec.stderr_fd != 2 && ::dup2(spec.stderr_fd, 2) == -1)
                throw_errno("dup2 onto stderr");
        }
        if (spec.max_processes) {
            // The floor under the pids controller, and the default cap where there is no cgroup: the kernel
            // counts a user's processes per user namespace, and root inside has no CAP_SYS_RESOURCE to raise
            // it.
            struct rlimit limit = {spec.max_processes, spec.max_processes};
            check(::setrlimit(RLIMIT_NPROC, &limit), "setrlimit(RLIMIT_NPROC)");
        }
        try {
            user = become_user(spec.user, spec.setgroups);
        } catch (const std::invalid_argument& e) {
            fail(efd, 126, e.what());
        }
        if (spec.tty) {
            // Made with the user's credentials, so the terminal is the user's (and devpts's tty group's).
            Fd master = open_sandbox_pty(spec.tty_size);
            send_pty_master(spec.tty_socket, master.get());
        }
        std::string cwd = spec.cwd.empty() ? user.home : spec.cwd;
        if (::chdir(cwd.c_str()) == -1) {
            if (!spec.cwd.empty())
                fail(efd, 126, "cannot change to directory " + cwd + ": " + std::strerror(errno));
            if (::chdir("/") == -1) throw_errno("chdir /");
        }
        // Every descriptor but 0, 1 and 2 closes on exec (the error pipe among them).
        if (::syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) == -1) throw_errno("close_range");
    } catch (const std::exception& e) {
        fail(efd, 125, std::string("cannot start the command: ") + e.what());
    }

    std::vector<std::string> env = spec.env;
    if (!has_key(env, "HOME")) env.push_back("HOME=" + user.home);
    std::vector<char*> envp, argv;
    for (auto& kv : env)
        envp.push_back(kv.data());
    envp.push_back(nullptr);
    std::string shell, shell_arg0;
    if (spec.login_shell) {
        // A login shell, as login(1) starts it: argv[0] is its name with a leading '-'.
        shell = login_shell(user.uid);
        shell_arg0 = "-" + shell.substr(shell.rfind('/') + 1);
        argv.push_back(shell_arg0.data());
    } else {
        for (const auto& a : spec.argv)
            argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    if (argv.empty() || argv[0] == nullptr || argv[0][0] == '\0') fail(efd, 127, "no command given");
    // execvp searches the PATH of the current environment: make it the command's.
    environ = envp.data();
    // Last: from here on the command's own restrictions apply, and nothing of sbox's set-up needs a call the
    // filter denies.
    if (spec.seccomp) {
        try {
            install_seccomp_filter();
        } catch (const std::exception& e) {
            fail(efd, 125, std::string("cannot start the command: ") + e.what());
        }
    }
    if (spec.login_shell)
        ::execve(shell.c_str(), argv.data(), envp.data());
    else
        ::execvp(argv[0], argv.data());
    int err = errno;
    const std::string& cmd = spec.login_shell ? shell : spec.argv[0];
    if (err == ENOENT)
        fail(efd, 127,
             cmd.find('/') == std::string::npos ? cmd + ": command not found"
                                                : cmd + ": no such file or directory");
    fail(efd, 126, cmd + ": cannot execute: " + std::strerror(err));
}

std::optional<LaunchFailure> read_launch_failure(int fd) {
    std::string record = read_all(fd);
    if (record.empty()) return std::nullopt;
    LaunchFailure f;
    auto tab = record.find('\t');
    f.exit_status = std::atoi(record.substr(0, tab).c_str());
    f.message = tab == std::string::npos ? record : record.substr(tab + 1);
    return f;
}

int exit_status_of(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
    return 125;
}

} // namespace sbox::local

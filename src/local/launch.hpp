// Starting a command inside a sandbox, identically for the first command of `run` (a child of the
// supervisor) and for every later `exec` (a child of the sbox process that joined the namespaces).
// launch() runs in the forked child, already inside every namespace: it takes the user's credentials,
// applies the restrictions of security.hpp and execs. A failure before exec travels back through
// `error_fd` (close-on-exec, so a successful exec closes it with nothing written).
#pragma once

#include <cstdint>
#include <sys/ioctl.h>

#include <optional>
#include <string>
#include <vector>

#include "local/user.hpp"

namespace sbox::local {

struct LaunchSpec {
    std::vector<std::string> argv;
    std::vector<std::string> env;    // K=V; HOME is added from passwd when absent
    std::string cwd;                 // empty: the user's home directory, or /
    std::string user;                // empty: root
    bool stdin_open = false;         // false: stdin is /dev/null
    bool detached = false;           // stdin, stdout and stderr are /dev/null
    bool setgroups = true;           // false where the user namespace denies setgroups(2)
    bool seccomp = true;             // install the system call filter (seccomp.hpp) last before exec
    std::uint64_t max_processes = 0; // RLIMIT_NPROC for every user of the sandbox (0: unchanged)
    int error_fd = -1;
    // -t: stdin, stdout and stderr are a new pty of the sandbox's devpts (the controlling terminal), of
    // `tty_size` when known; its master is sent over `tty_socket` to the sbox process that relays it
    // (pty.hpp).
    bool tty = false;
    int tty_socket = -1;
    std::optional<struct winsize> tty_size;
    // argv is ignored: the user's login shell runs, as a login shell (argv[0] "-bash").
    bool login_shell = false;
    // Put on the command's stdout and stderr (-1: left as they are).
    int stdout_fd = -1;
    int stderr_fd = -1;
};

[[noreturn]] void launch(const LaunchSpec& spec);

// Takes the credentials of `user` (empty: root; NAME, UID, NAME:GROUP or UID:GID), resolved against the
// sandbox's own passwd and group (the caller is already inside the sandbox's namespaces), under the
// restrictions of security.hpp. Throws std::invalid_argument when the user does not exist or is not mapped
// in the sandbox, Error when a syscall fails. `setgroups`: false where the user namespace denies it.
User become_user(const std::string& user, bool setgroups);

struct LaunchFailure {
    int exit_status = 125; // 126 cannot execute, 127 not found, 125 sbox could not set up the process
    std::string message;
};
// What the child wrote to the error pipe before dying, or nullopt when it exec'd (EOF, nothing written).
std::optional<LaunchFailure> read_launch_failure(int fd);

// A wait(2) status as a shell would report it: the exit code, or 128+N for signal N.
int exit_status_of(int wait_status);

} // namespace sbox::local

// pause and resume: every process of a sandbox stopped with SIGSTOP and continued with SIGCONT, sent from
// inside the sandbox's PID namespace with kill(-1), which reaches every process there but the sender and
// PID 1 (sbox's supervisor, which runs nothing of the user's). The kernel makes kill(-1) race-free against
// fork: a process forking while the signal is delivered restarts the fork after it stops, so no new child
// escapes. The stop is then checked in /proc until every process shows it.
//
// (A cgroup freezer would also stop the supervisor and spare the signal's visibility to the processes'
// parents; the signal method works everywhere, rootless included. One difference to know: resume continues
// every process, also one the user had stopped on purpose.)
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>

#include "local/child.hpp"
#include "local/engine.hpp"
#include "local/namespaces.hpp"

namespace sbox::local {

namespace {

// The processes of this PID namespace that are not stopped yet (state other than T or t, zombies aside),
// leaving out PID 1 and the caller.
int running_processes() {
    int count = 0;
    DIR* proc = ::opendir("/proc");
    if (!proc) throw_errno("open the sandbox's /proc");
    pid_t self = ::getpid();
    while (struct dirent* e = ::readdir(proc)) {
        pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
        if (pid <= 1 || pid == self) continue;
        std::string stat;
        try {
            stat = read_file("/proc/" + std::string(e->d_name) + "/stat");
        } catch (const Error&) {
            continue; // gone meanwhile
        }
        auto paren = stat.rfind(')');
        if (paren == std::string::npos || paren + 2 >= stat.size()) continue;
        char state = stat[paren + 2];
        if (state != 'T' && state != 't' && state != 'Z' && state != 'X') ++count;
    }
    ::closedir(proc);
    return count;
}

// Sends `sig` to every process of the sandbox from a process inside its PID namespace; with SIGSTOP,
// until all of them are stopped.
void signal_all(const SandboxState& state, int sig) {
    Fd supervisor = open_pidfd(state.runtime->supervisor);
    if (!supervisor) throw Error(Error::Kind::conflict, "sandbox " + state.config.id + " is not running");
    int pidfd = supervisor.get();
    Child helper(
        [&]() -> std::string {
            join_namespaces(pidfd);
            // setns leaves this process in the host's PID namespace; its child is born in the sandbox's.
            pid_t inside = ::fork();
            if (inside == -1) throw_errno("fork");
            if (inside == 0) {
                for (int attempt = 0; attempt < 200; ++attempt) {
                    if (::kill(-1, sig) == -1 && errno != ESRCH) ::_exit(2);
                    if (sig != SIGSTOP || running_processes() == 0) ::_exit(0);
                    struct timespec pause = {0, 5 * 1000 * 1000};
                    ::nanosleep(&pause, nullptr);
                }
                ::_exit(3);
            }
            int status = 0;
            while (::waitpid(inside, &status, 0) == -1 && errno == EINTR) {
            }
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                throw Error(Error::Kind::internal, std::string("could not ") +
                                                       (sig == SIGSTOP ? "stop" : "continue") +
                                                       " every process of the sandbox");
            return std::string();
        },
        {pidfd});
    helper.wait();
}

} // namespace

void Engine::pause(std::string_view id_or_name) {
    auto state = store_.find(id_or_name);
    if (!state) throw Error(Error::Kind::not_found, "no sandbox '" + std::string(id_or_name) + "'");
    if (state->status == Status::paused)
        throw Error(Error::Kind::conflict, "sandbox " + state->config.id + " is already paused");
    if (state->status != Status::running)
        throw Error(Error::Kind::conflict, "sandbox " + state->config.id + " is not running (" +
                                               std::string(to_string(state->status)) + ")");
    {
        auto held = store_.lock();
        store_.set_paused(state->config.id, true); // first, so no exec starts a process that escapes
    }
    try {
        signal_all(*state, SIGSTOP);
    } catch (...) {
        try {
            signal_all(*state, SIGCONT);
        } catch (...) {
        }
        auto held = store_.lock();
        store_.set_paused(state->config.id, false);
        throw;
    }
}

void Engine::resume(std::string_view id_or_name) {
    auto state = store_.find(id_or_name);
    if (!state) throw Error(Error::Kind::not_found, "no sandbox '" + std::string(id_or_name) + "'");
    if (state->status != Status::paused)
        throw Error(Error::Kind::conflict, "sandbox " + state->config.id + " is not paused (" +
                                               std::string(to_string(state->status)) + ")");
    signal_all(*state, SIGCONT);
    auto held = store_.lock();
    store_.set_paused(state->config.id, false);
}

} // namespace sbox::local

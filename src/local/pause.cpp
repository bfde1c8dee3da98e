// pause and resume: every process of a sandbox stopped and continued.
//
// With a cgroup (cgroups.hpp: root's sandboxes made by create or run -d), its freezer: the kernel stops every
// process of the cgroup, supervisor included, without the processes or their parents noticing, and a
// process forked meanwhile is frozen too.
//
// Without one (rootless sandboxes, machines without a freezer, and foreground `run`, whose one-shot
// sandbox would pay for a cgroup on every run), signals: SIGSTOP sent from inside the sandbox's PID
// namespace with kill(-1), which reaches every process there but the sender and PID 1 (sbox's supervisor,
// which runs nothing of the user's). The kernel makes kill(-1) race-free against fork: a process forking
// while the signal is delivered restarts the fork after it stops, so no new child escapes. The stop is then
// checked in /proc until every process shows it. Known difference: resume sends SIGCONT to every process,
// so one the user had stopped on purpose is continued too; and a parent inside the sandbox may see its
// children stop and continue (waitpid with WUNTRACED, SIGCHLD).
//
// The paused mark is written before the processes are stopped and removed after they are continued, under
// the store's lock: exec refuses a sandbox marked paused, and a crash in between leaves a sandbox that shows
// as paused, which resume repairs.
#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>

#include "local/child.hpp"
#include "local/engine.hpp"
#include "local/launch.hpp"
#include "local/namespaces.hpp"

namespace sbox::local {

namespace {

// How long stopping may take: a process stops only once it runs, and on a loaded machine one waiting for the
// disk (state D) may take seconds to.
constexpr int kStopSeconds = 10;

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

// Sends `sig` to every process of the sandbox from a process inside its PID namespace, with the credentials
// of the sandbox's root; with SIGSTOP, until all of them are stopped.
void signal_all(const SandboxState& state, int sig) {
    Fd supervisor = open_pidfd(state.runtime->supervisor);
    if (!supervisor) throw Error(Error::Kind::conflict, "sandbox " + state.config.id + " is not running");
    int pidfd = supervisor.get();
    bool setgroups = state.config.idmap.setgroups;
    Child helper(
        [&]() -> std::string {
            join_namespaces(pidfd);
            // setns leaves this process in the host's PID namespace; its child is born in the sandbox's.
            pid_t inside = ::fork();
            if (inside == -1) throw_errno("fork");
            if (inside == 0) {
                try {
                    become_user("", setgroups);
                    // Nothing inside may ptrace a process born of sbox's memory.
                    check(::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)");
                    struct timespec start {};
                    ::clock_gettime(CLOCK_MONOTONIC, &start);
                    for (;;) {
                        if (::kill(-1, sig) == -1 && errno != ESRCH) ::_exit(2);
                        if (sig != SIGSTOP || running_processes() == 0) ::_exit(0);
                        struct timespec now {};
                        ::clock_gettime(CLOCK_MONOTONIC, &now);
                        if (now.tv_sec - start.tv_sec >= kStopSeconds) break;
                        struct timespec pause = {0, 5 * 1000 * 1000};
                        ::nanosleep(&pause, nullptr);
                    }
                } catch (...) {
                    ::_exit(2);
                }
                ::_exit(3);
            }
            int status = 0;
            while (::waitpid(inside, &status, 0) == -1 && errno == EINTR) {
            }
            if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
                throw Error(Error::Kind::internal,
                            "could not stop every process of sandbox " + state.config.id +
                                " (one may be stuck in the kernel, or traced); they were continued");
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                throw Error(Error::Kind::internal, std::string("could not ") +
                                                       (sig == SIGSTOP ? "stop" : "continue") +
                                                       " the processes of sandbox " + state.config.id);
            return std::string();
        },
        {pidfd});
    helper.wait();
}

void stop(const SandboxState& state) {
    if (Cgroup cgroup = cgroup_of(state)) {
        cgroup.freeze();
        return;
    }
    try {
        signal_all(state, SIGSTOP);
    } catch (...) {
        try {
            signal_all(state, SIGCONT);
        } catch (...) {
        }
        throw;
    }
}

void cont(const SandboxState& state) {
    if (Cgroup cgroup = cgroup_of(state))
        cgroup.thaw();
    else
        signal_all(state, SIGCONT);
}

} // namespace

void Engine::pause(std::string_view id_or_name) {
    auto found = store_.find(id_or_name);
    if (!found) throw Error(Error::Kind::not_found, "no sandbox '" + std::string(id_or_name) + "'");
    auto held = store_.lock();
    auto state = store_.load(found->config.id); // as it is now that no other sbox changes it
    if (!state) throw Error(Error::Kind::not_found, "no sandbox '" + std::string(id_or_name) + "'");
    const std::string& id = state->config.id;
    if (state->status == Status::paused)
        throw Error(Error::Kind::conflict, "sandbox " + id + " is already paused");
    if (state->status != Status::running || !state->runtime)
        throw Error(Error::Kind::conflict,
                    "sandbox " + id + " is not running (" + std::string(to_string(state->status)) + ")");
    store_.set_paused(id, true); // first, so that no exec starts a process that escapes
    try {
        stop(*state);
    } catch (...) {
        store_.set_paused(id, false);
        throw;
    }
}

void Engine::resume(std::string_view id_or_name) {
    auto found = store_.find(id_or_name);
    if (!found) throw Error(Error::Kind::not_found, "no sandbox '" + std::string(id_or_name) + "'");
    auto held = store_.lock();
    auto state = store_.load(found->config.id);
    if (!state) throw Error(Error::Kind::not_found, "no sandbox '" + std::string(id_or_name) + "'");
    const std::string& id = state->config.id;
    if (state->status != Status::paused)
        throw Error(Error::Kind::conflict,
                    "sandbox " + id + " is not paused (" + std::string(to_string(state->status)) + ")");
    cont(*state);
    store_.set_paused(id, false);
}

} // namespace sbox::local

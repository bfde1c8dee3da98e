// Namespaces and process identity: creating a process in fresh namespaces (clone3), joining a running
// sandbox's namespaces through a pidfd (setns), and naming processes so a reused pid is never mistaken
// for a sandbox's supervisor.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

#include "local/system.hpp"

namespace sbox::local {

// Every namespace a sandbox gets: user, mount, PID, network, UTS, IPC and cgroup.
extern const unsigned long kSandboxNamespaces;

// A pid together with its start time (clock ticks since boot, /proc/PID/stat field 22): stable identity.
struct ProcessId {
    pid_t pid = 0;
    std::uint64_t start_time = 0;
};

// The identity of a live process, or nullopt when it does not exist (or is a zombie).
std::optional<ProcessId> identify(pid_t pid);
// Whether `id` still names the same, living process.
bool alive(const ProcessId& id);
// A pidfd for `id`, verified against the start time after opening (so the fd cannot name a newer process).
// Empty Fd when the process is gone.
Fd open_pidfd(const ProcessId& id);
// Sends SIGKILL through the pidfd and waits until the process has exited.
void kill_and_wait(int pidfd);

// clone3 with the given namespace flags; returns the child's pid in the parent (0 in the child) and the
// child's pidfd in `pidfd`. SIGCHLD is delivered on the child's exit. With `cgroup_fd` (a cgroup2
// directory), the child is born in that cgroup (CLONE_INTO_CGROUP), and a new cgroup namespace is rooted
// there.
pid_t clone_into_namespaces(unsigned long flags, Fd& pidfd, int cgroup_fd = -1);

// Joins every sandbox namespace of the process behind `pidfd`. The caller must be single-threaded;
// it stays in the caller's PID namespace, its children are born in the sandbox's.
// `except`: namespace flags to leave out (joined later, for example by a child: see Engine::exec).
void join_namespaces(int pidfd, unsigned long except = 0);

// fork(), but born in the sandbox's namespaces (all but `except`) and, with `cgroup_dir` >= 0, in that
// cgroup2 directory, while the caller stays where it is and may have threads: a forked helper joins the
// namespaces and clones the child as the caller's own (CLONE_PARENT), so the caller waits for it as for its
// fork. Returns 0 in the child. Costs one fork more than join_namespaces + fork.
pid_t spawn_in_sandbox(int supervisor_pidfd, unsigned long except, int cgroup_dir = -1);

} // namespace sbox::local

namespace sbox::local {
// The kernel refuses new user namespaces to a chrooted process (EPERM from clone3). Run as root inside a
// chroot (a build chroot, a rescue shell, a fresh-machine check), sbox moves itself into a private mount
// namespace whose root is the chroot's, so that it is no longer "chrooted". Root only.
void leave_chroot();
} // namespace sbox::local

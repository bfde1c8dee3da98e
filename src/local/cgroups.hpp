// Cgroups of sandboxes: every process of a sandbox in a cgroup of its own, for the freezer (pause and resume)
// now and for resource limits later.
//
// Where: cgroup v2 where this process may make cgroups (a delegated hierarchy; its cgroups have
// cgroup.freeze), else the cgroup v1 freezer hierarchy. v2 comes first, on hybrid machines too (v1
// controllers and a cgroup2 mount at /sys/fs/cgroup/unified), because a process can be born in a v2 cgroup
// (CLONE_INTO_CGROUP) while moving one there costs the kernel an RCU grace period (about 8 ms here, for
// every sandbox and every exec); and because a v2-frozen process still dies of SIGKILL.
// SBOX_CGROUP=v1|v2|none overrides the choice (tests, and troubleshooting). Root can always make them; an
// ordinary user only in a cgroup delegated to it, usually not (rootless sandboxes then pause with signals:
// see pause.cpp).
//
// A sandbox's cgroup is <hierarchy>/sbox/<store>-<id>: <store> is a hash of the store's data directory, so
// that sweeping one store's leftovers never takes the cgroup of another store's sandbox being set up.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "local/system.hpp"

namespace sbox::local {

enum class CgroupVersion { none = 0, v1 = 1, v2 = 2 };

// Where a store's sandboxes get their cgroups.
struct CgroupParent {
    CgroupVersion version = CgroupVersion::none;
    std::string dir;    // <hierarchy>/sbox, which exists
    std::string prefix; // "<store>-": the names of this store's cgroups start with it
};

// The place for the cgroups of the store whose data directory is `data_dir`, or nullopt when this process
// cannot make cgroups with a freezer (the hierarchy is detected once per process). Throws Error(unavailable)
// when SBOX_CGROUP asks for a hierarchy that is not usable.
std::optional<CgroupParent> cgroup_parent(std::string_view data_dir);

// One sandbox's cgroup (a directory of a v1 freezer or a v2 hierarchy). Empty: none.
class Cgroup {
  public:
    Cgroup() = default;
    Cgroup(CgroupVersion version, std::string path) : version_(version), path_(std::move(path)) {}
    // Makes the cgroup of sandbox `id`.
    static Cgroup create(const CgroupParent& parent, std::string_view id);

    explicit operator bool() const { return version_ != CgroupVersion::none && !path_.empty(); }
    CgroupVersion version() const { return version_; }
    const std::string& path() const { return path_; }

    // Moves process `pid` (and, as every child is born in its parent's cgroup, its descendants to come).
    void add(pid_t pid) const;
    // Its cgroup.procs, for join_cgroup() from a process that will have left the host's view of /sys.
    Fd open_procs() const;
    // Its directory, for CLONE_INTO_CGROUP (v2 only: see fork_into_cgroup).
    Fd open_dir() const;
    // Stops every process in it; returns once all of them are frozen. When they are not within a few seconds
    // (a process stuck in the kernel), thaws them again and throws.
    void freeze() const;
    void thaw() const;
    // Whether the kernel reports it frozen.
    bool frozen() const;
    // The processes in it (empty when it is gone).
    std::vector<pid_t> pids() const;
    // SIGKILL to every process in it (thawed first: a task frozen by the v1 freezer does not die before).
    void kill_all() const;
    // Thaws it and removes its directory, which must be empty (its processes have exited). False when it
    // is still there.
    bool remove() const;

  private:
    CgroupVersion version_ = CgroupVersion::none;
    std::string path_;
};

// In a freshly forked child, before it execs or forks: moves the caller into the cgroup whose cgroup.procs
// is open as `procs_fd` (see Cgroup::open_procs). Returns 0, or the errno of the failure. No-op for -1.
int join_cgroup(int procs_fd);

// fork(), with the child born in the v2 cgroup whose directory is open as `dir_fd` (clone3 with
// CLONE_INTO_CGROUP: no migration, no waiting for the kernel). Returns as fork() does; -1 with errno.
pid_t fork_into_cgroup(int dir_fd);

// Removes this store's cgroups whose sandbox is gone (`known(id)` is false), with any process still in them:
// what a crashed sbox left behind. Call under the store's lock, so that no sandbox is registered meanwhile.
void sweep_cgroups(const CgroupParent& parent, const std::function<bool(std::string_view id)>& known);

std::string_view to_string(CgroupVersion version);

// Resource limits enforced by cgroup controllers (memory, cpu, pids). Each controller is used where this
// machine has it: in the sandbox's own cgroup when that is v2 and the controller is enabled there (born in
// it: free), else in a cgroup of the controller's v1 hierarchy (<hierarchy>/sbox/<store>-<id>), which every
// process of the sandbox joins (a move the kernel makes wait for an RCU grace period: only sandboxes that
// ask for such a limit pay it).
struct CgroupLimits {
    std::optional<std::uint64_t> memory;     // bytes (memory.max / memory.limit_in_bytes)
    std::optional<std::uint64_t> cpu_millis; // thousandths of a CPU (cpu.max / cpu.cfs_quota_us)
    std::optional<std::uint64_t> pids;       // pids.max
};

// Makes and configures the cgroups that enforce `limits` for sandbox `id` and returns those outside `main`
// (the sandbox's own cgroup, possibly empty; a v2 `main` gets the limits its controllers allow). Throws
// Error(unavailable) naming why when a limit cannot be enforced here, after removing what it made.
std::vector<Cgroup> make_limit_cgroups(const CgroupLimits& limits, const Cgroup& main,
                                       std::string_view data_dir, std::string_view id);
// Whether `controller` is available in the v2 cgroup `main` (a pids limit there costs nothing).
bool v2_controller_enabled(const Cgroup& main, const char* controller);

// What a sandbox's cgroups report, for inspect; unset where no cgroup has the controller.
struct CgroupUsage {
    std::optional<std::uint64_t> memory_limit, memory_bytes, memory_peak, oom_kills;
    std::optional<std::uint64_t> cpu_millis, cpu_throttled_periods;
    std::optional<std::uint64_t> pids_limit, pids_current;
    std::vector<std::string> memory_where, cpu_where, pids_where; // the cgroup directories
};
CgroupUsage read_cgroup_usage(const std::vector<Cgroup>& cgroups);

// The sbox directories of the v1 hierarchies that hold limit cgroups (for sweeping a crashed sbox's).
std::vector<CgroupParent> limit_cgroup_parents(std::string_view data_dir);

} // namespace sbox::local

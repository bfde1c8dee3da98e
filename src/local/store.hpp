// The local engine's state: one directory per sandbox under the data directory (its settings and its
// writable layers) and one runtime record per running sandbox under the runtime directory (the pids of its
// supervisor and monitor). Every change happens under one file lock and lands by atomic rename, so a crashed
// sbox leaves either the old or the new state, never half of one; and since liveness is read from the
// processes themselves (pid + start time), a dead supervisor is never shown as running.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "local/cgroups.hpp"
#include "local/idmap.hpp"
#include "local/namespaces.hpp"
#include "local/network.hpp"
#include "local/system.hpp"

namespace sbox::local {

struct Paths {
    std::string data;    // persistent: settings and writable layers
    std::string runtime; // cleared on reboot: runtime records
};

// A sandbox's resource limits (unset: none, but for processes, which have a default cap).
struct Limits {
    std::optional<std::uint64_t> memory;     // bytes: cgroup memory controller
    std::optional<std::uint64_t> cpu_millis; // thousandths of a CPU: cgroup cpu controller
    std::optional<std::uint64_t> pids;       // asked for explicitly: cgroup pids controller, and RLIMIT_NPROC
    std::optional<std::uint64_t> disk;       // bytes: the writable layers live in a tmpfs of this size
};
// The cap on processes when none is asked for (podman's default): enforced by RLIMIT_NPROC for every user of
// the sandbox, and by the pids controller too where that costs nothing (a v2 cgroup the sandbox is born in).
constexpr std::uint64_t kDefaultPids = 2048;

// What a sandbox was created with. Written once, before anything is started.
struct SandboxConfig {
    std::string id;
    std::string name;
    std::string hostname;
    std::string image; // empty: the host's system directories; otherwise a root filesystem directory
    std::map<std::string, std::string> labels;
    std::vector<std::string> env; // K=V defaults for every exec
    std::int64_t created_at = 0;  // unix seconds
    std::optional<std::int64_t> lifetime_ms;
    std::optional<std::int64_t> expires_at;
    bool rootless = false;
    unsigned slot = 0; // root only: which host id range
    IdMap idmap;
    ProcessId creator;               // the sbox process that is creating it
    bool ephemeral = false;          // made by `run`: removed when its command ends
    std::string snapshot;            // the snapshot it was created from (id), empty for none
    std::vector<std::string> layers; // that snapshot's layers, top first: it and its parents (ids)
    Limits limits;
    bool seccomp = true; // false: --security-opt seccomp=unconfined
    // --network and --port as requested (a host port of 0: any free one).
    NetworkMode network = NetworkMode::none;
    std::vector<PublishedPort> ports;
};

// Written by the monitor once the sandbox is ready.
struct RuntimeState {
    ProcessId supervisor;
    ProcessId monitor;
    std::int64_t started_at = 0;
    bool base_idmapped = false;    // root inside owns the base's files (idmapped lower layers)
    bool layers_in_memory = false; // the data directory cannot hold overlay upper layers: a tmpfs does
    // The sandbox's cgroup (cgroups.hpp), which holds every process of it and freezes them for pause; none:
    // pause stops them with signals instead.
    std::string cgroup;
    CgroupVersion cgroup_version = CgroupVersion::none;
    // Cgroups of v1 controller hierarchies that enforce its limits (make_limit_cgroups).
    std::vector<std::string> limit_cgroups;
    // --network full: the network stack's process and how the sandbox is connected.
    struct Network {
        ProcessId stack;
        std::string address; // the sandbox's IPv4 address
        unsigned prefix_length = 0;
        std::string gateway;              // leads to the host's loopback
        std::vector<PublishedPort> ports; // with the host ports chosen
    };
    std::optional<Network> network;
};

// Written by the monitor when the supervisor ended unexpectedly.
struct ExitState {
    int signal = 0;
    int code = 0;
    std::int64_t at = 0;
};

// paused: running, with every process of the sandbox stopped (Engine::pause).
enum class Status { creating, running, exited, failed, paused };
std::string_view to_string(Status status);

struct SandboxState {
    SandboxConfig config;
    std::optional<RuntimeState> runtime;
    std::optional<ExitState> exit;
    Status status = Status::failed;
};

// The sandbox's cgroup, as its runtime record names it (empty: none).
Cgroup cgroup_of(const SandboxState& state);
// Every cgroup that holds it: its own and those of its limits.
std::vector<Cgroup> cgroups_of(const SandboxState& state);
// Its cgroup.procs, opened for join_cgroup() by a worker about to join the sandbox's namespaces (after which
// the host's /sys is out of sight). An empty Fd when the sandbox has no cgroup.
Fd open_sandbox_cgroup_procs(const SandboxState& state);

class Store {
  public:
    explicit Store(Paths paths);

    // An exclusive lock over every change to the store; released on destruction.
    class Lock {
      public:
        explicit Lock(Fd fd) : fd_(std::move(fd)) {}

      private:
        Fd fd_;
    };
    Lock lock() const;

    const Paths& paths() const { return paths_; }
    std::string sandbox_dir(std::string_view id) const;
    std::string fs_dir(std::string_view id) const;

    std::vector<SandboxState> list() const;
    // By exact id, exact name, or unique id prefix (4+ characters). Throws Error(conflict) when ambiguous.
    std::optional<SandboxState> find(std::string_view id_or_name) const;
    std::optional<SandboxState> load(std::string_view id) const;

    // A fresh random id that no sandbox has.
    std::string new_id() const;
    // The lowest host id slot no sandbox in `existing` uses.
    unsigned free_slot(const std::vector<SandboxState>& existing) const;

    // Creates the sandbox's directory with its config and an empty fs/ owned by the sandbox's root.
    // Call under lock().
    void add(const SandboxConfig& config) const;
    void write_runtime(std::string_view id, const RuntimeState& runtime) const;
    // write_runtime, under the lock, unless the sandbox was removed meanwhile (then false).
    bool write_runtime_if_present(std::string_view id, const RuntimeState& runtime) const;
    void write_exit(std::string_view id, const ExitState& exit) const;
    // Marks a running sandbox as paused, or not. Call under lock().
    void set_paused(std::string_view id, bool paused) const;
    // Removes every file of the sandbox: its records under the lock, then its layers. Files the sandbox
    // created under subordinate ids are removed from inside a user namespace with the sandbox's mapping.
    void remove(const SandboxConfig& config) const;
    // The two halves of remove(): detach() takes the records away (call it under lock()) and returns the
    // directory left to purge(), which removes the files.
    std::string detach(std::string_view id) const;
    void purge(const std::string& trash, const SandboxConfig& config) const;
    // Removes what sbox processes killed halfway left behind (their pid is in the name).
    void sweep() const;

  private:
    std::string runtime_file(std::string_view id) const;
    std::string exit_file(std::string_view id) const;
    std::string paused_file(std::string_view id) const;
    Paths paths_;
};

// Removes a directory tree, making unreadable directories readable first. Returns false on failure.
bool remove_tree(const std::string& path);

} // namespace sbox::local

// User and group id mapping. Root inside a sandbox never maps to root outside:
//  - sbox run as root gives each sandbox its own unprivileged host range (kRangeSize ids from a slot);
//  - sbox run as an ordinary user maps that user to root inside, plus the user's /etc/subuid and /etc/subgid
//    ranges through the setuid newuidmap/newgidmap helpers when they are installed, and only that user
//    otherwise.
// The base filesystem seen through an idmapped mount (as root) appears owned by the sandbox's root.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "local/system.hpp"

namespace sbox::local {

struct IdRange {
    unsigned inside = 0;
    unsigned outside = 0;
    unsigned count = 0;
};

struct IdMap {
    std::vector<IdRange> uids;
    std::vector<IdRange> gids;
    bool use_helpers = false; // write through newuidmap/newgidmap (rootless with subordinate ranges)
    bool setgroups = true;    // false: a single unprivileged mapping, where setgroups(2) must be denied

    // The host uid/gid that root inside maps to.
    unsigned root_uid() const { return uids.empty() ? 0 : uids.front().outside; }
    unsigned root_gid() const { return gids.empty() ? 0 : gids.front().outside; }
    // Whether a uid/gid inside the sandbox has a host counterpart.
    bool maps_uid(unsigned inside) const;
    bool maps_gid(unsigned inside) const;
};

constexpr unsigned kRangeSize = 65536;
// Sandboxes of root get host ids from here on, one kRangeSize slot each: far above the usual /etc/subuid
// ranges (which start at 100000) and below the 32-bit limit.
constexpr unsigned kSlotBase = 0x40000000u;
constexpr unsigned kSlotCount = 16384;

// The mapping for a sandbox of root in `slot`.
IdMap slot_idmap(unsigned slot);
// The mapping for a sandbox of the calling ordinary user.
IdMap rootless_idmap();

// Writes /proc/PID/{uid_map,setgroups,gid_map} (or runs newuidmap/newgidmap) for a child waiting in a
// fresh user namespace.
void write_idmap(pid_t pid, const IdMap& map);

// A detached, read-only, idmapped copy of the mount at `path`, whose ids are shifted by the user namespace
// behind `userns_fd`. Requires CAP_SYS_ADMIN in the initial namespace and a filesystem that supports
// idmapped mounts; returns an empty Fd (and sets `why`) when the kernel or filesystem refuses.
Fd make_idmapped_mount(const std::string& path, int userns_fd, std::string& why);

// A user namespace with `map` (written by this process, so as root any mapping), held by the returned fd:
// the userns of an idmapped mount.
Fd make_userns(const IdMap& map);

// Runs `fn` in a forked child that holds a fresh user namespace with `map`, as root there: used to remove
// files the sandbox created under subordinate ids the calling user cannot touch on its own.
// Returns fn's result (or false when the child failed).
bool run_as_mapped_root(const IdMap& map, const std::function<bool()>& fn);

} // namespace sbox::local

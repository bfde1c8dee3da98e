// The sandbox's root filesystem: writable overlays over a read-only base.
//  - base `host`: "/" is the sandbox's own directory (fresh /tmp, /root, /run, /home; the host's top-level
//    symlinks such as bin -> usr/bin), and each of the host's system directories (/usr, /etc, /var, /opt,
//    /srv, and /bin, /lib* where they are real directories) is an overlay whose upper layer is the sandbox's.
//    Everything else of the host (/home, /root, /tmp, /run, /mnt, /media, unknown top-level directories)
//    is absent, and sbox's own state is hidden by whiteouts.
//  - base DIR: one overlay over that directory at "/".
// As root on the host the lower layers are idmapped mounts, so root inside owns the base's files and can
// change or delete any of them; the changes land in the upper layers only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "local/idmap.hpp"
#include "local/system.hpp"

namespace sbox::local {

// The top-level directories of the host that make up the `host` base, where they exist.
const std::vector<std::string>& system_dir_names();

struct RootfsPlan {
    std::string image;                                         // empty: the host's system directories
    std::vector<std::string> system_dirs;                      // host base: top-level names overlaid
    std::vector<std::pair<std::string, std::string>> symlinks; // host base: top-level name -> target
    std::vector<std::string> hidden;                           // absolute paths to hide (sbox's state)
    std::string hostname;
    // --network full: the sandbox's /etc/resolv.conf (empty: the base's stays) and lines added to its
    // /etc/hosts.
    std::string resolv_conf;
    std::string extra_hosts;
    bool layers_in_memory = false; // the data directory cannot hold upper layers: use a tmpfs
    std::uint64_t disk_bytes = 0;  // --disk: the size of that tmpfs (0: the kernel's default, half of memory)
    // Snapshot layers stacked between the base and the upper layers, top first (snapshot.hpp). Each is a
    // directory laid out as the sandbox's "/"; they arrive as descriptors after the base's (see
    // build_rootfs). With layers, the host base's "/" is an overlay too, whose upper layer is upper/root.
    std::size_t layer_count = 0;
    // Rootless: the supervisor opens these itself (host paths, top first) instead of receiving them, as
    // overlayfs in a user namespace takes no layer from another mount namespace.
    std::vector<std::string> layer_paths_to_open;

    // The host paths of the lower layers, in the order build_rootfs expects their idmapped mounts.
    std::vector<std::string> lower_paths() const;
};

// Reads the host's top-level layout and decides where the upper layers can live. Runs on the host.
RootfsPlan plan_rootfs(const std::string& image, const std::string& hostname, std::vector<std::string> hidden,
                       const std::string& fs_dir);

// Builds the root filesystem in the caller's (private) mount namespace and pivots into it. `sandbox_dir`
// is the sandbox's state directory (holding fs/), opened before the caller took the sandbox's credentials.
// `receive_lowers` is called once, as late as possible, and returns an idmapped mount per lower_paths()
// entry (or none, to use the host paths as they are), followed by one descriptor per snapshot layer (a
// detached idmapped mount), unless the plan names the layers' paths to open.
// entry, or nothing to use the host paths as they are.
// Returns the directory holding the writable layers (fs/, a tmpfs with layers_in_memory), which the
// supervisor keeps open so that a snapshot can read them.
Fd build_rootfs(const RootfsPlan& plan, int sandbox_dir,
                const std::function<std::vector<Fd>()>& receive_lowers, const IdMap& idmap);

} // namespace sbox::local

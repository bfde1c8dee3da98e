// Mounts inside a sandbox's own mount namespace: small checked wrappers, and the kernel filesystems every
// sandbox gets (/proc with the usual masked paths, a minimal /dev with its own devpts, read-only /sys).
#pragma once

#include <string>

#include "local/idmap.hpp"

namespace sbox::local {

void mount_or_throw(const std::string& source, const std::string& target, const char* fstype,
                    unsigned long flags, const std::string& data = {});
// Makes every mount of this namespace private, so nothing the sandbox mounts propagates to the host.
void make_mounts_private();
// /proc of the caller's PID namespace at root/proc, with /proc paths that reveal or reach the host masked
// (as docker and podman do) and kernel tunables read-only.
void mount_proc(const std::string& root);
// A read-only sysfs at root/sys (the network namespace's own view of /sys/class/net).
void mount_sys(const std::string& root);
// A tmpfs /dev holding null, zero, full, random, urandom and tty (bound from the host), the standard
// symlinks, its own devpts instance, /dev/shm and /dev/mqueue.
void mount_dev(const std::string& root, const IdMap& idmap);
// Switches the caller's root to `root_fd` (a mount) and detaches the old root entirely.
void pivot_into(int root_fd);

} // namespace sbox::local

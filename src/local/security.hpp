// The restrictions every process of a sandbox runs under, the first as much as any later exec:
// a reduced capability set (docker's default set for root inside, nothing for other users; the bounding
// set reduced so nothing can regain more), no_new_privs, and a new session without a controlling terminal.
// The seccomp filter of the hardening issue is installed by apply_restrictions too, last before exec.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

namespace sbox::local {

// The capabilities root inside keeps (docker's default set): chown, dac_override, fowner, fsetid, kill,
// setgid, setuid, setpcap, net_bind_service, net_raw, sys_chroot, mknod, audit_write, setfcap.
std::uint64_t default_capabilities();

// Drops every capability outside default_capabilities() from the bounding set. Needs CAP_SETPCAP, so it
// runs before the switch to the target user.
void restrict_bounding_set();
// After the switch to the target user: root inside keeps default_capabilities(), anyone else none;
// no ambient capabilities; then no_new_privs.
void restrict_capabilities(uid_t uid);

} // namespace sbox::local

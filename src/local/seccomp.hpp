// The sandbox's system call filter: a libseccomp-compiled BPF program (see seccomp/generate.cpp for the
// profile and why it is compiled at build time), installed by every process of a sandbox as the last step
// before it execs its command: the supervisor's command (`run`) and every `exec` alike.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace sbox::local {

// Installs the filter in the calling thread. Needs no_new_privs (restrict_capabilities sets it) or
// CAP_SYS_ADMIN. Throws Error when the kernel refuses it.
void install_seccomp_filter();

// What the filter does, for `inspect`.
struct SeccompProfile {
    std::string libseccomp_version; // the libseccomp that compiled it
    std::size_t instructions = 0;   // BPF instructions
    int unknown_syscalls = 0;       // numbers below 1024 unknown to libseccomp: ENOSYS
    std::vector<std::pair<std::string, std::string>> denied; // class -> the calls it denies
};
const SeccompProfile& seccomp_profile();

} // namespace sbox::local

#include "local/security.hpp"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fcntl.h>

#include <cstdlib>

#include "local/system.hpp"

namespace sbox::local {

namespace {

int last_capability() {
    // Read with open/read rather than a stream: this runs before every command of every sandbox.
    int last = CAP_LAST_CAP;
    Fd fd(::open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC));
    char buf[16] = {};
    if (fd && ::read(fd.get(), buf, sizeof buf - 1) > 0) last = std::atoi(buf);
    return last > 0 ? last : CAP_LAST_CAP;
}

} // namespace

std::uint64_t default_capabilities() {
    std::uint64_t caps = 0;
    for (int c :
         {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP,
          CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SYS_CHROOT, CAP_MKNOD, CAP_AUDIT_WRITE, CAP_SETFCAP})
        caps |= std::uint64_t{1} << c;
    return caps;
}

void restrict_bounding_set() {
    std::uint64_t keep = default_capabilities();
    int last = last_capability();
    for (int c = 0; c <= last; ++c) {
        if (keep & (std::uint64_t{1} << c)) continue;
        if (::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == -1 && errno != EINVAL)
            throw_errno("drop capability " + std::to_string(c) + " from the bounding set");
    }
}

void restrict_capabilities(uid_t uid) {
    std::uint64_t caps = uid == 0 ? default_capabilities() : 0;
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {};
    for (int i = 0; i < 2; ++i) {
        auto word = static_cast<std::uint32_t>(caps >> (32 * i));
        data[i].effective = data[i].permitted = data[i].inheritable = word;
    }
    check(::syscall(SYS_capset, &header, data), "capset");
    check(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities");
    check(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs");
}

} // namespace sbox::local

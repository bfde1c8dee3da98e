#include "local/network.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "local/system.hpp"

namespace sbox::local {

void bring_up_loopback() {
    // The kernel assigns 127.0.0.1/8 and ::1 to lo as soon as it is up.
    Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) throw_errno("socket");
    struct ifreq req = {};
    std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
    check(::ioctl(sock.get(), SIOCGIFFLAGS, &req), "get the flags of lo");
    req.ifr_flags |= IFF_UP | IFF_RUNNING;
    check(::ioctl(sock.get(), SIOCSIFFLAGS, &req), "bring lo up");
}

} // namespace sbox::local

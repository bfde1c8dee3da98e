#include "local/network.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <bit>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

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

std::string_view to_string(NetworkMode mode) {
    return mode == NetworkMode::full ? "full" : "none";
}

std::optional<NetworkMode> network_mode_from(std::string_view text) {
    if (text == "none") return NetworkMode::none;
    if (text == "full") return NetworkMode::full;
    return std::nullopt;
}

namespace {

constexpr const char* kTunDevice = "/dev/net/tun";
constexpr const char* kPackageHint = "install it with: apt-get install passt";

Error unavailable(const std::string& why) {
    return Error(Error::Kind::unavailable, "--network full: " + why);
}

// pasta on $PATH, else in the usual places (sbox may run with a reduced PATH, as from cron).
std::string find_pasta() {
    std::vector<std::string> dirs;
    if (const char* path = std::getenv("PATH")) {
        std::stringstream in(path);
        std::string dir;
        while (std::getline(in, dir, ':'))
            if (!dir.empty() && dir.front() == '/') dirs.push_back(dir);
    }
    for (const char* dir : {"/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"})
        dirs.emplace_back(dir);
    for (const auto& dir : dirs) {
        std::string candidate = dir + "/pasta";
        if (::access(candidate.c_str(), X_OK) != 0) continue;
#if defined(__x86_64__)
        // On x86-64, pasta re-executes itself as its AVX2 build (PATH.avx2) where the CPU has AVX2: exec that
        // one directly and spare a whole exec on every start.
        char real[PATH_MAX];
        if (__builtin_cpu_supports("avx2") && ::realpath(candidate.c_str(), real)) {
            std::string avx2 = std::string(real) + ".avx2";
            if (::access(avx2.c_str(), X_OK) == 0) return avx2;
        }
#endif
        return candidate;
    }
    throw unavailable(std::string("needs pasta (Debian package passt), which is not installed: ") +
                      kPackageHint);
}

struct DefaultRoute {
    std::string interface;
    std::string gateway;
};

// The host's default IPv4 route with the lowest metric: the one pasta would take as its template.
std::optional<DefaultRoute> default_route() {
    Fd fd(::open("/proc/net/route", O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno("open /proc/net/route");
    std::stringstream in(read_all(fd.get()));
    std::string line;
    std::getline(in, line); // the header
    std::optional<DefaultRoute> best;
    unsigned long best_metric = 0;
    while (std::getline(in, line)) {
        std::stringstream fields(line);
        std::string iface, destination, gateway, flags, refcnt, use, metric, mask;
        if (!(fields >> iface >> destination >> gateway >> flags >> refcnt >> use >> metric >> mask))
            continue;
        unsigned long flag_bits = std::strtoul(flags.c_str(), nullptr, 16);
        if (destination != "00000000" || mask != "00000000" || !(flag_bits & RTF_UP) ||
            !(flag_bits & RTF_GATEWAY))
            continue;
        unsigned long m = std::strtoul(metric.c_str(), nullptr, 10);
        if (best && m >= best_metric) continue;
        // The kernel prints the address as the 32-bit value it stores (network order) in this host's order.
        struct in_addr gw = {static_cast<in_addr_t>(std::strtoul(gateway.c_str(), nullptr, 16))};
        char text[INET_ADDRSTRLEN];
        if (!::inet_ntop(AF_INET, &gw, text, sizeof text)) continue;
        best = DefaultRoute{iface, text};
        best_metric = m;
    }
    return best;
}

// The first IPv4 address of `interface`, with its prefix length.
std::optional<std::pair<std::string, unsigned>> interface_address(const std::string& interface) {
    struct ifaddrs* list = nullptr;
    if (::getifaddrs(&list) == -1) throw_errno("getifaddrs");
    std::optional<std::pair<std::string, unsigned>> found;
    for (struct ifaddrs* a = list; a && !found; a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || interface != a->ifa_name) continue;
        auto* addr = reinterpret_cast<struct sockaddr_in*>(a->ifa_addr);
        auto* mask = reinterpret_cast<struct sockaddr_in*>(a->ifa_netmask);
        char text[INET_ADDRSTRLEN];
        if (!::inet_ntop(AF_INET, &addr->sin_addr, text, sizeof text)) continue;
        unsigned prefix = mask ? static_cast<unsigned>(std::popcount(ntohl(mask->sin_addr.s_addr))) : 32;
        found = std::make_pair(std::string(text), prefix);
    }
    ::freeifaddrs(list);
    return found;
}

// The lowest port an unprivileged process may bind on the host (pasta runs unprivileged).
unsigned unprivileged_port_start() {
    Fd fd(::open("/proc/sys/net/ipv4/ip_unprivileged_port_start", O_RDONLY | O_CLOEXEC));
    if (!fd) return 1024;
    return static_cast<unsigned>(std::strtoul(read_all(fd.get()).c_str(), nullptr, 10));
}

// Binds 127.0.0.1:port (0: any) for `protocol` and returns the port bound, or 0 with errno set.
std::uint16_t try_bind_loopback(const std::string& protocol, std::uint16_t port) {
    Fd sock(::socket(AF_INET, (protocol == "udp" ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
    if (!sock) throw_errno("socket");
    int one = 1;
    // As pasta binds: a port held only by connections in TIME_WAIT is free.
    ::setsockopt(sock.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::bind(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) == -1) return 0;
    socklen_t len = sizeof addr;
    if (::getsockname(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), &len) == -1)
        throw_errno("getsockname");
    return ntohs(addr.sin_port);
}

// pasta's command line. The network namespace arrives as fd 3 and the readiness pipe as fd 4.
std::vector<std::string> pasta_args(const NetworkPlan& plan, const std::string& name) {
    std::vector<std::string> args = {
        // argv[0] names the sandbox for ps; pasta only needs "pasta" in it to act as pasta.
        "pasta-" + name,
        "--foreground", // stays the child of the process that watches the sandbox
        "--quiet",
        "--config-net", // addresses and routes set on the interface inside: no DHCP client needed
        "--netns", "/proc/self/fd/3", "--no-netns-quit",
        // The interface inside, and the addresses it gets: those of the host's default route, made explicit
        // so that /etc/hosts and inspect say exactly what pasta configures.
        "--ns-ifname", kSandboxInterface, "--interface", plan.host_interface, "--address", plan.address,
        "--netmask", std::to_string(plan.prefix_length), "--gateway", plan.gateway,
        // Queries sent to kDnsForwarder go to the first nameserver of /etc/resolv.conf as pasta reads it:
        // the host's, or SBOX_DNS_UPSTREAM's (helper_main). (pasta's --dns would name the resolver, but this
        // version forwards to 0.0.0.0 when it is given.)
        "--dns-forward", kDnsForwarder,
        // Nothing of the host's loopback is spliced into the sandbox's own loopback (pasta's default "auto"
        // would), so 127.0.0.1 inside is the sandbox's alone; the host is reached through the gateway.
        "--tcp-ns", "none", "--udp-ns", "none"};
    bool any_tcp = false, any_udp = false;
    for (const auto& p : plan.ports) {
        (p.protocol == "udp" ? any_udp : any_tcp) = true;
        args.push_back(p.protocol == "udp" ? "--udp-ports" : "--tcp-ports");
        args.push_back("127.0.0.1/" + std::to_string(p.host_port) + ":" + std::to_string(p.sandbox_port));
    }
    // Without these pasta publishes every port the sandbox listens on ("auto"), and UDP like TCP.
    if (!any_tcp) args.insert(args.end(), {"--tcp-ports", "none"});
    if (!any_udp) args.insert(args.end(), {"--udp-ports", "none"});
    args.insert(args.end(), {"--pid", "/proc/self/fd/4"});
    return args;
}

// Writes a small file (a private resolv.conf for pasta).
bool write_small_file(const char* path, const std::string& content) {
    Fd fd(::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    return fd && write_all(fd.get(), content);
}

struct Helper {
    const char* pasta;
    std::vector<char*> argv;
    int netns, userns, ready, errors;
    pid_t parent;
    bool rootless;
    bool private_tun;        // root: /dev/net/tun is not open to pasta's uid; give it a node of its own
    std::string resolv_conf; // SBOX_DNS_UPSTREAM: what pasta reads as /etc/resolv.conf
    IdMap idmap;
};

// Gives pasta a mount namespace of its own whose /dev/net is a tmpfs (a place pasta needs nothing else from)
// holding its tun device and, with `resolv_conf`, the /etc/resolv.conf it reads. The tun device is a node
// of its own, owned by `owner` (root on the host only), or the host's, bound there again.
void private_dev_net(std::optional<std::pair<uid_t, gid_t>> owner, const std::string& resolv_conf) {
    check(::unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)");
    check(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "make the mounts private");
    Fd host_tun; // opened in this mount namespace, so that it can be bound here
    if (!owner) {
        host_tun.reset(::open(kTunDevice, O_PATH | O_CLOEXEC));
        if (!host_tun) throw_errno(std::string("open ") + kTunDevice);
    }
    check(::mount("tmpfs", "/dev/net", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k"),
          "mount a tmpfs on /dev/net");
    if (owner) {
        check(::mknod(kTunDevice, S_IFCHR | 0600, makedev(10, 200)), "mknod a tun device");
        check(::chown(kTunDevice, owner->first, owner->second), "chown the tun device");
    } else {
        if (!write_small_file(kTunDevice, "")) throw_errno("create a mount point for the tun device");
        check(::mount(fd_path(host_tun.get()).c_str(), kTunDevice, nullptr, MS_BIND, nullptr),
              "bind the tun device");
    }
    if (!resolv_conf.empty()) {
        if (!write_small_file("/dev/net/resolv.conf", resolv_conf))
            throw_errno("write a resolv.conf for pasta");
        check(::mount("/dev/net/resolv.conf", "/etc/resolv.conf", nullptr, MS_BIND, nullptr),
              "bind a resolv.conf over /etc/resolv.conf");
    }
}

// Runs in the forked child: becomes root of the sandbox's user namespace and execs pasta.
[[noreturn]] void helper_main(const Helper& h) noexcept {
    int error_fd = h.errors; // fd 2 once the descriptors are in place
    auto fail = [&](const std::string& what) {
        (void)write_all(error_fd, what + "\n");
        ::_exit(127);
    };
    try {
        // No terminal, no process group of the caller's (a Ctrl-C is for sbox), default signal handling.
        ::setsid();
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGCHLD})
            ::signal(sig, SIG_DFL);

        if (!h.rootless && (h.private_tun || !h.resolv_conf.empty())) {
            // As root on the host, before dropping every privilege there.
            private_dev_net(std::make_pair(h.idmap.root_uid(), h.idmap.root_gid()), h.resolv_conf);
        }
        // pasta reopens the readiness pipe through /proc/self/fd: it must be its own.
        if (!h.rootless) check(::fchown(h.ready, h.idmap.root_uid(), h.idmap.root_gid()), "fchown a pipe");

        check(::setns(h.userns, CLONE_NEWUSER), "join the sandbox's user namespace");
        check(::setresgid(0, 0, 0), "setresgid(0)");
        if (h.idmap.setgroups) check(::setgroups(0, nullptr), "setgroups");
        check(::setresuid(0, 0, 0), "setresuid(0)");
        if (h.rootless && !h.resolv_conf.empty()) {
            // Allowed now: the new mount namespace belongs to the sandbox's user namespace.
            private_dev_net(std::nullopt, h.resolv_conf);
        }

        // Set after the credentials changed (which clears it); pasta's own changes keep it.
        check(::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)");
        if (::getppid() != h.parent) ::_exit(1); // the parent is already gone

        // 0, 1: /dev/null; 2: the error pipe; 3: the network namespace; 4: the readiness pipe; nothing else.
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null == -1) throw_errno("open /dev/null");
        int sources[] = {null, null, h.errors, h.netns, h.ready};
        int moved[5];
        for (int i = 0; i < 5; ++i)
            moved[i] = static_cast<int>(check(::fcntl(sources[i], F_DUPFD_CLOEXEC, 10), "dup"));
        for (int i = 0; i < 5; ++i)
            check(::dup2(moved[i], i), "dup2");
        error_fd = 2;
        ::syscall(SYS_close_range, 5, ~0U, 0);
        // Nothing of the caller's environment (its tokens, say) goes into a long-lived process.
        char* no_environment[] = {nullptr};
        ::execve(h.pasta, h.argv.data(), no_environment);
        throw_errno(std::string("exec ") + h.pasta);
    } catch (const std::exception& e) {
        fail(std::string("sbox: ") + e.what());
    }
    ::_exit(127);
}

// pasta's messages without its complaints that there is no syslog to write to.
std::string clean_messages(const std::string& text) {
    std::stringstream in(text);
    std::string line, out;
    while (std::getline(in, line)) {
        if (line.empty() || line.rfind("Failed to send ", 0) == 0) continue;
        out += (out.empty() ? "" : "; ") + line;
    }
    return out;
}

} // namespace

NetworkPlan plan_network(const std::vector<PublishedPort>& ports) {
    NetworkPlan plan;
    plan.pasta = find_pasta();
    struct stat st;
    if (::stat(kTunDevice, &st) == -1 || !S_ISCHR(st.st_mode))
        throw unavailable(std::string("needs ") + kTunDevice +
                          " (the kernel's tun driver), which this machine does not have");
    // Root's sandboxes get a tun node of their own where this one is not open to everyone (see helper_main);
    // an ordinary user's pasta opens this one.
    if (::geteuid() != 0 && ::access(kTunDevice, R_OK | W_OK) == -1)
        throw unavailable(std::string(kTunDevice) + " is not readable and writable by this user (" +
                          std::strerror(errno) +
                          "); pasta needs it: make it mode 0666, as Debian's udev rules do "
                          "(chmod 0666 /dev/net/tun)");
    auto route = default_route();
    if (!route)
        throw unavailable("this machine has no default IPv4 route, so there is no network to share (see ip "
                          "route)");
    auto address = interface_address(route->interface);
    if (!address)
        throw unavailable("the interface of the default route, " + route->interface +
                          ", has no IPv4 address");
    plan.host_interface = route->interface;
    plan.address = address->first;
    plan.prefix_length = address->second;
    plan.gateway = route->gateway;
    if (const char* upstream = std::getenv("SBOX_DNS_UPSTREAM"); upstream && *upstream) {
        unsigned char buf[sizeof(struct in6_addr)];
        if (::inet_pton(AF_INET, upstream, buf) != 1 && ::inet_pton(AF_INET6, upstream, buf) != 1)
            throw Error(Error::Kind::invalid, std::string("SBOX_DNS_UPSTREAM=") + upstream +
                                                  " is not an IP address (it names the nameserver, port "
                                                  "53, that the sandbox's DNS queries go to)");
        plan.dns_upstream = upstream;
    }

    const unsigned lowest = unprivileged_port_start();
    std::set<std::pair<std::string, unsigned>> taken;
    for (const auto& requested : ports) {
        PublishedPort p = requested;
        std::string what = "--port " + (p.host_port ? std::to_string(p.host_port) + ":" : std::string()) +
                           std::to_string(p.sandbox_port) + "/" + p.protocol;
        if (p.host_port == 0) {
            // Like docker's -p PORT: any free port, so that two sandboxes can both publish 8080.
            p.host_port = try_bind_loopback(p.protocol, 0);
            if (p.host_port == 0) throw_errno("bind 127.0.0.1:0 to find a free port");
        } else {
            if (p.host_port < lowest)
                throw Error(
                    Error::Kind::invalid,
                    what + ": host ports below " + std::to_string(lowest) +
                        " need privileges that the network stack does not keep (it runs unprivileged); "
                        "choose a host port of " +
                        std::to_string(lowest) + " or more");
            if (try_bind_loopback(p.protocol, p.host_port) == 0)
                throw Error(Error::Kind::conflict, what + ": 127.0.0.1:" + std::to_string(p.host_port) + "/" +
                                                       p.protocol + " is not free (" + std::strerror(errno) +
                                                       "); choose another host port, or leave it out");
        }
        if (!taken.insert({p.protocol, p.host_port}).second)
            throw Error(Error::Kind::invalid, what + ": host port " + std::to_string(p.host_port) + "/" +
                                                  p.protocol + " is published twice");
        plan.ports.push_back(p);
    }
    return plan;
}

std::string sandbox_resolv_conf() {
    std::string out = std::string("# sbox --network full: pasta relays queries sent here to the host's "
                                  "nameserver\nnameserver ") +
                      kDnsForwarder + "\n";
    Fd fd(::open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC));
    if (!fd) return out;
    std::stringstream in(read_all(fd.get()));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("search", 0) == 0 || line.rfind("domain", 0) == 0 || line.rfind("options", 0) == 0)
            out += line + "\n";
    return out;
}

std::string sandbox_hosts_entries(const NetworkPlan& plan) {
    return plan.gateway + "\t" + kHostAlias + "\n";
}

NetworkStack::NetworkStack(NetworkStack&& other) noexcept
    : pid_(std::exchange(other.pid_, 0)), pidfd_(std::move(other.pidfd_)), ready_(std::move(other.ready_)),
      errors_(std::move(other.errors_)) {}

NetworkStack& NetworkStack::operator=(NetworkStack&& other) noexcept {
    if (this != &other) {
        stop();
        pid_ = std::exchange(other.pid_, 0);
        pidfd_ = std::move(other.pidfd_);
        ready_ = std::move(other.ready_);
        errors_ = std::move(other.errors_);
    }
    return *this;
}

NetworkStack NetworkStack::start(const NetworkPlan& plan, pid_t sandbox_pid, const IdMap& idmap,
                                 bool rootless, const std::string& name) {
    std::string ns = "/proc/" + std::to_string(sandbox_pid) + "/ns/";
    Fd netns(::open((ns + "net").c_str(), O_RDONLY | O_CLOEXEC));
    if (!netns) throw_errno("open the sandbox's network namespace");
    Fd userns(::open((ns + "user").c_str(), O_RDONLY | O_CLOEXEC));
    if (!userns) throw_errno("open the sandbox's user namespace");
    Pipe ready, errors;

    std::vector<std::string> args = pasta_args(plan, name);
    Helper h;
    h.pasta = plan.pasta.c_str();
    for (auto& a : args)
        h.argv.push_back(a.data());
    h.argv.push_back(nullptr);
    h.netns = netns.get();
    h.userns = userns.get();
    h.ready = ready.write.get();
    h.errors = errors.write.get();
    h.parent = ::getpid();
    h.rootless = rootless;
    struct stat st;
    h.private_tun = !rootless && (::stat(kTunDevice, &st) == -1 || (st.st_mode & 0006) != 0006);
    if (!plan.dns_upstream.empty()) h.resolv_conf = "nameserver " + plan.dns_upstream + "\n";
    h.idmap = idmap;

    pid_t pid = ::fork();
    if (pid == -1) throw_errno("fork");
    if (pid == 0) helper_main(h);
    NetworkStack stack;
    stack.pid_ = pid;
    stack.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    stack.ready_ = std::move(ready.read);
    stack.errors_ = std::move(errors.read);
    return stack;
}

void NetworkStack::wait_ready(std::chrono::milliseconds limit) {
    if (!ready_) return;
    struct pollfd p = {ready_.get(), POLLIN, 0};
    int n;
    while ((n = ::poll(&p, 1, static_cast<int>(limit.count()))) == -1 && errno == EINTR) {
    }
    char buf[32];
    ssize_t got = n == 1 ? ::read(ready_.get(), buf, sizeof buf) : -1;
    if (got > 0) {
        // Up. Its later messages (none with --quiet, bar errors) find the pipe closed, and pasta ignores
        // SIGPIPE.
        ready_.reset();
        errors_.reset();
        return;
    }
    // Failed (or hung): its messages are complete once it is gone.
    std::string why =
        n == 0 ? "it did not come up within " + std::to_string(limit.count() / 1000) + " s" : "";
    if (pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    int status = 0;
    while (::waitpid(pid_, &status, 0) == -1 && errno == EINTR) {
    }
    pid_ = 0;
    std::string messages;
    (void)read_to_end(errors_.get(), messages);
    messages = clean_messages(messages);
    if (why.empty()) {
        why = !messages.empty()   ? messages
              : WIFEXITED(status) ? "it exited with status " + std::to_string(WEXITSTATUS(status))
                                  : "it was killed by signal " + std::to_string(WTERMSIG(status));
    } else if (!messages.empty()) {
        why += " (" + messages + ")";
    }
    pidfd_.reset();
    ready_.reset();
    errors_.reset();
    throw unavailable("the network stack (pasta) failed: " + why);
}

void NetworkStack::stop() noexcept {
    if (pid_ > 0) {
        if (!pidfd_ || ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0) == -1)
            ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, nullptr, 0) == -1 && errno == EINTR) {
        }
        pid_ = 0;
    }
    pidfd_.reset();
    ready_.reset();
    errors_.reset();
}

} // namespace sbox::local

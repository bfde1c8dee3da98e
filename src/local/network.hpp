// The sandbox's network namespace.
//  - none (the default): a loopback interface, brought up by the supervisor, and nothing else.
//  - full: outbound access through pasta (Debian package passt), a user-mode network stack that sbox starts
//    on the host side, attached to the sandbox's network namespace and joined to its user namespace. It
//    copies the host's IPv4 (and IPv6) address and routes into an interface eth0, relays the sandbox's
//    connections through ordinary sockets of the host, maps the gateway address to the host's loopback,
//    forwards DNS queries sent to kDnsForwarder to the host's nameserver, and publishes --port ports on the
//    host's 127.0.0.1. It runs as root inside the sandbox's user namespace (on the host: the sandbox's own
//    unprivileged uid, or the user in rootless mode), and it dies with the process that started it
//    (PR_SET_PDEATHSIG), which ends it as soon as the sandbox ends.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "local/idmap.hpp"
#include "local/system.hpp"

namespace sbox::local {

void bring_up_loopback();

enum class NetworkMode { none, full };
std::string_view to_string(NetworkMode mode);
// "none" or "full"; nullopt otherwise.
std::optional<NetworkMode> network_mode_from(std::string_view text);

// A port of the sandbox published on the host's loopback.
struct PublishedPort {
    std::uint16_t host_port = 0; // 0 (as requested): any free port, chosen before the sandbox starts
    std::uint16_t sandbox_port = 0;
    std::string protocol = "tcp"; // tcp or udp
};

// The interface inside, the address the sandbox's /etc/resolv.conf names (pasta relays what is sent there to
// the host's nameserver), and the name /etc/hosts gives the gateway, which leads to the host's loopback.
constexpr const char* kSandboxInterface = "eth0";
constexpr const char* kDnsForwarder = "169.254.1.1";
constexpr const char* kHostAlias = "host.sbox.internal";

// How a sandbox with --network full is connected. Decided on the host before the sandbox starts, so that
// every error (no pasta, no default route, a port in use) comes before anything is started, and so that
// the sandbox's /etc files can name the addresses.
struct NetworkPlan {
    std::string pasta;          // the pasta executable
    std::string host_interface; // the host's interface with the default IPv4 route
    std::string address;        // the sandbox's IPv4 address: the host's on that interface, as pasta does
    unsigned prefix_length = 0;
    std::string gateway;              // the host's default gateway; inside, it leads to the host's loopback
    std::string dns_upstream;         // SBOX_DNS_UPSTREAM; empty: the host's /etc/resolv.conf decides
    std::vector<PublishedPort> ports; // with every host port chosen
};

// Checks that pasta can run for this user, reads the host's default route and picks the free host ports.
// Throws Error(unavailable) or Error(invalid) saying what is missing and what to do.
NetworkPlan plan_network(const std::vector<PublishedPort>& ports);

// The sandbox's /etc/resolv.conf with full: kDnsForwarder, with the host's search domains and options.
std::string sandbox_resolv_conf();
// Lines for the sandbox's /etc/hosts with full: the host alias.
std::string sandbox_hosts_entries(const NetworkPlan& plan);

// The running pasta of one sandbox, a child of the process that made it. Ended (SIGKILL, reaped) on
// destruction; a crash of that process ends it too.
class NetworkStack {
  public:
    NetworkStack() = default;
    NetworkStack(NetworkStack&& other) noexcept;
    NetworkStack& operator=(NetworkStack&& other) noexcept;
    NetworkStack(const NetworkStack&) = delete;
    NetworkStack& operator=(const NetworkStack&) = delete;
    ~NetworkStack() { stop(); }

    // Starts pasta for the sandbox whose supervisor is `sandbox_pid` (its id maps written) and returns at
    // once, so that the stack sets itself up while the supervisor does. `name` tags the process for ps.
    static NetworkStack start(const NetworkPlan& plan, pid_t sandbox_pid, const IdMap& idmap, bool rootless,
                              const std::string& name);
    // Returns once the sandbox's interface is configured and the ports are published; throws
    // Error(unavailable) with pasta's own message when it failed (and then stops it).
    void wait_ready(std::chrono::milliseconds limit = std::chrono::seconds(30));
    // SIGKILL and reap. Idempotent.
    void stop() noexcept;

    pid_t pid() const { return pid_; }
    explicit operator bool() const { return pid_ > 0; }

  private:
    pid_t pid_ = 0;
    Fd pidfd_;
    Fd ready_;  // pasta writes its pid here (--pid) once it is up
    Fd errors_; // its stderr
};

} // namespace sbox::local

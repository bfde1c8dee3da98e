// --network none|full and --port: outbound access through pasta, the host's loopback at host.sbox.internal,
// DNS through pasta's forwarder, published ports, and a network stack that never outlives its sandbox.
// These also run as an unprivileged user (run-unprivileged.sh).
#include <arpa/inet.h>
#include <atomic>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>

#include "harness.hpp"

using namespace it;

namespace {

// Why --network full cannot work on this machine for this user (empty: it can).
std::string network_unavailable() {
    if (access("/usr/bin/pasta", X_OK) != 0 && access("/usr/sbin/pasta", X_OK) != 0)
        return "pasta is not installed (Debian package passt: packaging/install-deps.sh installs it)";
    bool default_route = false;
    std::istringstream routes(read_file("/proc/net/route"));
    for (std::string line; std::getline(routes, line);) {
        std::istringstream f(line);
        std::string iface, dest, gw, flags, refcnt, use, metric, mask;
        if (f >> iface >> dest >> gw >> flags >> refcnt >> use >> metric >> mask && dest == "00000000" &&
            mask == "00000000")
            default_route = true;
    }
    if (!default_route) return "this machine has no default IPv4 route, so there is no network to share";
    if (!is_root() && access("/dev/net/tun", R_OK | W_OK) != 0)
        return "/dev/net/tun is not readable and writable by this user (run-unprivileged.sh provides one)";
    return {};
}

#define SKIP_WITHOUT_NETWORK()                                                                               \
    if (std::string why = network_unavailable(); !why.empty()) {                                             \
        MESSAGE("skipped: " << why);                                                                         \
        return;                                                                                              \
    }

// A TCP server on the host's 127.0.0.1 (a free port) that answers every connection with `reply`.
class LoopbackServer {
  public:
    explicit LoopbackServer(std::string reply) : reply_(std::move(reply)) {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(listen(fd_, 16) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] {
            while (!stop_) {
                pollfd p{fd_, POLLIN, 0};
                if (poll(&p, 1, 100) != 1) continue;
                int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c < 0) continue;
                ++accepted_;
                (void)!write(c, reply_.data(), reply_.size());
                close(c);
            }
        });
    }
    ~LoopbackServer() {
        stop_ = true;
        thread_.join();
        close(fd_);
    }
    unsigned port() const { return port_; }
    int accepted() const { return accepted_; }

  private:
    std::string reply_;
    int fd_ = -1;
    unsigned port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::thread thread_;
};

// Everything a connection to 127.0.0.1:port sends before it closes; empty when the connection fails.
std::string read_from_loopback(unsigned port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    timeval limit{10, 0}; // a safety net only
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    std::string out;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        char buf[256];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            out.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return out;
}

// A bash command inside that connects to HOST:PORT and prints what it reads (exit 1 when it cannot connect).
std::vector<std::string> fetch_inside(const std::string& host, unsigned port) {
    return {"bash", "-c", "exec 3<>/dev/tcp/$0/$1 && cat <&3", host, std::to_string(port)};
}

// Starts, detached inside the sandbox, a TCP server on `port` that answers every connection with `reply`.
void serve_inside(const World& w, const std::string& ref, unsigned port, const std::string& reply) {
    Result r = w.exec(ref,
                      {"python3", "-c",
                       "import socket, sys\n"
                       "s = socket.socket()\n"
                       "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                       "s.bind(('0.0.0.0', int(sys.argv[1])))\n"
                       "s.listen(8)\n"
                       "while True:\n"
                       "    c, _ = s.accept()\n"
                       "    c.sendall(sys.argv[2].encode())\n"
                       "    c.close()\n",
                       std::to_string(port), reply},
                      {"-d"});
    INFO("exec -d python3 server: " << describe(r));
    REQUIRE(r.status == 0);
}

// The host port that inspect says the sandbox's `sandbox_port` (tcp) is published on.
unsigned published_port(const nlohmann::json& inspect, unsigned sandbox_port) {
    INFO("inspect: " << inspect.dump());
    const auto& ports = inspect["details"]["ports"];
    REQUIRE(ports.is_array());
    for (const auto& p : ports) {
        if (p.value("sandbox", 0u) != sandbox_port || p.value("protocol", "") != "tcp") continue;
        std::string host = p.value("host", "");
        REQUIRE(host.starts_with("127.0.0.1:"));
        return static_cast<unsigned>(std::stoul(host.substr(10)));
    }
    FAIL("no published port for " << sandbox_port);
    return 0;
}

// Live pasta processes of the sandbox `id` (their command line names it: "pasta-sbox-ID ...").
std::vector<pid_t> stacks_of(const std::string& id) {
    std::vector<pid_t> out;
    for (pid_t pid : all_pids()) {
        if (!process_alive(pid)) continue;
        std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
        if (cmdline.starts_with("pasta-sbox-" + id)) out.push_back(pid);
    }
    return out;
}

std::string id_of(const std::string& ref) {
    return ref.substr(ref.find('/') + 1);
}

} // namespace

TEST_SUITE("rootless-capable") {

    TEST_CASE("network: with full a server on the host's loopback is reachable, with none it is not") {
        SKIP_WITHOUT_NETWORK();
        World w;
        std::string token = "from-the-host-" + random_hex(8);
        LoopbackServer server(token);

        std::string full = w.create({"--network", "full"});
        auto details = w.inspect(full)["details"];
        INFO("inspect: " << details.dump());
        CHECK(details["network"] == "full");
        std::string gateway = details.value("gateway", "");
        REQUIRE(!gateway.empty());
        // host.sbox.internal names the gateway, which pasta maps to the host's 127.0.0.1.
        CHECK(trim(w.check_output(full, fetch_inside("host.sbox.internal", server.port()))) == token);
        CHECK(trim(w.check_output(full, fetch_inside(gateway, server.port()))) == token);
        CHECK(w.check_output(full, {"getent", "hosts", "host.sbox.internal"}).find(gateway) !=
              std::string::npos);
        // The sandbox's own 127.0.0.1 stays its own: nothing of the host's loopback is spliced into it.
        Result own = w.exec(full, fetch_inside("127.0.0.1", server.port()));
        CHECK(own.status != 0);
        CHECK(own.out.empty());
        const int reached = server.accepted();
        CHECK(reached == 2);

        // With none (the default) the same address leads nowhere.
        std::string none = w.create();
        CHECK(w.inspect(none)["details"]["network"] == "none");
        Result r = w.exec(none, fetch_inside(gateway, server.port()));
        INFO("none: " << describe(r));
        CHECK(r.status != 0);
        CHECK(r.out.empty());
        CHECK(w.exec(none, fetch_inside("host.sbox.internal", server.port())).status != 0);
        CHECK(server.accepted() == reached);
        // And the one-shot path gives the same answer.
        std::vector<std::string> run_args = {"run", "--network", "full", "--"};
        for (auto& a : fetch_inside("host.sbox.internal", server.port()))
            run_args.push_back(a);
        Result run = w.sbox(run_args);
        INFO("run --network full: " << describe(run));
        CHECK(run.status == 0);
        CHECK(trim(run.out) == token);
    }

    TEST_CASE("network: with full, DNS queries inside go through pasta to the host's nameserver") {
        SKIP_WITHOUT_NETWORK();
        // A nameserver of the test's own on a loopback address of its own; pasta forwards to port 53, which
        // only root may bind (unless net.ipv4.ip_unprivileged_port_start says otherwise).
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(53);
        std::string upstream;
        for (int attempt = 0; attempt < 20 && upstream.empty(); ++attempt) {
            upstream = "127." + std::to_string(100 + std::stoi(random_hex(2), nullptr, 16) % 100) + "." +
                       std::to_string(std::stoi(random_hex(2), nullptr, 16)) + "." +
                       std::to_string(1 + std::stoi(random_hex(2), nullptr, 16) % 254);
            inet_pton(AF_INET, upstream.c_str(), &addr.sin_addr);
            if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
                if (errno == EACCES) {
                    close(fd);
                    MESSAGE("skipped: binding a nameserver's port 53 needs root here");
                    return;
                }
                upstream.clear();
            }
        }
        REQUIRE(!upstream.empty());
        const std::string answer = "10." + std::to_string(std::stoi(random_hex(2), nullptr, 16)) + "." +
                                   std::to_string(std::stoi(random_hex(2), nullptr, 16)) + ".7";
        std::atomic<bool> stop{false};
        std::atomic<int> queries{0};
        std::thread nameserver([&] {
            unsigned char buf[512];
            while (!stop) {
                pollfd p{fd, POLLIN, 0};
                if (poll(&p, 1, 100) != 1) continue;
                sockaddr_in from{};
                socklen_t len = sizeof from;
                ssize_t n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
                if (n < 17) continue;
                size_t end = 12; // the question's name, then its type and class
                while (end < static_cast<size_t>(n) && buf[end] != 0)
                    end += 1 + buf[end];
                if (end + 5 > static_cast<size_t>(n)) continue;
                ++queries;
                const bool type_a = buf[end + 1] == 0 && buf[end + 2] == 1;
                std::string reply(reinterpret_cast<char*>(buf), end + 5);
                reply[2] = '\x81'; // a response, recursion desired and available, no error
                reply[3] = '\x80';
                reply[6] = 0; // one answer for A, none for anything else (AAAA)
                reply[7] = type_a ? 1 : 0;
                reply[8] = reply[9] = reply[10] = reply[11] = 0;
                if (type_a) {
                    in_addr a{};
                    inet_pton(AF_INET, answer.c_str(), &a);
                    const char rr[] = {'\xc0', '\x0c', 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
                    reply.append(rr, sizeof rr);
                    reply.append(reinterpret_cast<char*>(&a), 4);
                }
                sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
            }
        });
        struct Stop {
            std::atomic<bool>& stop;
            std::thread& t;
            int fd;
            ~Stop() {
                stop = true;
                t.join();
                close(fd);
            }
        } stopper{stop, nameserver, fd};

        World w;
        std::vector<std::string> env = w.env();
        env.push_back("SBOX_DNS_UPSTREAM=" + upstream);
        std::string name = "sandbox-dns-" + random_hex(6) + ".test";
        Result r = Process({sbox_bin(), "run", "--network", "full", "--", "sh", "-c",
                            "cat /etc/resolv.conf && getent ahostsv4 \"$0\"", name},
                           env)
                       .finish();
        INFO("run: " << describe(r));
        REQUIRE(r.status == 0);
        CHECK(r.out.find("nameserver 169.254.1.1") != std::string::npos);
        CHECK(r.out.find(answer) != std::string::npos);
        CHECK(queries > 0);
    }

    TEST_CASE(
        "network: --port publishes a port of the sandbox on the host's 127.0.0.1 and inspect shows it") {
        SKIP_WITHOUT_NETWORK();
        World w;
        std::string ref = w.create({"--network", "full", "--port", "8080"});
        auto j = w.inspect(ref);
        unsigned host_port = published_port(j, 8080);
        CHECK(host_port > 0);
        const auto& d = j["details"];
        CHECK(d["network"] == "full");
        CHECK(d.value("address", "").find('/') != std::string::npos);
        CHECK(d["dns"] == "169.254.1.1");
        CHECK(d["host_alias"] == "host.sbox.internal");
        Result text = w.sbox({"inspect", ref});
        CHECK(text.out.find("127.0.0.1:" + std::to_string(host_port)) != std::string::npos);
        CHECK(text.out.find("full") != std::string::npos);

        std::string token = "from-the-sandbox-" + random_hex(8);
        serve_inside(w, ref, 8080, token);
        // The server starts on its own time: ask until it answers (a connection before it listens is closed).
        CHECK(eventually([&] { return read_from_loopback(host_port) == token; }));
    }

    TEST_CASE("network: two sandboxes can both publish port 8080, each on a host port of its own") {
        SKIP_WITHOUT_NETWORK();
        World w;
        std::string a = w.create({"--network", "full", "--port", "8080"});
        std::string b = w.create({"--network", "full", "--port", "8080"});
        unsigned port_a = published_port(w.inspect(a), 8080), port_b = published_port(w.inspect(b), 8080);
        CHECK(port_a != port_b);
        serve_inside(w, a, 8080, "sandbox-a");
        serve_inside(w, b, 8080, "sandbox-b");
        CHECK(eventually([&] { return read_from_loopback(port_a) == "sandbox-a"; }));
        CHECK(eventually([&] { return read_from_loopback(port_b) == "sandbox-b"; }));
    }

    TEST_CASE("network: HOSTPORT:PORT takes that host port, and a taken one is refused with nothing left") {
        SKIP_WITHOUT_NETWORK();
        World w;
        // A port that is free: bound by the test a moment, then let go.
        unsigned free_port;
        {
            LoopbackServer probe("");
            free_port = probe.port();
        }
        std::string ref = w.create({"--network", "full", "--port", std::to_string(free_port) + ":9000"});
        CHECK(published_port(w.inspect(ref), 9000) == free_port);
        serve_inside(w, ref, 9000, "nine-thousand");
        CHECK(eventually([&] { return read_from_loopback(free_port) == "nine-thousand"; }));

        // Taken (by the test's own server): refused before anything starts.
        LoopbackServer taken("the test's");
        Result r = w.sbox({"create", "--network", "full", "--port", std::to_string(taken.port()) + ":80"});
        INFO("create with a taken port: " << describe(r));
        CHECK(r.status == 1);
        CHECK(r.err.find(std::to_string(taken.port())) != std::string::npos);
        CHECK(r.err.find("not free") != std::string::npos);
        CHECK(w.ls_q() == std::vector<std::string>{ref});
        CHECK(read_from_loopback(taken.port()) == "the test's");
    }

    TEST_CASE("network: bad --network and --port values are usage errors") {
        World w;
        Result r = w.sbox({"create", "--network", "bogus"});
        INFO(describe(r));
        CHECK(r.status == 2);
        CHECK(r.err.find("bogus") != std::string::npos);
        CHECK(r.err.find("none or full") != std::string::npos);
        for (std::string bad : {"0", "65536", "abc", "1:2:3", "80/sctp", ":80", "80:", "-1", "8080/"}) {
            Result p = w.sbox({"create", "--network", "full", "--port", bad});
            INFO("--port " << bad << ": " << describe(p));
            CHECK(p.status == 2);
            CHECK(p.err.find("--port") != std::string::npos);
        }
        Result no_net = w.sbox({"create", "--port", "8080"});
        INFO(describe(no_net));
        CHECK(no_net.status == 2);
        CHECK(no_net.err.find("--port needs --network full") != std::string::npos);
        // run reports its own failures as 125.
        Result run = w.sbox({"run", "--network", "bogus", "--", "true"});
        CHECK(run.status == 125);
        CHECK(run.err.find("none or full") != std::string::npos);
        CHECK(w.ls_q().empty());
        CHECK(w.leftovers().empty());
    }

    TEST_CASE("network: a network stack that fails is reported with its message and leaves nothing behind") {
        SKIP_WITHOUT_NETWORK();
        World w;
        // A "pasta" first on PATH that complains and exits, as a real one does when it cannot set up.
        TempDir bin;
        std::string fake = bin.path() + "/pasta";
        {
            int fd = open(fake.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
            REQUIRE(fd >= 0);
            std::string script = "#!/bin/sh\necho 'Failed to send 12 bytes to syslog' >&2\n"
                                 "echo 'cannot set up: test says no' >&2\nexit 1\n";
            REQUIRE(write(fd, script.data(), script.size()) == static_cast<ssize_t>(script.size()));
            close(fd);
        }
        std::vector<std::string> env;
        for (const auto& e : w.env())
            if (!e.starts_with("PATH=")) env.push_back(e);
        env.push_back("PATH=" + bin.path() + ":/usr/sbin:/usr/bin:/sbin:/bin");
        for (std::string cmd : {"create", "run"}) {
            std::vector<std::string> argv = {sbox_bin(), cmd, "--network", "full"};
            if (cmd == "run") argv.insert(argv.end(), {"--", "true"});
            Result r = Process(argv, env).finish();
            INFO(cmd << ": " << describe(r));
            CHECK(r.status == (cmd == "run" ? 125 : 1));
            CHECK(r.err.find("cannot set up: test says no") != std::string::npos);
            CHECK(r.err.find("syslog") == std::string::npos);
            CHECK(r.out.empty());
        }
        CHECK(w.ls_q().empty());
        CHECK(w.leftovers().empty());
        CHECK(w.mounts().empty());
    }

    TEST_CASE("network: the stack is gone after kill, after run ends, after the lifetime and with sbox") {
        SKIP_WITHOUT_NETWORK();
        World w;
        become_subreaper(); // whatever sbox leaves running is ours to see

        SUBCASE("kill") {
            std::string ref = w.create({"--network", "full"});
            pid_t stack = w.inspect(ref)["details"].value("network_pid", 0);
            REQUIRE(stack > 0);
            CHECK(process_alive(stack));
            CHECK(stacks_of(id_of(ref)) == std::vector<pid_t>{stack});
            if (is_root()) {
                // It holds nothing of its caller's: stdin and stdout are /dev/null, no terminal.
                for (int fd : {0, 1}) {
                    struct stat st;
                    std::string path = "/proc/" + std::to_string(stack) + "/fd/" + std::to_string(fd);
                    REQUIRE(stat(path.c_str(), &st) == 0);
                    CHECK(S_ISCHR(st.st_mode));
                    CHECK(st.st_rdev == makedev(1, 3));
                }
                // And it runs as the sandbox's root, never as root of the host.
                auto uids = process_uids(stack);
                REQUIRE(!uids.empty());
                CHECK(uids[1] != 0);
            }
            Result k = w.sbox({"kill", ref});
            CHECK(k.status == 0);
            CHECK(!process_alive(stack));
            CHECK(stacks_of(id_of(ref)).empty());
        }
        SUBCASE("run ends") {
            Result r = w.sbox({"run", "--network", "full", "--", "hostname"});
            REQUIRE(r.status == 0);
            std::string id = trim(r.out);
            REQUIRE(id.size() == 12);
            CHECK(stacks_of(id).empty());
        }
        SUBCASE("run is interrupted") {
            Process p = w.spawn({"run", "--network", "full", "--", "sleep", "600"});
            std::string ref = w.wait_running(p);
            pid_t stack = w.inspect(ref)["details"].value("network_pid", 0);
            REQUIRE(stack > 0);
            CHECK(process_alive(stack));
            p.signal(SIGINT);
            Result r = p.finish();
            CHECK(r.status == 130);
            CHECK(!process_alive(stack));
            CHECK(stacks_of(id_of(ref)).empty());
        }
        SUBCASE("sbox run is killed") {
            Process p = w.spawn({"run", "--network", "full", "--", "sleep", "600"});
            std::string ref = w.wait_running(p);
            auto d = w.inspect(ref)["details"];
            pid_t stack = d.value("network_pid", 0), supervisor = d.value("supervisor_pid", 0);
            REQUIRE(stack > 0);
            REQUIRE(supervisor > 0);
            p.signal(SIGKILL);
            p.finish();
            // The kernel ends both the sandbox and its stack (their parent died); as the subreaper, this
            // process reaps the stack.
            CHECK(eventually([&] {
                descendants();
                return !process_alive(stack) && !process_alive(supervisor);
            }));
            CHECK(stacks_of(id_of(ref)).empty());
        }
        SUBCASE("the command of run -d ends") {
            Result r = w.sbox({"run", "-d", "--network", "full", "--", "sleep", "1"});
            REQUIRE(r.status == 0);
            std::string id = id_of(trim(r.out));
            // The sandbox removes itself when its command ends; its stack ends first.
            CHECK(eventually([&] { return w.ls_q().empty(); }, 60s));
            CHECK(stacks_of(id).empty());
        }
        SUBCASE("the lifetime expires") {
            std::string ref = w.create({"--network", "full", "--timeout", "2s"});
            pid_t stack = w.inspect(ref)["details"].value("network_pid", 0);
            REQUIRE(stack > 0);
            CHECK(eventually([&] { return w.ls_q().empty(); }, 60s));
            // The monitor ends the stack before it removes the sandbox's records.
            CHECK(!process_alive(stack));
            CHECK(stacks_of(id_of(ref)).empty());
        }
        SUBCASE("the monitor is killed") {
            std::string ref = w.create({"--network", "full"});
            auto d = w.inspect(ref)["details"];
            pid_t stack = d.value("network_pid", 0), monitor = d.value("monitor_pid", 0);
            REQUIRE(stack > 0);
            REQUIRE(monitor > 0);
            REQUIRE(kill(monitor, SIGKILL) == 0);
            CHECK(eventually([&] {
                descendants();
                return !process_alive(stack);
            }));
            CHECK(w.sbox({"kill", ref}).status == 0);
            CHECK(stacks_of(id_of(ref)).empty());
        }
    }

} // TEST_SUITE

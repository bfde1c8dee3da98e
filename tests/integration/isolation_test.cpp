// Isolation of local sandboxes: what a process inside can see of the host and of other sandboxes.
// These also run as an unprivileged user (run-unprivileged.sh), so they hold in rootless mode too.
#include <algorithm>
#include <fcntl.h>
#include <set>
#include <sstream>
#include <unistd.h>

#include <doctest/doctest.h>

#include "harness.hpp"

using namespace it;

namespace {

std::string field(const std::string& status_text, const std::string& name) {
    std::istringstream in(status_text);
    for (std::string line; std::getline(in, line);)
        if (line.starts_with(name + ":")) return trim(line.substr(name.size() + 1));
    return {};
}

// Removes a file on scope exit.
struct Remove {
    std::string path;
    ~Remove() {
        if (!path.empty()) unlink(path.c_str());
    }
};

bool write_file(const std::string& path, const std::string& data) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
    close(fd);
    return ok;
}

} // namespace

TEST_SUITE("rootless-capable") {

    TEST_CASE("isolation: PID 1 inside is the sbox supervisor, not the command") {
        World w;
        auto ref = w.create();
        std::string status = w.check_output(ref, {"cat", "/proc/1/status"});
        INFO("/proc/1/status inside:\n" << status);
        std::string name = field(status, "Name");
        CHECK(!name.empty());
        CHECK(name != "cat");
        CHECK(name.find("sbox") != std::string::npos); // the supervisor names itself sbox-...
        // The command itself is not PID 1.
        CHECK(trim(w.check_output(ref, {"sh", "-c", "echo $$"})) != "1");
        // The supervisor that inspect names is PID 1 of the sandbox's PID namespace, and it is the PID 1 seen
        // inside.
        pid_t sup = w.supervisor_pid(ref);
        std::string host_status = read_file("/proc/" + std::to_string(sup) + "/status");
        INFO("host /proc/" << sup << "/status:\n" << host_status);
        REQUIRE(!host_status.empty());
        std::string nspid = field(host_status, "NSpid");
        REQUIRE(nspid.find_last_of(" \t") != std::string::npos);
        CHECK(nspid.substr(nspid.find_last_of(" \t") + 1) == "1");
        CHECK(field(host_status, "Name") == name);
        // It keeps the sandbox alive between commands: the next exec sees the same PID 1.
        CHECK(field(w.check_output(ref, {"cat", "/proc/1/status"}), "Name") == name);
    }

    TEST_CASE("isolation: host processes are invisible") {
        World w;
        auto ref = w.create();
        std::string ps = w.check_output(ref, {"ps", "-e", "-o", "pid=,comm="});
        INFO("ps inside:\n" << ps);
        auto procs = lines(ps);
        // The supervisor, perhaps an exec helper, and ps itself: a handful, not the host's hundreds.
        CHECK(procs.size() >= 2);
        CHECK(procs.size() <= 5);
        for (auto& line : procs) {
            CHECK(line.find("sbox_integratio") == std::string::npos);
            CHECK(line.find("ctest") == std::string::npos);
        }
        // /proc lists only the sandbox's own PIDs, all small numbers of the new PID namespace.
        std::string ls = w.check_output(ref, {"ls", "/proc"});
        int pids = 0;
        for (auto& entry : lines(ls)) {
            if (!std::all_of(entry.begin(), entry.end(), ::isdigit)) continue;
            ++pids;
            CHECK(std::stol(entry) < 1000);
        }
        CHECK(pids >= 2);
        CHECK(pids <= 5);
        // And this test's own process cannot be found by its host PID's command line.
        Result r = w.exec(ref, {"cat", "/proc/" + std::to_string(getpid()) + "/cmdline"});
        CHECK(r.out.find("sbox_integration") == std::string::npos);
    }

    TEST_CASE("isolation: the hostname is the --name, else the id") {
        World w;
        auto ref = w.create();
        CHECK(trim(w.check_output(ref, {"uname", "-n"})) == ref.substr(6));
        std::string name = "it-host-" + random_hex(6);
        auto named = w.create({"--name", name});
        CHECK(trim(w.check_output(named, {"uname", "-n"})) == name);
        // The host's hostname is untouched.
        char host[256] = {};
        gethostname(host, sizeof host - 1);
        CHECK(std::string(host) != name);
    }

    TEST_CASE("isolation: the network namespace has only loopback, and it is up") {
        World w;
        auto ref = w.create();
        std::string dev = w.check_output(ref, {"cat", "/proc/net/dev"});
        INFO("/proc/net/dev inside:\n" << dev);
        std::vector<std::string> ifaces;
        for (auto& line : lines(dev))
            if (auto colon = line.find(':'); colon != std::string::npos)
                ifaces.push_back(trim(line.substr(0, colon)));
        CHECK(ifaces == std::vector<std::string>{"lo"});
        // /sys, when the sandbox has it, agrees.
        Result sys = w.exec(ref, {"ls", "/sys/class/net"});
        if (sys.status == 0) {
            CHECK(lines(sys.out) == std::vector<std::string>{"lo"});
            std::string flags = trim(w.check_output(ref, {"cat", "/sys/class/net/lo/flags"}));
            INFO("lo flags: " << flags);
            CHECK((std::stoul(flags, nullptr, 16) & 0x1) == 0x1); // IFF_UP
        } else {
            MESSAGE("no /sys/class/net inside (" << trim(sys.err)
                                                 << "); relying on /proc/net/dev and a connect");
        }
        // Loopback is up: connecting to a closed port on 127.0.0.1 is refused (a down lo would be
        // unreachable) ...
        Result lo = w.exec(ref, {"bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9"});
        INFO("connect to 127.0.0.1:9: " << describe(lo));
        CHECK(lo.status != 0);
        CHECK(lo.err.find("refused") != std::string::npos);
        // ... and there is no route anywhere else.
        Result out = w.exec(ref, {"bash", "-c", "exec 3<>/dev/tcp/192.0.2.1/80"});
        INFO("connect to 192.0.2.1:80: " << describe(out));
        CHECK(out.status != 0);
        CHECK(out.err.find("unreachable") != std::string::npos);
    }

    TEST_CASE("isolation: writes inside never reach the host") {
        World w;
        auto ref = w.create();
        std::string tag = random_hex(10);
        // /tmp and /root are the sandbox's own, writable by root inside in every mode.
        w.check_output(ref, {"sh", "-c", "echo data > /tmp/x-" + tag + " && mkdir /root/d-" + tag});
        CHECK(w.check_output(ref, {"cat", "/tmp/x-" + tag}) == "data\n");
        // System directories: root inside writes them in its overlay. As root on the host this must work
        // (idmapped base); in rootless mode the base belongs to uids the sandbox does not map, so it may be
        // refused.
        Result sys =
            w.exec(ref, {"sh", "-c", "echo data > /etc/sbox-test-file-" + tag + " && mkdir /newdir-" + tag});
        if (is_root()) {
            INFO("writing /etc and / inside: " << describe(sys));
            CHECK(sys.status == 0);
            CHECK(w.check_output(ref, {"cat", "/etc/sbox-test-file-" + tag}) == "data\n");
            CHECK(w.check_output(ref, {"sh", "-c", "test -d /newdir-" + tag + " && echo yes"}) == "yes\n");
        } else {
            MESSAGE("rootless: writing /etc and / inside: " << describe(sys));
        }
        CHECK_FALSE(exists("/tmp/x-" + tag));
        CHECK_FALSE(exists("/etc/sbox-test-file-" + tag));
        CHECK_FALSE(exists("/newdir-" + tag));
        CHECK_FALSE(exists("/root/d-" + tag));
    }

    TEST_CASE("isolation: two sandboxes never see each other's files or processes") {
        World w;
        auto a = w.create();
        auto b = w.create();
        std::string tag = random_hex(10);
        w.check_output(a, {"sh", "-c", "echo A > /tmp/a-" + tag + " && echo A > /root/a-" + tag});
        w.check_output(a, {"sh", "-c", "echo A > /tmp/shared-" + tag});
        w.check_output(b, {"sh", "-c", "echo B > /tmp/shared-" + tag});
        if (is_root()) w.check_output(a, {"sh", "-c", "echo A > /etc/a-" + tag});
        for (auto path : {"/tmp/a-", "/root/a-", "/etc/a-"}) {
            Result r = w.exec(b, {"test", "-e", path + tag});
            INFO("test -e " << path << tag << " in the other sandbox: " << describe(r));
            CHECK(r.status == 1);
        }
        CHECK(w.check_output(a, {"cat", "/tmp/shared-" + tag}) == "A\n");
        CHECK(w.check_output(b, {"cat", "/tmp/shared-" + tag}) == "B\n");
        // sbox's own state (where the other sandbox's layers live) is absent too.
        Result state = w.exec(b, {"test", "-e", w.root()});
        CHECK(state.status == 1);
        // A process of one sandbox is invisible in the other.
        REQUIRE(w.exec(a, {"sleep", "1001"}, {"-d"}).status == 0);
        CHECK(w.check_output(a, {"ps", "-e", "-o", "args="}).find("sleep 1001") != std::string::npos);
        CHECK(w.check_output(b, {"ps", "-e", "-o", "args="}).find("sleep 1001") == std::string::npos);
    }

    TEST_CASE("isolation: the host's /root, /home and /tmp are absent") {
        World w;
        std::string tag = random_hex(10);
        std::vector<Remove> markers;
        std::vector<std::string> marker_paths;
        auto add_marker = [&](const std::string& dir) {
            std::string path = dir + "/sbox-it-marker-" + tag;
            if (write_file(path, "host\n")) {
                markers.push_back({path});
                marker_paths.push_back(path);
            } else {
                MESSAGE("could not write a marker in " << dir);
            }
        };
        if (is_root()) add_marker("/root");
        if (const char* home = getenv("HOME"); home && *home && std::string(home) != "/root")
            add_marker(home);
        REQUIRE(!marker_paths.empty());
        auto ref = w.create();
        for (auto& path : marker_paths) {
            Result r = w.exec(ref, {"test", "-e", path});
            INFO("test -e " << path << " inside: " << describe(r));
            CHECK(r.status == 1);
        }
        std::string root_ls = w.check_output(ref, {"ls", "-A", "/root"});
        CHECK(root_ls.find("sbox-it-marker") == std::string::npos);
        // /home is absent or empty; /tmp is fresh (the host's holds this test's SBOX_ROOT).
        Result home = w.exec(ref, {"ls", "-A", "/home"});
        INFO("ls -A /home inside: " << describe(home));
        CHECK((home.status != 0 || home.out.empty()));
        CHECK(w.check_output(ref, {"ls", "-A", "/tmp"}).empty());
    }

    TEST_CASE("isolation: exec sees the same files, processes and namespaces as the sandbox") {
        World w;
        auto ref = w.create();
        Result d = w.exec(ref, {"sleep", "1002"}, {"-d"});
        INFO("exec -d: " << describe(d));
        REQUIRE(d.status == 0);
        CHECK(w.check_output(ref, {"ps", "-e", "-o", "args="}).find("sleep 1002") != std::string::npos);
        w.check_output(ref, {"sh", "-c", "echo written-by-one-exec > /tmp/handoff"});
        CHECK(w.check_output(ref, {"cat", "/tmp/handoff"}) == "written-by-one-exec\n");

        const std::vector<std::string> kinds{"mnt", "pid", "net", "uts", "ipc", "user", "cgroup"};
        std::vector<std::string> cmd{"readlink"};
        for (auto& k : kinds)
            cmd.push_back("/proc/self/ns/" + k);
        auto first = lines(w.check_output(ref, cmd));
        auto second = lines(w.check_output(ref, cmd));
        REQUIRE(first.size() == kinds.size());
        CHECK(first == second);
        pid_t sup = w.supervisor_pid(ref);
        for (std::size_t i = 0; i < kinds.size(); ++i) {
            INFO("namespace " << kinds[i] << ": inside " << first[i] << ", host " << ns_of(0, kinds[i]));
            CHECK(first[i] != ns_of(0, kinds[i])); // a fresh one, not the host's
            if (std::string s = ns_of(sup, kinds[i]); !s.empty()) CHECK(first[i] == s); // the supervisor's
        }
    }

    TEST_CASE("isolation: root inside is not root outside") {
        World w;
        auto ref = w.create();
        CHECK(trim(w.check_output(ref, {"id", "-u"})) == "0");
        pid_t sup = w.supervisor_pid(ref);
        auto uids = process_uids(sup);
        INFO("supervisor " << sup << " host uids: " << uids.size());
        REQUIRE(uids.size() == 4);
        for (long u : uids) {
            if (is_root())
                CHECK(u != 0);
            else
                CHECK(u == static_cast<long>(getuid()));
        }
        // Every process of the sandbox (here: the supervisor and a detached command) runs as a non-root host
        // uid.
        REQUIRE(w.exec(ref, {"sleep", "1003"}, {"-d"}).status == 0);
        std::string pidns = ns_of(sup, "pid");
        if (pidns.empty()) {
            MESSAGE("the supervisor's namespaces are not readable here; checked the supervisor only");
        } else {
            int seen = 0;
            for (pid_t pid : all_pids()) {
                if (!process_alive(pid) || ns_of(pid, "pid") != pidns) continue;
                ++seen;
                for (long u : process_uids(pid)) {
                    INFO("sandbox process " << pid);
                    CHECK(u != 0);
                }
            }
            CHECK(seen >= 2);
        }
    }

    TEST_CASE("isolation: no_new_privs, a reduced capability set, inherited fds closed") {
        World w;
        auto ref = w.create();
        std::string status = w.check_output(ref, {"cat", "/proc/self/status"});
        INFO("/proc/self/status inside:\n" << status);
        CHECK(field(status, "NoNewPrivs") == "1");
        unsigned long long inside = std::stoull(field(status, "CapBnd"), nullptr, 16);
        unsigned long long host = std::stoull(field(read_file("/proc/self/status"), "CapBnd"), nullptr, 16);
        CHECK((inside & ~host) == 0ULL); // nothing the host does not have
        CHECK(inside != host);           // and something less

        // An fd that the calling process leaks into sbox never reaches the command.
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        int high = fcntl(fd, F_DUPFD_CLOEXEC, 37);
        close(fd);
        REQUIRE(high >= 37);
        auto p = w.spawn({"exec", ref, "--", "ls", "/proc/self/fd"}, {.inherit_fd = high});
        Result r = p.finish();
        close(high);
        INFO("ls /proc/self/fd inside, with fd " << high << " leaked into sbox: " << describe(r));
        REQUIRE(r.status == 0);
        // ls's own directory fd is 3.
        std::set<std::string> fds;
        for (auto& l : lines(r.out))
            fds.insert(trim(l));
        CHECK(fds == std::set<std::string>{"0", "1", "2", "3"});
    }

    TEST_CASE("isolation: masked /proc, a minimal /dev, no controlling terminal, a non-dumpable supervisor") {
        World w;
        auto ref = w.create();
        // /proc of the sandbox's PID namespace, with the usual paths masked or read-only.
        CHECK(w.exec(ref, {"sh", "-c", "echo sandbox > /proc/sys/kernel/domainname"}).status != 0);
        CHECK(w.check_output(ref, {"sh", "-c", "cat /proc/kcore 2>/dev/null | head -c 16 | wc -c"}) == "0\n");
        CHECK(w.check_output(ref, {"sh", "-c", "cat /proc/keys 2>/dev/null | wc -c"}) == "0\n");
        // A minimal /dev: the usual character devices, no disks or kernel memory of the host.
        std::string dev = w.check_output(ref, {"ls", "/dev"});
        INFO("/dev inside:\n" << dev);
        auto entries = lines(dev);
        std::set<std::string> names(entries.begin(), entries.end());
        for (auto need : {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts"})
            CHECK(names.count(need) == 1);
        for (auto& name : names) {
            INFO("/dev/" << name);
            CHECK_FALSE((name.starts_with("sd") || name.starts_with("vd") || name.starts_with("nvme") ||
                         name.starts_with("loop") || name == "mem" || name == "kmem" || name == "port" ||
                         name == "kmsg" || name.starts_with("dm-")));
        }
        CHECK(names.size() <= 20);
        // The supervisor is not dumpable: root inside cannot read its memory or environment.
        Result environ = w.exec(ref, {"cat", "/proc/1/environ"});
        INFO("cat /proc/1/environ inside: " << describe(environ));
        CHECK(environ.status != 0);
        CHECK(environ.out.empty());

        // The terminal of the calling sbox is not shared with the sandbox: even when sbox has a controlling
        // terminal, the command has none (tty_nr 0, /dev/tty cannot be opened).
        const std::vector<std::string> probe{"/bin/sh", "-c",
                                             "cut -d' ' -f1,6,7 /proc/self/stat; echo x > /dev/tty"};
        Process host(probe, {"PATH=/usr/bin:/bin"}, {.controlling_tty = true});
        Result h = host.finish();
        INFO("on the host with a controlling terminal: " << describe(h));
        REQUIRE(h.status == 0); // the harness's terminal works
        auto hf = lines(h.out);
        REQUIRE(hf.size() == 1);
        CHECK(hf[0].substr(hf[0].rfind(' ') + 1) != "0");

        std::vector<std::string> args{"exec", ref, "--"};
        args.insert(args.end(), probe.begin(), probe.end());
        Result r = w.spawn(args, {.controlling_tty = true}).finish();
        INFO("inside, from an sbox with a controlling terminal: " << describe(r));
        CHECK(r.status != 0); // /dev/tty: no such device
        auto f = lines(r.out);
        REQUIRE(f.size() == 1);
        std::istringstream fields(f[0]);
        std::string pid, session, tty_nr;
        fields >> pid >> session >> tty_nr;
        CHECK(session != "0");
        CHECK(tty_nr == "0");
    }

} // TEST_SUITE

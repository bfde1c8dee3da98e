// The local provider's hardening and resource limits (issue 4): the seccomp filter, proven class by class
// against the same call on the host and in a sandbox without the filter; and the hostile workloads the limits
// contain: a fork bomb, a memory hog, a disk filler.
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <sstream>

#include "harness.hpp"
#include "tarball.hpp"

using namespace it;

namespace {

std::string probe_bin() {
    if (const char* p = std::getenv("SBOX_SYSCALL_PROBE")) return p;
    return SBOX_SYSCALL_PROBE;
}

// "CLASS RESULT" lines of sbox-syscall-probe.
std::map<std::string, std::string> parse_probe(const std::string& out) {
    std::map<std::string, std::string> results;
    for (const auto& line : lines(out)) {
        auto space = line.find(' ');
        if (space != std::string::npos) results[line.substr(0, space)] = line.substr(space + 1);
    }
    return results;
}

// The probe's results inside sandbox `ref` (copied into /tmp first, which root inside can always write, even
// where the base cannot be idmapped).
std::map<std::string, std::string> probe_inside(const World& w, const std::string& ref) {
    Result cp = w.sbox({"cp", probe_bin(), ref + ":/tmp/sbox-syscall-probe"});
    REQUIRE_MESSAGE(cp.status == 0, describe(cp));
    Result r = w.exec(ref, {"/tmp/sbox-syscall-probe", "all"});
    REQUIRE_MESSAGE(r.status == 0, describe(r));
    return parse_probe(r.out);
}

// Processes in the PID namespace of the sandbox whose supervisor is `sup` (the supervisor included).
int processes_in_sandbox(pid_t sup) {
    std::string ns = ns_of(sup, "pid");
    if (ns.empty()) return 0;
    int n = 0;
    for (pid_t pid : all_pids())
        if (ns_of(pid, "pid") == ns) ++n;
    return n;
}

std::uint64_t blocks_under(const std::string& dir) {
    Result r = host({"du", "-s", "-B1", "-x", dir});
    return std::strtoull(r.out.c_str(), nullptr, 10);
}

} // namespace

TEST_CASE("hardening: every denied syscall class fails inside, and reaches the kernel outside") {
    if (!is_root()) {
        MESSAGE("skipped: the host side of the comparison needs root (bpf, perf, keyrings as root)");
        return;
    }
    World w;
    Result outside_run = host({probe_bin(), "all"});
    REQUIRE_MESSAGE(outside_run.status == 0, describe(outside_run));
    auto outside = parse_probe(outside_run.out);
    std::string confined = w.create();
    std::string unconfined = w.create({"--security-opt", "seccomp=unconfined"});
    auto inside = probe_inside(w, confined);
    auto open = probe_inside(w, unconfined);

    const std::map<std::string, std::string> denied = {
        {"keyring", "errno=EPERM"},
        {"bpf", "errno=EPERM"},
        {"perf", "errno=EPERM"},
        {"kexec", "errno=EPERM"},
        {"modules", "errno=EPERM"},
        {"userfaultfd", "errno=EPERM"},
        {"io_uring", "errno=EPERM"},
        {"mount", "errno=EPERM"},
        {"unshare_user", "errno=EPERM"},
        {"unshare_net", "errno=EPERM"},
        {"setns", "errno=EPERM"},
        {"clone3", "errno=ENOSYS"},
        {"tiocsti", "errno=EPERM"},
        {"tiocsti_high", "errno=EPERM"},
        {"tioclinux", "errno=EPERM"},
        {"tioclinux_high", "errno=EPERM"},
        {"personality", "errno=EPERM"},
        {"personality_high", "errno=EPERM"},
        {"abi32", "killed=SYS"},
        {"x32", "killed=SYS"},
        {"newer_than_libseccomp", "errno=ENOSYS"},
    };
    for (const auto& [cls, expected] : denied) {
        CAPTURE(cls);
        CAPTURE(outside[cls]);
        CAPTURE(open[cls]);
        CHECK(inside[cls] == expected);
        // Outside, the same call reaches the kernel and is answered by it: success, or the kernel's own
        // verdict on the arguments (EINVAL, EBADF, ENOTTY; ENOSYS where this kernel lacks the feature) —
        // not the filter's answer. (In a chroot the host refuses new user namespaces itself: there the
        // sandbox without the filter makes the comparison.)
        CHECK((outside[cls] != expected || open[cls] != expected));
        if (outside[cls] == "ok") {
            MESSAGE(cls << ": ok outside, " << expected
                        << " inside; without the filter inside: " << open[cls]);
        } else {
            MESSAGE(cls << ": " << outside[cls] << " outside (the kernel's answer), " << expected
                        << " inside");
        }
    }
    // Where only the filter stands in the way, the unconfined sandbox proves it: the same call succeeds
    // there.
    for (std::string cls :
         {"keyring", "userfaultfd", "io_uring", "unshare_user", "tiocsti", "tiocsti_high", "personality"}) {
        CAPTURE(cls);
        CHECK(open[cls] == "ok");
    }
    // The filter lets ordinary work through.
    for (std::string cls :
         {"control_getpid", "control_fork", "control_tcgets", "control_unshare_files", "personality_query"}) {
        CAPTURE(cls);
        CHECK(inside[cls] == "ok");
    }
}

TEST_SUITE("rootless-capable") {
    TEST_CASE("hardening: unshare -r inside fails, and works outside") {
        World w;
        Result r = w.sbox({"run", "--", "unshare", "-r", "true"});
        CHECK(r.status != 0);
        CHECK(r.err.find("Operation not permitted") != std::string::npos);
        Result outside = host({"unshare", "-r", "true"});
        if (outside.status != 0) {
            // A chroot, or a kernel that refuses user namespaces to this user: nothing to compare with.
            MESSAGE("unshare -r fails outside too here, so the comparison is skipped: " << describe(outside));
            return;
        }
        Result open = w.sbox({"run", "--security-opt", "seccomp=unconfined", "--", "unshare", "-r", "true"});
        CHECK_MESSAGE(open.status == 0, describe(open));
    }

    TEST_CASE("hardening: inspect shows the seccomp profile, and seccomp=unconfined says so loudly") {
        World w;
        std::string ref = w.create();
        auto security = w.inspect(ref)["details"]["security"];
        CHECK(security["seccomp"] == "default");
        CHECK(security["no_new_privs"] == true);
        auto denied = security["seccomp_profile"]["denied_eperm"];
        for (const char* cls : {"keyring", "bpf", "perf", "kexec", "modules", "userfaultfd", "io_uring",
                                "mount", "namespaces", "terminal", "personality"})
            CHECK_MESSAGE(denied.contains(cls), cls);
        CHECK(security["seccomp_profile"]["unknown_syscalls"].get<std::string>().rfind("ENOSYS", 0) == 0);
        Result status = w.exec(ref, {"grep", "^Seccomp:", "/proc/self/status"});
        CHECK(trim(status.out) == "Seccomp:\t2");

        Result created = w.sbox({"create", "--security-opt", "seccomp=unconfined"});
        REQUIRE_MESSAGE(created.status == 0, describe(created));
        CHECK(created.err.find("WARNING") != std::string::npos);
        CHECK(created.err.find("WITHOUT its system call filter") != std::string::npos);
        std::string open = trim(created.out);
        CHECK(w.inspect(open)["details"]["security"]["seccomp"] == "unconfined");
        CHECK(trim(w.exec(open, {"grep", "^Seccomp:", "/proc/self/status"}).out) == "Seccomp:\t0");

        Result bad = w.sbox({"create", "--security-opt", "apparmor=unconfined"});
        CHECK(bad.status == 2);
        CHECK(bad.err.find("seccomp=unconfined") != std::string::npos);
    }

    TEST_CASE("limits: forking stops at the default cap of 2048 processes") {
        World w;
        // Every child execs a sleep; the parent forks until the kernel refuses (EAGAIN) and reports how many.
        Result r =
            w.sbox({"run", "--", "python3", "-c",
                    "import os\nn = 0\n"
                    "try:\n"
                    "    while True:\n"
                    "        if os.fork() == 0:\n            os.execv('/bin/sleep', ['sleep', '600'])\n"
                    "        n += 1\n"
                    "except OSError as e:\n    print(n, e.errno)\n"});
        REQUIRE_MESSAGE(r.status == 0, describe(r));
        std::istringstream in(r.out);
        int n = 0, err = 0;
        in >> n >> err;
        CHECK(err == EAGAIN);
        // The supervisor and the parent count too; a process or two may still be on its way out.
        CHECK(n <= 2046);
        CHECK(n >= 2000);
        MESSAGE("forked " << n << " processes before EAGAIN");
        CHECK(w.leftovers().empty());
    }

    TEST_CASE("limits: a fork bomb is contained and the host stays responsive") {
        World w;
        Process bomb = w.spawn({"run", "--", "sh", "-c", "b() { b | b & }; b; exec sleep 1000"});
        std::string ref = w.wait_running(bomb);
        pid_t sup = w.supervisor_pid(ref);
        // However its population swings, it never passes the cap (RLIMIT_NPROC, 2048 per user).
        int most = 0;
        for (int i = 0; i < 50; ++i) {
            int n = processes_in_sandbox(sup);
            most = std::max(most, n);
            CHECK(n <= 2048);
        }
        MESSAGE("fork bomb: at most " << most << " processes in the sandbox seen (cap 2048)");
        // The host still starts processes, and sbox still answers.
        CHECK(host({"true"}).status == 0);
        CHECK(w.sbox({"ls", "-q"}).status == 0);
        Result killed = w.sbox({"kill", ref});
        CHECK_MESSAGE(killed.status == 0, describe(killed));
        bomb.finish();
        check_gone(w, sup);
    }

    TEST_CASE("limits: a disk filler gets ENOSPC and the host's disk is untouched") {
        World w;
        std::string ref = w.create({"--disk", "32m"});
        std::uint64_t before = blocks_under(w.root());
        Result fill =
            w.exec(ref, {"sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>&1; echo dd=$?"});
        CHECK(fill.out.find("No space left on device") != std::string::npos);
        CHECK(fill.out.find("dd=1") != std::string::npos);
        std::uint64_t after = blocks_under(w.root());
        CHECK_MESSAGE(after < before + (1u << 20), "sbox's state grew from " << before << " to " << after);
        auto disk = w.inspect(ref)["details"]["limits"]["disk"];
        CHECK(disk["limit"] == 32u << 20);
        CHECK(disk["used"].get<std::uint64_t>() >= 31u << 20);
        // A file of the same size as root elsewhere in the sandbox fails too: the limit is the sandbox's.
        Result more = w.exec(ref, {"sh", "-c", "echo x > /etc/more 2>&1; echo rc=$?"});
        CHECK(more.out.find("rc=1") != std::string::npos);
        // Freed space is usable again.
        CHECK(w.exec(ref, {"rm", "/tmp/fill"}).status == 0);
        CHECK(w.exec(ref, {"sh", "-c", "echo x > /etc/more"}).status == 0);
    }

    TEST_CASE("limits: memory, cpus and pids are enforced, or refused with the reason") {
        World w;
        Result created = w.sbox({"create", "--memory", "64m", "--cpus", "0.2", "--pids", "40"});
        if (created.status != 0) {
            // Rootless on a machine without delegated cgroups: a clear error, not a silent unlimited sandbox.
            CHECK(created.status == 1);
            CHECK(created.err.find("cannot enforce") != std::string::npos);
            CHECK(w.leftovers().empty());
            MESSAGE("limits refused here, as they must be: " << trim(created.err));
            return;
        }
        std::string ref = trim(created.out);
        // A memory hog is killed (137) and inspect reports the OOM kill.
        Result hog = w.exec(ref, {"python3", "-c", "x = bytearray(512 * 1024 * 1024); print('survived')"});
        CHECK(hog.status == 137);
        CHECK(hog.out.find("survived") == std::string::npos);
        auto limits = w.inspect(ref)["details"]["limits"];
        CHECK(limits["memory"]["limit"] == 64u << 20);
        CHECK(limits["memory"]["oom_kills"].get<std::uint64_t>() >= 1);
        CHECK(limits["memory"]["usage"].get<std::uint64_t>() <= 64u << 20);
        // The sandbox lives on after its command was killed.
        CHECK(w.check_output(ref, {"echo", "alive"}) == "alive\n");

        // A CPU-bound loop of 0.3 s of CPU time at 0.2 CPUs must be throttled.
        CHECK(limits["cpus"]["limit"] == 0.2);
        Result busy = w.exec(ref, {"python3", "-c",
                                   "import time\nt = time.process_time()\n"
                                   "while time.process_time() - t < 0.3: pass"});
        CHECK(busy.status == 0);
        CHECK(w.inspect(ref)["details"]["limits"]["cpus"]["throttled_periods"].get<std::uint64_t>() >= 1);

        // The pids cap counts every process of the sandbox; forking stops with EAGAIN.
        Result forks = w.exec(ref, {"python3", "-c",
                                    "import os, time\nn = 0\n"
                                    "try:\n"
                                    "    while True:\n"
                                    "        if os.fork() == 0:\n"
                                    "            null = os.open('/dev/null', os.O_WRONLY)\n"
                                    "            os.dup2(null, 1)\n            os.dup2(null, 2)\n"
                                    "            time.sleep(60)\n            os._exit(0)\n"
                                    "        n += 1\n"
                                    "except OSError as e:\n    print(n, e.errno)\n"});
        auto words = lines(forks.out);
        REQUIRE_MESSAGE(!words.empty(), describe(forks));
        std::istringstream in(words.front());
        int n = 0, err = 0;
        in >> n >> err;
        CHECK(err == EAGAIN);
        CHECK(n < 40);
        CHECK(n > 10);
        CHECK(w.inspect(ref)["details"]["limits"]["pids"]["limit"] == 40);
    }

    TEST_CASE("limits: impossible values are clear errors") {
        World w;
        long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
        Result many = w.sbox({"create", "--cpus", std::to_string(cpus + 1)});
        CHECK(many.status == 1);
        CHECK(many.err.find("this machine has only " + std::to_string(cpus) + " CPUs") != std::string::npos);
        Result one = w.sbox({"run", "--pids", "1", "--", "true"});
        CHECK(one.status == 125);
        CHECK(one.err.find("--pids") != std::string::npos);
        Result tiny = w.sbox({"create", "--memory", "1k"});
        CHECK(tiny.status == 2);
        CHECK(w.leftovers().empty());
    }
} // TEST_SUITE

// sbox pause / sbox resume: every process of a sandbox stopped and continued, shown by ls and inspect,
// refused where it makes no sense, and nothing left behind by kill. The first suite also runs as an
// unprivileged user (run-unprivileged.sh), where pause uses signals; as root, create's sandboxes use a cgroup
// freezer (v2 where usable, else v1; SBOX_CGROUP chooses one in the root-only tests).
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>

#include "harness.hpp"

using namespace it;

namespace {

// A background process in the sandbox that writes an ever-growing counter to /tmp/c every 50 ms.
const std::vector<std::string> kCounter = {"sh", "-c",
                                           "i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.05; done"};

// The host pids of every process below `pid` (not `pid` itself), from /proc/PID/task/TID/children.
std::vector<pid_t> process_tree(pid_t pid) {
    std::vector<pid_t> out, todo = {pid};
    std::set<pid_t> seen;
    while (!todo.empty()) {
        pid_t p = todo.back();
        todo.pop_back();
        std::string task_dir = "/proc/" + std::to_string(p) + "/task";
        std::vector<std::string> tids;
        if (auto* d = ::opendir(task_dir.c_str())) {
            while (auto* e = ::readdir(d))
                if (e->d_name[0] != '.') tids.emplace_back(e->d_name);
            ::closedir(d);
        }
        for (const auto& tid : tids) {
            std::istringstream children(read_file(task_dir + "/" + tid + "/children"));
            pid_t c;
            while (children >> c)
                if (seen.insert(c).second) {
                    out.push_back(c);
                    todo.push_back(c);
                }
        }
    }
    return out;
}

// details.cgroup: the sandbox's cgroup directory, or "" (null: pause uses signals).
std::string cgroup_path(const nlohmann::json& details) {
    auto it = details.find("cgroup");
    return it != details.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The state letter of /proc/PID/status ("State:\tT (stopped)" -> 'T'); 0 when it is gone.
char process_state(pid_t pid) {
    std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    auto at = status.find("State:\t");
    if (at == std::string::npos || at + 7 >= status.size()) return 0;
    return status[at + 7];
}

std::string states_of(const std::vector<pid_t>& pids) {
    std::string out;
    for (pid_t p : pids)
        out += std::to_string(p) + ":" + std::string(1, process_state(p) ? process_state(p) : '-') + " ";
    return out;
}

// The counter as the sandbox's counter process sees it, read from the host through /proc/PID/root (where
// this test may: otherwise nullopt).
std::optional<long> counter_via_proc(const std::vector<pid_t>& pids) {
    for (pid_t p : pids) {
        std::string text = read_file("/proc/" + std::to_string(p) + "/root/tmp/c");
        if (!text.empty()) return std::atol(text.c_str());
    }
    return std::nullopt;
}

long counter(const World& w, const std::string& ref) {
    Result r = w.exec(ref, {"cat", "/tmp/c"});
    INFO("cat /tmp/c: " << describe(r));
    REQUIRE(r.status == 0);
    return std::atol(r.out.c_str());
}

// Every process of the sandbox is stopped the way its pause method stops them: frozen cgroup (and, v1, the
// tasks in the refrigerator, 'D'), or SIGSTOP ('T').
void check_stopped(const nlohmann::json& details, const std::vector<pid_t>& pids) {
    std::string method = details.value("pause_method", "");
    INFO("details: " << details.dump() << "\nprocesses: " << states_of(pids));
    REQUIRE(!pids.empty());
    if (method == "signals") {
        for (pid_t p : pids) {
            char s = process_state(p);
            CHECK((s == 'T' || s == 't' || s == 0));
        }
    } else if (method == "freezer-v2") {
        std::string cgroup = cgroup_path(details);
        CHECK(read_file(cgroup + "/cgroup.events").find("frozen 1") != std::string::npos);
        CHECK(read_file(cgroup + "/cgroup.freeze") == "1\n");
    } else if (method == "freezer-v1") {
        std::string cgroup = cgroup_path(details);
        CHECK(read_file(cgroup + "/freezer.state") == "FROZEN\n");
        for (pid_t p : pids)
            CHECK(process_state(p) == 'D'); // the v1 refrigerator sleeps uninterruptibly
    } else {
        FAIL("unknown pause_method '" << method << "'");
    }
}

void check_continued(const nlohmann::json& details, const std::vector<pid_t>& pids) {
    INFO("details: " << details.dump() << "\nprocesses: " << states_of(pids));
    for (pid_t p : pids) {
        char s = process_state(p);
        CHECK(s != 'T');
        CHECK(s != 't');
    }
    std::string cgroup = cgroup_path(details);
    std::string method = details.value("pause_method", "");
    if (method == "freezer-v2")
        CHECK(read_file(cgroup + "/cgroup.events").find("frozen 0") != std::string::npos);
    if (method == "freezer-v1") CHECK(read_file(cgroup + "/freezer.state") == "THAWED\n");
}

// Everything of the sandbox with supervisor `sup` and cgroup `cgroup` (or none) is gone.
void check_gone(const World& w, pid_t sup, const std::string& cgroup) {
    INFO("cgroup '" << cgroup << "'");
    it::check_gone(w, sup);
    if (!cgroup.empty()) CHECK_FALSE(exists(cgroup));
}

// Sets an environment variable for the life of the object (World copies the environment when it is made).
struct ScopedEnv {
    std::string name;
    std::optional<std::string> old;
    ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) {
        if (const char* v = std::getenv(name.c_str())) old = v;
        ::setenv(name.c_str(), value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (old)
            ::setenv(name.c_str(), old->c_str(), 1);
        else
            ::unsetenv(name.c_str());
    }
};

// The whole story on one sandbox made by `create`: pause, what shows, exec refused, resume, the errors of
// doing either twice, and kill of a paused sandbox.
void pause_story(const World& w) {
    std::string ref = w.create();
    std::string id = ref.substr(6);
    Result d = w.exec(ref, kCounter, {"-d"});
    REQUIRE(d.status == 0);
    REQUIRE(eventually([&] { return w.exec(ref, {"test", "-s", "/tmp/c"}).status == 0; }, 30s));
    pid_t sup = w.supervisor_pid(ref);
    auto details = w.inspect(ref)["details"];
    std::string cgroup = cgroup_path(details);
    INFO("details: " << details.dump());
    REQUIRE(details.contains("pause_method"));
    if (!cgroup.empty()) {
        // Every process of the sandbox is in its cgroup: the supervisor and what exec started.
        auto procs = read_file(cgroup + "/cgroup.procs");
        for (pid_t p : process_tree(sup))
            CHECK(procs.find(std::to_string(p) + "\n") != std::string::npos);
        CHECK(procs.find(std::to_string(sup) + "\n") != std::string::npos);
    }

    Result p = w.sbox({"pause", ref});
    INFO("pause: " << describe(p));
    REQUIRE(p.status == 0);
    CHECK(p.out == ref + "\n");
    CHECK(p.err.empty());
    auto pids = process_tree(sup);
    check_stopped(details, pids);

    // ls and inspect say so.
    auto list = w.ls();
    REQUIRE(list.size() == 1);
    CHECK(list[0]["status"] == "paused");
    CHECK(w.inspect(ref)["status"] == "paused");
    Result table = w.sbox({"ls"});
    CHECK(table.out.find("paused") != std::string::npos);
    Result human = w.sbox({"inspect", ref});
    CHECK(human.out.find("paused") != std::string::npos);

    // The counter stands still (where this test can read it from the host).
    if (auto before = counter_via_proc(pids)) {
        std::this_thread::sleep_for(500ms);
        auto after = counter_via_proc(pids);
        REQUIRE(after);
        CHECK(*after == *before);
    }

    // exec is refused with a clear message (sbox's own failure: 125).
    Result e = w.exec(ref, {"true"});
    INFO("exec into a paused sandbox: " << describe(e));
    CHECK(e.status == 125);
    CHECK(e.err.find("sandbox " + id + " is paused; resume it with sbox resume " + id) != std::string::npos);
    Result again = w.sbox({"pause", ref});
    CHECK(again.status == 1);
    CHECK(again.out.empty());
    CHECK(again.err.find("already paused") != std::string::npos);

    Result r = w.sbox({"resume", id});
    INFO("resume: " << describe(r));
    REQUIRE(r.status == 0);
    CHECK(r.out == ref + "\n");
    CHECK(w.inspect(ref)["status"] == "running");
    check_continued(details, pids);
    long c0 = counter(w, ref);
    CHECK(eventually([&] { return counter(w, ref) > c0; }, 30s));
    Result twice = w.sbox({"resume", ref});
    CHECK(twice.status == 1);
    CHECK(twice.err.find("is not paused") != std::string::npos);

    // kill of a paused sandbox takes everything.
    REQUIRE(w.sbox({"pause", ref}).status == 0);
    Result k = w.sbox({"kill", ref});
    INFO("kill: " << describe(k));
    CHECK(k.status == 0);
    CHECK(k.out == ref + "\n");
    CHECK(w.ls().empty());
    for (pid_t pid : pids)
        CHECK_FALSE(process_alive(pid));
    check_gone(w, sup, cgroup);
}

} // namespace

TEST_SUITE("rootless-capable") {

    TEST_CASE("pause: stops every process, ls and inspect say paused, exec is refused, resume continues") {
        World w;
        pause_story(w);
    }

    TEST_CASE("pause: a foreground sbox run is paused from another process") {
        World w;
        Process run = w.spawn(
            {"run", "--", "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.05; done"});
        std::string ref = w.wait_running(run);
        pid_t sup = w.supervisor_pid(ref);
        REQUIRE(eventually([&] { return w.exec(ref, {"test", "-s", "/tmp/c"}).status == 0; }, 30s));

        Result p = w.sbox({"pause", ref});
        INFO("pause: " << describe(p));
        REQUIRE(p.status == 0);
        auto details = w.inspect(ref)["details"];
        CHECK(w.inspect(ref)["status"] == "paused");
        auto pids = process_tree(sup);
        check_stopped(details, pids);
        CHECK(run.running()); // sbox run waits for its command, which is only stopped

        REQUIRE(w.sbox({"resume", ref}).status == 0);
        CHECK(w.inspect(ref)["status"] == "running");
        check_continued(details, pids);
        long c0 = counter(w, ref);
        CHECK(eventually([&] { return counter(w, ref) > c0; }, 30s));

        // Paused again, Ctrl-C (SIGTERM) to sbox run still removes the sandbox.
        Result again = w.sbox({"pause", ref});
        INFO("pause again: " << describe(again));
        REQUIRE(again.status == 0);
        run.signal(SIGTERM);
        Result end = run.finish({}, 60s);
        INFO("run: " << describe(end));
        CHECK_FALSE(end.hung);
        CHECK(end.status == 128 + SIGTERM);
        CHECK(w.ls().empty());
        check_gone(w, sup, cgroup_path(details));
    }

    TEST_CASE("pause: unknown and stopped sandboxes, several references, --json") {
        World w;
        Result none = w.sbox({"pause", "local/0123456789ab"});
        CHECK(none.status == 1);
        CHECK(none.out.empty());
        CHECK(none.err.find("no sandbox") != std::string::npos);
        Result none2 = w.sbox({"resume", "nothere"});
        CHECK(none2.status == 1);
        CHECK(none2.err.find("no sandbox") != std::string::npos);
        Result usage = w.sbox({"pause"});
        CHECK(usage.status == 2);

        std::string a = w.create(), b = w.create();
        // Several at once; one bad reference fails the command but not the others.
        Result both = w.sbox({"pause", a, "nothere", b});
        INFO("pause a nothere b: " << describe(both));
        CHECK(both.status == 1);
        CHECK(both.out == a + "\n" + b + "\n");
        CHECK(w.inspect(a)["status"] == "paused");
        CHECK(w.inspect(b)["status"] == "paused");
        Result json = w.sbox({"resume", "--json", a, b});
        INFO("resume --json: " << describe(json));
        CHECK(json.status == 0);
        CHECK(nlohmann::json::parse(json.out) == nlohmann::json::array({a, b}));
        CHECK(w.inspect(a)["status"] == "running");

        // A sandbox whose supervisor died is never paused, and cannot be paused or resumed.
        REQUIRE(w.sbox({"pause", a}).status == 0);
        pid_t sup = w.supervisor_pid(a);
        // (A task frozen by the v1 freezer does not die of SIGKILL before it is thawed.)
        if (w.inspect(a)["details"].value("pause_method", "") == "freezer-v1")
            REQUIRE(w.sbox({"resume", a}).status == 0);
        REQUIRE(::kill(sup, SIGKILL) == 0);
        REQUIRE(eventually([&] { return w.inspect(a)["status"] == "exited"; }, 30s));
        Result p = w.sbox({"pause", a});
        CHECK(p.status == 1);
        CHECK(p.err.find("is not running (exited)") != std::string::npos);
        Result r = w.sbox({"resume", a});
        CHECK(r.status == 1);
        CHECK(r.err.find("is not paused (exited)") != std::string::npos);
        CHECK(w.sbox({"kill", a, b}).status == 0);
        CHECK(w.leftovers().empty());
    }

    TEST_CASE("pause: a sandbox's lifetime ends when it is resumed after it") {
        World w;
        // A lifetime long enough to pause the sandbox within it on a loaded machine; the sleep then goes
        // past its end, whenever the pause happened.
        auto created = std::chrono::steady_clock::now();
        std::string ref = w.create({"--timeout", "5s"});
        pid_t sup = w.supervisor_pid(ref);
        std::string cgroup = cgroup_path(w.inspect(ref)["details"]);
        Result paused = w.sbox({"pause", ref});
        if (paused.status != 0 && std::chrono::steady_clock::now() - created >= 5s) {
            MESSAGE("inconclusive: the machine took more than 5 s to create and pause a sandbox");
            return;
        }
        REQUIRE(paused.status == 0);
        std::this_thread::sleep_until(created + 5500ms);
        // With a freezer the supervisor, which enforces the lifetime, is frozen too: the sandbox waits.
        if (!cgroup.empty()) CHECK(w.inspect(ref)["status"] == "paused");
        Result r = w.sbox({"resume", ref});
        CHECK((r.status == 0 || r.err.find("no sandbox") != std::string::npos));
        CHECK(eventually([&] { return w.ls().empty(); }, 30s));
        check_gone(w, sup, cgroup);
    }
}

TEST_CASE("pause: each cgroup hierarchy freezes, and kill leaves no cgroup behind (root)") {
    if (!is_root()) {
        MESSAGE("skipped: needs root (cgroups)");
        return;
    }
    for (std::string version : {"v2", "v1", "none"}) {
        CAPTURE(version);
        ScopedEnv choice("SBOX_CGROUP", version);
        World w;
        Result c = w.sbox({"create"});
        if (c.status != 0 && version != "none" && c.err.find("SBOX_CGROUP=" + version) != std::string::npos) {
            MESSAGE("cgroup " << version << " is not usable here: " << c.err);
            continue;
        }
        REQUIRE(c.status == 0);
        std::string first = trim(c.out);
        auto details = w.inspect(first)["details"];
        CHECK(details["pause_method"] == (version == "none" ? "signals" : "freezer-" + version));
        CHECK(w.sbox({"kill", first}).status == 0);
        if (version != "none") CHECK_FALSE(exists(cgroup_path(details)));
        pause_story(w);
    }
}

TEST_CASE("pause: kill sweeps the cgroups a crashed sbox left behind, and only its store's (root)") {
    if (!is_root()) {
        MESSAGE("skipped: needs root (cgroups)");
        return;
    }
    World w, other;
    std::string ref = w.create(), mine = other.create();
    std::string cgroup = cgroup_path(w.inspect(ref)["details"]);
    std::string foreign = cgroup_path(other.inspect(mine)["details"]);
    if (cgroup.empty()) {
        MESSAGE("skipped: no cgroup hierarchy is usable here");
        return;
    }
    // A cgroup of this store whose sandbox is gone (as a crash between the two would leave it).
    std::string dir = cgroup.substr(0, cgroup.rfind('/'));
    std::string base = cgroup.substr(cgroup.rfind('/') + 1);
    std::string stale = dir + "/" + base.substr(0, base.find('-') + 1) + "0123456789ab";
    REQUIRE(::mkdir(stale.c_str(), 0755) == 0);
    REQUIRE(w.sbox({"kill", ref}).status == 0);
    CHECK_FALSE(exists(stale));
    CHECK_FALSE(exists(cgroup));
    // The other store's sandbox keeps its cgroup, and its processes.
    CHECK(exists(foreign));
    CHECK(other.inspect(mine)["status"] == "running");
    CHECK(other.check_output(mine, {"echo", "alive"}) == "alive\n");
    REQUIRE(other.sbox({"kill", "--all"}).status == 0);
    CHECK_FALSE(exists(foreign));
}

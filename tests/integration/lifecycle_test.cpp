// The life of local sandboxes: create, ls, inspect, names, labels, lifetimes, kill, run, many at once, and
// recovery from crashes. These also run as an unprivileged user (run-unprivileged.sh).
#include <algorithm>
#include <ctime>
#include <regex>
#include <set>
#include <signal.h>
#include <thread>

#include <doctest/doctest.h>

#include "harness.hpp"

using namespace it;

namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

const nlohmann::json* find_entry(const nlohmann::json& list, const std::string& ref) {
    for (auto& e : list)
        if (e.value("ref", "") == ref) return &e;
    return nullptr;
}

// A time in sbox's JSON: Unix seconds, or an RFC 3339 UTC string ("2026-01-31T12:00:00Z"). -1 when neither.
std::int64_t timestamp(const nlohmann::json& j) {
    INFO("timestamp: " << j.dump());
    if (j.is_number_integer()) return j.get<std::int64_t>();
    REQUIRE(j.is_string());
    std::tm tm{};
    std::string s = j.get<std::string>();
    REQUIRE(std::regex_match(s, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)")));
    REQUIRE(strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
    return static_cast<std::int64_t>(timegm(&tm));
}

} // namespace

TEST_SUITE("rootless-capable") {

    TEST_CASE("lifecycle: create prints only the reference, ls and inspect describe it, kill removes it") {
        World w;
        Result r = w.sbox({"create"});
        INFO("create: " << describe(r));
        REQUIRE(r.status == 0);
        CHECK(std::regex_match(r.out, std::regex("local/[0-9a-f]{12}\n")));
        std::string ref = trim(r.out), id = ref.substr(6);
        const auto now = static_cast<std::int64_t>(std::time(nullptr));

        CHECK(w.ls_q() == std::vector<std::string>{ref});
        Result table = w.sbox({"ls"});
        CHECK(table.status == 0);
        CHECK(table.out.find(id) != std::string::npos);

        auto list = w.ls();
        INFO("ls --json: " << list.dump());
        REQUIRE(list.size() == 1);
        auto& e = list[0];
        CHECK(e["provider"] == "local");
        CHECK(e["id"] == id);
        CHECK(e["ref"] == ref);
        CHECK(e.contains("name"));
        CHECK(e["status"] == "running");
        CHECK(std::abs(timestamp(e["created_at"]) - now) < 3600);
        REQUIRE(e["labels"].is_object());
        CHECK(e["labels"].value("created-by", "") == "sbox");

        for (std::string how : {ref, id}) {
            auto j = w.inspect(how);
            INFO("inspect " << how << ": " << j.dump());
            CHECK(j["ref"] == ref);
            CHECK(j["id"] == id);
            CHECK(j["provider"] == "local");
            CHECK(j["status"] == "running");
            CHECK(j["details"].is_object());
        }
        Result human = w.sbox({"inspect", ref});
        CHECK(human.status == 0);
        CHECK(human.out.find(id) != std::string::npos);

        pid_t sup = w.supervisor_pid(ref);
        Result k = w.sbox({"kill", ref});
        INFO("kill: " << describe(k));
        CHECK(k.status == 0);
        CHECK(w.ls_q().empty());
        check_gone(w, sup);

        // Now it is unknown: inspect and kill fail with 1 and say why; --json gives the error object.
        Result again = w.sbox({"kill", ref});
        CHECK(again.status == 1);
        CHECK(again.err.starts_with("sbox: "));
        Result gone = w.sbox({"inspect", ref});
        CHECK(gone.status == 1);
        CHECK(gone.err.starts_with("sbox: "));
        Result json = w.sbox({"inspect", ref, "--json"});
        INFO("inspect --json of a removed sandbox: " << describe(json));
        CHECK(json.status == 1);
        CHECK(json.out.empty());
        auto err = nlohmann::json::parse(json.err, nullptr, false);
        REQUIRE(err.is_object());
        REQUIRE(err["error"].is_object());
        CHECK((err["error"]["kind"] == "not-found" || err["error"]["kind"] == "not_found"));
        CHECK(!err["error"].value("message", "").empty());
    }

    TEST_CASE("lifecycle: --name resolves everywhere and must be unique") {
        World w;
        std::string name = "it-" + random_hex(8);
        auto ref = w.create({"--name", name});
        auto list = w.ls();
        REQUIRE(list.size() == 1);
        CHECK(list[0]["name"] == name);
        CHECK(w.inspect(name)["ref"] == ref);
        CHECK(w.check_output(name, {"echo", "by name"}) == "by name\n");

        Result dup = w.sbox({"create", "--name", name});
        INFO("duplicate name: " << describe(dup));
        CHECK(dup.status == 1);
        CHECK(dup.out.empty());
        CHECK(dup.err.starts_with("sbox: "));
        CHECK(w.ls_q().size() == 1);

        Result k = w.sbox({"kill", name});
        CHECK(k.status == 0);
        CHECK(w.ls_q().empty());
        // The name is free again.
        auto again = w.create({"--name", name});
        CHECK(again != ref);
    }

    TEST_CASE("lifecycle: labels show in ls --json and filter ls") {
        World w;
        auto a = w.create({"-l", "team=a", "-l", "tier=x"});
        auto b = w.create({"-l", "team=b"});
        auto list = w.ls();
        INFO("ls --json: " << list.dump());
        auto* ea = find_entry(list, a);
        auto* eb = find_entry(list, b);
        REQUIRE(ea);
        REQUIRE(eb);
        CHECK((*ea)["labels"]["team"] == "a");
        CHECK((*ea)["labels"]["tier"] == "x");
        CHECK((*ea)["labels"]["created-by"] == "sbox");
        CHECK((*eb)["labels"]["team"] == "b");
        CHECK_FALSE((*eb)["labels"].contains("tier"));

        Result fa = w.sbox({"ls", "--json", "-l", "team=a"});
        REQUIRE(fa.status == 0);
        auto ja = nlohmann::json::parse(fa.out);
        REQUIRE(ja.size() == 1);
        CHECK(ja[0]["ref"] == a);
        Result fb = w.sbox({"ls", "-q", "-l", "team=b"});
        CHECK(lines(fb.out) == std::vector<std::string>{b});
        Result none = w.sbox({"ls", "-q", "-l", "team=c"});
        CHECK(none.status == 0);
        CHECK(none.out.empty());
        Result both = w.sbox({"ls", "-q", "-l", "team=a", "-l", "tier=x"});
        CHECK(lines(both.out) == std::vector<std::string>{a});
        Result mismatch = w.sbox({"ls", "-q", "-l", "team=b", "-l", "tier=x"});
        CHECK(mismatch.out.empty());
        // A bare key matches any value.
        Result any = w.sbox({"ls", "-q", "-l", "tier"});
        CHECK(lines(any.out) == std::vector<std::string>{a});
    }

    TEST_CASE("lifecycle: create --timeout removes the sandbox when its lifetime ends") {
        World w;
        auto ref = w.create({"--timeout", "2s"});
        pid_t sup = w.supervisor_pid(ref);
        auto j = w.inspect(ref);
        INFO("inspect: " << j.dump());
        // The lifetime shows: it ends about 2 s after creation.
        REQUIRE(j.contains("expires_at"));
        CHECK(timestamp(j["expires_at"]) - timestamp(j["created_at"]) >= 1);
        CHECK(timestamp(j["expires_at"]) - timestamp(j["created_at"]) <= 3);
        bool gone = eventually([&] { return !contains(w.ls_q(), ref); }, 60s);
        CHECK(gone);
        Result r = w.sbox({"inspect", ref});
        INFO("inspect after the lifetime: " << describe(r));
        CHECK(r.status == 1);
        // The supervisor removes what it can; whatever else must be gone once a later sbox command has
        // looked.
        CHECK(eventually([&] { return !process_alive(sup) && w.leftovers().empty(); }, 30s));
        check_gone(w, sup);
    }

    TEST_CASE("lifecycle: kill removes every process, mount and state file") {
        become_subreaper(); // whatever sbox leaves running becomes visible as this test's descendant
        World w;
        auto ref = w.create();
        auto other = w.create();
        pid_t sup = w.supervisor_pid(ref);
        REQUIRE(w.exec(ref, {"sleep", "1005"}, {"-d"}).status == 0);
        REQUIRE(process_alive(sup));
        std::string pidns = ns_of(sup, "pid");
        // The two ways this test finds what is left are able to see a live sandbox at all.
        auto before = descendants();
        CHECK(std::find(before.begin(), before.end(), sup) != before.end());
        auto mentioning = w.processes();
        if (std::find(mentioning.begin(), mentioning.end(), sup) == mentioning.end())
            MESSAGE("the supervisor " << sup
                                      << " is not recognisable by SBOX_ROOT here; relying on descendants");

        Result k = w.sbox({"kill", ref});
        INFO("kill: " << describe(k));
        CHECK(k.status == 0);
        CHECK(w.ls_q() == std::vector<std::string>{other});
        CHECK_FALSE(process_alive(sup));
        if (!pidns.empty()) {
            for (pid_t p : all_pids()) {
                INFO("process " << p << " is still in the killed sandbox's PID namespace");
                CHECK((ns_of(p, "pid") != pidns || !process_alive(p)));
            }
        }
        // The other sandbox is untouched.
        CHECK(w.check_output(other, {"echo", "ok"}) == "ok\n");

        Result all = w.sbox({"kill", "--all"});
        CHECK(all.status == 0);
        CHECK(w.ls_q().empty());
        check_gone(w, sup);
        auto left = descendants();
        CHECK(left.empty());
        CHECK(w.processes().empty());
        // kill --all with nothing to kill is fine.
        CHECK(w.sbox({"kill", "--all"}).status == 0);
    }

    TEST_CASE("lifecycle: run -d prints the reference, and the sandbox goes away when the command ends") {
        World w;
        Result r = w.spawn({"run", "-d", "--", "sh", "-c", "sleep 2; exit 0"}).finish({}, 60s);
        INFO("run -d: " << describe(r));
        REQUIRE_FALSE(r.hung);
        CHECK(r.status == 0);
        CHECK(std::regex_match(r.out, std::regex("local/[0-9a-f]{12}\n")));
        std::string ref = trim(r.out);
        CHECK(contains(w.ls_q(), ref));
        CHECK(eventually([&] { return w.ls_q().empty(); }, 60s));
        CHECK(eventually([&] { return w.leftovers().empty(); }, 30s));
        CHECK(w.mounts().empty());
    }

    TEST_CASE("lifecycle: run removes its sandbox") {
        World w;
        Result r = w.sbox({"run", "--", "true"});
        INFO(describe(r));
        CHECK(r.status == 0);
        CHECK(r.out.empty());
        CHECK(w.ls_q().empty());
        CHECK(w.leftovers().empty());
        CHECK(w.mounts().empty());
        Result failing = w.sbox({"run", "--", "sh", "-c", "exit 7"});
        CHECK(failing.status == 7);
        CHECK(w.ls_q().empty());
        CHECK(w.leftovers().empty());
    }

    TEST_CASE("lifecycle: SIGTERM or SIGINT to sbox run removes the sandbox") {
        for (int sig : {SIGTERM, SIGINT}) {
            CAPTURE(sig);
            World w;
            auto p = w.spawn({"run", "--", "sleep", "1006"});
            std::string ref = w.wait_running(p);
            pid_t sup = w.supervisor_pid(ref);
            // The command has started (so the signal does not merely interrupt the creation).
            REQUIRE(eventually([&] {
                return w.check_output(ref, {"ps", "-e", "-o", "args="}).find("sleep 1006") !=
                       std::string::npos;
            }));
            p.signal(sig);
            Result r = p.finish({}, 120s);
            INFO("sbox run after signal " << sig << ": " << describe(r));
            CHECK_FALSE(r.hung);
            CHECK(r.status == 128 + sig);
            CHECK(w.ls_q().empty());
            check_gone(w, sup);
        }
    }

    TEST_CASE("lifecycle: 20 sandboxes created in parallel, each used, all killed") {
        World w;
        const int n = 20;
        std::vector<Process> creates;
        for (int i = 0; i < n; ++i)
            creates.push_back(w.spawn({"create", "-l", "index=" + std::to_string(i)}));
        std::vector<std::string> refs;
        for (auto& p : creates) {
            Result r = p.finish();
            INFO("create: " << describe(r));
            CHECK(r.status == 0);
            if (r.status == 0) refs.push_back(trim(r.out));
        }
        REQUIRE(refs.size() == static_cast<std::size_t>(n));
        CHECK(std::set<std::string>(refs.begin(), refs.end()).size() == refs.size());
        auto listed = w.ls_q();
        CHECK(std::set<std::string>(listed.begin(), listed.end()) ==
              std::set<std::string>(refs.begin(), refs.end()));

        // Used in parallel too.
        std::vector<Process> execs;
        for (int i = 0; i < n; ++i)
            execs.push_back(
                w.spawn({"exec", refs[i], "--", "sh", "-c", "echo " + std::to_string(i) + "; uname -n"}));
        for (int i = 0; i < n; ++i) {
            Result r = execs[i].finish();
            INFO("exec in " << refs[i] << ": " << describe(r));
            CHECK(r.status == 0);
            CHECK(r.out == std::to_string(i) + "\n" + refs[i].substr(6) + "\n");
        }
        std::vector<pid_t> sups;
        for (auto& ref : refs)
            sups.push_back(w.supervisor_pid(ref));
        CHECK(std::set<pid_t>(sups.begin(), sups.end()).size() == sups.size());

        std::vector<std::string> kill{"kill"};
        kill.insert(kill.end(), refs.begin(), refs.end());
        Result k = w.sbox(kill);
        INFO("kill: " << describe(k));
        CHECK(k.status == 0);
        CHECK(w.ls_q().empty());
        for (pid_t sup : sups)
            CHECK_FALSE(process_alive(sup));
        CHECK(w.leftovers().empty());
        CHECK(w.mounts().empty());
    }

    TEST_CASE("lifecycle: a supervisor killed with SIGKILL shows as not running and is cleaned by kill") {
        World w;
        auto ref = w.create();
        auto survivor = w.create();
        pid_t sup = w.supervisor_pid(ref);
        REQUIRE(kill(sup, SIGKILL) == 0);
        REQUIRE(eventually([&] { return !process_alive(sup); }));

        auto list = w.ls();
        INFO("ls --json after the crash: " << list.dump());
        auto* e = find_entry(list, ref);
        REQUIRE(e);
        CHECK((*e)["status"] != "running");
        CHECK((*e)["status"] != "creating");
        CHECK((*find_entry(list, survivor))["status"] == "running");
        CHECK(w.inspect(ref)["status"] != "running");

        Result r = w.exec(ref, {"true"});
        INFO("exec into the crashed sandbox: " << describe(r));
        CHECK(r.status == 125);
        CHECK(r.err.starts_with("sbox: "));

        Result k = w.sbox({"kill", ref});
        INFO("kill: " << describe(k));
        CHECK(k.status == 0);
        CHECK(w.ls_q() == std::vector<std::string>{survivor});
        CHECK(w.check_output(survivor, {"echo", "ok"}) == "ok\n");
        CHECK(w.sbox({"kill", survivor}).status == 0);
        check_gone(w, sup);
    }

    TEST_CASE("lifecycle: an sbox killed in the middle of create leaves nothing that looks running") {
        become_subreaper();
        World w;
        // SIGKILL at different moments of create: at once, and after growing delays (whatever it had done by
        // then).
        for (int delay_us :
             {0, 250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 10000, 15000}) {
            auto p = w.spawn({"create"});
            if (delay_us) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
            bool was_running = p.running();
            p.signal(SIGKILL);
            Result r = p.finish();
            MESSAGE("create killed after " << delay_us << " us (still running: " << was_running << "): exit "
                                           << r.status << ", stdout " << trim(r.out));
        }
        // Whatever ls shows as running really runs.
        auto list = w.ls();
        MESSAGE("ls --json after the interrupted creates: " << list.dump());
        for (auto& e : list) {
            if (e["status"] != "running") continue;
            std::string ref = e["ref"];
            Result r = w.exec(ref, {"true"});
            INFO(ref << " is listed as running; exec: " << describe(r));
            CHECK(r.status == 0);
        }
        // A later create is not disturbed by the debris.
        auto ok = w.create();
        CHECK(w.check_output(ok, {"echo", "fine"}) == "fine\n");

        Result k = w.sbox({"kill", "--all"});
        INFO("kill --all: " << describe(k));
        CHECK(k.status == 0);
        CHECK(w.ls_q().empty());
        // Sandboxes whose creator was killed may still be taking themselves down when kill --all returns
        // (they are no longer listed); that must finish on its own: no process and no state of them stays
        // behind.
        std::vector<pid_t> left;
        std::vector<std::string> left_files;
        bool clean = eventually([&] {
            left = descendants();
            left_files = w.leftovers();
            return left.empty() && left_files.empty();
        });
        std::string pids, files;
        for (pid_t p : left)
            pids += std::to_string(p) + " (" + trim(read_file("/proc/" + std::to_string(p) + "/comm")) + ") ";
        for (auto& f : left_files)
            files += f + "\n";
        INFO("left running: " << pids);
        INFO("left under SBOX_ROOT:\n" << files);
        CHECK(clean);
        CHECK(w.ls_q().empty());
        CHECK(w.mounts().empty());
    }

} // TEST_SUITE

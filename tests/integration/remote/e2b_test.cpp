// The E2B provider against the fake E2B service (tests/fakes/e2b), which the official SDK is held to by
// "fakes: the official e2b SDK passes against the fake E2B": every scenario here goes through `sbox -p e2b`.
#include <doctest/doctest.h>

#include <csignal>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.hpp"
#include "remote/fake.hpp"
#include "terminal.hpp"

using namespace it;

namespace {

constexpr const char* kKey = "e2b_test_key";

// A request's header as the fake logged it (names lower-cased, values as an array).
std::string header(const nlohmann::json& request, const std::string& name) {
    const auto& h = request["headers"];
    if (!h.contains(name)) return {};
    const auto& v = h[name];
    if (v.is_array()) return v.empty() ? std::string() : v[0].get<std::string>();
    return v.get<std::string>();
}

// A world whose sbox talks to a fresh fake E2B.
struct E2B {
    FakeService fake{"e2b/server.mjs", {"--api-key", kKey}};
    World w;
    E2B() {
        w.set_env("E2B_API_KEY", kKey);
        w.set_env("E2B_API_URL", fake.url());
        w.set_env("E2B_SANDBOX_URL", fake.url());
        w.set_env("SBOX_PROVIDER", "e2b");
    }
    Result sbox(const std::vector<std::string>& args) const { return w.sbox(args); }
    Result sbox_in(const std::vector<std::string>& args, const std::string& in) const {
        return w.sbox_in(args, in);
    }
    std::string create(const std::vector<std::string>& opts = {}) const {
        std::vector<std::string> args = {"create"};
        args.insert(args.end(), opts.begin(), opts.end());
        Result r = sbox(args);
        REQUIRE_MESSAGE(r.status == 0, describe(r));
        std::string ref = trim(r.out);
        REQUIRE(ref.starts_with("e2b/"));
        return ref;
    }
    std::string id_of(const std::string& ref) const { return ref.substr(4); }
    // Sandboxes the fake holds (running or paused).
    std::size_t live() const {
        auto r = http_request(fake.port(), "GET", "/v2/sandboxes?state=running,paused", {},
                              {std::string("X-API-KEY: ") + kKey});
        auto j = nlohmann::json::parse(r.body, nullptr, false);
        REQUIRE(j.is_array());
        return j.size();
    }
    // Every request the fake saw was valid against E2B's spec.
    void check_all_valid() const {
        for (const auto& r : fake.requests())
            CHECK_MESSAGE(r.value("valid", true), "invalid request: " << r.dump());
    }
};

} // namespace

TEST_CASE("e2b: create, ls, inspect, exec and kill through the fake E2B") {
    E2B e;
    std::string ref = e.create({"--name", "web", "-l", "team=a", "-e", "GREETING=hi", "--timeout", "10m"});
    std::string id = e.id_of(ref);
    CHECK(id.size() == 20);

    auto creates = e.fake.requests_to("POST", "/v2/sandboxes");
    REQUIRE(creates.size() == 1);
    auto body = nlohmann::json::parse(creates[0].value("body", "{}"));
    CHECK(body["templateID"] == "base");
    CHECK(body["timeout"] == 600);
    CHECK(body["envVars"]["GREETING"] == "hi");
    CHECK(body["metadata"]["created-by"] == "sbox");
    CHECK(body["metadata"]["team"] == "a");
    CHECK(body["metadata"]["sbox-name"] == "web");
    CHECK(header(creates[0], "x-api-key") == kKey);

    Result out = e.sbox({"exec", ref, "--", "sh", "-c", "echo out; echo $GREETING; echo err >&2; exit 3"});
    CHECK(out.status == 3);
    CHECK(out.out == "out\nhi\n");
    CHECK(out.err == "err\n");

    // Arguments are argv, not a shell string.
    Result args = e.sbox({"exec", ref, "--", "printf", "%s|", "a b", "$HOME", "'q'"});
    CHECK(args.status == 0);
    CHECK(args.out == "a b|$HOME|'q'|");

    Result ls = e.sbox({"ls", "--json"});
    REQUIRE(ls.status == 0);
    auto list = nlohmann::json::parse(ls.out);
    REQUIRE(list.size() == 1);
    CHECK(list[0]["ref"] == ref);
    CHECK(list[0]["name"] == "web");
    CHECK(list[0]["labels"]["team"] == "a");
    CHECK(e.sbox({"ls", "-q", "-l", "team=a"}).out == ref + "\n");
    CHECK(e.sbox({"ls", "-q", "-l", "team=b"}).out.empty());
    // The label filter went to the service too.
    bool filtered = false;
    for (const auto& r : e.fake.requests_to("GET", "/v2/sandboxes"))
        if (r.value("path", "").find("metadata=") != std::string::npos) filtered = true;
    CHECK(filtered);

    Result inspect = e.sbox({"inspect", "web", "--json"});
    REQUIRE_MESSAGE(inspect.status == 0, describe(inspect));
    auto info = nlohmann::json::parse(inspect.out);
    CHECK(info["ref"] == ref);
    CHECK(info["status"] == "running");

    Result dup = e.sbox({"create", "--name", "web"});
    CHECK(dup.status == 1);
    CHECK(dup.err.find("already used") != std::string::npos);

    Result kill = e.sbox({"kill", "web"});
    CHECK_MESSAGE(kill.status == 0, describe(kill));
    CHECK(e.live() == 0);
    Result gone = e.sbox({"exec", ref, "--", "true"});
    CHECK(gone.status == 125);
    CHECK(gone.err.find("no sandbox") != std::string::npos);
    e.check_all_valid();
}

TEST_CASE("e2b: run removes its sandbox, also when a step fails") {
    E2B e;
    Result hi = e.sbox({"run", "--", "echo", "hi"});
    CHECK(hi.status == 0);
    CHECK(hi.out == "hi\n");
    CHECK(e.live() == 0);

    Result code = e.sbox({"run", "--", "sh", "-c", "exit 7"});
    CHECK(code.status == 7);
    CHECK(e.live() == 0);

    // The command's stream is cut before its end frame: sbox fails (125), says so, and still removes it.
    e.fake.fault(
        {{"method", "POST"}, {"path", "/process.Process/Start"}, {"action", "cut"}, {"afterFrames", 1}});
    Result cut = e.sbox({"run", "--", "sh", "-c", "echo partial; sleep 1; echo never"});
    CHECK(cut.status == 125);
    CHECK_MESSAGE(cut.err.find("end-of-stream") != std::string::npos, cut.err);
    CHECK(e.live() == 0);

    Result missing = e.sbox({"run", "--", "no-such-command-xyz"});
    CHECK(missing.status == 127);
    CHECK(e.live() == 0);
    e.check_all_valid();
}

TEST_CASE("e2b: stdin is forwarded with its end, large input included") {
    E2B e;
    std::string ref = e.create();
    Result cat = e.sbox_in({"exec", "-i", ref, "--", "cat"}, "hello\nworld\n");
    CHECK(cat.status == 0);
    CHECK(cat.out == "hello\nworld\n");
    std::string big = random_hex(400 * 1024);
    Result wc = e.sbox_in({"exec", "-i", ref, "--", "sh", "-c", "wc -c"}, big);
    CHECK(wc.status == 0);
    CHECK(trim(wc.out) == std::to_string(big.size()));
    CHECK(e.fake.requests_to("POST", "/process.Process/CloseStdin").size() == 2);
    // Without -i the command reads nothing.
    Result no = e.sbox_in({"exec", ref, "--", "cat"}, "ignored");
    CHECK(no.status == 0);
    CHECK(no.out.empty());
}

TEST_CASE("e2b: exit statuses, signals, timeouts, users, working directory, detached commands") {
    E2B e;
    std::string ref = e.create();
    CHECK(e.sbox({"exec", ref, "--", "sh", "-c", "kill -9 $$"}).status == 137);
    CHECK(e.sbox({"exec", ref, "--", "no-such-command-xyz"}).status == 127);
    Result slow = e.sbox({"exec", "--timeout", "1s", ref, "--", "sleep", "30"});
    CHECK_MESSAGE(slow.status == 124, describe(slow));

    e.fake.clear_requests();
    CHECK(e.sbox({"exec", "-u", "root", ref, "--", "true"}).status == 0);
    auto starts = e.fake.requests_to("POST", "/process.Process/Start");
    REQUIRE(starts.size() == 1);
    CHECK(header(starts[0], "authorization") == "Basic cm9vdDo="); // "root:"

    CHECK(e.sbox({"exec", "-w", "/tmp", ref, "--", "pwd"}).out == "/tmp\n");

    // SIGTERM to sbox is passed on to the command (envd knows SIGTERM and SIGKILL), whose status comes back.
    e.fake.clear_requests();
    Process p = e.w.spawn({"exec", ref, "--", "sleep", "60"});
    REQUIRE(eventually([&] { return !e.fake.requests_to("POST", "/process.Process/Start").empty(); }));
    p.signal(SIGTERM);
    Result term = p.finish();
    CHECK_MESSAGE(term.status == 143, describe(term));
    auto signals = e.fake.requests_to("POST", "/process.Process/SendSignal");
    REQUIRE(signals.size() == 1);
    CHECK(signals[0].value("body", "").find("SIGNAL_SIGTERM") != std::string::npos);

    Result d = e.sbox({"exec", "-d", ref, "--", "sh", "-c", "sleep 1; echo done > /tmp/detached"});
    CHECK(d.status == 0);
    CHECK(eventually([&] { return e.sbox({"exec", ref, "--", "cat", "/tmp/detached"}).out == "done\n"; }));
}

TEST_CASE("e2b: a terminal with -t, sized like the user's and resized with it") {
    E2B e;
    std::string ref = e.create();
    PtySession s = PtySession::sbox(e.w, {"exec", "-it", ref, "--", "sh"}, {.rows = 30, .cols = 100});
    REQUIRE(s.wait_raw());
    s.type("stty size\r");
    CHECK(s.expect("30 100"));
    s.resize(40, 120);
    s.type("sleep 1; stty size\r");
    CHECK(s.expect("40 120"));
    s.type("exit 5\r");
    Result r = s.finish();
    CHECK(r.status == 5);
}

TEST_CASE("e2b: cp copies files and trees both ways") {
    E2B e;
    std::string ref = e.create();
    TempDir t;
    std::string tree = t.path() + "/tree";
    REQUIRE(::mkdir(tree.c_str(), 0755) == 0);
    REQUIRE(::mkdir((tree + "/sub").c_str(), 0700) == 0);
    {
        FILE* f = std::fopen((tree + "/a.txt").c_str(), "w");
        std::fputs("alpha\n", f);
        std::fclose(f);
        f = std::fopen((tree + "/sub/b.sh").c_str(), "w");
        std::fputs("#!/bin/sh\necho beta\n", f);
        std::fclose(f);
        ::chmod((tree + "/sub/b.sh").c_str(), 0750);
        REQUIRE(::symlink("a.txt", (tree + "/link").c_str()) == 0);
    }
    CHECK(e.sbox({"exec", ref, "--", "mkdir", "-p", "/work"}).status == 0);
    Result in = e.sbox({"cp", tree, ref + ":/work/"});
    REQUIRE_MESSAGE(in.status == 0, describe(in));
    CHECK(e.sbox({"exec", ref, "--", "cat", "/work/tree/a.txt"}).out == "alpha\n");
    CHECK(e.sbox({"exec", ref, "--", "/work/tree/sub/b.sh"}).out == "beta\n");
    CHECK(e.sbox({"exec", ref, "--", "stat", "-c", "%a", "/work/tree/sub"}).out == "700\n");
    CHECK(e.sbox({"exec", ref, "--", "readlink", "/work/tree/link"}).out == "a.txt\n");

    Result file_in = e.sbox({"cp", tree + "/a.txt", ref + ":/work/renamed.txt"});
    CHECK(file_in.status == 0);
    CHECK(e.sbox({"exec", ref, "--", "cat", "/work/renamed.txt"}).out == "alpha\n");

    std::string back = t.path() + "/back";
    Result out = e.sbox({"cp", ref + ":/work/tree", back});
    REQUIRE_MESSAGE(out.status == 0, describe(out));
    CHECK(read_file(back + "/a.txt") == "alpha\n");
    CHECK(read_file(back + "/sub/b.sh") == "#!/bin/sh\necho beta\n");
    struct stat st;
    REQUIRE(::stat((back + "/sub/b.sh").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0750);
    char target[64] = {};
    CHECK(::readlink((back + "/link").c_str(), target, sizeof target - 1) == 5);

    Result one = e.sbox({"cp", ref + ":/work/renamed.txt", t.path() + "/one.txt"});
    CHECK(one.status == 0);
    CHECK(read_file(t.path() + "/one.txt") == "alpha\n");

    Result missing = e.sbox({"cp", ref + ":/work/nope", t.path() + "/x"});
    CHECK(missing.status == 1);
    CHECK(missing.err.find("no such file") != std::string::npos);
}

TEST_CASE("e2b: snapshots, create --snapshot, pause and resume") {
    E2B e;
    std::string ref = e.create();
    CHECK(e.sbox({"exec", ref, "--", "sh", "-c", "echo kept > /tmp/state"}).status == 0);
    Result snap = e.sbox({"snapshot", "create", ref, "--name", "base-with-state"});
    REQUIRE_MESSAGE(snap.status == 0, describe(snap));
    std::string snap_id = trim(snap.out);
    CHECK(!snap_id.empty());
    Result ls = e.sbox({"snapshot", "ls", "--json"});
    REQUIRE(ls.status == 0);
    CHECK(ls.out.find("base-with-state") != std::string::npos);

    std::string copy = e.create({"--snapshot", "base-with-state"});
    CHECK(e.sbox({"exec", copy, "--", "cat", "/tmp/state"}).out == "kept\n");

    CHECK(e.sbox({"pause", ref}).status == 0);
    Result paused = e.sbox({"exec", ref, "--", "true"});
    CHECK(paused.status == 125);
    CHECK(paused.err.find("paused") != std::string::npos);
    CHECK(e.sbox({"pause", ref}).status == 1);
    CHECK(e.sbox({"resume", ref}).status == 0);
    CHECK(e.sbox({"exec", ref, "--", "cat", "/tmp/state"}).out == "kept\n");

    Result rm = e.sbox({"snapshot", "rm", "base-with-state"});
    CHECK_MESSAGE(rm.status == 0, describe(rm));
    CHECK(e.sbox({"snapshot", "ls", "-q"}).out.find(snap_id) == std::string::npos);
    e.check_all_valid();
}

TEST_CASE("e2b: retries follow the rules (429 with Retry-After, idempotent requests only)") {
    E2B e;
    // A create is retried when the service says when (429 + Retry-After) ...
    e.fake.fault({{"method", "POST"},
                  {"path", "/v2/sandboxes"},
                  {"status", 429},
                  {"headers", {{"Retry-After", "0"}}},
                  {"body", R"({"code":429,"message":"rate limit exceeded"})"}});
    std::string ref = e.create();
    CHECK(e.fake.requests_to("POST", "/v2/sandboxes").size() == 2);
    CHECK(e.live() == 1);

    // ... never after a plain failure, which may have created one already.
    e.fake.clear_requests();
    e.fake.fault({{"method", "POST"},
                  {"path", "/v2/sandboxes"},
                  {"status", 500},
                  {"body", R"({"code":500,"message":"placement failed"})"}});
    Result fail = e.sbox({"create"});
    CHECK(fail.status == 1);
    CHECK(fail.err.find("placement failed") != std::string::npos);
    CHECK(fail.err.find("500") != std::string::npos);
    CHECK(e.fake.requests_to("POST", "/v2/sandboxes").size() == 1);

    e.fake.clear_requests();
    e.fake.fault({{"method", "POST"},
                  {"path", "/v2/sandboxes"},
                  {"status", 503},
                  {"body", R"({"code":503,"message":"no capacity"})"}});
    Result busy = e.sbox({"--json", "create"});
    CHECK(busy.status == 1);
    auto err = nlohmann::json::parse(busy.err, nullptr, false);
    CHECK(err["error"]["kind"] == "unavailable");
    CHECK(err["error"]["provider"] == "e2b");
    CHECK(e.fake.requests_to("POST", "/v2/sandboxes").size() == 1);

    // A 429 whose Retry-After is too long is reported, not waited for.
    e.fake.clear_requests();
    e.fake.fault({{"method", "POST"},
                  {"path", "/v2/sandboxes"},
                  {"status", 429},
                  {"headers", {{"Retry-After", "3600"}}},
                  {"body", R"({"code":429,"message":"rate limit exceeded"})"}});
    Result limited = e.sbox({"--json", "create"});
    CHECK(limited.status == 1);
    CHECK(nlohmann::json::parse(limited.err, nullptr, false)["error"]["kind"] == "rate_limited");
    CHECK(e.fake.requests_to("POST", "/v2/sandboxes").size() == 1);

    // Reads are retried after 502/503 and lost connections.
    e.fake.clear_requests();
    e.fake.fault({{"method", "GET"}, {"path", "/v2/sandboxes"}, {"status", 502}, {"times", 2}});
    Result ls = e.sbox({"ls", "-q"});
    CHECK_MESSAGE(ls.status == 0, describe(ls));
    CHECK(ls.out == ref + "\n");
    CHECK(e.fake.requests_to("GET", "/v2/sandboxes").size() == 3);

    // A kill (DELETE) is retried too.
    e.fake.fault({{"method", "DELETE"}, {"path", "re:^/sandboxes/"}, {"status", 503}});
    CHECK(e.sbox({"kill", ref}).status == 0);
    CHECK(e.live() == 0);
}

TEST_CASE("e2b: slow, malformed and vanished replies") {
    E2B e;
    std::string ref = e.create();
    // A reply slower than the request timeout: a read is retried, and succeeds.
    e.w.set_env("SBOX_HTTP_TIMEOUT", "1s");
    e.fake.clear_requests();
    e.fake.fault({{"method", "GET"}, {"path", "/v2/sandboxes"}, {"action", "delay"}, {"ms", 3000}});
    Result ls = e.sbox({"ls", "-q"});
    CHECK_MESSAGE(ls.status == 0, describe(ls));
    CHECK(e.fake.requests_to("GET", "/v2/sandboxes").size() >= 2);
    // A create that times out is not repeated, and says it timed out.
    e.fake.clear_requests();
    e.fake.fault({{"method", "POST"}, {"path", "/v2/sandboxes"}, {"action", "delay"}, {"ms", 3000}});
    Result slow = e.sbox({"--json", "create"});
    CHECK(slow.status == 1);
    CHECK(nlohmann::json::parse(slow.err, nullptr, false)["error"]["kind"] == "timeout");
    CHECK(e.fake.requests_to("POST", "/v2/sandboxes").size() == 1);
    e.w.set_env("SBOX_HTTP_TIMEOUT", "60s");

    // Malformed JSON from create: an error that says so, and the sandbox it made is found and removed.
    std::size_t before = e.live();
    e.fake.fault({{"method", "POST"}, {"path", "/v2/sandboxes"}, {"action", "malformed"}});
    Result bad = e.sbox({"run", "--", "true"});
    CHECK(bad.status == 125);
    CHECK(bad.err.find("malformed") != std::string::npos);
    CHECK(eventually([&] { return e.live() == before; }));

    // The sandbox vanished: exec says there is none, and the index forgets it.
    e.fake.fault({{"method", "GET"}, {"path", "/sandboxes/" + e.id_of(ref)}, {"action", "vanish"}});
    Result vanished = e.sbox({"exec", ref, "--", "true"});
    CHECK(vanished.status == 125);
    CHECK(vanished.err.find("no sandbox") != std::string::npos);
}

TEST_CASE("e2b: configuration, auth errors, providers and verbose logs") {
    FakeService fake{"e2b/server.mjs", {"--api-key", kKey}};
    World w;
    w.set_env("E2B_API_URL", fake.url());
    w.set_env("E2B_SANDBOX_URL", fake.url());
    Result nokey = w.sbox({"-p", "e2b", "ls"});
    CHECK(nokey.status == 1);
    CHECK(nokey.err.find("E2B_API_KEY is not set") != std::string::npos);
    Result providers = w.sbox({"providers", "--json"});
    REQUIRE(providers.status == 0);
    auto p = nlohmann::json::parse(providers.out);
    bool listed = false;
    for (const auto& entry : p)
        if (entry["name"] == "e2b") {
            listed = true;
            CHECK(entry["configured"] == false);
            CHECK(entry["capabilities"].size() > 5);
        }
    CHECK(listed);

    w.set_env("E2B_API_KEY", "wrong-key");
    Result bad = w.sbox({"--json", "-p", "e2b", "ls"});
    CHECK(bad.status == 1);
    CHECK(nlohmann::json::parse(bad.err, nullptr, false)["error"]["kind"] == "auth");

    w.set_env("E2B_API_KEY", kKey);
    Result verbose = w.sbox({"-v", "-p", "e2b", "ls"});
    CHECK(verbose.status == 0);
    CHECK(verbose.err.find("GET " + fake.url() + "/v2/sandboxes") != std::string::npos);
    CHECK(verbose.err.find("200") != std::string::npos);
    CHECK(verbose.err.find(kKey) == std::string::npos);

    // The config file works as well as the environment.
    TempDir t;
    std::string cfg = t.path() + "/config.toml";
    FILE* f = std::fopen(cfg.c_str(), "w");
    std::fprintf(f, "provider = \"e2b\"\n[providers.e2b]\napi_key = \"%s\"\n", kKey);
    std::fclose(f);
    w.set_env("E2B_API_KEY", "");
    Result from_file = w.sbox({"--config", cfg, "ls", "-q"});
    CHECK_MESSAGE(from_file.status == 0, describe(from_file));
}

TEST_CASE(
    "e2b: sbox bench against the fake E2B measures every phase, in bursts too, and removes every sandbox") {
    E2B e;
    TempDir out;
    const std::string json = out.path() + "/b.json", svg = out.path() + "/b.svg";
    Result r = e.sbox({"bench", "-p", "e2b", "-n", "3", "--warmup", "1", "--concurrency", "2",
                       "--export-json", json, "--export-svg", svg});
    INFO(describe(r));
    REQUIRE(r.status == 0);
    CHECK(r.out.find("e2b: 6 of 6 sandboxes ok (100%)") != std::string::npos);
    auto j = nlohmann::json::parse(read_file(json));
    CHECK(j["samples"].size() == 8);
    CHECK(j["bursts"].size() == 4);
    CHECK(j["summary"]["e2b"]["phases"]["first_exec"]["n"] == 6);
    CHECK(j["providers"]["e2b"]["api_url"] == e.fake.url());
    CHECK(read_file(svg).find("data-provider=\"e2b\"") != std::string::npos);
    CHECK(e.live() == 0);
    e.check_all_valid();
}

TEST_CASE("e2b: sbox bench counts the fake's failures and, on Ctrl-C, removes the sandboxes it holds") {
    E2B e;
    // The first two creates fail with a 500 (never retried: a create is not repeated unless the service says
    // when); they are counted, with their error, and the run goes on.
    e.fake.fault({{"path", "/v2/sandboxes"},
                  {"method", "POST"},
                  {"status", 500},
                  {"times", 2},
                  {"body", R"({"code":500,"message":"placement failed"})"}});
    Result r = e.sbox({"bench", "-p", "e2b", "-n", "6", "--warmup", "0", "--export-json", "/dev/null"});
    INFO(describe(r));
    CHECK(r.status == 0);
    CHECK(r.out.find("e2b: 4 of 6 sandboxes ok (66.7%)") != std::string::npos);
    CHECK(r.out.find(
              "failed 2x in create: create a sandbox from template 'base': placement failed (HTTP 500)") !=
          std::string::npos);
    CHECK(e.live() == 0);
    e.fake.clear_faults();

    PtySession s = PtySession::sbox(e.w, {"bench", "-p", "e2b", "-n", "100000", "--concurrency", "3"});
    INFO("screen:\n" << s.screen());
    REQUIRE(s.expect("round 2/100000"));
    s.type("\x03");
    Result stopped = s.finish();
    INFO(describe(stopped));
    CHECK(stopped.status == 1);
    CHECK(stopped.out.find("interrupted by SIGINT") != std::string::npos);
    CHECK(e.live() == 0);
}

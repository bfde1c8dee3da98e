// The local engine's state store and its parsing of passwd/group for `exec -u`.
#include <doctest/doctest.h>

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "local/store.hpp"
#include "local/user.hpp"

using namespace sbox::local;
namespace fs = std::filesystem;

namespace {

struct TempRoot {
    fs::path dir;
    TempRoot() {
        char tmpl[] = "/tmp/sbox-store-test-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
    }
    ~TempRoot() { fs::remove_all(dir); }
    Paths paths() const { return Paths{(dir / "data").string(), (dir / "run").string()}; }
};

SandboxConfig sample(const Store& store, const std::string& name = {}) {
    SandboxConfig c;
    c.id = store.new_id();
    c.name = name;
    c.hostname = name.empty() ? c.id : name;
    c.created_at = 1700000000;
    c.labels = {{"created-by", "sbox"}, {"team", "a b"}};
    c.env = {"A=1", "B=x=y"};
    c.rootless = true;
    c.idmap.uids = {{0, 1000, 1}};
    c.idmap.gids = {{0, 1000, 1}};
    c.idmap.setgroups = false;
    c.lifetime_ms = 5000;
    c.expires_at = 1700000005;
    return c;
}

std::set<std::string> entries(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        out.insert(e.path().filename());
    return out;
}

} // namespace

TEST_CASE("store: a sandbox's config round-trips and its status follows its processes") {
    TempRoot root;
    Store store(root.paths());
    SandboxConfig c = sample(store, "web");
    c.creator = {::getpid(), 0};
    auto me = identify(::getpid());
    REQUIRE(me);
    c.creator = *me;
    {
        auto lock = store.lock();
        store.add(c);
    }
    auto s = store.load(c.id);
    REQUIRE(s);
    CHECK(s->config.name == "web");
    CHECK(s->config.labels.at("team") == "a b");
    CHECK(s->config.env == std::vector<std::string>{"A=1", "B=x=y"});
    CHECK(*s->config.expires_at == 1700000005);
    CHECK(s->config.idmap.uids.front().outside == 1000);
    CHECK_FALSE(s->config.idmap.setgroups);
    // No runtime record yet and its creator (this process) is alive: being created.
    CHECK(s->status == Status::creating);

    // A creator that died before the sandbox was ready: failed, never "running".
    c.creator.start_time += 1;
    {
        auto lock = store.lock();
        fs::remove_all(store.sandbox_dir(c.id));
        store.add(c);
    }
    CHECK(store.load(c.id)->status == Status::failed);

    // A runtime record naming a live supervisor: running. A dead one: exited.
    RuntimeState rt;
    rt.supervisor = *me;
    rt.monitor = *me;
    store.write_runtime(c.id, rt);
    CHECK(store.load(c.id)->status == Status::running);
    pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    ::waitpid(child, nullptr, 0);
    rt.supervisor = ProcessId{child, 12345}; // a reaped (or reused) pid never matches
    store.write_runtime(c.id, rt);
    CHECK(store.load(c.id)->status == Status::exited);
    store.write_exit(c.id, ExitState{9, 137, 1700000100});
    CHECK(store.load(c.id)->exit->signal == 9);

    // Only final files are left behind by the atomic writes.
    CHECK(entries(store.sandbox_dir(c.id)) == std::set<std::string>{"fs", "sandbox.json"});
    CHECK(entries(fs::path(root.paths().runtime) / "sandboxes") ==
          std::set<std::string>{c.id + ".json", c.id + ".exit"});

    store.remove(s->config);
    CHECK_FALSE(store.load(c.id));
    CHECK(entries(fs::path(root.paths().data) / "sandboxes").empty());
    CHECK(entries(fs::path(root.paths().data) / "trash").empty());
    CHECK(entries(fs::path(root.paths().runtime) / "sandboxes").empty());
}

TEST_CASE("store: find by id, name and unique prefix") {
    TempRoot root;
    Store store(root.paths());
    SandboxConfig a = sample(store, "alpha"), b = sample(store, "beta");
    a.id = "aaaa11112222";
    b.id = "aaaa33334444";
    {
        auto lock = store.lock();
        store.add(a);
        store.add(b);
    }
    CHECK(store.find("alpha")->config.id == a.id);
    CHECK(store.find("aaaa33334444")->config.name == "beta");
    CHECK(store.find("aaaa3")->config.id == b.id);
    CHECK_FALSE(store.find("aaa")); // too short to be a prefix
    CHECK_FALSE(store.find("zzzz"));
    CHECK_THROWS_AS(store.find("aaaa"), Error);
    CHECK(store.list().size() == 2);
}

TEST_CASE("store: ids are fresh and slots are the lowest free") {
    TempRoot root;
    Store store(root.paths());
    std::set<std::string> ids;
    for (int i = 0; i < 200; ++i) {
        std::string id = store.new_id();
        CHECK(id.size() == 12);
        CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
        ids.insert(id);
    }
    CHECK(ids.size() == 200);
    std::vector<SandboxState> existing(2);
    existing[0].config.slot = 0;
    existing[1].config.slot = 2;
    CHECK(store.free_slot(existing) == 1);
    existing[1].config.rootless = true; // a rootless sandbox holds no slot
    existing[1].config.slot = 1;
    CHECK(store.free_slot(existing) == 1);
}

TEST_CASE("store: a directory left without config by a crash is not a sandbox") {
    TempRoot root;
    Store store(root.paths());
    fs::create_directories(fs::path(root.paths().data) / "sandboxes" / "0123456789ab" / "fs");
    CHECK(store.list().empty());
}

TEST_CASE("remove_tree removes what its owner cannot read") {
    TempRoot root;
    fs::path top = root.dir / "t";
    fs::create_directories(top / "a" / "b");
    fs::create_directories(top / "c");
    {
        std::FILE* f = std::fopen((top / "a" / "b" / "f").c_str(), "w");
        std::fclose(f);
    }
    fs::permissions(top / "a" / "b", fs::perms::none);
    fs::permissions(top / "c", fs::perms::owner_read);
    CHECK(remove_tree(top.string()));
    CHECK_FALSE(fs::exists(top));
}

TEST_CASE("exec -u resolves against the sandbox's passwd and group") {
    const std::string passwd = "root:x:0:0:root:/root:/bin/bash\n"
                               "# comment\n"
                               "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                               "dev:x:1000:1000:Dev,,,:/home/dev:/bin/bash\n";
    const std::string group =
        "root:x:0:\nnogroup:x:65534:\ndev:x:1000:\nsudo:x:27:dev,other\ndocker:x:999:dev\n";
    User root = resolve_user("", passwd, group);
    CHECK(root.uid == 0);
    CHECK(root.home == "/root");
    User dev = resolve_user("dev", passwd, group);
    CHECK(dev.uid == 1000);
    CHECK(dev.gid == 1000);
    CHECK(dev.home == "/home/dev");
    CHECK(dev.groups == std::vector<gid_t>{1000, 27, 999});
    CHECK(resolve_user("65534", passwd, group).name == "nobody");
    User unknown = resolve_user("4242", passwd, group);
    CHECK(unknown.uid == 4242);
    CHECK(unknown.gid == 0);
    CHECK(unknown.home == "/");
    CHECK(resolve_user("dev:sudo", passwd, group).gid == 27);
    CHECK(resolve_user("1000:4000", passwd, group).gid == 4000);
    CHECK_THROWS_WITH_AS(resolve_user("ghost", passwd, group), doctest::Contains("no user 'ghost'"),
                         std::invalid_argument);
    CHECK_THROWS_AS(resolve_user("dev:ghosts", passwd, group), std::invalid_argument);
    CHECK_THROWS_AS(resolve_user(":1", passwd, group), std::invalid_argument);
}

TEST_CASE("store: sweep removes what killed sbox processes left, and nothing of live ones") {
    TempRoot root;
    Store store(root.paths());
    pid_t dead = ::fork();
    if (dead == 0) ::_exit(0);
    ::waitpid(dead, nullptr, 0);
    std::string d = std::to_string(dead), me = std::to_string(::getpid());
    fs::path data = root.paths().data, run = root.paths().runtime;
    fs::create_directories(data / "sandboxes" / (".new-aaaa.tmp." + d) / "fs");
    fs::create_directories(data / "sandboxes" / (".new-bbbb.tmp." + me));
    fs::create_directories(data / "trash" / ("cccc.tmp." + d) / "fs" / "upper");
    {
        std::FILE* f = std::fopen((run / "sandboxes" / ("dddd.json.tmp." + d + ".7")).c_str(), "w");
        std::fclose(f);
    }
    store.sweep();
    CHECK(entries(data / "sandboxes") == std::set<std::string>{".new-bbbb.tmp." + me});
    CHECK(entries(data / "trash").empty());
    CHECK(entries(run / "sandboxes").empty());
}

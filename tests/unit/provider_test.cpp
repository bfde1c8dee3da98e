// Names of error kinds and capabilities, the registry, and the default Provider::run.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "helpers.hpp"
#include "providers/registry.hpp"

using namespace sbox;
using namespace std::chrono_literals;
using sbox::test::FakeProvider;
using sbox::test::read_file;
using sbox::test::TempDir;

TEST_CASE("error kind names") {
    CHECK(to_string(ErrorKind::usage) == "usage");
    CHECK(to_string(ErrorKind::invalid) == "invalid");
    CHECK(to_string(ErrorKind::not_found) == "not_found");
    CHECK(to_string(ErrorKind::conflict) == "conflict");
    CHECK(to_string(ErrorKind::auth) == "auth");
    CHECK(to_string(ErrorKind::rate_limited) == "rate_limited");
    CHECK(to_string(ErrorKind::unavailable) == "unavailable");
    CHECK(to_string(ErrorKind::timeout) == "timeout");
    CHECK(to_string(ErrorKind::unsupported) == "unsupported");
    CHECK(to_string(ErrorKind::internal) == "internal");
}

TEST_CASE("capability names") {
    CHECK(to_string(Capability::exec) == "exec");
    CHECK(to_string(Capability::exec_stdin) == "exec_stdin");
    CHECK(to_string(Capability::exec_detach) == "exec_detach");
    CHECK(to_string(Capability::exec_timeout) == "exec_timeout");
    CHECK(to_string(Capability::exec_user) == "exec_user");
    CHECK(to_string(Capability::exec_cwd) == "exec_cwd");
    CHECK(to_string(Capability::lifetime) == "lifetime");
    CHECK(to_string(Capability::labels) == "labels");
    CHECK(to_string(Capability::names) == "names");
    CHECK(to_string(Capability::image_dir) == "image_dir");
    CHECK(to_string(Capability::network) == "network");

    CHECK(Capabilities{}.names().empty());
    Capabilities some{Capability::names, Capability::exec, Capability::exec_cwd};
    CHECK(some.names() == std::vector<std::string>{"exec", "exec_cwd", "names"}); // in a stable order
    CHECK(some.has(Capability::exec));
    CHECK_FALSE(some.has(Capability::labels));
}

TEST_CASE("the registry creates providers lazily, by name") {
    int made = 0;
    Registry registry({{"fake", [&] {
                            ++made;
                            return std::make_unique<FakeProvider>();
                        }}});
    CHECK(registry.names() == std::vector<std::string>{"fake"});
    CHECK(registry.contains("fake"));
    CHECK_FALSE(registry.contains("local"));
    CHECK(made == 0);
    Provider& p = registry.get("fake");
    CHECK(p.name() == "fake");
    CHECK(&registry.get("fake") == &p);
    CHECK(made == 1);

    try {
        registry.get("e2b");
        FAIL("an unknown provider must be an error");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::invalid);
        CHECK(std::string(e.what()) == "unknown provider 'e2b' (known: fake)");
    }

    registry.add("other", [] { return std::make_unique<FakeProvider>("other"); });
    CHECK(registry.names() == std::vector<std::string>{"fake", "other"});
    CHECK_THROWS_WITH(registry.get("x"), "unknown provider 'x' (known: fake, other)");
}

TEST_CASE("the built-in registry has local, then the remote providers") {
    Registry registry;
    CHECK(registry.names() == std::vector<std::string>{"local", "e2b"});
    CHECK_THROWS_WITH_AS(registry.get("nope"), "unknown provider 'nope' (known: local, e2b)", Error);
}

TEST_CASE("a remote provider without credentials is known to be unconfigured without loading its module") {
    unsetenv("E2B_API_KEY");
    Registry registry;
    CHECK(registry.may_be_configured("local"));
    CHECK_FALSE(registry.may_be_configured("e2b"));
    Config with_key = Config::parse("[providers.e2b]\napi_key = \"k\"\n", "test");
    registry.set_config([&]() -> const Config& { return with_key; });
    CHECK(registry.may_be_configured("e2b"));
    registry.set_config({});
    setenv("E2B_API_KEY", "from-env", 1);
    CHECK(registry.may_be_configured("e2b"));
    unsetenv("E2B_API_KEY");
}

namespace {

struct Recorder : RunObserver {
    std::vector<std::string> created_ids;
    void created(const SandboxInfo& info) override { created_ids.push_back(info.id); }
};

} // namespace

TEST_CASE("default run: create, observer, exec, kill") {
    FakeProvider fake;
    fake.exec_status = 7;
    Recorder rec;
    CreateSpec cs;
    cs.name = "n";
    ExecSpec es;
    es.argv = {"true"};
    int status = fake.run(cs, es, rec);
    CHECK(status == 7);
    CHECK(fake.calls == std::vector<std::string>{"create fake0001", "exec fake0001", "kill fake0001"});
    CHECK(rec.created_ids == std::vector<std::string>{"fake0001"});
    CHECK(fake.boxes.empty());
    CHECK(fake.last_exec->argv == std::vector<std::string>{"true"});
}

TEST_CASE("default run: the sandbox is removed when exec throws, and the error propagates") {
    FakeProvider fake;
    fake.on_exec = [](std::string_view, const ExecSpec&) -> int {
        throw CommandError(127, "nope: not found");
    };
    Recorder rec;
    ExecSpec es;
    es.argv = {"nope"};
    try {
        fake.run({}, es, rec);
        FAIL("the CommandError must propagate");
    } catch (const CommandError& e) {
        CHECK(e.exit_status() == 127);
    }
    CHECK(fake.calls.back() == "kill fake0001");
    CHECK(fake.boxes.empty());

    fake.on_exec = [](std::string_view, const ExecSpec&) -> int { throw std::runtime_error("boom"); };
    CHECK_THROWS_WITH(fake.run({}, es, rec), "boom");
    CHECK(fake.calls.back() == "kill fake0002");
    CHECK(fake.boxes.empty());
}

TEST_CASE("default run: a failing create removes nothing") {
    struct FailingCreate : FakeProvider {
        SandboxInfo create(const CreateSpec&) override { throw Error(ErrorKind::unavailable, "no capacity"); }
    } fake;
    Recorder rec;
    CHECK_THROWS_WITH_AS(fake.run({}, {}, rec), "no capacity", Error);
    CHECK(fake.calls.empty());
    CHECK(rec.created_ids.empty());
}

TEST_CASE("default run: a sandbox that is already gone after exec is not an error") {
    FakeProvider fake;
    fake.on_exec = [&](std::string_view id, const ExecSpec&) {
        std::erase_if(fake.boxes, [&](const SandboxInfo& b) { return b.id == id; }); // its lifetime ended
        return 0;
    };
    Recorder rec;
    CHECK(fake.run({}, {}, rec) == 0);
    fake.on_exec = nullptr;
    fake.kill_fails = {"fake0002"};
    CHECK_THROWS_WITH(fake.run({}, {}, rec), "the fake refuses to remove fake0002");
}

namespace {

// exec blocks until the sandbox is killed (from the interrupt watcher thread), like a real command would.
struct BlockingProvider : FakeProvider {
    std::mutex m;
    std::condition_variable cv;
    bool killed = false;
    std::atomic<bool> executing{false};
    std::atomic<int> kills{0};

    int exec(std::string_view, const ExecSpec&) override {
        std::unique_lock lock(m);
        executing = true;
        bool ok = cv.wait_for(lock, 10s, [&] { return killed; });
        return ok ? 137 : 0; // SIGKILLed
    }
    void kill(std::string_view id) override {
        ++kills;
        {
            std::lock_guard lock(m);
            killed = true;
        }
        cv.notify_all();
        FakeProvider::kill(id);
    }
};

void interrupt_run_with(int sig) {
    BlockingProvider fake;
    Recorder rec;
    struct sigaction before {};
    ::sigaction(sig, nullptr, &before);

    std::thread sender([&] {
        while (!fake.executing)
            std::this_thread::sleep_for(1ms);
        ::kill(::getpid(), sig);
    });
    int status = fake.run({}, {}, rec);
    sender.join();

    CHECK(status == 128 + sig);
    CHECK(fake.kills == 1);
    CHECK(fake.boxes.empty());
    // The previous disposition is back.
    struct sigaction after {};
    ::sigaction(sig, nullptr, &after);
    CHECK(reinterpret_cast<void*>(after.sa_handler) == reinterpret_cast<void*>(before.sa_handler));
}

} // namespace

TEST_CASE("default run: SIGINT during the run removes the sandbox") {
    interrupt_run_with(SIGINT);
}

TEST_CASE("default run: SIGTERM during the run removes the sandbox") {
    interrupt_run_with(SIGTERM);
}

TEST_CASE(
    "default run: an exec that fails because the interrupt removed its sandbox still reports the signal") {
    struct FailingWhenKilled : BlockingProvider {
        int exec(std::string_view id, const ExecSpec& spec) override {
            BlockingProvider::exec(id, spec);
            throw Error(ErrorKind::not_found, "the sandbox disappeared");
        }
    } fake;
    Recorder rec;
    std::thread sender([&] {
        while (!fake.executing)
            std::this_thread::sleep_for(1ms);
        ::kill(::getpid(), SIGINT);
    });
    int status = fake.run({}, {}, rec);
    sender.join();
    CHECK(status == 128 + SIGINT);
    CHECK(fake.kills == 1);
}

TEST_CASE("default run: concurrent runs are all removed on one signal") {
    BlockingProvider a, b;
    Recorder ra, rb;
    int sa = -1, sb = -1;
    std::thread ta([&] { sa = a.run({}, {}, ra); });
    std::thread tb([&] { sb = b.run({}, {}, rb); });
    while (!a.executing || !b.executing)
        std::this_thread::sleep_for(1ms);
    ::kill(::getpid(), SIGTERM);
    ta.join();
    tb.join();
    CHECK(sa == 128 + SIGTERM);
    CHECK(sb == 128 + SIGTERM);
    CHECK(a.kills == 1);
    CHECK(b.kills == 1);
}

namespace {

// Logs its calls to a file, so what the background process of a detached run does can be seen.
struct LoggingProvider : FakeProvider {
    std::filesystem::path log;
    void append(const std::string& line) { std::ofstream(log, std::ios::app) << line << "\n" << std::flush; }
    int exec(std::string_view id, const ExecSpec& spec) override {
        append("exec " + std::string(id) + " detach=" + (spec.detach ? "1" : "0") +
               " pid=" + std::to_string(::getpid()));
        std::this_thread::sleep_for(200ms);
        return 0;
    }
    void kill(std::string_view id) override {
        append("kill " + std::string(id));
        FakeProvider::kill(id);
    }
};

} // namespace

TEST_CASE(
    "default run -d returns at once - a background process runs the command, then removes the sandbox") {
    TempDir dir;
    LoggingProvider fake;
    fake.log = dir.path / "log";
    Recorder rec;
    ExecSpec es;
    es.argv = {"sleep", "1"};
    es.detach = true;
    auto start = std::chrono::steady_clock::now();
    CHECK(fake.run({}, es, rec) == 0);
    CHECK(std::chrono::steady_clock::now() - start < 150ms); // did not wait for the command
    CHECK(rec.created_ids == std::vector<std::string>{"fake0001"});

    std::string log;
    for (int i = 0; i < 500 && log.find("kill") == std::string::npos; ++i) {
        std::this_thread::sleep_for(10ms);
        log = read_file(fake.log);
    }
    CHECK(log.find("exec fake0001 detach=0") != std::string::npos); // the background process waits for it
    CHECK(log.find("pid=" + std::to_string(::getpid())) == std::string::npos);
    CHECK(log.find("kill fake0001") != std::string::npos);
    CHECK(log.find("exec") < log.find("kill"));
}

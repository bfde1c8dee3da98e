// The module loader, on a real dlopen of libsbox-testmodule.so (tests/unit/module/test_module.cpp).
#include <doctest/doctest.h>

#include <dlfcn.h>
#include <string.h>

#include "helpers.hpp"
#include "providers/config.hpp"
#include "providers/module.hpp"

using namespace sbox;
using sbox::test::ScopedEnv;
using sbox::test::TempDir;

namespace {

Error error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no error was thrown");
    return Error(ErrorKind::internal, "");
}

} // namespace

TEST_CASE("the search path: SBOX_MODULE_PATH first, then beside the executable") {
    ScopedEnv path("SBOX_MODULE_PATH", "/a::/b/c");
    auto dirs = module_search_dirs();
    REQUIRE(dirs.size() == 4);
    CHECK(dirs[0] == "/a");
    CHECK(dirs[1] == "/b/c");
    std::string exe = std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
    CHECK(dirs[2].starts_with(exe + "/"));
    CHECK(dirs[2].ends_with("lib/sbox")); // SBOX_MODULE_DIR_FROM_BIN, e.g. ../lib/sbox
    CHECK(dirs[3] == exe + "/modules");

    ScopedEnv none("SBOX_MODULE_PATH", std::nullopt);
    CHECK(module_search_dirs().size() == 2);
}

TEST_CASE("loading the test module and using its provider") {
    ScopedEnv path("SBOX_MODULE_PATH", std::string("/nonexistent-dir:") + SBOX_TEST_MODULE_DIR);
    const LoadedModule& m = load_module("testmodule");
    CHECK(m.name == "testmodule");
    CHECK(m.path == std::string(SBOX_TEST_MODULE_DIR) + "/libsbox-testmodule.so");
    REQUIRE(m.info != nullptr);
    CHECK(std::string(m.info->name) == "testmodule");
    CHECK(m.info->abi_version == SBOX_MODULE_ABI_VERSION);
    CHECK(&load_module("testmodule") == &m); // loaded once

    std::unique_ptr<Provider> p = make_module_provider("testmodule", Config{});
    REQUIRE(p);
    CHECK(p->name() == "testmodule");
    CHECK(p->capabilities().names() == std::vector<std::string>{"exec", "labels", "names"});
    std::string why;
    CHECK(p->configured(why));

    CreateSpec spec;
    spec.name = "box";
    spec.labels = {{"created-by", "sbox"}};
    SandboxInfo info = p->create(spec);
    CHECK(info.provider == "testmodule");
    CHECK(info.id == "mem1");
    CHECK(p->list().size() == 1);
    CHECK(p->get("box")->id == "mem1");

    ExecSpec es;
    es.argv = {"echo", "a", "b"};
    CHECK(p->exec(info.id, es) == 3); // the module's code ran
    es.argv = {"exit", "42"};
    CHECK(p->exec(info.id, es) == 42);

    // Exceptions thrown in the module are sbox's own types here.
    es.argv = {};
    try {
        p->exec(info.id, es);
        FAIL("expected a CommandError");
    } catch (const CommandError& e) {
        CHECK(e.exit_status() == 127);
        CHECK(e.provider() == "testmodule");
    }
    p->kill(info.id);
    CHECK(p->list().empty());
    auto e = error_of([&] { p->kill(info.id); });
    CHECK(e.kind() == ErrorKind::not_found);

    // The base class's default run, through the module's provider.
    struct Obs : RunObserver {
        int count = 0;
        void created(const SandboxInfo&) override { ++count; }
    } obs;
    es.argv = {"exit", "5"};
    CHECK(p->run({}, es, obs) == 5);
    CHECK(obs.count == 1);
    CHECK(p->list().empty());
}

TEST_CASE("a missing module: which file, where sbox looked, what to do") {
    TempDir dir;
    ScopedEnv path("SBOX_MODULE_PATH", dir.path.string());
    auto e = error_of([] { load_module("nosuchmodule"); });
    CHECK(e.kind() == ErrorKind::unavailable);
    std::string msg = e.what();
    CHECK(msg.find("libsbox-nosuchmodule.so is not installed") != std::string::npos);
    CHECK(msg.find(dir.path.string()) != std::string::npos);
    CHECK(msg.find("/modules") != std::string::npos);
    CHECK(msg.find("SBOX_MODULE_PATH") != std::string::npos);

    e = error_of([] { make_module_provider("nosuchmodule", Config{}); });
    CHECK(e.kind() == ErrorKind::unavailable);
}

TEST_CASE("a module that cannot be loaded: dlopen's reason") {
    TempDir dir;
    dir.write("libsbox-garbage.so", "this is not an ELF file\n" + std::string(4096, 'x'));
    ScopedEnv path("SBOX_MODULE_PATH", dir.path.string());
    auto e = error_of([] { load_module("garbage"); });
    CHECK(e.kind() == ErrorKind::unavailable);
    std::string msg = e.what();
    CHECK(msg.find("cannot load module " + (dir.path / "libsbox-garbage.so").string()) != std::string::npos);
    CAPTURE(msg);
    CHECK(msg.find("invalid ELF header") != std::string::npos); // dlerror()'s words
}

TEST_CASE("a shared library without the entry point is not a module") {
    TempDir dir;
    Dl_info info{};
    REQUIRE(::dladdr(reinterpret_cast<void*>(&::strlen), &info) != 0);
    std::filesystem::create_symlink(info.dli_fname, dir.path / "libsbox-nosym.so");
    ScopedEnv path("SBOX_MODULE_PATH", dir.path.string());
    auto e = error_of([] { load_module("nosym"); });
    CHECK(e.kind() == ErrorKind::unavailable);
    CHECK(std::string(e.what()).find("is not an sbox module: it has no sbox_module_v1 entry point") !=
          std::string::npos);
}

TEST_CASE("a module found under another name is refused") {
    TempDir dir;
    std::filesystem::create_symlink(std::string(SBOX_TEST_MODULE_DIR) + "/libsbox-testmodule.so",
                                    dir.path / "libsbox-impostor.so");
    ScopedEnv path("SBOX_MODULE_PATH", dir.path.string());
    auto e = error_of([] { load_module("impostor"); });
    CHECK(e.kind() == ErrorKind::unavailable);
    CHECK(std::string(e.what()).find("calls itself 'testmodule', not 'impostor'") != std::string::npos);
}

TEST_CASE("module names cannot be paths") {
    auto e = error_of([] { load_module("../../etc/x"); });
    CHECK(e.kind() == ErrorKind::invalid);
    CHECK_THROWS_AS(load_module(""), Error);
}

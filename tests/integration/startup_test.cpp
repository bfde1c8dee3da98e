// Start-up cost (design.md): a local command must not load the remote stack. While `sbox run -p local` and
// `sbox exec` are running a command, their process maps no libcurl, libprotobuf or libarchive.
#include <climits>
#include <cstdlib>
#include <signal.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "harness.hpp"

using namespace it;

namespace {

void check_maps(pid_t pid, const std::string& what) {
    char buf[PATH_MAX] = {};
    ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof buf - 1);
    std::string exe = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("?");
    char* real = realpath(sbox_bin().c_str(), nullptr);
    std::string expected = real ? real : sbox_bin();
    free(real);
    std::string maps = read_file("/proc/" + std::to_string(pid) + "/maps");
    INFO(what << ": pid " << pid << ", exe " << exe);
    // The process is still sbox itself (not the command it runs), and its maps were readable.
    CHECK(exe == expected);
    REQUIRE(maps.find("libc.so") != std::string::npos);
    CHECK(maps.find("libcurl") == std::string::npos);
    CHECK(maps.find("libprotobuf") == std::string::npos);
    CHECK(maps.find("libarchive") == std::string::npos);
    CHECK(maps.find("libssl") == std::string::npos);
    CHECK(maps.find("libnghttp2") == std::string::npos);
}

} // namespace

TEST_CASE("start-up: sbox run -p local and sbox exec map no libcurl, libprotobuf or libarchive") {
    World w;
    {
        auto run = w.spawn({"run", "-p", "local", "--", "sleep", "1008"});
        std::string ref = w.wait_running(run);
        REQUIRE(eventually([&] {
            return w.check_output(ref, {"ps", "-e", "-o", "args="}).find("sleep 1008") != std::string::npos;
        }));
        check_maps(run.pid(), "sbox run -p local");
        run.signal(SIGTERM);
        Result r = run.finish();
        CHECK(r.status == 128 + SIGTERM);
    }
    auto ref = w.create();
    auto exec = w.spawn({"exec", ref, "--", "sleep", "1009"});
    REQUIRE(eventually([&] {
        return w.check_output(ref, {"ps", "-e", "-o", "args="}).find("sleep 1009") != std::string::npos ||
               !exec.running();
    }));
    REQUIRE(exec.running());
    check_maps(exec.pid(), "sbox exec");
    exec.signal(SIGTERM);
    exec.finish();
}

// Where sbox keeps its state.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include "helpers.hpp"
#include "providers/paths.hpp"

using namespace sbox;
using sbox::test::ScopedEnv;

TEST_CASE("SBOX_ROOT overrides everything") {
    ScopedEnv root("SBOX_ROOT", "/srv/sbox-test");
    CHECK(data_dir() == "/srv/sbox-test/data");
    CHECK(runtime_dir() == "/srv/sbox-test/run");
}

namespace {

// data_dir() and runtime_dir() as seen by an ordinary user: computed in a child process that drops to
// `nobody` when the tests run as root.
std::pair<std::string, std::string> user_dirs() {
    if (::geteuid() != 0) return {data_dir().string(), runtime_dir().string()};
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) ::_exit(1);
        std::string out = data_dir().string() + "\n" + runtime_dir().string();
        [[maybe_unused]] auto n = ::write(fds[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0)
        out.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    auto nl = out.find('\n');
    return {out.substr(0, nl), out.substr(nl + 1)};
}

std::string user_uid() {
    return std::to_string(::geteuid() == 0 ? 65534 : ::geteuid());
}

} // namespace

TEST_CASE("without SBOX_ROOT: root's directories") {
    ScopedEnv root("SBOX_ROOT", std::nullopt);
    ScopedEnv data("XDG_DATA_HOME", "/xdg/data");
    if (::geteuid() != 0) return;
    CHECK(data_dir() == "/var/lib/sbox");
    CHECK(runtime_dir() == "/run/sbox");
}

TEST_CASE("without SBOX_ROOT: a user's directories") {
    ScopedEnv root("SBOX_ROOT", std::nullopt);
    ScopedEnv home("HOME", "/home/someone");
    {
        ScopedEnv data("XDG_DATA_HOME", "/xdg/data");
        ScopedEnv run("XDG_RUNTIME_DIR", "/xdg/run");
        auto [d, r] = user_dirs();
        CHECK(d == "/xdg/data/sbox");
        CHECK(r == "/xdg/run/sbox");
    }
    {
        ScopedEnv no_data("XDG_DATA_HOME", std::nullopt);
        ScopedEnv no_run("XDG_RUNTIME_DIR", std::nullopt);
        auto [d, r] = user_dirs();
        CHECK(d == "/home/someone/.local/share/sbox");
        CHECK(r == "/tmp/sbox-" + user_uid());
    }
    {
        ScopedEnv relative("XDG_DATA_HOME", "relative/dir"); // ignored: XDG paths must be absolute
        ScopedEnv empty("XDG_RUNTIME_DIR", "");
        auto [d, r] = user_dirs();
        CHECK(d == "/home/someone/.local/share/sbox");
        CHECK(r == "/tmp/sbox-" + user_uid());
    }
}

TEST_CASE("the default configuration file") {
    ScopedEnv home("HOME", "/home/someone");
    {
        ScopedEnv xdg("XDG_CONFIG_HOME", std::nullopt);
        CHECK(default_config_file() == "/home/someone/.config/sbox/config.toml");
    }
    {
        ScopedEnv xdg("XDG_CONFIG_HOME", "/cfg");
        CHECK(default_config_file() == "/cfg/sbox/config.toml");
    }
    ScopedEnv empty_root("SBOX_ROOT", ""); // empty: unset
    ScopedEnv no_home("HOME", std::nullopt);
    CHECK_FALSE(home_dir().empty()); // from the password database
}

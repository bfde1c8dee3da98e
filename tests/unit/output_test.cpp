// JSON of sandboxes and errors, tables and times.
#include <sys/stat.h>

#include <filesystem>

#include "cli/output_file.hpp"
#include "helpers.hpp"
#include "local/system.hpp"
#include <doctest/doctest.h>

#include "cli/output.hpp"

using namespace sbox;
using namespace sbox::cli;

namespace {

SandboxInfo sample() {
    SandboxInfo info;
    info.provider = "local";
    info.id = "3f9a1c2b7d4e";
    info.name = "web";
    info.status = "running";
    info.image = "host";
    info.created_at = 1714564800; // 2024-05-01T12:00:00Z
    info.labels = {{"created-by", "sbox"}, {"team", "a"}};
    info.details = {{"supervisor_pid", 42}, {"hostname", "web"}};
    return info;
}

} // namespace

TEST_CASE("JSON of a sandbox") {
    nlohmann::json j = sandbox_json(sample());
    CHECK(j == nlohmann::json{{"provider", "local"},
                              {"id", "3f9a1c2b7d4e"},
                              {"ref", "local/3f9a1c2b7d4e"},
                              {"name", "web"},
                              {"status", "running"},
                              {"image", "host"},
                              {"created_at", "2024-05-01T12:00:00Z"},
                              {"expires_at", nullptr},
                              {"labels", {{"created-by", "sbox"}, {"team", "a"}}},
                              {"details", {{"supervisor_pid", 42}, {"hostname", "web"}}}});

    SandboxInfo bare;
    bare.provider = "e2b";
    bare.id = "x";
    bare.expires_at = 1714568400;
    bare.details = nullptr;
    j = sandbox_json(bare);
    CHECK(j["name"].is_null());
    CHECK(j["expires_at"] == "2024-05-01T13:00:00Z");
    CHECK(j["labels"] == nlohmann::json::object());
    CHECK(j["details"] == nlohmann::json::object());
    CHECK(j["ref"] == "e2b/x");
}

TEST_CASE("the error object") {
    CHECK(error_json("not_found", "no sandbox 'x' (see sbox ls)", "local").dump() ==
          R"j({"error":{"kind":"not_found","message":"no sandbox 'x' (see sbox ls)","provider":"local"}})j");
    CHECK(error_json("usage", "bad", "").dump() ==
          R"({"error":{"kind":"usage","message":"bad","provider":null}})");
    CHECK(format_error("E2B_API_KEY is not set", "e2b") == "sbox: e2b: E2B_API_KEY is not set\n");
    CHECK(format_error("bad", "") == "sbox: bad\n");
}

TEST_CASE("times") {
    CHECK(rfc3339(0) == "1970-01-01T00:00:00Z");
    CHECK(rfc3339(1714564800) == "2024-05-01T12:00:00Z");
    CHECK(human_duration(0) == "Less than a second");
    CHECK(human_duration(1) == "1 second");
    CHECK(human_duration(12) == "12 seconds");
    CHECK(human_duration(60) == "About a minute");
    CHECK(human_duration(119) == "About a minute");
    CHECK(human_duration(120) == "2 minutes");
    CHECK(human_duration(3599) == "59 minutes");
    CHECK(human_duration(3600) == "About an hour");
    CHECK(human_duration(3 * 3600) == "3 hours");
    CHECK(human_duration(47 * 3600) == "47 hours");
    CHECK(human_duration(3 * 86400) == "3 days");
    CHECK(human_duration(21 * 86400) == "3 weeks");
    CHECK(human_duration(90 * 86400) == "3 months");
    CHECK(human_duration(800 * 86400) == "2 years");
    CHECK(relative_time(1000 - 12, 1000) == "12 seconds ago");
    CHECK(relative_time(1000, 1000) == "Less than a second ago");
    CHECK(relative_time(1000 + 300, 1000) == "in 5 minutes");
}

TEST_CASE("tables: aligned columns, the last one not padded") {
    std::string t = render_table({"A", "LONGER", "C"}, {{"xxxx", "y", "z"}, {"", "", ""}});
    CHECK(t == "A      LONGER   C\n"
               "xxxx   y        z\n"
               "\n");
    // Widths count characters, not bytes.
    t = render_table({"N", "X"}, {{"\xc3\xa9t\xc3\xa9", "1"}, {"abcd", "2"}});
    CHECK(t == "N      X\n"
               "\xc3\xa9t\xc3\xa9    1\n"
               "abcd   2\n");
}

TEST_CASE("the ls table") {
    SandboxInfo a = sample();
    SandboxInfo b;
    b.provider = "local";
    b.id = "77aa";
    b.status = "exited";
    b.created_at = 1714564800 - 3600;
    std::string t = render_sandbox_table({a, b}, 1714564800 + 12);
    CHECK(t == "REF                  NAME   STATUS    IMAGE   CREATED\n"
               "local/3f9a1c2b7d4e   web    running   host    12 seconds ago\n"
               "local/77aa           -      exited    -       About an hour ago\n");
    CHECK(render_sandbox_table({}, 0) == "REF   NAME   STATUS   IMAGE   CREATED\n");
}

TEST_CASE("inspect: key: value lines") {
    SandboxInfo info = sample();
    info.expires_at = info.created_at + 1800;
    std::string out = render_inspect(info, info.created_at + 60);
    CHECK(out == "ref:                    local/3f9a1c2b7d4e\n"
                 "provider:               local\n"
                 "id:                     3f9a1c2b7d4e\n"
                 "name:                   web\n"
                 "status:                 running\n"
                 "image:                  host\n"
                 "created_at:             2024-05-01T12:00:00Z (About a minute ago)\n"
                 "expires_at:             2024-05-01T12:30:00Z (in 29 minutes)\n"
                 "labels:                 created-by=sbox, team=a\n"
                 "details.hostname:       web\n"
                 "details.supervisor_pid: 42\n");

    SandboxInfo bare;
    bare.provider = "e2b";
    bare.id = "x";
    CHECK(render_inspect(bare, 0) == "ref:        e2b/x\n"
                                     "provider:   e2b\n"
                                     "id:         x\n"
                                     "name:       -\n"
                                     "status:     -\n"
                                     "image:      -\n"
                                     "created_at: -\n"
                                     "expires_at: -\n"
                                     "labels:     -\n");
}

TEST_CASE("OutputFile: a file is replaced whole on commit, kept without it, and devices and links are "
          "written in place") {
    sbox::test::TempDir dir;
    const std::string file = (dir.path / "out.txt").string();
    auto write = [](sbox::cli::OutputFile& out, const std::string& text) {
        REQUIRE(sbox::local::write_all(out.fd(), text));
    };
    {
        sbox::cli::OutputFile out(file);
        write(out, "first\n");
        out.commit();
    }
    CHECK(sbox::test::read_file(file) == "first\n");
    {
        sbox::cli::OutputFile out(file); // a failure before commit: the old file stays, no temporary is left
        write(out, "half");
    }
    CHECK(sbox::test::read_file(file) == "first\n");
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path),
                        std::filesystem::directory_iterator()) == 1);

    // A symbolic link stays one; what it points to gets the data.
    const std::string link = (dir.path / "link").string();
    std::filesystem::create_symlink(file, link);
    {
        sbox::cli::OutputFile out(link);
        write(out, "through the link\n");
        out.commit();
    }
    CHECK(std::filesystem::is_symlink(link));
    CHECK(sbox::test::read_file(file) == "through the link\n");

    // A device is written to, never replaced (as root a rename would turn /dev/null into a file).
    {
        sbox::cli::OutputFile out("/dev/null");
        write(out, "nothing");
        out.commit();
    }
    struct stat st {};
    REQUIRE(::stat("/dev/null", &st) == 0);
    CHECK(S_ISCHR(st.st_mode));

    CHECK_NOTHROW(sbox::cli::OutputFile::check(file, "--out"));
    CHECK_NOTHROW(sbox::cli::OutputFile::check("-", "--out"));
    try {
        sbox::cli::OutputFile::check("/nonexistent/x", "--out");
        FAIL("no error");
    } catch (const sbox::Error& e) {
        CHECK(e.kind() == sbox::ErrorKind::usage);
        CHECK(std::string(e.what()).find("--out /nonexistent/x: cannot write in /nonexistent") == 0);
    }
}

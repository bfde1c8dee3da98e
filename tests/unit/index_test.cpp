// sbox's index of the sandboxes it created.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "providers/index.hpp"

using namespace sbox;
using sbox::test::read_file;
using sbox::test::TempDir;

TEST_CASE("an index that does not exist yet is empty and is not created by reading") {
    TempDir dir;
    Index index(dir.path / "data");
    CHECK(index.entries().empty());
    CHECK_FALSE(index.find("anything"));
    CHECK_FALSE(index.remove("local", "x"));
    CHECK_FALSE(std::filesystem::exists(dir.path / "data"));
}

TEST_CASE("add, find by id, name and prefix, remove") {
    TempDir dir;
    Index index(dir.path / "data");
    index.add({"local", "3f9a1c2b7d4e", "web", 100});
    index.add({"local", "77aa00000000", "", 101});
    index.add({"e2b", "i5x8k2p0q9w3", "db", 102});

    CHECK(std::filesystem::exists(dir.path / "data" / "index.json"));
    struct stat st {};
    REQUIRE(::stat((dir.path / "data").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);

    auto all = index.entries();
    REQUIRE(all.size() == 3);
    CHECK(all[0] == IndexEntry{"local", "3f9a1c2b7d4e", "web", 100});
    CHECK(all[2].ref() == "e2b/i5x8k2p0q9w3");

    auto e = index.find("3f9a1c2b7d4e");
    REQUIRE(e);
    CHECK(e->name == "web");
    e = index.find("web");
    REQUIRE(e);
    CHECK(e->id == "3f9a1c2b7d4e");
    e = index.find("3f9a"); // a unique prefix of 4 characters
    REQUIRE(e);
    CHECK(e->id == "3f9a1c2b7d4e");
    CHECK_FALSE(index.find("3f9")); // too short for a prefix
    CHECK_FALSE(index.find("nope"));
    CHECK_FALSE(index.find("")); // an empty name matches nothing

    // The provider filter.
    CHECK(index.find("db", "e2b"));
    CHECK_FALSE(index.find("db", "local"));
    CHECK_FALSE(index.find("3f9a", "e2b"));

    // Adding the same provider/id again replaces the entry.
    index.add({"local", "3f9a1c2b7d4e", "web2", 200});
    CHECK(index.entries().size() == 3);
    CHECK(index.find("web2")->created_at == 200);
    CHECK_FALSE(index.find("web"));

    CHECK(index.remove("local", "3f9a1c2b7d4e"));
    CHECK_FALSE(index.remove("local", "3f9a1c2b7d4e"));
    CHECK_FALSE(index.find("web2"));
    CHECK(index.entries().size() == 2);
}

TEST_CASE("exact matches win over prefixes - ambiguity is a conflict listing the candidates") {
    TempDir dir;
    Index index(dir.path);
    index.add({"local", "abcd1111", "", 1});
    index.add({"local", "abcd2222", "", 2});
    index.add({"local", "abcd", "", 3});
    index.add({"local", "eeee0000", "abcd1111x", 4});

    CHECK(index.find("abcd")->id == "abcd"); // exact id before prefix
    CHECK(index.find("abcd1111")->id == "abcd1111");
    CHECK(index.find("abcd1111x")->id == "eeee0000"); // a name

    auto unique = index.find("abcd1"); // a unique prefix
    REQUIRE(unique);
    CHECK(unique->id == "abcd1111");

    index.add({"local", "abcd1112", "", 5});
    try {
        index.find("abcd11");
        FAIL("an ambiguous prefix must be an error");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::conflict);
        std::string msg = e.what();
        CHECK(msg.find("'abcd11' is ambiguous") != std::string::npos);
        CHECK(msg.find("local/abcd1111") != std::string::npos);
        CHECK(msg.find("local/abcd1112") != std::string::npos);
        CHECK(msg.find("PROVIDER/ID") != std::string::npos);
    }

    // The same id with two providers, and the same name twice.
    index.add({"e2b", "abcd", "", 6});
    CHECK_THROWS_AS(index.find("abcd"), Error);
    CHECK(index.find("abcd", "e2b")->provider == "e2b");
    index.add({"e2b", "zzzz9999", "twin", 7});
    index.add({"local", "yyyy9999", "twin", 8});
    try {
        index.find("twin");
        FAIL("two sandboxes with one name must be an error");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::conflict);
        CHECK(std::string(e.what()).find("is the name of") != std::string::npos);
    }
}

TEST_CASE("the file is a JSON array written by atomic rename") {
    TempDir dir;
    Index index(dir.path);
    index.add({"local", "aaaa", "one", 10});
    index.add({"local", "bbbb", "", 11});
    auto doc = nlohmann::json::parse(read_file(dir.path / "index.json"));
    REQUIRE(doc.is_array());
    REQUIRE(doc.size() == 2);
    CHECK(doc[0] ==
          nlohmann::json{{"provider", "local"}, {"id", "aaaa"}, {"name", "one"}, {"created_at", 10}});
    CHECK(doc[1]["name"] == "");
    // The lock file exists; no temporary file is left behind.
    CHECK(std::filesystem::exists(dir.path / "index.lock"));
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path)) {
        (void)e;
        ++files;
    }
    CHECK(files == 2);

    // The rename replaces the file: a reader holding the old one keeps a complete old version.
    auto before = ::open((dir.path / "index.json").c_str(), O_RDONLY);
    REQUIRE(before >= 0);
    struct stat old_st {};
    ::fstat(before, &old_st);
    index.add({"local", "cccc", "", 12});
    struct stat new_st {};
    ::stat((dir.path / "index.json").c_str(), &new_st);
    CHECK(old_st.st_ino != new_st.st_ino);
    ::close(before);
}

TEST_CASE("prune removes the entries of sandboxes that are gone") {
    TempDir dir;
    Index index(dir.path);
    index.add({"local", "keep", "", 1});
    index.add({"local", "gone", "", 2});
    index.add({"e2b", "gone", "", 3});
    CHECK(index.prune("local", [](const std::string& id) { return id == "keep"; }) == 1);
    auto all = index.entries();
    REQUIRE(all.size() == 2);
    CHECK(all[0].id == "keep");
    CHECK(all[1].provider == "e2b");
}

TEST_CASE("a corrupt index is an error naming the file") {
    TempDir dir;
    dir.write("index.json", "{not json");
    Index index(dir.path);
    try {
        index.entries();
        FAIL("a corrupt index must be an error");
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::internal);
        std::string msg = e.what();
        CHECK(msg.find((dir.path / "index.json").string()) != std::string::npos);
        CHECK(msg.find("corrupt") != std::string::npos);
    }
    dir.write("index.json", R"([{"provider":"local"}])");
    CHECK_THROWS_WITH_AS(index.entries(), doctest::Contains("has no \"id\""), Error);
    dir.write("index.json", R"({"provider":"local"})");
    CHECK_THROWS_WITH_AS(index.entries(), doctest::Contains("not a JSON array"), Error);
}

TEST_CASE("concurrent adds from many processes are all recorded") {
    TempDir dir;
    constexpr int processes = 8;
    constexpr int per_process = 15;
    std::vector<pid_t> children;
    for (int p = 0; p < processes; ++p) {
        pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int status = 0;
            try {
                Index index(dir.path / "data");
                for (int i = 0; i < per_process; ++i)
                    index.add({"local", "p" + std::to_string(p) + "-" + std::to_string(i), "", i});
            } catch (...) {
                status = 1;
            }
            ::_exit(status);
        }
        children.push_back(pid);
    }
    for (pid_t pid : children) {
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    Index index(dir.path / "data");
    auto all = index.entries();
    CHECK(all.size() == static_cast<std::size_t>(processes * per_process));
    for (int p = 0; p < processes; ++p)
        for (int i = 0; i < per_process; ++i)
            CHECK(index.find("p" + std::to_string(p) + "-" + std::to_string(i)));
}

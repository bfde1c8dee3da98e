// Durations, sizes, K=V pairs and env files.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "providers/parse.hpp"

using namespace sbox;
using namespace std::chrono_literals;
using sbox::test::error_of;
using sbox::test::ScopedEnv;
using sbox::test::TempDir;

TEST_CASE("durations") {
    CHECK(parse_duration("90") == 90s);
    CHECK(parse_duration("90s") == 90s);
    CHECK(parse_duration("500ms") == 500ms);
    CHECK(parse_duration("5m") == 5min);
    CHECK(parse_duration("2h") == 2h);
    CHECK(parse_duration("1h30m") == 90min);
    CHECK(parse_duration("1m30s") == 90s);
    CHECK(parse_duration("1s500ms") == 1500ms);
    CHECK(parse_duration("1.5h") == 90min);
    CHECK(parse_duration("0.25s") == 250ms);
    CHECK(parse_duration("0") == 0ms);
    CHECK(parse_duration("1.5") == 1500ms);
}

TEST_CASE("duration errors say what is wrong and what to write") {
    auto e = error_of([] { parse_duration(""); });
    CHECK(e.find("empty") != std::string::npos);
    CHECK(e.find("1h30m") != std::string::npos); // the hint

    CHECK(error_of([] { parse_duration("-5s"); }).find("negative") != std::string::npos);
    CHECK(error_of([] { parse_duration("abc"); }).find("does not start with a number") != std::string::npos);
    CHECK(error_of([] { parse_duration("5x"); }).find("unknown unit 'x'") != std::string::npos);
    CHECK(error_of([] { parse_duration("5 s"); }).find("unknown unit ' s'") != std::string::npos);
    CHECK(error_of([] { parse_duration("1h30"); }).find("without a unit") != std::string::npos);
    CHECK(error_of([] { parse_duration("5m10"); }).find("without a unit") != std::string::npos);
    CHECK(error_of([] { parse_duration("1."); }).find("invalid duration '1.'") != std::string::npos);
    CHECK(error_of([] { parse_duration("99999999999999999999"); }).find("too large") != std::string::npos);
    CHECK(error_of([] { parse_duration("9999999999999999h"); }).find("too large") != std::string::npos);
    CHECK(error_of([] { parse_duration("2000000000000h2000000000000h"); }).find("too large") !=
          std::string::npos);
}

TEST_CASE("sizes are binary, like docker") {
    CHECK(parse_size("512") == 512u);
    CHECK(parse_size("512b") == 512u);
    CHECK(parse_size("512k") == 512u * 1024);
    CHECK(parse_size("512m") == 512ull << 20);
    CHECK(parse_size("1g") == 1ull << 30);
    CHECK(parse_size("1.5g") == 1610612736ull);
    CHECK(parse_size("2GiB") == 2ull << 30);
    CHECK(parse_size("100MB") == 100ull << 20);
    CHECK(parse_size("1 GB") == 1ull << 30);
    CHECK(parse_size("1kb") == 1024u);
    CHECK(parse_size("1KiB") == 1024u);
    CHECK(parse_size("1K") == 1024u);
    CHECK(parse_size("2t") == 2ull << 40);
    CHECK(parse_size("0") == 0u);
    CHECK(parse_size("0.5k") == 512u);
    CHECK(parse_size("1.0001k") == 1024u); // truncated to whole bytes
    CHECK(parse_size("16383p") == 16383ull << 50);
}

TEST_CASE("size errors") {
    CHECK(error_of([] { parse_size(""); }).find("empty") != std::string::npos);
    CHECK(error_of([] { parse_size("-1g"); }).find("negative") != std::string::npos);
    CHECK(error_of([] { parse_size("g"); }).find("does not start with a number") != std::string::npos);
    CHECK(error_of([] { parse_size("1x"); }).find("unknown unit 'x'") != std::string::npos);
    CHECK(error_of([] { parse_size("1gg"); }).find("unknown unit 'gg'") != std::string::npos);
    CHECK(error_of([] { parse_size("1.5.5"); }).find("unknown unit") != std::string::npos);
    CHECK(error_of([] { parse_size("1  g"); }).find("unknown unit") != std::string::npos);
    CHECK(error_of([] { parse_size("16384p"); }).find("too large") != std::string::npos);
    CHECK(error_of([] { parse_size("99999999999999999999"); }).find("too large") != std::string::npos);
    CHECK(error_of([] { parse_size("1x"); }).find("512m") != std::string::npos); // the hint
}

TEST_CASE("K=V pairs") {
    auto kv = parse_key_value("a=b=c", "label");
    CHECK(kv.key == "a");
    REQUIRE(kv.value);
    CHECK(*kv.value == "b=c");

    kv = parse_key_value("a=", "label");
    REQUIRE(kv.value);
    CHECK(kv.value->empty());

    kv = parse_key_value("flag", "label");
    CHECK(kv.key == "flag");
    CHECK_FALSE(kv.value);

    CHECK(error_of([] { parse_key_value("=v", "label"); }).find("invalid label '=v': the name is empty") !=
          std::string::npos);
    CHECK(error_of([] { parse_key_value("a b=v", "environment variable"); }).find("whitespace") !=
          std::string::npos);

    CHECK(parse_label("k=v") == std::pair<std::string, std::string>{"k", "v"});
    CHECK(parse_label("k") == std::pair<std::string, std::string>{"k", ""});
}

TEST_CASE("-e: a bare name takes the current environment's value, or is dropped") {
    ScopedEnv set("SBOX_UNIT_SET", "from-env");
    ScopedEnv unset("SBOX_UNIT_UNSET", std::nullopt);
    auto e = parse_env_assignment("A=1");
    REQUIRE(e);
    CHECK(*e == std::pair<std::string, std::string>{"A", "1"});
    e = parse_env_assignment("SBOX_UNIT_SET");
    REQUIRE(e);
    CHECK(e->second == "from-env");
    CHECK_FALSE(parse_env_assignment("SBOX_UNIT_UNSET"));
    e = parse_env_assignment("SBOX_UNIT_SET=override");
    REQUIRE(e);
    CHECK(e->second == "override");
}

TEST_CASE("env files: docker's format") {
    TempDir dir;
    ScopedEnv set("SBOX_UNIT_SET", "host value");
    ScopedEnv unset("SBOX_UNIT_UNSET", std::nullopt);
    auto file = dir.write("vars.env", "\xEF\xBB\xBF"
                                      "# a comment\n"
                                      "\n"
                                      "A=1\n"
                                      "   B=two words  \n"
                                      "C=\"quoted\"\n"
                                      "D=x=y\r\n"
                                      "  # indented comment\n"
                                      "SBOX_UNIT_SET\n"
                                      "SBOX_UNIT_UNSET\n"
                                      "E=\n"
                                      "F=last");
    Env env = read_env_file(file.string());
    Env expected{
        {"A", "1"}, {"B", "two words  "}, {"C", "\"quoted\""}, {"D", "x=y"}, {"SBOX_UNIT_SET", "host value"},
        {"E", ""},  {"F", "last"}};
    CHECK(env == expected);
}

TEST_CASE("env file errors name the file and the line") {
    TempDir dir;
    auto bad = dir.write("bad.env", "A=1\n# ok\nMY VAR=1\n");
    auto e = error_of([&] { read_env_file(bad.string()); });
    CHECK(e.find(bad.string()) != std::string::npos);
    CHECK(e.find("line 3") != std::string::npos);
    CHECK(e.find("'MY VAR' contains whitespace") != std::string::npos);

    auto empty_name = dir.write("empty.env", "=value\n");
    e = error_of([&] { read_env_file(empty_name.string()); });
    CHECK(e.find("line 1") != std::string::npos);
    CHECK(e.find("no variable name") != std::string::npos);

    auto utf = dir.write("utf.env", "A=1\nB=\xff\xfe\n");
    e = error_of([&] { read_env_file(utf.string()); });
    CHECK(e.find("line 2") != std::string::npos);
    CHECK(e.find("UTF-8") != std::string::npos);

    e = error_of([&] { read_env_file((dir.path / "missing.env").string()); });
    CHECK(e.find("cannot read env file") != std::string::npos);
    CHECK(e.find("missing.env") != std::string::npos);
    CHECK(e.find("No such file") != std::string::npos);

    e = error_of([&] { read_env_file(dir.path.string()); });
    CHECK(e.find("Is a directory") != std::string::npos);
}

TEST_CASE("cpus are thousandths of a CPU") {
    CHECK(parse_cpus("2") == 2000u);
    CHECK(parse_cpus("0.5") == 500u);
    CHECK(parse_cpus("1.25") == 1250u);
    CHECK(parse_cpus(".5") == 500u);
    CHECK(parse_cpus("0.001") == 1u);
    CHECK(parse_cpus("0.0019") == 1u); // past the third decimal is dropped
    for (const char* bad : {"", "0", "0.0", "abc", "1.5.2", "-1", "1e3", "2 ", "0.0001", "."})
        CHECK_THROWS_AS(parse_cpus(bad), Error);
}

TEST_CASE("--port values: PORT, HOSTPORT:PORT, /tcp or /udp") {
    auto p = parse_port("8080");
    CHECK(p.host == 0);
    CHECK(p.sandbox == 8080);
    CHECK(p.protocol == "tcp");
    p = parse_port("9000:80");
    CHECK(p.host == 9000);
    CHECK(p.sandbox == 80);
    p = parse_port("5353/udp");
    CHECK(p.sandbox == 5353);
    CHECK(p.protocol == "udp");
    p = parse_port("65535:1/TCP");
    CHECK(p.host == 65535);
    CHECK(p.sandbox == 1);
    CHECK(p.protocol == "tcp");

    for (const char* bad : {"", "0", "65536", "99999999", "abc", "80a", "-1", ":80", "80:", "1:2:3",
                            "80/sctp", "80/", "127.0.0.1:80:80", " 80"}) {
        INFO("--port " << bad);
        auto e = error_of([&] { parse_port(bad); });
        CHECK(e.find("--port") != std::string::npos);
        CHECK(e.find("PORT") != std::string::npos); // says what to write
    }
    CHECK(error_of([] { parse_port("1:2:3"); }).find("127.0.0.1") != std::string::npos);
}

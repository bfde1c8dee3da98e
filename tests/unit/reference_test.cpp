// Sandbox references: PROVIDER/ID, bare IDs and names, and cp's REF:PATH.
#include <doctest/doctest.h>

#include "helpers.hpp"

#include "providers/provider.hpp"
#include "providers/reference.hpp"

using namespace sbox;
using sbox::test::error_of;

namespace {

const std::vector<std::string> providers{"local", "e2b"};
} // namespace

TEST_CASE("PROVIDER/ID") {
    Reference r = parse_reference("local/3f9a1c2b7d4e", providers);
    CHECK(r.qualified());
    CHECK(r.provider == "local");
    CHECK(r.token == "3f9a1c2b7d4e");
    CHECK(r.str() == "local/3f9a1c2b7d4e");

    r = parse_reference("e2b/i5x8k2p0q9w3e4r5t6y7", providers);
    CHECK(r.provider == "e2b");
    CHECK(r.token == "i5x8k2p0q9w3e4r5t6y7");
}

TEST_CASE("a bare id or name") {
    Reference r = parse_reference("3f9a", providers);
    CHECK_FALSE(r.qualified());
    CHECK(r.provider.empty());
    CHECK(r.token == "3f9a");
    CHECK(r.str() == "3f9a");
    CHECK(parse_reference("my-box_1.web", providers).token == "my-box_1.web");
}

TEST_CASE("invalid references") {
    CHECK(error_of([] { parse_reference("", providers); }).find("empty sandbox reference") !=
          std::string::npos);
    auto e = error_of([] { parse_reference("docker/abc", providers); });
    CHECK(e.find("unknown provider 'docker'") != std::string::npos);
    CHECK(e.find("known: local, e2b") != std::string::npos);
    CHECK(error_of([] { parse_reference("local/", providers); }).find("ID is missing") != std::string::npos);
    CHECK(error_of([] { parse_reference("/abc", providers); }).find("provider is missing") !=
          std::string::npos);
    CHECK(error_of([] { parse_reference("local/a/b", providers); }).find("cannot contain '/'") !=
          std::string::npos);
    CHECK(error_of([] { parse_reference("my box", providers); }).find("whitespace") != std::string::npos);
    CHECK(error_of([] { parse_reference("a\tb", providers); }).find("whitespace") != std::string::npos);
}

TEST_CASE("REF:PATH splits at the first ':'") {
    auto rp = parse_ref_path("local/3f9a:/etc/hosts", providers);
    REQUIRE(rp);
    CHECK(rp->ref.provider == "local");
    CHECK(rp->ref.token == "3f9a");
    CHECK(rp->path == "/etc/hosts");

    rp = parse_ref_path("web:/data/a:b:c", providers); // the path may contain ':'
    REQUIRE(rp);
    CHECK_FALSE(rp->ref.qualified());
    CHECK(rp->ref.token == "web");
    CHECK(rp->path == "/data/a:b:c");

    rp = parse_ref_path("web:relative/file", providers);
    REQUIRE(rp);
    CHECK(rp->path == "relative/file");
}

TEST_CASE("host paths are not REF:PATH") {
    CHECK_FALSE(parse_ref_path("local/3f9a", providers)); // no ':' at all: a host path
    CHECK_FALSE(parse_ref_path("file.txt", providers));
    CHECK_FALSE(parse_ref_path("-", providers));
    CHECK_FALSE(parse_ref_path("/tmp/a:b", providers));
    CHECK_FALSE(parse_ref_path("./a:b", providers));
    CHECK_FALSE(parse_ref_path("../x:y", providers));
    CHECK_FALSE(parse_ref_path("", providers));
}

TEST_CASE("invalid REF:PATH") {
    CHECK(error_of([] { parse_ref_path("web:", providers); }).find("the path after ':' is empty") !=
          std::string::npos);
    CHECK(error_of([] { parse_ref_path(":/etc", providers); }).find("reference before ':' is empty") !=
          std::string::npos);
    CHECK(error_of([] { parse_ref_path("docker/x:/etc", providers); }).find("unknown provider 'docker'") !=
          std::string::npos);
}

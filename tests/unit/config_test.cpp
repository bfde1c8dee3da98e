// The TOML configuration file and the choice of the default provider.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "providers/config.hpp"
#include "providers/paths.hpp"

using namespace sbox;
using sbox::test::error_of;
using sbox::test::ScopedEnv;
using sbox::test::TempDir;

TEST_CASE("a valid configuration") {
    Config cfg = Config::parse("# sbox\n"
                               "provider = \"e2b\"\n"
                               "\n"
                               "[providers.e2b]\n"
                               "api_key = \"from-file\"\n"
                               "domain = \"e2b.example\"\n"
                               "[providers.local]\n",
                               "test.toml");
    CHECK(cfg.source() == "test.toml");
    REQUIRE(cfg.provider());
    CHECK(*cfg.provider() == "e2b");
    CHECK(cfg.providers().size() == 2);
    CHECK(cfg.file_setting("e2b", "api_key") == std::optional<std::string>("from-file"));
    CHECK(cfg.file_setting("e2b", "domain") == std::optional<std::string>("e2b.example"));
    CHECK_FALSE(cfg.file_setting("e2b", "missing"));
    CHECK_FALSE(cfg.file_setting("daytona", "api_key"));
    CHECK(cfg.providers().at("local").empty());
}

TEST_CASE("an empty configuration") {
    Config cfg = Config::parse("", "empty.toml");
    CHECK_FALSE(cfg.provider());
    CHECK(cfg.providers().empty());
}

TEST_CASE("a malformed file: the file, the line and the problem") {
    auto e = error_of([] { Config::parse("provider = \"local\"\n\nprovider = = 3\n", "/etc/sbox.toml"); });
    CHECK(e.find("config file '/etc/sbox.toml'") != std::string::npos);
    CHECK(e.find("line 3") != std::string::npos);

    e = error_of([] { Config::parse("[providers.e2b\napi_key = \"x\"\n", "c.toml"); });
    CHECK(e.find("line 1") != std::string::npos);

    e = error_of([] { Config::parse("\nprovider = 3\n", "c.toml"); });
    CHECK(e.find("line 2") != std::string::npos);
    CHECK(e.find("'provider' must be a string") != std::string::npos);

    e = error_of([] { Config::parse("[providers.e2b]\napi_key = 42\n", "c.toml"); });
    CHECK(e.find("line 2") != std::string::npos);
    CHECK(e.find("'providers.e2b.api_key' must be a string") != std::string::npos);

    e = error_of([] { Config::parse("\n\nprovder = \"local\"\n", "c.toml"); });
    CHECK(e.find("line 3") != std::string::npos);
    CHECK(e.find("unknown key 'provder'") != std::string::npos);

    e = error_of([] { Config::parse("providers = \"x\"\n", "c.toml"); });
    CHECK(e.find("'providers' must be a table") != std::string::npos);

    e = error_of([] { Config::parse("[providers]\ne2b = \"x\"\n", "c.toml"); });
    CHECK(e.find("'providers.e2b' must be a table") != std::string::npos);
}

TEST_CASE("the environment wins over the file") {
    Config cfg = Config::parse(
        "[providers.e2b]\napi_key = \"from-file\"\n[providers.blaxel]\napi_key = \"f\"\n", "c.toml");
    {
        ScopedEnv unset("E2B_API_KEY", std::nullopt);
        CHECK(cfg.setting("e2b", "api_key") == std::optional<std::string>("from-file"));
    }
    {
        ScopedEnv set("E2B_API_KEY", "from-env");
        CHECK(cfg.setting("e2b", "api_key") == std::optional<std::string>("from-env"));
    }
    {
        ScopedEnv empty("E2B_API_KEY", ""); // set but empty: as if unset
        CHECK(cfg.setting("e2b", "api_key") == std::optional<std::string>("from-file"));
    }
    {
        ScopedEnv set("BL_API_KEY", "bl-env"); // an explicit variable name
        CHECK(cfg.setting("blaxel", "api_key", "BL_API_KEY") == std::optional<std::string>("bl-env"));
    }
    {
        ScopedEnv set("DAYTONA_API_URL", "http://127.0.0.1:1");
        CHECK(cfg.setting("daytona", "api-url") == std::optional<std::string>("http://127.0.0.1:1"));
    }
    ScopedEnv unset("DAYTONA_API_KEY", std::nullopt);
    CHECK_FALSE(cfg.setting("daytona", "api_key"));
}

TEST_CASE("loading: the default file is optional, an explicit one is not") {
    TempDir dir;
    ScopedEnv xdg("XDG_CONFIG_HOME", dir.path.string());
    CHECK(default_config_file() == dir.path / "sbox" / "config.toml");

    Config cfg = Config::load(); // no file: empty
    CHECK_FALSE(cfg.provider());
    CHECK(cfg.source().empty());

    std::filesystem::create_directories(dir.path / "sbox");
    dir.write("sbox/config.toml", "provider = \"e2b\"\n");
    cfg = Config::load();
    REQUIRE(cfg.provider());
    CHECK(*cfg.provider() == "e2b");
    CHECK(cfg.source() == (dir.path / "sbox" / "config.toml").string());

    auto other = dir.write("other.toml", "provider = \"daytona\"\n");
    cfg = Config::load(other.string());
    CHECK(*cfg.provider() == "daytona");

    auto e = error_of([&] { Config::load((dir.path / "nope.toml").string()); });
    CHECK(e.find("nope.toml' does not exist") != std::string::npos);

    auto bad = dir.write("bad.toml", "provider = \n");
    e = error_of([&] { Config::load(bad.string()); });
    CHECK(e.find(bad.string()) != std::string::npos);
    CHECK(e.find("line 1") != std::string::npos);
}

TEST_CASE("the default provider: -p, SBOX_PROVIDER, the config file, local") {
    Config with = Config::parse("provider = \"from-config\"\n", "c.toml");
    Config without;
    int loads = 0;
    auto load_with = [&]() -> const Config& {
        ++loads;
        return with;
    };
    auto load_without = [&]() -> const Config& { return without; };

    ScopedEnv env("SBOX_PROVIDER", "from-env");
    CHECK(default_provider_name("from-flag", load_with) == "from-flag");
    CHECK(default_provider_name("", load_with) == "from-env");
    CHECK(loads == 0); // the file is not read when it is not needed
    {
        ScopedEnv unset("SBOX_PROVIDER", std::nullopt);
        CHECK(default_provider_name("", load_with) == "from-config");
        CHECK(loads == 1);
        CHECK(default_provider_name("", load_without) == "local");
    }
    {
        ScopedEnv empty("SBOX_PROVIDER", "");
        CHECK(default_provider_name("", load_without) == "local");
    }
}

// The configuration file (design.md, "Configuration"): `--config FILE`, else
// $XDG_CONFIG_HOME/sbox/config.toml (default ~/.config/sbox/config.toml).
//
//     provider = "local"          # the default provider
//     [providers.e2b]             # per-provider settings, all strings
//     api_key = "..."
//
// The file is only read when it exists (a stat, nothing more, for the common case of no file); the
// environment wins over it.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace sbox {

class Config {
  public:
    using Settings = std::map<std::string, std::string, std::less<>>;

    Config() = default;

    // explicit_file empty: the default location, where a missing file is an empty configuration. An explicit
    // file that does not exist is Error(invalid). A malformed file is Error(invalid) naming the file, the
    // line and the problem.
    static Config load(const std::string& explicit_file = {});
    // Parses TOML text; `source` names it in error messages.
    static Config parse(std::string_view text, const std::string& source);

    // The file this came from ("" when none was read).
    const std::string& source() const { return source_; }
    // The top-level `provider` key.
    const std::optional<std::string>& provider() const { return provider_; }
    // [providers.NAME] tables.
    const std::map<std::string, Settings, std::less<>>& providers() const { return providers_; }

    // The value in [providers.PROVIDER] only.
    std::optional<std::string> file_setting(std::string_view provider, std::string_view key) const;

    // A provider setting, the environment winning over the file: env_var (default: PROVIDER_KEY upper-cased,
    // '-' as '_', e.g. e2b/api_key → E2B_API_KEY) when set and not empty, else [providers.PROVIDER] KEY.
    std::optional<std::string> setting(std::string_view provider, std::string_view key,
                                       std::string_view env_var = {}) const;

  private:
    std::string source_;
    std::optional<std::string> provider_;
    std::map<std::string, Settings, std::less<>> providers_;
};

// The default provider: the -p flag (when not empty), else $SBOX_PROVIDER, else the config file's `provider`,
// else "local". `config` is only called when it is needed.
std::string default_provider_name(std::string_view flag, const std::function<const Config&()>& config);

} // namespace sbox

#include "providers/config.hpp"

#include <cerrno>
#include <cstdlib>
#include <sys/stat.h>

// toml++ is used header-only, in this file only: the binary must not load libtomlplusplus for every command.
#undef TOML_HEADER_ONLY
#define TOML_HEADER_ONLY 1
#undef TOML_SHARED_LIB
#define TOML_ENABLE_FORMATTERS 0
#include <toml++/toml.h>

#include "providers/parse.hpp"
#include "providers/paths.hpp"
#include "providers/provider.hpp"

namespace sbox {

namespace {

Error config_error(const std::string& source, const toml::source_region& where, const std::string& problem) {
    std::string msg = "config file '" + source + "'";
    if (where.begin.line != 0)
        msg +=
            ", line " + std::to_string(where.begin.line) + ", column " + std::to_string(where.begin.column);
    return Error(ErrorKind::invalid, msg + ": " + problem);
}

std::string upper_env_name(std::string_view provider, std::string_view key) {
    std::string out;
    for (std::string_view part : {provider, std::string_view("_"), key})
        for (char c : part) {
            if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
            if (c == '-' || c == '.') c = '_';
            out += c;
        }
    return out;
}

} // namespace

Config Config::parse(std::string_view text, const std::string& source) {
    Config cfg;
    cfg.source_ = source;
    toml::table root;
    try {
        root = toml::parse(text, source);
    } catch (const toml::parse_error& e) {
        throw config_error(source, e.source(), std::string(e.description()));
    }
    for (auto&& [key, node] : root) {
        if (key == "provider") {
            const auto* s = node.as_string();
            if (s == nullptr)
                throw config_error(source, node.source(),
                                   "'provider' must be a string, e.g. provider = \"local\"");
            if (s->get().empty()) throw config_error(source, node.source(), "'provider' is empty");
            cfg.provider_ = s->get();
        } else if (key == "providers") {
            const auto* tables = node.as_table();
            if (tables == nullptr)
                throw config_error(source, node.source(),
                                   "'providers' must be a table of [providers.NAME] tables");
            for (auto&& [name, sub] : *tables) {
                const auto* settings = sub.as_table();
                if (settings == nullptr)
                    throw config_error(source, sub.source(),
                                       "'providers." + std::string(name.str()) + "' must be a table");
                auto& out = cfg.providers_[std::string(name.str())];
                for (auto&& [k, v] : *settings) {
                    const auto* s = v.as_string();
                    if (s == nullptr)
                        throw config_error(source, v.source(),
                                           "'providers." + std::string(name.str()) + "." +
                                               std::string(k.str()) +
                                               "' must be a string (put the value in quotes)");
                    out[std::string(k.str())] = s->get();
                }
            }
        } else {
            throw config_error(source, key.source(),
                               "unknown key '" + std::string(key.str()) +
                                   "' (known: provider, and [providers.NAME] tables)");
        }
    }
    return cfg;
}

Config Config::load(const std::string& explicit_file) {
    std::string path = explicit_file.empty() ? default_config_file().string() : explicit_file;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (explicit_file.empty() && (errno == ENOENT || errno == ENOTDIR)) return Config{};
        if (errno == ENOENT)
            throw Error(ErrorKind::invalid,
                        "config file '" + path + "' does not exist (check the --config path)");
    }
    return parse(read_text_file(path, "config file"), path);
}

std::optional<std::string> Config::file_setting(std::string_view provider, std::string_view key) const {
    auto p = providers_.find(provider);
    if (p == providers_.end()) return std::nullopt;
    auto s = p->second.find(key);
    if (s == p->second.end()) return std::nullopt;
    return s->second;
}

std::optional<std::string> Config::setting(std::string_view provider, std::string_view key,
                                           std::string_view env_var) const {
    std::string name = env_var.empty() ? upper_env_name(provider, key) : std::string(env_var);
    if (const char* v = std::getenv(name.c_str()); v != nullptr && *v != '\0') return std::string(v);
    return file_setting(provider, key);
}

std::string default_provider_name(std::string_view flag, const std::function<const Config&()>& config) {
    if (!flag.empty()) return std::string(flag);
    if (const char* v = std::getenv("SBOX_PROVIDER"); v != nullptr && *v != '\0') return v;
    if (config) {
        const Config& cfg = config();
        if (cfg.provider()) return *cfg.provider();
    }
    return "local";
}

} // namespace sbox

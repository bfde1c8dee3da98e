#include "providers/paths.hpp"

#include <cstdlib>
#include <pwd.h>
#include <string>
#include <unistd.h>

namespace sbox {

namespace {

// An environment variable that is set and not empty.
const char* env(const char* name) {
    const char* v = std::getenv(name);
    return (v != nullptr && *v != '\0') ? v : nullptr;
}

// XDG base directories must be absolute; a relative value is ignored (XDG Base Directory Specification).
const char* xdg(const char* name) {
    const char* v = env(name);
    return (v != nullptr && v[0] == '/') ? v : nullptr;
}

} // namespace

std::filesystem::path home_dir() {
    if (const char* home = env("HOME")) return home;
    if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_dir != nullptr) return pw->pw_dir;
    return "/";
}

std::filesystem::path data_dir() {
    if (const char* root = env("SBOX_ROOT")) return std::filesystem::path(root) / "data";
    if (::geteuid() == 0) return "/var/lib/sbox";
    if (const char* d = xdg("XDG_DATA_HOME")) return std::filesystem::path(d) / "sbox";
    return home_dir() / ".local" / "share" / "sbox";
}

std::filesystem::path runtime_dir() {
    if (const char* root = env("SBOX_ROOT")) return std::filesystem::path(root) / "run";
    if (::geteuid() == 0) return "/run/sbox";
    if (const char* d = xdg("XDG_RUNTIME_DIR")) return std::filesystem::path(d) / "sbox";
    return "/tmp/sbox-" + std::to_string(::geteuid());
}

std::filesystem::path default_config_file() {
    if (const char* d = xdg("XDG_CONFIG_HOME")) return std::filesystem::path(d) / "sbox" / "config.toml";
    return home_dir() / ".config" / "sbox" / "config.toml";
}

} // namespace sbox

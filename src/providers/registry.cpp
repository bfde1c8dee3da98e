#include "providers/registry.hpp"

#include "providers/local.hpp"
#include "providers/module.hpp"

namespace sbox {

namespace {

// The remote providers, each in its own module, and the setting without which it cannot work.
struct RemoteProvider {
    const char* name;
    const char* credential_key; // [providers.NAME] KEY in the config file
    const char* credential_env; // the official SDK's variable for it
};
constexpr RemoteProvider remote_providers[] = {
    {"e2b", "api_key", "E2B_API_KEY"},
};

} // namespace

Registry::Registry() {
    add("local", [] { return make_local_provider(); });
    for (const auto& remote : remote_providers)
        add(
            remote.name, [this, remote] { return make_module_provider(remote.name, config()); },
            [this, remote] {
                return config()
                    .setting(remote.name, remote.credential_key, remote.credential_env)
                    .has_value();
            });
}

const Config& Registry::config() const {
    static const Config empty;
    return config_ ? config_() : empty;
}

bool Registry::may_be_configured(std::string_view name) const {
    for (const auto& e : entries_)
        if (e.name == name) return !e.credentials_present || e.credentials_present();
    return false;
}

Registry::Registry(std::vector<std::pair<std::string, Factory>> factories) {
    for (auto& [name, factory] : factories)
        add(std::move(name), std::move(factory));
}

void Registry::add(std::string name, Factory factory, std::function<bool()> credentials_present) {
    for (auto& e : entries_)
        if (e.name == name) {
            e.factory = std::move(factory);
            e.instance.reset();
            e.credentials_present = std::move(credentials_present);
            return;
        }
    entries_.push_back(Entry{std::move(name), std::move(factory), nullptr, std::move(credentials_present)});
}

std::vector<std::string> Registry::names() const {
    std::vector<std::string> out;
    out.reserve(entries_.size());
    for (const auto& e : entries_)
        out.push_back(e.name);
    return out;
}

bool Registry::contains(std::string_view name) const {
    for (const auto& e : entries_)
        if (e.name == name) return true;
    return false;
}

Provider& Registry::get(std::string_view name) {
    for (auto& e : entries_) {
        if (e.name != name) continue;
        if (!e.instance) {
            e.instance = e.factory();
            if (!e.instance)
                throw Error(ErrorKind::internal, "provider '" + e.name + "' could not be created", e.name);
        }
        return *e.instance;
    }
    std::string known;
    for (const auto& e : entries_)
        known += (known.empty() ? "" : ", ") + e.name;
    throw Error(ErrorKind::invalid, "unknown provider '" + std::string(name) +
                                        "' (known: " + (known.empty() ? "none" : known) + ")");
}

} // namespace sbox

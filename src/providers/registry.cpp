#include "providers/registry.hpp"

#include "providers/local.hpp"

namespace sbox {

Registry::Registry() {
    add("local", [] { return make_local_provider(); });
}

Registry::Registry(std::vector<std::pair<std::string, Factory>> factories) {
    for (auto& [name, factory] : factories)
        add(std::move(name), std::move(factory));
}

void Registry::add(std::string name, Factory factory) {
    for (auto& e : entries_)
        if (e.name == name) {
            e.factory = std::move(factory);
            e.instance.reset();
            return;
        }
    entries_.push_back(Entry{std::move(name), std::move(factory), nullptr});
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

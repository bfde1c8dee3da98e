// The providers sbox knows, by name. Each is created on first use (creating one may be costly: a remote
// provider loads its module), so a command pays only for the provider it uses.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "providers/provider.hpp"

namespace sbox {

class Registry {
  public:
    using Factory = std::function<std::unique_ptr<Provider>()>;

    // The built-in providers: today only "local".
    Registry();
    // Exactly these providers (tests, embedding).
    explicit Registry(std::vector<std::pair<std::string, Factory>> factories);

    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // Registers (or replaces) a provider.
    void add(std::string name, Factory factory);

    // Registered names, in registration order.
    std::vector<std::string> names() const;
    bool contains(std::string_view name) const;

    // The provider, created on first use. Unknown name: Error(invalid) "unknown provider 'x' (known: local)".
    // A factory's failure propagates and is retried on the next call.
    Provider& get(std::string_view name);

  private:
    struct Entry {
        std::string name;
        Factory factory;
        std::unique_ptr<Provider> instance;
    };
    std::vector<Entry> entries_;
};

} // namespace sbox

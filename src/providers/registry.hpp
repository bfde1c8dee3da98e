// The providers sbox knows, by name. Each is created on first use (creating one may be costly: a remote
// provider loads its module), so a command pays only for the provider it uses.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "providers/config.hpp"
#include "providers/provider.hpp"

namespace sbox {

class Registry {
  public:
    using Factory = std::function<std::unique_ptr<Provider>()>;

    // The built-in providers: "local", then the remote providers, each in its module (libsbox-NAME.so).
    Registry();
    // Exactly these providers (tests, embedding).
    explicit Registry(std::vector<std::pair<std::string, Factory>> factories);

    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // Registers (or replaces) a provider. `credentials_present`, when given, is a cheap check (no module is
    // loaded) of whether the provider's credentials are set at all: listing every provider skips one
    // without them instead of loading its module only to hear that it is not configured.
    void add(std::string name, Factory factory, std::function<bool()> credentials_present = {});

    // Where remote providers get the configuration file's settings (read on first use). Until this is
    // called they see an empty configuration (the environment only).
    void set_config(std::function<const Config&()> config) { config_ = std::move(config); }
    const Config& config() const;

    // False only when the provider surely is not configured (its credentials_present check said so).
    bool may_be_configured(std::string_view name) const;

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
        std::function<bool()> credentials_present;
    };
    std::vector<Entry> entries_;
    std::function<const Config&()> config_;
};

} // namespace sbox

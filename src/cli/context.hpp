// What every subcommand shares: the global options, the provider registry, the (lazily loaded) configuration
// and index, resolution of sandbox references, capability checks and error attribution.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "providers/config.hpp"
#include "providers/index.hpp"
#include "providers/provider.hpp"
#include "providers/registry.hpp"

namespace CLI {
class App;
}

namespace sbox::cli {

// Accepted before or after the subcommand.
struct GlobalOptions {
    std::string provider;    // -p/--provider; empty: SBOX_PROVIDER, the config file, then "local"
    std::string config_file; // --config; empty: the default location
    bool json = false;       // --json
    bool quiet = false;      // -q/--quiet
    bool verbose = false;    // -v/--verbose
    bool no_color = false;   // --no-color, or NO_COLOR set
};

// Registers the global options on `app` (the root, and the subcommands that cannot use fallthrough).
void add_global_options(CLI::App& app, GlobalOptions& global);

class Context {
  public:
    explicit Context(Registry& registry) : registry(registry) {}

    GlobalOptions global;
    Registry& registry;
    int exit_code = 0;
    // exec/run: the words after a `--` that ended their options (see split_at_separator).
    std::optional<std::vector<std::string>> after_separator;

    // The configuration, read on first use (and only if the file exists).
    const Config& config();
    // sbox's index in data_dir(), created on first use.
    Index& index();
    // -p, else SBOX_PROVIDER, else the config file, else "local".
    std::string provider_name();
    // The provider by name (Error(invalid) when unknown).
    Provider& provider(std::string_view name);
    // The provider by name, refusing one that is not configured (Error(auth) with the provider's
    // explanation).
    Provider& usable_provider(std::string_view name);

    // A warning on stderr (unless --quiet).
    void warn(const std::string& message, std::string_view provider = {}) const;

  private:
    std::optional<Config> config_;
    std::unique_ptr<Index> index_;
};

// Prints an error on stderr: `sbox: PROVIDER: MESSAGE`, or with --json
// {"error":{"kind","message","provider"}}. A CLI11 parse error gets " (see sbox --help)".
void report_error(const Context& ctx, const std::exception& error);

// Runs f(), attributing an sbox::Error without a provider (or any other exception) to `provider`.
template <class F>
decltype(auto) with_provider(std::string_view provider, F&& f) {
    try {
        return f();
    } catch (const CommandError& e) {
        if (!e.provider().empty()) throw;
        throw CommandError(e.exit_status(), e.what(), std::string(provider));
    } catch (const Error& e) {
        if (!e.provider().empty()) throw;
        throw Error(e.kind(), e.what(), std::string(provider));
    } catch (const std::bad_alloc&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(ErrorKind::internal, e.what(), std::string(provider));
    }
}

// Fails with "sbox: PROVIDER: <what> is not supported by this provider" when the capability is missing.
void require(Provider& provider, Capability capability, std::string_view what);

// Runs f(), turning Error(invalid) into Error(usage): for values given on the command line.
template <class F>
decltype(auto) usage_value(F&& f) {
    try {
        return f();
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::invalid) throw;
        throw Error(ErrorKind::usage, e.what(), e.provider());
    }
}

// A sandbox named on the command line, resolved to its provider and id.
struct Target {
    std::string text; // what the user typed
    Provider* provider = nullptr;
    std::string provider_name;
    std::string id;
    std::optional<SandboxInfo> info; // when resolution already asked the provider

    std::string ref() const { return provider_name + "/" + id; }
};

// PROVIDER/ID directly; otherwise sbox's index (restricted to -p when given), then the chosen provider's
// get(). Error(not_found) "no sandbox 'x' (see sbox ls)" when nothing matches.
Target resolve(Context& ctx, std::string_view text);

// The provider said the target does not exist: forget it in the index and return the error to throw.
Error gone(Context& ctx, const Target& target);

// Runs an operation on a resolved target: errors are attributed to its provider, and not_found becomes
// gone().
template <class F>
decltype(auto) on_target(Context& ctx, const Target& target, F&& f) {
    try {
        return with_provider(target.provider_name, std::forward<F>(f));
    } catch (const CommandError&) {
        throw;
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::not_found) throw gone(ctx, target);
        throw;
    }
}

} // namespace sbox::cli

#include "cli/context.hpp"

#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/exit_codes.hpp"
#include "cli/output.hpp"
#include "providers/paths.hpp"
#include "providers/reference.hpp"

namespace sbox::cli {

void add_global_options(CLI::App& app, GlobalOptions& global) {
    app.add_option("-p,--provider", global.provider,
                   "The provider (default: $SBOX_PROVIDER, the config file, local)")
        ->group("Global options");
    app.add_flag("--json", global.json, "Machine-readable output (and errors)")->group("Global options");
    app.add_flag("-q,--quiet", global.quiet, "Less output: ls prints references only; no warnings")
        ->group("Global options");
    app.add_flag("-v,--verbose", global.verbose, "Log requests on stderr")->group("Global options");
    app.add_option("--config", global.config_file,
                   "The configuration file (default: ~/.config/sbox/config.toml)")
        ->group("Global options");
    app.add_flag("--no-color", global.no_color, "No colors (also: NO_COLOR)")->group("Global options");
}

const Config& Context::config() {
    if (!config_) config_ = Config::load(global.config_file);
    return *config_;
}

Index& Context::index() {
    if (!index_) index_ = std::make_unique<Index>(data_dir());
    return *index_;
}

std::string Context::provider_name() {
    return default_provider_name(global.provider, [this]() -> const Config& { return config(); });
}

Provider& Context::provider(std::string_view name) {
    return with_provider(registry.contains(name) ? name : std::string_view{},
                         [&]() -> Provider& { return registry.get(name); });
}

Provider& Context::usable_provider(std::string_view name) {
    Provider& p = provider(name);
    std::string why;
    bool ok = with_provider(name, [&] { return p.configured(why); });
    if (!ok)
        throw Error(ErrorKind::auth,
                    why.empty() ? "the provider is not configured (see sbox providers)" : why,
                    std::string(name));
    return p;
}

void Context::warn(const std::string& message, std::string_view provider) const {
    if (global.quiet) return;
    std::cerr << format_error("warning: " + message, provider) << std::flush;
}

void report_error(const Context& ctx, const std::exception& error) {
    std::string message = error.what();
    std::string provider;
    if (const auto* e = dynamic_cast<const Error*>(&error)) provider = e->provider();
    if (dynamic_cast<const CLI::ParseError*>(&error) != nullptr) message += " (see sbox --help)";
    if (ctx.global.json)
        std::cerr << error_json(error_kind(error), message, provider).dump() << '\n';
    else
        std::cerr << format_error(message, provider);
    std::cerr.flush();
}

void require(Provider& provider, Capability capability, std::string_view what) {
    if (!provider.capabilities().has(capability))
        throw Error(ErrorKind::unsupported, std::string(what) + " is not supported by this provider",
                    std::string(provider.name()));
}

Target resolve(Context& ctx, std::string_view text) {
    Reference ref = parse_reference(text, ctx.registry.names());
    Target t;
    t.text = std::string(text);
    if (ref.qualified()) {
        t.provider_name = ref.provider;
        t.provider = &ctx.usable_provider(ref.provider);
        t.id = ref.token;
        return t;
    }
    std::optional<IndexEntry> entry;
    try {
        entry = ctx.index().find(ref.token, ctx.global.provider);
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::internal) throw; // ambiguity is the user's to resolve
        ctx.warn(e.what()); // an unreadable index: the provider may still know the name
    }
    if (entry) {
        t.provider_name = entry->provider;
        t.provider = &ctx.usable_provider(entry->provider);
        t.id = entry->id;
        return t;
    }
    t.provider_name = ctx.provider_name();
    t.provider = &ctx.usable_provider(t.provider_name);
    auto info = with_provider(t.provider_name, [&] { return t.provider->get(ref.token); });
    if (!info)
        throw Error(ErrorKind::not_found, "no sandbox '" + t.text + "' (see sbox ls)", t.provider_name);
    t.id = info->id;
    t.info = std::move(info);
    return t;
}

Error gone(Context& ctx, const Target& target) {
    try {
        ctx.index().remove(target.provider_name, target.id);
    } catch (const std::exception&) {
        // the index is a cache: failing to prune it does not change the answer
    }
    return Error(ErrorKind::not_found, "no sandbox '" + target.text + "' (see sbox ls)",
                 target.provider_name);
}

} // namespace sbox::cli

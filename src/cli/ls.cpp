// sbox ls [-p P] [-q] [--json] [-l K=V]...
// Every configured provider's sandboxes (only P's with -p), newest first: a table, references only (-q), or a
// JSON array. -l K=V keeps sandboxes with that label value, -l K those with the label.
#include <algorithm>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/output.hpp"
#include "providers/log.hpp"
#include "providers/parse.hpp"

namespace sbox::cli {

namespace {

struct LsOptions {
    std::vector<std::string> labels;
};

bool matches(const SandboxInfo& info, const std::vector<KeyValue>& filters) {
    for (const auto& f : filters) {
        auto it = info.labels.find(f.key);
        if (it == info.labels.end()) return false;
        if (f.value && it->second != *f.value) return false;
    }
    return true;
}

int run_ls(const LsOptions& opt, Context& ctx) {
    std::vector<KeyValue> filters;
    for (const auto& l : opt.labels)
        filters.push_back(usage_value([&] { return parse_key_value(l, "label"); }));

    const bool restricted = !ctx.global.provider.empty();
    std::vector<std::string> names =
        restricted ? std::vector<std::string>{ctx.global.provider} : ctx.registry.names();
    std::vector<SandboxInfo> all;
    bool failed = false;
    Labels exact; // what a provider may filter on itself
    for (const auto& f : filters)
        if (f.value) exact[f.key] = *f.value;
    for (const auto& name : names) {
        Provider* provider = nullptr;
        if (restricted) {
            provider = &ctx.usable_provider(name);
        } else {
            // Listing everything: a provider that is not configured, or cannot even be set up (a module that
            // is not installed), has no sandboxes to show.
            if (!ctx.registry.may_be_configured(name)) {
                log(name, "not listed: not configured");
                continue;
            }
            try {
                provider = &ctx.usable_provider(name);
            } catch (const std::exception& e) {
                log(name, std::string("not listed: ") + e.what());
                continue;
            }
        }
        try {
            for (auto& info : with_provider(name, [&] { return provider->list_filtered(exact); })) {
                if (info.provider.empty()) info.provider = name;
                if (matches(info, filters)) all.push_back(std::move(info));
            }
        } catch (const std::exception& e) {
            if (restricted) throw;
            report_error(ctx, e); // the other providers' sandboxes are still listed
            failed = true;
        }
    }
    std::stable_sort(all.begin(), all.end(), [](const SandboxInfo& a, const SandboxInfo& b) {
        if (a.created_at != b.created_at) return a.created_at > b.created_at;
        return a.ref() < b.ref();
    });

    if (ctx.global.json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& info : all)
            out.push_back(sandbox_json(info));
        std::cout << out.dump(2) << '\n';
    } else if (ctx.global.quiet) {
        for (const auto& info : all)
            std::cout << info.ref() << '\n';
    } else {
        std::cout << render_sandbox_table(all, now_seconds());
    }
    return failed ? exit_failure : exit_success;
}

} // namespace

CLI::App* setup_ls(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<LsOptions>();
    CLI::App* sub = app.add_subcommand("ls", "List sandboxes");
    sub->fallthrough();
    sub->add_option("-l,--label", opt->labels, "Only sandboxes with this label (K=V, or K for any value)")
        ->allow_extra_args(false);
    sub->callback([opt, &ctx] { ctx.exit_code = run_ls(*opt, ctx); });
    return sub;
}

} // namespace sbox::cli

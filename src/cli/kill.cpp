// sbox kill REF... | --all [-p P]
// Removes sandboxes; prints each removed reference on stdout, one per line (with --json: an array), like
// `docker rm`. Continues past failures and exits 1 if any failed. --all removes every sandbox that sbox
// created (label created-by=sbox) with the chosen provider.
#include <iostream>
#include <memory>
#include <set>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"

namespace sbox::cli {

namespace {

struct KillOptions {
    std::vector<std::string> refs;
    bool all = false;
};

void forget(Context& ctx, const std::string& provider, const std::string& id) {
    try {
        ctx.index().remove(provider, id);
    } catch (const std::exception& e) {
        ctx.warn(std::string("could not update sbox's index: ") + e.what());
    }
}

int run_kill(const KillOptions& opt, Context& ctx) {
    if (opt.all && !opt.refs.empty())
        throw Error(ErrorKind::usage, "give sandbox references or --all, not both");
    if (!opt.all && opt.refs.empty())
        throw Error(ErrorKind::usage,
                    "kill needs sandbox references or --all: sbox kill REF... | --all [-p P]");

    nlohmann::json removed = nlohmann::json::array();
    auto done = [&](const std::string& ref) {
        if (ctx.global.json) {
            removed.push_back(ref);
        } else {
            std::cout << ref << '\n';
            std::cout.flush();
        }
    };
    bool failed = false;

    if (opt.all) {
        std::string name = ctx.provider_name();
        Provider& provider = ctx.usable_provider(name);
        std::vector<SandboxInfo> list = with_provider(name, [&] { return provider.list(); });
        std::set<std::string> remaining;
        for (const auto& info : list) {
            auto label = info.labels.find("created-by");
            if (label == info.labels.end() || label->second != "sbox") {
                remaining.insert(info.id);
                continue;
            }
            try {
                with_provider(name, [&] { provider.kill(info.id); });
                done(name + "/" + info.id);
            } catch (const Error& e) {
                if (e.kind() == ErrorKind::not_found) continue; // gone meanwhile
                report_error(ctx, e);
                remaining.insert(info.id);
                failed = true;
            }
        }
        // Entries of sandboxes that are gone, by --all or before it.
        try {
            ctx.index().prune(name, [&](const std::string& id) { return remaining.count(id) != 0; });
        } catch (const std::exception& e) {
            ctx.warn(std::string("could not update sbox's index: ") + e.what());
        }
    } else {
        for (const auto& ref : opt.refs) {
            try {
                Target target = resolve(ctx, ref);
                on_target(ctx, target, [&] { target.provider->kill(target.id); });
                forget(ctx, target.provider_name, target.id);
                done(target.ref());
            } catch (const std::exception& e) {
                report_error(ctx, e);
                failed = true;
            }
        }
    }
    if (ctx.global.json) std::cout << removed.dump(2) << '\n';
    return failed ? exit_failure : exit_success;
}

} // namespace

CLI::App* setup_kill(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<KillOptions>();
    CLI::App* sub = app.add_subcommand("kill", "Remove sandboxes");
    sub->fallthrough();
    sub->add_option("REF", opt->refs, "The sandboxes: PROVIDER/ID, IDs or names");
    sub->add_flag("-a,--all", opt->all, "Remove every sandbox sbox created with the provider");
    sub->callback([opt, &ctx] { ctx.exit_code = run_kill(*opt, ctx); });
    return sub;
}

} // namespace sbox::cli

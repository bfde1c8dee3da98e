// sbox inspect REF [--json]: one sandbox, as "key: value" lines or one JSON object.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/output.hpp"

namespace sbox::cli {

namespace {

struct InspectOptions {
    std::string ref;
};

int run_inspect(const InspectOptions& opt, Context& ctx) {
    Target target = resolve(ctx, opt.ref);
    SandboxInfo info;
    if (target.info) {
        info = *target.info;
    } else {
        auto got = on_target(ctx, target, [&] { return target.provider->get(target.id); });
        if (!got) throw gone(ctx, target);
        info = std::move(*got);
    }
    if (info.provider.empty()) info.provider = target.provider_name;
    if (ctx.global.json)
        std::cout << sandbox_json(info).dump(2) << '\n';
    else
        std::cout << render_inspect(info, now_seconds());
    return exit_success;
}

} // namespace

CLI::App* setup_inspect(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<InspectOptions>();
    CLI::App* sub = app.add_subcommand("inspect", "Show a sandbox's details");
    sub->fallthrough();
    sub->add_option("REF", opt->ref, "The sandbox: PROVIDER/ID, an ID or a name")->required();
    sub->callback([opt, &ctx] { ctx.exit_code = run_inspect(*opt, ctx); });
    return sub;
}

} // namespace sbox::cli

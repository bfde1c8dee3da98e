// sbox create [-p P] [--image IMG] [--name N] [--timeout DUR] [-e K=V]... [--env-file F] [-l K=V]...
// Prints the sandbox reference and nothing else (with --json: the sandbox as a JSON object).
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "cli/output.hpp"

namespace sbox::cli {

namespace {

struct CreateOptions {
    CreateFlags create;
    EnvFlags env;
};

int run_create(const CreateOptions& opt, Context& ctx) {
    std::string name = ctx.provider_name();
    Provider& provider = ctx.usable_provider(name);
    Env env = build_env(opt.env);
    CreateSpec spec = build_create_spec(opt.create, std::move(env), provider);
    SandboxInfo info = with_provider(name, [&] { return provider.create(spec); });
    if (info.provider.empty()) info.provider = name;
    try {
        ctx.index().add(IndexEntry{info.provider, info.id, info.name, info.created_at});
    } catch (const std::exception& e) {
        ctx.warn(std::string("created ") + info.ref() + " but could not record it: " + e.what() +
                 " (use the full reference)");
    }
    if (ctx.global.json)
        std::cout << sandbox_json(info).dump(2) << '\n';
    else
        std::cout << info.ref() << '\n';
    return exit_success;
}

} // namespace

CLI::App* setup_create(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<CreateOptions>();
    CLI::App* sub = app.add_subcommand("create", "Create a sandbox and print its reference");
    sub->fallthrough();
    add_create_flags(*sub, opt->create, /*with_lifetime=*/true);
    add_env_flags(*sub, opt->env);
    sub->callback([opt, &ctx] { ctx.exit_code = run_create(*opt, ctx); });
    return sub;
}

} // namespace sbox::cli

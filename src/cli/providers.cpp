// sbox providers: every registered provider, whether it is configured (and if not, why) and its capabilities.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/output.hpp"

namespace sbox::cli {

namespace {

struct ProvidersOptions {};

int run_providers(const ProvidersOptions&, Context& ctx) {
    nlohmann::json out = nlohmann::json::array();
    std::vector<std::vector<std::string>> rows;
    for (const auto& name : ctx.registry.names()) {
        bool configured = false;
        std::string why;
        std::vector<std::string> caps;
        try {
            Provider& provider = ctx.provider(name);
            configured = provider.configured(why);
            caps = provider.capabilities().names();
        } catch (const std::exception& e) {
            configured = false;
            why = e.what();
        }
        if (configured) why.clear();
        std::string cap_list;
        for (const auto& c : caps)
            cap_list += (cap_list.empty() ? "" : ",") + c;
        rows.push_back({name, configured ? "yes" : "no", cap_list.empty() ? "-" : cap_list, why});
        out.push_back({{"name", name},
                       {"configured", configured},
                       {"reason", configured ? nlohmann::json(nullptr) : nlohmann::json(why)},
                       {"capabilities", caps}});
    }
    if (ctx.global.json)
        std::cout << out.dump(2) << '\n';
    else
        std::cout << render_table({"NAME", "CONFIGURED", "CAPABILITIES", "NOTES"}, rows);
    return exit_success;
}

} // namespace

CLI::App* setup_providers(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<ProvidersOptions>();
    CLI::App* sub = app.add_subcommand(
        "providers", "List the providers, whether they are configured and what they support");
    sub->fallthrough();
    sub->callback([opt, &ctx] { ctx.exit_code = run_providers(*opt, ctx); });
    return sub;
}

} // namespace sbox::cli

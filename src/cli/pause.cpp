// sbox pause REF... / sbox resume REF...
// Stops every process of the sandboxes, or continues them; prints each reference done, like `docker pause`.
// Continues past failures and exits 1 if any failed.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"

namespace sbox::cli {

namespace {

struct PauseOptions {
    std::vector<std::string> refs;
};

int run_pause(const PauseOptions& opt, Context& ctx, bool pause) {
    const char* what = pause ? "pause" : "resume";
    nlohmann::json done = nlohmann::json::array();
    bool failed = false;
    for (const auto& text : opt.refs) {
        try {
            Target target = resolve(ctx, text);
            require(*target.provider, Capability::pause, what);
            on_target(ctx, target, [&] {
                if (pause)
                    target.provider->pause(target.id);
                else
                    target.provider->resume(target.id);
            });
            if (ctx.global.json) {
                done.push_back(target.ref());
            } else {
                std::cout << target.ref() << '\n';
                std::cout.flush();
            }
        } catch (const std::exception& e) {
            report_error(ctx, e);
            failed = true;
        }
    }
    if (ctx.global.json) std::cout << done.dump(2) << '\n';
    return failed ? exit_failure : exit_success;
}

} // namespace

void setup_pause(CLI::App& app, Context& ctx) {
    for (bool pause : {true, false}) {
        auto opt = std::make_shared<PauseOptions>();
        CLI::App* sub =
            app.add_subcommand(pause ? "pause" : "resume",
                               pause ? "Stop every process of sandboxes" : "Continue paused sandboxes");
        sub->fallthrough();
        sub->add_option("REF", opt->refs, "Sandboxes: PROVIDER/ID, IDs or names")->required();
        sub->callback([opt, &ctx, pause] { ctx.exit_code = run_pause(*opt, ctx, pause); });
    }
}

} // namespace sbox::cli

// sbox run [create options] [-i] [-t] [-d] [-e K=V]... [--env-file F] [-w DIR] [-u USER] [--timeout DUR] --
// CMD [ARG...] Create, exec, remove. The exit status is the command's; --timeout is the command's (exit 124).
// With -d it works like `docker run -d --rm`: prints the reference and returns while the command runs; the
// sandbox is removed when it ends.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"
#include "cli/output.hpp"

namespace sbox::cli {

namespace {

struct RunOptions {
    CreateFlags create;
    EnvFlags env;
    ExecFlags exec;
};

class RunPrinter : public RunObserver {
  public:
    RunPrinter(bool detach, bool json, std::string provider)
        : detach_(detach), json_(json), provider_(std::move(provider)) {}
    void created(const SandboxInfo& created) override {
        if (!detach_) return;
        SandboxInfo info = created;
        if (info.provider.empty()) info.provider = provider_;
        if (json_)
            std::cout << sandbox_json(info).dump(2) << '\n';
        else
            std::cout << info.ref() << '\n';
        std::cout.flush(); // before the command's own output, and before a detached run forks
    }

  private:
    bool detach_;
    bool json_;
    std::string provider_;
};

int run_run(const RunOptions& opt, Context& ctx, CLI::App& sub) {
    std::vector<std::string> argv = command_words(sub.remaining(), ctx.after_separator);
    if (argv.empty())
        throw Error(ErrorKind::usage, "run needs a command: sbox run [OPTIONS] -- CMD [ARG...]");
    std::string name = ctx.provider_name();
    Provider& provider = ctx.usable_provider(name);
    Env env = build_env(opt.env);
    CreateSpec create = build_create_spec(opt.create, {}, provider);
    ExecSpec exec = build_exec_spec(opt.exec, std::move(env), std::move(argv), provider);
    RunPrinter printer(exec.detach, ctx.global.json, name);
    return with_provider(name, [&] { return provider.run(create, exec, printer); });
}

} // namespace

CLI::App* setup_run(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<RunOptions>();
    CLI::App* sub = app.add_subcommand("run", "Create a sandbox, run a command in it, remove it");
    // Options end at the first positional, which starts the command (see options.hpp). No fallthrough (it
    // would take the command's words for the parent), so the global options are registered here too.
    sub->prefix_command();
    add_global_options(*sub, ctx.global);
    add_create_flags(*sub, opt->create, /*with_lifetime=*/false);
    add_env_flags(*sub, opt->env);
    add_exec_flags(*sub, opt->exec);
    sub->footer("The command follows the options: sbox run [OPTIONS] [--] CMD [ARG...]\n"
                "-it: an interactive session on a pseudo-terminal of the sandbox (the terminal in raw mode, "
                "its size followed, restored on exit; stdin must be a terminal), as sbox shell does.");
    sub->callback([opt, &ctx, sub] { ctx.exit_code = run_run(*opt, ctx, *sub); });
    return sub;
}

} // namespace sbox::cli

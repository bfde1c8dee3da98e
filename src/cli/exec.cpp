// sbox exec [-i] [-t] [-d] [-e K=V]... [--env-file F] [-w DIR] [-u USER] [--timeout DUR] REF [--] CMD
// [ARG...] Options come first, like docker: the first positional is REF and everything after it is the
// command
// (`sbox exec REF ls -la` and `sbox exec REF -- ls -la` are the same). The exit status is the command's.
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"

namespace sbox::cli {

namespace {

struct ExecOptions {
    EnvFlags env;
    ExecFlags exec;
};

int run_exec(const ExecOptions& opt, Context& ctx, CLI::App& sub) {
    const char* usage = "sbox exec [OPTIONS] REF [--] CMD [ARG...]";
    std::vector<std::string> words = command_words(sub.remaining(), ctx.after_separator);
    if (words.empty())
        throw Error(ErrorKind::usage, std::string("exec needs a sandbox and a command: ") + usage);
    std::string ref = words.front();
    words.erase(words.begin());
    if (!words.empty() && words.front() == "--") words.erase(words.begin());
    if (words.empty())
        throw Error(ErrorKind::usage, std::string("exec needs a command after the sandbox: ") + usage);
    Env env = build_env(opt.env);
    Target target = resolve(ctx, ref);
    ExecSpec spec = build_exec_spec(opt.exec, std::move(env), std::move(words), *target.provider);
    return on_target(ctx, target, [&] { return target.provider->exec(target.id, spec); });
}

} // namespace

CLI::App* setup_exec(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<ExecOptions>();
    CLI::App* sub = app.add_subcommand("exec", "Run a command in a sandbox");
    // Options end at the first positional (REF); see run.cpp for why the global options are repeated.
    sub->prefix_command();
    add_global_options(*sub, ctx.global);
    add_env_flags(*sub, opt->env);
    add_exec_flags(*sub, opt->exec);
    sub->footer("The sandbox and the command follow the options: sbox exec [OPTIONS] REF [--] CMD [ARG...]\n"
                "-it: an interactive session on a pseudo-terminal of the sandbox (the terminal in raw mode, "
                "its size followed, restored on exit; stdin must be a terminal). -t alone: the command's "
                "output through a pseudo-terminal, no input.");
    sub->callback([opt, &ctx, sub] { ctx.exit_code = run_exec(*opt, ctx, *sub); });
    return sub;
}

} // namespace sbox::cli

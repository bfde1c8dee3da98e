// sbox shell [OPTIONS] [REF]
// An interactive login shell on a pseudo-terminal: the user's shell from the sandbox's /etc/passwd (else
// /bin/bash, else /bin/sh), started as a login shell. With REF, in that sandbox (`sbox exec -it REF` of the
// shell); without, in a fresh sandbox that is removed when the shell ends, or when sbox is ended (`sbox run
// -it`). When stdin is not a terminal, the shell reads it without a pty, as `docker run -i` would: `echo
// 'echo hi' | sbox shell` prints "hi". The exit status is the shell's.
#include <unistd.h>

#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/options.hpp"

namespace sbox::cli {

namespace {

struct ShellOptions {
    CreateFlags create;
    EnvFlags env;
    std::string workdir;
    std::string user;
    std::string ref;
};

ExecSpec shell_spec(const ShellOptions& opt, Provider& provider) {
    require(provider, Capability::exec_tty, "shell");
    ExecFlags flags;
    flags.interactive = true;
    flags.tty = ::isatty(0) == 1;
    flags.workdir = opt.workdir;
    flags.user = opt.user;
    ExecSpec spec = build_exec_spec(flags, build_env(opt.env), {}, provider);
    spec.login_shell = true;
    return spec;
}

int run_shell(const ShellOptions& opt, Context& ctx) {
    if (!opt.ref.empty()) {
        if (opt.create.any())
            throw Error(ErrorKind::usage,
                        "create options (--image, --snapshot, --name, --label, --memory, "
                        "--cpus, --pids, --disk, --network, --port, --security-opt) are for a "
                        "fresh sandbox; drop them, or drop " +
                            opt.ref + " to start a new sandbox");
        Target target = resolve(ctx, opt.ref);
        ExecSpec spec = shell_spec(opt, *target.provider);
        return on_target(ctx, target, [&] { return target.provider->exec(target.id, spec); });
    }
    std::string name = ctx.provider_name();
    Provider& provider = ctx.usable_provider(name);
    ExecSpec exec = shell_spec(opt, provider);
    CreateSpec create = build_create_spec(opt.create, {}, provider);
    RunObserver quiet; // nothing on stdout but the shell's own output
    return with_provider(name, [&] { return provider.run(create, exec, quiet); });
}

} // namespace

CLI::App* setup_shell(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<ShellOptions>();
    CLI::App* sub = app.add_subcommand(
        "shell", "An interactive login shell in a sandbox (without REF: a fresh one, removed on exit)");
    sub->fallthrough();
    add_create_flags(*sub, opt->create, /*with_lifetime=*/false);
    add_env_flags(*sub, opt->env);
    sub->add_option("-w,--workdir", opt->workdir, "The shell's working directory");
    sub->add_option("-u,--user", opt->user, "Run as this user (NAME, UID or UID:GID; their login shell)");
    sub->add_option("REF", opt->ref, "The sandbox (default: a fresh one, removed when the shell ends)");
    sub->footer(
        "The shell runs on a pseudo-terminal of the sandbox: Ctrl-C, Ctrl-Z and Ctrl-D go to it, the window "
        "size follows the terminal's, and the terminal is restored when it ends. TERM comes from the "
        "environment (default xterm). When stdin is not a terminal, the shell reads its commands from stdin "
        "without a terminal (echo 'echo hi' | sbox shell). The exit status is the shell's.");
    sub->callback([opt, &ctx] { ctx.exit_code = run_shell(*opt, ctx); });
    return sub;
}

} // namespace sbox::cli

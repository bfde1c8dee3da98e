#include "cli/options.hpp"

#include <charconv>
#include <iostream>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "providers/parse.hpp"

namespace sbox::cli {

void add_env_flags(CLI::App& app, EnvFlags& flags) {
    app.add_option("-e,--env", flags.env,
                   "Set an environment variable (K=V; a bare K takes its current value)")
        ->allow_extra_args(false);
    app.add_option("--env-file", flags.env_file, "Read environment variables from a file (docker's format)");
}

Env build_env(const EnvFlags& flags) {
    Env env;
    if (!flags.env_file.empty()) env = read_env_file(flags.env_file);
    for (const auto& e : flags.env)
        if (auto kv = usage_value([&] { return parse_env_assignment(e); })) env.push_back(std::move(*kv));
    return env;
}

void add_create_flags(CLI::App& app, CreateFlags& flags, bool with_lifetime) {
    app.add_option("--image", flags.image,
                   "What to create the sandbox from (local: a root filesystem directory)");
    app.add_option("--snapshot", flags.snapshot, "Start from this snapshot (its id, id prefix or name)");
    app.add_option("--name", flags.name, "A name for the sandbox");
    app.add_option("-l,--label", flags.labels, "Set a label (K=V)")->allow_extra_args(false);
    if (with_lifetime)
        app.add_option("--timeout", flags.lifetime, "Remove the sandbox after this long (e.g. 30m, 1h30m)");
    app.add_option("--memory", flags.memory,
                   "Memory limit (e.g. 512m, 2g); a command past it is killed (137)");
    app.add_option("--cpus", flags.cpus, "CPU limit in CPUs (e.g. 0.5, 2)");
    app.add_option("--pids", flags.pids, "Most processes and threads at once (local default: 2048)");
    app.add_option("--disk", flags.disk,
                   "Most bytes the sandbox may write (e.g. 1g); past it writes fail (ENOSPC)");
    app.add_option("--security-opt", flags.security_opts,
                   "seccomp=unconfined turns the system call filter off (debugging only)")
        ->allow_extra_args(false);
    app.add_option(
        "--network", flags.network,
        "none (default: loopback only) or full (outbound access through a user-mode network stack)");
    app.add_option(
           "--port", flags.ports,
           "Publish the sandbox's PORT on the host's 127.0.0.1 ([HOSTPORT:]PORT[/udp]; needs --network "
           "full)")
        ->allow_extra_args(false);
}

CreateSpec build_create_spec(const CreateFlags& flags, Env env, Provider& provider) {
    CreateSpec spec;
    if (!flags.image.empty()) {
        require(provider, Capability::image_dir, "--image");
        spec.image = flags.image;
    }
    if (!flags.snapshot.empty()) {
        if (!flags.image.empty())
            throw Error(ErrorKind::usage,
                        "--image and --snapshot exclude each other (a snapshot brings its base)");
        require(provider, Capability::snapshots, "--snapshot");
        spec.snapshot = flags.snapshot;
    }
    if (!flags.name.empty()) {
        require(provider, Capability::names, "--name");
        spec.name = flags.name;
    }
    if (!flags.labels.empty()) {
        require(provider, Capability::labels, "-l/--label");
        for (const auto& l : flags.labels)
            spec.labels.insert(usage_value([&] { return parse_label(l); }));
    }
    if (!flags.lifetime.empty()) {
        auto lifetime = parse_timeout_flag(flags.lifetime, "--timeout");
        require(provider, Capability::lifetime, "--timeout");
        spec.lifetime = lifetime;
    }
    if (!flags.memory.empty()) {
        auto bytes = usage_value([&] { return parse_size(flags.memory); });
        if (bytes < 4 * 1024 * 1024)
            throw Error(ErrorKind::usage, "--memory " + flags.memory + ": the limit must be at least 4m");
        require(provider, Capability::memory_limit, "--memory");
        spec.memory = bytes;
    }
    if (!flags.cpus.empty()) {
        auto millis = usage_value([&] { return parse_cpus(flags.cpus); });
        require(provider, Capability::cpu_limit, "--cpus");
        spec.cpu_millis = millis;
    }
    if (!flags.pids.empty()) {
        std::uint64_t pids = 0;
        auto [end, ec] = std::from_chars(flags.pids.data(), flags.pids.data() + flags.pids.size(), pids);
        if (ec != std::errc() || end != flags.pids.data() + flags.pids.size() || pids == 0)
            throw Error(ErrorKind::usage,
                        "--pids " + flags.pids + ": give a positive whole number of processes (e.g. 512)");
        require(provider, Capability::pids_limit, "--pids");
        spec.pids = pids;
    }
    if (!flags.disk.empty()) {
        auto bytes = usage_value([&] { return parse_size(flags.disk); });
        if (bytes < 1024 * 1024)
            throw Error(ErrorKind::usage, "--disk " + flags.disk + ": the limit must be at least 1m");
        require(provider, Capability::disk_limit, "--disk");
        spec.disk = bytes;
    }
    for (const auto& opt : flags.security_opts) {
        if (opt == "seccomp=unconfined" || opt == "seccomp:unconfined") {
            require(provider, Capability::seccomp, "--security-opt seccomp=unconfined");
            spec.seccomp_unconfined = true;
        } else if (opt == "seccomp=default" || opt == "no-new-privileges" ||
                   opt == "no-new-privileges=true" || opt == "no-new-privileges:true") {
            // what sbox always does
        } else {
            throw Error(ErrorKind::usage, "unknown --security-opt '" + opt +
                                              "' (sbox knows seccomp=unconfined, seccomp=default and "
                                              "no-new-privileges, which is always on)");
        }
    }
    if (spec.seccomp_unconfined)
        std::cerr
            << "sbox: WARNING: --security-opt seccomp=unconfined: this sandbox runs WITHOUT its system call "
               "filter (keyrings, bpf, io_uring, user namespaces, TIOCSTI ... are open to it). Use it only "
               "to debug, never for code you do not trust.\n";
    if (!flags.network.empty()) {
        if (flags.network != "none" && flags.network != "full")
            throw Error(ErrorKind::usage,
                        "--network " + flags.network + ": unknown network mode (use none or full)");
        spec.network = flags.network;
    }
    for (const auto& p : flags.ports)
        spec.ports.push_back(usage_value([&] { return parse_port(p); }));
    if (!spec.network.empty()) require(provider, Capability::network, "--network");
    if (!spec.ports.empty()) require(provider, Capability::ports, "--port");
    if (!spec.ports.empty() && spec.network != "full")
        throw Error(ErrorKind::usage, "--port needs --network full (a sandbox without a network stack has "
                                      "nothing to publish ports with)");
    spec.labels["created-by"] = "sbox";
    spec.env = std::move(env);
    return spec;
}

void add_exec_flags(CLI::App& app, ExecFlags& flags) {
    app.add_flag("-i,--interactive", flags.interactive, "Forward stdin to the command (EOF included)");
    app.add_flag("-d,--detach", flags.detach, "Start the command and return");
    app.add_option("-w,--workdir", flags.workdir, "The command's working directory");
    app.add_option("-u,--user", flags.user, "Run as this user (NAME, UID or UID:GID)");
    app.add_option("--timeout", flags.timeout, "End the command after this long (exit status 124)");
    app.add_flag("-t,--tty", flags.tty,
                 "Run the command on a pseudo-terminal (with -i: an interactive session; stdout "
                 "and stderr both come through it)");
}

ExecSpec build_exec_spec(const ExecFlags& flags, Env env, std::vector<std::string> argv, Provider& provider) {
    require(provider, Capability::exec, "exec");
    if (flags.interactive && flags.detach)
        throw Error(ErrorKind::usage, "-i and -d cannot be used together (a detached command has no stdin)");
    ExecSpec spec;
    spec.argv = std::move(argv);
    spec.env = std::move(env);
    if (flags.interactive) {
        require(provider, Capability::exec_stdin, "-i/--interactive");
        spec.stdin_open = true;
    }
    if (flags.detach) {
        require(provider, Capability::exec_detach, "-d/--detach");
        spec.detach = true;
    }
    if (!flags.workdir.empty()) {
        require(provider, Capability::exec_cwd, "-w/--workdir");
        spec.cwd = flags.workdir;
    }
    if (!flags.user.empty()) {
        require(provider, Capability::exec_user, "-u/--user");
        spec.user = flags.user;
    }
    if (!flags.timeout.empty()) {
        auto timeout = parse_timeout_flag(flags.timeout, "--timeout");
        require(provider, Capability::exec_timeout, "--timeout");
        spec.timeout = timeout;
    }
    if (flags.tty) {
        if (flags.detach)
            throw Error(ErrorKind::usage,
                        "-t and -d cannot be used together (a detached command has no terminal to show)");
        // docker's answer to `echo x | docker run -it`: raw mode and keystrokes need a terminal.
        if (flags.interactive && ::isatty(0) != 1)
            throw Error(ErrorKind::usage, "the input device is not a TTY: -it needs a terminal on stdin "
                                          "(drop -t to pipe input into the command)");
        require(provider, Capability::exec_tty, "-t/--tty");
        spec.tty = true;
    }
    return spec;
}

std::chrono::milliseconds parse_timeout_flag(const std::string& text, const char* flag) {
    auto d = usage_value([&] { return parse_duration(text); });
    if (d.count() <= 0)
        throw Error(ErrorKind::usage, std::string(flag) + " " + text +
                                          ": the duration must be greater than zero (e.g. 30s, 5m)");
    return d;
}

namespace {

// How many of the following arguments an option token consumes as its value (0 or 1).
int value_args(CLI::App& app, const std::string& tok) {
    if (tok.starts_with("--")) {
        if (tok.find('=') != std::string::npos) return 0;
        const CLI::Option* opt = app.get_option_no_throw(tok);
        return (opt != nullptr && opt->get_items_expected_min() > 0) ? 1 : 0;
    }
    for (std::size_t k = 1; k < tok.size(); ++k) {
        const CLI::Option* opt = app.get_option_no_throw(std::string{'-', tok[k]});
        if (opt == nullptr) return 0;                                              // CLI11 will report it
        if (opt->get_items_expected_min() > 0) return k + 1 == tok.size() ? 1 : 0; // the rest is the value
    }
    return 0;
}

bool is_option(const std::string& tok) {
    return tok.size() > 1 && tok[0] == '-' && tok != "--";
}

} // namespace

std::optional<std::vector<std::string>> split_at_separator(CLI::App& app, std::vector<std::string>& args) {
    CLI::App* level = &app;
    std::size_t i = 0;
    while (i < args.size()) {
        const std::string& tok = args[i];
        if (tok == "--") {
            if (level == &app) return std::nullopt;
            std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
            args.resize(i);
            return rest;
        }
        if (is_option(tok)) {
            i += 1 + static_cast<std::size_t>(value_args(*level, tok));
            continue;
        }
        if (level != &app) return std::nullopt; // the first positional of exec/run: CLI11 handles the rest
        CLI::App* sub = nullptr;
        for (CLI::App* s : app.get_subcommands(std::function<bool(CLI::App*)>{}))
            if (s->check_name(tok)) sub = s;
        if (sub == nullptr || !sub->get_prefix_command()) return std::nullopt;
        level = sub;
        ++i;
    }
    return std::nullopt;
}

std::vector<std::string> command_words(std::vector<std::string> rest,
                                       const std::optional<std::vector<std::string>>& after_separator) {
    if (!rest.empty() && is_option(rest.front()))
        throw Error(ErrorKind::usage, std::string("The following argument was not expected: ") +
                                          rest.front() + " (see sbox --help)");
    if (after_separator) {
        if (!rest.empty())
            throw Error(ErrorKind::usage, std::string("The following argument was not expected: ") +
                                              rest.front() + " (see sbox --help)");
        return *after_separator;
    }
    return rest;
}

} // namespace sbox::cli

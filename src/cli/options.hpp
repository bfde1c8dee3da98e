// Flag groups shared by create, run and exec, and the command-line splitting of exec/run.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli/context.hpp"
#include "providers/provider.hpp"

namespace CLI {
class App;
}

namespace sbox::cli {

// -e K=V... and --env-file F.
struct EnvFlags {
    std::vector<std::string> env;
    std::string env_file;
};
void add_env_flags(CLI::App& app, EnvFlags& flags);
// The env file's variables, then -e's (which override them, like docker).
Env build_env(const EnvFlags& flags);

// --image | --snapshot, --name, -l K=V... and, for create, --timeout (the sandbox's lifetime).
struct CreateFlags {
    std::string image;
    std::string snapshot;
    std::string name;
    std::vector<std::string> labels;
    std::string lifetime;
    // Resource limits and hardening.
    std::string memory, cpus, pids, disk;
    std::vector<std::string> security_opts;
    // --network none|full and --port [HOST:]PORT[/udp]...
    std::string network;
    std::vector<std::string> ports;

    // Whether any of them was given (shell REF takes none: they would be ignored).
    bool any() const {
        return !image.empty() || !snapshot.empty() || !name.empty() || !labels.empty() || !lifetime.empty() ||
               !memory.empty() || !cpus.empty() || !pids.empty() || !disk.empty() || !security_opts.empty() ||
               !network.empty() || !ports.empty();
    }
};
void add_create_flags(CLI::App& app, CreateFlags& flags, bool with_lifetime);
// Checks the provider's capabilities for the flags given; adds created-by=sbox.
CreateSpec build_create_spec(const CreateFlags& flags, Env env, Provider& provider);

// -i, -d, -w DIR, -u USER, --timeout DUR (the command's).
struct ExecFlags {
    bool interactive = false;
    bool detach = false;
    std::string workdir;
    std::string user;
    std::string timeout;
    // -t: a pseudo-terminal (raw mode, window size and resize, the terminal restored on every way out).
    bool tty = false;
};
void add_exec_flags(CLI::App& app, ExecFlags& flags);
// Checks the provider's capabilities (exec itself and each flag given).
ExecSpec build_exec_spec(const ExecFlags& flags, Env env, std::vector<std::string> argv, Provider& provider);

// A positive duration from the command line (Error(usage) otherwise).
std::chrono::milliseconds parse_timeout_flag(const std::string& text, const char* flag);

// exec and run stop option parsing at their first positional (CLI11's prefix_command), so everything after it
// is the command. A `--` right after the options (`sbox run -i -- CMD`, `sbox exec -- REF CMD`) is handled
// here: when `args` (without the program name) has such a `--` for a prefix-command subcommand of `app`, it
// is removed with everything after it, which is returned.
std::optional<std::vector<std::string>> split_at_separator(CLI::App& app, std::vector<std::string>& args);

// The words after the options of exec/run: those CLI11 left over (`rest`), or those split off at `--`.
// Refuses a leftover unknown option (it came before the first positional) and strips one leading `--`.
std::vector<std::string> command_words(std::vector<std::string> rest,
                                       const std::optional<std::vector<std::string>>& after_separator);

} // namespace sbox::cli

// The local sandbox engine: create, run, exec, list and kill sandboxes made of Linux namespaces.
// Usable without the CLI: everything it needs comes through these requests and Paths.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "local/store.hpp"

namespace sbox::local {

struct CreateRequest {
    std::string name;
    std::string image; // empty: the host's system directories; otherwise a root filesystem directory
    std::map<std::string, std::string> labels;
    std::vector<std::string> env; // K=V defaults for every exec
    std::optional<std::chrono::milliseconds> lifetime;
};

struct ExecRequest {
    std::vector<std::string> argv;
    std::vector<std::string> env; // K=V, over the sandbox's defaults
    std::string cwd;
    std::string user;
    bool stdin_open = false;
    bool detach = false;
    std::optional<std::chrono::milliseconds> timeout;
};

// The command could not be started (126, 127) or sbox could not set it up (125).
class CommandFailed : public Error {
  public:
    CommandFailed(int exit_status, const std::string& message)
        : Error(Kind::invalid, message), exit_status_(exit_status) {}
    int exit_status() const { return exit_status_; }

  private:
    int exit_status_;
};

class Engine {
  public:
    explicit Engine(Paths paths);

    // Returns once the sandbox is ready for exec.
    SandboxState create(const CreateRequest& request);
    // create + exec + remove in one step: the supervisor starts the command itself. Ctrl-C, SIGTERM or
    // SIGHUP remove the sandbox (exit 128+N). With request.detach, returns 0 once the command started and
    // the sandbox removes itself when the command ends. `created` is called once the sandbox is ready.
    int run(const CreateRequest& create, const ExecRequest& exec,
            const std::function<void(const SandboxState&)>& created);
    // Runs a command in a running sandbox with this process's stdin/stdout/stderr; returns its status.
    int exec(std::string_view id_or_name, const ExecRequest& request);
    std::vector<SandboxState> list() const;
    std::optional<SandboxState> find(std::string_view id_or_name) const;
    // Every process, mount and file of the sandbox gone. Throws Error(not_found) when there is none.
    void kill(std::string_view id_or_name);

  private:
    SandboxConfig register_sandbox(const CreateRequest& request, bool ephemeral);
    Store store_;
};

} // namespace sbox::local

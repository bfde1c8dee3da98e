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

#include "local/archive.hpp"
#include "local/snapshot.hpp"
#include "local/store.hpp"

namespace sbox::local {

struct CreateRequest {
    std::string name;
    std::string image; // empty: the host's system directories; otherwise a root filesystem directory
    std::map<std::string, std::string> labels;
    std::vector<std::string> env; // K=V defaults for every exec
    std::optional<std::chrono::milliseconds> lifetime;
    std::string snapshot; // start from this snapshot (id, unique prefix or name); excludes image
    Limits limits;
    bool seccomp = true; // false: no system call filter (--security-opt seccomp=unconfined)
    // none: loopback only; full: outbound access through pasta, and `ports` published (network.hpp).
    NetworkMode network = NetworkMode::none;
    std::vector<PublishedPort> ports;
};

struct ExecRequest {
    std::vector<std::string> argv;
    std::vector<std::string> env; // K=V, over the sandbox's defaults
    std::string cwd;
    std::string user;
    bool stdin_open = false;
    bool detach = false;
    std::optional<std::chrono::milliseconds> timeout;
    // -t: the command runs on a pty of the sandbox's own devpts, relayed to this process's stdin/stdout
    // (stdin only with stdin_open; the terminal on stdin goes to raw mode meanwhile). See pty.hpp.
    bool tty = false;
    // `sbox shell`: argv is empty and the user's login shell runs (passwd's, else /bin/bash, else /bin/sh).
    bool login_shell = false;
    // The command's stdout and stderr; -1: this process's.
    int stdout_fd = -1;
    int stderr_fd = -1;
    // True: this process may join the sandbox's namespaces itself (it exits after exec; one fork fewer) and
    // signals to it are passed on to the command. False: exec leaves this process as it was and its signals
    // alone, so that it may run in any thread of a long-lived process that handles them itself.
    bool owns_process = true;
};

// A path as the sandbox sees it (cp's decisions).
struct SandboxPath {
    enum class Type { missing, file, directory, symlink, other };
    Type type = Type::missing;
    std::uint64_t size = 0;
    unsigned mode = 0;
    std::string link_target;
};

// cp into a sandbox: a tar stream extracted below `dir`, as `user` (empty: root inside).
struct CopyIn {
    std::string dir;
    std::string user;
    std::string rename_from, rename_to; // see ExtractOptions
};

// cp out of a sandbox: a tar stream of `path`, its top-level entry named `archive_name` (empty: the last
// component; "" for "." sources: see ArchiveSource).
struct CopyOut {
    std::string path;
    std::string archive_name;
    bool follow_link = false;
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
    // `archiver` is asked for an Archiver only by cp and snapshots.
    explicit Engine(Paths paths, ArchiverSource archiver = {});

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

    // Stops every process of the sandbox (the cgroup freezer where there is one, else SIGSTOP from inside
    // its PID namespace) and continues them. Error(conflict) when it is not running, or already paused
    // (pause) or not paused (resume).
    void pause(std::string_view id_or_name);
    void resume(std::string_view id_or_name);

    // cp. Every path is resolved inside the sandbox (its mount namespace, its root, its credentials), never
    // on the host.
    SandboxPath stat_path(std::string_view id_or_name, const std::string& path, bool follow_link);
    void copy_in(std::string_view id_or_name, const CopyIn& request, int tar_fd);
    void copy_out(std::string_view id_or_name, const CopyOut& request, int tar_fd);

    // Snapshots (snapshot.hpp).
    SnapshotRecord create_snapshot(std::string_view id_or_name, const std::string& name);
    std::vector<SnapshotRecord> list_snapshots() const;
    std::optional<SnapshotRecord> find_snapshot(std::string_view ref) const;
    void remove_snapshot(std::string_view ref);
    void export_snapshot(std::string_view ref, int out_fd);
    SnapshotRecord import_snapshot(int in_fd);

  private:
    // The ids of `snapshot`'s layers, top first: it, its parent, and so on.
    std::vector<std::string> snapshot_chain(const SnapshotRecord& snapshot) const;
    Archiver& archiver();
    SandboxState running_sandbox(std::string_view id_or_name) const;
    SandboxConfig register_sandbox(const CreateRequest& request, bool ephemeral);
    // Removes the cgroups of this store whose sandbox is gone (a crashed sbox's). Call under the store's
    // lock.
    void sweep_store_cgroups() const;
    Store store_;
    ArchiverSource archiver_;
};

} // namespace sbox::local

// The Provider interface: what every sandbox backend (local, and later the remote services) offers the CLI.
// Errors are exceptions of type sbox::Error carrying one of sbox's error kinds; the CLI maps them to exit
// codes.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace sbox {

// The kinds of failure sbox reports (design.md, "Output and exit codes"; the JSON error object's "kind").
enum class ErrorKind {
    usage,        // the command line was wrong
    invalid,      // an argument or input value was wrong
    not_found,    // no such sandbox, snapshot, file ...
    conflict,     // the name is taken, the sandbox is in the wrong state
    auth,         // missing or rejected credentials
    rate_limited, // the service asked us to slow down
    unavailable,  // the service or the kernel feature is not there
    timeout,      // an operation took too long
    unsupported,  // this provider cannot do that (see Capabilities)
    internal,     // anything else: a bug or an unexpected system failure
};
std::string_view to_string(ErrorKind kind);

class Error : public std::runtime_error {
  public:
    Error(ErrorKind kind, const std::string& message, std::string provider = {})
        : std::runtime_error(message), kind_(kind), provider_(std::move(provider)) {}
    ErrorKind kind() const { return kind_; }
    const std::string& provider() const { return provider_; }

  private:
    ErrorKind kind_;
    std::string provider_;
};

// The command given to exec/run could not be started: exit status 126 (not executable) or 127 (not found).
class CommandError : public Error {
  public:
    CommandError(int exit_status, const std::string& message, std::string provider = {})
        : Error(ErrorKind::invalid, message, std::move(provider)), exit_status_(exit_status) {}
    int exit_status() const { return exit_status_; }

  private:
    int exit_status_;
};

// What a provider can do. The CLI refuses an operation whose capability is missing with
// "sbox: PROVIDER: OPERATION is not supported by this provider" instead of faking it.
enum class Capability : std::uint32_t {
    exec = 1u << 0,            // run commands in an existing sandbox
    exec_stdin = 1u << 1,      // forward stdin (with EOF) to the command
    exec_detach = 1u << 2,     // start a command that outlives the CLI
    exec_timeout = 1u << 3,    // end the command after a duration (exit 124)
    exec_user = 1u << 4,       // run as another user
    exec_cwd = 1u << 5,        // run in another working directory
    lifetime = 1u << 6,        // the sandbox removes itself after --timeout
    labels = 1u << 7,          // key=value labels, filterable in ls
    names = 1u << 8,           // --name
    image_dir = 1u << 9,       // --image DIR (a root filesystem directory)
    copy = 1u << 10,           // cp: upload and download files and trees (tar streams)
    snapshots = 1u << 11,      // snapshot create/ls/rm, create --snapshot
    snapshot_files = 1u << 12, // snapshot export/import to and from a file
    pause = 1u << 13,          // pause and resume every process of a sandbox
    // Resource limits and hardening (create/run flags).
    cpu_limit = 1u << 15,    // --cpus
    memory_limit = 1u << 17, // --memory
    disk_limit = 1u << 18,   // --disk
    pids_limit = 1u << 19,   // --pids
    network = 1u << 16,      // create --network none|full: whether the sandbox may reach out
    ports = 1u << 21,        // create --port: a sandbox port published on the host's loopback
    seccomp = 1u << 20,      // a system call filter, which --security-opt seccomp=unconfined turns off
    exec_tty = 1u << 14,     // exec -t and `sbox shell`: the command on a pseudo-terminal, relayed
};

class Capabilities {
  public:
    Capabilities() = default;
    Capabilities(std::initializer_list<Capability> caps) {
        for (auto c : caps)
            bits_ |= static_cast<std::uint32_t>(c);
    }
    bool has(Capability c) const { return (bits_ & static_cast<std::uint32_t>(c)) != 0; }
    // Stable names, for `sbox providers` and its JSON.
    std::vector<std::string> names() const;

  private:
    std::uint32_t bits_ = 0;
};
std::string_view to_string(Capability c);

using Env = std::vector<std::pair<std::string, std::string>>;
using Labels = std::map<std::string, std::string>;

// create --port [HOST:]PORT[/tcp|/udp]: the sandbox's PORT, reachable on the host's 127.0.0.1:HOST.
struct PublishedPort {
    std::uint16_t host = 0; // 0: any free port, chosen when the sandbox starts
    std::uint16_t sandbox = 0;
    std::string protocol = "tcp"; // tcp | udp
};

struct CreateSpec {
    std::string name;  // empty: none
    std::string image; // empty: the provider's default (local: the host's system)
    Labels labels;     // created-by=sbox is added by the CLI
    Env env;           // defaults for every exec
    std::optional<std::chrono::milliseconds> lifetime; // create --timeout
    std::string snapshot; // start from this snapshot (an id or name the provider knows); excludes image

    // Resource limits; unset: the provider's default.
    std::optional<std::uint64_t> memory;     // bytes
    std::optional<std::uint64_t> cpu_millis; // thousandths of a CPU (--cpus 1.5 = 1500)
    std::optional<std::uint64_t> pids;       // processes and threads at once
    std::optional<std::uint64_t> disk;       // bytes the sandbox may write
    bool seccomp_unconfined = false;         // --security-opt seccomp=unconfined (debugging only)
    // --network (Capability::network) and --port (Capability::ports).
    std::string network; // empty: the provider's default (local: none); none: loopback only; full: outbound
    std::vector<PublishedPort> ports;
};

struct ExecSpec {
    std::vector<std::string> argv; // never re-joined into a shell string
    Env env;                       // added to (and overriding) the sandbox's defaults
    std::string cwd;               // empty: the user's home or /
    std::string user;              // empty: root; NAME, UID or UID:GID
    bool stdin_open = false;       // -i: forward stdin, EOF included; otherwise the command reads /dev/null
    bool detach = false;           // -d: start and return; the sandbox reaps it
    std::optional<std::chrono::milliseconds> timeout; // exit 124 when it fires
    // -t: the command runs on a pseudo-terminal (its stdout and stderr both come through it), relayed to the
    // CLI's stdin (with stdin_open) and stdout; the user's terminal is in raw mode meanwhile, and its size
    // follows.
    bool tty = false;
    // `sbox shell`: argv is empty; the user's login shell runs, as a login shell.
    bool login_shell = false;
    // Where the command's stdout and stderr go; -1: the CLI process's own. `sbox bench` reads them from
    // pipes.
    int stdout_fd = -1;
    int stderr_fd = -1;
    // True (a one-shot CLI process): exec may catch the signals sent to sbox and pass them on to the command,
    // and may change the process for good (the local provider joins the sandbox's namespaces in it, which
    // spares a fork). False (`sbox bench`): exec is one call of many in a long-lived process that may have
    // several threads calling it at once; it leaves the process as it found it and signals to the caller.
    bool owns_process = true;
};

struct SandboxInfo {
    std::string provider;
    std::string id;
    std::string name;
    std::string status;          // creating | running | exited | failed (provider-specific words allowed)
    std::string image;           // what it was created from
    std::int64_t created_at = 0; // unix seconds
    std::optional<std::int64_t> expires_at; // unix seconds, when a lifetime was set
    Labels labels;
    nlohmann::json details = nlohmann::json::object(); // provider-specific facts for `inspect`

    std::string ref() const { return provider + "/" + id; }
};

// What a path inside a sandbox is (docker's `HEAD /containers/ID/archive`), for cp's decisions.
struct PathInfo {
    enum class Type { missing, file, directory, symlink, other };
    Type type = Type::missing;
    std::uint64_t size = 0;
    unsigned mode = 0;       // permission bits
    std::string link_target; // for a symlink
};

// Upload: a tar stream is extracted below `dir`, an existing directory in the sandbox (docker's
// `PUT /containers/ID/archive`). Nothing is left behind when it fails.
struct UploadSpec {
    std::string dir;
    std::string user; // who owns what is created: empty = root inside; NAME, UID or UID:GID
    // The stream's top-level entry `rename_from` lands as `rename_to` (cp to a new name).
    std::string rename_from, rename_to;
};

// Download: a tar stream of `path` (a file, a directory with everything below it, or a symlink) whose one
// top-level entry is named `archive_name` (empty: the path's last component; "." for a directory means its
// contents at the top level).
struct DownloadSpec {
    std::string path;
    std::string archive_name;
    bool follow_link = false; // cp -L: when `path` is a symlink, archive what it points to
};

struct SnapshotInfo {
    std::string provider;
    std::string id;
    std::string name;
    std::uint64_t size = 0;      // bytes of file data in the snapshot's own layer
    std::int64_t created_at = 0; // unix seconds
    std::string source;          // the sandbox it was taken from (PROVIDER/ID)
    std::string parent;          // the snapshot it was layered on, if any
    nlohmann::json details = nlohmann::json::object();
};

// Observes the phases of `run` so the CLI can, for example, print the reference of a detached run.
struct RunObserver {
    virtual ~RunObserver() = default;
    virtual void created(const SandboxInfo&) {}
};

class Provider {
  public:
    virtual ~Provider() = default;

    virtual std::string_view name() const = 0;
    virtual Capabilities capabilities() const = 0;
    // Whether credentials/settings are present; when not, `why` says what is missing and how to fix it.
    virtual bool configured(std::string& why) const = 0;
    // What to record about the provider next to measurements of it (`sbox bench`'s JSON): versions and
    // endpoints as far as known, never a secret. The default is an empty object.
    virtual nlohmann::json about() const;

    // Returns once the sandbox is ready for exec.
    virtual SandboxInfo create(const CreateSpec& spec) = 0;
    virtual std::vector<SandboxInfo> list() = 0;
    // list(), where the provider may use `only` (exact key=value labels, all required) to ask its service for
    // less; the caller still filters. The default is list().
    virtual std::vector<SandboxInfo> list_filtered(const Labels& only);
    // id is the provider's id, or a name the provider knows; nullopt when there is no such sandbox.
    virtual std::optional<SandboxInfo> get(std::string_view id_or_name) = 0;
    // Runs a command with the CLI process's stdin/stdout/stderr; returns its exit status
    // (0-255, 128+N for signal N, 124 for a timeout). Throws CommandError for 126/127.
    virtual int exec(std::string_view id, const ExecSpec& spec) = 0;
    // Everything of the sandbox gone. Throws Error(not_found) when there is no such sandbox.
    virtual void kill(std::string_view id) = 0;
    // create + exec + kill. Ctrl-C or SIGTERM during the run removes the sandbox. The default does exactly
    // that with the three calls above; a provider may take a faster path that is as isolated.
    virtual int run(const CreateSpec& create, const ExecSpec& exec, RunObserver& observer);

    // The operations below default to Error(unsupported, "OPERATION is not supported by this provider");
    // a provider that implements them also reports the matching Capability.

    // cp (Capability::copy). Streams go through file descriptors so that a 2 GiB file never sits in memory.
    virtual PathInfo stat_path(std::string_view id, const std::string& path, bool follow_link);
    virtual void upload(std::string_view id, const UploadSpec& spec, int tar_fd);
    virtual void download(std::string_view id, const DownloadSpec& spec, int tar_fd);

    // Snapshots (Capability::snapshots; export/import: Capability::snapshot_files).
    virtual SnapshotInfo create_snapshot(std::string_view id, const std::string& name);
    virtual std::vector<SnapshotInfo> list_snapshots();
    // By id, unique id prefix or name; nullopt when there is none.
    virtual std::optional<SnapshotInfo> get_snapshot(std::string_view ref);
    virtual void delete_snapshot(std::string_view snapshot_id);
    virtual void export_snapshot(std::string_view snapshot_id, int out_fd);
    virtual SnapshotInfo import_snapshot(int in_fd);

    // Capability::pause.
    virtual void pause(std::string_view id);
    virtual void resume(std::string_view id);
};

} // namespace sbox

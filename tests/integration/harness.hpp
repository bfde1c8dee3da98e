// A small harness for the integration tests: spawns the built sbox binary (never through a shell), feeds it
// stdin, captures stdout and stderr separately and binary-safe, and gives every test case its own SBOX_ROOT.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <sys/types.h>

#include <nlohmann/json.hpp>

namespace it {

using namespace std::chrono_literals;

// What a finished process left behind.
struct Result {
    int status = -1;       // the exit status; 128+N when it was killed by signal N
    bool signaled = false; // it died of a signal (status is then 128+N)
    bool hung = false;     // it outlived the harness's safety limit and was killed with SIGKILL
    std::string out;       // everything it wrote to stdout
    std::string err;       // everything it wrote to stderr
};
std::ostream& operator<<(std::ostream& os, const Result& r);
// A one-line description for doctest's INFO/MESSAGE (stdout and stderr abbreviated).
std::string describe(const Result& r);

// A child process with its stdout and stderr on pipes, and its stdin on a pipe or /dev/null.
class Process {
  public:
    struct Options {
        bool pipe_stdin = false; // otherwise stdin is /dev/null
        int inherit_fd = -1;     // an extra fd (without FD_CLOEXEC) that the child inherits as is
        bool controlling_tty =
            false; // the child leads a new session whose controlling terminal is a fresh pty
    };
    Process(const std::vector<std::string>& argv, const std::vector<std::string>& env, Options options);
    Process(const std::vector<std::string>& argv, const std::vector<std::string>& env)
        : Process(argv, env, Options{}) {}
    Process(Process&& other) noexcept;
    Process& operator=(Process&&) = delete;
    Process(const Process&) = delete;
    ~Process(); // a child still running is killed with SIGKILL and reaped

    pid_t pid() const { return pid_; }
    // Whether the child has not exited yet (reaps it when it has; finish() still returns its status).
    bool running();
    void signal(int sig);
    // Writes `input` to stdin (when piped), closes it, reads stdout and stderr until EOF and waits for the
    // child. A child still running after `limit` is killed with SIGKILL and the result is marked `hung`: a
    // safety net against engine bugs, not a timing assertion.
    Result finish(const std::string& input = {}, std::chrono::seconds limit = 180s);

  private:
    pid_t pid_ = -1;
    int in_ = -1, out_ = -1, err_ = -1;
    int pty_master_ = -1; // held until the child is reaped, so its terminal does not hang up under it
    bool reaped_ = false;
    int wait_status_ = 0;
};

// The path of the sbox binary under test: $SBOX_BIN, else the one CMake built.
std::string sbox_bin();

// One test case's private sbox world: a fresh SBOX_ROOT under /tmp (mode 0755, so the uids of sandboxes can
// traverse it). The destructor runs `sbox kill --all` and removes the directory.
class World {
  public:
    World();
    ~World();
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    const std::string& root() const { return root_; }
    // The environment sbox runs with: ours, with SBOX_ROOT set, SBOX_PROVIDER unset and no user config file.
    const std::vector<std::string>& env() const { return env_; }
    // Sets (or replaces) a variable of that environment.
    void set_env(const std::string& name, const std::string& value);

    // `sbox ARGS...` with stdin on /dev/null.
    Result sbox(const std::vector<std::string>& args) const;
    // `sbox ARGS...` with `input` on stdin (a pipe, closed after the input: EOF).
    Result sbox_in(const std::vector<std::string>& args, const std::string& input) const;
    Process spawn(const std::vector<std::string>& args, Process::Options options = {}) const;

    // `sbox create OPTS...`; REQUIREs success and returns the printed reference (local/<id>).
    std::string create(const std::vector<std::string>& opts = {}) const;
    // `sbox exec [OPTS...] REF -- CMD...`.
    Result exec(const std::string& ref, const std::vector<std::string>& cmd,
                const std::vector<std::string>& opts = {}) const;
    // `sbox exec REF -- CMD...`, REQUIREs exit 0 and returns stdout.
    std::string check_output(const std::string& ref, const std::vector<std::string>& cmd,
                             const std::vector<std::string>& opts = {}) const;
    // `sbox inspect REF --json`, REQUIREs success.
    nlohmann::json inspect(const std::string& ref) const;
    // `sbox ls --json`, REQUIREs success; always an array.
    nlohmann::json ls() const;
    // `sbox ls -q`: the listed lines.
    std::vector<std::string> ls_q() const;
    // Waits (up to 60 s) until `ls --json` lists exactly one sandbox and it is "running", while `p` (the sbox
    // process that makes it, for example a `sbox run`) is still running; REQUIREs that and returns its
    // reference.
    std::string wait_running(Process& p) const;
    // details.supervisor_pid from inspect, REQUIREd to be a positive number.
    pid_t supervisor_pid(const std::string& ref) const;

    // What is left of sandboxes under SBOX_ROOT: entries of data/sandboxes, data/trash and run/sandboxes, and
    // directories in run.
    std::vector<std::string> leftovers() const;
    // Mount points in /proc/self/mountinfo whose line mentions SBOX_ROOT.
    std::vector<std::string> mounts() const;
    // Host processes that, as far as this process may read, belong to this SBOX_ROOT: their command line,
    // environment, mount table or open files mention it. (Unreadable processes are not counted.)
    std::vector<pid_t> processes() const;

  private:
    std::string root_;
    std::vector<std::string> env_;
};

// A fresh directory under /tmp (mode 0755), removed with everything in it at the end of the scope.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// Helpers.
bool is_root();
// argv/envp for execve: pointers into `strings`, then a null pointer (prepared before fork).
std::vector<char*> c_strings(const std::vector<std::string>& strings);
std::string trim(const std::string& s);
std::vector<std::string> lines(const std::string& s);
std::string random_bytes(std::size_t n);
std::string random_hex(std::size_t n);
std::string read_file(const std::string& path); // empty when it cannot be read
bool exists(const std::string& path);
// Every PID in /proc (this process's PID namespace).
std::vector<pid_t> all_pids();
// Whether /proc/PID exists and is not a zombie.
bool process_alive(pid_t pid);
// The uid fields (real, effective, saved, fs) of /proc/PID/status; empty when unreadable.
std::vector<long> process_uids(pid_t pid);
// Calls `cond` every 100 ms until it returns true or `limit` passes; returns its last answer.
bool eventually(const std::function<bool()>& cond, std::chrono::seconds limit = 30s);
// CHECKs that everything of the sandbox with supervisor `sup` is gone: the process, its files under
// SBOX_ROOT and its mounts. Waits up to 10 s for them (a sandbox that ended by itself is removed by its
// monitor, which may still be at it).
void check_gone(const World& w, pid_t sup);
// Whether this user has a subordinate uid and gid range of at least 65536 ids (rootless mode can then map
// more than one uid).
bool has_subid_ranges();
// The target of /proc/PID/ns/NAME (for example "pid:[4026531836]"); empty when unreadable. PID 0: this
// process.
std::string ns_of(pid_t pid, const std::string& name);
// Makes this process a child subreaper (PR_SET_CHILD_SUBREAPER): whatever sbox leaves running is reparented
// to the test instead of init, so descendants() sees it.
void become_subreaper();
// Live (not zombie) descendants of this process. Reaps zombie children first, so call it only when no Process
// object of the test is still waiting for its child.
std::vector<pid_t> descendants();
// Removes a directory tree without crossing into other file systems; false when something was left.
bool remove_tree(const std::string& path);

} // namespace it

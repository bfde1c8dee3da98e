// Names of error kinds and capabilities, and the default Provider::run (create, exec, kill) with its cleanup
// on SIGINT/SIGTERM/SIGHUP (guard.hpp).
#include "providers/provider.hpp"

#include "providers/guard.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <exception>
#include <fcntl.h>
#include <mutex>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace sbox {

std::string_view to_string(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::usage:
        return "usage";
    case ErrorKind::invalid:
        return "invalid";
    case ErrorKind::not_found:
        return "not_found";
    case ErrorKind::conflict:
        return "conflict";
    case ErrorKind::auth:
        return "auth";
    case ErrorKind::rate_limited:
        return "rate_limited";
    case ErrorKind::unavailable:
        return "unavailable";
    case ErrorKind::timeout:
        return "timeout";
    case ErrorKind::unsupported:
        return "unsupported";
    case ErrorKind::internal:
        return "internal";
    }
    return "internal";
}

namespace {
constexpr Capability all_capabilities[] = {
    Capability::exec,           Capability::exec_stdin, Capability::exec_detach, Capability::exec_timeout,
    Capability::exec_user,      Capability::exec_cwd,   Capability::lifetime,    Capability::labels,
    Capability::names,          Capability::image_dir,  Capability::copy,        Capability::snapshots,
    Capability::snapshot_files, Capability::pause,      Capability::cpu_limit,   Capability::memory_limit,
    Capability::disk_limit,     Capability::pids_limit, Capability::seccomp,     Capability::network,
    Capability::ports,          Capability::exec_tty,
};
} // namespace

std::string_view to_string(Capability c) {
    switch (c) {
    case Capability::exec:
        return "exec";
    case Capability::exec_stdin:
        return "exec_stdin";
    case Capability::exec_detach:
        return "exec_detach";
    case Capability::exec_timeout:
        return "exec_timeout";
    case Capability::exec_user:
        return "exec_user";
    case Capability::exec_cwd:
        return "exec_cwd";
    case Capability::lifetime:
        return "lifetime";
    case Capability::labels:
        return "labels";
    case Capability::names:
        return "names";
    case Capability::image_dir:
        return "image_dir";
    case Capability::copy:
        return "copy";
    case Capability::snapshots:
        return "snapshots";
    case Capability::snapshot_files:
        return "snapshot_files";
    case Capability::pause:
        return "pause";
    case Capability::cpu_limit:
        return "cpu_limit";
    case Capability::memory_limit:
        return "memory_limit";
    case Capability::disk_limit:
        return "disk_limit";
    case Capability::pids_limit:
        return "pids_limit";
    case Capability::seccomp:
        return "seccomp";
    case Capability::network:
        return "network";
    case Capability::ports:
        return "ports";
    case Capability::exec_tty:
        return "exec_tty";
    }
    return "unknown";
}

std::vector<std::string> Capabilities::names() const {
    std::vector<std::string> out;
    for (auto c : all_capabilities)
        if (has(c)) out.emplace_back(to_string(c));
    return out;
}

namespace {

// `run -d`: like `docker run -d --rm`. A background process (detached from the terminal, its own session,
// stdio on /dev/null) runs the command to its end and then removes the sandbox; the caller returns at once.
int run_detached(Provider& p, const std::string& id, const ExecSpec& exec) {
    std::fflush(nullptr); // nothing buffered may be written twice
    pid_t child = ::fork();
    if (child < 0)
        throw Error(ErrorKind::internal, std::string("cannot start the background run: fork failed"));
    if (child == 0) {
        // Only _exit from here on: the parent's stack must never be unwound in the children.
        ::setsid();
        pid_t grandchild = ::fork();
        if (grandchild != 0) ::_exit(grandchild < 0 ? 1 : 0);
        for (int sig : kGuardedSignals)
            ::signal(sig, SIG_DFL);
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            ::dup2(null, 0);
            ::dup2(null, 1);
            ::dup2(null, 2);
        }
        int status = 125;
        try {
            ExecSpec spec = exec;
            spec.detach = false;
            spec.stdin_open = false;
            status = p.exec(id, spec);
        } catch (const CommandError& e) {
            status = e.exit_status();
        } catch (...) {
        }
        try {
            p.kill(id);
        } catch (...) {
        }
        ::_exit(status & 0xff);
    }
    int wstatus = 0;
    while (::waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
        throw Error(ErrorKind::internal, "cannot start the background run: fork failed");
    return 0;
}

} // namespace

int Provider::run(const CreateSpec& create_spec, const ExecSpec& exec_spec, RunObserver& observer) {
    SandboxGuard guard(*this);
    SandboxInfo info = create(create_spec);
    if (int sig = guard.created(info.id)) return 128 + sig;
    observer.created(info);

    if (exec_spec.detach) {
        if (int sig = guard.signal()) return 128 + sig;
        int status = run_detached(*this, info.id, exec_spec);
        guard.release();
        return status;
    }

    int status = 0;
    try {
        status = exec(info.id, exec_spec);
    } catch (...) {
        // Interrupted: exec may well fail because its sandbox was removed under it.
        if (int sig = guard.signal()) return 128 + sig;
        throw; // the guard removes the sandbox on the way out
    }
    if (int sig = guard.signal()) return 128 + sig;
    guard.remove();
    if (int sig = guard.signal()) return 128 + sig;
    return status;
}

} // namespace sbox

namespace sbox {

namespace {
[[noreturn]] void unsupported(const Provider& p, const char* operation) {
    throw Error(ErrorKind::unsupported, std::string(operation) + " is not supported by this provider",
                std::string(p.name()));
}
} // namespace

nlohmann::json Provider::about() const {
    return nlohmann::json::object();
}

std::vector<SandboxInfo> Provider::list_filtered(const Labels&) {
    return list();
}

PathInfo Provider::stat_path(std::string_view, const std::string&, bool) {
    unsupported(*this, "cp");
}
void Provider::upload(std::string_view, const UploadSpec&, int) {
    unsupported(*this, "cp");
}
void Provider::download(std::string_view, const DownloadSpec&, int) {
    unsupported(*this, "cp");
}
SnapshotInfo Provider::create_snapshot(std::string_view, const std::string&) {
    unsupported(*this, "snapshot");
}
std::vector<SnapshotInfo> Provider::list_snapshots() {
    unsupported(*this, "snapshot");
}
std::optional<SnapshotInfo> Provider::get_snapshot(std::string_view) {
    unsupported(*this, "snapshot");
}
void Provider::delete_snapshot(std::string_view) {
    unsupported(*this, "snapshot");
}
void Provider::export_snapshot(std::string_view, int) {
    unsupported(*this, "snapshot export");
}
SnapshotInfo Provider::import_snapshot(int) {
    unsupported(*this, "snapshot import");
}
void Provider::pause(std::string_view) {
    unsupported(*this, "pause");
}
void Provider::resume(std::string_view) {
    unsupported(*this, "resume");
}

} // namespace sbox

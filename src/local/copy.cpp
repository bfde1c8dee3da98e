// cp for local sandboxes: a worker process joins the sandbox's namespaces and takes the credentials of a user
// inside it, so every path is resolved inside the sandbox's root by the kernel (openat2 RESOLVE_IN_ROOT,
// magic links refused) and never on the host; the worker then writes or extracts a tar stream through the
// descriptor it was given.
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>

#include "local/child.hpp"
#include "local/engine.hpp"
#include "local/launch.hpp"
#include "local/namespaces.hpp"

namespace sbox::local {

namespace {

// What a worker does with the signals that interrupt sbox: the side producing a stream dies with the
// caller (its consumer then sees the stream cut short and removes what it had written); the side
// consuming one carries on until its stream ends, so that it can clean up.
enum class Role { producer, consumer };

// Opens `path` as the sandbox sees it. The worker's root is the sandbox's, and resolution stays beneath it
// even through symlinks and ".."; /proc/PID/root-style magic links are refused outright.
Fd open_in_root(const std::string& path, int flags) {
    Fd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw_errno("open the sandbox's root");
    struct open_how how = {};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(::syscall(SYS_openat2, root.get(), path.c_str(), &how, sizeof how));
    if (fd == -1) {
        int err = errno;
        if (err == ENOENT)
            throw Error(Error::Kind::not_found, path + ": no such file or directory in the sandbox");
        if (err == ENOTDIR)
            throw Error(Error::Kind::invalid, path + ": a component of the path is not a directory");
        if (err == ELOOP)
            throw Error(Error::Kind::invalid, path + ": too many symlinks, or a link into /proc (refused)");
        if (err == EACCES) throw Error(Error::Kind::invalid, path + ": permission denied in the sandbox");
        throw_errno("open " + path + " in the sandbox", err);
    }
    return Fd(fd);
}

// A sandbox path split for cp: its parent directory and last component. "/" has no last component;
// "DIR/." (a directory's contents) is flagged; trailing slashes are dropped but remembered.
struct SplitPath {
    std::string parent = "/";
    std::string leaf; // empty: the path is "/"
    bool contents = false;
    bool trailing_slash = false;
};

SplitPath split(std::string path) {
    SplitPath out;
    if (path.empty() || path.front() != '/') path.insert(path.begin(), '/'); // relative to the sandbox's "/"
    if (path.size() >= 2 && path.compare(path.size() - 2, 2, "/.") == 0) {
        out.contents = true;
        path.resize(path.size() - 2);
    }
    while (path.size() > 1 && path.back() == '/') {
        out.trailing_slash = true;
        path.pop_back();
    }
    if (path.empty()) path = "/";
    if (path == "/") return out;
    auto slash = path.rfind('/');
    out.parent = slash == 0 ? "/" : path.substr(0, slash);
    out.leaf = path.substr(slash + 1);
    return out;
}

// Runs `body` in a worker inside the sandbox as `user` (empty: root inside). `keep`: descriptors it uses.
std::string in_sandbox(const SandboxState& state, const std::string& user, Role role, std::vector<int> keep,
                       const std::function<std::string()>& body) {
    Fd supervisor = open_pidfd(state.runtime->supervisor);
    if (!supervisor)
        throw Error(Error::Kind::conflict,
                    "sandbox " + state.config.id + " is not running; remove it with sbox kill");
    keep.push_back(supervisor.get());
    bool setgroups = state.config.idmap.setgroups;
    int pidfd = supervisor.get();
    Child worker(
        [&] {
            for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
                ::signal(sig, role == Role::consumer ? SIG_IGN : SIG_DFL);
            ::signal(SIGPIPE, SIG_IGN); // a reader that went away is an error to report, not a death
            join_namespaces(pidfd);
            ::close(pidfd);
            become_user(user, setgroups);
            // Nothing inside may ptrace or read the memory of a process that holds host descriptors.
            check(::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)");
            if (::chdir("/") == -1) throw_errno("chdir /");
            return body();
        },
        keep);
    return worker.wait();
}

} // namespace

SandboxState Engine::running_sandbox(std::string_view id_or_name) const {
    auto state = store_.find(id_or_name);
    if (!state) throw Error(Error::Kind::not_found, "no sandbox '" + std::string(id_or_name) + "'");
    // A paused sandbox can be copied from and to: the worker joins it after its processes were stopped.
    if ((state->status != Status::running && state->status != Status::paused) || !state->runtime)
        throw Error(Error::Kind::conflict, "sandbox " + state->config.id + " is not running (" +
                                               std::string(to_string(state->status)) +
                                               "); remove it with sbox kill");
    return *state;
}

SandboxPath Engine::stat_path(std::string_view id_or_name, const std::string& path, bool follow_link) {
    SandboxState state = running_sandbox(id_or_name);
    std::string answer = in_sandbox(state, "", Role::producer, {}, [&]() -> std::string {
        SplitPath p = split(path);
        struct stat st;
        std::string target;
        try {
            if (p.leaf.empty() || follow_link || p.trailing_slash || p.contents) {
                Fd fd = open_in_root(path.empty() ? "/" : path, O_PATH);
                check(::fstat(fd.get(), &st), "stat " + path);
            } else {
                Fd parent = open_in_root(p.parent, O_PATH | O_DIRECTORY);
                if (::fstatat(parent.get(), p.leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == -1) {
                    if (errno == ENOENT) return "missing";
                    throw_errno("stat " + path);
                }
                if (S_ISLNK(st.st_mode)) {
                    char buf[4096];
                    ssize_t n = ::readlinkat(parent.get(), p.leaf.c_str(), buf, sizeof buf);
                    if (n > 0) target.assign(buf, static_cast<size_t>(n));
                }
            }
        } catch (const Error& e) {
            if (e.kind() == Error::Kind::not_found) return "missing";
            throw;
        }
        const char* type = S_ISREG(st.st_mode)   ? "file"
                           : S_ISDIR(st.st_mode) ? "directory"
                           : S_ISLNK(st.st_mode) ? "symlink"
                                                 : "other";
        return std::string(type) + "\n" + std::to_string(st.st_size) + "\n" +
               std::to_string(st.st_mode & 07777) + "\n" + target;
    });
    SandboxPath out;
    std::vector<std::string> fields;
    size_t start = 0;
    for (int i = 0; i < 3; ++i) {
        size_t nl = answer.find('\n', start);
        fields.push_back(answer.substr(start, nl - start));
        start = nl == std::string::npos ? answer.size() : nl + 1;
    }
    const std::string& type = fields[0];
    if (type == "missing") return out;
    out.type = type == "file"        ? SandboxPath::Type::file
               : type == "directory" ? SandboxPath::Type::directory
               : type == "symlink"   ? SandboxPath::Type::symlink
                                     : SandboxPath::Type::other;
    out.size = std::stoull(fields[1]);
    out.mode = static_cast<unsigned>(std::stoul(fields[2]));
    out.link_target = answer.substr(start);
    return out;
}

void Engine::copy_in(std::string_view id_or_name, const CopyIn& request, int tar_fd) {
    SandboxState state = running_sandbox(id_or_name);
    Archiver& tar = archiver(); // loaded here: the worker inherits it
    in_sandbox(state, request.user, Role::consumer, {tar_fd}, [&] {
        Fd dir = open_in_root(request.dir, O_RDONLY | O_DIRECTORY);
        ExtractOptions options;
        options.rename_from = request.rename_from;
        options.rename_to = request.rename_to;
        options.warn = [](const std::string& message) {
            std::fprintf(stderr, "sbox: warning: %s\n", message.c_str());
        };
        tar.extract(tar_fd, dir.get(), options);
        return std::string();
    });
}

void Engine::copy_out(std::string_view id_or_name, const CopyOut& request, int tar_fd) {
    SandboxState state = running_sandbox(id_or_name);
    Archiver& tar = archiver();
    in_sandbox(state, "", Role::producer, {tar_fd}, [&] {
        SplitPath p = split(request.path);
        ArchiveSource source;
        Fd dir;
        if (p.contents || p.leaf.empty()) {
            dir = open_in_root(p.contents ? p.parent + (p.leaf.empty() ? "" : "/" + p.leaf) : "/",
                               O_PATH | O_DIRECTORY);
            source.name = ".";
            source.archive_name = request.archive_name;
        } else {
            dir = open_in_root(p.parent, O_PATH | O_DIRECTORY);
            source.name = p.leaf;
            source.archive_name = request.archive_name.empty() ? p.leaf : request.archive_name;
            source.follow = request.follow_link || p.trailing_slash;
            struct stat st;
            if (::fstatat(dir.get(), p.leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == -1) {
                if (errno == ENOENT)
                    throw Error(Error::Kind::not_found,
                                request.path + ": no such file or directory in the sandbox");
                throw_errno("stat " + request.path);
            }
        }
        source.dir_fd = dir.get();
        tar.write({source}, tar_fd, WriteOptions{});
        return std::string();
    });
}

} // namespace sbox::local

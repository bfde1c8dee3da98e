#include "local/idmap.hpp"
#include "local/namespaces.hpp"

#include <fcntl.h>
#include <linux/mount.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace sbox::local {

namespace {

bool maps(const std::vector<IdRange>& ranges, unsigned id) {
    for (const auto& r : ranges)
        if (id >= r.inside && id - r.inside < r.count) return true;
    return false;
}

// The first /etc/subuid-style range of the user (by name or number), or count 0.
IdRange subordinate_range(const char* file, const std::string& name, unsigned id) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string who, start, count;
        if (!std::getline(fields, who, ':') || !std::getline(fields, start, ':') ||
            !std::getline(fields, count))
            continue;
        if (who != name && who != std::to_string(id)) continue;
        char* end = nullptr;
        unsigned long s = std::strtoul(start.c_str(), &end, 10);
        if (*end) continue;
        unsigned long c = std::strtoul(count.c_str(), &end, 10);
        if (*end || c == 0) continue;
        // Root inside is the user itself; the subordinate range provides ids 1 .. kRangeSize-1.
        if (c > kRangeSize - 1) c = kRangeSize - 1;
        return IdRange{1, static_cast<unsigned>(s), static_cast<unsigned>(c)};
    }
    return {};
}

bool executable(const char* path) {
    return ::access(path, X_OK) == 0;
}

std::string render(const std::vector<IdRange>& ranges) {
    std::string out;
    for (const auto& r : ranges)
        out +=
            std::to_string(r.inside) + " " + std::to_string(r.outside) + " " + std::to_string(r.count) + "\n";
    return out;
}

void write_proc(pid_t pid, const char* file, const std::string& content) {
    std::string path = "/proc/" + std::to_string(pid) + "/" + file;
    Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) throw_errno("open " + path);
    if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size()))
        throw_errno("write " + path + " (\"" + content.substr(0, content.find('\n')) + "\")");
}

void run_helper(const char* helper, pid_t pid, const std::vector<IdRange>& ranges) {
    std::vector<std::string> args = {helper, std::to_string(pid)};
    for (const auto& r : ranges) {
        args.push_back(std::to_string(r.inside));
        args.push_back(std::to_string(r.outside));
        args.push_back(std::to_string(r.count));
    }
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t child = ::fork();
    if (child == -1) throw_errno("fork");
    if (child == 0) {
        ::execv(helper, argv.data());
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) == -1) {
        if (errno != EINTR) throw_errno("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw Error(Error::Kind::unavailable,
                    std::string(helper) + " failed (status " + std::to_string(status) +
                        "): check the user's entries in /etc/subuid and /etc/subgid");
}

} // namespace

bool IdMap::maps_uid(unsigned inside) const {
    return maps(uids, inside);
}
bool IdMap::maps_gid(unsigned inside) const {
    return maps(gids, inside);
}

IdMap slot_idmap(unsigned slot) {
    unsigned base = kSlotBase + slot * kRangeSize;
    IdMap map;
    map.uids = {{0, base, kRangeSize}};
    map.gids = {{0, base, kRangeSize}};
    return map;
}

IdMap rootless_idmap() {
    unsigned uid = ::getuid(), gid = ::getgid();
    IdMap map;
    map.uids = {{0, uid, 1}};
    map.gids = {{0, gid, 1}};
    std::string name;
    if (struct passwd* pw = ::getpwuid(uid)) name = pw->pw_name;
    IdRange subuid = subordinate_range("/etc/subuid", name, uid);
    IdRange subgid = subordinate_range("/etc/subgid", name, uid);
    if (subuid.count && subgid.count && executable("/usr/bin/newuidmap") &&
        executable("/usr/bin/newgidmap")) {
        map.uids.push_back(subuid);
        map.gids.push_back(subgid);
        map.use_helpers = true;
    } else {
        map.setgroups = false;
    }
    return map;
}

void write_idmap(pid_t pid, const IdMap& map) {
    if (map.use_helpers) {
        run_helper("/usr/bin/newuidmap", pid, map.uids);
        run_helper("/usr/bin/newgidmap", pid, map.gids);
        return;
    }
    write_proc(pid, "uid_map", render(map.uids));
    if (!map.setgroups) write_proc(pid, "setgroups", "deny");
    write_proc(pid, "gid_map", render(map.gids));
}

Fd make_idmapped_mount(const std::string& path, int userns_fd, std::string& why) {
    Fd tree(static_cast<int>(
        ::syscall(SYS_open_tree, AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
    if (!tree) {
        why = "open_tree " + path + ": " + std::strerror(errno);
        return {};
    }
    struct mount_attr attr = {};
    attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID;
    attr.userns_fd = static_cast<std::uint64_t>(userns_fd);
    if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) == -1) {
        why = "idmapped mount of " + path + ": " + std::strerror(errno);
        return {};
    }
    return tree;
}

bool run_as_mapped_root(const IdMap& map, const std::function<bool()>& fn) {
    // A socket pair carries "unshared" from the child and "mapped" back from the parent.
    int sync[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) == -1) return false;
    Fd parent_end(sync[0]), child_end(sync[1]);
    pid_t child = ::fork();
    if (child == -1) return false;
    if (child == 0) {
        parent_end.reset();
        char c = 'u';
        if (::unshare(CLONE_NEWUSER) == -1 || ::write(child_end.get(), &c, 1) != 1) ::_exit(2);
        if (::read(child_end.get(), &c, 1) != 1) ::_exit(2);
        if (::setresgid(0, 0, 0) == -1 || ::setresuid(0, 0, 0) == -1) ::_exit(2);
        ::_exit(fn() ? 0 : 1);
    }
    child_end.reset();
    bool ok = false;
    char c;
    if (::read(parent_end.get(), &c, 1) == 1) {
        try {
            write_idmap(child, map);
            ok = ::write(parent_end.get(), "m", 1) == 1;
        } catch (const Error&) {
        }
    }
    parent_end.reset();
    int status = 0;
    while (::waitpid(child, &status, 0) == -1 && errno == EINTR) {
    }
    return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

} // namespace sbox::local

namespace sbox::local {

Fd make_userns(const IdMap& map) {
    int fds[2];
    check(::pipe2(fds, O_CLOEXEC), "pipe2");
    Fd hold(fds[0]), release(fds[1]);
    Fd pidfd;
    pid_t pid = clone_into_namespaces(CLONE_NEWUSER, pidfd);
    if (pid == 0) {
        // Holds the namespace until the parent has opened it.
        char c;
        release.reset();
        (void)::read(hold.get(), &c, 1);
        ::_exit(0);
    }
    hold.reset();
    auto reap = [&] {
        release.reset();
        while (::waitpid(pid, nullptr, 0) == -1 && errno == EINTR) {
        }
    };
    try {
        write_idmap(pid, map);
        Fd ns(::open(("/proc/" + std::to_string(pid) + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
        if (!ns) throw_errno("open a user namespace");
        reap();
        return ns;
    } catch (...) {
        reap();
        throw;
    }
}

} // namespace sbox::local

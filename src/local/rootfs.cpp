#include "local/rootfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdlib>
#include <functional>

#include "local/mounts.hpp"

namespace sbox::local {

namespace {

// Top-level host directories that make up the `host` base. Only these are shown; anything else of the
// host's "/" stays out of the sandbox.
constexpr std::array kSystemDirs = {"usr",  "etc", "var",   "opt",   "srv",   "bin",
                                    "sbin", "lib", "lib32", "lib64", "libx32"};

// Fresh, empty directories of the `host` base, with their modes.
constexpr std::array<std::pair<const char*, mode_t>, 9> kFreshDirs = {{{"proc", 0555},
                                                                       {"sys", 0555},
                                                                       {"dev", 0755},
                                                                       {"tmp", 01777},
                                                                       {"root", 0700},
                                                                       {"run", 0755},
                                                                       {"home", 0755},
                                                                       {"mnt", 0755},
                                                                       {"media", 0755}}};

Fd open_dir_at(int dir, const std::string& name) {
    Fd fd(::openat(dir, name.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throw_errno("open " + name);
    return fd;
}

// build_rootfs runs with umask 0, so the modes given here are the modes created (/tmp is 1777).
void mkdir_at(int dir, const std::string& name, mode_t mode) {
    if (::mkdirat(dir, name.c_str(), mode) == -1 && errno != EEXIST) throw_errno("mkdir " + name);
}

// mkdir -p of `rel` (relative, '/'-separated) below `dir`.
void mkdirs_at(int dir, const std::string& rel, mode_t mode) {
    size_t pos = 0;
    while ((pos = rel.find('/', pos + 1)) != std::string::npos) {
        if (::mkdirat(dir, rel.substr(0, pos).c_str(), mode) == -1 && errno != EEXIST)
            throw_errno("mkdir " + rel.substr(0, pos));
    }
    if (::mkdirat(dir, rel.c_str(), mode) == -1 && errno != EEXIST) throw_errno("mkdir " + rel);
}

void write_at(int dir, const std::string& name, const std::string& content) {
    Fd fd(::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) throw_errno("create " + name);
    if (!write_all(fd.get(), content)) throw_errno("write " + name);
}

// Overlay options name the layers through /proc/self/fd, which the kernel resolves to the directories
// opened earlier, whatever the caller can traverse now.
void mount_overlay(const std::string& lower, int upper, int work, const std::string& target) {
    std::string options =
        "lowerdir=" + lower + ",upperdir=" + fd_path(upper) + ",workdir=" + fd_path(work) + ",userxattr";
    mount_or_throw("overlay", target, "overlay", MS_NOSUID, options);
}

// The sandbox's /etc/hostname and /etc/hosts (and, with a network, /etc/resolv.conf), written into the upper
// layer of /etc before it is mounted.
void write_identity_files(int etc_upper, const RootfsPlan& plan) {
    const std::string& hostname = plan.hostname;
    write_at(etc_upper, "hostname", hostname + "\n");
    write_at(etc_upper, "hosts",
             "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname +
                 "\n" + plan.extra_hosts);
    // A symlink there (to systemd-resolved's file under /run, say) is replaced in the upper layer only.
    if (!plan.resolv_conf.empty()) write_at(etc_upper, "resolv.conf", plan.resolv_conf);
}

} // namespace

const std::vector<std::string>& system_dir_names() {
    static const std::vector<std::string> names(kSystemDirs.begin(), kSystemDirs.end());
    return names;
}

std::vector<std::string> RootfsPlan::lower_paths() const {
    if (!image.empty()) return {image};
    std::vector<std::string> out;
    for (const auto& d : system_dirs)
        out.push_back("/" + d);
    return out;
}

RootfsPlan plan_rootfs(const std::string& image, const std::string& hostname, std::vector<std::string> hidden,
                       const std::string& fs_dir) {
    RootfsPlan plan;
    plan.hostname = hostname;
    if (!image.empty()) {
        char resolved[PATH_MAX];
        if (!::realpath(image.c_str(), resolved))
            throw Error(Error::Kind::invalid, "--image " + image + ": " + std::strerror(errno));
        struct stat st;
        if (::stat(resolved, &st) == -1 || !S_ISDIR(st.st_mode))
            throw Error(Error::Kind::invalid,
                        "--image " + image + " is not a directory (give a root filesystem directory)");
        plan.image = resolved;
    } else {
        for (const char* name : kSystemDirs) {
            std::string path = std::string("/") + name;
            struct stat st;
            if (::lstat(path.c_str(), &st) == -1) continue;
            if (S_ISDIR(st.st_mode)) {
                plan.system_dirs.emplace_back(name);
            } else if (S_ISLNK(st.st_mode)) {
                char target[PATH_MAX];
                ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
                if (n > 0) plan.symlinks.emplace_back(name, std::string(target, static_cast<size_t>(n)));
            }
        }
    }
    for (auto& h : hidden) {
        char resolved[PATH_MAX];
        if (::realpath(h.c_str(), resolved)) h = resolved;
    }
    plan.hidden = std::move(hidden);
    // Overlayfs cannot take another overlayfs as its upper layer (as in a container or a chroot whose root
    // is an overlay): the upper layers then live in a tmpfs of the sandbox's own.
    struct statfs sfs;
    if (::statfs(fs_dir.c_str(), &sfs) == 0 && sfs.f_type == OVERLAYFS_SUPER_MAGIC)
        plan.layers_in_memory = true;
    return plan;
}

Fd build_rootfs(const RootfsPlan& plan, int sandbox_dir,
                const std::function<std::vector<Fd>()>& receive_lowers, const IdMap& idmap) {
    mode_t old_umask = ::umask(0);
    make_mounts_private();
    std::string fs_path = fd_path(sandbox_dir) + "/fs";
    if (plan.layers_in_memory)
        mount_or_throw("tmpfs", fs_path, "tmpfs", MS_NOSUID | MS_NODEV,
                       "mode=0755" +
                           (plan.disk_bytes ? ",size=" + std::to_string(plan.disk_bytes) : std::string()));
    Fd fs = open_dir_at(sandbox_dir, "fs");
    for (const char* sub : {"root", "upper", "work", "lower"})
        mkdir_at(fs.get(), sub, 0755);
    Fd upper = open_dir_at(fs.get(), "upper");
    Fd work = open_dir_at(fs.get(), "work");
    Fd lower_dir = open_dir_at(fs.get(), "lower");

    // The lower layers: idmapped mounts attached below fs/lower, or the host paths themselves; then the
    // snapshot layers. They are asked for as late as possible: the host makes them while this process
    // builds everything else.
    std::vector<std::string> lower_paths = plan.lower_paths();
    std::vector<Fd> layers; // the snapshot layers, top first
    auto attach = [&](Fd mount, const std::string& name, const std::string& what) {
        mkdir_at(lower_dir.get(), name, 0755);
        check(::syscall(SYS_move_mount, mount.get(), "", lower_dir.get(), name.c_str(),
                        MOVE_MOUNT_F_EMPTY_PATH),
              "attach the idmapped mount of " + what);
        return open_dir_at(lower_dir.get(), name);
    };
    auto attach_lowers = [&] {
        std::vector<Fd> received = receive_lowers();
        bool layers_sent = plan.layer_paths_to_open.empty();
        size_t sent_layers = layers_sent ? plan.layer_count : 0;
        if (received.size() < sent_layers)
            throw Error(Error::Kind::internal, "the snapshot layers did not arrive");
        size_t base_received = received.size() - sent_layers;
        std::vector<Fd> refs; // keep the directories open while they are named through /proc/self/fd
        for (size_t i = 0; i < lower_paths.size(); ++i) {
            if (base_received == 0) {
                refs.emplace_back(::open(lower_paths[i].c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
                if (!refs.back()) throw_errno("open " + lower_paths[i]);
                continue;
            }
            refs.push_back(attach(std::move(received[i]), std::to_string(i), lower_paths[i]));
        }
        for (size_t i = 0; i < plan.layer_count; ++i) {
            if (!layers_sent) {
                layers.emplace_back(
                    ::open(plan.layer_paths_to_open[i].c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
                if (!layers.back()) throw_errno("open the snapshot layer " + plan.layer_paths_to_open[i]);
                continue;
            }
            layers.push_back(attach(std::move(received[base_received + i]), "layer" + std::to_string(i),
                                    "snapshot layer " + std::to_string(i)));
        }
        return refs;
    };
    // "L1:L2:...:" for the layers that hold `sub` ("" for their roots), top first.
    auto layer_stack = [&](const std::string& sub) {
        std::string out;
        for (const auto& layer : layers) {
            struct stat st;
            if (!sub.empty() &&
                !(::fstatat(layer.get(), sub.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)))
                continue;
            out += fd_path(layer.get()) + (sub.empty() ? "" : "/" + sub) + ":";
        }
        return out;
    };
    auto mount_kernel_filesystems = [&](int root) {
        std::string root_at = fd_path(root);
        mount_proc(root_at);
        mount_sys(root_at);
        mount_dev(root_at, idmap);
    };

    std::string root_path = fd_path(fs.get()) + "/root";
    Fd root;
    if (!plan.image.empty()) {
        mkdir_at(upper.get(), "root", 0755);
        mkdir_at(work.get(), "root", 0755);
        Fd up = open_dir_at(upper.get(), "root"), wk = open_dir_at(work.get(), "root");
        std::vector<Fd> lowers = attach_lowers();
        struct stat st;
        if (::fstatat(lowers[0].get(), "etc", &st, 0) == 0 && S_ISDIR(st.st_mode)) {
            mkdir_at(up.get(), "etc", 0755);
            write_identity_files(open_dir_at(up.get(), "etc").get(), plan);
        }
        mount_overlay(layer_stack("") + fd_path(lowers[0].get()), up.get(), wk.get(), root_path);
        root = open_dir_at(fs.get(), "root");
        for (const auto& [name, mode] : kFreshDirs) {
            if (::fstatat(root.get(), name, &st, AT_SYMLINK_NOFOLLOW) == -1) mkdir_at(root.get(), name, mode);
        }
        mount_kernel_filesystems(root.get());
    } else {
        std::vector<Fd> lowers;
        if (plan.layer_count == 0) {
            mount_or_throw(root_path, root_path, nullptr, MS_BIND);
        } else {
            // "/" itself comes from the snapshot layers too: an overlay whose upper layer is upper/root.
            lowers = attach_lowers();
            mkdir_at(upper.get(), "root", 0755);
            mkdir_at(work.get(), "root", 0755);
            Fd up = open_dir_at(upper.get(), "root"), wk = open_dir_at(work.get(), "root");
            std::string stack = layer_stack("");
            stack.pop_back();
            mount_overlay(stack, up.get(), wk.get(), root_path);
        }
        root = open_dir_at(fs.get(), "root");
        for (const auto& [name, mode] : kFreshDirs)
            mkdir_at(root.get(), name, mode);
        for (const auto& [name, target] : plan.symlinks) {
            if (::symlinkat(target.c_str(), root.get(), name.c_str()) == -1 && errno != EEXIST)
                throw_errno("symlink " + name);
        }
        std::vector<std::pair<Fd, Fd>> dirs; // upper and work of each system directory
        for (const std::string& name : plan.system_dirs) {
            mkdir_at(root.get(), name, 0755);
            mkdir_at(upper.get(), name, 0755);
            mkdir_at(work.get(), name, 0755);
            Fd up = open_dir_at(upper.get(), name), wk = open_dir_at(work.get(), name);
            if (name == "etc") write_identity_files(up.get(), plan);
            // Hide sbox's own state where it lies below this directory: a whiteout in the upper layer.
            std::string prefix = "/" + name + "/";
            for (const auto& hidden : plan.hidden) {
                if (hidden.compare(0, prefix.size(), prefix) != 0) continue;
                std::string rel = hidden.substr(prefix.size());
                size_t slash = rel.rfind('/');
                if (slash != std::string::npos) mkdirs_at(up.get(), rel.substr(0, slash), 0755);
                if (::mknodat(up.get(), rel.c_str(), S_IFCHR | 0000, 0) == -1 && errno != EEXIST)
                    throw_errno("whiteout " + hidden);
            }
            dirs.emplace_back(std::move(up), std::move(wk));
        }
        mount_kernel_filesystems(root.get());
        if (plan.layer_count == 0) lowers = attach_lowers();
        for (size_t i = 0; i < plan.system_dirs.size(); ++i)
            mount_overlay(layer_stack(plan.system_dirs[i]) + fd_path(lowers[i].get()), dirs[i].first.get(),
                          dirs[i].second.get(), root_path + "/" + plan.system_dirs[i]);
    }
    pivot_into(root.get());
    ::umask(old_umask);
    return fs;
}

} // namespace sbox::local

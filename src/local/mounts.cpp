#include "local/mounts.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <array>

#include "local/system.hpp"

namespace sbox::local {

namespace {

constexpr unsigned long kKernelFsFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;

void make_file(const std::string& path, mode_t mode) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode));
    if (!fd) throw_errno("create " + path);
}

void make_dir(const std::string& path, mode_t mode) {
    if (::mkdir(path.c_str(), mode) == -1 && errno != EEXIST) throw_errno("mkdir " + path);
}

void bind_read_only(const std::string& path) {
    mount_or_throw(path, path, nullptr, MS_BIND | MS_REC);
    mount_or_throw("", path, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | kKernelFsFlags);
}

} // namespace

void mount_or_throw(const std::string& source, const std::string& target, const char* fstype,
                    unsigned long flags, const std::string& data) {
    if (::mount(source.empty() ? nullptr : source.c_str(), target.c_str(), fstype, flags,
                data.empty() ? nullptr : data.c_str()) == -1) {
        int err = errno;
        std::string what = "mount";
        if (fstype) what += std::string(" -t ") + fstype;
        if (!source.empty()) what += " " + source;
        what += " on " + target;
        if (!data.empty()) what += " (" + data + ")";
        throw_errno(what, err);
    }
}

void make_mounts_private() {
    mount_or_throw("", "/", nullptr, MS_REC | MS_PRIVATE);
}

void mount_proc(const std::string& root) {
    std::string proc = root + "/proc";
    mount_or_throw("proc", proc, "proc", kKernelFsFlags);
    // Files that expose host kernel state are covered by /dev/null, directories by an empty read-only tmpfs.
    static const std::array masked = {"acpi",          "asound",     "interrupts",  "kcore",       "keys",
                                      "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi"};
    for (const char* name : masked) {
        std::string path = proc + "/" + name;
        struct stat st;
        if (::lstat(path.c_str(), &st) == -1) continue; // not every kernel has every file
        if (S_ISDIR(st.st_mode))
            mount_or_throw("tmpfs", path, "tmpfs", MS_RDONLY | kKernelFsFlags, "size=0,mode=0555");
        else
            mount_or_throw("/dev/null", path, nullptr, MS_BIND);
    }
    static const std::array read_only = {"bus", "fs", "irq", "sys", "sysrq-trigger"};
    for (const char* name : read_only) {
        std::string path = proc + "/" + name;
        if (::access(path.c_str(), F_OK) == 0) bind_read_only(path);
    }
}

void mount_sys(const std::string& root) {
    std::string sys = root + "/sys";
    mount_or_throw("sysfs", sys, "sysfs", MS_RDONLY | kKernelFsFlags);
    std::string firmware = sys + "/firmware";
    if (::access(firmware.c_str(), F_OK) == 0)
        mount_or_throw("tmpfs", firmware, "tmpfs", MS_RDONLY | kKernelFsFlags, "size=0,mode=0555");
}

void mount_dev(const std::string& root, const IdMap& idmap) {
    std::string dev = root + "/dev";
    mount_or_throw("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=65536k,nr_inodes=1024");
    // A user namespace cannot create device nodes: bind the host's harmless ones instead.
    static const std::array nodes = {"null", "zero", "full", "random", "urandom", "tty"};
    for (const char* name : nodes) {
        std::string target = dev + "/" + name;
        make_file(target, 0666);
        mount_or_throw(std::string("/dev/") + name, target, nullptr, MS_BIND);
    }
    static const std::array<std::array<const char*, 2>, 5> links = {{{"/proc/self/fd", "fd"},
                                                                     {"/proc/self/fd/0", "stdin"},
                                                                     {"/proc/self/fd/1", "stdout"},
                                                                     {"/proc/self/fd/2", "stderr"},
                                                                     {"pts/ptmx", "ptmx"}}};
    for (const auto& [target, name] : links) {
        std::string path = dev + "/" + name;
        if (::symlink(target, path.c_str()) == -1) throw_errno("symlink " + path);
    }
    make_dir(dev + "/pts", 0755);
    std::string pts_options = "newinstance,ptmxmode=0666,mode=0620";
    if (idmap.maps_gid(5)) pts_options += ",gid=5"; // the tty group, when the sandbox has it
    mount_or_throw("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC, pts_options);
    make_dir(dev + "/shm", 01777);
    mount_or_throw("shm", dev + "/shm", "tmpfs", kKernelFsFlags, "mode=1777,size=65536k");
    make_dir(dev + "/mqueue", 0755);
    mount_or_throw("mqueue", dev + "/mqueue", "mqueue", kKernelFsFlags);
}

void pivot_into(int root_fd) {
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching "." then removes it, without
    // needing a directory for the old root inside the sandbox.
    check(::fchdir(root_fd), "fchdir to the new root");
    check(::syscall(SYS_pivot_root, ".", "."), "pivot_root");
    check(::umount2(".", MNT_DETACH), "detach the old root");
    check(::chdir("/"), "chdir /");
}

} // namespace sbox::local

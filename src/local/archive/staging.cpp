// The staging directory of an extraction (staging.hpp).
#include "local/archive/staging.hpp"

#include <cstdio>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "local/archive/common.hpp"

namespace sbox::local::archive_impl {

namespace {

std::string random_suffix() {
    static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char bytes[6];
    if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes))
        throw_errno("getrandom for the staging directory's name");
    std::string out;
    for (unsigned char b : bytes)
        out += kChars[b % (sizeof kChars - 1)];
    return out;
}

std::string join(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : dir + "/" + name;
}

Fd open_dir_nofollow(int dir_fd, const std::string& name, const std::string& what) {
    Fd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) throw_errno("open directory " + what);
    return fd;
}

// A staging directory whose contents merge into an existing directory is only a husk, removed afterwards:
// make it writable so its entries can be moved out (and listable) even when the archive made it read-only
// and this process has no CAP_DAC_OVERRIDE.
void open_up(int fd) {
    ::fchmod(fd, 0700);
}

// Finds every clash between staging `src` and destination `dst`, both directories, before anything moves.
void check_merge(int src, int dst, const std::string& rel, dev_t staging_dev) {
    for (const std::string& name : list_dir(src, rel.empty() ? "." : rel)) {
        std::string path = join(rel, name);
        struct stat s {
        }, d{};
        check(::fstatat(src, name.c_str(), &s, AT_SYMLINK_NOFOLLOW), "stat the extracted " + path);
        if (::fstatat(dst, name.c_str(), &d, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) continue;
            throw_errno("stat " + path + " in the destination");
        }
        bool src_dir = S_ISDIR(s.st_mode), dst_dir = S_ISDIR(d.st_mode);
        if (src_dir && !dst_dir)
            throw Error(Error::Kind::conflict,
                        "cannot overwrite non-directory " + path + " with directory " + path);
        if (!src_dir && dst_dir)
            throw Error(Error::Kind::conflict,
                        "cannot overwrite directory " + path + " with non-directory " + path);
        if (!src_dir) continue;
        // rename(2) cannot cross file systems: the entries of a directory that would merge into a mount
        // point could not be moved there.
        if (d.st_dev != staging_dev)
            throw Error(Error::Kind::conflict, "cannot extract into " + path +
                                                   ": it is a mount point (another file system); extract "
                                                   "into it directly");
        Fd s_fd = open_dir_nofollow(src, name, "the extracted " + path);
        Fd d_fd = open_dir_nofollow(dst, name, path + " in the destination");
        open_up(s_fd.get());
        check_merge(s_fd.get(), d_fd.get(), path, staging_dev);
    }
}

void merge(int src, int dst, const std::string& rel) {
    for (const std::string& name : list_dir(src, rel.empty() ? "." : rel)) {
        std::string path = join(rel, name);
        struct stat s {
        }, d{};
        check(::fstatat(src, name.c_str(), &s, AT_SYMLINK_NOFOLLOW), "stat the extracted " + path);
        if (::fstatat(dst, name.c_str(), &d, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT) throw_errno("stat " + path + " in the destination");
            // Moving a directory to another parent rewrites its ".." entry, which takes write permission on
            // it: a read-only one is opened up for the move and closed again through an fd (the same inode
            // wherever it is then).
            Fd read_only;
            auto perm = static_cast<mode_t>(s.st_mode & 07777);
            if (S_ISDIR(s.st_mode) && (perm & S_IWUSR) == 0) {
                read_only = open_dir_nofollow(src, name, "the extracted " + path);
                check(::fchmod(read_only.get(), perm | S_IWUSR), "chmod the extracted " + path);
            }
            // NOREPLACE: should something appear there since the check, fail rather than clobber it.
            int rc = ::renameat2(src, name.c_str(), dst, name.c_str(), RENAME_NOREPLACE);
            if (rc != 0 && errno == EINVAL) rc = ::renameat(src, name.c_str(), dst, name.c_str());
            check(rc, "move " + path + " into place");
            if (read_only) check(::fchmod(read_only.get(), perm), "chmod " + path);
            continue;
        }
        if (S_ISDIR(s.st_mode) && S_ISDIR(d.st_mode)) {
            Fd s_fd = open_dir_nofollow(src, name, "the extracted " + path);
            Fd d_fd = open_dir_nofollow(dst, name, path + " in the destination");
            open_up(s_fd.get());
            merge(s_fd.get(), d_fd.get(), path);
            continue;
        }
        // Both non-directories (checked before): rename replaces the old one atomically.
        check(::renameat(src, name.c_str(), dst, name.c_str()), "move " + path + " into place");
    }
}

} // namespace

Staging::Staging(int dest_dir_fd) : dest_(dest_dir_fd) {
    for (int attempt = 0;; ++attempt) {
        name_ = ".sbox-extract-" + random_suffix();
        if (::mkdirat(dest_, name_.c_str(), 0700) == 0) break;
        if (errno == EEXIST && attempt < 100) continue;
        if (errno == ENOSPC || errno == EDQUOT)
            throw Error(Error::Kind::unavailable, "no space left on the destination for a staging directory");
        throw_errno("create the staging directory " + name_ + " in the destination");
    }
    fd_ = Fd(::openat(dest_, name_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd_) {
        int err = errno;
        ::unlinkat(dest_, name_.c_str(), AT_REMOVEDIR);
        removed_ = true;
        throw_errno("open the staging directory " + name_, err);
    }
}

Staging::~Staging() {
    if (removed_) return;
    fd_.reset();
    remove_tree(dest_, name_);
}

void Staging::move_into_place() {
    struct stat st {};
    check(::fstat(fd_.get(), &st), "stat the staging directory");
    check_merge(fd_.get(), dest_, "", st.st_dev);
    merge(fd_.get(), dest_, "");
    fd_.reset();
    remove_tree(dest_, name_);
    removed_ = true;
}

void remove_tree(int dir_fd, const std::string& name) noexcept {
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        ::unlinkat(dir_fd, name.c_str(), 0);
        return;
    }
    Fd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd) {
        open_up(fd.get());
        try {
            for (const std::string& child : list_dir(fd.get(), name))
                remove_tree(fd.get(), child);
        } catch (...) {
            // Best effort: what cannot be listed stays.
        }
    }
    ::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR);
}

} // namespace sbox::local::archive_impl

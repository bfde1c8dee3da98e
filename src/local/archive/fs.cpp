// File system helpers both directions use: listing a directory by fd, resolving beneath a root without
// following anything, and a chmod that cannot be redirected by a symlink.
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "local/archive/common.hpp"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 // Linux 6.6, the same number on every architecture
#endif

namespace sbox::local::archive_impl {

namespace {
struct DirClose {
    void operator()(DIR* d) const { ::closedir(d); }
};
} // namespace

std::vector<std::string> list_dir(int dir_fd, const std::string& what) {
    // fdopendir takes ownership of its fd, and the caller keeps using dir_fd for *at calls: list a copy.
    int copy = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) throw_errno("duplicate the descriptor of directory " + what);
    std::unique_ptr<DIR, DirClose> dir(::fdopendir(copy));
    if (!dir) {
        int err = errno;
        ::close(copy);
        throw_errno("open directory " + what, err);
    }
    // The copy shares dir_fd's file offset: start from the beginning whatever read it before.
    ::rewinddir(dir.get());
    std::vector<std::string> names;
    for (;;) {
        errno = 0;
        const dirent* ent = ::readdir(dir.get());
        if (ent == nullptr) {
            if (errno != 0) throw_errno("read directory " + what);
            break;
        }
        std::string_view name = ent->d_name;
        if (name != "." && name != "..") names.emplace_back(name);
    }
    return names;
}

int open_beneath(int root, const std::string& path, int flags) {
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    // RESOLVE_BENEATH answers EAGAIN when a rename or mount raced with the lookup: try again, a few times.
    for (int attempt = 0;; ++attempt) {
        long fd = ::syscall(SYS_openat2, root, path.c_str(), &how, sizeof how);
        if (fd >= 0) return static_cast<int>(fd);
        if (errno == ENOSYS)
            throw Error(
                Error::Kind::unavailable,
                "extracting an archive needs openat2(2), which this kernel lacks (Linux 5.6 or later)");
        if (errno != EAGAIN || attempt == 100) return -1;
    }
}

int chmod_nofollow(int dir_fd, const std::string& name, unsigned mode) {
    if (::syscall(SYS_fchmodat2, dir_fd, name.c_str(), mode, AT_SYMLINK_NOFOLLOW) == 0) return 0;
    if (errno != ENOSYS) return -1;
    // An older kernel: `name` was just created by the caller in a directory only this process can write,
    // so it is not a symlink.
    return ::fchmodat(dir_fd, name.c_str(), mode, 0);
}

} // namespace sbox::local::archive_impl

// Extraction: a tar stream from an untrusted source into a staging directory, every path resolved beneath
// it without following anything, then moved into place once the whole stream was read (staging.hpp).
#include <map>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "local/archive/common.hpp"
#include "local/archive/staging.hpp"

namespace sbox::local::archive_impl {

namespace {

// Where libarchive reads from. The errno of a failed read is kept to report it as such, not as corruption.
struct Source {
    int fd = -1;
    int err = 0;
    std::vector<char> buf = std::vector<char>(kChunk);
};

la_ssize_t read_from_fd(archive* a, void* data, const void** out) {
    auto* src = static_cast<Source*>(data);
    for (;;) {
        ssize_t n = ::read(src->fd, src->buf.data(), src->buf.size());
        if (n >= 0) {
            *out = src->buf.data();
            return n;
        }
        if (errno == EINTR) continue;
        src->err = errno;
        archive_set_error(a, errno, "read: %s", std::strerror(errno));
        return -1;
    }
}

struct Limits {
    std::uint64_t bytes = 0, entries = 0;
    bool bytes_from_fs = false, entries_from_fs = false; // the limit is the destination's free space
};

Limits limits_for(int dest_dir_fd, const ExtractOptions& options) {
    struct statvfs vfs {};
    check(::fstatvfs(dest_dir_fd, &vfs), "statvfs the destination");
    Limits l;
    l.bytes_from_fs = options.max_bytes == 0;
    l.entries_from_fs = options.max_entries == 0;
    // A file system that reports no blocks or no inodes at all does not count them: no limit then.
    l.bytes = options.max_bytes != 0 ? options.max_bytes
              : vfs.f_blocks == 0    ? UINT64_MAX
                                     : static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    l.entries = options.max_entries != 0 ? options.max_entries
                : vfs.f_files == 0       ? UINT64_MAX
                                         : static_cast<std::uint64_t>(vfs.f_favail);
    return l;
}

std::string join(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : dir + "/" + name;
}

// Marks a directory opaque for overlayfs. fsetxattr needs an fd opened for I/O; for an O_PATH fd (a
// destination handed in as such) the /proc/self/fd path reaches the same directory.
void set_opaque(int dir_fd, const std::string& what) {
    if (::fsetxattr(dir_fd, "user.overlay.opaque", "y", 1, 0) == 0) return;
    if (errno == EBADF && ::setxattr(fd_path(dir_fd).c_str(), "user.overlay.opaque", "y", 1, 0) == 0) return;
    throw_errno("mark " + what + " opaque (xattr user.overlay.opaque)");
}

class Extractor {
  public:
    Extractor(archive* a, Source& source, int staging_fd, const ExtractOptions& options, std::string prefix,
              Limits limits)
        : a_(a), source_(source), staging_(staging_fd), options_(options), prefix_(std::move(prefix)),
          limits_(limits) {
        for (const auto& a : options_.allowed)
            allowed_.push_back(normalize_name(a, "an allowed name"));
    }

    // Extracts every entry into the staging directory, then reads the input to its end.
    void run() {
        for (;;) {
            archive_entry* e = nullptr;
            int rc = archive_read_next_header(a_, &e);
            if (rc == ARCHIVE_EOF) {
                // libarchive also ends quietly when the stream stops exactly between two entries: only the
                // end-of-archive blocks (consumed past the last header position) tell a complete stream from
                // one cut there, e.g. by a writer that died.
                if (archive_filter_bytes(a_, 0) <= archive_read_header_position(a_))
                    throw Error(Error::Kind::invalid, "the archive is truncated or corrupt: it ends without "
                                                      "tar's end-of-archive blocks");
                break;
            }
            if (rc == ARCHIVE_WARN)
                warn(std::string("libarchive: ") + message()); // e.g. a name not in the locale's charset
            else if (rc != ARCHIVE_OK)
                fail_read();
            count_in_stream(e);
            entry(e);
            if (options_.stop_after_selected && selected_) return;
        }
        // The writer may still have bytes after the end-of-archive blocks (block padding, compressed
        // trailers): take them, so it never sees a broken pipe.
        for (;;) {
            ssize_t n = ::read(source_.fd, source_.buf.data(), source_.buf.size());
            if (n == 0) break;
            if (n < 0 && errno != EINTR) throw_errno("read the archive");
        }
    }

    // Directory modes, owners and times, applied once nothing more is written into them (a read-only
    // directory still receives its entries). Children before parents: they are reached through them.
    void finish_directories() {
        for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
            const auto& [path, meta] = *it;
            Fd fd(open_beneath(staging_, path, O_RDONLY | O_DIRECTORY));
            if (!fd) throw_errno("open the extracted directory " + path);
            if (!meta.from_archive) {
                check(::fchmod(fd.get(), 0755), "chmod directory " + path);
                continue;
            }
            if (options_.keep_owners)
                check(::fchown(fd.get(), owner(meta.uid, path, "uid"), owner(meta.gid, path, "gid")),
                      "chown directory " + path);
            check(::fchmod(fd.get(), mode(meta.perm)), "chmod directory " + path);
            check(::futimens(fd.get(), meta.times), "set the times of directory " + path);
        }
    }

    ArchiveStats stats;
    TreeDigest digest;
    bool opaque_root = false; // the archive marks its root opaque: for the destination itself

  private:
    struct DirMeta {
        bool from_archive = false; // else made for an entry below it: 0755, owned by this process
        std::uint64_t perm = 0755;
        std::int64_t uid = 0, gid = 0;
        timespec times[2]{{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    };

    std::string message() const {
        const char* m = archive_error_string(a_);
        return m != nullptr ? m : "unknown error";
    }
    void warn(const std::string& what) const {
        if (options_.warn) options_.warn(what);
    }
    [[noreturn]] void fail_read() const {
        if (source_.err != 0) throw_errno("read the archive", source_.err);
        if (archive_format(a_) == 0)
            throw Error(Error::Kind::invalid, "not a tar archive (" + message() + ")");
        throw Error(Error::Kind::invalid, "the archive is truncated or corrupt: " + message());
    }
    [[noreturn]] void too_much(bool bytes) const {
        std::uint64_t n = bytes ? limits_.bytes : limits_.entries;
        bool from_fs = bytes ? limits_.bytes_from_fs : limits_.entries_from_fs;
        throw Error(Error::Kind::unavailable,
                    "the archive expands beyond " + std::to_string(n) + (bytes ? " bytes" : " entries") +
                        (from_fs
                             ? std::string(", more than the destination has free ") +
                                   (bytes ? "space" : "inodes") + " (decompression bomb or disk too small)"
                             : std::string(", the limit set for this extraction (decompression bomb?)")));
    }
    // A failed write or create: no space is the destination's problem, not sbox's.
    [[noreturn]] static void fail_write(const std::string& what, const std::string& name, int err = errno) {
        if (err == ENOSPC || err == EDQUOT)
            throw Error(Error::Kind::unavailable, "no space left on the destination while writing " + name);
        throw_errno(what + " " + name, err);
    }

    unsigned mode(std::uint64_t perm) const {
        if (!(options_.keep_owners && options_.keep_setid))
            perm &= ~static_cast<std::uint64_t>(S_ISUID | S_ISGID);
        return static_cast<unsigned>(perm & 07777);
    }
    // An archived id plus id_shift, as chown takes it (-1 would mean "unchanged").
    unsigned owner(std::int64_t id, const std::string& name, const char* which) const {
        std::int64_t v = id + options_.id_shift;
        if (v < 0 || v >= static_cast<std::int64_t>(UINT32_MAX))
            throw Error(Error::Kind::invalid, "refusing entry '" + name + "': its " + which + " " +
                                                  std::to_string(id) + " shifted by " +
                                                  std::to_string(options_.id_shift) + " is out of range");
        return static_cast<unsigned>(v);
    }
    static void mtime_of(archive_entry* e, timespec times[2]) {
        times[0] = {0, UTIME_OMIT};
        times[1] = {0, UTIME_OMIT};
        if (archive_entry_mtime_is_set(e)) times[1] = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
    }

    // Removes the selection prefix; false for entries outside it and for its root.
    bool strip_prefix(std::string& name) const {
        if (prefix_.empty()) return !name.empty();
        // A prefix without a trailing slash names one file, which lands under its last component.
        if (options_.select_prefix.back() != '/') {
            if (name != prefix_) return false;
            name = name.substr(name.rfind('/') + 1);
            return true;
        }
        if (name.size() <= prefix_.size() || name.compare(0, prefix_.size(), prefix_) != 0 ||
            name[prefix_.size()] != '/')
            return false;
        name.erase(0, prefix_.size() + 1);
        return true;
    }
    std::string renamed(const std::string& name) const {
        if (options_.rename_from.empty()) return name;
        auto slash = name.find('/');
        if (name.compare(0, slash, options_.rename_from) != 0)
            throw Error(Error::Kind::invalid, "refusing entry '" + name + "': the archive should only hold " +
                                                  options_.rename_from);
        return options_.rename_to + (slash == std::string::npos ? "" : name.substr(slash));
    }

    [[noreturn]] static void refuse_path(int err, const std::string& at, const std::string& name) {
        if (err == ELOOP)
            throw Error(Error::Kind::invalid,
                        "extracting '" + name + "' refuses to write through the symlink '" + at + "'");
        if (err == ENOTDIR)
            throw Error(Error::Kind::invalid,
                        "cannot extract '" + name + "': '" + at + "' is not a directory");
        if (err == EXDEV)
            throw Error(Error::Kind::invalid, "cannot extract '" + name + "': '" + at + "' is a mount point");
        throw_errno("open directory " + at + " for " + name, err);
    }

    // The directory `parent` (relative to the staging directory) for entry `name`, made (0755) where
    // missing. The last one is cached: entries come directory by directory. A cached directory stays valid:
    // no later entry can replace a directory (make_room refuses it).
    int parent_fd(const std::string& parent, const std::string& name) {
        if (parent.empty()) return staging_;
        if (parent_ && parent_path_ == parent) return parent_.get();
        Fd fd(open_beneath(staging_, parent, O_PATH | O_DIRECTORY));
        if (!fd) {
            // Walk it component by component: to make what is missing, and to name what is in the way.
            int cur = staging_;
            std::string sofar;
            std::size_t start = 0;
            while (start <= parent.size()) {
                auto slash = parent.find('/', start);
                std::string comp =
                    parent.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
                start = slash == std::string::npos ? parent.size() + 1 : slash + 1;
                sofar = join(sofar, comp);
                Fd next(open_beneath(cur, comp, O_PATH | O_DIRECTORY));
                if (!next && errno == ENOENT) {
                    if (::mkdirat(cur, comp.c_str(), 0755) != 0 && errno != EEXIST)
                        fail_write("create directory", sofar);
                    dirs_.try_emplace(sofar);
                    next = Fd(open_beneath(cur, comp, O_PATH | O_DIRECTORY));
                }
                if (!next) refuse_path(errno, sofar, name);
                fd = std::move(next);
                cur = fd.get();
            }
        }
        parent_ = std::move(fd);
        parent_path_ = parent;
        return parent_.get();
    }

    // Clears the way for a new non-directory `leaf`: an earlier entry of the same name is replaced, unless
    // it is a directory (its contents would go with it).
    static void make_room(int parent, const std::string& leaf, const std::string& name) {
        struct stat st {};
        if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) return;
            throw_errno("stat " + name);
        }
        if (S_ISDIR(st.st_mode))
            throw Error(Error::Kind::invalid,
                        "refusing entry '" + name + "': the archive has it both as a directory and not");
        check(::unlinkat(parent, leaf.c_str(), 0), "replace " + name);
    }
    // Runs `create` (returning -1 with errno on failure), replacing an earlier entry of that name once.
    template <class F>
    static int create(int parent, const std::string& leaf, const std::string& name, const char* what,
                      F&& make) {
        int rc = make();
        if (rc < 0 && errno == EEXIST) {
            make_room(parent, leaf, name);
            rc = make();
        }
        if (rc < 0) fail_write(what, name);
        return rc;
    }

    // Every header, selected or not, against the stream's bounds and the allowed names.
    void count_in_stream(archive_entry* e) {
        ++stream_entries_;
        if (options_.max_stream_entries != 0 && stream_entries_ > options_.max_stream_entries)
            throw Error(Error::Kind::invalid, "the archive holds more than " +
                                                  std::to_string(options_.max_stream_entries) +
                                                  " entries, more than it should (a decompression bomb?)");
        std::uint64_t size = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
                                 ? static_cast<std::uint64_t>(archive_entry_size(e))
                                 : 0;
        if (options_.max_stream_bytes != 0 && size > options_.max_stream_bytes - stream_bytes_)
            throw Error(Error::Kind::invalid,
                        "the archive holds more than " + std::to_string(options_.max_stream_bytes) +
                            " bytes of data, more than it should (a decompression bomb?)");
        stream_bytes_ += size;
        if (options_.allowed.empty()) return;
        const char* raw = archive_entry_pathname(e);
        std::string name = raw != nullptr ? normalize_name(raw, "entry") : std::string();
        for (const auto& a : allowed_)
            if (name == a || name.starts_with(a + "/") || a.starts_with(name + "/")) return;
        std::string expected;
        for (std::size_t i = 0; i < allowed_.size(); ++i) {
            const std::string& a = allowed_[i];
            expected += (i == 0                     ? ""
                         : i + 1 == allowed_.size() ? " and "
                                                    : ", ") +
                        (a.size() > 24 ? a.substr(0, 20) + "..." : a);
        }
        throw Error(Error::Kind::invalid,
                    "refusing entry '" + name + "': only " + expected + " belong in this archive");
    }

    void count_entry() {
        if (stats.entries + 1 > limits_.entries) too_much(false);
        ++stats.entries;
    }

    // The entry's data, block by block as libarchive holds it (no copy): into `fd` when >= 0, checked
    // against the limit before each slice is written, and into the digest. The holes of a sparse entry
    // stay holes on disk and count as the zeros they read back as.
    void copy_data(int fd, const std::string& name, std::uint64_t size) {
        if (fd >= 0 && size > limits_.bytes - stats.bytes) too_much(true); // the header already says so
        std::uint64_t pos = 0;
        for (;;) {
            const void* block = nullptr;
            std::size_t len = 0;
            la_int64_t offset = 0;
            int rc = archive_read_data_block(a_, &block, &len, &offset);
            if (rc == ARCHIVE_EOF) break;
            if (rc != ARCHIVE_OK) fail_read();
            if (offset < 0 || static_cast<std::uint64_t>(offset) < pos || len > size ||
                static_cast<std::uint64_t>(offset) > size - len)
                throw Error(Error::Kind::invalid,
                            "the archive is truncated or corrupt: the data of " + name + " is out of order");
            hole(fd, static_cast<std::uint64_t>(offset) - pos);
            pos = static_cast<std::uint64_t>(offset);
            const char* data = static_cast<const char*>(block);
            // Slices small enough to stay in the CPU cache from the digest to the copy into the file.
            for (std::size_t done = 0; done < len;) {
                std::size_t n = std::min(kSlice, len - done);
                if (fd >= 0) {
                    if (n > limits_.bytes - stats.bytes) too_much(true);
                    if (!pwrite_all(fd, data + done, n, pos)) fail_write("write", name);
                    stats.bytes += n;
                }
                digest.data(data + done, n);
                done += n;
                pos += n;
            }
        }
        if (pos < size) { // a sparse entry ending in a hole
            hole(fd, size - pos);
            if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(size)) != 0) fail_write("write", name);
        }
    }
    void hole(int fd, std::uint64_t length) {
        static const std::vector<char> zeros(kSlice);
        if (fd >= 0) stats.bytes += length;
        for (; length > 0;) {
            std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(length, zeros.size()));
            digest.data(zeros.data(), n);
            length -= n;
        }
    }
    static bool pwrite_all(int fd, const char* data, std::size_t size, std::uint64_t offset) {
        while (size > 0) {
            ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
            if (n < 0) {
                if (errno == EINTR) continue;
                return false;
            }
            data += n;
            size -= static_cast<std::size_t>(n);
            offset += static_cast<std::uint64_t>(n);
        }
        return true;
    }

    // Owner, mode and times of a non-directory that cannot be opened (FIFO, whiteout): never through a
    // symlink.
    void metadata_at(int parent, const std::string& leaf, const std::string& name, const CanonicalEntry& c,
                     const timespec times[2]) const {
        if (options_.keep_owners)
            check(::fchownat(parent, leaf.c_str(), owner(c.uid, name, "uid"), owner(c.gid, name, "gid"),
                             AT_SYMLINK_NOFOLLOW),
                  "chown " + name);
        check(chmod_nofollow(parent, leaf, mode(c.perm)), "chmod " + name);
        check(::utimensat(parent, leaf.c_str(), times, AT_SYMLINK_NOFOLLOW), "set the times of " + name);
    }

    void regular_file(archive_entry* e, int parent, const std::string& leaf, const std::string& name,
                      const CanonicalEntry& c) {
        // Refuse a bomb on its header, before a byte is written.
        if (c.size > limits_.bytes - stats.bytes) too_much(true);
        Fd fd(create(parent, leaf, name, "create", [&] {
            return ::openat(parent, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        }));
        copy_data(fd.get(), name, c.size);
        timespec times[2];
        mtime_of(e, times);
        // chown before chmod: chown clears the set-id bits.
        if (options_.keep_owners)
            check(::fchown(fd.get(), owner(c.uid, name, "uid"), owner(c.gid, name, "gid")), "chown " + name);
        check(::fchmod(fd.get(), mode(c.perm)), "chmod " + name);
        check(::futimens(fd.get(), times), "set the times of " + name);
        if (::close(fd.release()) != 0 && errno != EINTR) fail_write("write", name);
    }

    void hard_link(int parent, const std::string& leaf, const std::string& name, const std::string& target) {
        std::string dest_target = renamed(target);
        if (dest_target == name) return; // a link to itself: nothing to do
        auto slash = dest_target.rfind('/');
        std::string tparent = slash == std::string::npos ? "" : dest_target.substr(0, slash);
        std::string tleaf = slash == std::string::npos ? dest_target : dest_target.substr(slash + 1);
        auto refuse = [&](const std::string& why) {
            throw Error(Error::Kind::invalid,
                        "refusing hard link '" + name + "' to '" + target + "': " + why);
        };
        Fd tdir;
        if (!tparent.empty()) {
            tdir = Fd(open_beneath(staging_, tparent, O_PATH | O_DIRECTORY));
            if (!tdir) refuse("its target is not a file extracted before it");
        }
        int tfd = tparent.empty() ? staging_ : tdir.get();
        struct stat st {};
        if (::fstatat(tfd, tleaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            refuse("its target is not a regular file extracted before it");
        // linkat without AT_SYMLINK_FOLLOW links the name itself, which was just checked to be a file.
        create(parent, leaf, name, "link",
               [&] { return ::linkat(tfd, tleaf.c_str(), parent, leaf.c_str(), 0); });
    }

    void directory(archive_entry* e, int parent, const std::string& leaf, const std::string& name,
                   const CanonicalEntry& c) {
        // 0700 while its entries are written; its own mode comes in finish_directories.
        if (::mkdirat(parent, leaf.c_str(), 0700) != 0) {
            if (errno != EEXIST) fail_write("create directory", name);
            struct stat st {};
            check(::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW), "stat " + name);
            if (!S_ISDIR(st.st_mode)) {
                // An earlier non-directory of that name gives way, as in tar.
                check(::unlinkat(parent, leaf.c_str(), 0), "replace " + name);
                if (::mkdirat(parent, leaf.c_str(), 0700) != 0) fail_write("create directory", name);
            }
        }
        DirMeta& meta = dirs_[name];
        meta.from_archive = true;
        meta.perm = c.perm;
        meta.uid = c.uid;
        meta.gid = c.gid;
        mtime_of(e, meta.times);
    }

    // ".wh.NAME" in overlay mode: a whiteout for NAME, or ".wh..wh..opq": its directory is opaque.
    void whiteout(archive_entry* e, int parent, const std::string& parent_path, const std::string& leaf,
                  const std::string& name, const CanonicalEntry& c) {
        if (leaf == ".wh..wh..opq") {
            if (parent_path.empty()) {
                opaque_root = true;
            } else {
                Fd dir(open_beneath(staging_, parent_path, O_RDONLY | O_DIRECTORY));
                if (!dir) throw_errno("open directory " + parent_path);
                set_opaque(dir.get(), parent_path);
            }
            return;
        }
        if (leaf.starts_with(".wh..wh.")) { // other aufs/overlay bookkeeping: meaningless here
            warn("skipped overlay metadata entry " + name);
            return;
        }
        std::string real = leaf.substr(4);
        check_component(real, "the whiteout of");
        std::string real_name = join(parent_path, real);
        create(parent, real, real_name, "create the whiteout", [&] {
            int rc = ::mknodat(parent, real.c_str(), S_IFCHR | 0600, makedev(0, 0));
            struct statfs fs {};
            if (rc != 0 && errno == EPERM && ::fstatfs(parent, &fs) == 0 &&
                fs.f_type == OVERLAYFS_SUPER_MAGIC)
                throw Error(Error::Kind::unavailable,
                            "cannot record the deletion of " + real_name +
                                ": the destination is on overlayfs, which refuses to create whiteouts (as "
                                "in a container or chroot whose root is an overlay); keep sbox's data on "
                                "another file system (a volume, a tmpfs; see SBOX_ROOT)");
            return rc;
        });
        timespec times[2];
        mtime_of(e, times);
        metadata_at(parent, real, real_name, c, times);
    }

    void entry(archive_entry* e) {
        const char* raw = archive_entry_pathname(e);
        if (raw == nullptr) throw Error(Error::Kind::invalid, "refusing an entry without a usable name");
        std::string rel = normalize_name(raw, "entry");
        if (!strip_prefix(rel)) return; // not selected (its data is skipped by the next header)
        selected_ = true;

        CanonicalEntry c;
        c.name = rel;
        c.perm = archive_entry_perm(e) & 07777;
        c.uid = archive_entry_uid(e);
        c.gid = archive_entry_gid(e);
        if (archive_entry_mtime_is_set(e)) {
            c.mtime = archive_entry_mtime(e);
            c.mtime_nsec = static_cast<std::uint64_t>(archive_entry_mtime_nsec(e));
        }
        std::string link_rel;
        const char* hardlink = archive_entry_hardlink(e);
        if (hardlink != nullptr) {
            c.type = 'h';
            link_rel = normalize_name(hardlink, "hard link target");
            if (!strip_prefix(link_rel))
                throw Error(Error::Kind::invalid, "refusing hard link '" + rel + "' to '" + hardlink +
                                                      "': its target is outside the extracted entries");
            c.target = link_rel;
        } else {
            switch (archive_entry_filetype(e)) {
            case AE_IFREG:
                c.type = 'f';
                c.size = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
                             ? static_cast<std::uint64_t>(archive_entry_size(e))
                             : 0;
                break;
            case AE_IFDIR:
                c.type = 'd';
                break;
            case AE_IFLNK: {
                c.type = 'l';
                const char* target = archive_entry_symlink(e);
                c.target = target != nullptr ? target : "";
                break;
            }
            case AE_IFCHR:
            case AE_IFBLK:
                c.type = archive_entry_filetype(e) == AE_IFCHR ? 'c' : 'b';
                c.rdev_major = archive_entry_rdevmajor(e);
                c.rdev_minor = archive_entry_rdevminor(e);
                break;
            case AE_IFIFO:
                c.type = 'p';
                break;
            default:
                warn("skipped entry " + rel + " of a type tar cannot restore");
                return;
            }
        }
        digest.entry(c);

        std::string name = renamed(rel);
        auto slash = name.rfind('/');
        std::string parent_path = slash == std::string::npos ? "" : name.substr(0, slash);
        std::string leaf = slash == std::string::npos ? name : name.substr(slash + 1);

        if ((c.type == 'c' || c.type == 'b') && !(options_.overlay && leaf.starts_with(".wh."))) {
            // Device nodes would give the sandbox (or the host) access to hardware: never created.
            warn("skipped device node " + name);
            return;
        }
        count_entry();
        int parent = parent_fd(parent_path, name);
        if (options_.overlay && leaf.starts_with(".wh.")) {
            if (c.type == 'f') copy_data(-1, name, c.size); // into the digest only
            whiteout(e, parent, parent_path, leaf, name, c);
            return;
        }
        switch (c.type) {
        case 'f':
            regular_file(e, parent, leaf, name, c);
            return;
        case 'h':
            hard_link(parent, leaf, name, link_rel);
            return;
        case 'd':
            directory(e, parent, leaf, name, c);
            return;
        case 'l': {
            if (c.target.empty())
                throw Error(Error::Kind::invalid, "refusing symlink '" + name + "' to nothing");
            std::string target(c.target);
            create(parent, leaf, name, "create the symlink",
                   [&] { return ::symlinkat(target.c_str(), parent, leaf.c_str()); });
            if (options_.keep_owners)
                check(::fchownat(parent, leaf.c_str(), owner(c.uid, name, "uid"), owner(c.gid, name, "gid"),
                                 AT_SYMLINK_NOFOLLOW),
                      "chown " + name);
            timespec times[2];
            mtime_of(e, times);
            check(::utimensat(parent, leaf.c_str(), times, AT_SYMLINK_NOFOLLOW), "set the times of " + name);
            return;
        }
        case 'p': {
            create(parent, leaf, name, "create the FIFO",
                   [&] { return ::mkfifoat(parent, leaf.c_str(), 0600); });
            timespec times[2];
            mtime_of(e, times);
            metadata_at(parent, leaf, name, c, times);
            return;
        }
        default:
            return;
        }
    }

    archive* a_;
    Source& source_;
    int staging_;
    const ExtractOptions& options_;
    std::string prefix_; // select_prefix in canonical form (no trailing slash); "" selects everything
    std::vector<std::string> allowed_; // options_.allowed in canonical form
    std::uint64_t stream_entries_ = 0, stream_bytes_ = 0;
    bool selected_ = false; // an entry was selected (stop_after_selected)
    Limits limits_;
    std::map<std::string, DirMeta> dirs_; // every directory made, by its path below the staging directory
    Fd parent_;
    std::string parent_path_;
};

} // namespace

ArchiveStats extract_archive(int in_fd, int dest_dir_fd, const ExtractOptions& options) {
    if (options.rename_from.empty() != options.rename_to.empty())
        throw Error(Error::Kind::invalid, "rename_from and rename_to go together");
    if (!options.rename_from.empty()) {
        check_component(options.rename_from, "rename_from");
        check_component(options.rename_to, "rename_to");
    }
    std::string prefix = options.select_prefix.empty()
                             ? std::string()
                             : normalize_name(options.select_prefix, "select_prefix");
    Limits limits = limits_for(dest_dir_fd, options);

    Utf8Locale utf8;
    Source source; // before the reader, whose callback uses it
    source.fd = in_fd;
    ReadPtr reader(archive_read_new());
    archive* a = reader.get();
    if (a == nullptr) throw Error(Error::Kind::internal, "libarchive: cannot allocate a reader");
    // The compressions the contract names, each detected; no filter that would run an external program.
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_zstd(a);
    // The tar family only (ustar, pax, GNU): no zip, cpio or others to trust.
    archive_read_support_format_tar(a);

    Staging staging(dest_dir_fd);
    Extractor x(a, source, staging.fd(), options, prefix, limits);
    if (archive_read_open(a, &source, nullptr, &read_from_fd, nullptr) != ARCHIVE_OK) {
        if (source.err != 0) throw_errno("read the archive", source.err);
        const char* m = archive_error_string(a);
        throw Error(Error::Kind::invalid,
                    std::string("not a tar archive (") + (m != nullptr ? m : "?") + ")");
    }
    x.run();
    x.finish_directories();
    staging.move_into_place();
    if (x.opaque_root) set_opaque(dest_dir_fd, "the destination");
    ArchiveStats stats = x.stats;
    stats.digests = {x.digest.hex()};
    return stats;
}

} // namespace sbox::local::archive_impl

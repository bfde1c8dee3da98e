// Writing: a pax stream of directory trees, walked with *at system calls that never follow a symlink below a
// source and never enter another file system, in sorted name order so equal trees give equal streams.
#include <algorithm>
#include <csignal>
#include <ctime>
#include <map>
#include <optional>
#include <utility>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "local/archive/common.hpp"

namespace sbox::local::archive_impl {

namespace {

constexpr std::int64_t kMaxArchivedId = 65535;
constexpr std::size_t kBlock = 64 * 1024; // bytes handed to write(2) at once: good throughput on pipes

// SIGPIPE blocked in this thread while writing: a reader that goes away makes write(2) fail with EPIPE,
// reported as an error, instead of killing the process. A SIGPIPE raised meanwhile is consumed before the
// old mask comes back, unless one was pending already (then it is not ours).
class SigpipeBlock {
  public:
    SigpipeBlock() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        was_pending_ = pending();
        pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    }
    ~SigpipeBlock() {
        if (!was_pending_ && pending()) {
            timespec zero{};
            sigtimedwait(&pipe_, nullptr, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeBlock(const SigpipeBlock&) = delete;
    SigpipeBlock& operator=(const SigpipeBlock&) = delete;

  private:
    static bool pending() {
        sigset_t set;
        sigemptyset(&set);
        return sigpending(&set) == 0 && sigismember(&set, SIGPIPE) == 1;
    }
    sigset_t pipe_{}, old_{};
    bool was_pending_ = false;
};

// Where libarchive's blocks go. A failed write is not reported to libarchive: its errno is kept here (EPIPE:
// the reader went away) and checked after every call, and from then on everything is dropped. libarchive
// 3.6 cannot free a writer whose output failed (its buffers leak), and a stream that failed must not get
// the end-of-archive blocks that would make it look complete: so a failed writer is closed normally, into
// the void (see ~Writer).
struct Sink {
    int fd = -1;
    int err = 0;
    bool discard = false;
};

la_ssize_t write_to_fd(archive*, void* data, const void* buffer, size_t length) {
    auto* sink = static_cast<Sink*>(data);
    if (sink->err != 0 || sink->discard) return static_cast<la_ssize_t>(length);
    for (;;) {
        ssize_t n = ::write(sink->fd, buffer, length);
        if (n >= 0) return n; // libarchive calls again for the rest of a short write
        if (errno == EINTR) continue;
        sink->err = errno;
        return static_cast<la_ssize_t>(length);
    }
}

// What statx says about one file.
struct Node {
    unsigned mode = 0;
    std::uint64_t ino = 0;
    dev_t dev = 0;
    std::uint32_t nlink = 0;
    std::int64_t uid = 0, gid = 0;
    std::uint64_t size = 0;
    std::int64_t mtime = 0;
    std::uint32_t mtime_nsec = 0;
    std::uint32_t rdev_major = 0, rdev_minor = 0;
    std::uint64_t mnt_id = 0;
    bool has_mnt_id = false;
};

bool stat_node(int dir_fd, const char* name, int flags, Node& out) {
    struct statx sx {};
    if (::statx(dir_fd, name, flags | AT_NO_AUTOMOUNT, STATX_BASIC_STATS | STATX_MNT_ID, &sx) != 0)
        return false;
    out.mode = sx.stx_mode;
    out.ino = sx.stx_ino;
    out.dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    out.nlink = sx.stx_nlink;
    out.uid = sx.stx_uid;
    out.gid = sx.stx_gid;
    out.size = sx.stx_size;
    out.mtime = sx.stx_mtime.tv_sec;
    out.mtime_nsec = sx.stx_mtime.tv_nsec;
    out.rdev_major = sx.stx_rdev_major;
    out.rdev_minor = sx.stx_rdev_minor;
    out.has_mnt_id = (sx.stx_mask & STATX_MNT_ID) != 0;
    out.mnt_id = sx.stx_mnt_id;
    return true;
}

// A mount point below the source: the mount id where the kernel reports one (st_dev differs between the
// files of one overlayfs mount), else the device.
bool other_mount(const Node& root, const Node& n) {
    if (root.has_mnt_id && n.has_mnt_id) return root.mnt_id != n.mnt_id;
    return root.dev != n.dev;
}

std::string join(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : dir + "/" + name;
}

// "a/b/.wh.c" for "a/b/c": the OCI whiteout of a name.
std::string whiteout_name(const std::string& path) {
    auto slash = path.rfind('/');
    std::size_t leaf = slash == std::string::npos ? 0 : slash + 1;
    return path.substr(0, leaf) + ".wh." + path.substr(leaf);
}

std::string read_link(int dir_fd, const std::string& name, const std::string& path, std::uint64_t hint) {
    // st_size is the target's length on most file systems but 0 on some (procfs): grow until it fits.
    std::string buf(std::max<std::size_t>(hint + 1, 256), '\0');
    for (;;) {
        ssize_t n = ::readlinkat(dir_fd, name.c_str(), buf.data(), buf.size());
        if (n < 0) throw_errno("read the symlink " + path);
        if (static_cast<std::size_t>(n) < buf.size()) {
            buf.resize(static_cast<std::size_t>(n));
            return buf;
        }
        buf.resize(buf.size() * 2);
    }
}

// Opens `name` and checks it is still the file that was stat'ed (the tree may be live).
Fd open_same(int dir_fd, const std::string& name, const Node& st, int flags, const std::string& path) {
    Fd fd(::openat(dir_fd, name.c_str(), flags | O_CLOEXEC | O_NOCTTY));
    if (!fd) return fd;
    struct stat now {};
    check(::fstat(fd.get(), &now), "stat " + path);
    if (now.st_ino != st.ino || now.st_dev != st.dev || (now.st_mode & S_IFMT) != (st.mode & S_IFMT))
        throw Error(Error::Kind::conflict, path + " changed while it was being archived");
    return fd;
}

// overlayfs marks a directory that hides the lower layers' one with this xattr = "y".
bool is_opaque(int dir_fd, const std::string& path) {
    for (const char* attr : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
        char value[2] = {};
        ssize_t n = ::fgetxattr(dir_fd, attr, value, sizeof value);
        if (n == 1 && value[0] == 'y') return true;
        if (n < 0 && errno != ENODATA && errno != ENOTSUP && errno != EPERM && errno != EACCES &&
            errno != ERANGE)
            throw_errno(std::string("read the xattr ") + attr + " of " + path);
    }
    return false;
}

class Writer {
  public:
    Writer(int out_fd, const WriteOptions& options)
        : options_(options), a_(archive_write_new()), buf_(kSlice) {
        if (!a_) throw Error(Error::Kind::internal, "libarchive: cannot allocate a writer");
        sink_.fd = out_fd;
        entry_.reset(archive_entry_new());
        if (!entry_) throw Error(Error::Kind::internal, "libarchive: cannot allocate an entry");
        archive* a = a_.get();
        // Full pax, not pax_restricted: the restricted variant drops the nanoseconds of mtime.
        setup(archive_write_set_format_pax(a), "select the pax format");
        if (options.zstd) {
            setup(archive_write_add_filter_zstd(a), "add zstd compression");
            if (archive_write_set_filter_option(a, "zstd", "compression-level",
                                                std::to_string(options.zstd_level).c_str()) != ARCHIVE_OK)
                throw Error(Error::Kind::invalid, "zstd compression level " +
                                                      std::to_string(options.zstd_level) + ": " + message());
        }
        setup(archive_write_set_bytes_per_block(a, static_cast<int>(kBlock)), "set the block size");
        // No padding of the last block beyond tar's own: the stream ends with its end-of-archive blocks.
        setup(archive_write_set_bytes_in_last_block(a, 1), "set the last block size");
        setup(archive_write_open(a, &sink_, nullptr, &write_to_fd, nullptr), "start the archive");
    }

    void add_file(const std::string& name, const std::string& content) {
        std::string path = normalize_name(name, "file name");
        if (path.empty()) throw Error(Error::Kind::invalid, "a file written to the archive needs a name");
        timespec now{};
        ::clock_gettime(CLOCK_REALTIME, &now);
        CanonicalEntry c;
        c.name = path;
        c.type = 'f';
        c.perm = 0644;
        c.mtime = now.tv_sec;
        c.size = content.size();
        put(nullptr, path, c, {});
        for (std::size_t off = 0; off < content.size(); off += kSlice) {
            std::size_t n = std::min(kSlice, content.size() - off);
            write_data(content.data() + off, n, path);
        }
        stats_.bytes += content.size();
    }

    // Writes one source; returns its digest ("" without WriteOptions::digest).
    std::string add_source(const ArchiveSource& source) {
        if (source.dir_fd < 0) throw Error(Error::Kind::invalid, "an archive source needs a directory fd");
        std::string prefix =
            normalize_name(source.archive_name.empty() ? "." : source.archive_name, "archive name");
        Tree tree;
        if (options_.digest) tree.digest = &tree.digest_storage.emplace();
        Fd root_fd;
        std::string display = source.name;
        if (source.name == ".") {
            root_fd = Fd(::openat(source.dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            if (!root_fd) throw_errno("open the directory to archive");
            if (!stat_node(root_fd.get(), "", AT_EMPTY_PATH, tree.root))
                throw_errno("stat the directory to archive");
        } else {
            check_component(source.name, "the file to archive");
            if (!stat_node(source.dir_fd, source.name.c_str(), source.follow ? 0 : AT_SYMLINK_NOFOLLOW,
                           tree.root))
                throw_errno("archive " + source.name);
        }
        const Node& st = tree.root;
        if (S_ISDIR(st.mode)) {
            if (!root_fd) {
                int nofollow = source.follow ? 0 : O_NOFOLLOW;
                root_fd =
                    open_same(source.dir_fd, source.name, st, O_RDONLY | O_DIRECTORY | nofollow, display);
                if (!root_fd) throw_errno("open directory " + display);
            }
            // The root is the container of the tree: written when it has a name, never part of the digest
            // (extract() leaves out the root of select_prefix the same way).
            if (!prefix.empty()) put(nullptr, prefix, meta(st, prefix, {}, 'd'), {});
            directory_contents(tree, root_fd.get(), prefix, {}, &source.exclude, st);
        } else {
            if (prefix.empty())
                throw Error(Error::Kind::invalid, source.name + " is not a directory: it needs a name in the "
                                                                "archive (archive_name)");
            node(tree, source.dir_fd, source.name, st, prefix, prefix, source.follow);
        }
        return tree.digest != nullptr ? tree.digest->hex() : std::string();
    }

    ~Writer() {
        if (closed_) return;
        sink_.discard = true;
        archive_write_close(a_.get());
    }
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    ArchiveStats finish() {
        closed_ = true;
        if (archive_write_close(a_.get()) != ARCHIVE_OK || sink_.err != 0) fail("finishing the archive");
        return stats_;
    }

  private:
    struct Tree {
        Node root;
        std::optional<TreeDigest>
            digest_storage; // only with WriteOptions::digest: it costs a buffer and a thread
        TreeDigest* digest = nullptr;
        // Regular files with more than one link, by (device, inode): their path in the archive and in the
        // digest, so the next names become hard links to the first.
        std::map<std::pair<dev_t, std::uint64_t>, std::pair<std::string, std::string>> links;
    };

    std::string message() const {
        const char* m = archive_error_string(a_.get());
        return m != nullptr ? m : "unknown libarchive error";
    }
    void setup(int rc, const char* what) const {
        if (rc != ARCHIVE_OK)
            throw Error(Error::Kind::internal, std::string("libarchive: cannot ") + what + ": " + message());
    }
    [[noreturn]] void fail(const std::string& what) const {
        // internal: in sbox's own pipelines the reader's failure is the one to report (copy.cpp's finish,
        // snapshot.cpp's transfer give way to it on this kind).
        if (sink_.err == EPIPE)
            throw Error(Error::Kind::internal, "the reader went away while " + what + " (broken pipe)");
        if (sink_.err != 0) throw_errno("write the archive (" + what + ")", sink_.err);
        throw Error(Error::Kind::internal, what + ": " + message());
    }

    std::int64_t shifted(std::int64_t id, const std::string& path, const char* which) const {
        std::int64_t v = id + options_.id_shift;
        if (v < 0 || v > kMaxArchivedId)
            throw Error(Error::Kind::invalid, "cannot archive " + path + ": its " + which + " " +
                                                  std::to_string(id) + " shifted by " +
                                                  std::to_string(options_.id_shift) + " is " +
                                                  std::to_string(v) + ", outside 0..65535");
        return v;
    }

    // The entry for `st` as written: ids shifted and checked.
    CanonicalEntry meta(const Node& st, std::string_view rel, const std::string& path, char type) const {
        CanonicalEntry c;
        c.name = rel;
        c.type = type;
        c.perm = st.mode & 07777;
        const std::string& who = path.empty() ? std::string(rel) : path;
        c.uid = shifted(st.uid, who, "uid");
        c.gid = shifted(st.gid, who, "gid");
        c.mtime = st.mtime;
        c.mtime_nsec = st.mtime_nsec;
        if (type == 'c' || type == 'b') {
            c.rdev_major = st.rdev_major;
            c.rdev_minor = st.rdev_minor;
        }
        return c;
    }

    // Writes a header; `link` is the symlink target or the hard link's target path in the archive. With a
    // digest, the entry counts in it as `c`.
    void put(TreeDigest* digest, const std::string& path, const CanonicalEntry& c, const std::string& link) {
        archive_entry* e = entry_.get();
        archive_entry_clear(e);
        archive_entry_copy_pathname(e, path.c_str());
        switch (c.type) {
        case 'd':
            archive_entry_set_filetype(e, AE_IFDIR);
            break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_copy_symlink(e, link.c_str());
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_copy_hardlink(e, link.c_str());
            break;
        case 'c':
        case 'b':
            archive_entry_set_filetype(e, c.type == 'c' ? AE_IFCHR : AE_IFBLK);
            archive_entry_set_rdevmajor(e, static_cast<dev_t>(c.rdev_major));
            archive_entry_set_rdevminor(e, static_cast<dev_t>(c.rdev_minor));
            break;
        case 'p':
            archive_entry_set_filetype(e, AE_IFIFO);
            break;
        default:
            archive_entry_set_filetype(e, AE_IFREG);
            break;
        }
        archive_entry_set_perm(e, static_cast<mode_t>(c.perm));
        archive_entry_set_uid(e, c.uid);
        archive_entry_set_gid(e, c.gid);
        archive_entry_set_mtime(e, c.mtime, static_cast<long>(c.mtime_nsec));
        archive_entry_set_size(e, static_cast<la_int64_t>(c.size));
        // ARCHIVE_WARN: a name not in UTF-8, written as the bytes it is (pax hdrcharset=BINARY).
        if (archive_write_header(a_.get(), e) < ARCHIVE_WARN || sink_.err != 0)
            fail("writing the header of " + path);
        if (digest != nullptr) digest->entry(c);
        ++stats_.entries;
    }

    void write_data(const char* data, std::size_t size, const std::string& path) {
        while (size > 0) {
            la_ssize_t n = archive_write_data(a_.get(), data, size);
            if (n <= 0 || sink_.err != 0) fail("writing the data of " + path);
            data += n;
            size -= static_cast<std::size_t>(n);
        }
    }

    // Streams exactly `size` bytes of `fd` in chunks (memory stays bounded for any file size). A file that
    // shrank meanwhile is padded with zeros, as the header already promised `size` bytes; one that grew is
    // cut at `size`.
    void copy_file(TreeDigest* digest, int fd, std::uint64_t size, const std::string& path) {
        std::uint64_t left = size;
        bool eof = false;
        while (left > 0) {
            std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf_.size()));
            ssize_t n = 0;
            if (!eof) n = ::read(fd, buf_.data(), want);
            if (n < 0) {
                if (errno == EINTR) continue;
                throw_errno("read " + path);
            }
            if (n == 0) {
                eof = true;
                std::fill_n(buf_.data(), want, '\0');
                n = static_cast<ssize_t>(want);
            }
            if (digest != nullptr) digest->data(buf_.data(), static_cast<std::size_t>(n));
            write_data(buf_.data(), static_cast<std::size_t>(n), path);
            left -= static_cast<std::uint64_t>(n);
        }
        stats_.bytes += size;
    }

    // The entries below a directory (already written), sorted by name; `exclude` only for the source's root.
    void directory_contents(Tree& tree, int dir_fd, const std::string& path, const std::string& rel,
                            const std::vector<std::string>* exclude, const Node& st) {
        if (options_.overlay && is_opaque(dir_fd, path.empty() ? "." : path)) {
            std::string marker = join(path, ".wh..wh..opq");
            std::string marker_rel = join(rel, ".wh..wh..opq");
            CanonicalEntry c = meta(st, marker_rel, marker, 'f');
            c.perm = 0644;
            put(tree.digest, marker, c, {});
        }
        std::vector<std::string> names = list_dir(dir_fd, path.empty() ? "." : path);
        std::sort(names.begin(), names.end());
        for (const std::string& name : names) {
            if (exclude != nullptr && std::find(exclude->begin(), exclude->end(), name) != exclude->end())
                continue;
            Node child;
            std::string child_path = join(path, name);
            if (!stat_node(dir_fd, name.c_str(), AT_SYMLINK_NOFOLLOW, child)) {
                if (errno == ENOENT) continue; // removed since it was listed: the tree may be live
                throw_errno("stat " + child_path);
            }
            node(tree, dir_fd, name, child, child_path, join(rel, name), false);
        }
    }

    // One file of the tree: `path` is its name in the archive, `rel` its name in the digest.
    void node(Tree& tree, int dir_fd, const std::string& name, const Node& st, const std::string& path,
              const std::string& rel, bool follow) {
        int nofollow = follow ? 0 : O_NOFOLLOW;
        switch (st.mode & S_IFMT) {
        case S_IFDIR: {
            put(tree.digest, path, meta(st, rel, path, 'd'), {});
            if (other_mount(tree.root, st)) return; // a mount point: recorded, never entered
            Fd fd = open_same(dir_fd, name, st, O_RDONLY | O_DIRECTORY | nofollow, path);
            if (!fd) {
                if (errno == ENOENT) return;
                throw_errno("open directory " + path);
            }
            directory_contents(tree, fd.get(), path, rel, nullptr, st);
            return;
        }
        case S_IFREG: {
            auto key = std::make_pair(st.dev, st.ino);
            if (st.nlink > 1) {
                if (auto it = tree.links.find(key); it != tree.links.end()) {
                    CanonicalEntry c = meta(st, rel, path, 'h');
                    c.target = it->second.second;
                    put(tree.digest, path, c, it->second.first);
                    return;
                }
            }
            // O_NONBLOCK: should the name have become a FIFO since the stat, open must not wait for a writer.
            Fd fd = open_same(dir_fd, name, st, O_RDONLY | O_NONBLOCK | nofollow, path);
            if (!fd) {
                if (errno == ENOENT) return;
                throw_errno("open " + path);
            }
            if (st.nlink > 1) tree.links.emplace(key, std::make_pair(path, rel));
            CanonicalEntry c = meta(st, rel, path, 'f');
            c.size = st.size;
            put(tree.digest, path, c, {});
            copy_file(tree.digest, fd.get(), st.size, path);
            return;
        }
        case S_IFLNK: {
            std::string target = read_link(dir_fd, name, path, st.size);
            CanonicalEntry c = meta(st, rel, path, 'l');
            c.target = target;
            put(tree.digest, path, c, target);
            return;
        }
        case S_IFIFO:
            put(tree.digest, path, meta(st, rel, path, 'p'), {});
            return;
        case S_IFCHR:
            if (options_.overlay && st.rdev_major == 0 && st.rdev_minor == 0) {
                // An overlayfs whiteout: an empty ".wh.NAME" file, as in OCI image layers.
                std::string wh_path = whiteout_name(path), wh_rel = whiteout_name(rel);
                put(tree.digest, wh_path, meta(st, wh_rel, wh_path, 'f'), {});
                return;
            }
            put(tree.digest, path, meta(st, rel, path, 'c'), {});
            return;
        case S_IFBLK:
            put(tree.digest, path, meta(st, rel, path, 'b'), {});
            return;
        default:
            return; // a socket: tar cannot represent it, and it means nothing once its server is gone
        }
    }

    const WriteOptions& options_;
    Sink sink_; // before a_: libarchive's callback uses it until a_ is freed
    WritePtr a_;
    bool closed_ = false;
    EntryPtr entry_;
    std::vector<char> buf_;
    ArchiveStats stats_;
};

} // namespace

ArchiveStats write_archive(const std::vector<ArchiveSource>& sources, int out_fd,
                           const WriteOptions& options) {
    SigpipeBlock block; // outlives the writer, whose destruction may still write
    Utf8Locale utf8;
    Writer writer(out_fd, options);
    for (const auto& [name, content] : options.files)
        writer.add_file(name, content);
    std::vector<std::string> digests;
    for (const ArchiveSource& source : sources) {
        std::string digest = writer.add_source(source);
        if (options.digest) digests.push_back(std::move(digest));
    }
    ArchiveStats stats = writer.finish();
    stats.digests = std::move(digests);
    return stats;
}

} // namespace sbox::local::archive_impl

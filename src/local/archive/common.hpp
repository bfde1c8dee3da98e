// What the files of libsbox-archive.so share: libarchive handle ownership, the canonical tree digest, entry
// name rules and the two halves of the Archiver (write.cpp, extract.cpp).
#pragma once

#include <cstdint>
#include <locale.h>
#include <memory>
#include <pthread.h>
#include <string>
#include <string_view>
#include <vector>

#include <archive.h>
#include <archive_entry.h>
#include <nettle/sha2.h>

#include "local/archive.hpp"
#include "local/system.hpp"

namespace sbox::local::archive_impl {

// The input is read in blocks of kChunk; file data moves in slices of kSlice, small enough to stay in the CPU
// cache between the digest and the copy. Memory stays bounded whatever the size of a file.
inline constexpr std::size_t kChunk = 1 << 20;
inline constexpr std::size_t kSlice = 256 << 10;

struct EntryFree {
    void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using EntryPtr = std::unique_ptr<archive_entry, EntryFree>;

struct ReadFree {
    void operator()(archive* a) const { archive_read_free(a); }
};
using ReadPtr = std::unique_ptr<archive, ReadFree>;

struct WriteFree {
    void operator()(archive* a) const { archive_write_free(a); }
};
using WritePtr = std::unique_ptr<archive, WriteFree>;

// Names in tar headers are bytes; libarchive converts pax's UTF-8 names from and to the current locale's
// charset, and in the C locale (sbox never calls setlocale) every non-ASCII name fails that conversion:
// warnings when reading, and a "hdrcharset" record per entry when writing, on which GNU tar comments. While
// an archive object exists, its thread runs in C.UTF-8 instead (when the C library has it): UTF-8 names pass
// through unchanged, and any other bytes are still kept as they are (libarchive falls back to them).
class Utf8Locale {
  public:
    Utf8Locale() : locale_(::newlocale(LC_ALL_MASK, "C.UTF-8", nullptr)) {
        if (locale_ != nullptr) old_ = ::uselocale(locale_);
    }
    ~Utf8Locale() {
        if (locale_ == nullptr) return;
        ::uselocale(old_);
        ::freelocale(locale_);
    }
    Utf8Locale(const Utf8Locale&) = delete;
    Utf8Locale& operator=(const Utf8Locale&) = delete;

  private:
    locale_t locale_;
    locale_t old_ = nullptr;
};

// One entry as the digest sees it (archive.hpp, ArchiveStats::digests). `name` and, for hard links, `target`
// are relative to the tree's root, in canonical form (normalize_name).
struct CanonicalEntry {
    std::string_view name;
    char type = 'f'; // f regular, d directory, l symlink, h hard link, c/b character/block device, p FIFO
    std::uint64_t perm = 0; // mode & 07777
    std::int64_t uid = 0, gid = 0;
    std::int64_t mtime = 0;
    std::uint64_t mtime_nsec = 0;
    std::uint64_t rdev_major = 0, rdev_minor = 0;
    std::string_view target;
    std::uint64_t size = 0; // regular files only: exactly this many bytes of data() follow
};

// sha256 over a tree's entries in canonical form; the same code on both sides, so a tree written from disk
// and the same tree read back from an archive give the same digest.
//
// The hashing runs in a thread of its own once more than a buffer's worth has come (sha256 is the slowest
// step of an extraction: a snapshot's layer would otherwise be hashed and written one after the other). The
// bytes hashed, and so the digest, do not depend on it. Raw pthreads: a module may use only the C++
// runtime the executable links, and it has no std::thread.
class TreeDigest {
  public:
    TreeDigest();
    ~TreeDigest();
    TreeDigest(const TreeDigest&) = delete;
    TreeDigest& operator=(const TreeDigest&) = delete;
    void entry(const CanonicalEntry& e);
    void data(const void* bytes, std::size_t size);
    std::string hex(); // once: the digest of everything fed

  private:
    static constexpr std::size_t kBuffer = 1 << 20, kDepth = 4;
    void number(std::uint64_t n);
    void string(std::string_view s);
    void feed(const void* bytes, std::size_t size);
    void submit(); // hands the buffer being filled to the thread (or hashes it here)
    void stop();   // waits for the thread to hash everything handed to it
    static void* run(void* self);

    sha256_ctx ctx_{};
    std::vector<std::uint8_t> buffers_[kDepth];
    std::size_t fill_ = 0;            // bytes in buffers_[head_]
    std::size_t head_ = 0, tail_ = 0; // being filled; next to hash
    std::size_t queued_ = 0;          // handed over, not hashed yet
    bool started_ = false, stopping_ = false;
    pthread_t thread_{};
    pthread_mutex_t mutex_ = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t changed_ = PTHREAD_COND_INITIALIZER;
};

// An entry name in canonical form: components joined by single slashes, without "." components, a leading
// "./" or a trailing slash; "" is the root. Throws Error(invalid) naming `raw` for an empty, absolute or
// ".."-containing name. `what` says which name it is ("entry", "hard link target", ...).
std::string normalize_name(std::string_view raw, std::string_view what);

// One path component: not empty, no slash, not "." or "..". Throws Error(invalid) with `what` otherwise.
void check_component(std::string_view name, std::string_view what);

// The names in a directory (without "." and ".."), in no particular order. `what` names it in errors.
std::vector<std::string> list_dir(int dir_fd, const std::string& what);

// openat2(root, path, flags) resolved strictly beneath `root`, through no symlink, magic link or mount
// point. Returns the fd, or -1 with errno (ELOOP for a symlink on the way, ENOTDIR, EXDEV, ENOENT...).
int open_beneath(int root, const std::string& path, int flags);

// chmod of `name` in `dir_fd` that never follows a symlink there (fchmodat2 AT_SYMLINK_NOFOLLOW).
int chmod_nofollow(int dir_fd, const std::string& name, unsigned mode);

ArchiveStats write_archive(const std::vector<ArchiveSource>& sources, int out_fd,
                           const WriteOptions& options);
ArchiveStats extract_archive(int in_fd, int dest_dir_fd, const ExtractOptions& options);

} // namespace sbox::local::archive_impl

// Tar streams in and out of directory trees: what `cp` and snapshots are made of.
//
// The implementation lives in the module libsbox-archive.so (src/local/archive/), built on libarchive and
// loaded on first use, so that `sbox run` never maps libarchive (design.md, "Start-up cost"). The engine
// receives an Archiver from whoever made it (providers/local.cpp loads the module).
//
// Writing never follows a symlink below the source (a symlink is archived as a symlink) and never leaves the
// source's file system. Extraction trusts nothing in the stream: names with "..", absolute names, links and
// hard links pointing anywhere, device nodes, set-id bits, decompression bombs and truncated or corrupt
// streams are refused or neutralised; every path is resolved beneath the destination without following any
// symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS); and everything lands in a hidden staging
// directory first, moved into place only once the whole stream was read, so a failure leaves nothing behind.
//
// Details of writing: entries in sorted name order, a directory before its contents, so equal trees give
// equal streams (pax, numeric ids only, mtimes with nanoseconds, no xattrs). A directory that is a mount
// point below the source is written without its contents; sockets are left out; a regular file with more
// than one link becomes a hard link to the first name written for it (within one source).
// Details of extracting: a stream that ends without tar's end-of-archive blocks counts as truncated. Merging
// leaves an existing directory's mode and owner as they were; a directory of the archive that would merge
// into a mount point below the destination is a conflict (rename(2) cannot move its entries there).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sbox::local {

// One tree to archive.
struct ArchiveSource {
    int dir_fd = -1;  // the directory holding `name`
    std::string name; // a file, directory or symlink below dir_fd (one component); "." = dir_fd itself
    std::string archive_name; // its name in the archive; "" puts a directory's contents at the top level
    std::vector<std::string> exclude; // names directly below a directory source to leave out
    bool follow = false; // `name` itself, when a symlink, is replaced by what it points to (cp -L)
};

struct WriteOptions {
    bool zstd = false;  // compress (level zstd_level)
    int zstd_level = 3; //
    // The sources are overlayfs upper layers: a whiteout (character device 0/0) is written as ".wh.NAME" and
    // a directory marked opaque (xattr user.overlay.opaque or trusted.overlay.opaque = "y") gets a
    // ".wh..wh..opq" entry, as in OCI image layers.
    bool overlay = false;
    // Added to every uid and gid before it is written; an id that ends outside 0..65535 is an error naming
    // the file (snapshots store ids relative to the sandbox).
    std::int64_t id_shift = 0;
    // Small files written before the sources, in this order (a snapshot's manifest.json): mode 0644, uid and
    // gid 0 (id_shift does not apply), mtime now.
    std::vector<std::pair<std::string, std::string>> files;
    // Compute each source's digest (ArchiveStats::digests) while writing. Off by default: the digest that
    // counts is the extracting side's, and a second sha256 pass over the data costs as much as the copy.
    bool digest = false;
};

struct ExtractOptions {
    // Restore each entry's uid/gid (plus id_shift); otherwise entries belong to the extracting process.
    bool keep_owners = false;
    std::int64_t id_shift = 0;
    // Keep setuid/setgid bits. Only honoured together with keep_owners; otherwise they are cleared.
    bool keep_setid = false;
    // ".wh.NAME" entries become overlayfs whiteouts and ".wh..wh..opq" marks its directory opaque
    // (xattr user.overlay.opaque = "y"), the inverse of WriteOptions::overlay.
    bool overlay = false;
    // Only entries below this prefix ("layers/ab12.../") are extracted, with the prefix removed; other
    // entries are skipped (their data still read). Empty: every entry. Without a trailing slash
    // ("manifest.json") it selects that one file, extracted under its last component.
    std::string select_prefix;
    // The top-level entry named `rename_from` lands as `rename_to` (docker cp to a new name). Entries with
    // another top-level name are an error.
    std::string rename_from, rename_to;
    // Stop with an error once the entries' data would exceed this many bytes or this many entries. 0: the
    // free space (blocks available to the caller) and free inodes of the destination's file system.
    std::uint64_t max_bytes = 0;
    std::uint64_t max_entries = 0;
    // Bounds on the whole stream, skipped entries included: the data its headers announce and the number
    // of entries (0: unbounded). Selected entries are bounded by max_bytes and max_entries; these stop a
    // decompression bomb hidden in entries that select_prefix skips.
    std::uint64_t max_stream_bytes = 0;
    std::uint64_t max_stream_entries = 0;
    // When not empty, every entry must lie within one of these names (or be a directory above one), else
    // the stream is refused: for formats that say exactly what they hold. Same form as select_prefix.
    std::vector<std::string> allowed;
    // With select_prefix naming one file: stop reading once it is extracted (the rest is not looked at).
    bool stop_after_selected = false;
    // Moving into place merges directories into existing ones and replaces existing files (docker cp);
    // a directory never replaces a non-directory nor the reverse (an error, checked before anything moves).
    // Called with a message for each entry skipped as unsafe but harmless to skip (a device node).
    std::function<void(const std::string&)> warn;
};

struct ArchiveStats {
    // Entries written (files and sources' roots included), or extracted (without the skipped ones).
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0; // file data, uncompressed
    // sha256 (hex) of the entries in canonical form (name, type, mode, uid, gid, mtime, link target, data),
    // independent of tar's framing: per source for write() (with WriteOptions::digest; empty otherwise), over
    // the selected entries for extract(). Equal trees give equal digests, whether written from disk or read
    // back from an archive.
    //
    // Precisely: sha256 of "sbox-tree-digest-v1\n", then for each entry in stream order: its name, its type
    // (one byte: f file, d directory, l symlink, h hard link, c/b character/block device, p FIFO), mode &
    // 07777, uid and gid as in the stream (after write()'s id_shift, before extract()'s), mtime seconds and
    // nanoseconds, device major and minor (0 unless c/b), link target (a symlink's as stored, a hard link's
    // as a name like the entry's own), size (regular files; 0 otherwise), then `size` bytes of data; numbers
    // as 8 bytes little-endian, strings preceded by their length as such a number. Names are relative to the
    // tree: without "./", "." components or a trailing "/", and without the source's archive_name (write) or
    // select_prefix (extract; a single file selected without a trailing slash: its last component;
    // rename_to changes nothing), so a tree written as "layers/ID" and selected with "layers/ID/" gives the
    // digest it gives at the top level. The root is not an entry of the digest (a directory source's own
    // entry, select_prefix's directory, "./"); a non-directory source is one entry named archive_name.
    // Whiteouts count as the ".wh." entries they are in the stream, device nodes that extract() skips still
    // count, `files` count in no digest.
    std::vector<std::string> digests;
};

// Failures are sbox::local::Error: invalid for a bad or hostile stream (with the entry's name), not_found for
// a missing source, conflict for a directory/non-directory clash, unavailable for "no space left".
class Archiver {
  public:
    virtual ~Archiver() = default;
    // Writes a tar stream (pax) of `sources` to out_fd.
    virtual ArchiveStats write(const std::vector<ArchiveSource>& sources, int out_fd,
                               const WriteOptions& options) = 0;
    // Reads a tar stream (plain, gzip, bzip2, xz or zstd: detected) from in_fd and extracts it into
    // dest_dir_fd (see above). Reads in_fd to EOF even when nothing is selected.
    virtual ArchiveStats extract(int in_fd, int dest_dir_fd, const ExtractOptions& options) = 0;
};

// The interface name the module answers to (sbox_module_info::get_interface).
inline constexpr const char* kArchiverInterface = "archiver-v1";

// Hands out the Archiver; called only when one is needed.
using ArchiverSource = std::function<Archiver&()>;

} // namespace sbox::local

// Tar streams written byte by byte for the cp, hostile-input and snapshot tests: a small ustar/pax writer
// that emits whatever a hostile archive needs (any name, type, mode, owner, link target, a size that the data
// does not match, a bad checksum), a reader that splits an archive into its members (to tamper with a
// snapshot export), a hand-made zstd frame for decompression bombs, and the host-side helpers these tests
// share.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace it::tar {

// Type flags (POSIX ustar).
inline constexpr char kFile = '0';
inline constexpr char kHardlink = '1';
inline constexpr char kSymlink = '2';
inline constexpr char kCharDevice = '3';
inline constexpr char kBlockDevice = '4';
inline constexpr char kDirectory = '5';
inline constexpr char kFifo = '6';

struct Entry {
    std::string name; // written as is: "..", absolute names, anything
    char type = kFile;
    unsigned mode = 0644; // with set-id bits, if wanted
    unsigned long uid = 0, gid = 0;
    std::string uname = "root", gname = "root";
    std::string link; // target of a symlink or hard link
    std::string data; // what follows the header (regular files)
    // The size the header claims; by default data.size(). A larger claim makes a truncated archive.
    std::optional<std::uint64_t> size;
    unsigned devmajor = 0, devminor = 0;
    std::int64_t mtime = 1700000000;
    bool bad_checksum = false;
};

// Shorthands.
Entry file(const std::string& name, const std::string& data, unsigned mode = 0644);
Entry dir(const std::string& name, unsigned mode = 0755); // the name gets a trailing '/'
Entry symlink(const std::string& name, const std::string& target);
Entry hardlink(const std::string& name, const std::string& target);

// The header block(s) of `e`: a pax extended header first when its name or link does not fit ustar, or its
// size is 8 GiB or more (the ustar size field then holds base-256, as GNU tar writes it).
std::string headers(const Entry& e);
// headers(e) followed by e.data padded to a 512-byte block (only the data there is, whatever the header
// claims).
std::string member(const Entry& e);
// Two zero blocks: the end of an archive.
std::string end();
// The members of `entries`, then end().
std::string archive(const std::vector<Entry>& entries);

// One member of an existing archive, as its raw bytes (pax or GNU long-name headers included).
struct Member {
    std::string name; // as the pax path / GNU long name / ustar prefix+name say
    char type = 0;
    std::uint64_t size = 0;
    std::string raw;
};
// Splits a plain tar archive into its members (stops at the first zero block). Throws std::runtime_error
// when it is not one.
std::vector<Member> split(const std::string& archive);
// The members' raw bytes, then end().
std::string join(const std::vector<Member>& members);

// A zstd frame (no checksum) that decompresses to `prefix` followed by `zeros` zero bytes: `prefix` in raw
// blocks and the zeros as RLE blocks of 128 KiB, 4 bytes each, so 100 GiB of zeros take about 3 MB.
std::string zstd_zeros(const std::string& prefix, std::uint64_t zeros);

} // namespace it::tar

namespace it {

// A host program (looked up in /usr/local/bin, /usr/bin, /bin, /usr/sbin, /sbin) with `input` on its stdin.
Result host(const std::vector<std::string>& argv, const std::string& input = {});
// Creates (or replaces) a file on the host, with exactly this mode (umask ignored).
void write_file(const std::string& path, const std::string& data, unsigned mode = 0644);
// mkdir -p with this mode for what it creates.
void make_dirs(const std::string& path, unsigned mode = 0755);
// Sets a path's modification (and access) time, not following a final symlink.
void set_mtime(const std::string& path, std::int64_t seconds);
// Bytes available to this user on the file system holding `path`; 0 when unknown.
std::uint64_t free_bytes(const std::string& path);
// Bytes allocated to the files below `path` (st_blocks), not crossing mount points.
std::uint64_t disk_usage(const std::string& path);
// lstat() fields, or nullopt.
struct FileInfo {
    unsigned mode = 0; // st_mode (type and permission bits)
    std::uint64_t size = 0, nlink = 0, ino = 0, dev = 0;
    unsigned uid = 0, gid = 0;
    std::int64_t mtime = 0;
};
std::optional<FileInfo> file_info(const std::string& path);
std::string link_target(const std::string& path); // "" when not a symlink
// "REF:PATH", a path in a sandbox as cp takes it.
std::string at(const std::string& ref, const std::string& path);
// `s` in lower case (ASCII), for matching words of error messages.
std::string lower(std::string s);
// Runs `sbox ARGS...` (stdin /dev/null) in a forked helper that reports, besides the result, the peak
// resident set size (KiB) of the largest process of the tree it waited for (getrusage RUSAGE_CHILDREN): sbox
// itself and every descendant its processes waited for.
Result sbox_measured(const World& w, const std::vector<std::string>& args, long& peak_rss_kib);

} // namespace it

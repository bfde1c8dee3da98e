// The archive module (libsbox-archive.so, loaded for real): trees through tar streams and back, digests,
// the write and extract options, and hostile archives built here with libarchive's own writer.
#include <doctest/doctest.h>

#include <archive.h>
#include <archive_entry.h>

#include <csignal>
#include <cstring>
#include <exception>
#include <map>
#include <set>
#include <thread>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "helpers.hpp"
#include "local/archive.hpp"
#include "local/system.hpp"
#include "providers/module.hpp"

namespace fs = std::filesystem;
using sbox::local::Archiver;
using sbox::local::ArchiveSource;
using sbox::local::ArchiveStats;
using sbox::local::ExtractOptions;
using sbox::local::Fd;
using sbox::local::WriteOptions;
using sbox::test::TempDir;
using Kind = sbox::local::Error::Kind;

namespace {

Archiver& archiver() {
    static Archiver* a = [] {
        sbox::test::ScopedEnv path("SBOX_MODULE_PATH", SBOX_ARCHIVE_MODULE_DIR);
        return static_cast<Archiver*>(sbox::module_interface("archive", sbox::local::kArchiverInterface));
    }();
    return *a;
}

// Root of the initial user namespace (chown to any id, trusted.* xattrs, mount): not root in a user namespace
// of a rootless run.
bool is_root() {
    if (::geteuid() != 0) return false;
    std::istringstream map(sbox::test::read_file("/proc/self/uid_map"));
    std::uint64_t inside = 1, outside = 1, count = 0;
    map >> inside >> outside >> count;
    return inside == 0 && outside == 0 && count == 4294967295u;
}

Fd open_dir(const fs::path& p) {
    Fd fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(fd);
    return fd;
}

sbox::local::Error error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const sbox::local::Error& e) {
        return e;
    }
    FAIL("no error was thrown");
    return sbox::local::Error(Kind::internal, "");
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

Fd memfd_with(const std::string& data) {
    Fd fd(::memfd_create("tar", MFD_CLOEXEC));
    REQUIRE(fd);
    REQUIRE(sbox::local::write_all(fd.get(), data));
    REQUIRE(::lseek(fd.get(), 0, SEEK_SET) == 0);
    return fd;
}

std::string write_to_string(const std::vector<ArchiveSource>& sources, const WriteOptions& options = {},
                            ArchiveStats* stats = nullptr) {
    Fd fd(::memfd_create("tar", MFD_CLOEXEC));
    REQUIRE(fd);
    WriteOptions with_digest = options; // these tests compare the writer's digests with the reader's
    with_digest.digest = true;
    ArchiveStats s = archiver().write(sources, fd.get(), with_digest);
    if (stats != nullptr) *stats = s;
    REQUIRE(::lseek(fd.get(), 0, SEEK_SET) == 0);
    return sbox::local::read_all(fd.get());
}

ArchiveStats extract_string(const std::string& data, const fs::path& dest,
                            const ExtractOptions& options = {}) {
    Fd in = memfd_with(data);
    Fd dir = open_dir(dest);
    return archiver().extract(in.get(), dir.get(), options);
}

// The whole tree of `dir` as source: its contents at the top level of the archive.
ArchiveSource whole(int dir_fd, std::string archive_name = "") {
    ArchiveSource s;
    s.dir_fd = dir_fd;
    s.name = ".";
    s.archive_name = std::move(archive_name);
    return s;
}

struct RoundTrip {
    ArchiveStats written, extracted;
};

// write() in a thread into a pipe, extract() from it here: the way cp streams.
RoundTrip round_trip(const std::vector<ArchiveSource>& sources, const WriteOptions& w, const fs::path& dest,
                     const ExtractOptions& x = {}) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    Fd rd(p[0]), wr(p[1]);
    RoundTrip r;
    std::exception_ptr write_error, extract_error;
    WriteOptions with_digest = w;
    with_digest.digest = true;
    std::thread writer([&] {
        try {
            r.written = archiver().write(sources, wr.get(), with_digest);
        } catch (...) {
            write_error = std::current_exception();
        }
        wr.reset();
    });
    try {
        Fd dir = open_dir(dest);
        r.extracted = archiver().extract(rd.get(), dir.get(), x);
    } catch (...) {
        extract_error = std::current_exception();
    }
    rd.reset(); // a writer still blocked on the pipe fails now instead of waiting forever
    writer.join();
    if (extract_error) std::rethrow_exception(extract_error);
    if (write_error) std::rethrow_exception(write_error);
    return r;
}

// What a test compares of one file.
struct Info {
    char type = '?';
    unsigned mode = 0;
    std::string content; // regular files
    std::string target;  // symlinks
    long mtime = 0, mtime_nsec = 0;
    bool operator==(const Info&) const = default;
};

std::map<std::string, Info> scan(const fs::path& root) {
    std::map<std::string, Info> out;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
        struct stat st {};
        REQUIRE(::lstat(it->path().c_str(), &st) == 0);
        Info n;
        n.mode = st.st_mode & 07777;
        n.mtime = st.st_mtim.tv_sec;
        n.mtime_nsec = st.st_mtim.tv_nsec;
        switch (st.st_mode & S_IFMT) {
        case S_IFREG:
            n.type = 'f';
            n.content = sbox::test::read_file(it->path());
            break;
        case S_IFDIR:
            n.type = 'd';
            break;
        case S_IFLNK:
            n.type = 'l';
            n.target = fs::read_symlink(it->path()).string();
            break;
        case S_IFIFO:
            n.type = 'p';
            break;
        case S_IFCHR:
            n.type = 'c';
            break;
        default:
            n.type = 'o';
            break;
        }
        out[fs::relative(it->path(), root).string()] = n;
    }
    return out;
}

std::set<std::string> names(const fs::path& root) {
    std::set<std::string> out;
    for (const auto& [name, info] : scan(root))
        out.insert(name);
    return out;
}

void set_mtime(const fs::path& p, long sec, long nsec) {
    timespec t[2] = {{sec, nsec}, {sec, nsec}};
    REQUIRE(::utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW) == 0);
}

void make_file(const fs::path& p, const std::string& content, unsigned mode) {
    std::ofstream(p, std::ios::binary) << content;
    REQUIRE(::chmod(p.c_str(), mode) == 0);
}

// Files of several modes (one setuid), a 3 MiB file (more than one chunk), nested and empty directories, a
// read-only directory with a file in it, symlinks, a hard link and a FIFO; every mtime distinct, with
// nanoseconds.
void make_tree(const fs::path& r) {
    make_file(r / "file.txt", "hello\n", 0644);
    make_file(r / "exec.sh", "#!/bin/sh\necho hi\n", 0755);
    make_file(r / "private", "secret", 0600);
    make_file(r / "readonly", "ro", 0444);
    make_file(r / "setuid", "su", 04755);
    std::string big(3 * 1024 * 1024 + 17, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>(i * 31 + i / 4096);
    make_file(r / "big.bin", big, 0640);
    fs::create_directories(r / "a/b/c");
    make_file(r / "a/b/c/deep.txt", "deep", 0644);
    fs::create_directory(r / "empty");
    fs::create_directory(r / "ro");
    make_file(r / "ro/inside.txt", "inside", 0644);
    REQUIRE(::symlink("a/b/c/deep.txt", (r / "link").c_str()) == 0);
    REQUIRE(::symlink("/nonexistent/target", (r / "dangling").c_str()) == 0);
    REQUIRE(::link((r / "file.txt").c_str(), (r / "hard").c_str()) == 0);
    REQUIRE(::mkfifo((r / "fifo").c_str(), 0640) == 0);
    long t = 1600000000;
    for (const char* p : {"file.txt", "exec.sh", "private", "readonly", "setuid", "big.bin", "a/b/c/deep.txt",
                          "ro/inside.txt", "link", "dangling", "fifo"})
        set_mtime(r / p, t += 1000, 123456789);
    for (auto [p, mode] :
         {std::pair{"a/b/c", 0755}, {"a/b", 0750}, {"a", 0755}, {"empty", 0700}, {"ro", 0555}}) {
        REQUIRE(::chmod((r / p).c_str(), static_cast<mode_t>(mode)) == 0);
        set_mtime(r / p, t += 1000, 987654321);
    }
}

// A tar stream built entry by entry, for archives write() would never produce.
class TarBuilder {
  public:
    explicit TarBuilder(const char* filter = nullptr) : a_(archive_write_new()) {
        REQUIRE(archive_write_set_format_pax_restricted(a_) == ARCHIVE_OK);
        if (filter != nullptr) REQUIRE(archive_write_add_filter_by_name(a_, filter) == ARCHIVE_OK);
        REQUIRE(archive_write_open(a_, &out_, nullptr, &append, nullptr) == ARCHIVE_OK);
    }
    ~TarBuilder() { archive_write_free(a_); }

    TarBuilder& file(const std::string& name, const std::string& content, unsigned mode = 0644) {
        header(name, AE_IFREG, mode, static_cast<la_int64_t>(content.size()));
        if (!content.empty())
            REQUIRE(archive_write_data(a_, content.data(), content.size()) ==
                    static_cast<la_ssize_t>(content.size()));
        return *this;
    }
    TarBuilder& zeros(const std::string& name, std::uint64_t size) {
        header(name, AE_IFREG, 0644, static_cast<la_int64_t>(size));
        std::string chunk(1 << 20, '\0');
        for (std::uint64_t left = size; left > 0;) {
            auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk.size()));
            REQUIRE(archive_write_data(a_, chunk.data(), n) == static_cast<la_ssize_t>(n));
            left -= n;
        }
        return *this;
    }
    TarBuilder& dir(const std::string& name, unsigned mode = 0755) {
        header(name, AE_IFDIR, mode, 0);
        return *this;
    }
    TarBuilder& symlink(const std::string& name, const std::string& target) {
        header(name, AE_IFLNK, 0777, 0,
               [&](archive_entry* e) { archive_entry_copy_symlink(e, target.c_str()); });
        return *this;
    }
    TarBuilder& hardlink(const std::string& name, const std::string& target) {
        header(name, AE_IFREG, 0644, 0,
               [&](archive_entry* e) { archive_entry_copy_hardlink(e, target.c_str()); });
        return *this;
    }
    TarBuilder& device(const std::string& name, unsigned type, unsigned major, unsigned minor) {
        header(name, type, 0666, 0, [&](archive_entry* e) {
            archive_entry_set_rdevmajor(e, major);
            archive_entry_set_rdevminor(e, minor);
        });
        return *this;
    }
    std::string finish() {
        REQUIRE(archive_write_close(a_) == ARCHIVE_OK);
        return out_;
    }

  private:
    static la_ssize_t append(archive*, void* data, const void* buf, size_t n) {
        static_cast<std::string*>(data)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
    }
    void header(const std::string& name, unsigned type, unsigned mode, la_int64_t size,
                const std::function<void(archive_entry*)>& more = {}) {
        archive_entry* e = archive_entry_new();
        archive_entry_copy_pathname(e, name.c_str());
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, mode);
        archive_entry_set_size(e, size);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (more) more(e);
        int rc = archive_write_header(a_, e);
        archive_entry_free(e);
        REQUIRE(rc == ARCHIVE_OK);
    }
    archive* a_;
    std::string out_;
};

// One raw 512-byte ustar header, for claims libarchive's writer would not let a test make.
std::string raw_header(const std::string& name, char type, std::uint64_t size) {
    std::string h(512, '\0');
    auto field = [&](std::size_t at, std::size_t width, std::uint64_t value) {
        std::snprintf(&h[at], width, "%0*llo", static_cast<int>(width - 1),
                      static_cast<unsigned long long>(value));
    };
    h.replace(0, name.size(), name);
    field(100, 8, 0644);
    field(108, 8, 0);
    field(116, 8, 0);
    field(124, 12, size);
    field(136, 12, 1700000000);
    h[156] = type;
    h.replace(257, 8,
              std::string("ustar\0"
                          "00",
                          8));
    h.replace(148, 8, "        ");
    unsigned sum = 0;
    for (char c : h)
        sum += static_cast<unsigned char>(c);
    std::snprintf(&h[148], 8, "%06o", sum);
    return h;
}

// The entries of a tar stream as "name" (directories "name/"), in order.
std::vector<std::string> entries_of(const std::string& tar) {
    archive* a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    REQUIRE(archive_read_open_memory(a, tar.data(), tar.size()) == ARCHIVE_OK);
    std::vector<std::string> out;
    archive_entry* e = nullptr;
    int rc;
    while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        std::string name = archive_entry_pathname(e);
        if (archive_entry_filetype(e) == AE_IFDIR && !name.ends_with("/")) name += "/";
        out.push_back(name);
    }
    CHECK(rc == ARCHIVE_EOF);
    archive_read_free(a);
    return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// A destination inside a directory that also holds an "outside" directory an archive may try to reach.
struct Sandbox {
    TempDir base;
    fs::path dest = base.path / "dest";
    fs::path outside = base.path / "outside";
    Sandbox() {
        fs::create_directory(dest);
        fs::create_directory(outside);
    }
    // Nothing at all changed: the destination as before (no staging directory either), nothing outside.
    void unchanged(const std::map<std::string, Info>& dest_before = {}) const {
        CHECK(scan(dest) == dest_before);
        CHECK(names(outside).empty());
        std::set<std::string> top;
        for (const auto& e : fs::directory_iterator(base.path))
            top.insert(e.path().filename().string());
        CHECK(top == std::set<std::string>{"dest", "outside"});
    }
};

} // namespace

TEST_CASE("archive: the module hands out an Archiver") {
    sbox::test::ScopedEnv path("SBOX_MODULE_PATH", SBOX_ARCHIVE_MODULE_DIR);
    const sbox::LoadedModule& m = sbox::load_module("archive");
    CHECK(m.path == std::string(SBOX_ARCHIVE_MODULE_DIR) + "/libsbox-archive.so");
    REQUIRE(static_cast<bool>(m.info->get_interface));
    CHECK(m.info->get_interface("no-such-interface") == nullptr);
    CHECK(static_cast<void*>(&archiver()) == m.info->get_interface(sbox::local::kArchiverInterface));
}

TEST_CASE("archive: a tree round-trips through a pipe") {
    TempDir src, dst;
    make_tree(src.path);
    Fd src_fd = open_dir(src.path);
    RoundTrip r = round_trip({whole(src_fd.get())}, {}, dst.path);

    auto before = scan(src.path);
    auto after = scan(dst.path);
    CHECK(after.size() == before.size());
    for (auto [name, info] : before) {
        CAPTURE(name);
        if (name == "setuid") info.mode = 0755; // set-id bits only with keep_owners + keep_setid
        REQUIRE(after.count(name) == 1);
        CHECK(after[name] == info);
    }
    struct stat file {
    }, hard{};
    REQUIRE(::stat((dst.path / "file.txt").c_str(), &file) == 0);
    REQUIRE(::stat((dst.path / "hard").c_str(), &hard) == 0);
    CHECK(file.st_ino == hard.st_ino); // the hard link is one
    CHECK(file.st_nlink == 2);

    // 17 entries: 8 files, 2 symlinks, a hard link, a FIFO and 5 directories (the root has no entry).
    CHECK(r.written.entries == 17);
    CHECK(r.extracted.entries == r.written.entries);
    CHECK(r.written.bytes == 6 + 18 + 6 + 2 + 2 + 3 * 1024 * 1024 + 17 + 4 + 6);
    CHECK(r.extracted.bytes == r.written.bytes);
    REQUIRE(r.written.digests.size() == 1);
    CHECK(r.written.digests[0].size() == 64);
    CHECK(r.extracted.digests == r.written.digests);
    CHECK(names(dst.path).count("hard") == 1);
    // No staging directory left behind.
    for (const auto& name : names(dst.path))
        CHECK(!name.starts_with(".sbox-extract-"));
}

TEST_CASE("archive: equal trees give equal streams and digests - one byte changes the digest") {
    TempDir src;
    make_tree(src.path);
    Fd fd = open_dir(src.path);
    ArchiveStats s1, s2, s3, layered;
    std::string t1 = write_to_string({whole(fd.get())}, {}, &s1);
    std::string t2 = write_to_string({whole(fd.get())}, {}, &s2);
    CHECK(t1 == t2); // sorted walk, no pid or time in the stream
    CHECK(s1.digests == s2.digests);

    // The same tree under a name: the digest does not depend on where the tree sits in the archive.
    std::string t_layer = write_to_string({whole(fd.get(), "layers/ab12")}, {}, &layered);
    CHECK(layered.digests == s1.digests);
    CHECK(entries_of(t_layer).front() == "layers/ab12/");
    TempDir dst;
    ExtractOptions x;
    x.select_prefix = "layers/ab12/";
    ArchiveStats extracted = extract_string(t_layer, dst.path, x);
    CHECK(extracted.digests == s1.digests);

    // One byte of one file, same size and mtime.
    make_file(src.path / "a/b/c/deep.txt", "deeP", 0644);
    set_mtime(src.path / "a/b/c/deep.txt", 1600000000 + 7000, 123456789);
    write_to_string({whole(fd.get())}, {}, &s3);
    CHECK(s3.digests != s1.digests);

    // Unasked, the writer computes no digest (the extracting side's is the one that counts).
    Fd out(::memfd_create("tar", MFD_CLOEXEC));
    REQUIRE(out);
    ArchiveStats plain = archiver().write({whole(fd.get())}, out.get(), {});
    CHECK(plain.digests.empty());
    CHECK(plain.entries == s3.entries);
}

TEST_CASE("archive: the digest is the documented sha256, across the hashing thread's buffers") {
    // Computed independently (Python's hashlib over the serialisation archive.hpp describes): a change of
    // the format, or of how the bytes reach sha256, shows here. 5 MiB of data crosses several buffers.
    std::string content(5 * 1024 * 1024 + 123, '\0');
    for (std::size_t i = 0; i < content.size(); ++i)
        content[i] = static_cast<char>((i * 7) % 251);
    std::string tar = TarBuilder().file("a", "x").file("f", content).finish();
    TempDir dst;
    ArchiveStats s = extract_string(tar, dst.path);
    REQUIRE(s.digests.size() == 1);
    CHECK(s.digests[0] == "8dcebdf070dc57457f4a6aed6c7918f64a33ec0d85584b84dd2fe44ae091eda4");
    // A failed extraction stops the hashing thread cleanly (the test would hang or crash otherwise).
    std::string cut = tar.substr(0, tar.size() / 2);
    TempDir dst2;
    CHECK(error_of([&] { extract_string(cut, dst2.path); }).kind() == Kind::invalid);
}

TEST_CASE("archive: names are bytes: UTF-8 and others round-trip unchanged") {
    TempDir src, dst;
    make_file(src.path / "caf\xc3\xa9", "utf-8", 0644);
    make_file(src.path / "plain", "ascii", 0644);
    Fd fd = open_dir(src.path);
    // A UTF-8 name is a plain pax path record, which every tar reads without comment.
    std::string tar = write_to_string({whole(fd.get())});
    CHECK(!contains(tar, "hdrcharset"));
    CHECK(contains(tar, "path=caf\xc3\xa9\n"));

    make_file(src.path / "bad\xff\xfe", "not utf-8", 0644);
    REQUIRE(::symlink("target\xff", (src.path / "link\xfe").c_str()) == 0);
    RoundTrip r = round_trip({whole(fd.get())}, {}, dst.path);
    CHECK(scan(dst.path) == scan(src.path));
    CHECK(r.extracted.digests == r.written.digests);
}

TEST_CASE("archive: follow archives what a symlink source points to") {
    TempDir src;
    fs::create_directory(src.path / "real");
    make_file(src.path / "real/f", "data", 0644);
    fs::create_directory_symlink("real", src.path / "ln");
    Fd fd = open_dir(src.path);
    ArchiveSource s;
    s.dir_fd = fd.get();
    s.name = "ln";
    s.archive_name = "ln";

    TempDir plain;
    round_trip({s}, {}, plain.path);
    CHECK(fs::is_symlink(plain.path / "ln"));
    CHECK(fs::read_symlink(plain.path / "ln") == "real");

    s.follow = true;
    TempDir followed;
    round_trip({s}, {}, followed.path);
    CHECK(!fs::is_symlink(followed.path / "ln"));
    CHECK(sbox::test::read_file(followed.path / "ln/f") == "data");

    // A symlink below the source is never followed, even with follow.
    fs::create_symlink("../real/f", src.path / "real/inner");
    TempDir inner;
    round_trip({s}, {}, inner.path);
    CHECK(fs::is_symlink(inner.path / "ln/inner"));

    s.name = "missing";
    CHECK(error_of([&] { write_to_string({s}); }).kind() == Kind::not_found);
}

TEST_CASE("archive: exclude leaves out names directly below the source") {
    TempDir src, dst;
    make_file(src.path / "keep", "k", 0644);
    make_file(src.path / "skip", "s", 0644);
    fs::create_directory(src.path / "x");
    make_file(src.path / "x/skip", "nested", 0644);
    fs::create_directory(src.path / "gone");
    make_file(src.path / "gone/f", "f", 0644);
    Fd fd = open_dir(src.path);
    ArchiveSource s = whole(fd.get());
    s.exclude = {"skip", "gone"};
    round_trip({s}, {}, dst.path);
    CHECK(names(dst.path) == std::set<std::string>{"keep", "x", "x/skip"});
}

TEST_CASE("archive: archive_name puts a tree at the top level or under a name") {
    TempDir src;
    fs::create_directory(src.path / "sub");
    make_file(src.path / "sub/f", "f", 0644);
    make_file(src.path / "file", "x", 0644);
    Fd fd = open_dir(src.path);
    ArchiveSource s;
    s.dir_fd = fd.get();
    s.name = "sub";
    CHECK(entries_of(write_to_string({s})) == std::vector<std::string>{"f"});
    s.archive_name = "x";
    CHECK(entries_of(write_to_string({s})) == std::vector<std::string>{"x/", "x/f"});
    s.archive_name = "deeper/y";
    CHECK(entries_of(write_to_string({s})) == std::vector<std::string>{"deeper/y/", "deeper/y/f"});

    s.name = "file";
    s.archive_name = "renamed";
    CHECK(entries_of(write_to_string({s})) == std::vector<std::string>{"renamed"});
    s.archive_name = "";
    auto e = error_of([&] { write_to_string({s}); });
    CHECK(e.kind() == Kind::invalid);
    CHECK(contains(e.what(), "file"));
    s.archive_name = "../up";
    CHECK(error_of([&] { write_to_string({s}); }).kind() == Kind::invalid);
    s.name = "../etc";
    CHECK(error_of([&] { write_to_string({s}); }).kind() == Kind::invalid);
}

TEST_CASE("archive: rename_from/rename_to land the top-level entry under a new name") {
    TempDir src;
    fs::create_directory(src.path / "old");
    make_file(src.path / "old/f", "f", 0644);
    Fd fd = open_dir(src.path);
    ArchiveSource s;
    s.dir_fd = fd.get();
    s.name = "old";
    s.archive_name = "old";
    ExtractOptions x;
    x.rename_from = "old";
    x.rename_to = "new";
    TempDir dst;
    RoundTrip r = round_trip({s}, {}, dst.path, x);
    CHECK(names(dst.path) == std::set<std::string>{"new", "new/f"});
    REQUIRE(r.extracted.digests.size() == 1);
    CHECK(r.extracted.digests[0].size() == 64);

    // Another top-level name is an error, and nothing lands.
    Sandbox box;
    std::string tar = TarBuilder().file("old/a", "a").file("other", "o").finish();
    auto e = error_of([&] { extract_string(tar, box.dest, x); });
    CHECK(e.kind() == Kind::invalid);
    CHECK(contains(e.what(), "other"));
    box.unchanged();

    x.rename_to = "a/b";
    CHECK(error_of([&] { extract_string(tar, box.dest, x); }).kind() == Kind::invalid);
    box.unchanged();
}

TEST_CASE("archive: select_prefix extracts one subtree and reads the stream to its end") {
    TempDir one, two;
    make_file(one.path / "f1", "one", 0644);
    fs::create_directory(two.path / "d");
    make_file(two.path / "d/f2", "two", 0600);
    Fd fd1 = open_dir(one.path), fd2 = open_dir(two.path);
    WriteOptions w;
    w.files = {{"manifest.json", "{}"}};
    ExtractOptions x;
    x.select_prefix = "layers/bb/";
    TempDir dst;
    RoundTrip r = round_trip({whole(fd1.get(), "layers/aa"), whole(fd2.get(), "layers/bb")}, w, dst.path, x);
    CHECK(names(dst.path) == std::set<std::string>{"d", "d/f2"});
    REQUIRE(r.written.digests.size() == 2);
    CHECK(r.extracted.digests == std::vector<std::string>{r.written.digests[1]});
    CHECK(r.extracted.entries == 2);

    // Without a trailing slash it selects one file, extracted under its last component (a manifest).
    TempDir dst2, dst3;
    x.select_prefix = "manifest.json";
    RoundTrip one_file =
        round_trip({whole(fd1.get(), "layers/aa"), whole(fd2.get(), "layers/bb")}, w, dst2.path, x);
    CHECK(names(dst2.path) == std::set<std::string>{"manifest.json"});
    CHECK(sbox::test::read_file(dst2.path / "manifest.json") == "{}");
    CHECK(one_file.extracted.entries == 1);
    // Selecting nothing extracts nothing, successfully.
    x.select_prefix = "layers/zz/";
    RoundTrip none = round_trip({whole(fd1.get(), "layers/aa")}, w, dst3.path, x);
    CHECK(names(dst3.path).empty());
    CHECK(none.extracted.entries == 0);

    // Bytes after the end-of-archive blocks are read too: the writer never sees a broken pipe.
    std::string tar = TarBuilder().file("f", "x").finish() + std::string(300 * 1024, '\0');
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    Fd rd(p[0]), wr(p[1]);
    bool written = false;
    std::thread writer([&] {
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        written = sbox::local::write_all(wr.get(), tar);
        wr.reset();
    });
    TempDir dst4;
    Fd dir = open_dir(dst4.path);
    archiver().extract(rd.get(), dir.get(), {});
    char c;
    CHECK(::read(rd.get(), &c, 1) == 0); // drained to EOF
    rd.reset();
    writer.join();
    CHECK(written);
}

TEST_CASE("archive: allowed names, stream bounds and stop_after_selected guard the skipped entries too") {
    const std::string tar = TarBuilder()
                                .file("manifest.json", "{}")
                                .dir("layers/")
                                .dir("layers/aa/")
                                .file("layers/aa/f", "a")
                                .file("layers/bb/g", std::string(2000, 'b'))
                                .finish();
    ExtractOptions x;
    x.select_prefix = "layers/aa/";
    x.allowed = {"manifest.json", "layers/aa", "layers/bb/"};
    {
        Sandbox box;
        ArchiveStats s = extract_string(tar, box.dest, x);
        CHECK(names(box.dest) == std::set<std::string>{"f"});
        CHECK(s.entries == 1);
    }
    // An entry outside every allowed name is refused, and named, though it is not selected.
    x.allowed = {"manifest.json", "layers/aa"};
    {
        Sandbox box;
        auto e = error_of([&] { extract_string(tar, box.dest, x); });
        CHECK(e.kind() == Kind::invalid);
        CHECK(contains(e.what(), "'layers/bb/g'"));
        CHECK(contains(e.what(), "only manifest.json and layers/aa belong"));
        box.unchanged();
    }
    x.allowed.clear();
    // The skipped entry's 2000 bytes break a bound of 1000 on the stream, though 1 byte is extracted.
    x.max_stream_bytes = 1000;
    {
        Sandbox box;
        auto e = error_of([&] { extract_string(tar, box.dest, x); });
        CHECK(e.kind() == Kind::invalid);
        CHECK(contains(e.what(), "more than 1000 bytes"));
        box.unchanged();
    }
    x.max_stream_bytes = 2003;
    {
        Sandbox box;
        CHECK(extract_string(tar, box.dest, x).bytes == 1);
    }
    x.max_stream_bytes = 0;
    x.max_stream_entries = 4; // the stream has 5
    {
        Sandbox box;
        auto e = error_of([&] { extract_string(tar, box.dest, x); });
        CHECK(e.kind() == Kind::invalid);
        CHECK(contains(e.what(), "more than 4 entries"));
        box.unchanged();
    }

    // stop_after_selected: the one file selected is taken and nothing after it is read.
    std::string head = TarBuilder().file("manifest.json", "{\"a\":1}").finish();
    REQUIRE(head.size() > 1024);
    std::string then_garbage = head.substr(0, 1024) + std::string(4096, 'x');
    ExtractOptions m;
    m.select_prefix = "manifest.json";
    {
        Sandbox box;
        CHECK(error_of([&] { extract_string(then_garbage, box.dest, m); }).kind() == Kind::invalid);
        box.unchanged();
    }
    m.stop_after_selected = true;
    {
        Sandbox box;
        extract_string(then_garbage, box.dest, m);
        CHECK(sbox::test::read_file(box.dest / "manifest.json") == "{\"a\":1}");
    }
}

TEST_CASE("archive: files are written first, as regular files") {
    TempDir src, dst;
    make_file(src.path / "f", "f", 0644);
    Fd fd = open_dir(src.path);
    WriteOptions w;
    w.files = {{"manifest.json", "{\"a\":1}"}, {"meta/info", "x"}};
    ArchiveStats stats;
    std::string tar = write_to_string({whole(fd.get(), "tree")}, w, &stats);
    CHECK(entries_of(tar) == std::vector<std::string>{"manifest.json", "meta/info", "tree/", "tree/f"});
    CHECK(stats.entries == 4);
    CHECK(stats.bytes == 7 + 1 + 1);
    extract_string(tar, dst.path);
    CHECK(sbox::test::read_file(dst.path / "manifest.json") == "{\"a\":1}");
    CHECK((fs::status(dst.path / "manifest.json").permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read));
    w.files = {{"../x", "x"}};
    CHECK(error_of([&] { write_to_string({}, w); }).kind() == Kind::invalid);
}

TEST_CASE("archive: zstd compression round-trips") {
    TempDir src, dst, dst2;
    make_tree(src.path);
    Fd fd = open_dir(src.path);
    WriteOptions w;
    w.zstd = true;
    w.zstd_level = 5;
    ArchiveStats plain;
    write_to_string({whole(fd.get())}, {}, &plain);
    std::string tar = write_to_string({whole(fd.get())}, w);
    REQUIRE(tar.size() > 4);
    CHECK(tar.substr(0, 4) == std::string("\x28\xb5\x2f\xfd", 4)); // zstd's magic number
    ArchiveStats x = extract_string(tar, dst.path);
    CHECK(x.digests == plain.digests);
    CHECK(sbox::test::read_file(dst.path / "big.bin") == sbox::test::read_file(src.path / "big.bin"));
    RoundTrip r = round_trip({whole(fd.get())}, w, dst2.path);
    CHECK(r.extracted.digests == plain.digests);
    w.zstd_level = 1000;
    CHECK(error_of([&] { write_to_string({whole(fd.get())}, w); }).kind() == Kind::invalid);
}

TEST_CASE("archive: extraction merges into existing directories and replaces existing files") {
    Sandbox box;
    fs::create_directories(box.dest / "a/b");
    make_file(box.dest / "a/existing.txt", "kept", 0644);
    make_file(box.dest / "a/b/deep.txt", "old", 0644);
    make_file(box.dest / "keep.txt", "kept too", 0644);
    std::string tar =
        TarBuilder().dir("a").dir("a/b").file("a/b/deep.txt", "new").file("a/b/added", "+").finish();
    ArchiveStats s = extract_string(tar, box.dest);
    CHECK(s.entries == 4);
    CHECK(sbox::test::read_file(box.dest / "a/b/deep.txt") == "new");
    CHECK(sbox::test::read_file(box.dest / "a/b/added") == "+");
    CHECK(sbox::test::read_file(box.dest / "a/existing.txt") == "kept");
    CHECK(sbox::test::read_file(box.dest / "keep.txt") == "kept too");
    CHECK(names(box.dest) ==
          std::set<std::string>{"a", "a/b", "a/b/added", "a/b/deep.txt", "a/existing.txt", "keep.txt"});
    // A symlink in the destination is replaced, not followed.
    fs::remove(box.dest / "keep.txt");
    REQUIRE(::symlink((box.outside / "target").c_str(), (box.dest / "keep.txt").c_str()) == 0);
    extract_string(TarBuilder().file("keep.txt", "replaced").finish(), box.dest);
    CHECK(!fs::is_symlink(box.dest / "keep.txt"));
    CHECK(sbox::test::read_file(box.dest / "keep.txt") == "replaced");
    CHECK(names(box.outside).empty());
}

TEST_CASE("archive: a directory never replaces a non-directory nor the reverse - nothing moves") {
    Sandbox box;
    make_file(box.dest / "a", "a file", 0644);
    fs::create_directory(box.dest / "d");
    make_file(box.dest / "d/inner", "i", 0644);
    auto before = scan(box.dest);

    std::string dir_onto_file = TarBuilder().file("new.txt", "n").dir("a").file("a/x", "x").finish();
    auto e = error_of([&] { extract_string(dir_onto_file, box.dest); });
    CHECK(e.kind() == Kind::conflict);
    CHECK(contains(e.what(), "cannot overwrite non-directory a with directory"));
    box.unchanged(before);

    std::string file_onto_dir = TarBuilder().file("new.txt", "n").file("d", "not a dir").finish();
    e = error_of([&] { extract_string(file_onto_dir, box.dest); });
    CHECK(e.kind() == Kind::conflict);
    CHECK(contains(e.what(), "cannot overwrite directory d with non-directory"));
    box.unchanged(before);

    // Deeper down, too.
    make_file(box.dest / "d/sub", "file", 0644);
    before = scan(box.dest);
    e = error_of([&] { extract_string(TarBuilder().file("d/sub/x", "x").finish(), box.dest); });
    CHECK(e.kind() == Kind::conflict);
    box.unchanged(before);
}

TEST_CASE("archive: keep_owners, id_shift and keep_setid (root only)") {
    if (!is_root()) return;
    TempDir src;
    make_file(src.path / "su", "x", 04755);
    REQUIRE(::chown((src.path / "su").c_str(), 1000, 1001) == 0);
    REQUIRE(::chmod((src.path / "su").c_str(), 04755) == 0); // chown cleared it
    Fd fd = open_dir(src.path);
    std::string tar = write_to_string({whole(fd.get())});

    auto stat_of = [](const fs::path& p) {
        struct stat st {};
        REQUIRE(::lstat(p.c_str(), &st) == 0);
        return st;
    };
    TempDir a, b, c;
    extract_string(tar, a.path);
    CHECK(stat_of(a.path / "su").st_uid == 0);
    CHECK((stat_of(a.path / "su").st_mode & 07777) == 0755);

    ExtractOptions x;
    x.keep_owners = true;
    x.id_shift = 5;
    extract_string(tar, b.path, x);
    CHECK(stat_of(b.path / "su").st_uid == 1005);
    CHECK(stat_of(b.path / "su").st_gid == 1006);
    CHECK((stat_of(b.path / "su").st_mode & 07777) == 0755);

    x.keep_setid = true;
    extract_string(tar, c.path, x);
    CHECK((stat_of(c.path / "su").st_mode & 07777) == 04755);

    // Ids that would leave 0..65535 once shifted are refused, naming the file.
    WriteOptions w;
    w.id_shift = -1001;
    auto e = error_of([&] { write_to_string({whole(fd.get())}, w); });
    CHECK(e.kind() == Kind::invalid);
    CHECK(contains(e.what(), "su"));
    REQUIRE(::chown((src.path / "su").c_str(), 70000, 70000) == 0);
    CHECK(error_of([&] { write_to_string({whole(fd.get())}); }).kind() == Kind::invalid);
    w.id_shift = -69990;
    ArchiveStats shifted;
    write_to_string({whole(fd.get())}, w, &shifted);
    CHECK(shifted.entries == 1);
}

TEST_CASE("archive: ids outside 0..65535 after id_shift are refused when writing") {
    TempDir src;
    make_file(src.path / "named-file", "x", 0644);
    Fd fd = open_dir(src.path);
    WriteOptions w;
    w.id_shift = -100000;
    auto e = error_of([&] { write_to_string({whole(fd.get())}, w); });
    CHECK(e.kind() == Kind::invalid);
    CHECK(contains(e.what(), "named-file"));
    CHECK(contains(e.what(), "0..65535"));
}

TEST_CASE("archive: overlay whiteouts and opaque directories become .wh. entries and back (root only)") {
    if (!is_root()) return;
    TempDir upper;
    if (::mknod((upper.path / "gone").c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
        // Overlayfs refuses to create whiteouts (a /tmp on an overlay root: a container, a chroot).
        MESSAGE("skipped: cannot make a whiteout in " << upper.path << ": " << std::strerror(errno));
        return;
    }
    fs::create_directory(upper.path / "opq");
    make_file(upper.path / "opq/f", "f", 0644);
    REQUIRE(::setxattr((upper.path / "opq").c_str(), "trusted.overlay.opaque", "y", 1, 0) == 0);
    fs::create_directory(upper.path / "plain");
    Fd fd = open_dir(upper.path);
    WriteOptions w;
    w.overlay = true;
    ArchiveStats written;
    std::string tar = write_to_string({whole(fd.get(), "layer")}, w, &written);
    CHECK(entries_of(tar) == std::vector<std::string>{"layer/", "layer/.wh.gone", "layer/opq/",
                                                      "layer/opq/.wh..wh..opq", "layer/opq/f",
                                                      "layer/plain/"});

    TempDir restored;
    ExtractOptions x;
    x.overlay = true;
    x.select_prefix = "layer/";
    ArchiveStats extracted = extract_string(tar, restored.path, x);
    CHECK(extracted.digests == written.digests);
    struct stat st {};
    REQUIRE(::lstat((restored.path / "gone").c_str(), &st) == 0);
    CHECK(S_ISCHR(st.st_mode));
    CHECK(st.st_rdev == makedev(0, 0));
    char value[4] = {};
    CHECK(::getxattr((restored.path / "opq").c_str(), "user.overlay.opaque", value, sizeof value) == 1);
    CHECK(value[0] == 'y');
    CHECK(::getxattr((restored.path / "plain").c_str(), "user.overlay.opaque", value, sizeof value) < 0);
    CHECK(names(restored.path) == std::set<std::string>{"gone", "opq", "opq/f", "plain"});

    // Without overlay the .wh. entries are ordinary files, and the device (a whiteout) is written as one.
    TempDir as_files;
    x.overlay = false;
    extract_string(tar, as_files.path, x);
    CHECK(names(as_files.path) ==
          std::set<std::string>{".wh.gone", "opq", "opq/.wh..wh..opq", "opq/f", "plain"});
    CHECK(has(entries_of(write_to_string({whole(fd.get())})), "gone"));
}

TEST_CASE("archive: mount points below a source are recorded, not entered (root only)") {
    if (!is_root()) return;
    TempDir src;
    fs::create_directory(src.path / "mnt");
    make_file(src.path / "f", "f", 0644);
    Fd out(::memfd_create("tar", MFD_CLOEXEC));
    REQUIRE(out);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // A private mount namespace, so the tmpfs never shows on the host.
        if (::unshare(CLONE_NEWNS) != 0 ||
            ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount("tmpfs", (src.path / "mnt").c_str(), "tmpfs", 0, nullptr) != 0)
            ::_exit(2);
        std::ofstream(src.path / "mnt/inside") << "x";
        try {
            Fd fd(::open(src.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            archiver().write({whole(fd.get())}, out.get(), {});
        } catch (...) {
            ::_exit(3);
        }
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2) {
        MESSAGE("skipped: no private mount namespace here");
        return;
    }
    REQUIRE(WEXITSTATUS(status) == 0);
    REQUIRE(::lseek(out.get(), 0, SEEK_SET) == 0);
    CHECK(entries_of(sbox::local::read_all(out.get())) == std::vector<std::string>{"f", "mnt/"});
}

TEST_CASE("archive: a reader that goes away is an error, not a SIGPIPE") {
    TempDir src;
    make_file(src.path / "big", std::string(4 << 20, 'x'), 0644);
    Fd fd = open_dir(src.path);
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    Fd rd(p[0]), wr(p[1]);
    rd.reset();
    auto e = error_of([&] { archiver().write({whole(fd.get())}, wr.get(), {}); });
    // internal: in a pipeline the reader's own failure is the one reported (copy.cpp, snapshot.cpp).
    CHECK(e.kind() == Kind::internal);
    CHECK(contains(e.what(), "the reader went away"));
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    CHECK(sigismember(&pending, SIGPIPE) == 0); // none left to kill the process later
}

TEST_CASE("archive: hostile names are refused and nothing lands anywhere") {
    for (const char* name : {"../evil", "/abs/evil", "a/../../evil", "ok/../../evil"}) {
        CAPTURE(name);
        Sandbox box;
        std::string tar = TarBuilder().file("fine", "fine").file(name, "evil").finish();
        auto e = error_of([&] { extract_string(tar, box.dest); });
        CHECK(e.kind() == Kind::invalid);
        CHECK(contains(e.what(), name));
        box.unchanged();
        CHECK(!fs::exists(box.base.path / "evil"));
        CHECK(!fs::exists("/abs/evil"));
    }
}

TEST_CASE("archive: nothing is written through a symlink from the archive") {
    Sandbox box;
    for (const std::string& target : {box.outside.string(), std::string("../outside"), std::string("/tmp")}) {
        CAPTURE(target);
        std::string tar = TarBuilder().symlink("link", target).file("link/evil", "evil").finish();
        auto e = error_of([&] { extract_string(tar, box.dest); });
        CHECK(e.kind() == Kind::invalid);
        CHECK(contains(e.what(), "refuses to write through the symlink"));
        box.unchanged();
    }
    // Nor through a symlink to a directory inside the archive's own tree.
    std::string tar = TarBuilder().dir("d").symlink("link", "d").file("link/f", "x").finish();
    CHECK(error_of([&] { extract_string(tar, box.dest); }).kind() == Kind::invalid);
    box.unchanged();
    // A symlink replaced by a file of the same name is replaced, not followed.
    tar = TarBuilder().symlink("x", box.outside.string() + "/victim").file("x", "data").finish();
    extract_string(tar, box.dest);
    CHECK(!fs::is_symlink(box.dest / "x"));
    CHECK(names(box.outside).empty());
}

TEST_CASE("archive: hard links can only point to files extracted before them") {
    for (const char* target : {"../../etc/passwd", "/etc/passwd", "missing", "dir", "sym"}) {
        CAPTURE(target);
        Sandbox box;
        std::string tar =
            TarBuilder().dir("dir").symlink("sym", "/etc/passwd").hardlink("h", target).finish();
        auto e = error_of([&] { extract_string(tar, box.dest); });
        CHECK(e.kind() == Kind::invalid);
        CHECK(contains(e.what(), target));
        box.unchanged();
    }
    // Through a symlinked directory, too.
    Sandbox box;
    std::string tar = TarBuilder().symlink("etc", "/etc").hardlink("h", "etc/passwd").finish();
    CHECK(error_of([&] { extract_string(tar, box.dest); }).kind() == Kind::invalid);
    box.unchanged();
    // Outside the selected prefix.
    ExtractOptions x;
    x.select_prefix = "sel/";
    tar = TarBuilder().file("other", "o").hardlink("sel/h", "other").finish();
    CHECK(error_of([&] { extract_string(tar, box.dest, x); }).kind() == Kind::invalid);
    box.unchanged();
    // And a good one works.
    tar = TarBuilder().file("f", "data").hardlink("g", "f").finish();
    extract_string(tar, box.dest);
    CHECK(fs::equivalent(box.dest / "f", box.dest / "g"));
}

TEST_CASE("archive: device nodes are skipped with a warning") {
    Sandbox box;
    std::string tar = TarBuilder()
                          .device("dev", AE_IFCHR, 1, 3)
                          .device("disk", AE_IFBLK, 8, 0)
                          .device(".wh.x", AE_IFCHR, 0, 0)
                          .file("ok", "ok")
                          .finish();
    std::vector<std::string> warnings;
    ExtractOptions x;
    x.warn = [&](const std::string& w) { warnings.push_back(w); };
    ArchiveStats s = extract_string(tar, box.dest, x);
    CHECK(names(box.dest) == std::set<std::string>{"ok"});
    CHECK(s.entries == 1);
    CHECK(warnings == std::vector<std::string>{"skipped device node dev", "skipped device node disk",
                                               "skipped device node .wh.x"});
}

TEST_CASE("archive: set-id bits from an archive are cleared") {
    Sandbox box;
    std::string tar = TarBuilder().file("su", "x", 04755).file("sg", "y", 02711).dir("sgdir", 02775).finish();
    extract_string(tar, box.dest);
    CHECK((fs::status(box.dest / "su").permissions() & fs::perms::mask) == static_cast<fs::perms>(0755));
    CHECK((fs::status(box.dest / "sg").permissions() & fs::perms::mask) == static_cast<fs::perms>(0711));
    CHECK((fs::status(box.dest / "sgdir").permissions() & fs::perms::mask) == static_cast<fs::perms>(0775));
}

TEST_CASE("archive: a decompression bomb stops early and leaves nothing") {
    Sandbox box;
    std::string bomb = TarBuilder("gzip").file("small", "s").zeros("zeros", 64ull << 20).finish();
    CHECK(bomb.size() < (1u << 20));
    ExtractOptions x;
    x.max_bytes = 1 << 20;
    auto e = error_of([&] { extract_string(bomb, box.dest, x); });
    CHECK(e.kind() == Kind::unavailable);
    CHECK(contains(e.what(), "the archive expands beyond 1048576 bytes"));
    box.unchanged();

    // Every file's data counts: two files within the limit each, not together (zstd this time).
    std::string tar = TarBuilder("zstd").zeros("a", 600 << 10).zeros("b", 600 << 10).finish();
    e = error_of([&] { extract_string(tar, box.dest, x); });
    CHECK(e.kind() == Kind::unavailable);
    box.unchanged();

    x.max_bytes = 0;
    x.max_entries = 3;
    TarBuilder many;
    for (int i = 0; i < 10; ++i)
        many.file("f" + std::to_string(i), "x");
    e = error_of([&] { extract_string(many.finish(), box.dest, x); });
    CHECK(e.kind() == Kind::unavailable);
    CHECK(contains(e.what(), "beyond 3 entries"));
    box.unchanged();

    // A header claiming more than the destination's free space (max 0) is refused before any data is read:
    // a pax size record of 1 PiB, then 4 KiB of data and no end.
    std::string record = "25 size=1125899906842624\n";
    std::string huge = raw_header("PaxHeader/huge", 'x', record.size()) + record +
                       std::string(512 - record.size(), '\0') + raw_header("huge", '0', 0) +
                       std::string(4096, 'z');
    x.max_entries = 0;
    e = error_of([&] { extract_string(huge, box.dest, x); });
    CHECK(e.kind() == Kind::unavailable);
    CHECK(contains(e.what(), "beyond"));
    CHECK(contains(e.what(), "more than the destination has free space"));
    box.unchanged();

    // Within the free space of the destination (max 0): fine.
    ArchiveStats s = extract_string(TarBuilder("gzip").zeros("z", 2 << 20).finish(), box.dest);
    CHECK(s.bytes == 2u << 20);
}

TEST_CASE("archive: truncated, corrupt, empty and foreign streams are refused") {
    std::string tar = TarBuilder().file("first", "1").file("big", std::string(200 * 1024, 'b')).finish();
    std::string cut = tar.substr(0, tar.size() / 2);
    Sandbox box;
    auto e = error_of([&] { extract_string(cut, box.dest); });
    CHECK(e.kind() == Kind::invalid);
    CHECK(contains(e.what(), "truncated or corrupt"));
    box.unchanged();

    // Cut exactly between two entries (each a 512-byte header and a 512-byte block of data): only the
    // missing end-of-archive blocks show it.
    std::string whole_tar = TarBuilder().file("a", "1").file("b", "2").finish();
    REQUIRE(whole_tar.size() >= 2048 + 1024);
    CHECK(whole_tar.substr(2048, 1024) == std::string(1024, '\0'));
    for (std::size_t at : {1024, 2048}) {
        CAPTURE(at);
        e = error_of([&] { extract_string(whole_tar.substr(0, at), box.dest); });
        CHECK(e.kind() == Kind::invalid);
        CHECK(contains(e.what(), "truncated or corrupt"));
        box.unchanged();
    }
    CHECK(extract_string(whole_tar.substr(0, 2048 + 1024), box.dest).entries == 2);
    fs::remove(box.dest / "a");
    fs::remove(box.dest / "b");

    // A header with a wrong checksum: the first entry's header is at 0, its data at 512, the next header at
    // 1024 (its mode field at +100).
    std::string bad = tar;
    bad[1024 + 100] ^= 0x55;
    e = error_of([&] { extract_string(bad, box.dest); });
    CHECK(e.kind() == Kind::invalid);
    box.unchanged();

    std::string garbage(100 * 1024, '\0');
    std::uint32_t seed = 12345;
    for (char& c : garbage) {
        seed = seed * 1103515245 + 12345;
        c = static_cast<char>(seed >> 16);
    }
    e = error_of([&] { extract_string(garbage, box.dest); });
    CHECK(e.kind() == Kind::invalid);
    CHECK(contains(e.what(), "not a tar archive"));
    box.unchanged();

    e = error_of([&] { extract_string("", box.dest); });
    CHECK(e.kind() == Kind::invalid);
    box.unchanged();

    std::string zip = std::string("PK\x03\x04", 4) + std::string(200, '\0');
    CHECK(error_of([&] { extract_string(zip, box.dest); }).kind() == Kind::invalid);
    box.unchanged();

    // A valid tar without entries is fine.
    ArchiveStats s = extract_string(std::string(1024, '\0'), box.dest);
    CHECK(s.entries == 0);
    box.unchanged();
}

TEST_CASE("archive: a read-only directory in an archive still receives its entries") {
    Sandbox box;
    std::string tar =
        TarBuilder().dir("ro", 0555).file("ro/f", "f").dir("ro/sub", 0500).file("ro/sub/g", "g").finish();
    extract_string(tar, box.dest);
    CHECK(sbox::test::read_file(box.dest / "ro/sub/g") == "g");
    CHECK((fs::status(box.dest / "ro").permissions() & fs::perms::mask) == static_cast<fs::perms>(0555));
    CHECK((fs::status(box.dest / "ro/sub").permissions() & fs::perms::mask) == static_cast<fs::perms>(0500));
    // Implicit parents are 0755; a repeated entry replaces the earlier one.
    extract_string(TarBuilder().file("p/q/r", "1").file("p/q/r", "2").finish(), box.dest);
    CHECK(sbox::test::read_file(box.dest / "p/q/r") == "2");
    CHECK((fs::status(box.dest / "p/q").permissions() & fs::perms::mask) == static_cast<fs::perms>(0755));
}

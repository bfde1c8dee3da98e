#include "tarball.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <ftw.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

namespace it::tar {

namespace {

constexpr std::size_t kBlock = 512;

// Writes `value` as `width - 1` octal digits and a NUL into field[0..width).
bool put_octal(char* field, std::size_t width, std::uint64_t value) {
    std::string digits(width - 1, '0');
    for (std::size_t i = width - 1; i-- > 0;) {
        digits[i] = static_cast<char>('0' + (value & 7));
        value >>= 3;
    }
    if (value != 0) return false; // does not fit
    std::memcpy(field, digits.data(), width - 1);
    field[width - 1] = '\0';
    return true;
}

// GNU's base-256 encoding: the high bit of the first byte set, the value big-endian in the rest.
void put_base256(char* field, std::size_t width, std::uint64_t value) {
    std::memset(field, 0, width);
    for (std::size_t i = width; i-- > 1;) {
        field[i] = static_cast<char>(value & 0xff);
        value >>= 8;
    }
    field[0] = static_cast<char>(0x80);
}

void put_string(char* field, std::size_t width, const std::string& s) {
    std::memcpy(field, s.data(), std::min(width, s.size()));
}

std::string pax_record(const std::string& key, const std::string& value) {
    // "LEN key=value\n", where LEN counts the whole record including its own digits.
    std::string body = " " + key + "=" + value + "\n";
    std::size_t len = body.size() + 1;
    while (std::to_string(len).size() + body.size() != len)
        ++len;
    return std::to_string(len) + body;
}

std::string pad(std::string s) {
    if (s.size() % kBlock) s.append(kBlock - s.size() % kBlock, '\0');
    return s;
}

// One 512-byte ustar header.
std::string ustar_header(const Entry& e, const std::string& name, const std::string& prefix,
                         const std::string& link, std::uint64_t size, char type) {
    std::string h(kBlock, '\0');
    char* b = h.data();
    put_string(b, 100, name);
    put_octal(b + 100, 8, e.mode & 07777);
    if (!put_octal(b + 108, 8, e.uid)) put_base256(b + 108, 8, e.uid);
    if (!put_octal(b + 116, 8, e.gid)) put_base256(b + 116, 8, e.gid);
    if (!put_octal(b + 124, 12, size)) put_base256(b + 124, 12, size);
    put_octal(b + 136, 12, static_cast<std::uint64_t>(e.mtime));
    b[156] = type;
    put_string(b + 157, 100, link);
    std::memcpy(b + 257, "ustar", 6); // magic "ustar\0"
    std::memcpy(b + 263, "00", 2);
    put_string(b + 265, 32, e.uname);
    put_string(b + 297, 32, e.gname);
    put_octal(b + 329, 8, e.devmajor);
    put_octal(b + 337, 8, e.devminor);
    put_string(b + 345, 155, prefix);
    std::memset(b + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h)
        sum += c;
    if (e.bad_checksum) sum += 1;
    char chk[8];
    std::snprintf(chk, sizeof chk, "%06o", sum);
    std::memcpy(b + 148, chk, 6);
    b[154] = '\0';
    b[155] = ' ';
    return h;
}

std::uint64_t parse_number(const char* field, std::size_t width) {
    auto u = reinterpret_cast<const unsigned char*>(field);
    if (u[0] & 0x80) {
        std::uint64_t v = u[0] & 0x7f;
        for (std::size_t i = 1; i < width; ++i)
            v = (v << 8) | u[i];
        return v;
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width; ++i) {
        char c = field[i];
        if (c == ' ' || c == '\0') {
            if (v != 0) break;
            continue;
        }
        if (c < '0' || c > '7') throw std::runtime_error("tar: bad number in a header");
        v = v * 8 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
}

std::string field_string(const char* field, std::size_t width) {
    return std::string(field, strnlen(field, width));
}

} // namespace

Entry file(const std::string& name, const std::string& data, unsigned mode) {
    Entry e;
    e.name = name;
    e.data = data;
    e.mode = mode;
    return e;
}

Entry dir(const std::string& name, unsigned mode) {
    Entry e;
    e.name = name.ends_with('/') ? name : name + "/";
    e.type = kDirectory;
    e.mode = mode;
    return e;
}

Entry symlink(const std::string& name, const std::string& target) {
    Entry e;
    e.name = name;
    e.type = kSymlink;
    e.mode = 0777;
    e.link = target;
    return e;
}

Entry hardlink(const std::string& name, const std::string& target) {
    Entry e;
    e.name = name;
    e.type = kHardlink;
    e.link = target;
    return e;
}

std::string headers(const Entry& e) {
    const std::uint64_t size = e.size.value_or(e.data.size());
    std::string name = e.name, prefix;
    std::string pax;
    if (name.size() > 100) {
        // ustar's prefix/name split, at a '/' that leaves at most 155 and 100 bytes.
        bool split = false;
        for (std::size_t i = name.size() < 101 ? 0 : name.size() - 101; i < name.size() && i <= 155; ++i) {
            if (name[i] == '/' && i > 0 && name.size() - i - 1 <= 100 && name.size() - i - 1 > 0) {
                prefix = name.substr(0, i);
                name = name.substr(i + 1);
                split = true;
                break;
            }
        }
        if (!split) {
            pax += pax_record("path", e.name);
            name = e.name.substr(0, 100);
            prefix.clear();
        }
    }
    std::string link = e.link;
    if (link.size() > 100) {
        pax += pax_record("linkpath", link);
        link = link.substr(0, 100);
    }
    if (size >= (std::uint64_t{1} << 33)) pax += pax_record("size", std::to_string(size));
    std::string out;
    if (!pax.empty()) {
        Entry x;
        x.mode = 0644;
        x.mtime = e.mtime;
        out += ustar_header(x, "././@PaxHeader", "", "", pax.size(), 'x');
        out += pad(pax);
    }
    out += ustar_header(e, name, prefix, link, size, e.type);
    return out;
}

std::string member(const Entry& e) {
    return headers(e) + pad(e.data);
}

std::string end() {
    return std::string(2 * kBlock, '\0');
}

std::string archive(const std::vector<Entry>& entries) {
    std::string out;
    for (auto& e : entries)
        out += member(e);
    return out + end();
}

std::vector<Member> split(const std::string& archive) {
    std::vector<Member> out;
    std::size_t at = 0;
    Member current;
    std::string long_name, pax_path;
    while (at + kBlock <= archive.size()) {
        const char* b = archive.data() + at;
        if (std::all_of(b, b + kBlock, [](char c) { return c == '\0'; })) return out;
        if (std::memcmp(b + 257, "ustar", 5) != 0) throw std::runtime_error("tar: not a ustar header");
        std::uint64_t size = parse_number(b + 124, 12);
        char type = b[156];
        std::size_t total = kBlock + static_cast<std::size_t>((size + kBlock - 1) / kBlock * kBlock);
        if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
            // Headers that describe the next member; the pax size record also changes its data's length.
            if (at + kBlock + size > archive.size()) throw std::runtime_error("tar: truncated");
            std::string data = archive.substr(at + kBlock, size);
            if (type == 'L') long_name = field_string(data.data(), data.size());
            if (type == 'x') {
                std::size_t p = 0;
                while (p < data.size()) {
                    std::size_t sp = data.find(' ', p);
                    if (sp == std::string::npos) break;
                    std::size_t len = std::stoul(data.substr(p, sp - p));
                    std::string rec = data.substr(sp + 1, len - (sp - p) - 2);
                    auto eq = rec.find('=');
                    if (eq != std::string::npos && rec.substr(0, eq) == "path") pax_path = rec.substr(eq + 1);
                    if (eq != std::string::npos && rec.substr(0, eq) == "size")
                        current.size = std::stoull(rec.substr(eq + 1));
                    p += len;
                }
            }
            current.raw += archive.substr(at, total);
            at += total;
            continue;
        }
        if (current.size == 0) current.size = size;
        total = kBlock + static_cast<std::size_t>((current.size + kBlock - 1) / kBlock * kBlock);
        if (at + total > archive.size()) throw std::runtime_error("tar: truncated");
        std::string prefix = field_string(b + 345, 155), name = field_string(b, 100);
        current.name = !pax_path.empty()    ? pax_path
                       : !long_name.empty() ? long_name
                       : prefix.empty()     ? name
                                            : prefix + "/" + name;
        current.type = type;
        current.raw += archive.substr(at, total);
        at += total;
        out.push_back(current);
        current = Member{};
        long_name.clear();
        pax_path.clear();
    }
    throw std::runtime_error("tar: no end-of-archive blocks");
}

std::string join(const std::vector<Member>& members) {
    std::string out;
    for (auto& m : members)
        out += m.raw;
    return out + end();
}

std::string zstd_zeros(const std::string& prefix, std::uint64_t zeros) {
    constexpr std::uint32_t kMaxBlock = 128 * 1024;
    std::string out = std::string("\x28\xb5\x2f\xfd", 4);
    out += '\x00'; // frame header descriptor: no content size, no single segment, no checksum, no dictionary
    out += '\x38'; // window descriptor: 2^(10+7) = 128 KiB
    auto block = [&](std::uint32_t size, unsigned type, bool last) {
        std::uint32_t h = (size << 3) | (type << 1) | (last ? 1u : 0u);
        out += static_cast<char>(h & 0xff);
        out += static_cast<char>((h >> 8) & 0xff);
        out += static_cast<char>((h >> 16) & 0xff);
    };
    for (std::size_t at = 0; at < prefix.size(); at += kMaxBlock) {
        auto n = static_cast<std::uint32_t>(std::min<std::size_t>(kMaxBlock, prefix.size() - at));
        block(n, 0, zeros == 0 && at + n == prefix.size());
        out += prefix.substr(at, n);
    }
    while (zeros > 0) {
        auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(kMaxBlock, zeros));
        zeros -= n;
        block(n, 1, zeros == 0);
        out += '\0';
    }
    if (prefix.empty() && out.size() == 6) block(0, 0, true);
    return out;
}

} // namespace it::tar

namespace it {

namespace {
[[noreturn]] void fail_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}
} // namespace

Result host(const std::vector<std::string>& argv, const std::string& input) {
    std::vector<std::string> args = argv;
    if (!args.empty() && args[0].find('/') == std::string::npos) {
        for (auto dir : {"/usr/local/bin/", "/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"}) {
            if (access((dir + args[0]).c_str(), X_OK) == 0) {
                args[0] = dir + args[0];
                break;
            }
        }
    }
    Process p(args, {"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C"},
              {.pipe_stdin = !input.empty()});
    return p.finish(input, std::chrono::seconds(600));
}

void write_file(const std::string& path, const std::string& data, unsigned mode) {
    unlink(path.c_str());
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fail_errno("open " + path);
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            close(fd);
            fail_errno("write " + path);
        }
        done += static_cast<std::size_t>(n);
    }
    if (fchmod(fd, mode) < 0) fail_errno("fchmod " + path);
    close(fd);
}

void make_dirs(const std::string& path, unsigned mode) {
    for (std::size_t i = 1; i <= path.size(); ++i) {
        if (i != path.size() && path[i] != '/') continue;
        std::string p = path.substr(0, i);
        if (mkdir(p.c_str(), mode) == 0) {
            chmod(p.c_str(), mode);
        } else if (errno != EEXIST) {
            fail_errno("mkdir " + p);
        }
    }
}

void set_mtime(const std::string& path, std::int64_t seconds) {
    timespec ts[2] = {{seconds, 0}, {seconds, 0}};
    if (utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) < 0) fail_errno("utimensat " + path);
}

std::uint64_t free_bytes(const std::string& path) {
    struct statvfs s;
    if (statvfs(path.c_str(), &s) < 0) return 0;
    return static_cast<std::uint64_t>(s.f_bavail) * s.f_frsize;
}

namespace {
std::uint64_t usage_total;
}

std::uint64_t disk_usage(const std::string& path) {
    usage_total = 0;
    nftw(
        path.c_str(),
        [](const char*, const struct stat* st, int type, FTW*) {
            if (type != FTW_NS && st) usage_total += static_cast<std::uint64_t>(st->st_blocks) * 512;
            return 0;
        },
        32, FTW_PHYS | FTW_MOUNT);
    return usage_total;
}

std::optional<FileInfo> file_info(const std::string& path) {
    struct stat st;
    if (lstat(path.c_str(), &st) < 0) return std::nullopt;
    FileInfo f;
    f.mode = st.st_mode;
    f.size = static_cast<std::uint64_t>(st.st_size);
    f.nlink = st.st_nlink;
    f.ino = st.st_ino;
    f.dev = st.st_dev;
    f.uid = st.st_uid;
    f.gid = st.st_gid;
    f.mtime = st.st_mtim.tv_sec;
    return f;
}

std::string link_target(const std::string& path) {
    char buf[4096];
    ssize_t n = readlink(path.c_str(), buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

Result sbox_measured(const World& w, const std::vector<std::string>& args, long& peak_rss_kib) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) fail_errno("pipe2");
    pid_t pid = fork();
    if (pid < 0) fail_errno("fork");
    if (pid == 0) {
        // The helper: spawns sbox, waits for it, and reports "STATUS MAXRSS\n" + stderr + "\0" + stdout.
        close(fds[0]);
        std::string report;
        try {
            Process p = w.spawn(args);
            Result r = p.finish({}, std::chrono::seconds(900));
            rusage ru{};
            getrusage(RUSAGE_CHILDREN, &ru);
            report = std::to_string(r.status) + " " + std::to_string(ru.ru_maxrss) + "\n" + r.err +
                     std::string(1, '\0') + r.out;
        } catch (const std::exception& e) {
            report = "-1 -1\nhelper failed: " + std::string(e.what()) + std::string(1, '\0');
        }
        std::size_t done = 0;
        while (done < report.size()) {
            ssize_t n = write(fds[1], report.data() + done, report.size() - done);
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
        _exit(0);
    }
    close(fds[1]);
    std::string report;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        report.append(buf, static_cast<std::size_t>(n));
    }
    close(fds[0]);
    waitpid(pid, nullptr, 0);
    Result r;
    auto nl = report.find('\n');
    if (nl == std::string::npos) {
        r.err = "sbox_measured: the helper reported nothing";
        peak_rss_kib = -1;
        return r;
    }
    std::sscanf(report.substr(0, nl).c_str(), "%d %ld", &r.status, &peak_rss_kib);
    auto nul = report.find('\0', nl + 1);
    r.err = report.substr(nl + 1, nul == std::string::npos ? std::string::npos : nul - nl - 1);
    if (nul != std::string::npos) r.out = report.substr(nul + 1);
    return r;
}

std::string at(const std::string& ref, const std::string& path) {
    return ref + ":" + path;
}

std::string lower(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

} // namespace it

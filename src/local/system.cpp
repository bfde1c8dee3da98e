#include "local/system.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cctype>
#include <ctime>
#include <random>

namespace sbox::local {

void throw_errno(const std::string& what, int err) {
    Error::Kind kind = Error::Kind::internal;
    if (err == ENOENT) kind = Error::Kind::not_found;
    throw Error(kind, what + ": " + std::strerror(err));
}

Pipe::Pipe() {
    int fds[2];
    check(::pipe2(fds, O_CLOEXEC), "pipe2");
    read.reset(fds[0]);
    write.reset(fds[1]);
}

void Pipe::widen(int bytes) {
    if (::fcntl(write.get(), F_SETPIPE_SZ, bytes) == -1) (void)::fcntl(write.get(), F_SETPIPE_SZ, 1 << 20);
}

bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > 63) return false;
    if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
    return true;
}

std::string fd_path(int fd) {
    return "/proc/self/fd/" + std::to_string(fd);
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

int read_to_end(int fd, std::string& out) {
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return 0;
        out.append(buf, static_cast<size_t>(n));
    }
}

std::string read_all(int fd) {
    std::string out;
    if (int err = read_to_end(fd, out)) throw_errno("read", err);
    return out;
}

std::string read_file(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw_errno("open " + path);
    return read_all(fd.get());
}

void write_file_atomic(const std::string& path, std::string_view data, unsigned mode) {
    static std::minstd_rand rng(static_cast<unsigned>(::getpid()) ^ static_cast<unsigned>(::time(nullptr)));
    std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rng());
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd) throw_errno("create " + tmp);
    if (!write_all(fd.get(), data)) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw_errno("write " + tmp, err);
    }
    fd.reset();
    if (::rename(tmp.c_str(), path.c_str()) == -1) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw_errno("rename " + tmp + " to " + path, err);
    }
}

} // namespace sbox::local

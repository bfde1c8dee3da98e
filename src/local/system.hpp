// Small RAII and error-reporting helpers shared by every kernel concern of the local engine.
// Every syscall failure is reported with what was attempted and errno's text (nsjail style).
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <unistd.h>

namespace sbox::local {

// A failure of the local engine. `kind` uses the same words as sbox::ErrorKind so the adapter can map it.
class Error : public std::runtime_error {
  public:
    enum class Kind { invalid, not_found, conflict, unavailable, internal };
    Error(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    Kind kind() const { return kind_; }

  private:
    Kind kind_;
};

// "what: strerror(errno)" as an internal Error.
[[noreturn]] void throw_errno(const std::string& what, int err = errno);

// Throws when a syscall returned -1.
inline long check(long rc, const std::string& what) {
    if (rc == -1) throw_errno(what);
    return rc;
}

// An owned file descriptor, closed on destruction.
class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

  private:
    int fd_ = -1;
};

// A pipe whose two ends close on exec and on destruction.
struct Pipe {
    Fd read, write;
    Pipe();
    // Asks for a buffer of `bytes` (at most /proc/sys/fs/pipe-max-size for unprivileged users), so that bulk
    // data crosses with fewer, larger reads and writes and fewer context switches. Best effort: a pipe that
    // stays at 64 KiB is only slower.
    void widen(int bytes = 1 << 20);
};

// A name for a sandbox or snapshot: up to 63 letters, digits, '-', '_' or '.', starting with a letter or
// digit.
bool valid_name(const std::string& name);

// "/proc/self/fd/N": lets path-taking syscalls (mount options, mount targets) use a directory opened earlier,
// when the caller's credentials could still traverse its parents.
std::string fd_path(int fd);

// Writes all of `data`, retrying on EINTR and short writes. Returns false on failure (errno set).
bool write_all(int fd, std::string_view data);
// Appends everything up to EOF to `out`; returns 0, or the errno of a failed read.
int read_to_end(int fd, std::string& out);
// Reads until EOF. Throws on error.
std::string read_all(int fd);
// Reads a whole file; throws Error(not_found) when absent.
std::string read_file(const std::string& path);
// Writes a file atomically: a temporary file in the same directory, then rename(2).
void write_file_atomic(const std::string& path, std::string_view data, unsigned mode = 0644);

} // namespace sbox::local

#include "cli/output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "providers/provider.hpp"

namespace sbox::cli {

namespace {

bool standard_output(const std::string& path) {
    return path == "-" || path == "/dev/stdout";
}

// An existing path that is not a regular file.
bool in_place(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
}

Error cannot_write(const std::string& path, int err) {
    return Error(ErrorKind::invalid, "cannot write " + path + ": " + std::strerror(err));
}

} // namespace

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
    if (standard_output(path_)) {
        fd_ = 1;
        return;
    }
    if (in_place(path_)) {
        owned_.reset(::open(path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
        if (!owned_) throw cannot_write(path_, errno);
        return;
    }
    tmp_ = path_ + ".sbox-tmp." + std::to_string(::getpid());
    owned_.reset(::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!owned_) throw Error(ErrorKind::invalid, "cannot create " + tmp_ + ": " + std::strerror(errno));
}

OutputFile::~OutputFile() {
    if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void OutputFile::commit() {
    if (tmp_.empty()) {
        owned_.reset();
        committed_ = true;
        return;
    }
    if (::fsync(owned_.get()) == -1) throw cannot_write(tmp_, errno);
    if (::close(owned_.release()) == -1) throw cannot_write(tmp_, errno);
    if (::rename(tmp_.c_str(), path_.c_str()) == -1)
        throw Error(ErrorKind::invalid,
                    "cannot rename " + tmp_ + " to " + path_ + ": " + std::strerror(errno));
    committed_ = true;
}

void OutputFile::check(const std::string& path, const char* flag) {
    if (path.empty() || standard_output(path)) return;
    if (in_place(path)) {
        if (::access(path.c_str(), W_OK) != 0)
            throw Error(ErrorKind::usage,
                        std::string(flag) + " " + path + ": cannot write to it: " + std::strerror(errno));
        return;
    }
    auto slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    if (::access(dir.c_str(), W_OK) != 0)
        throw Error(ErrorKind::usage, std::string(flag) + " " + path + ": cannot write in " + dir + ": " +
                                          std::strerror(errno));
}

} // namespace sbox::cli

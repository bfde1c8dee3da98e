#include "providers/copy.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "local/archive.hpp"
#include "local/child.hpp"
#include "providers/module.hpp"

namespace sbox {

namespace {

using local::Child;
using local::Fd;
using local::Pipe;

// Engine-level errors (the host half runs on the local engine's helpers) in sbox's kinds.
[[noreturn]] void rethrow_local(const local::Error& e) {
    switch (e.kind()) {
    case local::Error::Kind::invalid:
        throw Error(ErrorKind::invalid, e.what());
    case local::Error::Kind::not_found:
        throw Error(ErrorKind::not_found, e.what());
    case local::Error::Kind::conflict:
        throw Error(ErrorKind::conflict, e.what());
    case local::Error::Kind::unavailable:
        throw Error(ErrorKind::unavailable, e.what());
    case local::Error::Kind::internal:
        break;
    }
    throw Error(ErrorKind::internal, e.what());
}

local::Archiver& archiver() {
    return *static_cast<local::Archiver*>(module_interface("archive", local::kArchiverInterface));
}

// A path's parts as cp cares about them.
struct Parts {
    std::string parent;          // "." for a bare name
    std::string leaf;            // empty for "/"
    bool contents = false;       // ended in "/."
    bool trailing_slash = false; // ended in "/"
};

Parts parts_of(std::string path) {
    Parts p;
    if (path.size() >= 2 && path.compare(path.size() - 2, 2, "/.") == 0) {
        p.contents = true;
        path.resize(path.size() - 2);
        if (path.empty()) path = "/";
    } else if (path == ".") {
        p.contents = false;
    }
    while (path.size() > 1 && path.back() == '/') {
        p.trailing_slash = true;
        path.pop_back();
    }
    auto slash = path.rfind('/');
    if (path == "/") {
        p.parent = "/";
    } else if (slash == std::string::npos) {
        p.parent = ".";
        p.leaf = path;
    } else {
        p.parent = slash == 0 ? "/" : path.substr(0, slash);
        p.leaf = path.substr(slash + 1);
    }
    return p;
}

// The name a source gets in the stream: its last component ("/" has none: call it after the sandbox's root).
std::string name_of(const Parts& p) {
    if (p.leaf.empty() || p.leaf == "." || p.leaf == "..") return "root";
    return p.leaf;
}

// Signals that interrupt cp are held off while a stream is under way: the producer of the stream dies of
// them (its consumer sees the stream cut short and removes what it wrote), and this process re-raises the
// first one once both halves have finished.
std::atomic<int> interrupted{0};
extern "C" void note_signal(int sig) {
    int expected = 0;
    interrupted.compare_exchange_strong(expected, sig);
}

class InterruptGuard {
  public:
    InterruptGuard() {
        struct sigaction sa = {};
        sa.sa_handler = note_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < std::size(kSignals); ++i)
            ::sigaction(kSignals[i], &sa, &old_[i]);
    }
    ~InterruptGuard() {
        for (size_t i = 0; i < std::size(kSignals); ++i)
            ::sigaction(kSignals[i], &old_[i], nullptr);
    }
    // Dies of the first signal that arrived, as it would have without the guard.
    void reraise() {
        if (int sig = interrupted.load()) {
            for (size_t i = 0; i < std::size(kSignals); ++i)
                ::sigaction(kSignals[i], &old_[i], nullptr);
            ::signal(sig, SIG_DFL);
            ::raise(sig);
        }
    }

  private:
    static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    struct sigaction old_[std::size(kSignals)];
};

void default_signals() {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
        ::signal(sig, SIG_DFL);
}
void ignore_signals() {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT})
        ::signal(sig, SIG_IGN);
    ::signal(SIGPIPE, SIG_IGN);
}

// Runs the provider's half (`remote`) while `local_half` (already started as a child) does the host's;
// reports the first cause: when one side fails, the other usually fails too, only because its stream broke.
void finish(Child& host_half, const std::function<void()>& remote, bool host_produces) {
    std::optional<Error> remote_error;
    try {
        remote();
    } catch (const Error& e) {
        remote_error = e;
    }
    std::optional<Error> host_error;
    try {
        host_half.wait();
    } catch (const local::Error& e) {
        try {
            rethrow_local(e);
        } catch (const Error& converted) {
            host_error = converted;
        }
    }
    if (host_error && remote_error) {
        // Usually the producer's failure is the cause and the consumer only saw its stream end early; but a
        // producer that failed only because its reader went away (a broken pipe, an internal error) gives
        // way to the consumer's reason (the archive expands beyond the free space...).
        const Error& producer = host_produces ? *host_error : *remote_error;
        const Error& consumer = host_produces ? *remote_error : *host_error;
        throw producer.kind() == ErrorKind::internal ? consumer : producer;
    }
    if (host_error) throw *host_error;
    if (remote_error) throw *remote_error;
}

// The provider's side of an upload; our end of the stream is closed afterwards whatever happened, so a
// producer still writing into it ends (EPIPE) instead of waiting forever.
void upload_and_close(Provider& provider, std::string_view id, const UploadSpec& spec, Fd& stream) {
    try {
        provider.upload(id, spec, stream.get());
    } catch (...) {
        stream.reset();
        throw;
    }
    stream.reset();
}

[[noreturn]] void fail(ErrorKind kind, const std::string& message) {
    throw Error(kind, message);
}

void copy_in(Provider& provider, std::string_view id, const CopyRequest& r) {
    Parts dst = parts_of(r.sandbox_path.empty() ? "/" : r.sandbox_path);
    UploadSpec spec;
    spec.user = r.user;
    PathInfo target = provider.stat_path(id, r.sandbox_path, true);
    InterruptGuard guard;

    if (r.host_path == "-") {
        // A tar stream from stdin lands in an existing directory, as it is (docker cp - CONTAINER:DIR).
        if (target.type != PathInfo::Type::directory)
            fail(target.type == PathInfo::Type::missing ? ErrorKind::not_found : ErrorKind::invalid,
                 "the destination " + r.sandbox_path +
                     " must be an existing directory in the sandbox when the "
                     "source is a tar stream (-)");
        spec.dir = r.sandbox_path;
        Pipe pipe;
        pipe.widen();
        int out = pipe.write.get();
        // A pump, not stdin itself: when sbox is interrupted the pump dies, and the sandbox's side sees the
        // stream end early and removes what it wrote.
        Child pump(
            [out]() -> std::string {
                default_signals();
                ::signal(SIGPIPE, SIG_IGN);
                char buf[1 << 16];
                for (;;) {
                    ssize_t n = ::read(0, buf, sizeof buf);
                    if (n == 0) return {};
                    if (n < 0) {
                        if (errno == EINTR) continue;
                        local::throw_errno("read the tar stream from stdin");
                    }
                    if (!local::write_all(out, std::string_view(buf, static_cast<size_t>(n))))
                        local::throw_errno("pass the tar stream on");
                }
            },
            {out});
        pipe.write.reset();
        finish(
            pump, [&] { upload_and_close(provider, id, spec, pipe.read); }, true);
        guard.reraise();
        return;
    }

    Parts src = parts_of(r.host_path);
    struct stat st;
    std::string src_path = r.host_path;
    int stat_rc = (r.follow_link || src.contents || src.trailing_slash) ? ::stat(src_path.c_str(), &st)
                                                                        : ::lstat(src_path.c_str(), &st);
    if (stat_rc == -1)
        fail(errno == ENOENT ? ErrorKind::not_found : ErrorKind::invalid,
             r.host_path + ": " + std::strerror(errno));
    bool src_dir = S_ISDIR(st.st_mode);
    if ((src.contents || src.trailing_slash) && !src_dir)
        fail(ErrorKind::invalid, r.host_path + ": not a directory");

    local::ArchiveSource source;
    std::string source_dir =
        src.contents ? (src.leaf.empty() ? src.parent : src.parent + "/" + src.leaf) : src.parent;
    if (src.contents || src.leaf.empty()) {
        source.name = ".";
    } else {
        source.name = src.leaf;
        source.follow = r.follow_link || src.trailing_slash;
    }
    if (target.type == PathInfo::Type::directory) {
        spec.dir = r.sandbox_path;
        source.archive_name = src.contents ? "" : name_of(src);
    } else if (target.type == PathInfo::Type::missing) {
        if (dst.trailing_slash)
            fail(ErrorKind::not_found, "the directory " + r.sandbox_path + " does not exist in the sandbox");
        spec.dir = dst.parent == "." ? "/" : dst.parent;
        source.archive_name = dst.leaf;
    } else {
        if (src_dir)
            fail(ErrorKind::conflict, "cannot copy the directory " + r.host_path + " onto the file " +
                                          r.sandbox_path + " in the sandbox");
        spec.dir = dst.parent == "." ? "/" : dst.parent;
        source.archive_name = dst.leaf;
    }
    Fd dir(::open(source_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir) fail(ErrorKind::not_found, source_dir + ": " + std::strerror(errno));
    source.dir_fd = dir.get();

    local::Archiver& tar = archiver();
    Pipe pipe;
    pipe.widen();
    int out = pipe.write.get();
    Child producer(
        [&]() -> std::string {
            default_signals();
            ::signal(SIGPIPE, SIG_IGN);
            tar.write({source}, out, local::WriteOptions{});
            return {};
        },
        {out, dir.get()});
    pipe.write.reset();
    finish(
        producer, [&] { upload_and_close(provider, id, spec, pipe.read); }, true);
    guard.reraise();
}

void copy_out(Provider& provider, std::string_view id, const CopyRequest& r) {
    Parts src = parts_of(r.sandbox_path.empty() ? "/" : r.sandbox_path);
    PathInfo info =
        provider.stat_path(id, r.sandbox_path, r.follow_link || src.contents || src.trailing_slash);
    if (info.type == PathInfo::Type::missing)
        fail(ErrorKind::not_found, r.sandbox_path + ": no such file or directory in the sandbox");
    bool src_dir = info.type == PathInfo::Type::directory;
    if ((src.contents || src.trailing_slash) && !src_dir)
        fail(ErrorKind::invalid, r.sandbox_path + ": not a directory in the sandbox");
    DownloadSpec spec;
    spec.path = r.sandbox_path.empty() ? "/" : r.sandbox_path;
    spec.follow_link = r.follow_link;
    InterruptGuard guard;

    if (r.host_path == "-") {
        spec.archive_name = src.contents ? "" : name_of(src);
        provider.download(id, spec, 1);
        guard.reraise();
        return;
    }

    Parts dst = parts_of(r.host_path);
    struct stat st;
    std::string into; // the host directory the stream is extracted into
    if (::stat(r.host_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        into = r.host_path;
        spec.archive_name = src.contents ? "" : name_of(src);
    } else if (errno == ENOENT || (::lstat(r.host_path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))) {
        bool exists = ::lstat(r.host_path.c_str(), &st) == 0;
        if (!exists && dst.trailing_slash)
            fail(ErrorKind::not_found, "the directory " + r.host_path + " does not exist");
        if (exists && src_dir)
            fail(ErrorKind::conflict,
                 "cannot copy the directory " + r.sandbox_path + " onto the file " + r.host_path);
        into = dst.parent;
        spec.archive_name = dst.leaf;
    } else {
        fail(ErrorKind::invalid, r.host_path + ": " + std::strerror(errno));
    }
    Fd dir(::open(into.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir)
        fail(errno == ENOENT ? ErrorKind::not_found : ErrorKind::invalid, into + ": " + std::strerror(errno));

    local::Archiver& tar = archiver();
    Pipe pipe;
    pipe.widen();
    int in = pipe.read.get();
    Child consumer(
        [&]() -> std::string {
            ignore_signals(); // it must live to remove what it wrote when the stream is cut short
            local::ExtractOptions options;
            options.warn = [](const std::string& m) {
                std::fprintf(stderr, "sbox: warning: %s\n", m.c_str());
            };
            tar.extract(in, dir.get(), options);
            return {};
        },
        {in, dir.get()});
    pipe.read.reset();
    finish(
        consumer,
        [&] {
            // The consumer ends only at the end of its stream: close our end whatever happened.
            try {
                provider.download(id, spec, pipe.write.get());
            } catch (...) {
                pipe.write.reset();
                throw;
            }
            pipe.write.reset();
        },
        false);
    guard.reraise();
}

} // namespace

void copy(Provider& provider, std::string_view sandbox_id, const CopyRequest& request) {
    try {
        if (request.to_sandbox)
            copy_in(provider, sandbox_id, request);
        else
            copy_out(provider, sandbox_id, request);
    } catch (const local::Error& e) {
        rethrow_local(e);
    }
}

} // namespace sbox

#include "harness.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

extern char** environ;

namespace it {

namespace {

// A child that stops reading its stdin must not kill the test process.
[[maybe_unused]] const bool sigpipe_ignored = (signal(SIGPIPE, SIG_IGN), true);

[[noreturn]] void fail_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

std::string abbreviate(const std::string& s, std::size_t max = 600) {
    std::string out;
    for (char c : s.substr(0, max)) {
        if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f)) {
            out += c;
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
            out += buf;
        }
    }
    if (s.size() > max) out += "...(" + std::to_string(s.size()) + " bytes)";
    return out;
}

int status_of(int wait_status, bool& signaled) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status)) {
        signaled = true;
        return 128 + WTERMSIG(wait_status);
    }
    return -1;
}

void set_nonblock(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) fail_errno("fcntl");
}

} // namespace

std::ostream& operator<<(std::ostream& os, const Result& r) {
    return os << describe(r);
}

std::string describe(const Result& r) {
    std::ostringstream os;
    os << "exit " << r.status << (r.signaled ? " (signal)" : "") << (r.hung ? " (HUNG, killed)" : "")
       << "\n--- stdout ---\n"
       << abbreviate(r.out) << "\n--- stderr ---\n"
       << abbreviate(r.err);
    return os.str();
}

// ---------------------------------------------------------------------------------------------------------------
// Process

Process::Process(const std::vector<std::string>& argv, const std::vector<std::string>& env, Options options) {
    if (argv.empty()) throw std::invalid_argument("Process: empty argv");
    // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
    std::vector<char*> cargv = c_strings(argv), cenv = c_strings(env);

    int in[2] = {-1, -1}, out[2], err[2];
    if (options.pipe_stdin && pipe2(in, O_CLOEXEC) < 0) fail_errno("pipe2");
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) fail_errno("pipe2");
    int devnull = -1;
    if (!options.pipe_stdin) {
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull < 0) fail_errno("open /dev/null");
    }
    int pty_slave = -1;
    if (options.controlling_tty) {
        pty_master_ = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (pty_master_ < 0 || grantpt(pty_master_) < 0 || unlockpt(pty_master_) < 0)
            fail_errno("posix_openpt");
        const char* name = ptsname(pty_master_);
        if (!name) fail_errno("ptsname");
        pty_slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (pty_slave < 0) fail_errno("open pty");
    }

    pid_ = fork();
    if (pid_ < 0) fail_errno("fork");
    if (pid_ == 0) {
        // The harness ignores SIGPIPE; ignored signals survive exec, so restore the default.
        ::signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        int stdin_fd = options.pipe_stdin ? in[0] : devnull;
        if (dup2(stdin_fd, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) _exit(121);
        if (pty_slave >= 0 && (setsid() < 0 || ioctl(pty_slave, TIOCSCTTY, 0) < 0)) _exit(122);
        if (options.inherit_fd >= 0) {
            int flags = fcntl(options.inherit_fd, F_GETFD);
            if (flags >= 0) fcntl(options.inherit_fd, F_SETFD, flags & ~FD_CLOEXEC);
        }
        execve(cargv[0], cargv.data(), cenv.data());
        const char msg[] = "harness: execve failed\n";
        [[maybe_unused]] auto n = write(2, msg, sizeof msg - 1);
        _exit(errno == ENOENT ? 127 : 126);
    }
    if (pty_slave >= 0) close(pty_slave);
    if (options.pipe_stdin) {
        close(in[0]);
        in_ = in[1];
        set_nonblock(in_);
    } else {
        close(devnull);
    }
    close(out[1]);
    close(err[1]);
    out_ = out[0];
    err_ = err[0];
    set_nonblock(out_);
    set_nonblock(err_);
}

Process::Process(Process&& o) noexcept
    : pid_(o.pid_), in_(o.in_), out_(o.out_), err_(o.err_), pty_master_(o.pty_master_), reaped_(o.reaped_),
      wait_status_(o.wait_status_) {
    o.pid_ = -1;
    o.in_ = o.out_ = o.err_ = o.pty_master_ = -1;
    o.reaped_ = true;
}

Process::~Process() {
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    for (int fd : {in_, out_, err_, pty_master_})
        if (fd >= 0) close(fd);
}

bool Process::running() {
    if (reaped_) return false;
    pid_t r = waitpid(pid_, &wait_status_, WNOHANG);
    if (r == pid_) reaped_ = true;
    return !reaped_;
}

void Process::signal(int sig) {
    if (!reaped_) ::kill(pid_, sig);
}

Result Process::finish(const std::string& input, std::chrono::seconds limit) {
    Result r;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::size_t written = 0;
    if (in_ >= 0 && input.empty()) {
        close(in_);
        in_ = -1;
    }
    while (out_ >= 0 || err_ >= 0 || in_ >= 0) {
        pollfd fds[3];
        int n = 0;
        int* owners[3];
        if (in_ >= 0) fds[n] = {in_, POLLOUT, 0}, owners[n++] = &in_;
        if (out_ >= 0) fds[n] = {out_, POLLIN, 0}, owners[n++] = &out_;
        if (err_ >= 0) fds[n] = {err_, POLLIN, 0}, owners[n++] = &err_;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                          std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            r.hung = true;
            ::kill(pid_, SIGKILL);
            break;
        }
        int rc = poll(fds, n, static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (rc < 0) {
            if (errno == EINTR) continue;
            fail_errno("poll");
        }
        for (int i = 0; i < n; ++i) {
            if (fds[i].revents == 0) continue;
            int& fd = *owners[i];
            if (&fd == &in_) {
                ssize_t w =
                    write(fd, input.data() + written, std::min<std::size_t>(input.size() - written, 65536));
                if (w > 0) written += static_cast<std::size_t>(w);
                if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input.size() ||
                    (fds[i].revents & (POLLERR | POLLHUP))) {
                    close(fd); // EOF for the child (or it stopped reading: EPIPE)
                    fd = -1;
                }
                continue;
            }
            char buf[65536];
            ssize_t got = read(fd, buf, sizeof buf);
            if (got > 0) {
                (&fd == &out_ ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
            } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(fd);
                fd = -1;
            }
        }
    }
    for (int* fd : {&in_, &out_, &err_}) {
        if (*fd >= 0) close(*fd);
        *fd = -1;
    }
    // stdout and stderr are closed; the child (or whatever inherited them) is done writing. Wait for the
    // child, with the same safety limit.
    while (!reaped_) {
        pid_t w = waitpid(pid_, &wait_status_, WNOHANG);
        if (w == pid_) {
            reaped_ = true;
            break;
        }
        if (w < 0 && errno != EINTR) fail_errno("waitpid");
        if (std::chrono::steady_clock::now() > deadline) {
            r.hung = true;
            ::kill(pid_, SIGKILL);
            waitpid(pid_, &wait_status_, 0);
            reaped_ = true;
            break;
        }
        std::this_thread::sleep_for(5ms);
    }
    if (pty_master_ >= 0) close(pty_master_);
    pty_master_ = -1;
    r.status = status_of(wait_status_, r.signaled);
    return r;
}

// ---------------------------------------------------------------------------------------------------------------
// World

std::string sbox_bin() {
    if (const char* env = std::getenv("SBOX_BIN"); env && *env) return env;
#ifdef SBOX_BIN
    return SBOX_BIN;
#else
    return "sbox";
#endif
}

namespace {
// Under $SBOX_TEST_TMPDIR when set (the rootless run's own directory, so that its clean-up never touches
// another run's), else /tmp.
std::string make_temp_dir() {
    const char* base = std::getenv("SBOX_TEST_TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/sbox-it-XXXXXX";
    if (!mkdtemp(tmpl.data())) fail_errno("mkdtemp");
    if (chmod(tmpl.c_str(), 0755) < 0) fail_errno("chmod");
    return tmpl;
}
} // namespace

TempDir::TempDir() : path_(make_temp_dir()) {}

TempDir::~TempDir() {
    if (!remove_tree(path_)) MESSAGE("cleanup: could not remove all of " << path_);
}

World::World() {
    root_ = make_temp_dir();
    for (char** e = environ; *e; ++e) {
        std::string_view v(*e);
        if (v.starts_with("SBOX_ROOT=") || v.starts_with("SBOX_PROVIDER=") ||
            v.starts_with("XDG_CONFIG_HOME=") || v.starts_with("SBOX_BIN=") || v.starts_with("E2B_"))
            continue; // (and never a real provider's credentials)
        env_.emplace_back(v);
    }
    env_.push_back("SBOX_ROOT=" + root_);
    // No user configuration file can change the default provider under the tests' feet.
    env_.push_back("XDG_CONFIG_HOME=" + root_ + "/no-such-config-dir");
}

void World::set_env(const std::string& name, const std::string& value) {
    std::erase_if(env_, [&](const std::string& e) { return e.starts_with(name + "="); });
    env_.push_back(name + "=" + value);
}

World::~World() {
    try {
        Result r = sbox({"kill", "--all"});
        if (r.status != 0) MESSAGE("cleanup: sbox kill --all: " << describe(r));
        // A leftover mount would make the tree removal below cross into something else; remove_tree never
        // crosses file systems, and as root we detach what the engine left (it is reported by the tests).
        if (is_root()) {
            auto ms = mounts();
            std::sort(ms.rbegin(), ms.rend());
            for (auto& m : ms)
                umount2(m.c_str(), MNT_DETACH);
        }
        if (!remove_tree(root_)) MESSAGE("cleanup: could not remove all of " << root_);
    } catch (const std::exception& e) {
        MESSAGE("cleanup failed: " << e.what());
    }
}

Process World::spawn(const std::vector<std::string>& args, Process::Options options) const {
    std::vector<std::string> argv{sbox_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    return Process(argv, env_, options);
}

Result World::sbox(const std::vector<std::string>& args) const {
    return spawn(args).finish();
}

Result World::sbox_in(const std::vector<std::string>& args, const std::string& input) const {
    return spawn(args, {.pipe_stdin = true}).finish(input);
}

std::string World::create(const std::vector<std::string>& opts) const {
    std::vector<std::string> args{"create"};
    args.insert(args.end(), opts.begin(), opts.end());
    Result r = sbox(args);
    INFO("sbox create: " << describe(r));
    REQUIRE(r.status == 0);
    REQUIRE(r.out.size() == 19); // "local/" + 12 hex digits + "\n"
    REQUIRE(r.out.back() == '\n');
    return r.out.substr(0, r.out.size() - 1);
}

Result World::exec(const std::string& ref, const std::vector<std::string>& cmd,
                   const std::vector<std::string>& opts) const {
    std::vector<std::string> args{"exec"};
    args.insert(args.end(), opts.begin(), opts.end());
    args.push_back(ref);
    args.push_back("--");
    args.insert(args.end(), cmd.begin(), cmd.end());
    return sbox(args);
}

std::string World::check_output(const std::string& ref, const std::vector<std::string>& cmd,
                                const std::vector<std::string>& opts) const {
    Result r = exec(ref, cmd, opts);
    std::string what;
    for (auto& c : cmd)
        what += " " + c;
    INFO("sbox exec " << ref << " --" << what << ": " << describe(r));
    REQUIRE(r.status == 0);
    return r.out;
}

nlohmann::json World::inspect(const std::string& ref) const {
    Result r = sbox({"inspect", ref, "--json"});
    INFO("sbox inspect " << ref << " --json: " << describe(r));
    REQUIRE(r.status == 0);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    REQUIRE(j.is_object());
    return j;
}

nlohmann::json World::ls() const {
    Result r = sbox({"ls", "--json"});
    INFO("sbox ls --json: " << describe(r));
    REQUIRE(r.status == 0);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    REQUIRE(j.is_array());
    return j;
}

std::vector<std::string> World::ls_q() const {
    Result r = sbox({"ls", "-q"});
    INFO("sbox ls -q: " << describe(r));
    REQUIRE(r.status == 0);
    return lines(r.out);
}

std::string World::wait_running(Process& p) const {
    nlohmann::json list;
    bool up = eventually(
        [&] {
            list = ls();
            return (list.size() == 1 && list[0].value("status", "") == "running") || !p.running();
        },
        60s);
    INFO("ls --json: " << list.dump());
    REQUIRE(up);
    REQUIRE(p.running());
    return list[0].value("ref", "");
}

pid_t World::supervisor_pid(const std::string& ref) const {
    auto j = inspect(ref);
    INFO("inspect: " << j.dump());
    REQUIRE(j.contains("details"));
    REQUIRE(j["details"].contains("supervisor_pid"));
    REQUIRE(j["details"]["supervisor_pid"].is_number_integer());
    auto pid = j["details"]["supervisor_pid"].get<long>();
    REQUIRE(pid > 1);
    return static_cast<pid_t>(pid);
}

namespace {
std::vector<std::string> entries(const std::string& dir, bool dirs_only) {
    std::vector<std::string> out;
    DIR* d = opendir(dir.c_str());
    if (!d) return out;
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        struct stat st;
        if (dirs_only && (lstat((dir + "/" + name).c_str(), &st) < 0 || !S_ISDIR(st.st_mode))) continue;
        out.push_back(dir + "/" + name);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}
} // namespace

std::vector<std::string> World::leftovers() const {
    // The state layout: data/sandboxes/ID/, data/trash/ (removals in progress), run/sandboxes/ID.json.
    std::vector<std::string> out;
    for (auto dir : {"/data/sandboxes", "/data/trash", "/run/sandboxes"})
        for (auto& e : entries(root_ + dir, false))
            out.push_back(e);
    for (auto& e : entries(root_ + "/run", true))
        if (e != root_ + "/run/sandboxes") out.push_back(e);
    return out;
}

std::vector<std::string> World::mounts() const {
    std::vector<std::string> out;
    std::istringstream in(read_file("/proc/self/mountinfo"));
    for (std::string line; std::getline(in, line);) {
        if (line.find(root_) == std::string::npos) continue;
        std::istringstream fields(line);
        std::string id, parent, devno, root, mountpoint;
        fields >> id >> parent >> devno >> root >> mountpoint;
        out.push_back(mountpoint);
    }
    return out;
}

std::vector<pid_t> World::processes() const {
    std::vector<pid_t> out;
    const pid_t self = getpid();
    for (auto& path : entries("/proc", true)) {
        std::string name = path.substr(6);
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        pid_t pid = std::stoi(name);
        if (pid == self || !process_alive(pid)) continue;
        bool mentions = false;
        for (const char* f : {"/cmdline", "/environ", "/mountinfo"})
            if (read_file(path + f).find(root_) != std::string::npos) mentions = true;
        for (auto& fd : entries(path + "/fd", false)) {
            char target[4096];
            ssize_t n = readlink(fd.c_str(), target, sizeof target - 1);
            if (n > 0 && std::string_view(target, n).find(root_) != std::string_view::npos) mentions = true;
        }
        if (mentions) out.push_back(pid);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (const auto& s : strings)
        out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

bool is_root() {
    return geteuid() == 0;
}

std::string trim(const std::string& s) {
    auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);)
        if (!trim(line).empty()) out.push_back(line);
    return out;
}

std::string random_bytes(std::size_t n) {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(out.data() + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            fail_errno("getrandom");
        }
        got += static_cast<std::size_t>(r);
    }
    return out;
}

std::string random_hex(std::size_t n) {
    static const char digits[] = "0123456789abcdef";
    std::string bytes = random_bytes(n), out;
    for (char c : bytes)
        out += digits[static_cast<unsigned char>(c) % 16];
    return out;
}

std::string read_file(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    close(fd);
    return out;
}

bool exists(const std::string& path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0;
}

std::vector<pid_t> all_pids() {
    std::vector<pid_t> out;
    for (auto& path : entries("/proc", true)) {
        std::string name = path.substr(6);
        if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) out.push_back(std::stoi(name));
    }
    return out;
}

bool process_alive(pid_t pid) {
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    if (stat.empty()) return false;
    auto paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
    char state = stat[paren + 2];
    return state != 'Z' && state != 'X';
}

std::vector<long> process_uids(pid_t pid) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
    for (std::string line; std::getline(in, line);) {
        if (!line.starts_with("Uid:")) continue;
        std::istringstream fields(line.substr(4));
        std::vector<long> uids;
        for (long u; fields >> u;)
            uids.push_back(u);
        return uids;
    }
    return {};
}

bool eventually(const std::function<bool()>& cond, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        if (cond()) return true;
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(100ms);
    }
}

void check_gone(const World& w, pid_t sup) {
    INFO("supervisor " << sup);
    CHECK(eventually([&] { return !process_alive(sup); }, 10s));
    eventually([&] { return w.leftovers().empty(); }, 10s);
    auto left = w.leftovers();
    std::string joined;
    for (auto& l : left)
        joined += l + "\n";
    INFO("left under SBOX_ROOT:\n" << joined);
    CHECK(left.empty());
    CHECK(w.mounts().empty());
}

bool has_subid_ranges() {
    passwd* pw = getpwuid(getuid());
    std::string user = pw ? pw->pw_name : "", uid = std::to_string(getuid());
    auto has = [&](const char* file) {
        std::istringstream in(read_file(file));
        for (std::string line; std::getline(in, line);) {
            auto a = line.find(':'), b = line.rfind(':');
            if (a == std::string::npos || a == b) continue;
            std::string who = line.substr(0, a);
            if (who != user && who != uid) continue;
            if (std::strtol(line.substr(b + 1).c_str(), nullptr, 10) >= 65536) return true;
        }
        return false;
    };
    return has("/etc/subuid") && has("/etc/subgid");
}

std::string ns_of(pid_t pid, const std::string& name) {
    std::string path =
        (pid == 0 ? std::string("/proc/self") : "/proc/" + std::to_string(pid)) + "/ns/" + name;
    char target[256];
    ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
    return n > 0 ? std::string(target, static_cast<std::size_t>(n)) : std::string();
}

void become_subreaper() {
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) fail_errno("prctl(PR_SET_CHILD_SUBREAPER)");
}

std::vector<pid_t> descendants() {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    std::map<pid_t, std::vector<pid_t>> children;
    for (auto& path : entries("/proc", true)) {
        std::string name = path.substr(6);
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        std::string stat = read_file(path + "/stat");
        auto paren = stat.rfind(')');
        if (paren == std::string::npos) continue;
        std::istringstream fields(stat.substr(paren + 2));
        char state;
        pid_t ppid;
        if (!(fields >> state >> ppid) || state == 'Z' || state == 'X') continue;
        children[ppid].push_back(std::stoi(name));
    }
    std::vector<pid_t> out, todo{getpid()};
    while (!todo.empty()) {
        pid_t p = todo.back();
        todo.pop_back();
        for (pid_t c : children[p]) {
            out.push_back(c);
            todo.push_back(c);
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

bool remove_tree(const std::string& path) {
    // First make every directory of ours writable and searchable (a sandbox may have left read-only ones),
    // then remove depth-first.
    nftw(
        path.c_str(),
        [](const char* p, const struct stat* st, int type, FTW*) {
            if (type == FTW_D && st->st_uid == geteuid()) chmod(p, (st->st_mode & 07777) | S_IRWXU);
            return 0;
        },
        32, FTW_PHYS | FTW_MOUNT);
    static bool ok;
    ok = true;
    nftw(
        path.c_str(),
        [](const char* p, const struct stat* st, int type, FTW*) {
            if (type == FTW_DP || type == FTW_D) {
                if (rmdir(p) < 0) ok = false;
            } else if (unlink(p) < 0 && (st == nullptr || !S_ISDIR(st->st_mode))) {
                ok = false;
            }
            return 0;
        },
        32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    return ok && !exists(path);
}

} // namespace it

#include "terminal.hpp"

#include <cerrno>
#include <cstring>
#include <sstream>
#include <system_error>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace it {

namespace {

[[noreturn]] void fail_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

void set_cloexec(int fd) {
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) fail_errno("fcntl(FD_CLOEXEC)");
}

} // namespace

PtySession::PtySession(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       Options options) {
    if (argv.empty()) throw std::invalid_argument("PtySession: empty argv");
    std::vector<char*> cargv = c_strings(argv), cenv = c_strings(env);

    struct winsize size = {};
    size.ws_row = options.rows;
    size.ws_col = options.cols;
    if (openpty(&master_, &slave_, nullptr, nullptr, &size) < 0) fail_errno("openpty");
    set_cloexec(master_);
    set_cloexec(slave_);
    if (tcgetattr(slave_, &initial_) < 0) fail_errno("tcgetattr");
    int in[2] = {-1, -1};
    if (options.piped_stdin && pipe2(in, O_CLOEXEC) < 0) fail_errno("pipe2");

    pid_ = fork();
    if (pid_ < 0) fail_errno("fork");
    if (pid_ == 0) {
        ::signal(SIGPIPE, SIG_DFL); // the harness ignores it; ignored signals survive exec
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        // A session of its own whose controlling terminal is the pty: the program is in the terminal's
        // foreground process group, as a command started by a shell in a terminal window.
        if (setsid() < 0 || ioctl(slave_, TIOCSCTTY, 0) < 0) _exit(122);
        int stdin_fd = options.piped_stdin ? in[0] : slave_;
        if (dup2(stdin_fd, 0) < 0 || dup2(slave_, 1) < 0 || dup2(slave_, 2) < 0) _exit(121);
        execve(cargv[0], cargv.data(), cenv.data());
        const char msg[] = "harness: execve failed\n";
        [[maybe_unused]] auto n = write(2, msg, sizeof msg - 1);
        _exit(errno == ENOENT ? 127 : 126);
    }
    if (options.piped_stdin) {
        close(in[0]);
        // Small inputs only (they fit the pipe's buffer): written at once, then EOF.
        const std::string& data = *options.piped_stdin;
        std::size_t done = 0;
        while (done < data.size()) {
            ssize_t n = write(in[1], data.data() + done, data.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) break;
            done += static_cast<std::size_t>(n);
        }
        close(in[1]);
    }
    int flags = fcntl(master_, F_GETFL);
    if (flags < 0 || fcntl(master_, F_SETFL, flags | O_NONBLOCK) < 0) fail_errno("fcntl(O_NONBLOCK)");
}

PtySession PtySession::sbox(const World& w, const std::vector<std::string>& args, Options options,
                            const std::string& term) {
    std::vector<std::string> argv{sbox_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> env;
    for (const auto& e : w.env())
        if (!e.starts_with("TERM=")) env.push_back(e);
    env.push_back("TERM=" + term);
    return PtySession(argv, env, options);
}

PtySession::PtySession(PtySession&& o) noexcept
    : pid_(o.pid_), master_(o.master_), slave_(o.slave_), reaped_(o.reaped_), wait_status_(o.wait_status_),
      screen_(std::move(o.screen_)), cursor_(o.cursor_), initial_(o.initial_) {
    o.pid_ = -1;
    o.master_ = o.slave_ = -1;
    o.reaped_ = true;
}

PtySession::~PtySession() {
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    for (int fd : {master_, slave_})
        if (fd >= 0) close(fd);
}

void PtySession::type(const std::string& keys) {
    std::size_t done = 0;
    while (done < keys.size()) {
        ssize_t n = write(master_, keys.data() + done, keys.size() - done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            read_available(100); // the program is not reading: let its output out meanwhile
            continue;
        }
        fail_errno("write to the terminal");
    }
}

void PtySession::read_available(int timeout_ms) {
    pollfd p = {master_, POLLIN, 0};
    int rc = poll(&p, 1, timeout_ms);
    if (rc < 0 && errno != EINTR) fail_errno("poll");
    if (rc <= 0) return;
    char buf[65536];
    for (;;) {
        ssize_t n = read(master_, buf, sizeof buf);
        if (n > 0) {
            screen_.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return; // EAGAIN: nothing more now (the test holds the slave, so never EIO)
    }
}

bool PtySession::expect(const std::string& text, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        if (auto pos = screen_.find(text, cursor_); pos != std::string::npos) {
            cursor_ = pos + text.size();
            return true;
        }
        if (!running()) {
            // Whatever it wrote before it ended is still in the terminal.
            std::size_t before;
            do {
                before = screen_.size();
                read_available(0);
            } while (screen_.size() != before);
            auto pos = screen_.find(text, cursor_);
            if (pos != std::string::npos) cursor_ = pos + text.size();
            return pos != std::string::npos;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                          std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        read_available(static_cast<int>(std::min<long long>(left.count(), 200)));
    }
}

void PtySession::resize(unsigned short rows, unsigned short cols) {
    struct winsize size = {};
    size.ws_row = rows;
    size.ws_col = cols;
    if (ioctl(master_, TIOCSWINSZ, &size) < 0) fail_errno("TIOCSWINSZ");
}

struct termios PtySession::settings() const {
    struct termios t;
    if (tcgetattr(slave_, &t) < 0) fail_errno("tcgetattr");
    return t;
}

bool PtySession::wait_raw(std::chrono::seconds limit) {
    return eventually(
               [&] {
                   read_available(0); // keep the program's output flowing
                   struct termios t = settings();
                   return (t.c_lflag & (ICANON | ECHO)) == 0 || !running();
               },
               limit) &&
           running();
}

std::string PtySession::terminal_id() const {
    struct stat st;
    if (fstat(slave_, &st) < 0) fail_errno("fstat");
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_rdev);
}

std::string PtySession::pending_input() const {
    // In canonical mode a partial line is not readable: read in non-canonical mode, then put the settings
    // back.
    struct termios saved = settings(), raw = saved;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(slave_, TCSANOW, &raw) < 0) fail_errno("tcsetattr");
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = read(slave_, buf, sizeof buf);
        if (n > 0) {
            out.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        break;
    }
    if (tcsetattr(slave_, TCSANOW, &saved) < 0) fail_errno("tcsetattr");
    return out;
}

void PtySession::signal(int sig) {
    if (!reaped_) ::kill(pid_, sig);
}

bool PtySession::running() {
    if (reaped_) return false;
    if (waitpid(pid_, &wait_status_, WNOHANG) == pid_) reaped_ = true;
    return !reaped_;
}

Result PtySession::finish(std::chrono::seconds limit) {
    Result r;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (running()) {
        if (std::chrono::steady_clock::now() > deadline) {
            r.hung = true;
            ::kill(pid_, SIGKILL);
            waitpid(pid_, &wait_status_, 0);
            reaped_ = true;
            break;
        }
        read_available(100);
    }
    std::size_t before;
    do {
        before = screen_.size();
        read_available(0);
    } while (screen_.size() != before);
    if (WIFEXITED(wait_status_)) {
        r.status = WEXITSTATUS(wait_status_);
    } else if (WIFSIGNALED(wait_status_)) {
        r.signaled = true;
        r.status = 128 + WTERMSIG(wait_status_);
    }
    r.out = screen_;
    return r;
}

bool same_settings(const struct termios& a, const struct termios& b) {
    return a.c_iflag == b.c_iflag && a.c_oflag == b.c_oflag && a.c_cflag == b.c_cflag &&
           a.c_lflag == b.c_lflag && cfgetispeed(&a) == cfgetispeed(&b) &&
           cfgetospeed(&a) == cfgetospeed(&b) && std::memcmp(a.c_cc, b.c_cc, sizeof a.c_cc) == 0;
}

std::string describe(const struct termios& t) {
    std::ostringstream os;
    os << std::hex << "iflag=" << t.c_iflag << " oflag=" << t.c_oflag << " cflag=" << t.c_cflag
       << " lflag=" << t.c_lflag;
    return os.str();
}

} // namespace it

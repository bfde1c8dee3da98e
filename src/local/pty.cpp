#include "local/pty.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>

namespace sbox::local {

namespace {

// Moves `fd` above 2, so that making the slave fds 0, 1 and 2 cannot close it (sbox may have been started
// with one of those closed).
Fd above_stdio(Fd fd) {
    if (fd.get() > 2) return fd;
    Fd moved(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
    if (!moved) throw_errno("fcntl(F_DUPFD_CLOEXEC)");
    return moved;
}

} // namespace

std::optional<struct winsize> user_terminal_size() {
    for (int fd : {0, 1}) {
        struct winsize size = {};
        if (::ioctl(fd, TIOCGWINSZ, &size) == 0) return size;
    }
    return std::nullopt;
}

RawTerminal::RawTerminal(int fd) : fd_(fd) {
    check(::tcgetattr(fd, &saved_), "read the terminal's settings (tcgetattr)");
    struct termios raw = saved_;
    ::cfmakeraw(&raw);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    check(::tcsetattr(fd, TCSANOW, &raw), "put the terminal in raw mode (tcsetattr)");
}

RawTerminal::~RawTerminal() {
    while (::tcsetattr(fd_, TCSANOW, &saved_) == -1 && errno == EINTR) {
    }
}

Fd open_sandbox_pty(const std::optional<struct winsize>& size) {
    // /dev/ptmx is the sandbox's own (a link to its devpts instance's ptmx): the pty is numbered, owned and
    // visible in the sandbox only.
    Fd master(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master) throw_errno("open /dev/ptmx");
    master = above_stdio(std::move(master));
    int unlock = 0;
    check(::ioctl(master.get(), TIOCSPTLCK, &unlock), "unlock the pty (TIOCSPTLCK)");
    // The slave through the master itself, not by a path that something inside could have replaced.
    Fd slave(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!slave) throw_errno("open the pty's terminal (TIOCGPTPEER)");
    slave = above_stdio(std::move(slave));
    if (size) check(::ioctl(slave.get(), TIOCSWINSZ, &*size), "set the pty's size (TIOCSWINSZ)");
    check(::ioctl(slave.get(), TIOCSCTTY, 0), "make the pty the controlling terminal (TIOCSCTTY)");
    for (int fd = 0; fd < 3; ++fd)
        check(::dup2(slave.get(), fd), "dup2 the pty onto " + std::to_string(fd));
    return master;
}

void send_pty_master(int sock, int master) {
    char text[] = "pty";
    struct iovec iov = {text, sizeof text - 1};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &master, sizeof master);
    while (::sendmsg(sock, &msg, MSG_NOSIGNAL) == -1)
        if (errno != EINTR) throw_errno("send the pty to the sbox process");
}

Message receive_message(int sock) {
    char text[4096];
    struct iovec iov = {text, sizeof text};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) == -1)
        if (errno != EINTR) throw_errno("receive from the sandbox");
    Message out;
    if (n <= 0) return out;
    out.text.assign(text, static_cast<size_t>(n));
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(sizeof(int)))
            continue;
        int fd;
        std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
        out.fd.reset(fd);
    }
    return out;
}

PtyRelay::PtyRelay(Fd master, bool forward_input, int in, int out)
    : master_(std::move(master)), forward_input_(forward_input), in_(in), out_(out) {
    // Only the master is made non-blocking: the user's stdin and stdout are open file descriptions shared
    // with the shell that started sbox, which must not find them changed.
    int flags = ::fcntl(master_.get(), F_GETFL);
    if (flags == -1 || ::fcntl(master_.get(), F_SETFL, flags | O_NONBLOCK) == -1)
        throw_errno("fcntl(O_NONBLOCK) on the pty");
}

void PtyRelay::take_terminal() {
    if (::isatty(in_)) raw_.emplace(in_);
}

void PtyRelay::poll_fds(struct pollfd* fds) const {
    fds[0] = {master_open_ ? master_.get() : -1,
              static_cast<short>(POLLIN | (pending_input_.empty() ? 0 : POLLOUT)), 0};
    // No more input is read while the pty has no room for what came before: the user's terminal waits.
    fds[1] = {forward_input_ && pending_input_.empty() ? in_ : -1, POLLIN, 0};
}

void PtyRelay::handle(const struct pollfd* fds) {
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) read_master();
    if ((fds[0].revents & POLLOUT) && master_open_) flush_input();
    if (fds[1].revents) read_input();
}

void PtyRelay::read_master() {
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(master_.get(), buf, sizeof buf);
        if (n > 0) {
            write_output(buf, static_cast<size_t>(n));
            return;
        }
        if (n == -1 && errno == EINTR) continue;
        if (n == -1 && errno == EAGAIN) return;
        // EIO: every process closed the terminal. Nothing more will come; polling on would only spin on
        // POLLHUP.
        master_open_ = false;
        pending_input_.clear();
        return;
    }
}

void PtyRelay::read_input() {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(in_, buf, sizeof buf)) == -1 && errno == EINTR) {
    }
    if (n > 0) {
        pending_input_.assign(buf, static_cast<size_t>(n));
        flush_input();
        return;
    }
    if (n == -1 && errno == EAGAIN) return;
    // End of input (the user's terminal hung up, or a non-terminal stdin ended): nothing more to forward.
    forward_input_ = false;
}

void PtyRelay::flush_input() {
    while (!pending_input_.empty()) {
        ssize_t n = ::write(master_.get(), pending_input_.data(), pending_input_.size());
        if (n > 0) {
            pending_input_.erase(0, static_cast<size_t>(n));
            continue;
        }
        if (n == -1 && errno == EINTR) continue;
        if (n == -1 && errno == EAGAIN) return; // the pty is full: poll says when it has room
        pending_input_.clear();                 // the pty is gone
        return;
    }
}

void PtyRelay::write_output(const char* data, size_t size) {
    while (size > 0 && !output_broken_) {
        ssize_t n = ::write(out_, data, size);
        if (n > 0) {
            data += n;
            size -= static_cast<size_t>(n);
            continue;
        }
        if (n == -1 && errno == EINTR) continue;
        if (n == -1 && errno == EAGAIN) {
            // Someone made our stdout non-blocking: wait for room rather than lose output.
            struct pollfd p = {out_, POLLOUT, 0};
            if (::poll(&p, 1, -1) == -1 && errno != EINTR) output_broken_ = true;
            continue;
        }
        output_broken_ = true; // stdout went away (EPIPE): the command's output is dropped from now on
    }
}

void PtyRelay::resize() {
    if (!master_) return;
    if (auto size = user_terminal_size()) (void)::ioctl(master_.get(), TIOCSWINSZ, &*size);
}

void PtyRelay::drain() {
    // A non-blocking read of a pty master waits for the kernel's pending buffer work first, so EAGAIN means
    // nothing is left; EIO means no process holds the terminal any more.
    while (master_open_) {
        char buf[65536];
        ssize_t n = ::read(master_.get(), buf, sizeof buf);
        if (n > 0) {
            write_output(buf, static_cast<size_t>(n));
            continue;
        }
        if (n == -1 && errno == EINTR) continue;
        if (n == -1 && errno == EAGAIN) return;
        master_open_ = false;
    }
}

void PtyRelay::hang_up() {
    master_.reset();
    master_open_ = false;
    forward_input_ = false;
    pending_input_.clear();
}

} // namespace sbox::local

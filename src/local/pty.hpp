// Interactive terminals for `exec -t`, `run -t` and `sbox shell`, docker's way: the command gets a
// pseudo-terminal of the sandbox's own devpts instance (so nothing inside can reach a terminal of the host),
// as its controlling terminal and its stdin, stdout and stderr; the sbox process on the host holds the master
// and relays bytes between it and the user's terminal, which it keeps in raw mode meanwhile and restores on
// every way out.
//
// The pty is made by the command's own process, inside the sandbox and with the command's credentials (so the
// terminal belongs to the command's user, as login(1) would make it), and its master travels back to the sbox
// process over a socket (SCM_RIGHTS).
#pragma once

#include <sys/ioctl.h>
#include <termios.h>

#include <optional>
#include <string>

#include "local/system.hpp"

struct pollfd;

namespace sbox::local {

// The size of the user's terminal: stdin's, else stdout's; nullopt when neither is a terminal.
std::optional<struct winsize> user_terminal_size();

// Puts the terminal `fd` in raw mode (no echo, no line editing, no signals from keys, no output processing:
// every byte goes to the command, whose own pty does all that) and restores exactly the settings it had when
// the object goes, however it goes (return, exception, a terminating signal read from a signalfd).
class RawTerminal {
  public:
    explicit RawTerminal(int fd);
    ~RawTerminal();
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;

  private:
    int fd_;
    struct termios saved_;
};

// In the command's process, inside the sandbox, after it took its user's credentials and leads a new session:
// opens a pty of the sandbox's devpts (/dev/ptmx), gives it `size` (when known), makes its slave the
// controlling terminal and fds 0, 1 and 2, and returns the master. Throws Error.
Fd open_sandbox_pty(const std::optional<struct winsize>& size);

// The master's journey to the sbox process: one SOCK_SEQPACKET message "pty" carrying the descriptor.
void send_pty_master(int sock, int master);
// The next message on `sock`: its text ("" when the peer closed) and the descriptor it carried, if any.
struct Message {
    std::string text;
    Fd fd;
};
Message receive_message(int sock);

// Relays the bytes between the user's terminal and a pty master: the master's output to `out` (stdout), and
// with `forward_input` stdin to the master. Driven by the caller's poll loop: poll_fds() fills two pollfd
// entries (fd -1 where there is nothing to wait for), handle() takes them back after poll.
class PtyRelay {
  public:
    PtyRelay(Fd master, bool forward_input, int in = 0, int out = 1);
    static constexpr int kPollFds = 2;
    // Puts the user's terminal (stdin, when it is one) in raw mode until the relay goes.
    void take_terminal();
    bool raw() const { return raw_.has_value(); }
    void poll_fds(struct pollfd* fds) const;
    void handle(const struct pollfd* fds);
    // The user's terminal changed size (SIGWINCH): the pty takes the new size, and the kernel tells the
    // command's foreground process group with a SIGWINCH of its own.
    void resize();
    // The command ended: what it wrote and the kernel still holds goes out (without waiting for processes
    // that may have inherited the terminal and live on).
    void drain();
    // Closes the master: the kernel hangs up the pty, sending SIGHUP to the command's session, as a terminal
    // going away does (ssh's behaviour when its client is ended).
    void hang_up();

  private:
    void read_master();
    void read_input();
    void flush_input();
    void write_output(const char* data, size_t size);

    Fd master_;
    bool master_open_ = true; // false once the slave is closed by everyone (EIO)
    bool forward_input_;
    int in_, out_;
    bool output_broken_ = false; // stdout went away: the output is read and dropped
    std::string pending_input_;  // stdin bytes the pty had no room for yet
    std::optional<RawTerminal> raw_;
};

} // namespace sbox::local

// A terminal for the integration tests: a pseudo-terminal the test makes (openpty) and plays the user on. The
// program under test runs as the leader of a new session whose controlling terminal is that pty, with the pty
// as its stdin, stdout and stderr, as from a shell in a terminal window; the test types keys into the master,
// reads what the "screen" shows, resizes the window, and looks at the terminal's settings and at the input
// that a shell on it would read next.
#pragma once

#include <termios.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "harness.hpp"

namespace it {

class PtySession {
  public:
    struct Options {
        unsigned short rows = 24, cols = 80;
        // stdin is a pipe carrying this (then EOF) instead of the terminal.
        std::optional<std::string> piped_stdin;
    };
    PtySession(const std::vector<std::string>& argv, const std::vector<std::string>& env, Options options);
    PtySession(const std::vector<std::string>& argv, const std::vector<std::string>& env)
        : PtySession(argv, env, Options{}) {}
    // `sbox ARGS...` in world `w`'s environment, with TERM set to `term`.
    static PtySession sbox(const World& w, const std::vector<std::string>& args, Options options,
                           const std::string& term = "xterm");
    static PtySession sbox(const World& w, const std::vector<std::string>& args) {
        return sbox(w, args, Options{});
    }
    PtySession(PtySession&& other) noexcept;
    PtySession(const PtySession&) = delete;
    PtySession& operator=(const PtySession&) = delete;
    PtySession& operator=(PtySession&&) = delete;
    ~PtySession(); // still running: SIGKILL, reaped

    pid_t pid() const { return pid_; }
    // Keystrokes, as a terminal sends them: "\r" for Enter, "\x03" for Ctrl-C, "\x04" for Ctrl-D.
    void type(const std::string& keys);
    // Reads the screen until `text` appears after what earlier expect() calls matched; then moves past it.
    // False when the program ended, or `limit` passed, without showing it (a safety net, not a timing check).
    bool expect(const std::string& text, std::chrono::seconds limit = 60s);
    // Everything shown so far.
    const std::string& screen() const { return screen_; }
    // Resizes the window, as a terminal emulator does: the kernel sends SIGWINCH to the foreground process
    // group.
    void resize(unsigned short rows, unsigned short cols);
    // The terminal's current settings (what a shell would find after the program ended), and those it had
    // before the program started.
    struct termios settings() const;
    const struct termios& initial_settings() const { return initial_; }
    // Waits (up to `limit`) until the program has put the terminal in raw mode (no ICANON, no ECHO): keys
    // typed from then on reach it as they are, not through the terminal's own line editing.
    bool wait_raw(std::chrono::seconds limit = 60s);
    // "st_dev:st_rdev" of the terminal, as fstat(2) shows it to any process that has it open.
    std::string terminal_id() const;
    // What a shell on this terminal would read now: the bytes waiting in its input queue (the settings are
    // left as they were).
    std::string pending_input() const;
    void signal(int sig);
    bool running();
    // Waits for the program's exit (SIGKILL after `limit`: hung), reading the screen meanwhile; `out` is the
    // whole screen, `err` empty (stderr is the terminal too).
    Result finish(std::chrono::seconds limit = 120s);

  private:
    void read_available(int timeout_ms);
    pid_t pid_ = -1;
    int master_ = -1, slave_ = -1;
    bool reaped_ = false;
    int wait_status_ = 0;
    std::string screen_;
    std::size_t cursor_ = 0;
    struct termios initial_ = {};
};

// Whether two terminal settings are the same (flags, speeds and control characters).
bool same_settings(const struct termios& a, const struct termios& b);
std::string describe(const struct termios& t);

} // namespace it

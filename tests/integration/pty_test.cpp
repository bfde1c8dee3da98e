// Interactive terminals: `sbox shell`, `exec -t`, `run -t`. Each test plays the user on a pseudo-terminal of
// its own (terminal.hpp): it types keys, reads the screen, resizes the window, and checks that the terminal
// is left as it was. These also run as an unprivileged user (run-unprivileged.sh).
#include <signal.h>
#include <termios.h>

#include <doctest/doctest.h>

#include "harness.hpp"
#include "terminal.hpp"

using namespace it;

namespace {

bool is_raw(const struct termios& t) {
    return (t.c_lflag & (ICANON | ECHO | ISIG)) == 0;
}

// Whether `ps` in the sandbox shows a process whose arguments contain `args`.
bool runs(const World& w, const std::string& ref, const std::string& args) {
    return w.check_output(ref, {"ps", "-e", "-o", "args="}).find(args) != std::string::npos;
}

// The shell started by `sbox shell` is ready: it ran a command typed into it.
void shell_ready(PtySession& s) {
    REQUIRE(s.wait_raw());
    s.type("echo ready-$((40+2))\r");
    INFO("screen:\n" << s.screen());
    REQUIRE(s.expect("ready-42"));
}

void check_restored(const PtySession& s) {
    INFO("before: " << describe(s.initial_settings()) << "\nafter:  " << describe(s.settings()));
    CHECK(same_settings(s.settings(), s.initial_settings()));
}

// A session whose sandbox was its own (shell without REF, run -t): the terminal is back and the sandbox gone.
void check_restored_and_removed(const World& w, const PtySession& s) {
    check_restored(s);
    CHECK(w.ls().empty());
    CHECK(eventually([&] { return w.leftovers().empty(); }, 10s));
}

// Tries TIOCSTI with `payload` on fds 0, 1, 2 and /dev/tty, and prints what each is and how it went:
// "TIOCSTI 0=DEV:RDEV:RESULT 1=... tty=... END", RESULT being "ok" or the errno's name.
const std::string kInjector = R"(import errno, fcntl, os, sys, termios
payload = sys.argv[1].encode()
def attempt(fd):
    try:
        st = os.fstat(fd)
    except OSError:
        return "closed"
    ident = "%d:%d" % (st.st_dev, st.st_rdev)
    try:
        for b in payload:
            fcntl.ioctl(fd, termios.TIOCSTI, bytes([b]))
        return ident + ":ok"
    except OSError as e:
        return ident + ":" + errno.errorcode.get(e.errno, str(e.errno))
out = ["%d=%s" % (fd, attempt(fd)) for fd in (0, 1, 2)]
try:
    out.append("tty=" + attempt(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)))
except OSError as e:
    out.append("tty=open:" + errno.errorcode.get(e.errno, str(e.errno)))
print("TIOCSTI " + " ".join(out) + " END", flush=True)
)";

// The injector's report on the screen.
std::string injection_report(const std::string& screen) {
    auto b = screen.rfind("TIOCSTI ");
    if (b == std::string::npos) return {};
    auto e = screen.find(" END", b);
    return e == std::string::npos ? std::string() : screen.substr(b, e - b);
}

} // namespace

TEST_SUITE("rootless-capable") {

    TEST_CASE("pty: shell REF - the sandbox's terminal echoes, has the window's size and follows resizes") {
        World w;
        auto ref = w.create();
        auto s = PtySession::sbox(w, {"shell", ref}, {.rows = 24, .cols = 80}, "vt100");
        shell_ready(s);
        // The user's terminal is raw meanwhile: it echoes nothing itself, Ctrl-C is a byte, not a signal.
        CHECK(is_raw(s.settings()));
        // What is typed comes back from the sandbox's own terminal (the outer one echoes nothing now).
        s.type("echo typed-$((1+2))-text");
        CHECK(s.expect("echo typed-$((1+2))-text"));
        s.type("\r");
        CHECK(s.expect("typed-3-text"));
        // TERM comes from the user's environment; the terminal is the sandbox's first pty.
        s.type("echo term-$TERM-$(tty)-end\r");
        CHECK(s.expect("term-vt100-/dev/pts/0-end"));
        s.type("stty size\r");
        CHECK(s.expect("24 80"));
        // A resize: the kernel tells sbox (SIGWINCH), sbox tells the sandbox's terminal.
        s.resize(40, 100);
        bool resized = false;
        for (int i = 0; i < 50 && !resized; ++i) {
            std::string done = "size-done-" + std::to_string(1000 + i);
            s.type("stty size; echo size-done-$((1000+" + std::to_string(i) + "))\r");
            std::size_t from = s.screen().size();
            REQUIRE(s.expect(done));
            resized = s.screen().find("40 100", from) != std::string::npos;
        }
        INFO("screen:\n" << s.screen());
        CHECK(resized);
        s.type("exit 7\r");
        Result r = s.finish();
        INFO(describe(r));
        CHECK_FALSE(r.hung);
        CHECK(r.status == 7);
        check_restored(s);
        // The sandbox lives on; the shell is gone.
        CHECK(w.ls().size() == 1);
        CHECK(eventually([&] { return !runs(w, ref, "-bash"); }));
    }

    TEST_CASE("pty: Ctrl-C interrupts the foreground command, Ctrl-Z stops it, the shell lives on - Ctrl-D "
              "ends it") {
        World w;
        auto ref = w.create();
        auto s = PtySession::sbox(w, {"shell", ref});
        shell_ready(s);
        s.type("sleep 1001\r");
        REQUIRE(eventually([&] { return runs(w, ref, "sleep 1001"); }));
        s.type("\x03");
        CHECK(eventually([&] { return !runs(w, ref, "sleep 1001"); }));
        s.type("echo alive-$((1+1))\r");
        CHECK(s.expect("alive-2"));

        s.type("sleep 1002\r");
        REQUIRE(eventually([&] { return runs(w, ref, "sleep 1002"); }));
        s.type("\x1a");
        CHECK(s.expect("Stopped"));
        CHECK(
            w.check_output(ref, {"sh", "-c", "ps -e -o stat=,args= | grep '[s]leep 1002'"}).starts_with("T"));
        // A prompt of our own, shown once readline is reading the next line (its terminal mode set): a Ctrl-D
        // typed earlier would meet the terminal in the mode the shell gives commands, as a plain byte.
        s.type("PS1='prompt-$((6*7))> '; kill -9 %1; until [ -z \"$(jobs)\" ]; do sleep 0.1; done; echo "
               "killed-$((2+2))\r");
        // Until bash has reaped the killed job: it would refuse the Ctrl-D below ("There are stopped jobs").
        CHECK(s.expect("killed-4"));
        CHECK(s.expect("prompt-42> "));

        s.type("\x04"); // end of input at an empty prompt: the shell exits
        Result r = s.finish();
        INFO(describe(r));
        CHECK_FALSE(r.hung);
        CHECK(r.status == 0);
        check_restored(s);
    }

    TEST_CASE("pty: exec -it - Ctrl-C kills cat (130), Ctrl-D ends its input (0)") {
        World w;
        auto ref = w.create();
        {
            auto s = PtySession::sbox(w, {"exec", "-it", ref, "--", "cat"});
            REQUIRE(s.wait_raw());
            s.type("\x03");
            Result r = s.finish();
            INFO(describe(r));
            CHECK(r.status == 130);
            CHECK_FALSE(r.signaled);
            check_restored(s);
        }
        {
            auto s = PtySession::sbox(w, {"exec", "-it", ref, "--", "cat"});
            REQUIRE(s.wait_raw());
            s.type("line-one\r");
            CHECK(s.expect("line-one")); // the sandbox's terminal echoes it
            CHECK(s.expect("line-one")); // and cat writes it
            s.type("\x04");
            Result r = s.finish();
            INFO(describe(r));
            CHECK(r.status == 0);
            check_restored(s);
        }
    }

    TEST_CASE(
        "pty: shell without REF - a fresh sandbox with the create options, removed when the shell ends") {
        World w;
        auto s =
            PtySession::sbox(w, {"shell", "-e", "GREETING=hello", "-w", "/tmp", "--name", "interactive"});
        shell_ready(s);
        auto list = w.ls();
        REQUIRE(list.size() == 1);
        CHECK(list[0]["name"] == "interactive");
        CHECK(list[0]["details"]["ephemeral"] == true);
        s.type("echo $GREETING-$(pwd)-$(hostname)-$0\r");
        CHECK(s.expect("hello-/tmp-interactive--bash"));
        s.type("exit 5\r");
        Result r = s.finish();
        INFO(describe(r));
        CHECK(r.status == 5);
        check_restored_and_removed(w, s);
    }

    TEST_CASE("pty: run -it works like shell, and run -t without -i relays output but no input") {
        World w;
        {
            auto s = PtySession::sbox(w, {"run", "-it", "--", "sh"});
            REQUIRE(s.wait_raw());
            s.type("echo run-$((3+3)); tty\r");
            CHECK(s.expect("run-6"));
            CHECK(s.expect("/dev/pts/0"));
            s.type("exit 3\r");
            Result r = s.finish();
            CHECK(r.status == 3);
            check_restored(s);
        }
        {
            // -t alone: the terminal stays as it is (not raw), the command's stdin is the pty with nothing
            // typed into it, and stdout and stderr both come through the pty.
            auto s = PtySession::sbox(
                w,
                {"run", "-t", "--", "sh", "-c", "stty size; tty; echo to-stderr >&2; read x; echo read-$?"},
                {.rows = 33, .cols = 99});
            CHECK(s.expect("33 99"));
            CHECK(s.expect("/dev/pts/0"));
            CHECK(s.expect("to-stderr"));
            CHECK_FALSE(is_raw(s.settings()));
            s.signal(SIGINT); // as Ctrl-C in the (cooked) terminal would: the sandbox goes
            Result r = s.finish();
            INFO(describe(r));
            CHECK(r.status == 130);
            CHECK(r.out.find("read-") == std::string::npos);
            check_restored(s);
        }
        // -t with stdout on a pipe: the output is relayed all the same (with the pty's CR LF line ends).
        Result r = w.sbox({"run", "-t", "--", "sh", "-c", "tty; echo to-stderr >&2; exit 4"});
        INFO(describe(r));
        CHECK(r.status == 4);
        CHECK(r.out == "/dev/pts/0\r\nto-stderr\r\n");
        CHECK(r.err.empty());
        CHECK(w.ls().empty());
        CHECK(eventually([&] { return w.leftovers().empty(); }, 10s));
    }

    TEST_CASE("pty: the terminal is restored when the sandbox is killed from elsewhere") {
        World w;
        {
            auto ref = w.create();
            auto s = PtySession::sbox(w, {"shell", ref});
            shell_ready(s);
            Result k = w.sbox({"kill", ref});
            INFO("kill: " << describe(k));
            REQUIRE(k.status == 0);
            Result r = s.finish();
            INFO(describe(r));
            CHECK_FALSE(r.hung);
            CHECK(r.status == 128 + SIGKILL); // the shell died with its sandbox
            check_restored(s);
        }
        {
            // Without REF, sbox is the sandbox's keeper: kill asks it to go (SIGTERM), and it removes the
            // sandbox and puts the terminal back.
            auto s = PtySession::sbox(w, {"shell"});
            shell_ready(s);
            auto list = w.ls();
            REQUIRE(list.size() == 1);
            Result k = w.sbox({"kill", list[0]["ref"].get<std::string>()});
            INFO("kill: " << describe(k));
            REQUIRE(k.status == 0);
            Result r = s.finish();
            INFO(describe(r));
            CHECK_FALSE(r.hung);
            CHECK(r.status == 128 + SIGTERM);
            check_restored_and_removed(w, s);
        }
    }

    TEST_CASE("pty: SIGTERM or SIGHUP to sbox hangs the session up and restores the terminal") {
        for (int sig : {SIGTERM, SIGHUP}) {
            CAPTURE(sig);
            World w;
            {
                // exec: the shell inside is hung up (SIGHUP), the sandbox stays.
                auto ref = w.create();
                auto s = PtySession::sbox(w, {"shell", ref});
                shell_ready(s);
                REQUIRE(runs(w, ref, "-bash"));
                s.signal(sig);
                Result r = s.finish();
                INFO(describe(r));
                CHECK_FALSE(r.hung);
                CHECK(r.status == 128 + sig);
                check_restored(s);
                CHECK(eventually([&] { return !runs(w, ref, "-bash"); }));
                CHECK(w.sbox({"kill", ref}).status == 0);
            }
            {
                // shell without REF: the sandbox is removed.
                auto s = PtySession::sbox(w, {"shell"});
                shell_ready(s);
                s.signal(sig);
                Result r = s.finish();
                INFO(describe(r));
                CHECK_FALSE(r.hung);
                CHECK(r.status == 128 + sig);
                check_restored_and_removed(w, s);
            }
        }
    }

    TEST_CASE("pty: -it needs a terminal on stdin - shell without one reads its commands from stdin") {
        World w;
        auto ref = w.create();
        for (const auto& args : std::vector<std::vector<std::string>>{{"exec", "-it", ref, "--", "true"},
                                                                      {"run", "-it", "--", "true"}}) {
            Result r = w.sbox_in(args, "");
            INFO(args[0] << " -it with a pipe on stdin: " << describe(r));
            CHECK(r.status == 125);
            CHECK(r.err.find("the input device is not a TTY") != std::string::npos);
            CHECK(r.out.empty());
        }
        Result d = w.sbox({"exec", "-d", "-t", ref, "--", "true"});
        INFO("exec -d -t: " << describe(d));
        CHECK(d.status == 125);
        CHECK(d.err.find("-t and -d") != std::string::npos);
        CHECK(w.ls().size() == 1);

        // Like `docker run -i`: no terminal, the shell reads stdin; nothing of sbox's own on stdout.
        Result fresh = w.sbox_in({"shell"}, "echo hi-$((1+1))\nexit 3\n");
        INFO("shell with piped stdin: " << describe(fresh));
        CHECK(fresh.status == 3);
        CHECK(fresh.out == "hi-2\n");
        Result in_ref = w.sbox_in({"shell", ref}, "echo $0-$(id -u)\n");
        INFO("shell REF with piped stdin: " << describe(in_ref));
        CHECK(in_ref.status == 0);
        CHECK(in_ref.out == "-bash-0\n"); // a login shell
        CHECK(w.ls().size() == 1);        // only REF: the fresh one is gone
        // Create options belong to a fresh sandbox.
        Result both = w.sbox({"shell", "--name", "x", ref});
        CHECK(both.status == 125);
        CHECK(both.err.find("fresh sandbox") != std::string::npos);
    }

    TEST_CASE("pty: TIOCSTI from inside a sandbox never reaches the user's terminal") {
        World w;
        auto ref = w.create();
        REQUIRE(w.sbox_in({"exec", "-i", ref, "--", "sh", "-c", "cat > /tmp/inject.py"}, kInjector).status ==
                0);
        // A shell comment: where it lands in a shell's input (the sandbox's own terminal, with no seccomp
        // filter to
        // refuse TIOCSTI there), it does nothing.
        const std::string payload = "#sbox-tiocsti-" + random_hex(12);

        // The control: on this machine, a process on its own controlling terminal does inject, and the test
        // sees it; so what follows proves sbox, not the kernel's settings.
        {
            PtySession host({"/usr/bin/python3", "-c", kInjector, payload}, {"PATH=/usr/bin:/bin"});
            Result r = host.finish();
            std::string pending = host.pending_input();
            INFO("host injector: " << describe(r) << "\npending input: " << pending);
            if (pending.find(payload) == std::string::npos)
                MESSAGE("TIOCSTI does not inject on this machine (dev.tty.legacy_tiocsti="
                        << trim(read_file("/proc/sys/dev/tty/legacy_tiocsti"))
                        << ", and no CAP_SYS_ADMIN): the control half of this test is skipped");
            else
                CHECK(injection_report(r.out).find("0=" + host.terminal_id() + ":ok") != std::string::npos);
        }

        // exec and run without -t: stdout and stderr are the user's terminal itself, which is not the
        // command's controlling terminal (a new session): the attempts on it fail.
        for (const auto& args :
             std::vector<std::vector<std::string>>{{"exec", ref, "--", "python3", "/tmp/inject.py", payload},
                                                   {"run", "--", "python3", "-c", kInjector, payload}}) {
            auto s = PtySession::sbox(w, args);
            Result r = s.finish();
            std::string report = injection_report(r.out);
            INFO(args[0] << ": " << describe(r) << "\nreport: " << report);
            CHECK(r.status == 0);
            REQUIRE_FALSE(report.empty());
            CHECK(report.find("1=" + s.terminal_id() + ":") !=
                  std::string::npos); // it is the user's terminal
            CHECK(report.find("1=" + s.terminal_id() + ":ok") == std::string::npos);
            CHECK(report.find("2=" + s.terminal_id() + ":ok") == std::string::npos);
            CHECK(report.find("tty=open:") != std::string::npos); // no controlling terminal at all
            CHECK(s.pending_input().find(payload) == std::string::npos);
            check_restored(s);
        }

        // -t without -i: sbox does not read the user's terminal, so anything injected there would stay in its
        // input queue; the command has only the sandbox's pty, whatever the attempts on it did.
        {
            auto s = PtySession::sbox(w, {"exec", "-t", ref, "--", "python3", "/tmp/inject.py", payload});
            Result r = s.finish();
            std::string report = injection_report(r.out);
            INFO("exec -t: " << describe(r) << "\nreport: " << report);
            CHECK(r.status == 0);
            REQUIRE_FALSE(report.empty());
            CHECK(report.find(s.terminal_id()) == std::string::npos);
            CHECK(s.pending_input().find(payload) == std::string::npos);
        }

        // Inside `sbox shell`: the same, from an interactive shell.
        {
            auto s = PtySession::sbox(w, {"shell", ref});
            shell_ready(s);
            s.type("python3 /tmp/inject.py '" + payload + "'; echo injected-$((3+4))\r");
            REQUIRE(s.expect("injected-7"));
            std::string report = injection_report(s.screen());
            INFO("shell: report: " << report);
            REQUIRE_FALSE(report.empty());
            CHECK(report.find(s.terminal_id()) == std::string::npos);
            // Whatever landed in the sandbox's own terminal is the inner shell's next input line: a comment.
            s.type("\r");
            s.type("exit\r");
            Result r = s.finish();
            INFO(describe(r));
            CHECK_FALSE(r.hung);
            CHECK(s.pending_input().find(payload) == std::string::npos);
            check_restored(s);
        }
    }

} // TEST_SUITE

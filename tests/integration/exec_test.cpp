// `sbox exec` and `sbox run`: exit statuses, streams, stdin, environment, working directory, user, detaching.
// These also run as an unprivileged user (run-unprivileged.sh).
#include <fcntl.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "harness.hpp"

using namespace it;

TEST_SUITE("rootless-capable") {

    TEST_CASE("exec: exit statuses") {
        World w;
        auto ref = w.create();
        struct Case {
            std::vector<std::string> cmd;
            int status;
        };
        const std::vector<Case> cases{
            {{"true"}, 0},
            {{"sh", "-c", "exit 3"}, 3},
            {{"sh", "-c", "exit 255"}, 255},
            {{"/etc/passwd"}, 126},                    // exists, not executable
            {{"/tmp"}, 126},                           // a directory
            {{"/no/such/command"}, 127},               // no such path
            {{"no-such-command-sbox-it"}, 127},        // not on PATH
            {{"sh", "-c", "kill -9 $$"}, 128 + 9},     // killed by a signal
            {{"sh", "-c", "kill -TERM $$"}, 128 + 15}, // killed by a signal
            {{"sh", "-c", "kill -SEGV $$"}, 128 + 11},
        };
        for (auto& c : cases) {
            Result r = w.exec(ref, c.cmd);
            INFO("exec " << c.cmd[0] << (c.cmd.size() > 2 ? " " + c.cmd[2] : "") << ": " << describe(r));
            CHECK(r.status == c.status);
            CHECK_FALSE(r.signaled); // sbox itself exits normally with 128+N
            if (c.status == 126 || c.status == 127) CHECK(r.err.starts_with("sbox: "));
        }
        // The sandbox is still usable after all that.
        CHECK(w.check_output(ref, {"echo", "still here"}) == "still here\n");
    }

    TEST_CASE("exec: --timeout ends the command with 124") {
        World w;
        auto ref = w.create();
        Result r = w.exec(ref, {"sleep", "100"}, {"--timeout", "1s"});
        INFO(describe(r));
        CHECK(r.status == 124);
        // The timed-out command is gone, not left behind.
        std::string last;
        bool gone = eventually([&] {
            last = w.check_output(ref, {"ps", "-e", "-o", "stat=,args="});
            return last.find("sleep 100") == std::string::npos;
        });
        INFO("ps inside:\n" << last);
        CHECK(gone);
        // `run` has the same meaning for --timeout.
        Result run = w.sbox({"run", "--timeout", "1s", "--", "sleep", "100"});
        INFO("run --timeout 1s: " << describe(run));
        CHECK(run.status == 124);
    }

    TEST_CASE("exec: 125 when the sandbox does not exist") {
        World w;
        for (std::string ref : {"local/000000000000", "000000000000", "no-such-name"}) {
            Result r = w.exec(ref, {"true"});
            INFO("exec " << ref << ": " << describe(r));
            CHECK(r.status == 125);
            CHECK(r.err.starts_with("sbox: "));
            CHECK(r.out.empty());
        }
    }

    TEST_CASE("run: prints the command's output and returns its status") {
        World w;
        Result r = w.sbox({"run", "--", "sh", "-c", "echo hi; exit 3"});
        INFO(describe(r));
        CHECK(r.out == "hi\n");
        CHECK(r.status == 3);
        CHECK(w.ls_q().empty());
        CHECK(w.leftovers().empty());
    }

    TEST_CASE("exec: stdout and stderr are separate") {
        World w;
        auto ref = w.create();
        Result r = w.exec(ref, {"sh", "-c", "echo out; echo err >&2; echo out2; echo err2 >&2"});
        INFO(describe(r));
        CHECK(r.status == 0);
        CHECK(r.out == "out\nout2\n");
        CHECK(r.err == "err\nerr2\n");
        Result run = w.sbox({"run", "--", "sh", "-c", "echo out; echo err >&2"});
        CHECK(run.out == "out\n");
        CHECK(run.err == "err\n");
    }

    TEST_CASE("exec: 1 MiB of random bytes round-trips through -i, binary-safe on both streams") {
        World w;
        auto ref = w.create();
        const std::string data = random_bytes(1 << 20);
        Result cat = w.sbox_in({"exec", "-i", ref, "--", "cat"}, data);
        INFO("exec -i cat: exit " << cat.status << ", " << cat.out.size()
                                  << " bytes out, stderr: " << cat.err);
        CHECK(cat.status == 0);
        CHECK(cat.out.size() == data.size());
        CHECK(cat.out == data);
        // stderr is as binary-safe, and both full pipes at once do not deadlock.
        Result tee = w.sbox_in({"exec", "-i", ref, "--", "bash", "-c", "tee >(cat >&2); wait $!"}, data);
        INFO("exec -i, tee to both streams: exit " << tee.status << ", " << tee.out.size() << "/"
                                                   << tee.err.size());
        CHECK(tee.status == 0);
        CHECK(tee.out == data);
        CHECK(tee.err == data);
        // The same through run.
        Result run = w.sbox_in({"run", "-i", "--", "cat"}, data);
        CHECK(run.status == 0);
        CHECK(run.out == data);
    }

    TEST_CASE("exec: -i delivers EOF, without -i stdin is empty") {
        World w;
        auto ref = w.create();
        const std::string data(12345, 'x');
        Result wc = w.sbox_in({"exec", "-i", ref, "--", "wc", "-c"}, data);
        INFO(describe(wc));
        CHECK(wc.status == 0);
        CHECK(trim(wc.out) == "12345");
        Result empty = w.sbox_in({"exec", "-i", ref, "--", "wc", "-c"}, "");
        CHECK(trim(empty.out) == "0");
        // Without -i, what sbox's own stdin holds never reaches the command, and the command does not wait
        // for it.
        Result no_i = w.sbox_in({"exec", ref, "--", "wc", "-c"}, data);
        INFO("without -i: " << describe(no_i));
        CHECK(no_i.status == 0);
        CHECK(trim(no_i.out) == "0");
        Result cat = w.sbox_in({"exec", ref, "--", "cat"}, data);
        CHECK(cat.status == 0);
        CHECK(cat.out.empty());
        // A command that never reads its stdin does not stop -i from finishing.
        Result ignore = w.sbox_in({"exec", "-i", ref, "--", "true"}, std::string(1 << 20, 'y'));
        CHECK(ignore.status == 0);
    }

    TEST_CASE("exec: -e, --env-file, -w, -u") {
        // A bare `-e NAME` takes the value sbox itself was given (docker's rule); World passes our
        // environment.
        setenv("SBOX_IT_PASSED", "from the caller", 1);
        unsetenv("SBOX_IT_UNSET");
        World w;
        auto ref = w.create();
        CHECK(w.check_output(ref, {"printenv", "A", "B"}, {"-e", "A=x y=z", "-e", "B="}) == "x y=z\n\n");
        CHECK(w.check_output(ref, {"printenv", "SBOX_IT_PASSED"}, {"-e", "SBOX_IT_PASSED"}) ==
              "from the caller\n");
        CHECK(w.exec(ref, {"printenv", "SBOX_IT_UNSET"}, {"-e", "SBOX_IT_UNSET"}).status == 1);

        std::string env_file = w.root() + "/env-file";
        {
            int fd = open(env_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            REQUIRE(fd >= 0);
            std::string content = "# a comment\n\nFOO=bar\nSPACED=a b c\n";
            REQUIRE(write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
            close(fd);
        }
        CHECK(w.check_output(ref, {"printenv", "FOO", "SPACED"}, {"--env-file", env_file}) == "bar\na b c\n");
        // -e wins over --env-file.
        CHECK(w.check_output(ref, {"printenv", "FOO"}, {"--env-file", env_file, "-e", "FOO=override"}) ==
              "override\n");
        // A usable PATH is there without asking.
        CHECK(w.check_output(ref, {"sh", "-c", "command -v ls"}) != "");

        CHECK(w.check_output(ref, {"pwd"}, {"-w", "/tmp"}) == "/tmp\n");
        CHECK(w.check_output(ref, {"pwd"}, {"-w", "/usr/share"}) == "/usr/share\n");
        std::string home = trim(w.check_output(ref, {"pwd"}));
        CHECK((home == "/root" || home == "/"));

        CHECK(w.check_output(ref, {"id", "-u"}, {"-u", "root"}) == "0\n");
        if (is_root() || has_subid_ranges()) {
            CHECK(w.check_output(ref, {"id", "-u"}, {"-u", "nobody"}) == "65534\n");
            CHECK(w.check_output(ref, {"id", "-u"}, {"-u", "1000"}) == "1000\n");
            CHECK(w.check_output(ref, {"id", "-un"}, {"-u", "nobody"}) == "nobody\n");
            CHECK(w.check_output(ref, {"sh", "-c", "echo $(id -u):$(id -g)"}, {"-u", "1234:2345"}) ==
                  "1234:2345\n");
            // Another user cannot write root's files.
            Result denied = w.exec(ref, {"sh", "-c", "echo x > /root/nope"}, {"-u", "nobody"});
            CHECK(denied.status != 0);
        } else {
            MESSAGE(
                "rootless without /etc/subuid ranges: only uid 0 is mapped, -u with other users not checked");
        }
        // An unknown user: the command cannot be run as asked (126, as docker says).
        Result unknown = w.exec(ref, {"true"}, {"-u", "no-such-user-sbox-it"});
        INFO("-u no-such-user: " << describe(unknown));
        CHECK(unknown.status == 126);
        CHECK(unknown.err.find("no-such-user-sbox-it") != std::string::npos);
        CHECK(unknown.err.starts_with("sbox: "));
    }

    TEST_CASE("exec: create -e sets defaults for every exec, exec -e overrides them") {
        World w;
        auto ref = w.create({"-e", "A=1", "-e", "B=2"});
        CHECK(w.check_output(ref, {"printenv", "A", "B"}) == "1\n2\n");
        CHECK(w.check_output(ref, {"printenv", "A", "B"}, {"-e", "B=3"}) == "1\n3\n");
        CHECK(w.check_output(ref, {"printenv", "B"}) == "2\n");
        // run passes both sets.
        Result run = w.sbox({"run", "-e", "C=4", "--", "printenv", "C"});
        CHECK(run.out == "4\n");
    }

    TEST_CASE("exec: the environment of the sbox process does not leak into the sandbox") {
        World w;
        auto ref = w.create();
        // World passes SBOX_ROOT (and everything of the test's environment) to sbox; none of it belongs
        // inside.
        Result r = w.exec(ref, {"printenv", "SBOX_ROOT"});
        INFO(describe(r));
        CHECK(r.status == 1);
        CHECK(r.out.empty());
    }

    TEST_CASE("exec: -d returns, the command outlives the CLI and is reaped when it ends") {
        World w;
        auto ref = w.create();
        Result d = w.spawn({"exec", "-d", ref, "--", "sleep", "1004"}).finish({}, 60s);
        INFO("exec -d: " << describe(d));
        REQUIRE_FALSE(d.hung);
        CHECK(d.status == 0);
        CHECK(w.check_output(ref, {"ps", "-e", "-o", "args="}).find("sleep 1004") != std::string::npos);

        // A detached command that ends is reaped by the supervisor: no zombie stays behind.
        REQUIRE(w.exec(ref, {"sh", "-c", "sleep 1; echo done > /tmp/detached"}, {"-d"}).status == 0);
        REQUIRE(w.exec(ref, {"true"}, {"-d"}).status == 0);
        std::string ps;
        bool finished = eventually([&] {
            ps = w.check_output(ref, {"ps", "-e", "-o", "stat=,args="});
            for (auto& line : lines(ps)) {
                std::string l = trim(line);
                if (l.starts_with("Z") || l.find("<defunct>") != std::string::npos) return false;
                if (l.ends_with(" sleep 1") || l.find("sleep 1;") != std::string::npos) return false;
            }
            return true;
        });
        INFO("ps inside:\n" << ps);
        CHECK(finished);
        CHECK(w.check_output(ref, {"cat", "/tmp/detached"}) == "done\n");
        CHECK(ps.find("sleep 1004") != std::string::npos); // the long one is still running
    }

} // TEST_SUITE

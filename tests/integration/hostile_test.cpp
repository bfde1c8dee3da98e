// Hostile archives fed to `sbox cp - REF:DIR`, and hostile trees copied out of a sandbox. Each archive is
// written byte by byte (tarball.hpp). The rules for every case: sbox fails with exit 1 and a message, or
// succeeds with the hostile part neutralised; nothing lands outside the destination, on the host or in the
// sandbox; and after a failure the destination is as it was.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "harness.hpp"
#include "tarball.hpp"

using namespace it;

namespace {

std::string sh(const World& w, const std::string& ref, const std::string& script) {
    return w.check_output(ref, {"sh", "-c", script});
}

bool sandbox_has(const World& w, const std::string& ref, const std::string& path) {
    return trim(sh(w, ref,
                   "if test -e '" + path + "' || test -L '" + path + "'; then echo y; else echo n; fi")) ==
           "y";
}

// A destination directory in the sandbox holding one file, "keep".
std::string make_dest(const World& w, const std::string& ref) {
    std::string dest = "/tmp/dest-" + random_hex(8);
    sh(w, ref, "mkdir " + dest + " && echo keep > " + dest + "/keep");
    return dest;
}

// `ls -A DEST` inside.
std::string listing(const World& w, const std::string& ref, const std::string& dest) {
    return sh(w, ref, "ls -A " + dest);
}

// Feeds `stream` to `sbox cp - REF:DEST` and checks what holds for every hostile archive: exit 0, or exit 1
// with "sbox: ..." on stderr and DEST as it was. The caller checks where the hostile entries aimed.
Result feed(const World& w, const std::string& ref, const std::string& dest, const std::string& stream,
            const std::string& what) {
    Result r = w.sbox_in({"cp", "-", at(ref, dest)}, stream);
    INFO(what << ": " << describe(r));
    CHECK_FALSE(r.signaled);
    CHECK_FALSE(r.hung);
    CHECK((r.status == 0 || r.status == 1));
    CHECK(r.out.empty());
    if (r.status != 0) {
        CHECK(r.err.starts_with("sbox: "));
        CHECK(listing(w, ref, dest) == "keep\n");
    }
    CHECK(sh(w, ref, "cat " + dest + "/keep") == "keep\n");
    return r;
}

// A file on the host that is removed at the end of the scope.
struct HostFile {
    std::string path;
    HostFile(std::string p, const std::string& data) : path(std::move(p)) { write_file(path, data); }
    ~HostFile() { unlink(path.c_str()); }
};

} // namespace

TEST_SUITE("rootless-capable") {

    TEST_CASE("hostile: (the test's own tar writer) GNU tar and zstd read what it writes") {
        TempDir t;
        std::string long_name = "d/" + std::string(120, 'n') + "/" + std::string(130, 'm');
        auto stream =
            tar::archive({tar::dir("d"), tar::file("d/f", "hello\n", 0640), tar::symlink("d/l", "f"),
                          tar::hardlink("d/h", "d/f"), tar::file(long_name, "long\n")});
        Result list = host({"tar", "-tvf", "-"}, stream);
        INFO(describe(list));
        CHECK(list.status == 0);
        CHECK(list.err.empty());
        auto names = lines(host({"tar", "-tf", "-"}, stream).out);
        CHECK(names == std::vector<std::string>{"d/", "d/f", "d/l", "d/h", long_name});
        CHECK(host({"tar", "-xOf", "-", "d/f"}, stream).out == "hello\n");
        auto members = tar::split(stream);
        REQUIRE(members.size() == 5);
        CHECK(members[4].name == long_name);
        CHECK(tar::join(members) == stream);

        // A bad checksum and a truncated member are errors to GNU tar too.
        auto bad = tar::file("x", "x");
        bad.bad_checksum = true;
        CHECK(host({"tar", "-tf", "-"}, tar::archive({bad})).status != 0);
        auto cut = tar::file("x", std::string(1000, 'x'));
        cut.size = 100000;
        CHECK(host({"tar", "-xOf", "-"}, tar::member(cut)).status != 0);

        // The hand-made zstd frame decompresses to the prefix and the zeros.
        std::string frame = tar::zstd_zeros("prefix", 300000);
        Result z = host({"zstd", "-dc"}, frame);
        INFO("zstd -dc: exit " << z.status << " " << z.err);
        CHECK(z.status == 0);
        CHECK(z.out == "prefix" + std::string(300000, '\0'));
    }

    TEST_CASE("hostile: names with .. or a leading / never leave the destination") {
        World w;
        auto ref = w.create();
        const std::string x = random_hex(10);
        const std::vector<std::pair<std::string, std::string>> cases = {
            {"../../../../tmp/sbox-evil-" + x, "/tmp/sbox-evil-" + x},
            {"/tmp/sbox-evil-abs-" + x, "/tmp/sbox-evil-abs-" + x},
            {"/etc/sbox-evil-" + x, "/etc/sbox-evil-" + x},
            {"a/../../sbox-evil-dots-" + x, "/tmp/sbox-evil-dots-" + x},
            {"../sbox-evil-up-" + x, "/tmp/sbox-evil-up-" + x},
        };
        for (auto& [name, target] : cases) {
            INFO("entry " << name);
            auto dest = make_dest(w, ref);
            Result r =
                feed(w, ref, dest, tar::archive({tar::file("ok", "ok\n"), tar::file(name, "evil\n")}), name);
            CHECK_FALSE(exists(target));
            CHECK_FALSE(sandbox_has(w, ref, target));
            if (r.status == 0) {
                // Neutralised: the entry may have landed below the destination, nowhere else.
                CHECK(sh(w, ref, "cat " + dest + "/ok") == "ok\n");
            }
        }
    }

    TEST_CASE("hostile: a symlink in the archive is never followed by a later entry") {
        World w;
        auto ref = w.create();
        const std::string x = random_hex(10);
        struct Case {
            std::string what;
            std::vector<tar::Entry> entries;
            std::string target;
        };
        const std::vector<Case> cases = {
            {"l -> /tmp, then l/NAME",
             {tar::symlink("l", "/tmp"), tar::file("l/sbox-evil-" + x, "evil\n")},
             "/tmp/sbox-evil-" + x},
            {"l -> ../../../../tmp, then l/NAME",
             {tar::symlink("l", "../../../../tmp"), tar::file("l/sbox-evil-rel-" + x, "evil\n")},
             "/tmp/sbox-evil-rel-" + x},
            {"a directory d, d replaced by d -> /tmp, then d/NAME",
             {tar::dir("d"), tar::symlink("d", "/tmp"), tar::file("d/sbox-evil-swap-" + x, "evil\n")},
             "/tmp/sbox-evil-swap-" + x},
            {"l -> /tmp, then l/sub/ and l/sub/NAME",
             {tar::symlink("l", "/tmp"), tar::dir("l/sbox-evil-dir-" + x),
              tar::file("l/sbox-evil-dir-" + x + "/f", "evil\n")},
             "/tmp/sbox-evil-dir-" + x},
            {"l -> /etc, then l/NAME",
             {tar::symlink("l", "/etc"), tar::file("l/sbox-evil-etc-" + x, "evil\n")},
             "/etc/sbox-evil-etc-" + x},
        };
        for (auto& c : cases) {
            INFO(c.what);
            auto dest = make_dest(w, ref);
            Result r = feed(w, ref, dest, tar::archive(c.entries), c.what);
            CHECK_FALSE(exists(c.target));
            CHECK_FALSE(sandbox_has(w, ref, c.target));
            if (r.status == 0) {
                // The symlink itself may be there, as a symlink.
                CHECK(sh(w, ref,
                         "for f in " + dest +
                             "/*; do test -L $f || test -d $f || test -f $f || echo odd $f; done") == "");
            }
        }
    }

    TEST_CASE("hostile: hard links to files outside the destination link nothing") {
        World w;
        auto ref = w.create();
        const std::string x = random_hex(10);
        auto host_passwd = file_info("/etc/passwd");
        REQUIRE(host_passwd);
        // A victim in the sandbox's /tmp, on the destination's file system, and one of the same name on the
        // host.
        const std::string victim = "/tmp/sbox-victim-" + x;
        HostFile host_victim(victim, "host victim\n");
        sh(w, ref, "echo victim > " + victim);
        const std::string passwd_links = sh(w, ref, "stat -c %h /etc/passwd");
        const std::vector<std::string> targets = {
            "/etc/passwd", "../../../etc/passwd", "../../../../../../etc/passwd",
            victim,        "../sbox-victim-" + x, "../../tmp/sbox-victim-" + x};
        for (auto& target : targets) {
            INFO("hard link to " << target);
            auto dest = make_dest(w, ref);
            Result r =
                feed(w, ref, dest, tar::archive({tar::hardlink("h", target)}), "hard link to " + target);
            CHECK(file_info("/etc/passwd")->nlink == host_passwd->nlink);
            CHECK(file_info(victim)->nlink == 1);
            CHECK(read_file(victim) == "host victim\n");
            CHECK(sh(w, ref, "stat -c %h " + victim) == "1\n");
            CHECK(sh(w, ref, "stat -c %h /etc/passwd") == passwd_links);
            if (r.status == 0 && sandbox_has(w, ref, dest + "/h")) {
                // Whatever "h" became, it is no other name of the victim or of /etc/passwd.
                CHECK(sh(w, ref,
                         "test " + dest + "/h -ef " + victim + " || test " + dest +
                             "/h -ef /etc/passwd && echo linked || echo separate") == "separate\n");
            }
        }
    }

    TEST_CASE("hostile: device nodes are not created") {
        World w;
        auto ref = w.create();
        auto null = tar::file("null", "");
        null.type = tar::kCharDevice;
        null.devmajor = 1;
        null.devminor = 3;
        null.mode = 0666;
        auto block = tar::file("disk", "");
        block.type = tar::kBlockDevice;
        block.devmajor = 8;
        block.devminor = 0;
        block.mode = 0660;
        auto mem = tar::file("mem", "");
        mem.type = tar::kCharDevice;
        mem.devmajor = 1;
        mem.devminor = 1;
        auto dest = make_dest(w, ref);
        Result r =
            feed(w, ref, dest, tar::archive({null, block, mem, tar::file("ok", "ok\n")}), "device nodes");
        CHECK(sh(w, ref,
                 "for f in null disk mem; do test -c " + dest + "/$f -o -b " + dest +
                     "/$f && echo device $f; done; true") == "");
        if (r.status == 0) CHECK(sh(w, ref, "cat " + dest + "/ok") == "ok\n");
    }

    TEST_CASE("hostile: set-id bits are cleared on the way in, and owners are not restored") {
        World w;
        auto ref = w.create();
        auto suid = tar::file("suid", "#!/bin/sh\n", 04755);
        auto sgid = tar::file("sgid", "#!/bin/sh\n", 02755);
        sgid.uid = sgid.gid = 1234;
        auto both = tar::file("both", "#!/bin/sh\n", 06711);
        auto dest = make_dest(w, ref);
        Result r = feed(w, ref, dest, tar::archive({suid, sgid, both}), "set-id files");
        CHECK(r.status == 0);
        CHECK(sh(w, ref, "cd " + dest + " && stat -c '%n %a %u:%g' suid sgid both") ==
              "suid 755 0:0\nsgid 755 0:0\nboth 711 0:0\n");
    }

    TEST_CASE("hostile: a decompression bomb stops at the space bound and fills nothing") {
        World w;
        auto ref = w.create();
        // /var/tmp is on the sandbox's overlay (upper layer under SBOX_ROOT, so its growth is measured here);
        // /tmp is memory.
        std::string base = "/var/tmp";
        if (w.exec(ref, {"sh", "-c", "test -w /var/tmp && mkdir -p /var/tmp/probe"}).status != 0)
            base = "/tmp";
        const std::string dest = base + "/bomb-" + random_hex(6);
        sh(w, ref, "mkdir " + dest + " && echo keep > " + dest + "/keep");
        unsigned long long blocks = 0, block_size = 0;
        REQUIRE(std::sscanf(sh(w, ref, "stat -f -c '%a %S' " + dest).c_str(), "%llu %llu", &blocks,
                            &block_size) == 2);
        const std::uint64_t avail = blocks * block_size;
        // One entry claiming more zeros than the destination can hold (at least 20 GiB), then the end blocks.
        const std::uint64_t claim =
            std::max<std::uint64_t>(std::uint64_t{20} << 30, 2 * avail + (std::uint64_t{1} << 30));
        auto e = tar::file("zeros", "");
        e.size = claim;
        const std::string frame = tar::zstd_zeros(tar::headers(e), claim + 1024);
        MESSAGE("bomb: " << (claim >> 30) << " GiB of zeros in " << frame.size() << " bytes of zstd; "
                         << (avail >> 30) << " GiB available at the destination");
        const std::uint64_t before = disk_usage(w.root());

        // A watchdog: should the extraction write the zeros, sbox is stopped once SBOX_ROOT has grown by 2
        // GiB (a failure, below), before it fills the disk.
        Process p = w.spawn({"cp", "-", at(ref, dest)}, {.pipe_stdin = true});
        std::atomic<bool> done{false}, stopped{false};
        const pid_t pid = p.pid();
        std::thread watchdog([&] {
            while (!done) {
                if (disk_usage(w.root()) > before + (std::uint64_t{2} << 30)) {
                    stopped = true;
                    ::kill(pid, SIGKILL);
                    return;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(200));
            }
        });
        Result r = p.finish(frame, std::chrono::seconds(300));
        done = true;
        watchdog.join();
        INFO("the bomb: " << describe(r));
        CHECK_FALSE(stopped);
        CHECK_FALSE(r.hung);
        CHECK(r.status == 1);
        CHECK(r.err.starts_with("sbox: "));
        const std::string msg = lower(r.err);
        CHECK((msg.find("space") != std::string::npos || msg.find("limit") != std::string::npos ||
               msg.find("bound") != std::string::npos || msg.find("exceed") != std::string::npos ||
               msg.find("too large") != std::string::npos || msg.find("too big") != std::string::npos));
        CHECK(disk_usage(w.root()) < before + (std::uint64_t{64} << 20));
        CHECK(listing(w, ref, dest) == "keep\n");
    }

    TEST_CASE("hostile: a truncated archive, a bad checksum and garbage fail and leave nothing") {
        World w;
        auto ref = w.create();
        {
            // A complete first member, then a header claiming 1 MiB followed by half of it, and no end.
            auto dest = make_dest(w, ref);
            auto half = tar::file("second", random_bytes(512 << 10));
            half.size = 1 << 20;
            Result r = w.sbox_in({"cp", "-", at(ref, dest)},
                                 tar::member(tar::file("first", "first\n")) + tar::member(half));
            INFO("truncated: " << describe(r));
            CHECK(r.status == 1);
            CHECK(r.err.starts_with("sbox: "));
            const std::string msg = lower(r.err);
            CHECK((msg.find("truncated") != std::string::npos || msg.find("corrupt") != std::string::npos));
            CHECK(listing(w, ref, dest) == "keep\n");
        }
        {
            // Cut in the middle of the second header.
            auto dest = make_dest(w, ref);
            std::string stream =
                tar::archive({tar::file("first", "first\n"), tar::file("second", "second\n")});
            Result r = w.sbox_in({"cp", "-", at(ref, dest)}, stream.substr(0, 1024 + 200));
            INFO("cut in a header: " << describe(r));
            CHECK(r.status == 1);
            CHECK(r.err.starts_with("sbox: "));
            CHECK(listing(w, ref, dest) == "keep\n");
        }
        {
            // A compressed archive cut in half.
            auto dest = make_dest(w, ref);
            std::string stream = tar::archive(
                {tar::file("first", random_bytes(100000)), tar::file("second", random_bytes(100000))});
            Result z = host({"zstd", "-c"}, stream);
            REQUIRE(z.status == 0);
            Result r = w.sbox_in({"cp", "-", at(ref, dest)}, z.out.substr(0, z.out.size() / 2));
            INFO("zstd cut in half: " << describe(r));
            CHECK(r.status == 1);
            CHECK(r.err.starts_with("sbox: "));
            CHECK(listing(w, ref, dest) == "keep\n");
        }
        {
            auto dest = make_dest(w, ref);
            auto bad = tar::file("second", "second\n");
            bad.bad_checksum = true;
            Result r = w.sbox_in({"cp", "-", at(ref, dest)},
                                 tar::member(tar::file("first", "first\n")) + tar::member(bad) + tar::end());
            INFO("bad checksum: " << describe(r));
            CHECK(r.status == 1);
            CHECK(r.err.starts_with("sbox: "));
            CHECK(listing(w, ref, dest) == "keep\n");
        }
        for (std::size_t n : {std::size_t{1}, std::size_t{511}, std::size_t{4096}, std::size_t{1} << 20}) {
            auto dest = make_dest(w, ref);
            std::string garbage = random_bytes(n);
            garbage[0] = 'G'; // not a compression magic by chance
            Result r = w.sbox_in({"cp", "-", at(ref, dest)}, garbage);
            INFO(n << " bytes of garbage: " << describe(r));
            CHECK(r.status == 1);
            CHECK(r.err.starts_with("sbox: "));
            CHECK(listing(w, ref, dest) == "keep\n");
        }
    }

    TEST_CASE("hostile: copying out a FIFO, a set-id file and a symlink to /etc/shadow") {
        World w;
        TempDir t;
        auto ref = w.create();
        sh(w, ref,
           "mkdir /tmp/dir && cd /tmp/dir && mkfifo fifo && echo s > suid && chmod 4755 suid && echo g > "
           "sgid && "
           "chmod 2750 sgid && ln -s /etc/shadow shadow && ln -s /etc/passwd passwd && echo plain > plain");
        // Reading the FIFO would block forever: the copy must finish (the harness would kill it, marked
        // hung).
        Result r = w.sbox({"cp", at(ref, "/tmp/dir"), t.path() + "/out"});
        INFO(describe(r));
        CHECK_FALSE(r.hung);
        REQUIRE(r.status == 0); // the FIFO is made, not read
        const std::string out = t.path() + "/out";
        auto shadow = file_info(out + "/shadow");
        REQUIRE(shadow);
        CHECK(S_ISLNK(shadow->mode));
        CHECK(link_target(out + "/shadow") == "/etc/shadow");
        CHECK(S_ISLNK(file_info(out + "/passwd")->mode));
        auto suid = file_info(out + "/suid");
        REQUIRE(suid);
        CHECK((suid->mode & 07777) == 0755);
        auto sgid = file_info(out + "/sgid");
        REQUIRE(sgid);
        CHECK((sgid->mode & 07777) == 0750);
        CHECK(read_file(out + "/plain") == "plain\n");
        auto fifo = file_info(out + "/fifo");
        REQUIRE(fifo);
        CHECK(S_ISFIFO(fifo->mode)); // a FIFO again, never a file with data
    }

} // TEST_SUITE

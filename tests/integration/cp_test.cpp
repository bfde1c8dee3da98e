// `sbox cp`: files and directory trees into and out of a local sandbox with docker cp's semantics, tar
// streams on stdin and stdout, ownership, modes and times, symlinks, errors, paths that are always resolved
// inside the sandbox, and big files and trees. These also run as an unprivileged user (run-unprivileged.sh);
// the parts that need root on the host say so.
#include <algorithm>
#include <map>

#include <fcntl.h>
#include <ftw.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "harness.hpp"
#include "tarball.hpp"

using namespace it;

namespace {

// A successful cp: exit 0 and nothing on stdout.
void check_copied(const Result& r, const std::string& what) {
    INFO(what << ": " << describe(r));
    CHECK(r.status == 0);
    CHECK(r.out.empty());
}

// A failed cp: `status` (1: the operation failed, 2: a usage error), "sbox: ..." on stderr, nothing on
// stdout.
void check_failed(const Result& r, const std::string& what, int status = 1) {
    INFO(what << ": " << describe(r));
    CHECK(r.status == status);
    CHECK_FALSE(r.signaled);
    CHECK(r.out.empty());
    CHECK(r.err.starts_with("sbox: "));
}

// A shell script inside the sandbox; REQUIREs success and returns its stdout.
std::string sh(const World& w, const std::string& ref, const std::string& script) {
    return w.check_output(ref, {"sh", "-c", script});
}

std::string absent_or_present(const World& w, const std::string& ref, const std::string& path) {
    return trim(
        sh(w, ref,
           "if test -e '" + path + "' || test -L '" + path + "'; then echo present; else echo absent; fi"));
}

bool is_symlink(const std::string& path) {
    auto f = file_info(path);
    return f && S_ISLNK(f->mode);
}

bool is_regular(const std::string& path) {
    auto f = file_info(path);
    return f && S_ISREG(f->mode);
}

// A file on the host that is removed at the end of the scope (markers in the host's /tmp).
struct HostFile {
    std::string path;
    HostFile(std::string p, const std::string& data) : path(std::move(p)) { write_file(path, data); }
    ~HostFile() { unlink(path.c_str()); }
};

// `find DIR -printf '%P %y %m %s %T@ %l'`, one line per entry, sorted, with what differs between file
// systems blanked: the size of a directory, the time of a symlink.
const std::string kListFormat = "%P\t%y\t%m\t%s\t%T@\t%l\n";

std::vector<std::string> normalise_listing(const std::string& find_output) {
    std::vector<std::string> out;
    for (auto& line : lines(find_output)) {
        std::vector<std::string> f;
        std::size_t start = 0;
        for (;;) {
            auto tab = line.find('\t', start);
            f.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        if (f.size() != 6) {
            out.push_back("UNPARSED: " + line);
            continue;
        }
        if (f[1] == "d") f[3] = "-";
        if (f[1] == "l") f[4] = "-";
        out.push_back(f[0] + " " + f[1] + " " + f[2] + " " + f[3] + " " + f[4] + " -> " + f[5]);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> host_listing(const std::string& dir) {
    Result r = host({"find", dir, "-printf", kListFormat});
    INFO("find " << dir << ": " << describe(r));
    REQUIRE(r.status == 0);
    return normalise_listing(r.out);
}

std::vector<std::string> sandbox_listing(const World& w, const std::string& ref, const std::string& dir) {
    return normalise_listing(w.check_output(ref, {"find", dir, "-printf", kListFormat}));
}

const std::string kChecksums =
    "cd \"$0\" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum";

std::string host_checksums(const std::string& dir) {
    Result r = host({"sh", "-c", kChecksums, dir});
    INFO("checksums of " << dir << ": " << describe(r));
    REQUIRE(r.status == 0);
    return r.out;
}

std::string sandbox_checksums(const World& w, const std::string& ref, const std::string& dir) {
    return w.check_output(ref, {"sh", "-c", kChecksums, dir});
}

std::string join_lines(const std::vector<std::string>& v) {
    std::string out;
    for (auto& s : v)
        out += s + "\n";
    return out;
}

std::string sha256(const std::string& data) {
    Result r = host({"sha256sum"}, data);
    REQUIRE(r.status == 0);
    return r.out.substr(0, 64);
}

// `stat -c '%n %a %Y'` of these paths below `dir` on the host.
std::string host_modes(const std::string& dir, const std::vector<std::string>& names) {
    std::string out;
    for (auto& n : names) {
        auto f = file_info(dir + "/" + n);
        REQUIRE(f);
        char buf[64];
        std::snprintf(buf, sizeof buf, "%o", f->mode & 07777);
        out += n + " " + buf + " " + std::to_string(f->mtime) + "\n";
    }
    return out;
}

std::string quoted_list(const std::vector<std::string>& names) {
    std::string out;
    for (auto& n : names)
        out += " '" + n + "'";
    return out;
}

} // namespace

TEST_SUITE("rootless-capable") {

    TEST_CASE("cp: a file into a directory, to a new name, over a file, and out again the same ways") {
        World w;
        TempDir t;
        const std::string h = t.path();
        auto ref = w.create();
        write_file(h + "/f.txt", "hello\n", 0640);
        sh(w, ref,
           "mkdir /tmp/d /tmp/d2 && echo 'a much longer old content that must not survive' > /tmp/old.txt");

        check_copied(w.sbox({"cp", h + "/f.txt", at(ref, "/tmp/d")}), "file to an existing directory");
        CHECK(sh(w, ref, "cat /tmp/d/f.txt") == "hello\n");
        check_copied(w.sbox({"cp", h + "/f.txt", at(ref, "/tmp/d2/")}), "file to an existing directory/");
        CHECK(sh(w, ref, "cat /tmp/d2/f.txt") == "hello\n");
        check_copied(w.sbox({"cp", h + "/f.txt", at(ref, "/tmp/new.txt")}), "file to a new name");
        CHECK(sh(w, ref, "test -f /tmp/new.txt && cat /tmp/new.txt") == "hello\n");
        check_copied(w.sbox({"cp", h + "/f.txt", at(ref, "/tmp/old.txt")}), "file over a file");
        CHECK(sh(w, ref, "cat /tmp/old.txt") == "hello\n");

        check_failed(w.sbox({"cp", h + "/f.txt", at(ref, "/tmp/nodir/")}), "file to a missing directory/");
        CHECK(absent_or_present(w, ref, "/tmp/nodir") == "absent");
        check_failed(w.sbox({"cp", h + "/f.txt", at(ref, "/tmp/nope/x")}), "file below a missing parent");
        CHECK(absent_or_present(w, ref, "/tmp/nope") == "absent");

        // Out of the sandbox, the same rules.
        sh(w, ref, "printf 'from the sandbox\\n' > /tmp/out.txt");
        make_dirs(h + "/hd");
        make_dirs(h + "/hd2");
        check_copied(w.sbox({"cp", at(ref, "/tmp/out.txt"), h + "/hd"}),
                     "out: file to an existing directory");
        CHECK(read_file(h + "/hd/out.txt") == "from the sandbox\n");
        check_copied(w.sbox({"cp", at(ref, "/tmp/out.txt"), h + "/hd2/"}),
                     "out: file to an existing directory/");
        CHECK(read_file(h + "/hd2/out.txt") == "from the sandbox\n");
        check_copied(w.sbox({"cp", at(ref, "/tmp/out.txt"), h + "/renamed.txt"}), "out: file to a new name");
        CHECK(is_regular(h + "/renamed.txt"));
        CHECK(read_file(h + "/renamed.txt") == "from the sandbox\n");
        write_file(h + "/existing.txt", std::string(10000, 'x'));
        check_copied(w.sbox({"cp", at(ref, "/tmp/out.txt"), h + "/existing.txt"}), "out: file over a file");
        CHECK(read_file(h + "/existing.txt") == "from the sandbox\n");
        check_failed(w.sbox({"cp", at(ref, "/tmp/out.txt"), h + "/nodir/"}),
                     "out: file to a missing directory/");
        CHECK_FALSE(exists(h + "/nodir"));
        check_failed(w.sbox({"cp", at(ref, "/tmp/out.txt"), h + "/nope/x"}),
                     "out: file below a missing parent");
        CHECK_FALSE(exists(h + "/nope"));
    }

    TEST_CASE(
        "cp: directories go into a directory or to a new name, DIR/. merges contents, never onto a file") {
        World w;
        TempDir t;
        const std::string h = t.path();
        auto ref = w.create();
        make_dirs(h + "/src/sub");
        write_file(h + "/src/a.txt", "A\n");
        write_file(h + "/src/sub/b.txt", "B\n");
        write_file(h + "/src/.hidden", "H\n");
        sh(w, ref, "mkdir /tmp/dst /tmp/merge && echo keep > /tmp/merge/keep && echo f > /tmp/afile");

        check_copied(w.sbox({"cp", h + "/src", at(ref, "/tmp/dst")}), "directory into an existing directory");
        CHECK(sh(w, ref, "cat /tmp/dst/src/a.txt /tmp/dst/src/sub/b.txt /tmp/dst/src/.hidden") ==
              "A\nB\nH\n");
        // Again, with a changed file: merged into what is there, files replaced.
        write_file(h + "/src/a.txt", "A2\n");
        check_copied(w.sbox({"cp", h + "/src", at(ref, "/tmp/dst/")}), "directory into it again");
        CHECK(sh(w, ref, "cat /tmp/dst/src/a.txt; ls -A /tmp/dst /tmp/dst/src") ==
              "A2\n/tmp/dst:\nsrc\n\n/tmp/dst/src:\n.hidden\na.txt\nsub\n");

        check_copied(w.sbox({"cp", h + "/src", at(ref, "/tmp/fresh")}), "directory to a new name");
        CHECK(sh(w, ref, "cat /tmp/fresh/a.txt /tmp/fresh/sub/b.txt; ls -A /tmp/fresh") ==
              "A2\nB\n.hidden\na.txt\nsub\n");

        check_copied(w.sbox({"cp", h + "/src/.", at(ref, "/tmp/merge")}), "DIR/. into an existing directory");
        CHECK(sh(w, ref, "ls -A /tmp/merge; cat /tmp/merge/keep /tmp/merge/sub/b.txt") ==
              ".hidden\na.txt\nkeep\nsub\nkeep\nB\n");

        Result onto = w.sbox({"cp", h + "/src", at(ref, "/tmp/afile")});
        check_failed(onto, "directory onto a file");
        CHECK(lower(onto.err).find("director") != std::string::npos);
        CHECK(sh(w, ref, "test -f /tmp/afile && cat /tmp/afile") == "f\n");

        // Out of the sandbox.
        sh(w, ref, "mkdir -p /tmp/o/sub && echo A > /tmp/o/a && echo B > /tmp/o/sub/b");
        check_copied(w.sbox({"cp", at(ref, "/tmp/o"), h + "/new"}), "out: directory to a new name");
        CHECK(read_file(h + "/new/a") == "A\n");
        CHECK(read_file(h + "/new/sub/b") == "B\n");
        CHECK_FALSE(exists(h + "/new/o"));
        make_dirs(h + "/existing");
        check_copied(w.sbox({"cp", at(ref, "/tmp/o"), h + "/existing"}), "out: directory into a directory");
        CHECK(read_file(h + "/existing/o/a") == "A\n");
        CHECK(read_file(h + "/existing/o/sub/b") == "B\n");
        make_dirs(h + "/merge");
        write_file(h + "/merge/keep", "keep\n");
        check_copied(w.sbox({"cp", at(ref, "/tmp/o/."), h + "/merge"}), "out: DIR/. into a directory");
        CHECK(read_file(h + "/merge/a") == "A\n");
        CHECK(read_file(h + "/merge/sub/b") == "B\n");
        CHECK(read_file(h + "/merge/keep") == "keep\n");
        CHECK_FALSE(exists(h + "/merge/o"));
        write_file(h + "/file", "f\n");
        Result out_onto = w.sbox({"cp", at(ref, "/tmp/o"), h + "/file"});
        check_failed(out_onto, "out: directory onto a file");
        CHECK(lower(out_onto.err).find("director") != std::string::npos);
        CHECK(is_regular(h + "/file"));
        CHECK(read_file(h + "/file") == "f\n");
    }

    TEST_CASE("cp: symlinks are copied as symlinks, never followed - -L copies what the source points to") {
        World w;
        TempDir t;
        const std::string h = t.path();
        auto ref = w.create();
        make_dirs(h + "/tree/sub");
        write_file(h + "/tree/f", "F\n");
        write_file(h + "/tree/sub/g", "G\n");
        const std::map<std::string, std::string> links = {
            {"rel", "f"},       {"abs", "/etc/hostname"}, {"dangling", "/nonexistent/x"},
            {"dirlink", "sub"}, {"up", "../../outside"},  {"loop", "loop"}};
        for (auto& [name, target] : links)
            REQUIRE(::symlink(target.c_str(), (h + "/tree/" + name).c_str()) == 0);

        check_copied(w.sbox({"cp", h + "/tree", at(ref, "/tmp/")}), "a tree with symlinks");
        for (auto& [name, target] : links) {
            INFO("symlink " << name);
            CHECK(sh(w, ref, "test -L /tmp/tree/" + name + " && readlink /tmp/tree/" + name) ==
                  target + "\n");
        }
        CHECK(sh(w, ref, "cat /tmp/tree/f /tmp/tree/sub/g") == "F\nG\n");

        // The source itself a symlink: copied as the symlink, or with -L as what it points to.
        REQUIRE(::symlink((h + "/tree/f").c_str(), (h + "/lnk").c_str()) == 0);
        check_copied(w.sbox({"cp", h + "/lnk", at(ref, "/tmp/l1")}), "a symlink");
        CHECK(sh(w, ref, "test -L /tmp/l1 && readlink /tmp/l1") == h + "/tree/f\n");
        check_copied(w.sbox({"cp", "-L", h + "/lnk", at(ref, "/tmp/l2")}), "-L a symlink");
        CHECK(sh(w, ref, "test ! -L /tmp/l2 && test -f /tmp/l2 && cat /tmp/l2") == "F\n");

        // Out of the sandbox.
        sh(w, ref,
           "ln -s /etc/passwd /tmp/plink && mkdir /tmp/t2 && ln -s ../x /tmp/t2/up && ln -s /etc "
           "/tmp/t2/etc");
        check_copied(w.sbox({"cp", at(ref, "/tmp/plink"), h + "/plink"}), "out: a symlink");
        CHECK(is_symlink(h + "/plink"));
        CHECK(link_target(h + "/plink") == "/etc/passwd");
        check_copied(w.sbox({"cp", "-L", at(ref, "/tmp/plink"), h + "/plinkL"}), "out: -L a symlink");
        CHECK(is_regular(h + "/plinkL"));
        CHECK(read_file(h + "/plinkL") == sh(w, ref, "cat /etc/passwd"));
        check_copied(w.sbox({"cp", at(ref, "/tmp/t2"), h + "/t2"}), "out: a tree with symlinks");
        CHECK(is_symlink(h + "/t2/up"));
        CHECK(link_target(h + "/t2/up") == "../x");
        CHECK(is_symlink(h + "/t2/etc"));
        CHECK(link_target(h + "/t2/etc") == "/etc");
        check_copied(w.sbox({"cp", at(ref, "/tmp/tree"), h + "/back"}), "out: the tree copied in");
        for (auto& [name, target] : links) {
            INFO("symlink " << name);
            CHECK(is_symlink(h + "/back/" + name));
            CHECK(link_target(h + "/back/" + name) == target);
        }
        CHECK(read_file(h + "/back/sub/g") == "G\n");
    }

    TEST_CASE("cp: modes and modification times are kept both ways - set-id bits are cleared on the host") {
        World w;
        TempDir t;
        const std::string h = t.path();
        auto ref = w.create();
        const std::string m = h + "/m";
        make_dirs(m + "/s");
        const std::vector<std::pair<std::string, unsigned>> files = {
            {"p600", 0600}, {"p755", 0755}, {"p444", 0444}, {"p640", 0640}, {"s/x", 0604}};
        std::int64_t when = 1400000000;
        for (auto& [name, mode] : files) {
            write_file(m + "/" + name, name + "\n", mode);
            set_mtime(m + "/" + name, when += 1111);
        }
        REQUIRE(chmod((m + "/s").c_str(), 0700) == 0);
        set_mtime(m + "/s", 1300000000);
        REQUIRE(chmod(m.c_str(), 0750) == 0);
        set_mtime(m, 1200000000);
        const std::vector<std::string> names = {".", "p600", "p755", "p444", "p640", "s", "s/x"};
        const std::string expected = host_modes(m, names);

        check_copied(w.sbox({"cp", m, at(ref, "/tmp/")}), "a tree with modes and times");
        CHECK(sh(w, ref, "cd /tmp/m && stat -c '%n %a %Y'" + quoted_list(names)) == expected);
        check_copied(w.sbox({"cp", at(ref, "/tmp/m"), h + "/m2"}), "out: the same tree");
        CHECK(host_modes(h + "/m2", names) == expected);

        sh(w, ref,
           "mkdir /tmp/q && cd /tmp/q && echo s > suid && chmod 4755 suid && echo g > sgid && chmod 2755 "
           "sgid && "
           "echo p > plain && chmod 0640 plain && touch -d @1400000000 suid sgid plain && chmod 0750 /tmp/q "
           "&& "
           "touch -d @1300000000 /tmp/q && stat -c %a suid sgid");
        check_copied(w.sbox({"cp", at(ref, "/tmp/q"), h + "/q"}), "out: set-id files");
        CHECK(host_modes(h + "/q", {".", "suid", "sgid", "plain"}) ==
              ". 750 1300000000\nsuid 755 1400000000\nsgid 755 1400000000\nplain 640 1400000000\n");
        check_copied(w.sbox({"cp", at(ref, "/tmp/q/suid"), h + "/suid"}), "out: a set-uid file");
        CHECK(host_modes(h, {"suid"}) == "suid 755 1400000000\n");
    }

    TEST_CASE("cp: what cp creates belongs to root inside, or to -u USER, and to the host user outside") {
        World w;
        TempDir t;
        const std::string h = t.path();
        auto ref = w.create();
        write_file(h + "/own.txt", "own\n");
        make_dirs(h + "/od/sub");
        write_file(h + "/od/sub/f", "f\n");
        if (is_root()) {
            // Owners on the host are not what the sandbox gets.
            for (auto p : {"/own.txt", "/od", "/od/sub", "/od/sub/f"})
                REQUIRE(lchown((h + p).c_str(), 1234, 1234) == 0);
        }
        check_copied(w.sbox({"cp", h + "/own.txt", at(ref, "/tmp/")}), "a file");
        CHECK(sh(w, ref, "stat -c %u:%g /tmp/own.txt") == "0:0\n");
        check_copied(w.sbox({"cp", h + "/od", at(ref, "/tmp/")}), "a tree");
        CHECK(sh(w, ref, "find /tmp/od \\( ! -uid 0 -o ! -gid 0 \\) -print") == "");
        CHECK(sh(w, ref, "cat /tmp/od/sub/f") == "f\n");

        if (is_root() || has_subid_ranges()) {
            check_copied(w.sbox({"cp", "-u", "nobody", h + "/own.txt", at(ref, "/tmp/n.txt")}), "-u nobody");
            CHECK(sh(w, ref, "stat -c %U /tmp/n.txt") == "nobody\n");
            // cp -u works with that user's rights inside: a directory it may write to.
            sh(w, ref, "mkdir -m 1777 /tmp/u");
            check_copied(w.sbox({"cp", "-u", "1000:1000", h + "/od", at(ref, "/tmp/u")}),
                         "-u 1000:1000 a tree");
            CHECK(sh(w, ref, "stat -c %u:%g /tmp/u/od /tmp/u/od/sub/f") == "1000:1000\n1000:1000\n");
            CHECK(sh(w, ref, "find /tmp/u/od \\( ! -uid 1000 -o ! -gid 1000 \\) -print") == "");
            check_copied(w.sbox({"cp", "-u", "1000", h + "/own.txt", at(ref, "/tmp/uid.txt")}), "-u 1000");
            CHECK(sh(w, ref, "stat -c %u /tmp/uid.txt") == "1000\n");

            sh(w, ref, "mkdir /tmp/ox && echo o > /tmp/ox/o.txt && chown -R 1234:1234 /tmp/ox");
            check_copied(w.sbox({"cp", at(ref, "/tmp/ox"), h + "/ox"}), "out: files of another user inside");
            for (auto p : {"/ox", "/ox/o.txt"}) {
                auto f = file_info(h + p);
                REQUIRE(f);
                INFO(p);
                CHECK(f->uid == geteuid());
                CHECK(f->gid == getegid());
            }
        } else {
            MESSAGE("rootless without subordinate id ranges: only root inside is mapped; -u not checked");
        }

        sh(w, ref, "mkdir -p /tmp/x/y && echo z > /tmp/x/y/z");
        check_copied(w.sbox({"cp", at(ref, "/tmp/x"), h + "/x"}), "out: a tree");
        for (auto p : {"/x", "/x/y", "/x/y/z"}) {
            auto f = file_info(h + p);
            REQUIRE(f);
            INFO(p);
            CHECK(f->uid == geteuid());
            CHECK(f->gid == getegid());
        }
    }

    TEST_CASE("cp: - extracts a tar stream from stdin into a directory and writes one to stdout") {
        World w;
        TempDir t;
        const std::string h = t.path();
        auto ref = w.create();
        sh(w, ref, "mkdir /tmp/x && echo f > /tmp/f");
        const std::string stream = tar::archive({tar::dir("in"), tar::file("in/a", "A\n"),
                                                 tar::symlink("in/l", "a"), tar::file("top", "T\n", 0600)});
        check_copied(w.sbox_in({"cp", "-", at(ref, "/tmp/x")}, stream), "cp - into a directory");
        CHECK(sh(w, ref, "cat /tmp/x/in/a /tmp/x/top; readlink /tmp/x/in/l; stat -c %a /tmp/x/top") ==
              "A\nT\na\n600\n");
        check_failed(w.sbox_in({"cp", "-", at(ref, "/tmp/nope")}, stream), "cp - into a missing directory");
        CHECK(absent_or_present(w, ref, "/tmp/nope") == "absent");
        check_failed(w.sbox_in({"cp", "-", at(ref, "/tmp/f")}, stream), "cp - into a file");
        CHECK(sh(w, ref, "test -f /tmp/f && cat /tmp/f") == "f\n");

        Result out = w.sbox({"cp", at(ref, "/tmp/x/in"), "-"});
        INFO("cp a directory to -: exit " << out.status << ", stderr " << out.err);
        CHECK(out.status == 0);
        Result list = host({"tar", "-tf", "-"}, out.out);
        INFO("tar -t: " << describe(list));
        CHECK(list.status == 0);
        auto names = lines(list.out);
        std::sort(names.begin(), names.end());
        CHECK(names == std::vector<std::string>{"in/", "in/a", "in/l"});
        Result x = host({"tar", "-x", "-C", h, "-f", "-"}, out.out);
        CHECK(x.status == 0);
        CHECK(read_file(h + "/in/a") == "A\n");
        CHECK(link_target(h + "/in/l") == "a");

        Result one = w.sbox({"cp", at(ref, "/tmp/x/top"), "-"});
        CHECK(one.status == 0);
        Result one_list = host({"tar", "-tf", "-"}, one.out);
        CHECK(one_list.status == 0);
        CHECK(one_list.out == "top\n");
        CHECK(host({"tar", "-xOf", "-"}, one.out).out == "T\n");
    }

    TEST_CASE("cp: failures name what is wrong: a missing source or sandbox, two or no sandbox paths") {
        World w;
        TempDir t;
        const std::string h = t.path();
        auto ref = w.create();
        write_file(h + "/f", "f\n");
        const std::string missing = "missing-" + random_hex(8);

        Result host_src = w.sbox({"cp", h + "/" + missing, at(ref, "/tmp/")});
        check_failed(host_src, "a missing host source");
        CHECK(lower(host_src.err).find("no such") != std::string::npos);
        CHECK(host_src.err.find(missing) != std::string::npos);
        CHECK(absent_or_present(w, ref, "/tmp/" + missing) == "absent");

        Result box_src = w.sbox({"cp", at(ref, "/tmp/" + missing), h + "/"});
        check_failed(box_src, "a missing sandbox source");
        CHECK(lower(box_src.err).find("no such") != std::string::npos);
        CHECK(box_src.err.find("/tmp/" + missing) != std::string::npos);
        CHECK_FALSE(exists(h + "/" + missing));

        check_failed(w.sbox({"cp", h + "/f", at("local/000000000000", "/tmp/")}), "into a missing sandbox");
        check_failed(w.sbox({"cp", at("local/000000000000", "/tmp/x"), h + "/y"}),
                     "out of a missing sandbox");
        CHECK_FALSE(exists(h + "/y"));

        check_failed(w.sbox({"cp", h + "/f", h + "/g"}), "no sandbox side", 2);
        CHECK_FALSE(exists(h + "/g"));
        check_failed(w.sbox({"cp", at(ref, "/tmp/a"), at(ref, "/tmp/b")}), "two sandbox sides", 2);
        check_failed(w.sbox({"cp", h + "/f"}), "one argument", 2);
        check_failed(w.sbox({"cp"}), "no arguments", 2);
        check_failed(w.sbox({"cp", "-u", "no-such-user-" + random_hex(4), h + "/f", at(ref, "/tmp/")}),
                     "an unknown user");
        CHECK(absent_or_present(w, ref, "/tmp/f") == "absent");
    }

    TEST_CASE("cp: a copy that fails part-way leaves nothing of itself at the destination") {
        World w;
        TempDir t;
        const std::string h = t.path();
        auto ref = w.create();
        // In: the tree's "a" is a directory, the destination's a file; the clash is an error, and "z" (which
        // could have been copied) is not there afterwards.
        make_dirs(h + "/p/a");
        write_file(h + "/p/a/f2", "f2\n");
        write_file(h + "/p/z", "z\n");
        sh(w, ref, "mkdir -p /tmp/pd/p && echo file > /tmp/pd/p/a");
        check_failed(w.sbox({"cp", h + "/p", at(ref, "/tmp/pd")}), "a directory over a file, inside a tree");
        CHECK(sh(w, ref, "ls -A /tmp/pd/p; cat /tmp/pd/p/a") == "a\nfile\n");

        // Out: the same clash on the host.
        sh(w, ref, "mkdir -p /tmp/op/a && echo f2 > /tmp/op/a/f2 && echo z > /tmp/op/z");
        make_dirs(h + "/op");
        write_file(h + "/op/a", "file\n");
        check_failed(w.sbox({"cp", at(ref, "/tmp/op"), h + "/"}),
                     "out: a directory over a file, inside a tree");
        CHECK_FALSE(exists(h + "/op/z"));
        CHECK(read_file(h + "/op/a") == "file\n");
    }

    TEST_CASE(
        "cp: the sandbox is named by local/ID, ID, a unique ID prefix or its name - PATH may hold ':'") {
        World w;
        TempDir t;
        const std::string h = t.path();
        const std::string name = "cp-" + random_hex(8);
        auto ref = w.create({"--name", name});
        const std::string id = ref.substr(6);
        write_file(h + "/f", "x\n");
        const std::vector<std::string> refs = {ref, id, id.substr(0, 6), name};
        for (std::size_t i = 0; i < refs.size(); ++i) {
            check_copied(w.sbox({"cp", h + "/f", at(refs[i], "/tmp/via" + std::to_string(i))}),
                         "in via " + refs[i]);
            CHECK(sh(w, ref, "cat /tmp/via" + std::to_string(i)) == "x\n");
            check_copied(
                w.sbox({"cp", at(refs[i], "/tmp/via" + std::to_string(i)), h + "/back" + std::to_string(i)}),
                "out via " + refs[i]);
            CHECK(read_file(h + "/back" + std::to_string(i)) == "x\n");
        }
        check_copied(w.sbox({"cp", h + "/f", at(ref, "/tmp/a:b")}), "a path with ':'");
        CHECK(sh(w, ref, "cat '/tmp/a:b'") == "x\n");
        check_copied(w.sbox({"cp", at(name, "/tmp/a:b"), h + "/colon"}), "out: a path with ':'");
        CHECK(read_file(h + "/colon") == "x\n");
    }

    TEST_CASE(
        "cp: sandbox paths resolve inside the sandbox: symlinks to / or /proc/1/root never reach the host") {
        World w;
        TempDir t;
        const std::string h = t.path();
        auto ref = w.create();
        // The same name in the host's /tmp and the sandbox's, with different contents.
        const std::string name = "sbox-it-resolve-" + random_hex(10);
        HostFile host_side("/tmp/" + name, "HOST\n");
        sh(w, ref,
           "echo SANDBOX > /tmp/" + name +
               " && ln -s /tmp /out && ln -s /proc/1/root /out2 && ln -s / /out3");

        check_copied(w.sbox({"cp", at(ref, "/out/" + name), h + "/got"}), "through a symlink to /tmp");
        CHECK(read_file(h + "/got") == "SANDBOX\n");
        check_copied(w.sbox({"cp", at(ref, "/out3/tmp/" + name), h + "/got3"}), "through a symlink to /");
        CHECK(read_file(h + "/got3") == "SANDBOX\n");

        const std::string fresh = "sbox-it-new-" + random_hex(10);
        write_file(h + "/" + fresh, "N\n");
        check_copied(w.sbox({"cp", h + "/" + fresh, at(ref, "/out/")}), "into a symlink to /tmp");
        CHECK(sh(w, ref, "cat /tmp/" + fresh) == "N\n");
        CHECK_FALSE(exists("/tmp/" + fresh));
        CHECK(read_file("/tmp/" + name) == "HOST\n");

        // /proc/1/root is the sandbox's own root inside; on the host it would be the host's.
        Result p = w.sbox({"cp", at(ref, "/out2/tmp/" + name), h + "/got2"});
        INFO("through /proc/1/root: " << describe(p));
        CHECK((p.status == 0 || p.status == 1));
        if (p.status == 0) CHECK(read_file(h + "/got2") == "SANDBOX\n");
        CHECK(read_file(h + "/got2").find("HOST") == std::string::npos);
        Result hn = w.sbox({"cp", at(ref, "/out2/etc/hostname"), h + "/hostname"});
        INFO("/proc/1/root/etc/hostname: " << describe(hn));
        CHECK((hn.status == 0 || hn.status == 1));
        if (hn.status == 0) {
            CHECK(read_file(h + "/hostname") == sh(w, ref, "cat /etc/hostname"));
            CHECK(read_file(h + "/hostname").find(ref.substr(6)) != std::string::npos);
            if (read_file("/etc/hostname").find(ref.substr(6)) == std::string::npos)
                CHECK(read_file(h + "/hostname") != read_file("/etc/hostname"));
        }
        // A destination that is a dangling symlink to an absolute path: whatever cp does with it, the write
        // stays in the sandbox.
        const std::string dangling = "sbox-it-dangling-" + random_hex(10);
        sh(w, ref, "ln -s /tmp/" + dangling + " /tmp/dlink");
        Result d = w.sbox({"cp", h + "/" + fresh, at(ref, "/tmp/dlink")});
        INFO("onto a dangling symlink: " << describe(d));
        CHECK((d.status == 0 || d.status == 1));
        CHECK_FALSE(exists("/tmp/" + dangling));

        const std::string fresh2 = "sbox-it-new-" + random_hex(10);
        write_file(h + "/" + fresh2, "N2\n");
        Result in2 = w.sbox({"cp", h + "/" + fresh2, at(ref, "/out2/tmp/")});
        INFO("into /proc/1/root/tmp: " << describe(in2));
        CHECK((in2.status == 0 || in2.status == 1));
        if (in2.status == 0) CHECK(sh(w, ref, "cat /tmp/" + fresh2) == "N2\n");
        CHECK_FALSE(exists("/tmp/" + fresh2));
    }

    TEST_CASE("cp: a symlink swapped in during the copy never lets a write reach the host") {
        World w;
        TempDir t;
        const std::string h = t.path();
        auto ref = w.create();
        // As root inside, /etc is writable in the sandbox (root on the host); rootless, /tmp is the target.
        const std::string target = is_root() ? "/etc" : "/tmp";
        const std::string name = "sbox-it-race-" + random_hex(10);
        write_file(h + "/" + name, "race\n");
        sh(w, ref, "mkdir -p /x/d");
        Result bg = w.exec(
            ref,
            {"sh", "-c",
             "echo $$ > /x/pid; cd /x; while :; do mv d tmp; ln -sfn " + target + " d; rm d; mv tmp d; done"},
            {"-d"});
        INFO("the swapping loop: " << describe(bg));
        REQUIRE(bg.status == 0);
        REQUIRE(eventually([&] { return w.exec(ref, {"test", "-s", "/x/pid"}).status == 0; }));
        int copied = 0, failed = 0;
        for (int i = 0; i < 50; ++i) {
            Result r = w.sbox({"cp", h + "/" + name, at(ref, "/x/d/")});
            INFO("cp #" << i << ": " << describe(r));
            CHECK((r.status == 0 || r.status == 1));
            (r.status == 0 ? copied : failed)++;
            if (r.status == 1) CHECK(r.err.starts_with("sbox: "));
        }
        MESSAGE("while the symlink was swapped: " << copied << " copies succeeded, " << failed << " failed");
        CHECK_FALSE(exists("/etc/" + name));
        CHECK_FALSE(exists("/tmp/" + name));
        CHECK_FALSE(exists("/" + name));
        w.exec(ref, {"sh", "-c", "kill $(cat /x/pid)"});
    }

    TEST_CASE("cp: a 2 GiB file goes in and out with bounded memory") {
        World w;
        TempDir t;
        const std::string h = t.path();
        const std::uint64_t size = std::uint64_t{2} << 30;
        const std::uint64_t room = std::min(free_bytes(w.root()), free_bytes(h));
        if (room < (std::uint64_t{6} << 30)) {
            MESSAGE("skipped: " << (room >> 20) << " MiB free under /tmp, 6 GiB needed");
            return;
        }
        // Sparse on the host, with random 4 KiB blocks at the start, in the middle and at the end.
        const std::string big = h + "/big";
        const std::vector<std::uint64_t> blocks = {0, 262144, 524287};
        std::map<std::uint64_t, std::string> samples;
        {
            int fd = open(big.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            REQUIRE(fd >= 0);
            REQUIRE(ftruncate(fd, static_cast<off_t>(size)) == 0);
            for (auto b : blocks) {
                samples[b] = random_bytes(4096);
                REQUIRE(pwrite(fd, samples[b].data(), 4096, static_cast<off_t>(b * 4096)) == 4096);
            }
            close(fd);
        }
        samples[100000] = std::string(4096, '\0');
        const std::string rnd = random_bytes(16 << 20);
        write_file(h + "/rand", rnd);

        auto ref = w.create();
        // /var/tmp is on the sandbox's overlay (its upper layer is on disk, under SBOX_ROOT); /tmp is memory.
        std::string dir = "/var/tmp/big";
        if (w.exec(ref, {"mkdir", "-p", dir}).status != 0) {
            MESSAGE("/var/tmp is not writable inside; using /tmp");
            dir = "/tmp/big";
            sh(w, ref, "mkdir -p " + dir);
        }

        long rss = 0;
        Result in = sbox_measured(w, {"cp", big, at(ref, dir + "/")}, rss);
        check_copied(in, "2 GiB in");
        MESSAGE("peak RSS copying 2 GiB in: " << rss << " KiB");
        CHECK(rss > 0);
        CHECK(rss < 256 * 1024);
        CHECK(sh(w, ref, "stat -c %s " + dir + "/big") == std::to_string(size) + "\n");
        for (auto& [b, data] : samples) {
            INFO("block " << b);
            CHECK(sh(w, ref,
                     "dd if=" + dir + "/big bs=4096 skip=" + std::to_string(b) +
                         " count=1 2>/dev/null | sha256sum")
                      .substr(0, 64) == sha256(data));
        }
        check_copied(w.sbox({"cp", h + "/rand", at(ref, dir + "/")}), "16 MiB in");
        CHECK(sh(w, ref, "sha256sum < " + dir + "/rand").substr(0, 64) == sha256(rnd));

        const std::string back = h + "/big.out";
        Result out = sbox_measured(w, {"cp", at(ref, dir + "/big"), back}, rss);
        check_copied(out, "2 GiB out");
        MESSAGE("peak RSS copying 2 GiB out: " << rss << " KiB");
        CHECK(rss > 0);
        CHECK(rss < 256 * 1024);
        auto f = file_info(back);
        REQUIRE(f);
        CHECK(f->size == size);
        int fd = open(back.c_str(), O_RDONLY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        for (auto& [b, data] : samples) {
            std::string got(4096, '\0');
            CHECK(pread(fd, got.data(), 4096, static_cast<off_t>(b * 4096)) == 4096);
            INFO("block " << b);
            CHECK(got == data);
        }
        close(fd);
        unlink(back.c_str());
        check_copied(w.sbox({"cp", at(ref, dir + "/rand"), h + "/rand.out"}), "16 MiB out");
        CHECK(read_file(h + "/rand.out") == rnd);
    }

    TEST_CASE("cp: a 100 MiB tree with every kind of entry round-trips unchanged") {
        World w;
        TempDir t;
        const std::string h = t.path();
        const std::string tree = h + "/tree";
        // Big random files, many small ones of awkward sizes, odd names, deep paths, empty and read-only
        // directories, symlinks of every kind.
        make_dirs(tree + "/big");
        const unsigned big_modes[] = {0644, 0600, 0755, 0444};
        for (int i = 0; i < 4; ++i)
            write_file(tree + "/big/r" + std::to_string(i), random_bytes(20 << 20), big_modes[i]);
        const unsigned modes[] = {0644, 0600, 0640, 0755, 0700, 0444, 0664, 0750};
        const std::size_t sizes[] = {0,    1,    511,  512,   513,   1023,   1024,
                                     4095, 4096, 4097, 65535, 65536, 1 << 20};
        for (int i = 0; i < 300; ++i) {
            std::string d = tree + "/small/d" + std::to_string(i % 10) + "/e" + std::to_string(i % 3);
            make_dirs(d);
            std::size_t n = i < 13 ? sizes[i] : static_cast<std::size_t>((i * 7919) % 70000);
            write_file(d + "/f" + std::to_string(i), random_bytes(n), modes[i % 8]);
        }
        make_dirs(tree + "/names");
        write_file(tree + "/names/with space.txt", "space\n");
        write_file(tree + "/names/ünïcödé-файл.txt", "utf8\n");
        write_file(tree + "/names/" + std::string(150, 'l'), "long name\n");
        write_file(tree + "/names/-dash", "dash\n");
        write_file(tree + "/names/.dot", "dot\n");
        std::string deep = tree + "/deep";
        for (int i = 0; i < 6; ++i)
            deep += "/" + std::string(50, static_cast<char>('a' + i));
        make_dirs(deep);
        write_file(deep + "/" + std::string(120, 'z'), "deep\n");
        make_dirs(tree + "/empty");
        make_dirs(tree + "/private");
        write_file(tree + "/private/p", "p\n", 0600);
        make_dirs(tree + "/ro");
        write_file(tree + "/ro/file", "ro\n", 0444);
        make_dirs(tree + "/links");
        for (auto [name, target] :
             std::vector<std::pair<std::string, std::string>>{{"rel", "../big/r0"},
                                                              {"abs", "/etc/hostname"},
                                                              {"dangling", "/nonexistent/x"},
                                                              {"dir", "../small"},
                                                              {"loop", "loop"}})
            REQUIRE(::symlink(target.c_str(), (tree + "/links/" + name).c_str()) == 0);
        // Whole-second times on everything (tar's ustar has no fractions), directories after their contents.
        static std::int64_t stamp;
        stamp = 1500000000;
        nftw(
            tree.c_str(),
            [](const char* p, const struct stat*, int, FTW*) {
                set_mtime(p, stamp += 37);
                return 0;
            },
            32, FTW_PHYS | FTW_DEPTH);
        REQUIRE(chmod((tree + "/private").c_str(), 0700) == 0);
        REQUIRE(chmod((tree + "/ro").c_str(), 0555) == 0);
        set_mtime(tree + "/private", 1450000000);
        set_mtime(tree + "/ro", 1450000001);
        const auto listing = host_listing(tree);
        const auto sums = host_checksums(tree);
        REQUIRE(listing.size() > 300);

        auto ref = w.create();
        check_copied(w.sbox({"cp", tree, at(ref, "/tmp/")}), "a 100 MiB tree in");
        auto inside = sandbox_listing(w, ref, "/tmp/tree");
        {
            INFO("host:\n" << join_lines(listing) << "\nsandbox:\n" << join_lines(inside));
            CHECK(inside == listing);
        }
        CHECK(sandbox_checksums(w, ref, "/tmp/tree") == sums);
        CHECK(sh(w, ref, "find /tmp/tree \\( ! -uid 0 -o ! -gid 0 \\) -print") == "");

        check_copied(w.sbox({"cp", at(ref, "/tmp/tree"), h + "/back"}), "the tree out again");
        auto back = host_listing(h + "/back");
        {
            INFO("host:\n" << join_lines(listing) << "\nback:\n" << join_lines(back));
            CHECK(back == listing);
        }
        CHECK(host_checksums(h + "/back") == sums);
        Result owners = host({"find", h + "/back", "(", "!", "-uid", std::to_string(geteuid()), "-o", "!",
                              "-gid", std::to_string(getegid()), ")", "-print"});
        CHECK(owners.status == 0);
        CHECK(owners.out == "");
    }

} // TEST_SUITE

TEST_CASE("cp (as root): a symlink to /etc reads and writes the sandbox's /etc, never the host's") {
    if (!is_root()) {
        MESSAGE("skipped: needs root (the sandbox's /etc is writable inside only then)");
        return;
    }
    World w;
    TempDir t;
    const std::string h = t.path();
    auto ref = w.create();
    if (!w.inspect(ref)["details"].value("base_idmapped", false)) {
        MESSAGE("skipped: the host's root filesystem does not support idmapped mounts "
                "(details.base_idmapped), so the sandbox's /etc is read-only inside");
        return;
    }
    const std::string marker = "sandbox-marker-" + random_hex(10);
    sh(w, ref, "echo " + marker + " >> /etc/passwd && ln -s /etc /out");
    REQUIRE(read_file("/etc/passwd").find(marker) == std::string::npos);

    check_copied(w.sbox({"cp", at(ref, "/out/passwd"), h + "/passwd"}), "through a symlink to /etc");
    CHECK(read_file(h + "/passwd").find(marker) != std::string::npos);
    CHECK(read_file("/etc/passwd").find(marker) == std::string::npos);

    const std::string name = "sbox-it-" + random_hex(10);
    write_file(h + "/" + name, "into etc\n");
    check_copied(w.sbox({"cp", h + "/" + name, at(ref, "/out/")}), "into a symlink to /etc");
    CHECK(sh(w, ref, "cat /etc/" + name) == "into etc\n");
    CHECK_FALSE(exists("/etc/" + name));
    CHECK(read_file("/etc/passwd").find(marker) == std::string::npos);
}

TEST_CASE("cp (as root): no space left - a clear error, exit 1, nothing left at the destination") {
    if (!is_root()) {
        MESSAGE("skipped: needs root (small tmpfs file systems to fill)");
        return;
    }
    World w;
    // The sandbox's writable layer on a 32 MiB file system: the whole state directory is a tmpfs that size.
    REQUIRE(::mount("tmpfs", w.root().c_str(), "tmpfs", 0, "size=32m,mode=0755") == 0);
    struct Unmount {
        const World& w;
        ~Unmount() {
            w.sbox({"kill", "--all"});
            ::umount2(w.root().c_str(), MNT_DETACH);
        }
    } unmount{w};
    TempDir t;
    const std::string h = t.path();
    write_file(h + "/big", std::string(48 << 20, 'x'));
    make_dirs(h + "/tree");
    write_file(h + "/tree/a", "a\n");
    write_file(h + "/tree/b", std::string(48 << 20, 'b'));
    auto ref = w.create();
    sh(w, ref, "mkdir /dst");

    Result in = w.sbox({"cp", h + "/big", at(ref, "/dst/")});
    check_failed(in, "in: a file larger than the sandbox's free space");
    CHECK(lower(in.err).find("space") != std::string::npos);
    Result in_tree = w.sbox({"cp", h + "/tree", at(ref, "/dst/")});
    check_failed(in_tree, "in: a tree larger than the sandbox's free space");
    CHECK(lower(in_tree.err).find("space") != std::string::npos);
    CHECK(sh(w, ref, "ls -A /dst") == "");

    // Out: onto a 1 MiB tmpfs on the host.
    sh(w, ref,
       "head -c 4194304 /dev/zero > /dst/four && mkdir /dst/t && echo a > /dst/t/a && "
       "head -c 4194304 /dev/zero > /dst/t/b");
    const std::string small = h + "/small";
    make_dirs(small);
    REQUIRE(::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=1m") == 0);
    Result out = w.sbox({"cp", at(ref, "/dst/four"), small + "/"});
    Result out_tree = w.sbox({"cp", at(ref, "/dst/t"), small + "/"});
    std::size_t left = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(small))
        ++left;
    ::umount2(small.c_str(), MNT_DETACH);
    check_failed(out, "out: a file larger than the host directory's free space");
    CHECK(lower(out.err).find("space") != std::string::npos);
    check_failed(out_tree, "out: a tree larger than the host directory's free space");
    CHECK(lower(out_tree.err).find("space") != std::string::npos);
    CHECK(left == 0);
}

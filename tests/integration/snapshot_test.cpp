// `sbox snapshot`: create, ls, rm, export and import, and sandboxes started from a snapshot (create/run
// --snapshot), layered snapshots, and hostile import files. The basic cases also run as an unprivileged user
// (run-unprivileged.sh); those that change the system directories inside need root on the host.
#include <algorithm>
#include <ctime>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
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

// `sbox snapshot create REF [--name N]`: REQUIREs success and a 64-hex-digit id alone on stdout.
std::string snap_create(const World& w, const std::string& ref, const std::string& name = "") {
    std::vector<std::string> args{"snapshot", "create", ref};
    if (!name.empty()) {
        args.push_back("--name");
        args.push_back(name);
    }
    Result r = w.sbox(args);
    INFO("sbox snapshot create " << ref << ": " << describe(r));
    REQUIRE(r.status == 0);
    REQUIRE(std::regex_match(r.out, std::regex("[0-9a-f]{64}\n")));
    return r.out.substr(0, 64);
}

nlohmann::json snap_ls(const World& w) {
    Result r = w.sbox({"snapshot", "ls", "--json"});
    INFO("sbox snapshot ls --json: " << describe(r));
    REQUIRE(r.status == 0);
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    REQUIRE(j.is_array());
    return j;
}

std::vector<std::string> snap_ids(const World& w) {
    Result r = w.sbox({"snapshot", "ls", "-q"});
    INFO("sbox snapshot ls -q: " << describe(r));
    REQUIRE(r.status == 0);
    auto ids = lines(r.out);
    std::sort(ids.begin(), ids.end());
    return ids;
}

const nlohmann::json* find_snap(const nlohmann::json& list, const std::string& id) {
    for (auto& e : list)
        if (e.value("id", "") == id) return &e;
    return nullptr;
}

// A time in sbox's JSON: Unix seconds or an RFC 3339 UTC string. -1 when neither.
std::int64_t timestamp(const nlohmann::json& j) {
    if (j.is_number_integer()) return j.get<std::int64_t>();
    if (!j.is_string()) return -1;
    std::tm tm{};
    if (!strptime(j.get<std::string>().c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return -1;
    return static_cast<std::int64_t>(timegm(&tm));
}

std::string name_of(const nlohmann::json& e) {
    return e.contains("name") && e["name"].is_string() ? e["name"].get<std::string>() : "";
}

std::string yes_no(const World& w, const std::string& ref, const std::string& path) {
    return trim(
        sh(w, ref, "if test -e '" + path + "' || test -L '" + path + "'; then echo yes; else echo no; fi"));
}

// Entries of a directory (names), empty when it does not exist.
std::vector<std::string> dir_entries(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = opendir(dir.c_str());
    if (!d) return out;
    while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

// Paths below `root` whose last component contains `needle`.
std::vector<std::string> find_named(const std::string& root, const std::string& needle) {
    static std::vector<std::string> found;
    static std::string wanted;
    found.clear();
    wanted = needle;
    nftw(
        root.c_str(),
        [](const char* p, const struct stat*, int, FTW* f) {
            if (std::string(p + f->base).find(wanted) != std::string::npos) found.push_back(p);
            return 0;
        },
        32, FTW_PHYS | FTW_MOUNT);
    return found;
}

// Nothing but completed snapshots under SBOX_ROOT/data/snapshots: every directory there is a listed id.
void check_only_completed(const World& w) {
    auto ids = snap_ids(w);
    const std::string dir = w.root() + "/data/snapshots";
    for (auto& name : dir_entries(dir)) {
        auto f = file_info(dir + "/" + name);
        if (!f || !S_ISDIR(f->mode)) continue; // a lock file
        INFO("left in data/snapshots: " << name);
        CHECK(std::find(ids.begin(), ids.end(), name) != ids.end());
    }
    INFO("data/trash: " << dir_entries(w.root() + "/data/trash").size() << " entries");
    CHECK(dir_entries(w.root() + "/data/trash").empty());
}

// Copies `from` (following symlinks) to `to` with its mode, creating parents.
void copy_host_file(const std::string& from, const std::string& to) {
    make_dirs(to.substr(0, to.rfind('/')));
    struct stat st;
    REQUIRE(stat(from.c_str(), &st) == 0);
    write_file(to, read_file(from), st.st_mode & 0777);
}

// A tiny root file system: the binaries with the libraries ldd names, at the same paths.
void make_image(const std::string& image, const std::vector<std::string>& binaries) {
    for (auto& bin : binaries) {
        copy_host_file(bin, image + bin);
        Result ldd = host({"ldd", bin});
        REQUIRE(ldd.status == 0);
        for (auto& line : lines(ldd.out)) {
            auto slash = line.find('/');
            if (slash == std::string::npos) continue;
            auto end = line.find_first_of(" \t(", slash);
            std::string lib = line.substr(slash, end == std::string::npos ? std::string::npos : end - slash);
            copy_host_file(lib, image + lib);
        }
    }
    for (auto d : {"/proc", "/dev", "/etc", "/root", "/sys", "/run"})
        make_dirs(image + d);
    make_dirs(image + "/tmp");
    REQUIRE(chmod((image + "/tmp").c_str(), 01777) == 0);
}

std::string zstd(const std::string& data, bool compress) {
    Result r = host({"zstd", compress ? "-c" : "-dc"}, data);
    INFO("zstd: exit " << r.status << " " << r.err);
    REQUIRE(r.status == 0);
    return r.out;
}

// Whether sandboxes can start from a snapshot here. As root the layers are shown through idmapped mounts,
// which the data directory's file system may not support (an overlayfs root: a container, the fresh-machine
// chroot); sbox then refuses `create --snapshot` with a message naming them, and the test says it is skipped.
bool stacking_works(const World& w) {
    std::string ref = w.create();
    Result snap = w.sbox({"snapshot", "create", ref});
    REQUIRE(snap.status == 0);
    std::string id = snap.out.substr(0, 64);
    Result from = w.sbox({"create", "--snapshot", id});
    bool works = from.status == 0;
    if (!works) {
        INFO("create --snapshot: " << describe(from));
        REQUIRE(from.err.find("idmapped mounts") != std::string::npos);
        MESSAGE("skipped: " << from.err);
    }
    REQUIRE(w.sbox({"kill", "--all"}).status == 0);
    REQUIRE(w.sbox({"snapshot", "rm", id}).status == 0);
    return works;
}

// Removes every sandbox and snapshot of a World before the World ends (declare it after the World): rootless,
// a snapshot's layer holds files of the user's subordinate ids that only sbox, in its user namespace, can
// remove. Snapshots that are parents of others go in a later round.
struct Cleanup {
    const World& w;
    ~Cleanup() {
        try {
            w.sbox({"kill", "--all"});
            for (int round = 0; round < 10; ++round) {
                Result q = w.sbox({"snapshot", "ls", "-q"});
                auto ids = lines(q.out);
                if (q.status != 0 || ids.empty()) break;
                std::vector<std::string> args{"snapshot", "rm"};
                args.insert(args.end(), ids.begin(), ids.end());
                w.sbox(args);
            }
        } catch (const std::exception& e) {
            MESSAGE("cleanup failed: " << e.what());
        }
    }
};

} // namespace

TEST_SUITE("rootless-capable") {

    TEST_CASE(
        "snapshot: create prints the id and the sandbox keeps running - ls, ls --json and ls -q show it") {
        World w;
        Cleanup cleanup_w{w};
        const std::string name = "snap-src-" + random_hex(6);
        auto ref = w.create({"--name", name});
        sh(w, ref, "echo hello > /root/f && head -c 10000 /dev/urandom > /tmp/blob");
        Result bg = w.exec(ref,
                           {"sh", "-c",
                            "i=0; while :; do i=$((i+1)); echo $i > /tmp/counter.new; mv /tmp/counter.new "
                            "/tmp/counter; sleep 0.05; done"},
                           {"-d"});
        REQUIRE(bg.status == 0);
        REQUIRE(eventually([&] { return w.exec(ref, {"test", "-s", "/tmp/counter"}).status == 0; }));

        CHECK(snap_ids(w).empty());
        CHECK(snap_ls(w).empty());
        const auto now = static_cast<std::int64_t>(std::time(nullptr));
        const std::string id = snap_create(w, ref, "first");

        // Still running, and not frozen: the counter moves on.
        CHECK(w.ls_q() == std::vector<std::string>{ref});
        CHECK(w.inspect(ref)["status"] == "running");
        const std::string c1 = sh(w, ref, "cat /tmp/counter");
        CHECK(eventually([&] { return sh(w, ref, "cat /tmp/counter") != c1; }));
        CHECK(sh(w, ref, "cat /root/f") == "hello\n");

        CHECK(snap_ids(w) == std::vector<std::string>{id});
        auto list = snap_ls(w);
        INFO("snapshot ls --json: " << list.dump());
        REQUIRE(list.size() == 1);
        auto& e = list[0];
        CHECK(e["id"] == id);
        CHECK(e["name"] == "first");
        REQUIRE(e["size"].is_number_integer());
        CHECK(e["size"].get<std::int64_t>() >= 10000);
        REQUIRE(e.contains("created_at"));
        const auto created = timestamp(e["created_at"]);
        CHECK(created >= now - 5);
        CHECK(created <= now + 600);
        CHECK(e["source"] == ref);
        REQUIRE(e.contains("parent"));
        CHECK(e["parent"] == "");

        Result table = w.sbox({"snapshot", "ls"});
        INFO("snapshot ls: " << describe(table));
        CHECK(table.status == 0);
        auto rows = lines(table.out);
        REQUIRE(rows.size() == 2);
        std::istringstream header(rows[0]);
        std::vector<std::string> columns{std::istream_iterator<std::string>(header), {}};
        CHECK(columns == std::vector<std::string>{"NAME", "ID", "SIZE", "CREATED", "SOURCE"});
        CHECK(rows[1].find("first") != std::string::npos);
        CHECK(rows[1].find(id.substr(0, 12)) != std::string::npos);

        // A second one, without a name, after a change: another id.
        sh(w, ref, "echo more > /root/g");
        const std::string id2 = snap_create(w, ref);
        CHECK(id2 != id);
        auto ids = snap_ids(w);
        CHECK(ids == std::vector<std::string>{std::min(id, id2), std::max(id, id2)});
        auto list2 = snap_ls(w);
        auto* e2 = find_snap(list2, id2);
        REQUIRE(e2);
        CHECK(name_of(*e2) == "");
        CHECK((*e2)["source"] == ref);
    }

    TEST_CASE("snapshot: a sandbox from a snapshot has its files, modes, owners and symlinks - the two stay "
              "apart") {
        World w;
        Cleanup cleanup_w{w};
        if (!stacking_works(w)) return;
        auto ref = w.create();
        sh(w, ref,
           "mkdir -p /home/u/docs && echo doc > /home/u/docs/a && echo secret > /root/secret && "
           "chmod 600 /root/secret && touch -d @1500000000 /root/secret && echo t > /tmp/t && chmod 751 "
           "/tmp/t && "
           "ln -s /root/secret /tmp/link && ln -s docs /home/u/rel && mkdir -m 700 /tmp/private && "
           "head -c 100000 /dev/urandom > /tmp/blob");
        const std::string blob_sum = sh(w, ref, "sha256sum < /tmp/blob");
        const bool ids = is_root() || has_subid_ranges();
        if (ids) sh(w, ref, "echo n > /tmp/nob && chown nobody /tmp/nob && chown 1000:1000 /home/u");
        const std::string snap = snap_create(w, ref, "base");

        for (auto via : {snap, std::string("base"), snap.substr(0, 8)}) {
            INFO("--snapshot " << via);
            auto copy = w.create({"--snapshot", via});
            CHECK(sh(w, copy, "cat /home/u/docs/a /root/secret /tmp/t") == "doc\nsecret\nt\n");
            CHECK(sh(w, copy, "stat -c '%a %Y %u' /root/secret; stat -c %a /tmp/t /tmp/private") ==
                  "600 1500000000 0\n751\n700\n");
            CHECK(sh(w, copy, "readlink /tmp/link /home/u/rel; cat /home/u/rel/a") ==
                  "/root/secret\ndocs\ndoc\n");
            CHECK(sh(w, copy, "sha256sum < /tmp/blob") == blob_sum);
            if (ids)
                CHECK(sh(w, copy, "stat -c %U /tmp/nob; stat -c %u:%g /home/u") == "nobody\n1000:1000\n");
        }

        // Changes in the new sandbox stay there, and later changes of the source are not in the snapshot.
        auto copy = w.create({"--snapshot", snap});
        sh(w, copy, "echo changed > /root/secret && rm /home/u/docs/a && echo new > /tmp/new");
        CHECK(sh(w, ref, "cat /root/secret /home/u/docs/a") == "secret\ndoc\n");
        CHECK(yes_no(w, ref, "/tmp/new") == "no");
        sh(w, ref, "echo after > /tmp/after");
        auto later = w.create({"--snapshot", snap});
        CHECK(yes_no(w, later, "/tmp/after") == "no");
        CHECK(yes_no(w, later, "/tmp/new") == "no");
        CHECK(sh(w, later, "cat /root/secret") == "secret\n");

        // run --snapshot.
        Result run = w.sbox({"run", "--snapshot", "base", "--", "cat", "/root/secret", "/home/u/docs/a"});
        INFO("run --snapshot: " << describe(run));
        CHECK(run.status == 0);
        CHECK(run.out == "secret\ndoc\n");
    }

    TEST_CASE("snapshot: layers: a snapshot of a sandbox made from a snapshot has both, deletions included") {
        World w;
        Cleanup cleanup_w{w};
        if (!stacking_works(w)) return;
        auto s1 = w.create();
        sh(w, s1,
           "echo a > /root/a && echo keep > /root/keep && echo old > /tmp/mod && mkdir /tmp/dir && "
           "echo x > /tmp/dir/x && echo y > /tmp/dir/y");
        const std::string a = snap_create(w, s1, "A");
        auto s2 = w.create({"--snapshot", a});
        sh(w, s2,
           "rm /root/a && echo b > /root/b && echo new > /tmp/mod && rm -r /tmp/dir && mkdir /tmp/dir && "
           "echo z > /tmp/dir/z");
        const std::string b = snap_create(w, s2, "B");
        auto list = snap_ls(w);
        INFO("snapshot ls --json: " << list.dump());
        auto* ea = find_snap(list, a);
        auto* eb = find_snap(list, b);
        REQUIRE(ea);
        REQUIRE(eb);
        CHECK((*ea)["parent"] == "");
        CHECK((*eb)["parent"] == a);
        CHECK((*eb)["source"] == s2);

        auto s3 = w.create({"--snapshot", "B"});
        CHECK(yes_no(w, s3, "/root/a") == "no");
        CHECK(sh(w, s3, "cat /root/b /root/keep /tmp/mod; ls -A /tmp/dir") == "b\nkeep\nnew\nz\n");
        auto s4 = w.create({"--snapshot", "A"});
        CHECK(sh(w, s4, "cat /root/a /root/keep /tmp/mod; ls -A /tmp/dir") == "a\nkeep\nold\nx\ny\n");
        CHECK(yes_no(w, s4, "/root/b") == "no");

        // A third layer.
        sh(w, s3, "echo a-again > /root/a && rm /root/keep");
        const std::string c = snap_create(w, s3);
        auto s5 = w.create({"--snapshot", c});
        CHECK(sh(w, s5, "cat /root/a /root/b; ls -A /root") == "a-again\nb\na\nb\n");
        CHECK(find_snap(snap_ls(w), c)->at("parent") == b);
    }

    TEST_CASE("snapshot: rm by name, id or prefix - refused while a sandbox or another snapshot uses it") {
        World w;
        Cleanup cleanup_w{w};
        if (!stacking_works(w)) return;
        auto s1 = w.create();
        sh(w, s1, "echo a > /root/a");
        const std::string a = snap_create(w, s1, "A");
        auto s2 = w.create({"--snapshot", "A"});
        sh(w, s2, "echo b > /root/b");
        const std::string b = snap_create(w, s2, "B");
        auto s3 = w.create({"--snapshot", "B"});

        Result in_use = w.sbox({"snapshot", "rm", "B"});
        INFO("rm B while s3 uses it: " << describe(in_use));
        CHECK(in_use.status == 1);
        CHECK(in_use.err.starts_with("sbox: "));
        CHECK(in_use.out.empty());
        Result parent = w.sbox({"snapshot", "rm", a});
        INFO("rm A, the parent of B and used by s2: " << describe(parent));
        CHECK(parent.status == 1);
        CHECK(parent.err.starts_with("sbox: "));
        CHECK(snap_ids(w) == std::vector<std::string>{std::min(a, b), std::max(a, b)});
        // The sandboxes still work.
        CHECK(sh(w, s3, "cat /root/a /root/b") == "a\nb\n");

        REQUIRE(w.sbox({"kill", s3}).status == 0);
        Result rm_b = w.sbox({"snapshot", "rm", "B"});
        INFO("rm B: " << describe(rm_b));
        CHECK(rm_b.status == 0);
        CHECK(rm_b.out == b + "\n");
        CHECK(snap_ids(w) == std::vector<std::string>{a});
        // A is still used by s2.
        CHECK(w.sbox({"snapshot", "rm", "A"}).status == 1);
        CHECK(sh(w, s2, "cat /root/a") == "a\n");
        REQUIRE(w.sbox({"kill", s2}).status == 0);
        Result rm_a = w.sbox({"snapshot", "rm", a.substr(0, 8)});
        INFO("rm A by a prefix: " << describe(rm_a));
        CHECK(rm_a.status == 0);
        CHECK(rm_a.out == a + "\n");
        CHECK(snap_ids(w).empty());

        // Several at once: those that exist are removed and printed, the status is 1 for the others.
        sh(w, s1, "echo c > /root/c");
        const std::string c = snap_create(w, s1, "C");
        sh(w, s1, "echo d > /root/d");
        const std::string d = snap_create(w, s1);
        Result three = w.sbox({"snapshot", "rm", "C", "no-such-snapshot", c.substr(0, 3)});
        INFO("rm C no-such-snapshot and a 3-character prefix: " << describe(three));
        CHECK(three.status == 1);
        CHECK(three.out == c + "\n");
        CHECK(three.err.starts_with("sbox: "));
        CHECK(snap_ids(w) == std::vector<std::string>{d});
        Result full = w.sbox({"snapshot", "rm", d});
        CHECK(full.status == 0);
        CHECK(full.out == d + "\n");
        CHECK(snap_ids(w).empty());
        check_only_completed(w);
    }

    TEST_CASE("snapshot: the same files again give the same snapshot - an unnamed one takes a name") {
        World w;
        Cleanup cleanup_w{w};
        auto s1 = w.create();
        sh(w, s1, "echo same > /root/f");
        const std::string first = snap_create(w, s1);
        CHECK(snap_create(w, s1) == first); // nothing changed: the stored snapshot, no second copy
        CHECK(snap_ids(w) == std::vector<std::string>{first});

        // Asked for by name, the unnamed snapshot of the same files takes the name.
        CHECK(snap_create(w, s1, "named") == first);
        auto listed = snap_ls(w);
        REQUIRE(listed.size() == 1);
        CHECK(listed[0].at("name") == "named");
        Result again = w.sbox({"snapshot", "create", s1, "--name", "named"});
        INFO("a name already used: " << describe(again));
        CHECK(again.status == 1); // checked before any work, whatever the files
        CHECK(again.err.find("already used") != std::string::npos);

        // Another name for the same files: a snapshot has one name, so that is refused and says which.
        Result other = w.sbox({"snapshot", "create", s1, "--name", "other"});
        INFO("a second name for the same files: " << describe(other));
        CHECK(other.status == 1);
        CHECK(other.out.empty());
        CHECK(other.err.find("'named'") != std::string::npos);
        CHECK(snap_ids(w) == std::vector<std::string>{first});
        CHECK(snap_ls(w)[0].at("name") == "named");
        check_only_completed(w);
    }

    TEST_CASE(
        "snapshot: export writes a zstd tar with manifest.json - import gives the same id, elsewhere too") {
        TempDir t;
        World w;
        Cleanup cleanup_w{w};
        if (!stacking_works(w)) return;
        auto s1 = w.create();
        sh(w, s1, "echo a > /root/a && echo keep > /root/keep && mkdir /home/u && echo u > /home/u/f");
        const std::string a = snap_create(w, s1, "A");
        auto s2 = w.create({"--snapshot", a});
        sh(w, s2, "rm /root/a && echo b > /root/b");
        const std::string b = snap_create(w, s2, "B");

        const std::string file_b = t.path() + "/b.tar.zst";
        Result ex = w.sbox({"snapshot", "export", "B", file_b});
        INFO("export B: " << describe(ex));
        REQUIRE(ex.status == 0);
        CHECK(ex.out.empty());
        Result list = host({"tar", "--zstd", "-tf", file_b});
        INFO("tar --zstd -tf: " << describe(list));
        CHECK(list.status == 0);
        auto names = lines(list.out);
        CHECK(std::find(names.begin(), names.end(), "manifest.json") != names.end());

        Result ex_a = w.sbox({"snapshot", "export", a.substr(0, 10), "-"});
        REQUIRE(ex_a.status == 0);
        REQUIRE(!ex_a.out.empty());
        const std::string file_a = t.path() + "/a.tar.zst";
        write_file(file_a, ex_a.out);
        Result list_a = host({"tar", "--zstd", "-tf", file_a});
        CHECK(list_a.status == 0);
        auto names_a = lines(list_a.out);
        CHECK(std::find(names_a.begin(), names_a.end(), "manifest.json") != names_a.end());

        {
            // Another SBOX_ROOT: B's file brings B (and what it is layered on).
            World other;
            Cleanup cleanup_other{other};
            Result im = other.sbox({"snapshot", "import", file_b});
            INFO("import B elsewhere: " << describe(im));
            REQUIRE(im.status == 0);
            CHECK(im.out == b + "\n");
            auto ids = snap_ids(other);
            CHECK(std::find(ids.begin(), ids.end(), b) != ids.end());
            auto box = other.create({"--snapshot", b});
            CHECK(yes_no(other, box, "/root/a") == "no");
            CHECK(sh(other, box, "cat /root/b /root/keep /home/u/f") == "b\nkeep\nu\n");
            // A from stdin.
            Result im_a = other.sbox_in({"snapshot", "import", "-"}, ex_a.out);
            INFO("import A from stdin: " << describe(im_a));
            CHECK(im_a.status == 0);
            CHECK(im_a.out == a + "\n");
            auto box_a = other.create({"--snapshot", a});
            CHECK(sh(other, box_a, "cat /root/a /root/keep") == "a\nkeep\n");
            check_only_completed(other);
        }

        // Here, once both are gone.
        REQUIRE(w.sbox({"kill", "--all"}).status == 0);
        REQUIRE(w.sbox({"snapshot", "rm", "B"}).status == 0);
        REQUIRE(w.sbox({"snapshot", "rm", "A"}).status == 0);
        REQUIRE(snap_ids(w).empty());
        Result again = w.sbox_in({"snapshot", "import", "-"}, read_file(file_b));
        INFO("import B after rm: " << describe(again));
        REQUIRE(again.status == 0);
        CHECK(again.out == b + "\n");
        auto box = w.create({"--snapshot", b});
        CHECK(sh(w, box, "cat /root/b /root/keep; test -e /root/a || echo gone") == "b\nkeep\ngone\n");
        check_only_completed(w);
    }

    TEST_CASE("snapshot: --snapshot with --image, a missing snapshot or sandbox are errors") {
        World w;
        Cleanup cleanup_w{w};
        TempDir t;
        auto ref = w.create();
        const std::string snap = snap_create(w, ref, "S");
        make_dirs(t.path() + "/image/tmp");

        Result both = w.sbox({"create", "--snapshot", "S", "--image", t.path() + "/image"});
        INFO("create --snapshot --image: " << describe(both));
        CHECK(both.status == 2); // a usage error: the two options exclude each other
        CHECK(both.err.starts_with("sbox: "));
        CHECK(both.out.empty());
        Result missing = w.sbox({"create", "--snapshot", "no-such-snapshot"});
        INFO("create --snapshot no-such-snapshot: " << describe(missing));
        CHECK(missing.status == 1);
        CHECK(missing.err.starts_with("sbox: "));
        CHECK(missing.out.empty());
        Result run_missing = w.sbox({"run", "--snapshot", "no-such-snapshot", "--", "true"});
        INFO("run --snapshot no-such-snapshot: " << describe(run_missing));
        CHECK(run_missing.status == 125);
        CHECK(run_missing.err.starts_with("sbox: "));
        CHECK(w.ls_q() == std::vector<std::string>{ref});

        Result no_box = w.sbox({"snapshot", "create", "local/000000000000"});
        INFO("snapshot create of a missing sandbox: " << describe(no_box));
        CHECK(no_box.status == 1);
        CHECK(no_box.err.starts_with("sbox: "));
        const std::string out = t.path() + "/out.tar.zst";
        Result no_export = w.sbox({"snapshot", "export", "no-such-snapshot", out});
        INFO("export of a missing snapshot: " << describe(no_export));
        CHECK(no_export.status == 1);
        CHECK_FALSE(exists(out));
        Result no_file = w.sbox({"snapshot", "import", t.path() + "/no-such-file"});
        CHECK(no_file.status == 1);
        CHECK(no_file.err.starts_with("sbox: "));
        Result no_rm = w.sbox({"snapshot", "rm", "no-such-snapshot"});
        CHECK(no_rm.status == 1);
        CHECK(no_rm.out.empty());
        CHECK(snap_ids(w) == std::vector<std::string>{snap});
    }

    TEST_CASE("snapshot: hostile import files fail and leave nothing behind") {
        TempDir t;
        std::string exported;
        std::string id;
        {
            World src;
            Cleanup cleanup_src{src};
            auto ref = src.create();
            sh(src, ref, "echo a > /root/a && mkdir -p /tmp/d && head -c 50000 /dev/urandom > /tmp/d/blob");
            id = snap_create(src, ref);
            Result ex = src.sbox({"snapshot", "export", id, "-"});
            REQUIRE(ex.status == 0);
            exported = ex.out;
        }
        const std::string plain = zstd(exported, false);
        auto members = tar::split(plain);
        const std::string x = random_hex(10);

        std::vector<std::pair<std::string, std::string>> cases;
        cases.push_back({"garbage", random_bytes(65536)});
        cases.push_back({"an empty file", ""});
        cases.push_back({"the export cut in half", exported.substr(0, exported.size() / 2)});
        cases.push_back({"the tar inside cut in half", zstd(plain.substr(0, plain.size() / 2), true)});
        {
            auto evil = members;
            for (auto name : {"../sbox-evil-" + x, "../../../../../../../../../tmp/sbox-evil-" + x,
                              "/tmp/sbox-evil-abs-" + x}) {
                tar::Member m;
                m.name = name;
                m.raw = tar::member(tar::file(name, "evil\n"));
                evil.push_back(m);
            }
            cases.push_back({"the export with ../ and absolute entries added", zstd(tar::join(evil), true)});
            auto first = members;
            tar::Member m;
            m.raw = tar::member(tar::file("../sbox-evil-first-" + x, "evil\n"));
            first.insert(first.begin(), m);
            cases.push_back({"the export with a ../ entry first", zstd(tar::join(first), true)});
        }
        {
            std::vector<tar::Member> manifest_only;
            for (auto& m : members)
                if (m.name == "manifest.json" || m.name == "./manifest.json") manifest_only.push_back(m);
            REQUIRE(manifest_only.size() == 1);
            cases.push_back({"a manifest without its layer", zstd(tar::join(manifest_only), true)});
            cases.push_back({"a manifest without its layer, uncompressed", tar::join(manifest_only)});
        }
        cases.push_back({"an empty manifest", zstd(tar::archive({tar::file("manifest.json", "{}")}), true)});
        cases.push_back({"a manifest that is not JSON",
                         zstd(tar::archive({tar::file("manifest.json", "{not json")}), true)});
        {
            // Inside the layer: a symlink out of the staging directory then a file through it, and a name
            // with
            // "..".
            std::string layer;
            for (auto& m : members)
                if (m.name.starts_with("layers/") && layer.empty())
                    layer = m.name.substr(0, m.name.find('/', 7) + 1);
            REQUIRE(!layer.empty());
            auto add = [&](std::vector<tar::Member> v, const std::vector<tar::Entry>& entries) {
                for (auto& e : entries) {
                    tar::Member m;
                    m.name = e.name;
                    m.raw = tar::member(e);
                    v.push_back(m);
                }
                return zstd(tar::join(v), true);
            };
            cases.push_back(
                {"a layer with a symlink to /tmp and a file through it",
                 add(members, {tar::symlink(layer + "evil-link-" + x, "/tmp"),
                               tar::file(layer + "evil-link-" + x + "/sbox-evil-link-" + x, "evil\n")})});
            cases.push_back({"a layer with a ../ name",
                             add(members, {tar::file(layer + "../../sbox-evil-dots-" + x, "evil\n")})});
            cases.push_back(
                {"a layer with a hard link to /etc/passwd",
                 add(members, {tar::hardlink(layer + "root/sbox-evil-hard-" + x, "/etc/passwd")})});
            // Entries outside manifest.json and layers/: an export never has them, so the file is refused.
            cases.push_back(
                {"the export with top-level entries added: a symlink to /tmp and a file through it",
                 add(members, {tar::symlink("evil-top-" + x, "/tmp"),
                               tar::file("evil-top-" + x + "/sbox-evil-top-" + x, "evil\n")})});
            cases.push_back(
                {"the export with a file in another layer's name",
                 add(members, {tar::file("layers/" + std::string(64, 'e') + "/sbox-evil-" + x, "evil\n")})});
            // A bomb behind the layer, in an entry outside it and in one inside it: refused on its header.
            std::string head;
            for (auto& m : members)
                head += m.raw;
            for (const std::string& name : {"sbox-evil-bomb-" + x, layer + "sbox-evil-bomb-" + x}) {
                tar::Entry bomb = tar::file(name, "");
                bomb.size = 100ull << 30;
                cases.push_back({"a 100 GiB entry of zeros named " + name,
                                 tar::zstd_zeros(head + tar::headers(bomb), 100ull << 30)});
            }
        }

        for (auto& [what, data] : cases) {
            INFO(what);
            World w;
            Cleanup cleanup_w{w};
            Result r = w.sbox_in({"snapshot", "import", "-"}, data);
            INFO("import: " << describe(r));
            CHECK(r.status == 1);
            CHECK_FALSE(r.hung);
            CHECK(r.err.starts_with("sbox: "));
            CHECK(r.out.empty());
            CHECK(snap_ids(w).empty());
            check_only_completed(w);
            // Also from a file.
            const std::string file = t.path() + "/import.tar.zst";
            write_file(file, data);
            Result rf = w.sbox({"snapshot", "import", file});
            INFO("import FILE: " << describe(rf));
            CHECK(rf.status == 1);
            CHECK(snap_ids(w).empty());
            check_only_completed(w);
            CHECK(find_named(w.root(), "sbox-evil").empty());
        }
        CHECK_FALSE(exists("/tmp/sbox-evil-" + x));
        CHECK_FALSE(exists("/tmp/sbox-evil-abs-" + x));
        CHECK_FALSE(exists("/tmp/sbox-evil-link-" + x));
        CHECK_FALSE(exists("/tmp/sbox-evil-dots-" + x));
        CHECK_FALSE(exists("/tmp/sbox-evil-top-" + x));
        CHECK(find_named(t.path(), "sbox-evil").empty());

        {
            // A layer whose data was changed: it is not the exported snapshot any more.
            std::vector<tar::Member> changed = members;
            bool done = false;
            for (auto& m : changed) {
                if (done || m.type != tar::kFile || m.size < 1000 ||
                    m.name.find("manifest") != std::string::npos)
                    continue;
                const std::size_t data_start = m.raw.size() - (m.size + 511) / 512 * 512;
                m.raw[data_start + 10] ^= 1; // a byte of the data, not of the header
                done = true;
            }
            REQUIRE(done);
            World w;
            Cleanup cleanup_w{w};
            Result r = w.sbox_in({"snapshot", "import", "-"}, zstd(tar::join(changed), true));
            INFO("import of a changed layer: " << describe(r));
            // The manifest still names the exported id, which the changed data no longer hashes to.
            CHECK(r.status == 1);
            CHECK(r.out.empty());
            CHECK(r.err.find("does not match its content") != std::string::npos);
            CHECK(snap_ids(w).empty());
            check_only_completed(w);
        }
    }

    TEST_CASE("snapshot: of a sandbox made with --image DIR") {
        TempDir dir;
        World w;
        Cleanup cleanup_w{w};
        if (!stacking_works(w)) return;
        const std::string image = dir.path() + "/image";
        make_image(image, {"/bin/sh", "/bin/cat", "/bin/ls", "/bin/mkdir"});
        auto ref = w.create({"--image", image});
        if (is_root() && !w.inspect(ref)["details"].value("base_idmapped", false)) {
            MESSAGE("skipped: the image's filesystem does not support idmapped mounts "
                    "(details.base_idmapped), so the image is read-only inside");
            return;
        }
        w.check_output(ref, {"/bin/sh", "-c", "echo in-image > /tmp/f && mkdir /tmp/d && echo g > /tmp/d/g"});
        const std::string snap = snap_create(w, ref, "img");
        auto copy = w.create({"--snapshot", "img"});
        CHECK(w.check_output(copy, {"/bin/cat", "/tmp/f", "/tmp/d/g"}) == "in-image\ng\n");
        // The base is the image, not the host's system.
        CHECK(w.check_output(copy, {"/bin/sh", "-c", "test -e /usr/bin/find || echo absent"}) == "absent\n");
        CHECK(w.check_output(copy, {"/bin/ls", "/bin"}) == "cat\nls\nmkdir\nsh\n");
        CHECK(read_file(image + "/tmp/f").empty());
        CHECK_FALSE(exists(image + "/tmp/f"));
        const auto list = snap_ls(w);
        auto* e = find_snap(list, snap);
        REQUIRE(e);
        CHECK((*e)["source"] == ref);
    }

} // TEST_SUITE

TEST_CASE(
    "snapshot (as root): system directories: files added, changed and deleted in /etc, /usr/local, /opt") {
    if (!is_root()) {
        MESSAGE("skipped: needs root (the sandbox's system directories are writable inside only then)");
        return;
    }
    World w;
    Cleanup cleanup_w{w};
    if (!stacking_works(w)) return;
    auto ref = w.create();
    if (!w.inspect(ref)["details"].value("base_idmapped", false)) {
        MESSAGE("skipped: the host's root filesystem does not support idmapped mounts "
                "(details.base_idmapped), so the system directories are read-only inside");
        return;
    }
    // A file of the host's /etc to delete and one to change (their presence checked first).
    std::string gone = exists("/etc/motd") ? "/etc/motd" : exists("/etc/issue") ? "/etc/issue" : "";
    std::string changed = exists("/etc/shells")           ? "/etc/shells"
                          : exists("/etc/debian_version") ? "/etc/debian_version"
                                                          : "";
    REQUIRE(!gone.empty());
    REQUIRE(!changed.empty());
    const std::string host_changed = read_file(changed);
    const std::string tag = random_hex(8);
    sh(w, ref,
       "echo x > /etc/added-" + tag + " && rm " + gone + " && echo '# " + tag + "' >> " + changed +
           " && mkdir -p /opt/data && echo y > /opt/data/f && mkdir -p /usr/local/share/sbox-it && "
           "echo z > /usr/local/share/sbox-it/z && chmod 640 /usr/local/share/sbox-it/z && "
           "echo n > /etc/nob-" +
           tag + " && chown nobody:nogroup /etc/nob-" + tag + " && ln -s /opt/data/f /etc/link-" + tag +
           " && mkdir /etc/emptydir-" + tag);
    const std::string snap = snap_create(w, ref);
    auto copy = w.create({"--snapshot", snap});
    CHECK(sh(w, copy, "cat /etc/added-" + tag + " /opt/data/f /usr/local/share/sbox-it/z /etc/link-" + tag) ==
          "x\ny\nz\ny\n");
    CHECK(yes_no(w, copy, gone) == "no");
    CHECK(sh(w, copy, "tail -n 1 " + changed) == "# " + tag + "\n");
    CHECK(sh(w, copy,
             "stat -c %a /usr/local/share/sbox-it/z; stat -c %U:%G /etc/nob-" + tag +
                 "; readlink /etc/link-" + tag + "; test -d /etc/emptydir-" + tag + " && echo dir") ==
          "640\nnobody:nogroup\n/opt/data/f\ndir\n");
    // Everything it sees of the host's is as it was.
    CHECK(sh(w, copy, "cat /etc/hostname") != "");
    CHECK(yes_no(w, copy, "/etc/passwd") == "yes");

    // The host is untouched, and so is the source by writes in the copy.
    CHECK(exists(gone));
    CHECK(read_file(changed) == host_changed);
    CHECK_FALSE(exists("/etc/added-" + tag));
    CHECK_FALSE(exists("/opt/data/f"));
    sh(w, copy, "echo other > /opt/data/f && rm /etc/added-" + tag);
    CHECK(sh(w, ref, "cat /opt/data/f /etc/added-" + tag) == "y\nx\n");
}

// What only root on the host can give sandboxes: a distinct unprivileged uid range each, and a base file
// system that root inside owns (idmapped mounts). Skipped when not run as root.
#include <ftw.h>
#include <sstream>
#include <sys/stat.h>

#include <doctest/doctest.h>

#include "harness.hpp"

using namespace it;

namespace {

struct Range {
    long inside = -1, outside = -1, count = 0;
};

std::vector<Range> id_map(pid_t pid, const char* which) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/" + which));
    std::vector<Range> out;
    for (Range r; in >> r.inside >> r.outside >> r.count;)
        out.push_back(r);
    return out;
}

// Paths under `dir` whose name is `name`, with their owner.
std::vector<std::pair<std::string, uid_t>> find_named(const std::string& dir, const std::string& name) {
    static std::vector<std::pair<std::string, uid_t>> found;
    static std::string wanted;
    found.clear();
    wanted = "/" + name;
    nftw(
        dir.c_str(),
        [](const char* p, const struct stat* st, int, FTW*) {
            if (std::string_view(p).ends_with(wanted)) found.emplace_back(p, st->st_uid);
            return 0;
        },
        32, FTW_PHYS | FTW_MOUNT);
    return found;
}

} // namespace

TEST_CASE("as root: each sandbox gets its own unprivileged host uid and gid range") {
    if (!is_root()) {
        MESSAGE("skipped: needs root (run as an ordinary user, sbox maps that user)");
        return;
    }
    World w;
    auto a = w.create();
    auto b = w.create();
    pid_t sa = w.supervisor_pid(a), sb = w.supervisor_pid(b);
    for (const char* which : {"uid_map", "gid_map"}) {
        auto ma = id_map(sa, which), mb = id_map(sb, which);
        INFO(which << " of " << a << ": " << read_file("/proc/" + std::to_string(sa) + "/" + which));
        INFO(which << " of " << b << ": " << read_file("/proc/" + std::to_string(sb) + "/" + which));
        REQUIRE(!ma.empty());
        REQUIRE(!mb.empty());
        for (auto& m : {ma, mb}) {
            for (auto& r : m) {
                CHECK(r.outside > 0); // root (or any id) inside is never host root
                CHECK(r.outside + r.count <= 4294967295L);
            }
            CHECK(m[0].inside == 0);
        }
        // Enough ids for ordinary users (nobody = 65534) inside.
        long total_a = 0;
        for (auto& r : ma)
            total_a += r.count;
        CHECK(total_a >= 65536);
        // The ranges of the two sandboxes do not overlap.
        for (auto& ra : ma)
            for (auto& rb : mb)
                CHECK((ra.outside + ra.count <= rb.outside || rb.outside + rb.count <= ra.outside));
    }
    CHECK(process_uids(sa) != process_uids(sb));

    // A user inside maps into the sandbox's range.
    REQUIRE(w.exec(a, {"sleep", "1007"}, {"-d", "-u", "1000"}).status == 0);
    std::string pidns = ns_of(sa, "pid");
    long base = id_map(sa, "uid_map")[0].outside;
    bool found = false;
    for (pid_t p : all_pids()) {
        if (ns_of(p, "pid") != pidns ||
            read_file("/proc/" + std::to_string(p) + "/cmdline") != std::string("sleep\0"
                                                                                "1007\0",
                                                                                11))
            continue;
        found = true;
        auto uids = process_uids(p);
        REQUIRE(uids.size() == 4);
        CHECK(uids[0] == base + 1000);
    }
    CHECK(found);
}

TEST_CASE("as root: root inside changes any file of its root file system, the host's stay untouched") {
    if (!is_root()) {
        MESSAGE("skipped: needs root (in rootless mode the host's system files belong to unmapped ids)");
        return;
    }
    World w;
    auto ref = w.create();
    std::string tag = random_hex(10);
    // Idmapped mounts need a filesystem that supports them (ext4, xfs, btrfs, tmpfs; not an overlayfs root as
    // in a container or chroot). sbox says which it got; without them root's files stay read-only inside.
    if (!w.inspect(ref)["details"].value("base_idmapped", false)) {
        MESSAGE(
            "skipped: the host's root filesystem does not support idmapped mounts (details.base_idmapped)");
        return;
    }
    // The base appears owned by root inside (idmapped), not by the overflow id.
    CHECK(w.check_output(ref, {"stat", "-c", "%u:%g", "/usr/bin/env", "/etc", "/usr/local/bin"}) ==
          "0:0\n0:0\n0:0\n");
    std::string tool = "/usr/local/bin/sbox-it-tool-" + tag;
    Result install =
        w.exec(ref, {"sh", "-c", "printf '#!/bin/sh\\necho tool\\n' > " + tool + " && chmod 755 " + tool});
    INFO("install a tool: " << describe(install));
    CHECK(install.status == 0);
    CHECK(w.check_output(ref, {tool}) == "tool\n");
    CHECK_FALSE(exists(tool));

    const std::string issue = read_file("/etc/issue");
    REQUIRE(!issue.empty());
    CHECK(w.exec(ref, {"sh", "-c", "echo changed >> /etc/issue"}).status == 0);
    CHECK(w.check_output(ref, {"cat", "/etc/issue"}) == issue + "changed\n");
    CHECK(read_file("/etc/issue") == issue);

    if (exists("/etc/motd")) {
        const std::string motd = read_file("/etc/motd");
        Result rm = w.exec(ref, {"rm", "/etc/motd"});
        INFO("rm /etc/motd: " << describe(rm));
        CHECK(rm.status == 0);
        CHECK(w.exec(ref, {"test", "-e", "/etc/motd"}).status == 1);
        CHECK(exists("/etc/motd"));
        CHECK(read_file("/etc/motd") == motd);
    }
    CHECK(w.exec(ref, {"chown", "nobody", "/usr/bin/env"}).status == 0);
    CHECK(w.check_output(ref, {"stat", "-c", "%U", "/usr/bin/env"}) == "nobody\n");
    struct stat st;
    REQUIRE(stat("/usr/bin/env", &st) == 0);
    CHECK(st.st_uid == 0);

    // What root inside created lands in the sandbox's own layer, owned by an unprivileged host uid.
    CHECK(w.exec(ref, {"sh", "-c", "echo x > /etc/owned-" + tag}).status == 0);
    auto found = find_named(w.root(), "owned-" + tag);
    INFO("found under SBOX_ROOT: " << found.size());
    CHECK(found.size() == 1);
    for (auto& [path, uid] : found) {
        INFO(path);
        CHECK(uid != 0);
    }
}

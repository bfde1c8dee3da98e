// `--image DIR`: a root file system from a directory instead of the host's system directories.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "harness.hpp"

using namespace it;

namespace {

void mkdirs(const std::string& path) {
    for (std::size_t i = 1; i <= path.size(); ++i)
        if (i == path.size() || path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
}

// Copies the file at `from` (following symbolic links) to `to`, creating parent directories, keeping the
// mode.
void copy_file(const std::string& from, const std::string& to) {
    mkdirs(to.substr(0, to.rfind('/')));
    struct stat st;
    REQUIRE(stat(from.c_str(), &st) == 0);
    std::string data = read_file(from);
    REQUIRE(!data.empty());
    int fd = open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
    close(fd);
}

// The shared libraries `ldd` names for a binary: absolute paths.
std::vector<std::string> libraries(const std::string& binary) {
    Process ldd({"/usr/bin/ldd", binary}, {"PATH=/usr/bin:/bin"});
    Result r = ldd.finish();
    REQUIRE(r.status == 0);
    std::vector<std::string> out;
    for (auto& line : lines(r.out)) {
        auto at = line.find('/');
        if (at == std::string::npos) continue; // linux-vdso
        auto end = line.find_first_of(" \t(", at);
        out.push_back(line.substr(at, end == std::string::npos ? std::string::npos : end - at));
    }
    return out;
}

} // namespace

TEST_SUITE("rootless-capable") {

    TEST_CASE("image: run --image DIR uses that directory as the root file system") {
        TempDir dir; // outlives the World, whose end kills the sandboxes that use it
        World w;
        // A tiny root file system: /bin/sh and /bin/cat with the libraries they need, at the same paths.
        std::string image = dir.path() + "/image";
        for (auto& bin : {"/bin/sh", "/bin/cat"}) {
            copy_file(bin, image + bin);
            for (auto& lib : libraries(bin))
                copy_file(lib, image + lib);
        }
        for (auto dir : {"/proc", "/dev", "/tmp", "/etc", "/root", "/sys", "/run"})
            mkdirs(image + dir);
        std::string tag = random_hex(10);
        {
            int fd = open((image + "/etc/marker").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            REQUIRE(fd >= 0);
            REQUIRE(write(fd, tag.data(), tag.size()) == static_cast<ssize_t>(tag.size()));
            close(fd);
        }

        Result r = w.sbox({"run", "--image", image, "--", "/bin/sh", "-c", "echo ok; cat /etc/marker"});
        INFO("run --image: " << describe(r));
        CHECK(r.status == 0);
        CHECK(r.out == "ok\n" + tag);
        // Only the image is there: nothing of the host's /usr.
        Result host =
            w.sbox({"run", "--image", image, "--", "/bin/sh", "-c", "test -e /usr/bin/ls || echo absent"});
        INFO(describe(host));
        CHECK(host.out == "absent\n");
        // Writes go to the sandbox's layer, never into the image directory. Root inside owns the image's
        // files only through an idmapped mount (root on a filesystem that supports them) or when the image
        // belongs to the (rootless) user.
        auto ref = w.create({"--image", image});
        bool owned = !is_root() || w.inspect(ref)["details"].value("base_idmapped", false);
        if (owned) {
            CHECK(w.check_output(ref, {"/bin/sh", "-c",
                                       "echo changed > /etc/marker; echo new > /etc/new; cat /etc/marker"}) ==
                  "changed\n");
        } else {
            MESSAGE("the image's filesystem does not support idmapped mounts: only checking that writes fail "
                    "inside and never reach the image");
            w.exec(ref, {"/bin/sh", "-c", "echo changed > /etc/marker; echo new > /etc/new"});
        }
        CHECK(read_file(image + "/etc/marker") == tag);
        CHECK_FALSE(exists(image + "/etc/new"));
        CHECK(w.sbox({"kill", ref}).status == 0);
        CHECK(w.ls_q().empty());

        // A directory that is not there is sbox's error.
        Result missing =
            w.sbox({"run", "--image", dir.path() + "/no-such-image", "--", "/bin/sh", "-c", "true"});
        INFO(describe(missing));
        CHECK(missing.status == 125);
        CHECK(missing.err.starts_with("sbox: "));
        Result create_missing = w.sbox({"create", "--image", dir.path() + "/no-such-image"});
        CHECK(create_missing.status == 1);
        CHECK(w.ls_q().empty());
    }

} // TEST_SUITE

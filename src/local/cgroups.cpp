#include "local/cgroups.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "local/trace.hpp"

namespace sbox::local {

namespace {

constexpr const char* kCgroupRoot = "/sys/fs/cgroup";
constexpr int kFreezeTimeoutMs = 5000;

std::int64_t now_ms() {
    struct timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (::nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

bool is_filesystem(const std::string& path, long magic) {
    struct statfs st;
    return ::statfs(path.c_str(), &st) == 0 && static_cast<long>(st.f_type) == magic;
}

// Whether this process may make cgroups in `dir` and move processes there from its own cgroup.
bool may_write(const std::string& dir) {
    return ::access(dir.c_str(), W_OK) == 0 && ::access((dir + "/cgroup.procs").c_str(), W_OK) == 0;
}

// A cgroup file's contents ("" when it cannot be read).
std::string read_text(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return {};
    std::string out;
    if (read_to_end(fd.get(), out) != 0) return {};
    return out;
}

// Writes a cgroup control file; returns 0 or errno.
int write_control(const std::string& path, std::string_view value) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return errno;
    if (!write_all(fd.get(), value)) return errno;
    return 0;
}

// The mount point of a cgroup file system from /proc/self/mounts: cgroup2, or a v1 hierarchy with
// `controller` among its options.
std::string find_mount(bool v2, const char* controller) {
    std::string mounts = read_text("/proc/self/mounts");
    size_t pos = 0;
    while (pos < mounts.size()) {
        size_t end = mounts.find('\n', pos);
        if (end == std::string::npos) end = mounts.size();
        std::string line = mounts.substr(pos, end - pos);
        pos = end + 1;
        // device mountpoint fstype options ...
        size_t a = line.find(' ');
        size_t b = a == std::string::npos ? a : line.find(' ', a + 1);
        size_t c = b == std::string::npos ? b : line.find(' ', b + 1);
        if (c == std::string::npos) continue;
        std::string point = line.substr(a + 1, b - a - 1);
        std::string type = line.substr(b + 1, c - b - 1);
        std::string options = "," + line.substr(c + 1, line.find(' ', c + 1) - c - 1) + ",";
        if (point.find('\\') != std::string::npos) continue; // escaped characters: not a place we make
        if (v2 && type == "cgroup2") return point;
        if (!v2 && type == "cgroup" && options.find(std::string(",") + controller + ",") != std::string::npos)
            return point;
    }
    return {};
}

// This process's cgroup in the v2 hierarchy ("0::/PATH" in /proc/self/cgroup), "/" when unknown.
std::string own_v2_cgroup() {
    std::string text = read_text("/proc/self/cgroup");
    size_t pos = text.rfind("0::", 0) == 0 ? 0 : text.find("\n0::");
    if (pos == std::string::npos) return "/";
    if (text[pos] == '\n') ++pos;
    size_t end = text.find('\n', pos);
    std::string path = text.substr(pos + 3, end == std::string::npos ? std::string::npos : end - pos - 3);
    if (path.empty() || path.front() != '/' || path.find(" (deleted)") != std::string::npos) return "/";
    return path;
}

// `<where>/sbox`, made when missing; empty (with `why`) when it cannot be.
std::string make_sbox_dir(const std::string& where, std::string& why) {
    std::string dir = where + "/sbox";
    if (::mkdir(dir.c_str(), 0755) == -1 && errno != EEXIST) {
        why = "cannot make " + dir + ": " + std::strerror(errno);
        return {};
    }
    return dir;
}

struct Hierarchy {
    CgroupVersion version = CgroupVersion::none;
    std::string dir; // <hierarchy>/sbox
};

Hierarchy try_v1(std::string& why) {
    std::string mount = std::string(kCgroupRoot) + "/freezer";
    if (!is_filesystem(mount, CGROUP_SUPER_MAGIC)) mount = find_mount(false, "freezer");
    if (mount.empty()) {
        why = "no cgroup v1 freezer hierarchy is mounted";
        return {};
    }
    if (!may_write(mount)) {
        why = "this user may not make cgroups in " + mount;
        return {};
    }
    std::string dir = make_sbox_dir(mount, why);
    if (dir.empty()) return {};
    return {CgroupVersion::v1, dir};
}

Hierarchy try_v2(std::string mount, std::string& why) {
    if (mount.empty()) mount = find_mount(true, nullptr);
    if (mount.empty()) {
        why = "no cgroup2 hierarchy is mounted";
        return {};
    }
    // Its root (root's), else this process's own cgroup when it was delegated to this user.
    std::vector<std::string> places = {mount};
    std::string own = own_v2_cgroup();
    if (own != "/") places.push_back(mount + own);
    for (const auto& place : places) {
        if (!may_write(place)) continue;
        std::string dir = make_sbox_dir(place, why);
        if (dir.empty()) continue;
        if (::access((dir + "/cgroup.freeze").c_str(), W_OK) != 0) {
            why = "the cgroup2 hierarchy has no freezer (cgroup.freeze) in " + dir;
            continue;
        }
        return {CgroupVersion::v2, dir};
    }
    if (why.empty()) why = "this user may not make cgroups in " + places.back() + " (not delegated)";
    return {};
}

Hierarchy detect(bool& forced) {
    std::string why;
    const char* want = std::getenv("SBOX_CGROUP");
    std::string choice = want ? want : "";
    forced = !choice.empty();
    Hierarchy h;
    if (choice == "none") return h;
    if (choice == "v1") {
        h = try_v1(why);
    } else if (choice == "v2") {
        h = try_v2({}, why);
    } else if (!choice.empty()) {
        throw Error(Error::Kind::invalid, "SBOX_CGROUP='" + choice + "': use v1, v2 or none");
    } else {
        std::string unified = std::string(kCgroupRoot) + "/unified";
        h = try_v2(is_filesystem(kCgroupRoot, CGROUP2_SUPER_MAGIC) ? std::string(kCgroupRoot)
                   : is_filesystem(unified, CGROUP2_SUPER_MAGIC)   ? unified
                                                                   : std::string(),
                   why);
        if (h.version == CgroupVersion::none) {
            std::string v2_why = why;
            h = try_v1(why);
            if (h.version == CgroupVersion::none) why = v2_why + "; " + why;
        }
    }
    if (h.version == CgroupVersion::none) {
        if (forced) throw Error(Error::Kind::unavailable, "SBOX_CGROUP=" + choice + ": " + why);
        if (tracing()) trace(("cgroups: none usable (" + why + "); pause uses signals").c_str());
    }
    return h;
}

// 32 bits of FNV-1a over the data directory's path, in hex.
std::string store_key(std::string_view data_dir) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : data_dir) {
        h ^= c;
        h *= 1099511628211ull;
    }
    std::uint32_t folded = static_cast<std::uint32_t>(h ^ (h >> 32));
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", folded);
    return buf;
}

} // namespace

std::optional<CgroupParent> cgroup_parent(std::string_view data_dir) {
    static bool detected = false, forced = false;
    static Hierarchy hierarchy;
    if (!detected) {
        hierarchy = detect(forced);
        detected = true;
    }
    if (hierarchy.version == CgroupVersion::none) return std::nullopt;
    return CgroupParent{hierarchy.version, hierarchy.dir, store_key(data_dir) + "-"};
}

Cgroup Cgroup::create(const CgroupParent& parent, std::string_view id) {
    std::string path = parent.dir + "/" + parent.prefix + std::string(id);
    if (::mkdir(path.c_str(), 0755) == -1) {
        int err = errno;
        // Left by a crashed sandbox of the same id: take it over when it is empty.
        if (err != EEXIST || (::rmdir(path.c_str()) == -1 && errno != ENOENT) ||
            ::mkdir(path.c_str(), 0755) == -1)
            throw_errno("make the sandbox's cgroup " + path, err == EEXIST ? errno : err);
    }
    return Cgroup(parent.version, path);
}

void Cgroup::add(pid_t pid) const {
    if (int err = write_control(path_ + "/cgroup.procs", std::to_string(pid)))
        throw_errno("move process " + std::to_string(pid) + " into the cgroup " + path_, err);
}

Fd Cgroup::open_procs() const {
    std::string procs = path_ + "/cgroup.procs";
    Fd fd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) throw_errno("open the sandbox's cgroup " + procs);
    return fd;
}

Fd Cgroup::open_dir() const {
    Fd fd(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) throw_errno("open the sandbox's cgroup " + path_);
    return fd;
}

bool Cgroup::frozen() const {
    if (version_ == CgroupVersion::v1) return read_text(path_ + "/freezer.state").rfind("FROZEN", 0) == 0;
    std::string events = read_text(path_ + "/cgroup.events");
    return events.find("frozen 1") != std::string::npos;
}

void Cgroup::freeze() const {
    const bool v1 = version_ == CgroupVersion::v1;
    const std::string file = path_ + (v1 ? "/freezer.state" : "/cgroup.freeze");
    const char* value = v1 ? "FROZEN" : "1";
    if (int err = write_control(file, value)) throw_errno("freeze the cgroup " + path_, err);
    std::int64_t deadline = now_ms() + kFreezeTimeoutMs;
    int wait = 1;
    while (!frozen()) {
        if (now_ms() > deadline) {
            thaw();
            throw Error(Error::Kind::internal,
                        "the processes of cgroup " + path_ + " did not freeze within " +
                            std::to_string(kFreezeTimeoutMs / 1000) +
                            " s (one may be stuck in the kernel); they were thawed again");
        }
        sleep_ms(wait);
        wait = std::min(wait * 2, 20);
        if (v1) (void)write_control(file, value); // v1: FREEZING retries with another write
    }
}

void Cgroup::thaw() const {
    if (!*this) return;
    const bool v1 = version_ == CgroupVersion::v1;
    int err = write_control(path_ + (v1 ? "/freezer.state" : "/cgroup.freeze"), v1 ? "THAWED" : "0");
    if (err != 0 && err != ENOENT) throw_errno("thaw the cgroup " + path_, err);
}

std::vector<pid_t> Cgroup::pids() const {
    std::vector<pid_t> out;
    std::string text = read_text(path_ + "/cgroup.procs");
    const char* p = text.c_str();
    while (*p) {
        char* end = nullptr;
        long pid = std::strtol(p, &end, 10);
        if (end == p) break;
        if (pid > 0) out.push_back(static_cast<pid_t>(pid));
        p = end;
        while (*p == '\n')
            ++p;
    }
    return out;
}

void Cgroup::kill_all() const {
    if (!*this) return;
    thaw();
    if (version_ == CgroupVersion::v2 && write_control(path_ + "/cgroup.kill", "1") == 0) {
        // the kernel kills every process, including those forked meanwhile
    } else {
        for (pid_t pid : pids())
            ::kill(pid, SIGKILL);
    }
    std::int64_t deadline = now_ms() + kFreezeTimeoutMs;
    int wait = 1;
    std::vector<pid_t> left;
    while (!(left = pids()).empty() && now_ms() < deadline) {
        for (pid_t pid : left)
            ::kill(pid, SIGKILL); // forked before the first round saw them
        sleep_ms(wait);
        wait = std::min(wait * 2, 20);
    }
}

bool Cgroup::remove() const {
    if (!*this) return true;
    if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    // Still populated: the last processes are exiting (or frozen, for v1, with a SIGKILL pending).
    try {
        thaw();
    } catch (const Error&) {
    }
    std::int64_t deadline = now_ms() + 1000;
    int wait = 1;
    for (;;) {
        if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) return true;
        if (errno != EBUSY || now_ms() > deadline) return false;
        sleep_ms(wait);
        wait = std::min(wait * 2, 20);
    }
}

int join_cgroup(int procs_fd) {
    if (procs_fd < 0) return 0;
    if (::write(procs_fd, "0", 1) != 1) return errno;
    return 0;
}

pid_t fork_into_cgroup(int dir_fd) {
    struct clone_args args = {};
    args.flags = CLONE_INTO_CGROUP;
    args.cgroup = static_cast<std::uint64_t>(dir_fd);
    args.exit_signal = SIGCHLD;
    return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
}

void sweep_cgroups(const CgroupParent& parent, const std::function<bool(std::string_view id)>& known) {
    DIR* dir = ::opendir(parent.dir.c_str());
    if (!dir) return;
    std::vector<std::string> stale;
    while (struct dirent* e = ::readdir(dir)) {
        std::string_view name = e->d_name;
        if (name.size() <= parent.prefix.size() || name.compare(0, parent.prefix.size(), parent.prefix) != 0)
            continue;
        if (!known(name.substr(parent.prefix.size()))) stale.emplace_back(name);
    }
    ::closedir(dir);
    for (const auto& name : stale) {
        // Processes still there belong to no sandbox any more (their sbox was killed halfway): they go too.
        Cgroup cgroup(parent.version, parent.dir + "/" + name);
        if (::rmdir(cgroup.path().c_str()) == -1 && errno == EBUSY) {
            cgroup.kill_all();
            cgroup.remove();
        }
    }
}

std::string_view to_string(CgroupVersion version) {
    switch (version) {
    case CgroupVersion::none:
        return "none";
    case CgroupVersion::v1:
        return "v1";
    case CgroupVersion::v2:
        return "v2";
    }
    return "none";
}

namespace {

const char* const kLimitControllers[] = {"memory", "cpu", "pids"};

// The words of a cgroup file such as cgroup.controllers.
bool has_word(const std::string& text, std::string_view word) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find_first_of(" \n", pos);
        if (end == std::string::npos) end = text.size();
        if (std::string_view(text).substr(pos, end - pos) == word) return true;
        pos = end + 1;
    }
    return false;
}

std::string parent_dir(const std::string& path) {
    return path.substr(0, path.rfind('/'));
}

// "name value" lines (memory.events, memory.oom_control, cpu.stat).
std::optional<std::uint64_t> keyed_value(const std::string& text, std::string_view key) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::string_view line = std::string_view(text).substr(pos, end - pos);
        if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 && line[key.size()] == ' ')
            return std::strtoull(std::string(line.substr(key.size() + 1)).c_str(), nullptr, 10);
        pos = end + 1;
    }
    return std::nullopt;
}

std::optional<std::uint64_t> number_in(const std::string& path) {
    std::string text = read_text(path);
    if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
    return std::strtoull(text.c_str(), nullptr, 10);
}

// The v1 hierarchy of `controller` with its sbox directory, or empty with `why`.
std::string v1_sbox_dir(const char* controller, std::string& why) {
    std::string mount = find_mount(false, controller);
    if (mount.empty()) {
        why = std::string("no cgroup v1 hierarchy with the ") + controller + " controller is mounted";
        return {};
    }
    if (!may_write(mount)) {
        why = std::string("this user may not make cgroups in ") + mount + " (cgroup v1 " + controller +
              " is root's; run sbox as root, or on a machine that delegates cgroup v2 to you)";
        return {};
    }
    return make_sbox_dir(mount, why);
}

// Writes one limit; throws naming the file.
void write_limit(const std::string& dir, const char* file, const std::string& value) {
    if (int err = write_control(dir + "/" + file, value))
        throw_errno("set " + dir + "/" + file + " to " + value, err);
}

void configure(const Cgroup& cgroup, const char* controller, const CgroupLimits& limits) {
    const bool v2 = cgroup.version() == CgroupVersion::v2;
    const std::string& dir = cgroup.path();
    std::string c = controller;
    if (c == "memory") {
        std::string bytes = std::to_string(*limits.memory);
        if (v2) {
            write_limit(dir, "memory.max", bytes);
            // No swap beyond the limit, where the machine has swap accounting.
            if (::access((dir + "/memory.swap.max").c_str(), W_OK) == 0)
                write_limit(dir, "memory.swap.max", "0");
        } else {
            write_limit(dir, "memory.limit_in_bytes", bytes);
            if (::access((dir + "/memory.memsw.limit_in_bytes").c_str(), W_OK) == 0)
                write_limit(dir, "memory.memsw.limit_in_bytes", bytes);
        }
    } else if (c == "cpu") {
        constexpr std::uint64_t period = 100000; // microseconds
        std::string quota = std::to_string(*limits.cpu_millis * period / 1000);
        if (v2) {
            write_limit(dir, "cpu.max", quota + " " + std::to_string(period));
        } else {
            write_limit(dir, "cpu.cfs_period_us", std::to_string(period));
            write_limit(dir, "cpu.cfs_quota_us", quota);
        }
    } else {
        write_limit(dir, "pids.max", std::to_string(*limits.pids));
    }
}

// Enables `controller` for the children of the v2 directory `dir` (its parent must offer it).
bool enable_v2_controller(const std::string& dir, const char* controller) {
    if (!has_word(read_text(dir + "/cgroup.controllers"), controller)) return false;
    if (has_word(read_text(dir + "/cgroup.subtree_control"), controller)) return true;
    return write_control(dir + "/cgroup.subtree_control", std::string("+") + controller) == 0;
}

} // namespace

bool v2_controller_enabled(const Cgroup& main, const char* controller) {
    if (!main || main.version() != CgroupVersion::v2) return false;
    return has_word(read_text(main.path() + "/cgroup.controllers"), controller) ||
           (enable_v2_controller(parent_dir(main.path()), controller) &&
            has_word(read_text(main.path() + "/cgroup.controllers"), controller));
}

std::vector<Cgroup> make_limit_cgroups(const CgroupLimits& limits, const Cgroup& main,
                                       std::string_view data_dir, std::string_view id) {
    std::vector<Cgroup> made;
    auto undo = [&] {
        for (const auto& c : made)
            ::rmdir(c.path().c_str());
    };
    try {
        for (const char* controller : kLimitControllers) {
            std::string c = controller;
            bool wanted = (c == "memory" && limits.memory) || (c == "cpu" && limits.cpu_millis) ||
                          (c == "pids" && limits.pids);
            if (!wanted) continue;
            if (v2_controller_enabled(main, controller)) {
                configure(main, controller, limits);
                continue;
            }
            std::string why;
            std::string dir = v1_sbox_dir(controller, why);
            if (dir.empty()) {
                std::string v2_note;
                if (main && main.version() == CgroupVersion::v2) {
                    std::string offered = read_text(parent_dir(main.path()) + "/cgroup.controllers");
                    while (!offered.empty() && offered.back() == '\n')
                        offered.pop_back();
                    v2_note = "; the cgroup2 hierarchy at " + parent_dir(parent_dir(main.path())) +
                              " offers only: " + (offered.empty() ? std::string("none") : offered);
                }
                std::string flag = c == "memory" ? "--memory" : c == "cpu" ? "--cpus" : "--pids";
                throw Error(Error::Kind::unavailable, "cannot enforce " + flag + " here: " + why + v2_note);
            }
            CgroupParent parent{CgroupVersion::v1, dir, store_key(data_dir) + "-"};
            Cgroup cgroup = Cgroup::create(parent, id);
            made.push_back(cgroup);
            configure(cgroup, controller, limits);
        }
    } catch (...) {
        undo();
        throw;
    }
    return made;
}

CgroupUsage read_cgroup_usage(const std::vector<Cgroup>& cgroups) {
    CgroupUsage u;
    for (const auto& cg : cgroups) {
        if (!cg) continue;
        const std::string& d = cg.path();
        const bool v2 = cg.version() == CgroupVersion::v2;
        if (v2 ? ::access((d + "/memory.max").c_str(), F_OK) == 0
               : ::access((d + "/memory.limit_in_bytes").c_str(), F_OK) == 0) {
            u.memory_where.push_back(d);
            u.memory_limit = number_in(d + (v2 ? "/memory.max" : "/memory.limit_in_bytes"));
            u.memory_bytes = number_in(d + (v2 ? "/memory.current" : "/memory.usage_in_bytes"));
            u.memory_peak = number_in(d + (v2 ? "/memory.peak" : "/memory.max_usage_in_bytes"));
            u.oom_kills =
                keyed_value(read_text(d + (v2 ? "/memory.events" : "/memory.oom_control")), "oom_kill");
        }
        if (v2 ? ::access((d + "/cpu.max").c_str(), F_OK) == 0
               : ::access((d + "/cpu.cfs_quota_us").c_str(), F_OK) == 0) {
            std::optional<std::uint64_t> quota, period;
            if (v2) {
                std::string max = read_text(d + "/cpu.max");
                if (!max.empty() && max[0] >= '0' && max[0] <= '9') {
                    quota = std::strtoull(max.c_str(), nullptr, 10);
                    period = std::strtoull(max.c_str() + max.find(' ') + 1, nullptr, 10);
                }
            } else {
                quota = number_in(d + "/cpu.cfs_quota_us");
                period = number_in(d + "/cpu.cfs_period_us");
            }
            if (quota && period && *period > 0) {
                u.cpu_where.push_back(d);
                u.cpu_millis = *quota * 1000 / *period;
                u.cpu_throttled_periods = keyed_value(read_text(d + "/cpu.stat"), "nr_throttled");
            }
        }
        if (::access((d + "/pids.max").c_str(), F_OK) == 0) {
            auto max = number_in(d + "/pids.max");
            if (max) {
                u.pids_where.push_back(d);
                u.pids_limit = max;
                u.pids_current = number_in(d + "/pids.current");
            }
        }
    }
    return u;
}

std::vector<CgroupParent> limit_cgroup_parents(std::string_view data_dir) {
    std::vector<CgroupParent> out;
    for (const char* controller : kLimitControllers) {
        std::string mount = find_mount(false, controller);
        if (mount.empty()) continue;
        std::string dir = mount + "/sbox";
        struct stat st;
        if (::stat(dir.c_str(), &st) == 0 && may_write(dir))
            out.push_back(CgroupParent{CgroupVersion::v1, dir, store_key(data_dir) + "-"});
    }
    return out;
}

} // namespace sbox::local

#include "local/store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <set>

#include <nlohmann/json.hpp>

namespace sbox::local {

using nlohmann::json;

namespace {

void make_dirs(const std::string& path, mode_t mode) {
    std::string partial;
    size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        partial = path.substr(0, pos);
        if (partial.empty()) continue;
        if (::mkdir(partial.c_str(), mode) == -1 && errno != EEXIST) throw_errno("mkdir " + partial);
    }
}

json to_json(const ProcessId& p) {
    return json{{"pid", p.pid}, {"start_time", p.start_time}};
}
ProcessId process_from(const json& j) {
    return ProcessId{j.value("pid", 0), j.value("start_time", std::uint64_t{0})};
}

json ranges_json(const std::vector<IdRange>& ranges) {
    json out = json::array();
    for (const auto& r : ranges)
        out.push_back({r.inside, r.outside, r.count});
    return out;
}
json ports_json(const std::vector<PublishedPort>& ports) {
    json out = json::array();
    for (const auto& p : ports)
        out.push_back(
            {{"host_port", p.host_port}, {"sandbox_port", p.sandbox_port}, {"protocol", p.protocol}});
    return out;
}
std::vector<PublishedPort> ports_from(const json& j) {
    std::vector<PublishedPort> out;
    for (const auto& p : j)
        out.push_back({p.value("host_port", std::uint16_t{0}), p.value("sandbox_port", std::uint16_t{0}),
                       p.value("protocol", std::string("tcp"))});
    return out;
}

std::vector<IdRange> ranges_from(const json& j) {
    std::vector<IdRange> out;
    for (const auto& r : j)
        out.push_back({r.at(0).get<unsigned>(), r.at(1).get<unsigned>(), r.at(2).get<unsigned>()});
    return out;
}

json config_json(const SandboxConfig& c) {
    json j = {{"id", c.id},
              {"name", c.name},
              {"hostname", c.hostname},
              {"image", c.image},
              {"labels", c.labels},
              {"env", c.env},
              {"created_at", c.created_at},
              {"rootless", c.rootless},
              {"slot", c.slot},
              {"uid_map", ranges_json(c.idmap.uids)},
              {"gid_map", ranges_json(c.idmap.gids)},
              {"idmap_helpers", c.idmap.use_helpers},
              {"setgroups", c.idmap.setgroups},
              {"creator", to_json(c.creator)},
              {"ephemeral", c.ephemeral},
              {"snapshot", c.snapshot},
              {"layers", c.layers}};
    j["network"] = to_string(c.network);
    j["ports"] = ports_json(c.ports);
    if (c.lifetime_ms) j["lifetime_ms"] = *c.lifetime_ms;
    if (c.expires_at) j["expires_at"] = *c.expires_at;
    json limits = json::object();
    if (c.limits.memory) limits["memory"] = *c.limits.memory;
    if (c.limits.cpu_millis) limits["cpu_millis"] = *c.limits.cpu_millis;
    if (c.limits.pids) limits["pids"] = *c.limits.pids;
    if (c.limits.disk) limits["disk"] = *c.limits.disk;
    j["limits"] = limits;
    j["seccomp"] = c.seccomp ? "default" : "unconfined";
    return j;
}

SandboxConfig config_from(const json& j) {
    SandboxConfig c;
    c.id = j.at("id").get<std::string>();
    c.name = j.value("name", "");
    c.hostname = j.value("hostname", c.id);
    c.image = j.value("image", "");
    c.labels = j.value("labels", std::map<std::string, std::string>{});
    c.env = j.value("env", std::vector<std::string>{});
    c.created_at = j.value("created_at", std::int64_t{0});
    if (j.contains("lifetime_ms")) c.lifetime_ms = j["lifetime_ms"].get<std::int64_t>();
    if (j.contains("expires_at")) c.expires_at = j["expires_at"].get<std::int64_t>();
    c.rootless = j.value("rootless", false);
    c.slot = j.value("slot", 0u);
    c.idmap.uids = ranges_from(j.value("uid_map", json::array()));
    c.idmap.gids = ranges_from(j.value("gid_map", json::array()));
    c.idmap.use_helpers = j.value("idmap_helpers", false);
    c.idmap.setgroups = j.value("setgroups", true);
    c.creator = process_from(j.value("creator", json::object()));
    c.ephemeral = j.value("ephemeral", false);
    c.snapshot = j.value("snapshot", std::string());
    c.layers = j.value("layers", std::vector<std::string>());
    json limits = j.value("limits", json::object());
    auto limit = [&](const char* key) -> std::optional<std::uint64_t> {
        if (!limits.contains(key)) return std::nullopt;
        return limits[key].get<std::uint64_t>();
    };
    c.limits = Limits{limit("memory"), limit("cpu_millis"), limit("pids"), limit("disk")};
    c.seccomp = j.value("seccomp", std::string("default")) != "unconfined";
    c.network = network_mode_from(j.value("network", std::string("none"))).value_or(NetworkMode::none);
    c.ports = ports_from(j.value("ports", json::array()));
    return c;
}

std::optional<std::string> try_read(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT) return std::nullopt;
        throw_errno("open " + path);
    }
    return read_all(fd.get());
}

bool remove_tree_at(int parent, const char* name) {
    if (::unlinkat(parent, name, 0) == 0 || errno == ENOENT) return true;
    if (errno != EISDIR && errno != EPERM) return false;
    int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1 && errno == EACCES) {
        ::fchmodat(parent, name, 0700, 0);
        fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd == -1) return false;
    ::fchmod(fd, 0700); // entries of a directory without write permission could not be removed
    DIR* dir = ::fdopendir(fd);
    if (!dir) {
        ::close(fd);
        return false;
    }
    bool ok = true;
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(dir)) {
        if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        names.emplace_back(e->d_name);
    }
    for (const auto& n : names)
        ok = remove_tree_at(::dirfd(dir), n.c_str()) && ok;
    ::closedir(dir);
    if (::unlinkat(parent, name, AT_REMOVEDIR) == -1 && errno != ENOENT) ok = false;
    return ok;
}

} // namespace

std::string_view to_string(Status status) {
    switch (status) {
    case Status::creating:
        return "creating";
    case Status::running:
        return "running";
    case Status::exited:
        return "exited";
    case Status::failed:
        return "failed";
    case Status::paused:
        return "paused";
    }
    return "unknown";
}

Cgroup cgroup_of(const SandboxState& state) {
    if (!state.runtime || state.runtime->cgroup.empty()) return {};
    return Cgroup(state.runtime->cgroup_version, state.runtime->cgroup);
}

std::vector<Cgroup> cgroups_of(const SandboxState& state) {
    std::vector<Cgroup> out;
    if (Cgroup main = cgroup_of(state)) out.push_back(main);
    if (state.runtime)
        for (const auto& path : state.runtime->limit_cgroups)
            out.emplace_back(CgroupVersion::v1, path);
    return out;
}

Fd open_sandbox_cgroup_procs(const SandboxState& state) {
    Cgroup cgroup = cgroup_of(state);
    if (!cgroup) return {};
    return cgroup.open_procs();
}

bool remove_tree(const std::string& path) {
    return remove_tree_at(AT_FDCWD, path.c_str());
}

Store::Store(Paths paths) : paths_(std::move(paths)) {
    make_dirs(paths_.data + "/sandboxes", 0700);
    make_dirs(paths_.data + "/trash", 0700);
    make_dirs(paths_.runtime + "/sandboxes", 0700);
}

Store::Lock Store::lock() const {
    std::string path = paths_.data + "/lock";
    Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) throw_errno("open " + path);
    while (::flock(fd.get(), LOCK_EX) == -1) {
        if (errno != EINTR) throw_errno("flock " + path);
    }
    return Lock(std::move(fd));
}

std::string Store::sandbox_dir(std::string_view id) const {
    return paths_.data + "/sandboxes/" + std::string(id);
}
std::string Store::fs_dir(std::string_view id) const {
    return sandbox_dir(id) + "/fs";
}
std::string Store::runtime_file(std::string_view id) const {
    return paths_.runtime + "/sandboxes/" + std::string(id) + ".json";
}
std::string Store::paused_file(std::string_view id) const {
    return paths_.runtime + "/sandboxes/" + std::string(id) + ".paused";
}

void Store::set_paused(std::string_view id, bool paused) const {
    if (paused)
        write_file_atomic(paused_file(id), "", 0600);
    else if (::unlink(paused_file(id).c_str()) == -1 && errno != ENOENT)
        throw_errno("unlink " + paused_file(id));
}

std::string Store::exit_file(std::string_view id) const {
    return paths_.runtime + "/sandboxes/" + std::string(id) + ".exit";
}

std::optional<SandboxState> Store::load(std::string_view id) const {
    auto text = try_read(sandbox_dir(id) + "/sandbox.json");
    if (!text) return std::nullopt;
    SandboxState s;
    try {
        s.config = config_from(json::parse(*text));
        if (auto rt = try_read(runtime_file(id))) {
            json j = json::parse(*rt);
            s.runtime = RuntimeState{process_from(j.at("supervisor")),
                                     process_from(j.at("monitor")),
                                     j.value("started_at", std::int64_t{0}),
                                     j.value("base_idmapped", false),
                                     j.value("layers_in_memory", false),
                                     j.value("cgroup", ""),
                                     static_cast<CgroupVersion>(j.value("cgroup_version", 0))};
            if (s.runtime->cgroup.empty()) s.runtime->cgroup_version = CgroupVersion::none;
            s.runtime->limit_cgroups = j.value("limit_cgroups", std::vector<std::string>());
            if (j.contains("network")) {
                const json& n = j["network"];
                s.runtime->network = RuntimeState::Network{
                    process_from(n.value("stack", json::object())), n.value("address", ""),
                    n.value("prefix_length", 0u), n.value("gateway", ""),
                    ports_from(n.value("ports", json::array()))};
            }
        }
        if (auto ex = try_read(exit_file(id))) {
            json j = json::parse(*ex);
            s.exit = ExitState{j.value("signal", 0), j.value("code", 0), j.value("at", std::int64_t{0})};
        }
    } catch (const json::exception& e) {
        throw Error(Error::Kind::internal, "corrupt state of sandbox " + std::string(id) + ": " + e.what());
    }
    if (s.runtime) {
        s.status = alive(s.runtime->supervisor) ? Status::running : Status::exited;
        struct stat st;
        if (s.status == Status::running && ::stat(paused_file(id).c_str(), &st) == 0)
            s.status = Status::paused;
    } else
        s.status = alive(s.config.creator) ? Status::creating : Status::failed;
    return s;
}

std::vector<SandboxState> Store::list() const {
    std::vector<SandboxState> out;
    std::string dir_path = paths_.data + "/sandboxes";
    DIR* dir = ::opendir(dir_path.c_str());
    if (!dir) throw_errno("opendir " + dir_path);
    std::vector<std::string> ids;
    while (struct dirent* e = ::readdir(dir)) {
        if (e->d_name[0] == '.') continue;
        ids.emplace_back(e->d_name);
    }
    ::closedir(dir);
    for (const auto& id : ids) {
        // A directory without sandbox.json is one being removed, or one a crash cut short before its
        // config landed; neither is a sandbox.
        if (auto s = load(id)) out.push_back(std::move(*s));
    }
    std::sort(out.begin(), out.end(), [](const SandboxState& a, const SandboxState& b) {
        return a.config.created_at != b.config.created_at ? a.config.created_at > b.config.created_at
                                                          : a.config.id < b.config.id;
    });
    return out;
}

std::optional<SandboxState> Store::find(std::string_view token) const {
    if (token.empty()) return std::nullopt;
    auto all = list();
    for (auto& s : all)
        if (s.config.id == token || s.config.name == token) return std::move(s);
    if (token.size() < 4) return std::nullopt;
    std::vector<SandboxState*> matches;
    for (auto& s : all)
        if (s.config.id.compare(0, token.size(), token) == 0) matches.push_back(&s);
    if (matches.empty()) return std::nullopt;
    if (matches.size() > 1) {
        std::string ids;
        for (auto* m : matches)
            ids += (ids.empty() ? "" : ", ") + m->config.id;
        throw Error(Error::Kind::conflict, "'" + std::string(token) + "' matches several sandboxes (" + ids +
                                               "): give more of the id");
    }
    return std::move(*matches.front());
}

std::string Store::new_id() const {
    for (;;) {
        unsigned char bytes[6];
        if (::getrandom(bytes, sizeof bytes, 0) != sizeof bytes) throw_errno("getrandom");
        static const char hex[] = "0123456789abcdef";
        std::string id;
        for (unsigned char b : bytes) {
            id += hex[b >> 4];
            id += hex[b & 15];
        }
        struct stat st;
        if (::stat(sandbox_dir(id).c_str(), &st) == -1 && errno == ENOENT) return id;
    }
}

unsigned Store::free_slot(const std::vector<SandboxState>& existing) const {
    std::set<unsigned> used;
    for (const auto& s : existing)
        if (!s.config.rootless) used.insert(s.config.slot);
    // A slot is free once its sandbox's records are gone, even while its files are still being removed from
    // the trash: by then no process of the old sandbox is alive, and its files are out of every sandbox's
    // reach.
    for (unsigned slot = 0; slot < kSlotCount; ++slot)
        if (!used.count(slot)) return slot;
    throw Error(Error::Kind::unavailable, "every host id range is in use: remove sandboxes with sbox kill");
}

void Store::add(const SandboxConfig& config) const {
    // The directory appears complete or not at all: it is filled under a hidden name, then renamed. A crash
    // in between leaves a ".new-" directory that list() ignores and sweep() removes. (Inside it, files need
    // no atomic writes of their own.) This runs on every `sbox run`: as few disk operations as it takes.
    std::string tmp = paths_.data + "/sandboxes/.new-" + config.id + ".tmp." + std::to_string(::getpid());
    // Root's sandboxes: their supervisor, once it has the sandbox's host ids, walks from this directory into
    // fs/ (which it owns); it can pass through but not list or read anything here.
    // (chmod, not umask(0): the umask is the whole process's, and other threads may be creating files.)
    const mode_t mode = config.rootless ? 0700 : 0711;
    if (::mkdir(tmp.c_str(), mode) == -1) throw_errno("mkdir " + tmp);
    if (::chmod(tmp.c_str(), mode) == -1) throw_errno("chmod " + tmp);
    try {
        Fd fd(::open((tmp + "/sandbox.json").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (!fd || !write_all(fd.get(), config_json(config).dump()))
            throw_errno("write " + tmp + "/sandbox.json");
        std::string fs = tmp + "/fs";
        if (::mkdir(fs.c_str(), 0700) == -1) throw_errno("mkdir " + fs);
        if (!config.rootless && ::chown(fs.c_str(), config.idmap.root_uid(), config.idmap.root_gid()) == -1)
            throw_errno("chown " + fs);
        std::string dir = sandbox_dir(config.id);
        if (::rename(tmp.c_str(), dir.c_str()) == -1) throw_errno("rename " + tmp + " to " + dir);
    } catch (...) {
        remove_tree(tmp);
        throw;
    }
}

bool Store::write_runtime_if_present(std::string_view id, const RuntimeState& runtime) const {
    auto held = lock();
    struct stat st;
    if (::stat((sandbox_dir(id) + "/sandbox.json").c_str(), &st) == -1) return false;
    write_runtime(id, runtime);
    return true;
}

void Store::write_runtime(std::string_view id, const RuntimeState& rt) const {
    json j = {{"supervisor", to_json(rt.supervisor)},
              {"monitor", to_json(rt.monitor)},
              {"started_at", rt.started_at},
              {"base_idmapped", rt.base_idmapped},
              {"layers_in_memory", rt.layers_in_memory}};
    if (!rt.cgroup.empty()) {
        j["cgroup"] = rt.cgroup;
        j["cgroup_version"] = static_cast<int>(rt.cgroup_version);
    }
    if (!rt.limit_cgroups.empty()) j["limit_cgroups"] = rt.limit_cgroups;
    if (rt.network)
        j["network"] = {{"stack", to_json(rt.network->stack)},
                        {"address", rt.network->address},
                        {"prefix_length", rt.network->prefix_length},
                        {"gateway", rt.network->gateway},
                        {"ports", ports_json(rt.network->ports)}};
    write_file_atomic(runtime_file(id), j.dump(), 0600);
}

void Store::write_exit(std::string_view id, const ExitState& ex) const {
    json j = {{"signal", ex.signal}, {"code", ex.code}, {"at", ex.at}};
    write_file_atomic(exit_file(id), j.dump(), 0600);
}

std::string Store::detach(std::string_view id) const {
    std::string dir = sandbox_dir(id);
    std::string trash = paths_.data + "/trash/" + std::string(id) + ".tmp." + std::to_string(::getpid());
    if (::rename(dir.c_str(), trash.c_str()) == -1) {
        if (errno != ENOENT) throw_errno("rename " + dir);
        trash.clear();
    }
    ::unlink(runtime_file(id).c_str());
    ::unlink(exit_file(id).c_str());
    ::unlink(paused_file(id).c_str());
    return trash;
}

void Store::purge(const std::string& trash, const SandboxConfig& config) const {
    if (!trash.empty()) {
        bool ok = remove_tree(trash);
        if (!ok && config.rootless && config.idmap.use_helpers)
            ok = run_as_mapped_root(config.idmap, [&] { return remove_tree(trash); });
        if (!ok) throw Error(Error::Kind::internal, "could not remove every file of " + trash);
    }
}

void Store::remove(const SandboxConfig& config) const {
    std::string trash;
    {
        auto held = lock();
        trash = detach(config.id);
    }
    purge(trash, config);
}

void Store::sweep() const {
    // Leftovers of sbox processes killed halfway: half-made sandbox directories, half-removed ones, and
    // temporary files of atomic writes. Each name ends in ".tmp.<pid>[.<n>]" of the process that made it.
    auto owner_gone = [](const std::string& name) {
        size_t at = name.find(".tmp.");
        if (at == std::string::npos) return false;
        pid_t pid = static_cast<pid_t>(std::atoi(name.c_str() + at + 5));
        return pid > 0 && ::kill(pid, 0) == -1 && errno == ESRCH;
    };
    for (const std::string& dir :
         {paths_.data + "/sandboxes", paths_.data + "/trash", paths_.runtime + "/sandboxes"}) {
        DIR* d = ::opendir(dir.c_str());
        if (!d) continue;
        std::vector<std::string> stale;
        while (struct dirent* e = ::readdir(d)) {
            if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0 &&
                owner_gone(e->d_name))
                stale.push_back(dir + "/" + e->d_name);
        }
        ::closedir(d);
        for (const auto& path : stale)
            remove_tree(path);
    }
}

} // namespace sbox::local

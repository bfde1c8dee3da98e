// The `local` provider: the namespace sandbox engine of src/local behind the Provider interface.
#include "providers/local.hpp"

#include <sys/statvfs.h>
#include <sys/utsname.h>

#include <mutex>

#include "local/engine.hpp"
#include "local/seccomp.hpp"
#include "local/supervisor.hpp"
#include "local/trace.hpp"
#include "providers/log.hpp"
#include "providers/module.hpp"
#include "providers/paths.hpp"

namespace sbox {

namespace {

constexpr const char* kName = "local";

ErrorKind kind_of(local::Error::Kind kind) {
    switch (kind) {
    case local::Error::Kind::invalid:
        return ErrorKind::invalid;
    case local::Error::Kind::not_found:
        return ErrorKind::not_found;
    case local::Error::Kind::conflict:
        return ErrorKind::conflict;
    case local::Error::Kind::unavailable:
        return ErrorKind::unavailable;
    case local::Error::Kind::internal:
        return ErrorKind::internal;
    }
    return ErrorKind::internal;
}

// Runs an engine call, turning the engine's errors into sbox's.
template <typename Fn>
auto translate(Fn&& fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (const local::CommandFailed& e) {
        if (e.exit_status() == 126 || e.exit_status() == 127)
            throw CommandError(e.exit_status(), e.what(), kName);
        throw Error(ErrorKind::internal, e.what(), kName);
    } catch (const local::Error& e) {
        throw Error(kind_of(e.kind()), e.what(), kName);
    }
}

std::vector<std::string> env_strings(const Env& env) {
    std::vector<std::string> out;
    for (const auto& [k, v] : env)
        out.push_back(k + "=" + v);
    return out;
}

nlohmann::json ranges(const std::vector<local::IdRange>& rs) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : rs)
        out.push_back({{"inside", r.inside}, {"outside", r.outside}, {"count", r.count}});
    return out;
}

// The system call filter and privileges every process of the sandbox runs with.
nlohmann::json security_json(const local::SandboxConfig& c) {
    nlohmann::json j;
    j["seccomp"] = c.seccomp ? "default" : "unconfined";
    if (c.seccomp) {
        const auto& p = local::seccomp_profile();
        nlohmann::json denied = nlohmann::json::object();
        for (const auto& [cls, calls] : p.denied)
            denied[cls] = calls;
        j["seccomp_profile"] = {{"denied_eperm", denied},
                                {"unknown_syscalls", "ENOSYS (" + std::to_string(p.unknown_syscalls) +
                                                         " numbers unknown to libseccomp " +
                                                         p.libseccomp_version + ")"},
                                {"other_architectures", "killed (32-bit and x32 system calls)"},
                                {"instructions", p.instructions}};
    }
    j["no_new_privs"] = true;
    j["capabilities"] = "root inside: docker's default set; other users: none";
    return j;
}

// Effective limits and what the sandbox uses now (where something measures it).
nlohmann::json limits_json(const local::SandboxState& s) {
    using nlohmann::json;
    const auto& l = s.config.limits;
    const bool running =
        s.runtime && (s.status == local::Status::running || s.status == local::Status::paused);
    local::CgroupUsage u;
    if (running) u = local::read_cgroup_usage(local::cgroups_of(s));
    auto where = [](const std::vector<std::string>& dirs) {
        std::string out;
        for (const auto& d : dirs)
            out += (out.empty() ? "cgroup " : ", cgroup ") + d;
        return out;
    };
    auto opt = [](const std::optional<std::uint64_t>& v) { return v ? json(*v) : json(); };
    json j;
    json memory = {{"limit", opt(l.memory)}};
    if (!u.memory_where.empty()) {
        memory["usage"] = opt(u.memory_bytes);
        memory["peak"] = opt(u.memory_peak);
        memory["oom_kills"] = opt(u.oom_kills);
        memory["enforced_by"] = where(u.memory_where);
    }
    j["memory"] = memory;
    json cpus = {{"limit", l.cpu_millis ? json(static_cast<double>(*l.cpu_millis) / 1000) : json()}};
    if (!u.cpu_where.empty()) {
        cpus["throttled_periods"] = opt(u.cpu_throttled_periods);
        cpus["enforced_by"] = where(u.cpu_where);
    }
    j["cpus"] = cpus;
    std::uint64_t pids_limit = l.pids.value_or(local::kDefaultPids);
    json pids = {{"limit", pids_limit}, {"default", !l.pids}};
    std::string pids_by = "RLIMIT_NPROC per user";
    if (!u.pids_where.empty()) {
        pids["current"] = opt(u.pids_current);
        pids_by = where(u.pids_where) + "; " + pids_by;
    }
    pids["enforced_by"] = pids_by;
    j["pids"] = pids;
    json disk = {{"limit", opt(l.disk)}};
    if (l.disk) {
        disk["enforced_by"] = "a tmpfs of that size holds the writable layers (memory, not the host's disk)";
        struct statvfs st;
        std::string layers = "/proc/" + std::to_string(s.runtime ? s.runtime->supervisor.pid : 0) + "/fd/" +
                             std::to_string(local::kLayersFd);
        if (running && ::statvfs(layers.c_str(), &st) == 0)
            disk["used"] = static_cast<std::uint64_t>(st.f_blocks - st.f_bfree) * st.f_frsize;
    }
    j["disk"] = disk;
    return j;
}

SandboxInfo info_of(const local::SandboxState& s) {
    SandboxInfo info;
    info.provider = kName;
    info.id = s.config.id;
    info.name = s.config.name;
    info.status = std::string(local::to_string(s.status));
    info.image = s.config.image.empty() ? "host" : s.config.image;
    info.created_at = s.config.created_at;
    info.expires_at = s.config.expires_at;
    info.labels = s.config.labels;
    auto& d = info.details;
    d["hostname"] = s.config.hostname;
    d["env"] = s.config.env;
    d["rootless"] = s.config.rootless;
    d["uid_map"] = ranges(s.config.idmap.uids);
    d["gid_map"] = ranges(s.config.idmap.gids);
    d["ephemeral"] = s.config.ephemeral;
    d["security"] = security_json(s.config);
    d["limits"] = limits_json(s);
    if (s.runtime) {
        d["supervisor_pid"] = s.runtime->supervisor.pid;
        d["monitor_pid"] = s.runtime->monitor.pid;
        d["started_at"] = s.runtime->started_at;
        d["base_idmapped"] = s.runtime->base_idmapped;
        d["layers_in_memory"] = s.runtime->layers_in_memory;
        // How pause stops the processes: a cgroup's freezer, or signals (see src/local/pause.cpp).
        d["cgroup"] = s.runtime->cgroup.empty() ? nlohmann::json() : nlohmann::json(s.runtime->cgroup);
        d["pause_method"] = s.runtime->cgroup.empty()
                                ? std::string("signals")
                                : "freezer-" + std::string(local::to_string(s.runtime->cgroup_version));
    }
    // --network: how the sandbox is connected, and its published ports (host address -> sandbox port).
    d["network"] = std::string(local::to_string(s.config.network));
    if (s.runtime && s.runtime->network) {
        const auto& n = *s.runtime->network;
        d["address"] = n.address + "/" + std::to_string(n.prefix_length);
        d["gateway"] = n.gateway;
        d["dns"] = local::kDnsForwarder;
        d["host_alias"] = local::kHostAlias; // names the gateway, which leads to the host's 127.0.0.1
        d["network_pid"] = n.stack.pid;
        nlohmann::json ports = nlohmann::json::array();
        for (const auto& p : n.ports)
            ports.push_back({{"host", "127.0.0.1:" + std::to_string(p.host_port)},
                             {"sandbox", p.sandbox_port},
                             {"protocol", p.protocol}});
        d["ports"] = std::move(ports);
    } else if (s.config.network == local::NetworkMode::full) {
        nlohmann::json ports = nlohmann::json::array(); // as requested: not started (any more)
        for (const auto& p : s.config.ports)
            ports.push_back(
                {{"host", p.host_port ? "127.0.0.1:" + std::to_string(p.host_port) : std::string()},
                 {"sandbox", p.sandbox_port},
                 {"protocol", p.protocol}});
        d["ports"] = std::move(ports);
    } else {
        d["ports"] = nlohmann::json::array();
    }
    if (s.exit) {
        d["exit"] = {{"code", s.exit->code}, {"signal", s.exit->signal}, {"at", s.exit->at}};
    }
    return info;
}

SnapshotInfo snapshot_info(const local::SnapshotRecord& r) {
    SnapshotInfo info;
    info.provider = kName;
    info.id = r.id;
    info.name = r.name;
    info.size = r.size;
    info.created_at = r.created_at;
    info.source = r.source.empty() ? std::string() : std::string(kName) + "/" + r.source;
    info.parent = r.parent;
    info.details["entries"] = r.entries;
    info.details["image"] = r.image.empty() ? "host" : r.image;
    info.details["env"] = r.env;
    return info;
}

local::ExecRequest exec_request(const ExecSpec& spec) {
    local::ExecRequest r;
    r.argv = spec.argv;
    r.env = env_strings(spec.env);
    r.cwd = spec.cwd;
    r.user = spec.user;
    r.stdin_open = spec.stdin_open;
    r.detach = spec.detach;
    r.timeout = spec.timeout;
    r.tty = spec.tty;
    r.login_shell = spec.login_shell;
    r.stdout_fd = spec.stdout_fd;
    r.stderr_fd = spec.stderr_fd;
    r.owns_process = spec.owns_process;
    return r;
}

local::CreateRequest create_request(const CreateSpec& spec) {
    local::CreateRequest r;
    r.name = spec.name;
    r.image = spec.image == "host" ? std::string() : spec.image;
    r.labels = spec.labels;
    r.env = env_strings(spec.env);
    r.lifetime = spec.lifetime;
    r.snapshot = spec.snapshot;
    r.limits = local::Limits{spec.memory, spec.cpu_millis, spec.pids, spec.disk};
    r.seccomp = !spec.seccomp_unconfined;
    r.network = spec.network == "full" ? local::NetworkMode::full : local::NetworkMode::none;
    for (const auto& p : spec.ports)
        r.ports.push_back({p.host, p.sandbox, p.protocol});
    return r;
}

// Archive support is a module (libsbox-archive.so), loaded only when cp or a snapshot needs it.
local::Archiver& local_archiver() {
    try {
        return *static_cast<local::Archiver*>(module_interface("archive", local::kArchiverInterface));
    } catch (const Error& e) {
        throw local::Error(local::Error::Kind::unavailable, e.what());
    }
}

class LocalProvider final : public Provider {
  public:
    std::string_view name() const override { return kName; }
    Capabilities capabilities() const override {
        return {Capability::exec,           Capability::exec_stdin, Capability::exec_detach,
                Capability::exec_timeout,   Capability::exec_user,  Capability::exec_cwd,
                Capability::lifetime,       Capability::labels,     Capability::names,
                Capability::image_dir,      Capability::copy,       Capability::snapshots,
                Capability::snapshot_files, Capability::pause,      Capability::cpu_limit,
                Capability::memory_limit,   Capability::disk_limit, Capability::pids_limit,
                Capability::seccomp,        Capability::network,    Capability::ports,
                Capability::exec_tty};
    }
    bool configured(std::string&) const override { return true; }
    nlohmann::json about() const override {
        nlohmann::json j = {{"engine", "sbox " SBOX_VERSION " (built in)"}};
        struct utsname u {};
        if (::uname(&u) == 0) j["kernel"] = std::string(u.sysname) + " " + u.release;
        return j;
    }

    SandboxInfo create(const CreateSpec& spec) override {
        return translate([&] { return info_of(engine().create(create_request(spec))); });
    }
    std::vector<SandboxInfo> list() override {
        return translate([&] {
            std::vector<SandboxInfo> out;
            for (const auto& s : engine().list())
                out.push_back(info_of(s));
            return out;
        });
    }
    std::optional<SandboxInfo> get(std::string_view id) override {
        return translate([&]() -> std::optional<SandboxInfo> {
            if (auto s = engine().find(id)) return info_of(*s);
            return std::nullopt;
        });
    }
    int exec(std::string_view id, const ExecSpec& spec) override {
        return translate([&] { return engine().exec(id, exec_request(spec)); });
    }
    void kill(std::string_view id) override {
        translate([&] { engine().kill(id); });
    }
    int run(const CreateSpec& create, const ExecSpec& exec, RunObserver& observer) override {
        return translate([&] {
            return engine().run(create_request(create), exec_request(exec),
                                [&](const local::SandboxState& s) { observer.created(info_of(s)); });
        });
    }

    PathInfo stat_path(std::string_view id, const std::string& path, bool follow_link) override {
        return translate([&] {
            local::SandboxPath p = engine().stat_path(id, path, follow_link);
            PathInfo info;
            info.type = static_cast<PathInfo::Type>(static_cast<int>(p.type));
            info.size = p.size;
            info.mode = p.mode;
            info.link_target = p.link_target;
            return info;
        });
    }
    void upload(std::string_view id, const UploadSpec& spec, int tar_fd) override {
        translate([&] {
            engine().copy_in(id, local::CopyIn{spec.dir, spec.user, spec.rename_from, spec.rename_to},
                             tar_fd);
        });
    }
    void download(std::string_view id, const DownloadSpec& spec, int tar_fd) override {
        translate([&] {
            engine().copy_out(id, local::CopyOut{spec.path, spec.archive_name, spec.follow_link}, tar_fd);
        });
    }

    SnapshotInfo create_snapshot(std::string_view id, const std::string& name) override {
        return translate([&] { return snapshot_info(engine().create_snapshot(id, name)); });
    }
    std::vector<SnapshotInfo> list_snapshots() override {
        return translate([&] {
            std::vector<SnapshotInfo> out;
            for (const auto& r : engine().list_snapshots())
                out.push_back(snapshot_info(r));
            return out;
        });
    }
    std::optional<SnapshotInfo> get_snapshot(std::string_view ref) override {
        return translate([&]() -> std::optional<SnapshotInfo> {
            if (auto r = engine().find_snapshot(ref)) return snapshot_info(*r);
            return std::nullopt;
        });
    }
    void delete_snapshot(std::string_view id) override {
        translate([&] { engine().remove_snapshot(id); });
    }
    void export_snapshot(std::string_view id, int out_fd) override {
        translate([&] { engine().export_snapshot(id, out_fd); });
    }
    SnapshotInfo import_snapshot(int in_fd) override {
        return translate([&] { return snapshot_info(engine().import_snapshot(in_fd)); });
    }

    void pause(std::string_view id) override {
        translate([&] { engine().pause(id); });
    }
    void resume(std::string_view id) override {
        translate([&] { engine().resume(id); });
    }

  private:
    // Created on first use: `sbox providers` and `sbox version` never touch the state directories.
    // (Under a lock: sbox bench calls create from several threads at once.)
    local::Engine& engine() {
        std::lock_guard lock(engine_mutex_);
        if (!engine_) {
            local::set_tracing(verbose());
            engine_.emplace(local::Paths{data_dir().string(), runtime_dir().string()}, &local_archiver);
        }
        return *engine_;
    }
    std::mutex engine_mutex_;
    std::optional<local::Engine> engine_;
};

} // namespace

std::unique_ptr<Provider> make_local_provider() {
    return std::make_unique<LocalProvider>();
}

} // namespace sbox

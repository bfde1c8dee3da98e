// Snapshots of local sandboxes (snapshot.hpp): taking one, listing, removing, export and import.
//
// A layer travels as a tar stream between two helper processes, each in a user namespace whose mapping makes
// the ids come out right: the reader sees the sandbox's (or the store's) ids as the sandbox saw them, the
// writer creates them as the store (or the sandbox) keeps them. Overlay whiteouts and opaque directories
// travel as OCI-style ".wh." entries.
#include "local/snapshot.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>

#include <nlohmann/json.hpp>

#include "local/child.hpp"
#include "local/engine.hpp"
#include "local/rootfs.hpp"
#include "local/supervisor.hpp"

namespace sbox::local {

namespace {

constexpr const char* kFormat = "sbox-snapshot/1";
constexpr std::uint64_t kMaxManifest = 16 << 20; // bytes: a manifest is a few hundred per layer

std::string snapshots_dir(const Paths& paths) {
    return paths.data + "/snapshots";
}

nlohmann::json record_json(const SnapshotRecord& r) {
    return {{"id", r.id},
            {"name", r.name},
            {"size", r.size},
            {"entries", r.entries},
            {"created_at", r.created_at},
            {"source", r.source},
            {"parent", r.parent},
            {"image", r.image},
            {"env", r.env}};
}

SnapshotRecord record_of(const nlohmann::json& j) {
    SnapshotRecord r;
    r.id = j.value("id", std::string());
    r.name = j.value("name", std::string());
    r.size = j.value("size", std::uint64_t{0});
    r.entries = j.value("entries", std::uint64_t{0});
    r.created_at = j.value("created_at", std::int64_t{0});
    r.source = j.value("source", std::string());
    r.parent = j.value("parent", std::string());
    r.image = j.value("image", std::string());
    r.env = j.value("env", std::vector<std::string>());
    return r;
}

bool is_id(const std::string& s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

std::optional<SnapshotRecord> load_record(const Paths& paths, const std::string& id) {
    if (!is_id(id)) return std::nullopt;
    try {
        return record_of(
            nlohmann::json::parse(read_file(snapshots_dir(paths) + "/" + id + "/snapshot.json")));
    } catch (const Error&) {
        return std::nullopt;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

std::vector<SnapshotRecord> load_all(const Paths& paths) {
    std::vector<SnapshotRecord> out;
    DIR* d = ::opendir(snapshots_dir(paths).c_str());
    if (!d) return out;
    while (struct dirent* e = ::readdir(d)) {
        if (auto r = load_record(paths, e->d_name)) out.push_back(std::move(*r));
    }
    ::closedir(d);
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.created_at > b.created_at; });
    return out;
}

// Where the store keeps layers' ids: as root, uid N of a sandbox is kStoreIdBase + N on disk; rootless,
// the user's own mapping (the same for all of the user's sandboxes).
IdMap store_idmap(bool rootless) {
    if (rootless) return rootless_idmap();
    IdMap map;
    map.uids = {{0, kStoreIdBase, kRangeSize}};
    map.gids = {{0, kStoreIdBase, kRangeSize}};
    return map;
}

// The names at the top of a host-based layer that are not the sandbox's own files: the system directories
// (archived from their own upper layers) and the kernel's file systems.
std::vector<std::string> top_level_exclusions() {
    std::vector<std::string> out = system_dir_names();
    for (const char* n : {"proc", "sys", "dev"})
        out.emplace_back(n);
    return out;
}

std::string join(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : prefix + "/" + name;
}

bool is_dir_at(int dir, const std::string& name) {
    struct stat st;
    return ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

// A stored layer's sources, in the same order and with the same names as when it was taken, so that its
// digest comes out the same: its "/" first, then each system directory.
std::vector<ArchiveSource> stored_layer_sources(int layer, const std::string& prefix, bool host_base) {
    std::vector<ArchiveSource> out;
    ArchiveSource root;
    root.dir_fd = layer;
    root.name = ".";
    root.archive_name = prefix;
    if (host_base) root.exclude = top_level_exclusions();
    out.push_back(root);
    if (!host_base) return out;
    for (const auto& d : system_dir_names()) {
        if (!is_dir_at(layer, d)) continue;
        ArchiveSource s;
        s.dir_fd = layer;
        s.name = d;
        s.archive_name = join(prefix, d);
        out.push_back(s);
    }
    return out;
}

Fd open_dir(int at, const std::string& path, int flags = O_PATH) {
    Fd fd(::openat(at, path.c_str(), flags | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) throw_errno("open " + path);
    return fd;
}

std::string random_suffix() {
    std::random_device rd;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
    return buf;
}

// A directory under snapshots/ named ".tmp.<pid>.<random>" (Store::sweep removes it when this process is
// gone), removed on destruction unless released.
class TempDir {
  public:
    TempDir(const Paths& paths, bool rootless) : rootless_(rootless) {
        std::string dir = snapshots_dir(paths);
        if (::mkdir(dir.c_str(), 0700) == -1 && errno != EEXIST) throw_errno("mkdir " + dir);
        path_ = dir + "/.tmp." + std::to_string(::getpid()) + "." + random_suffix();
        if (::mkdir(path_.c_str(), 0700) == -1) throw_errno("mkdir " + path_);
    }
    ~TempDir() {
        if (!path_.empty()) remove();
    }
    void remove() {
        if (rootless_)
            run_as_mapped_root(rootless_idmap(), [p = path_] { return remove_tree(p); });
        else
            remove_tree(path_);
        path_.clear();
    }
    const std::string& path() const { return path_; }
    void release() { path_.clear(); }

  private:
    bool rootless_;
    std::string path_;
};

// Makes <dir>/layer, owned by the store's root.
Fd make_layer_dir(const std::string& dir, bool rootless) {
    std::string layer = dir + "/layer";
    if (::mkdir(layer.c_str(), 0755) == -1) throw_errno("mkdir " + layer);
    if (!rootless && ::chown(layer.c_str(), kStoreIdBase, kStoreIdBase) == -1) throw_errno("chown " + layer);
    return open_dir(AT_FDCWD, layer, O_RDONLY);
}

// Moves one layer from `write` (run in `from`'s user namespace) into `layer_dir` (extracted in `to`'s),
// returning the extraction's stats as "digest\nbytes\nentries". When both fail, the reader's error is the
// cause, unless it is only the broken stream of a writer that failed first.
std::string transfer(const std::function<void(int)>& write, std::vector<int> sources, const IdMap& from,
                     int layer_dir, const IdMap& to, Archiver& tar, ExtractOptions options) {
    Pipe pipe;
    pipe.widen();
    int out = pipe.write.get(), in = pipe.read.get();
    Child reader(
        [&] {
            ::signal(SIGPIPE, SIG_IGN);
            write(out);
            return std::string();
        },
        [&] {
            sources.push_back(out);
            return sources;
        }(),
        &from);
    pipe.write.reset();
    Child writer(
        [&] {
            ArchiveStats stats = tar.extract(in, layer_dir, options);
            return (stats.digests.empty() ? std::string() : stats.digests.front()) + "\n" +
                   std::to_string(stats.bytes) + "\n" + std::to_string(stats.entries);
        },
        {in, layer_dir}, &to);
    pipe.read.reset();
    std::optional<Error> read_error;
    try {
        reader.wait();
    } catch (const Error& e) {
        read_error = e;
    }
    std::string result;
    try {
        result = writer.wait();
    } catch (const Error&) {
        // The reader's failure is the cause unless it failed only because the writer went away.
        if (read_error && read_error->kind() != Error::Kind::internal) throw *read_error;
        throw;
    }
    if (read_error) throw *read_error;
    return result;
}

struct LayerStats {
    std::string digest;
    std::uint64_t bytes = 0, entries = 0;
};
LayerStats parse_stats(const std::string& text) {
    LayerStats s;
    auto a = text.find('\n'), b = text.find('\n', a + 1);
    s.digest = text.substr(0, a);
    s.bytes = std::stoull(text.substr(a + 1, b - a - 1));
    s.entries = std::stoull(text.substr(b + 1));
    return s;
}

ExtractOptions layer_extract_options() {
    ExtractOptions o;
    o.keep_owners = true;
    o.keep_setid = true;
    o.overlay = true;
    return o;
}

// Stops every process of a running sandbox for as long as it lives, unless it was paused already.
class Freeze {
  public:
    Freeze(Engine& engine, const SandboxState& state) : engine_(engine), id_(state.config.id) {
        if (state.status == Status::running) {
            engine_.pause(id_);
            frozen_ = true;
        }
    }
    ~Freeze() {
        if (frozen_) try {
                engine_.resume(id_);
            } catch (...) {
            }
    }

  private:
    Engine& engine_;
    std::string id_;
    bool frozen_ = false;
};

} // namespace

std::string snapshot_layer_dir(const Paths& paths, const std::string& id) {
    return snapshots_dir(paths) + "/" + id + "/layer";
}

std::vector<std::string> Engine::snapshot_chain(const SnapshotRecord& snapshot) const {
    std::vector<std::string> chain{snapshot.id};
    std::string parent = snapshot.parent;
    while (!parent.empty()) {
        auto r = load_record(store_.paths(), parent);
        if (!r)
            throw Error(Error::Kind::not_found,
                        "snapshot " + chain.back() + " is layered on " + parent + ", which is missing");
        if (chain.size() > 128) throw Error(Error::Kind::invalid, "snapshot chain too deep (a loop?)");
        chain.push_back(r->id);
        parent = r->parent;
    }
    return chain;
}

std::vector<SnapshotRecord> Engine::list_snapshots() const {
    return load_all(store_.paths());
}

std::optional<SnapshotRecord> Engine::find_snapshot(std::string_view ref_view) const {
    std::string ref(ref_view);
    if (ref.rfind("sha256:", 0) == 0) ref = ref.substr(7);
    auto all = load_all(store_.paths());
    for (const auto& r : all)
        if (r.id == ref || (!r.name.empty() && r.name == ref)) return r;
    if (ref.size() < 4) return std::nullopt;
    std::optional<SnapshotRecord> found;
    for (const auto& r : all) {
        if (r.id.compare(0, ref.size(), ref) != 0) continue;
        if (found)
            throw Error(Error::Kind::conflict,
                        "'" + ref + "' matches more than one snapshot; give more of the id");
        found = r;
    }
    return found;
}

SnapshotRecord Engine::create_snapshot(std::string_view id_or_name, const std::string& name) {
    if (!name.empty() && !valid_name(name))
        throw Error(Error::Kind::invalid,
                    "invalid snapshot name '" + name +
                        "': use up to 63 letters, digits, '-', '_' or '.', starting with "
                        "a letter or digit");
    auto state = store_.find(id_or_name);
    if (!state) throw Error(Error::Kind::not_found, "no sandbox '" + std::string(id_or_name) + "'");
    if ((state->status != Status::running && state->status != Status::paused) || !state->runtime)
        throw Error(Error::Kind::conflict, "sandbox " + state->config.id + " is not running (" +
                                               std::string(to_string(state->status)) +
                                               "): a snapshot is taken of a running sandbox");
    if (!name.empty() && find_snapshot(name))
        throw Error(Error::Kind::conflict, "the snapshot name '" + name + "' is already used");
    Archiver& tar = archiver();
    const SandboxConfig& config = state->config;
    TempDir tmp(store_.paths(), config.rootless);
    Fd layer = make_layer_dir(tmp.path(), config.rootless);

    LayerStats stats;
    {
        Freeze freeze(*this, *state);
        // The supervisor's descriptor of the sandbox's fs/ (its layers may live in a tmpfs only it sees),
        // opened through /proc, then checked to belong to the same supervisor still.
        std::string held =
            "/proc/" + std::to_string(state->runtime->supervisor.pid) + "/fd/" + std::to_string(kLayersFd);
        Fd fs(::open(held.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!fs || !alive(state->runtime->supervisor))
            throw Error(Error::Kind::conflict,
                        "cannot reach the layers of sandbox " + config.id + " (is it still running?)");
        bool host_base = config.image.empty();
        Fd upper = open_dir(fs.get(), "upper");
        Fd root;
        std::vector<ArchiveSource> sources;
        if (host_base) {
            root = open_dir(config.layers.empty() ? fs.get() : upper.get(), "root");
            ArchiveSource r;
            r.dir_fd = root.get();
            r.name = ".";
            r.exclude = top_level_exclusions();
            sources.push_back(r);
            for (const auto& d : system_dir_names()) {
                if (!is_dir_at(upper.get(), d)) continue;
                ArchiveSource s;
                s.dir_fd = upper.get();
                s.name = d;
                s.archive_name = d;
                sources.push_back(s);
            }
        } else {
            ArchiveSource r;
            r.dir_fd = upper.get();
            r.name = "root";
            sources.push_back(r);
        }
        WriteOptions wo;
        wo.overlay = true;
        std::vector<int> source_fds{fs.get(), upper.get()};
        if (root) source_fds.push_back(root.get());
        std::string text = transfer([&](int out) { tar.write(sources, out, wo); }, source_fds, config.idmap,
                                    layer.get(), store_idmap(config.rootless), tar, layer_extract_options());
        stats = parse_stats(text);
    }
    if (stats.digest.empty()) throw Error(Error::Kind::internal, "the snapshot's layer has no digest");

    SnapshotRecord record;
    record.id = stats.digest;
    record.name = name;
    record.size = stats.bytes;
    record.entries = stats.entries;
    record.created_at = static_cast<std::int64_t>(::time(nullptr));
    record.source = config.id;
    record.parent = config.snapshot;
    record.image = config.image;
    record.env = config.env;
    write_file_atomic(tmp.path() + "/snapshot.json", record_json(record).dump(), 0644);

    auto held = store_.lock();
    if (auto existing = load_record(store_.paths(), record.id)) { // the same content is stored already
        if (name.empty() || existing->name == name) return *existing;
        if (!existing->name.empty())
            throw Error(Error::Kind::conflict,
                        "sandbox " + config.id + " holds the same files as snapshot " +
                            existing->id.substr(0, 12) + ", which is named '" + existing->name +
                            "' (a snapshot has one name): use that name, or remove the snapshot first");
        existing->name = name; // an unnamed snapshot takes the name asked for
        write_file_atomic(snapshots_dir(store_.paths()) + "/" + existing->id + "/snapshot.json",
                          record_json(*existing).dump(), 0644);
        return *existing;
    }
    if (!name.empty() && find_snapshot(name))
        throw Error(Error::Kind::conflict, "the snapshot name '" + name + "' is already used");
    std::string final_dir = snapshots_dir(store_.paths()) + "/" + record.id;
    if (::rename(tmp.path().c_str(), final_dir.c_str()) == -1) throw_errno("rename to " + final_dir);
    tmp.release();
    return record;
}

void Engine::remove_snapshot(std::string_view ref) {
    auto held = store_.lock();
    auto record = find_snapshot(ref);
    if (!record)
        throw Error(Error::Kind::not_found, "no snapshot '" + std::string(ref) + "' (see sbox snapshot ls)");
    for (const auto& other : load_all(store_.paths()))
        if (other.parent == record->id)
            throw Error(Error::Kind::conflict, "snapshot " + record->id.substr(0, 12) +
                                                   " is the base of snapshot " + other.id.substr(0, 12) +
                                                   "; remove that one first");
    for (const auto& s : store_.list())
        for (const auto& layer : s.config.layers)
            if (layer == record->id)
                throw Error(Error::Kind::conflict, "snapshot " + record->id.substr(0, 12) +
                                                       " is in use by sandbox local/" + s.config.id +
                                                       "; remove the sandbox first (sbox kill)");
    std::string dir = snapshots_dir(store_.paths()) + "/" + record->id;
    std::string trash =
        snapshots_dir(store_.paths()) + "/.tmp." + std::to_string(::getpid()) + "." + random_suffix();
    if (::rename(dir.c_str(), trash.c_str()) == -1) throw_errno("rename " + dir);
    bool rootless = ::geteuid() != 0;
    bool removed = rootless ? run_as_mapped_root(rootless_idmap(), [&] { return remove_tree(trash); })
                            : remove_tree(trash);
    if (!removed) throw Error(Error::Kind::internal, "could not remove all of " + trash);
}

void Engine::export_snapshot(std::string_view ref, int out_fd) {
    auto record = find_snapshot(ref);
    if (!record)
        throw Error(Error::Kind::not_found, "no snapshot '" + std::string(ref) + "' (see sbox snapshot ls)");
    Archiver& tar = archiver();
    std::vector<std::string> chain = snapshot_chain(*record);
    nlohmann::json layers = nlohmann::json::array();
    std::vector<Fd> dirs;
    std::vector<ArchiveSource> sources;
    for (const auto& id : chain) {
        auto r = load_record(store_.paths(), id);
        layers.push_back(record_json(*r));
        dirs.push_back(open_dir(AT_FDCWD, snapshot_layer_dir(store_.paths(), id), O_PATH));
        for (auto& s : stored_layer_sources(dirs.back().get(), "layers/" + id, record->image.empty()))
            sources.push_back(std::move(s));
    }
    nlohmann::json manifest = {{"format", kFormat}, {"id", record->id}, {"layers", layers}};
    WriteOptions wo;
    wo.zstd = true;
    wo.overlay = true;
    wo.files = {{"manifest.json", manifest.dump(2) + "\n"}};
    std::vector<int> keep{out_fd};
    for (const auto& d : dirs)
        keep.push_back(d.get());
    bool rootless = ::geteuid() != 0;
    IdMap map = store_idmap(rootless);
    Child reader(
        [&] {
            ::signal(SIGPIPE, SIG_IGN);
            tar.write(sources, out_fd, wo);
            return std::string();
        },
        keep, &map);
    reader.wait();
}

SnapshotRecord Engine::import_snapshot(int in_fd) {
    Archiver& tar = archiver();
    bool rootless = ::geteuid() != 0;
    TempDir tmp(store_.paths(), rootless);
    // The stream is read once per layer: keep it in a file first (it may be stdin).
    std::string file = tmp.path() + "/import.tar";
    {
        Fd out(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (!out) throw_errno("create " + file);
        char buf[1 << 16];
        for (;;) {
            ssize_t n = ::read(in_fd, buf, sizeof buf);
            if (n == 0) break;
            if (n < 0) {
                if (errno == EINTR) continue;
                throw_errno("read the snapshot file");
            }
            if (!write_all(out.get(), std::string_view(buf, static_cast<size_t>(n)))) {
                if (errno == ENOSPC || errno == EDQUOT)
                    throw Error(Error::Kind::unavailable, "no space left to import the snapshot");
                throw_errno("write " + file);
            }
        }
    }
    auto open_file = [&] {
        Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) throw_errno("open " + file);
        return fd;
    };
    // The manifest first.
    std::string meta = tmp.path() + "/meta";
    if (::mkdir(meta.c_str(), 0700) == -1) throw_errno("mkdir " + meta);
    {
        Fd in = open_file();
        Fd dir = open_dir(AT_FDCWD, meta, O_RDONLY);
        ExtractOptions o;
        o.select_prefix = "manifest.json";
        o.max_bytes = kMaxManifest;
        o.max_stream_bytes = kMaxManifest;
        o.allowed = {"manifest.json"}; // the first entry, as export writes it
        o.stop_after_selected = true;
        try {
            tar.extract(in.get(), dir.get(), o);
        } catch (const Error& e) {
            if (e.kind() != Error::Kind::invalid) throw;
            throw Error(Error::Kind::invalid,
                        std::string("not an sbox snapshot file (one starts with manifest.json): ") +
                            e.what());
        }
    }
    nlohmann::json manifest;
    try {
        manifest = nlohmann::json::parse(read_file(meta + "/manifest.json"));
    } catch (const Error&) {
        throw Error(Error::Kind::invalid, "not an sbox snapshot: the file has no manifest.json");
    } catch (const nlohmann::json::exception& e) {
        throw Error(Error::Kind::invalid,
                    std::string("the snapshot's manifest.json is not valid JSON: ") + e.what());
    }
    if (manifest.value("format", std::string()) != kFormat)
        throw Error(Error::Kind::invalid,
                    "not an sbox snapshot of a known format (manifest.json's format is '" +
                        manifest.value("format", std::string()) + "', expected " + kFormat + ")");
    std::vector<SnapshotRecord> layers;
    try {
        for (const auto& j : manifest.at("layers"))
            layers.push_back(record_of(j));
    } catch (const nlohmann::json::exception& e) {
        throw Error(Error::Kind::invalid,
                    std::string("the snapshot's manifest.json is malformed: ") + e.what());
    }
    std::string top = manifest.value("id", std::string());
    if (layers.empty() || layers.front().id != top)
        throw Error(Error::Kind::invalid, "the snapshot's manifest names no layers, or not its own first");
    for (size_t i = 0; i < layers.size(); ++i) {
        if (!is_id(layers[i].id))
            throw Error(Error::Kind::invalid, "the manifest names a layer with an invalid id");
        std::string expected_parent = i + 1 < layers.size() ? layers[i + 1].id : std::string();
        if (layers[i].parent != expected_parent)
            throw Error(Error::Kind::invalid, "the manifest's layers do not form one chain");
    }
    // The file holds the manifest and these layers, nothing else, and no more than they say: each pass
    // over it refuses any other entry and stops at that much data, so that no pass spends its time on
    // entries it skips (a bomb hidden in another layer's name).
    std::vector<std::string> allowed{"manifest.json"};
    std::uint64_t stream_bytes = kMaxManifest, stream_entries = 2; // the manifest, a "layers/" entry
    for (const auto& record : layers) {
        allowed.push_back("layers/" + record.id);
        stream_bytes += record.size;
        stream_entries += record.entries + 1; // the layer's root entry
    }
    // Bottom first, so a layer's parent is always in the store before it.
    IdMap map = store_idmap(rootless);
    std::reverse(layers.begin(), layers.end());
    for (auto& record : layers) {
        if (load_record(store_.paths(), record.id)) continue; // already here
        TempDir layer_tmp(store_.paths(), rootless);
        Fd layer = make_layer_dir(layer_tmp.path(), rootless);
        struct statvfs vfs;
        if (::fstatvfs(layer.get(), &vfs) == 0 &&
            record.size > static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize)
            throw Error(Error::Kind::unavailable, "no space for the snapshot's layer " +
                                                      record.id.substr(0, 12) + " (" +
                                                      std::to_string(record.size) + " bytes)");
        ExtractOptions o = layer_extract_options();
        o.select_prefix = "layers/" + record.id + "/";
        // The manifest's own figures bound the extraction: a layer that expands beyond them is refused.
        o.max_bytes = std::max<std::uint64_t>(record.size, 1);
        o.max_entries = record.entries + 1;
        o.max_stream_bytes = stream_bytes;
        o.max_stream_entries = stream_entries;
        o.allowed = allowed;
        Fd in = open_file();
        int in_fd2 = in.get(), layer_fd = layer.get();
        Child writer(
            [&] {
                ArchiveStats s = tar.extract(in_fd2, layer_fd, o);
                return s.digests.empty() ? std::string() : s.digests.front();
            },
            {in_fd2, layer_fd}, &map);
        std::string digest = writer.wait();
        if (digest != record.id)
            throw Error(Error::Kind::invalid,
                        "the snapshot's layer " + record.id.substr(0, 12) +
                            " does not match its content (the file is corrupt, truncated or "
                            "was altered)");
        auto held = store_.lock();
        if (load_record(store_.paths(), record.id)) continue;
        if (!record.name.empty() && find_snapshot(record.name)) record.name.clear(); // the name is taken here
        write_file_atomic(layer_tmp.path() + "/snapshot.json", record_json(record).dump(), 0644);
        std::string final_dir = snapshots_dir(store_.paths()) + "/" + record.id;
        if (::rename(layer_tmp.path().c_str(), final_dir.c_str()) == -1)
            throw_errno("rename to " + final_dir);
        layer_tmp.release();
    }
    auto result = load_record(store_.paths(), top);
    if (!result) throw Error(Error::Kind::internal, "the imported snapshot vanished");
    return *result;
}

} // namespace sbox::local

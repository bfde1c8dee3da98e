#include "providers/index.hpp"
#include "local/system.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "providers/provider.hpp"

namespace sbox {

namespace {

Error io_error(const std::string& what, const std::filesystem::path& path, int err) {
    return Error(ErrorKind::internal, what + " '" + path.string() + "': " + std::strerror(err) +
                                          " (check the permissions of " + path.parent_path().string() +
                                          ", or set SBOX_ROOT)");
}

// The file's content, or nullopt when it does not exist.
std::optional<std::string> read_file(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
        throw io_error("cannot read sbox's index", path, errno);
    }
    std::string content;
    int err = local::read_to_end(fd, content);
    ::close(fd);
    if (err) throw io_error("cannot read sbox's index", path, err);
    return content;
}

std::vector<IndexEntry> parse(const std::string& content, const std::filesystem::path& path) {
    auto corrupt = [&](const std::string& why) {
        return Error(ErrorKind::internal, "sbox's index '" + path.string() + "' is corrupt: " + why +
                                              " (remove the file; sandboxes stay reachable as PROVIDER/ID)");
    };
    nlohmann::json doc = nlohmann::json::parse(content, nullptr, false);
    if (doc.is_discarded()) throw corrupt("it is not valid JSON");
    if (!doc.is_array()) throw corrupt("it is not a JSON array");
    std::vector<IndexEntry> out;
    out.reserve(doc.size());
    for (const auto& item : doc) {
        if (!item.is_object()) throw corrupt("an entry is not an object");
        auto str = [&](const char* key, bool required) -> std::string {
            auto it = item.find(key);
            if (it == item.end() || it->is_null()) {
                if (required) throw corrupt(std::string("an entry has no \"") + key + "\"");
                return {};
            }
            if (!it->is_string()) throw corrupt(std::string("an entry's \"") + key + "\" is not a string");
            return it->get<std::string>();
        };
        IndexEntry e;
        e.provider = str("provider", true);
        e.id = str("id", true);
        e.name = str("name", false);
        if (auto it = item.find("created_at"); it != item.end() && !it->is_null()) {
            if (!it->is_number_integer()) throw corrupt("an entry's \"created_at\" is not an integer");
            e.created_at = it->get<std::int64_t>();
        }
        out.push_back(std::move(e));
    }
    return out;
}

std::string serialize(const std::vector<IndexEntry>& entries) {
    nlohmann::json doc = nlohmann::json::array();
    for (const auto& e : entries)
        doc.push_back(
            {{"provider", e.provider}, {"id", e.id}, {"name", e.name}, {"created_at", e.created_at}});
    return doc.dump(2) + "\n";
}

void make_dir(const std::filesystem::path& dir) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) return;
    if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw io_error("cannot create the directory", dir, errno);
}

class FileLock {
  public:
    explicit FileLock(const std::filesystem::path& path) {
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd_ < 0) throw io_error("cannot open the lock file", path, errno);
        while (::flock(fd_, LOCK_EX) != 0) {
            if (errno == EINTR) continue;
            int err = errno;
            ::close(fd_);
            throw io_error("cannot lock", path, err);
        }
    }
    ~FileLock() { ::close(fd_); } // closing releases the lock
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

  private:
    int fd_ = -1;
};

void write_atomically(const std::filesystem::path& path, const std::string& content) {
    std::filesystem::path tmp = path;
    tmp += ".tmp." + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw io_error("cannot write sbox's index", tmp, errno);
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw io_error("cannot write sbox's index", tmp, err);
        }
        done += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw io_error("cannot write sbox's index", tmp, err);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw io_error("cannot replace sbox's index", path, err);
    }
}

} // namespace

Index::Index(std::filesystem::path dir) : dir_(std::move(dir)), file_(dir_ / "index.json") {}

std::vector<IndexEntry> Index::entries() const {
    auto content = read_file(file_);
    if (!content) return {};
    return parse(*content, file_);
}

void Index::modify_impl(const std::function<bool(std::vector<IndexEntry>&)>& change) {
    make_dir(dir_);
    FileLock lock(dir_ / "index.lock");
    std::vector<IndexEntry> list = entries();
    if (change(list)) write_atomically(file_, serialize(list));
}

void Index::add(const IndexEntry& entry) {
    modify([&](std::vector<IndexEntry>& v) {
        std::erase_if(v,
                      [&](const IndexEntry& e) { return e.provider == entry.provider && e.id == entry.id; });
        v.push_back(entry);
        return true;
    });
}

bool Index::remove(std::string_view provider, std::string_view id) {
    // Most commands remove what is not there (a sandbox run never recorded); skip the lock then.
    auto current = entries();
    if (std::none_of(current.begin(), current.end(),
                     [&](const IndexEntry& e) { return e.provider == provider && e.id == id; }))
        return false;
    bool removed = false;
    modify([&](std::vector<IndexEntry>& v) {
        removed =
            std::erase_if(v, [&](const IndexEntry& e) { return e.provider == provider && e.id == id; }) > 0;
        return removed;
    });
    return removed;
}

std::optional<IndexEntry> Index::find(std::string_view token, std::string_view provider) const {
    if (token.empty()) return std::nullopt;
    std::vector<IndexEntry> all = entries();
    if (!provider.empty()) std::erase_if(all, [&](const IndexEntry& e) { return e.provider != provider; });

    auto pick = [&](auto matches, const char* how) -> std::optional<IndexEntry> {
        std::vector<const IndexEntry*> found;
        for (const auto& e : all)
            if (matches(e)) found.push_back(&e);
        if (found.empty()) return std::nullopt;
        if (found.size() == 1) return *found.front();
        std::string refs;
        for (auto* e : found)
            refs += (refs.empty() ? "" : ", ") + e->ref();
        throw Error(ErrorKind::conflict, "'" + std::string(token) + "' is ambiguous: it " + how + " " + refs +
                                             " (use the full PROVIDER/ID)");
    };
    if (auto e = pick([&](const IndexEntry& e) { return e.id == token; }, "is the id of"); e) return e;
    if (auto e =
            pick([&](const IndexEntry& e) { return !e.name.empty() && e.name == token; }, "is the name of");
        e)
        return e;
    if (token.size() >= 4)
        return pick([&](const IndexEntry& e) { return e.id.starts_with(token); }, "is a prefix of");
    return std::nullopt;
}

} // namespace sbox

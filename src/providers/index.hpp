// sbox's index of the sandboxes it created, used to resolve bare IDs and names: `<data_dir>/index.json`, an
// array of {provider, id, name, created_at}. Every change happens under an flock on `<data_dir>/index.lock`
// and is written by atomic rename, so readers (which take no lock) always see a complete file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sbox {

struct IndexEntry {
    std::string provider;
    std::string id;
    std::string name;            // empty: none
    std::int64_t created_at = 0; // unix seconds

    std::string ref() const { return provider + "/" + id; }
    bool operator==(const IndexEntry&) const = default;
};

class Index {
  public:
    // The index in `dir` (normally sbox::data_dir()); nothing is touched until it is used.
    explicit Index(std::filesystem::path dir);

    const std::filesystem::path& file() const { return file_; }

    // All entries, in the order they were added. A missing file is an empty index; an unreadable or corrupt
    // one is Error(internal) naming the file.
    std::vector<IndexEntry> entries() const;

    // Adds an entry, replacing one with the same provider and id. Creates the directory (mode 0700) if
    // needed.
    void add(const IndexEntry& entry);

    // Removes the entry; false when there was none (and then the file is not rewritten).
    bool remove(std::string_view provider, std::string_view id);

    // Removes every entry of `provider` for which keep(id) is false; returns how many were removed.
    template <class Keep>
    std::size_t prune(std::string_view provider, Keep keep) {
        std::size_t removed = 0;
        modify([&](std::vector<IndexEntry>& v) {
            auto before = v.size();
            std::erase_if(v, [&](const IndexEntry& e) { return e.provider == provider && !keep(e.id); });
            removed = before - v.size();
            return removed != 0;
        });
        return removed;
    }

    // The entry `token` names: an exact id, else an exact name, else a unique id prefix of at least 4
    // characters. Only entries of `provider` are considered when it is not empty. nullopt when nothing
    // matches; two or more matches at the first level that matches are Error(conflict) listing the
    // candidates.
    std::optional<IndexEntry> find(std::string_view token, std::string_view provider = {}) const;

  private:
    template <class F>
    void modify(F&& change);
    void modify_impl(const std::function<bool(std::vector<IndexEntry>&)>& change);

    std::filesystem::path dir_;
    std::filesystem::path file_;
};

template <class F>
void Index::modify(F&& change) {
    modify_impl(std::function<bool(std::vector<IndexEntry>&)>(std::forward<F>(change)));
}

} // namespace sbox

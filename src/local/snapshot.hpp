// Snapshots of local sandboxes: a sandbox's writable layer (what it changed in its root filesystem) plus its
// settings, stored content-addressed under <data>/snapshots/<id>/ (snapshot.json and layer/), written to a
// temporary name and renamed, never changed afterwards. A sandbox created from a snapshot stacks its layer
// (and the layers of the snapshot's parents) read-only below its own upper layer.
//
// Ownership inside a layer is stored relative to the sandbox: as root on the host, uid N inside is kept as
// kStoreIdBase + N on disk (an unprivileged range no sandbox uses) and shown to each sandbox through an
// idmapped mount; rootless, it is kept as the user's own mapping keeps it. Export writes the ids as the
// sandbox saw them, so a snapshot restores into any uid range, on another machine too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "local/idmap.hpp"

namespace sbox::local {

struct SnapshotRecord {
    std::string id;            // sha256 (hex) of the layer's entries in canonical form (archive.hpp)
    std::string name;          // empty: none
    std::uint64_t size = 0;    // bytes of file data in this snapshot's own layer
    std::uint64_t entries = 0; // files, directories, links and whiteouts in it
    std::int64_t created_at = 0;
    std::string source;           // the id of the sandbox it was taken from
    std::string parent;           // the snapshot that sandbox was created from; empty for none
    std::string image;            // the base below every layer: empty = the host's system
    std::vector<std::string> env; // K=V defaults of the sandbox
};

// On-disk ids of a snapshot layer stored by root: uid N inside the sandbox is kStoreIdBase + N.
constexpr unsigned kStoreIdBase = kSlotBase - kRangeSize;

struct Paths;
// <data>/snapshots/<id>/layer: the directory a sandbox created from the snapshot stacks.
std::string snapshot_layer_dir(const Paths& paths, const std::string& id);

} // namespace sbox::local

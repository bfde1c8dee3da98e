// The canonical tree digest and entry name rules (common.hpp).
#include "local/archive/common.hpp"

namespace sbox::local::archive_impl {

namespace {
// Leads the hashed bytes, so a future change of the serialisation cannot collide with this one.
constexpr std::string_view kDigestTag = "sbox-tree-digest-v1\n";
} // namespace

TreeDigest::TreeDigest() {
    sha256_init(&ctx_);
    sha256_update(&ctx_, kDigestTag.size(), reinterpret_cast<const std::uint8_t*>(kDigestTag.data()));
}

// Every number as 8 bytes little-endian, every string prefixed with its length: no two different entry
// sequences serialise to the same bytes.
void TreeDigest::number(std::uint64_t n) {
    std::uint8_t bytes[8];
    for (auto& b : bytes) {
        b = static_cast<std::uint8_t>(n & 0xff);
        n >>= 8;
    }
    sha256_update(&ctx_, sizeof bytes, bytes);
}

void TreeDigest::string(std::string_view s) {
    number(s.size());
    sha256_update(&ctx_, s.size(), reinterpret_cast<const std::uint8_t*>(s.data()));
}

void TreeDigest::entry(const CanonicalEntry& e) {
    string(e.name);
    std::uint8_t type = static_cast<std::uint8_t>(e.type);
    sha256_update(&ctx_, 1, &type);
    number(e.perm & 07777);
    number(static_cast<std::uint64_t>(e.uid));
    number(static_cast<std::uint64_t>(e.gid));
    number(static_cast<std::uint64_t>(e.mtime));
    number(e.mtime_nsec);
    number(e.rdev_major);
    number(e.rdev_minor);
    string(e.target);
    number(e.size);
}

void TreeDigest::data(const void* bytes, std::size_t size) {
    sha256_update(&ctx_, size, static_cast<const std::uint8_t*>(bytes));
}

std::string TreeDigest::hex() {
    std::uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx_, sizeof digest, digest);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * sizeof digest);
    for (std::uint8_t b : digest) {
        out += kHex[b >> 4];
        out += kHex[b & 0xf];
    }
    return out;
}

std::string normalize_name(std::string_view raw, std::string_view what) {
    auto refuse = [&](const char* why) {
        throw Error(Error::Kind::invalid,
                    "refusing " + std::string(what) + " '" + std::string(raw) + "': " + why);
    };
    if (raw.empty()) refuse("the name is empty");
    if (raw.front() == '/') refuse("the name is absolute");
    std::string out;
    std::string_view rest = raw;
    while (!rest.empty()) {
        auto slash = rest.find('/');
        std::string_view part = rest.substr(0, slash);
        rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
        if (part.empty() || part == ".") continue;
        if (part == "..") refuse("the name has a '..' component");
        if (!out.empty()) out += '/';
        out += part;
    }
    return out;
}

void check_component(std::string_view name, std::string_view what) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos)
        throw Error(Error::Kind::invalid, std::string(what) + " '" + std::string(name) +
                                              "' must be a single name (no '/', '.' or '..')");
}

} // namespace sbox::local::archive_impl

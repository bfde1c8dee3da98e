// The canonical tree digest and entry name rules (common.hpp).
#include "local/archive/common.hpp"

#include <algorithm>
#include <cstring>

namespace sbox::local::archive_impl {

namespace {
// Leads the hashed bytes, so a future change of the serialisation cannot collide with this one.
constexpr std::string_view kDigestTag = "sbox-tree-digest-v1\n";
} // namespace

TreeDigest::TreeDigest() {
    sha256_init(&ctx_);
    buffers_[0].resize(kBuffer);
    feed(kDigestTag.data(), kDigestTag.size());
}

TreeDigest::~TreeDigest() {
    stop();
}

// Every number as 8 bytes little-endian, every string prefixed with its length: no two different entry
// sequences serialise to the same bytes.
void TreeDigest::number(std::uint64_t n) {
    std::uint8_t bytes[8];
    for (auto& b : bytes) {
        b = static_cast<std::uint8_t>(n & 0xff);
        n >>= 8;
    }
    feed(bytes, sizeof bytes);
}

void TreeDigest::string(std::string_view s) {
    number(s.size());
    feed(s.data(), s.size());
}

void TreeDigest::entry(const CanonicalEntry& e) {
    string(e.name);
    std::uint8_t type = static_cast<std::uint8_t>(e.type);
    feed(&type, 1);
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
    feed(bytes, size);
}

void TreeDigest::feed(const void* bytes, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(bytes);
    while (size > 0) {
        std::size_t n = std::min(size, kBuffer - fill_);
        std::memcpy(buffers_[head_].data() + fill_, p, n);
        fill_ += n;
        p += n;
        size -= n;
        if (fill_ == kBuffer) submit();
    }
}

void TreeDigest::submit() {
    if (!started_) {
        // The first full buffer: from here on a thread hashes while the caller goes on. Without one (no
        // thread to be had), everything is hashed here.
        started_ = ::pthread_create(&thread_, nullptr, &TreeDigest::run, this) == 0;
        if (!started_) {
            sha256_update(&ctx_, fill_, buffers_[head_].data());
            fill_ = 0;
            return;
        }
    }
    ::pthread_mutex_lock(&mutex_);
    ++queued_;
    head_ = (head_ + 1) % kDepth;
    ::pthread_cond_broadcast(&changed_);
    while (queued_ == kDepth) // every buffer is waiting to be hashed: the next one to fill included
        ::pthread_cond_wait(&changed_, &mutex_);
    ::pthread_mutex_unlock(&mutex_);
    if (buffers_[head_].size() != kBuffer) buffers_[head_].resize(kBuffer);
    fill_ = 0;
}

void* TreeDigest::run(void* self) {
    auto* d = static_cast<TreeDigest*>(self);
    ::pthread_mutex_lock(&d->mutex_);
    for (;;) {
        while (d->queued_ == 0 && !d->stopping_)
            ::pthread_cond_wait(&d->changed_, &d->mutex_);
        if (d->queued_ == 0) break; // stopping, and all hashed
        std::vector<std::uint8_t>& buffer = d->buffers_[d->tail_];
        ::pthread_mutex_unlock(&d->mutex_);
        sha256_update(&d->ctx_, kBuffer, buffer.data()); // only full buffers are queued
        ::pthread_mutex_lock(&d->mutex_);
        d->tail_ = (d->tail_ + 1) % kDepth;
        --d->queued_;
        ::pthread_cond_broadcast(&d->changed_);
    }
    ::pthread_mutex_unlock(&d->mutex_);
    return nullptr;
}

void TreeDigest::stop() {
    if (!started_) return;
    ::pthread_mutex_lock(&mutex_);
    stopping_ = true;
    ::pthread_cond_broadcast(&changed_);
    ::pthread_mutex_unlock(&mutex_);
    ::pthread_join(thread_, nullptr);
    started_ = false;
}

std::string TreeDigest::hex() {
    stop(); // the full buffers first, in order
    sha256_update(&ctx_, fill_, buffers_[head_].data());
    fill_ = 0;
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

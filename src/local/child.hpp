// Work done in a forked child whose outcome comes back to the parent: the child's result text, or its failure
// rethrown in the parent as the same Error (kind and message). cp and snapshots use it for the halves of a
// tar stream that must run under other credentials or namespaces than the caller's, and so that a stream's
// producer and consumer run side by side.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "local/idmap.hpp"
#include "local/system.hpp"

namespace sbox::local {

class Child {
  public:
    // Forks and runs `body` in the child, which then exits. The child closes every descriptor except 0, 1, 2
    // and `keep` (the descriptors `body` uses), so that it holds no other end of the caller's pipes.
    // With `userns`, `body` runs as root in a fresh user namespace with that mapping (only the ids it maps
    // exist there: files it creates get their host ids through it, and stat shows ids as it maps them).
    Child(const std::function<std::string()>& body, std::vector<int> keep, const IdMap* userns = nullptr);
    Child(Child&& other) noexcept;
    Child& operator=(Child&&) = delete;
    // A child not waited for is killed and reaped.
    ~Child();

    pid_t pid() const { return pid_; }
    // Waits for the child; returns what `body` returned, or throws what it threw (an Error's kind and
    // message; anything else as internal). A child killed by a signal is Error(internal) naming it.
    std::string wait();

  private:
    pid_t pid_ = -1;
    Fd report_;
};

} // namespace sbox::local

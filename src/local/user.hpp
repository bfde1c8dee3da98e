// Resolving `exec -u USER` against the sandbox's own /etc/passwd and /etc/group (never the host's, and
// never through NSS, whose modules must not be loaded inside a sandbox).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sbox::local {

struct User {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups; // supplementary
    std::string name;          // empty when given by number and absent from passwd
    std::string home = "/";
};

// USER is empty (root), NAME, UID, NAME:GROUP or UID:GID, as docker's --user. `passwd` and `group` are the
// files' contents. Throws std::invalid_argument with a message naming what was not found.
User resolve_user(std::string_view spec, const std::string& passwd, const std::string& group);

// The login shell `passwd` gives `uid` (its seventh field), or "" when it has none.
std::string passwd_shell(const std::string& passwd, uid_t uid);

} // namespace sbox::local

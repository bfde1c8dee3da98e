#include "local/user.hpp"

#include <charconv>
#include <sstream>
#include <stdexcept>

namespace sbox::local {

namespace {

std::vector<std::string> split(const std::string& line, char sep) {
    std::vector<std::string> out;
    std::string field;
    std::istringstream in(line);
    while (std::getline(in, field, sep))
        out.push_back(field);
    if (!line.empty() && line.back() == sep) out.emplace_back();
    return out;
}

std::optional<unsigned> number(std::string_view s) {
    unsigned v = 0;
    if (s.empty()) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

template <typename Fn>
void for_each_entry(const std::string& file, size_t min_fields, Fn&& fn) {
    std::istringstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto f = split(line, ':');
        if (f.size() >= min_fields && fn(f)) return;
    }
}

} // namespace

User resolve_user(std::string_view spec, const std::string& passwd, const std::string& group) {
    User user;
    if (spec.empty()) spec = "0";
    std::string_view user_part = spec, group_part;
    if (auto colon = spec.find(':'); colon != std::string_view::npos) {
        user_part = spec.substr(0, colon);
        group_part = spec.substr(colon + 1);
        if (user_part.empty() || group_part.empty())
            throw std::invalid_argument("invalid user '" + std::string(spec) +
                                        "' (use NAME, UID, NAME:GROUP or UID:GID)");
    }
    bool found = false;
    auto numeric = number(user_part);
    for_each_entry(passwd, 7, [&](const std::vector<std::string>& f) {
        if (numeric ? number(f[2]) != numeric : f[0] != user_part) return false;
        auto uid = number(f[2]), gid = number(f[3]);
        if (!uid || !gid) return false;
        user.uid = *uid;
        user.gid = *gid;
        user.name = f[0];
        user.home = f[5].empty() ? "/" : f[5];
        found = true;
        return true;
    });
    if (!found) {
        if (!numeric)
            throw std::invalid_argument("no user '" + std::string(user_part) +
                                        "' in the sandbox's /etc/passwd");
        user.uid = *numeric;
        user.gid = 0; // as docker: a uid unknown to passwd runs with group 0
    }
    if (!group_part.empty()) {
        auto gnum = number(group_part);
        bool gfound = false;
        for_each_entry(group, 3, [&](const std::vector<std::string>& f) {
            if (gnum ? number(f[2]) != gnum : f[0] != group_part) return false;
            if (auto gid = number(f[2])) {
                user.gid = *gid;
                gfound = true;
            }
            return gfound;
        });
        if (!gfound) {
            if (!gnum)
                throw std::invalid_argument("no group '" + std::string(group_part) +
                                            "' in the sandbox's /etc/group");
            user.gid = *gnum;
        }
    }
    // Supplementary groups: every group listing the user by name (as initgroups does).
    user.groups.push_back(user.gid);
    if (!user.name.empty()) {
        for_each_entry(group, 4, [&](const std::vector<std::string>& f) {
            for (const auto& member : split(f[3], ','))
                if (member == user.name)
                    if (auto gid = number(f[2]); gid && *gid != user.gid) user.groups.push_back(*gid);
            return false;
        });
    }
    return user;
}

std::string passwd_shell(const std::string& passwd, uid_t uid) {
    std::string shell;
    for_each_entry(passwd, 7, [&](const std::vector<std::string>& f) {
        if (number(f[2]) != uid) return false;
        shell = f[6];
        return true;
    });
    return shell;
}

} // namespace sbox::local

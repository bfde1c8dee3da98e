// cp for E2B: tar streams in and out of a sandbox, docker cp's way (see providers/copy.cpp for the logic both
// providers share). envd's file API moves single files, so the tar stream itself travels as one file
// (POST /files, streamed) and tar inside the sandbox unpacks it; downloads are tar's output read from a
// command's stdout. Paths are as in docker cp: a relative path is taken from the sandbox's root.
#include <cerrno>
#include <cstring>

#include "providers/e2b/e2b.hpp"
#include "providers/http/errors.hpp"
#include "providers/http/streams.hpp"

namespace sbox::e2b {

namespace {

constexpr const char* kProvider = "e2b";

std::string absolute(const std::string& path) {
    if (path.empty()) return "/";
    return path.front() == '/' ? path : "/" + path;
}

// `sh -c SCRIPT sh ARGS...`: arguments reach the script as "$1"..., never spliced into its text.
std::vector<std::string> shell(const char* script, std::initializer_list<std::string> args) {
    std::vector<std::string> argv = {"/bin/sh", "-c", script, "sh"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

std::string first_line(const std::string& text) {
    std::string line = text.substr(0, text.find('\n'));
    if (line.rfind("sh: ", 0) == 0) line = line.substr(4);
    return line;
}

void check_helper(const Captured& c, const std::string& what) {
    if (c.status == 0) return;
    std::string why = first_line(c.err);
    if (c.status == 127)
        throw Error(ErrorKind::unsupported,
                    what + ": the sandbox lacks a tool cp needs (tar, stat, cp): " + why, kProvider);
    ErrorKind kind = ErrorKind::invalid;
    if (why.find("No such file") != std::string::npos || c.status == 3) kind = ErrorKind::not_found;
    if (why.find("cannot overwrite") != std::string::npos ||
        why.find("Not a directory") != std::string::npos || why.find("Is a directory") != std::string::npos)
        kind = ErrorKind::conflict;
    if (why.find("No space left") != std::string::npos) kind = ErrorKind::unavailable;
    if (why.find("Permission denied") != std::string::npos) kind = ErrorKind::auth;
    throw Error(kind, what + ": " + (why.empty() ? "failed with status " + std::to_string(c.status) : why),
                kProvider);
}

// Prints "TYPE|SIZE|MODE" (stat's %F, %s, %a) and, for a symlink, its target on the next line; "missing" when
// there is nothing.
constexpr const char* kStatScript = R"SH(p=$1
if [ "$2" = 1 ]; then s=$(stat -L -c '%F|%s|%a' -- "$p" 2>/dev/null) || { echo missing; exit 0; }
else s=$(stat -c '%F|%s|%a' -- "$p" 2>/dev/null) || { echo missing; exit 0; }; fi
printf '%s\n' "$s"
if [ "$2" != 1 ] && [ -L "$p" ]; then readlink -- "$p"; fi
)SH";

// Unpacks the uploaded stream ($1) into the directory $2 through a staging directory beside the destination
// (nothing half-written lands in place if tar fails), then merges it in as docker cp does: directories merge,
// files are replaced, a directory never replaces a non-directory. $3/$4: rename the top-level entry.
constexpr const char* kUnpackScript = R"SH(tarball=$1 dest=$2 from=$3 to=$4 stage=
trap 'rm -f -- "$tarball"; [ -n "$stage" ] && rm -rf -- "$stage"' EXIT
[ -d "$dest" ] || { echo "$dest: No such file or directory (not a directory)" >&2; exit 3; }
stage=$(mktemp -d "$dest/.sbox-cp-XXXXXX") || exit 1
tar -x -p -f "$tarball" -C "$stage" || exit 1
if [ -n "$from" ]; then cp -a -T -- "$stage/$from" "$dest/$to" || exit 1
else cp -a -- "$stage/." "$dest/" || exit 1; fi
)SH";

// Writes a tar stream of one entry to stdout. $1: contents|entry, $2: the directory, $3: the entry in it,
// $4: its name in the stream ("" keeps it; for contents: "" puts them at the top level), $5: 1 to follow $3
// when it is a symlink.
constexpr const char* kPackScript = R"SH(cd -- "$2" || exit 3
x=$(printf '\001')
if [ "$1" = contents ]; then
  if [ -z "$4" ]; then exec tar -c -f - --numeric-owner .; fi
  rep=$(printf '%s' "$4" | sed 's/[\&]/\\&/g')
  exec tar -c -f - --numeric-owner --transform "s${x}^\.${x}${rep}${x}S" .
fi
leaf=$3
if [ "$5" = 1 ] && [ -L "$leaf" ]; then
  t=$(readlink -f -- "$leaf") || exit 3
  cd -- "$(dirname -- "$t")" || exit 3; leaf=$(basename -- "$t")
fi
[ -e "$leaf" ] || [ -L "$leaf" ] || { echo "$3: No such file or directory" >&2; exit 3; }
name=${4:-$3}
if [ "$name" = "$leaf" ]; then exec tar -c -f - --numeric-owner -- "$leaf"; fi
pat=$(printf '%s' "$leaf" | sed 's/[][\.*^$]/\\&/g')
rep=$(printf '%s' "$name" | sed 's/[\&]/\\&/g')
exec tar -c -f - --numeric-owner --transform "s${x}^${pat}\(/\|\$\)${x}${rep}\1${x}S" -- "$leaf"
)SH";

} // namespace

PathInfo Provider::stat_path(std::string_view id, const std::string& path, bool follow_link) {
    Envd e = envd(id);
    std::string p = absolute(path);
    Captured c = run_captured(*this, e, shell(kStatScript, {p, follow_link ? "1" : "0"}), "root");
    check_helper(c, "stat " + p);
    PathInfo info;
    std::string line = c.out.substr(0, c.out.find('\n'));
    if (line == "missing") return info;
    auto bar1 = line.find('|'), bar2 = line.rfind('|');
    if (bar1 == std::string::npos || bar2 == bar1)
        throw Error(ErrorKind::internal, "stat " + p + ": unexpected output '" + line + "'", kProvider);
    std::string type = line.substr(0, bar1);
    if (type == "regular file" || type == "regular empty file")
        info.type = PathInfo::Type::file;
    else if (type == "directory")
        info.type = PathInfo::Type::directory;
    else if (type == "symbolic link")
        info.type = PathInfo::Type::symlink;
    else
        info.type = PathInfo::Type::other;
    try {
        info.size = std::stoull(line.substr(bar1 + 1, bar2 - bar1 - 1));
        info.mode = static_cast<unsigned>(std::stoul(line.substr(bar2 + 1), nullptr, 8));
    } catch (const std::exception&) {
        throw Error(ErrorKind::internal, "stat " + p + ": unexpected output '" + line + "'", kProvider);
    }
    if (info.type == PathInfo::Type::symlink) {
        auto nl = c.out.find('\n');
        std::string target = nl == std::string::npos ? "" : c.out.substr(nl + 1);
        if (!target.empty() && target.back() == '\n') target.pop_back();
        info.link_target = target;
    }
    return info;
}

void Provider::upload(std::string_view id, const UploadSpec& spec, int tar_fd) {
    Envd e = envd(id);
    const std::string user = spec.user.empty() ? "root" : spec.user;
    const std::string tarball = "/tmp/.sbox-upload-" + random_token(16) + ".tar";

    // The stream goes up as it is produced: no size known, so chunked.
    http::Request req;
    req.method = "POST";
    req.url = e.base + "/files?path=" + http::url_encode(tarball) + "&username=" + http::url_encode(user);
    req.headers = e.headers;
    req.headers.emplace_back("Authorization", basic_user(user));
    req.retry = http::Retry::never;
    req.timeout = std::chrono::milliseconds::max();
    http::MultipartFile file;
    file.filename = tarball.substr(tarball.rfind('/') + 1);
    file.fd = tar_fd;
    http::set_multipart_body(req, file);
    http::Response r = client().send(req);
    if (!r.ok()) {
        // Whatever arrived is removed; the error is the upload's.
        try {
            run_captured(*this, e, {"rm", "-f", "--", tarball}, user);
        } catch (const std::exception&) {
        }
        if (r.status == 507)
            throw Error(ErrorKind::unavailable, "copy into the sandbox: no space left in the sandbox",
                        kProvider);
        http::check(r, "copy into the sandbox", kProvider);
    }
    Captured c = run_captured(
        *this, e, shell(kUnpackScript, {tarball, absolute(spec.dir), spec.rename_from, spec.rename_to}),
        user);
    check_helper(c, "copy into " + absolute(spec.dir));
}

void Provider::download(std::string_view id, const DownloadSpec& spec, int tar_fd) {
    Envd e = envd(id);
    std::string p = absolute(spec.path);
    // docker cp's forms: DIR/. (or /) means the directory's contents; anything else one entry.
    bool contents = p == "/" || p.ends_with("/.");
    std::string dir, leaf;
    if (contents) {
        dir = p == "/" ? "/" : p.substr(0, p.size() - 2);
        if (dir.empty()) dir = "/";
    } else {
        std::string q = p;
        while (q.size() > 1 && q.back() == '/')
            q.pop_back();
        auto slash = q.rfind('/');
        dir = slash == 0 ? "/" : q.substr(0, slash);
        leaf = q.substr(slash + 1);
    }
    bool follow = spec.follow_link || (!contents && spec.path.size() > 1 && spec.path.back() == '/');
    Captured c = run_captured(*this, e,
                              shell(kPackScript, {contents ? "contents" : "entry", dir, leaf,
                                                  spec.archive_name, follow ? "1" : "0"}),
                              "root", tar_fd);
    check_helper(c, "copy " + p + " out of the sandbox");
}

} // namespace sbox::e2b

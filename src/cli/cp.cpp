// sbox cp [-u USER] [-L] SRC DEST
// Copies files and directory trees between the host and a sandbox; exactly one side is REF:PATH, and "-" is
// a tar stream on stdin (as SRC) or stdout (as DEST). docker cp's rules: see providers/copy.hpp.
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "providers/copy.hpp"
#include "providers/reference.hpp"

namespace sbox::cli {

namespace {

struct CpOptions {
    std::string src, dest;
    std::string user;
    bool follow_link = false;
};

int run_cp(const CpOptions& opt, Context& ctx) {
    auto names = ctx.registry.names();
    auto src = usage_value([&] { return parse_ref_path(opt.src, names); });
    auto dest = usage_value([&] { return parse_ref_path(opt.dest, names); });
    if (src && dest)
        throw Error(ErrorKind::usage,
                    "copying between two sandboxes is not supported: one side of cp must be a "
                    "host path (copy through the host, or use a tar stream: sbox cp REF:PATH - "
                    "| sbox cp - REF2:DIR)");
    if (!src && !dest)
        throw Error(ErrorKind::usage,
                    "one side of cp must be REF:PATH (a sandbox and a path in it), for example "
                    "sbox cp ./file local/3f9a1c2b7d4e:/tmp/");
    if (opt.src == "-" && opt.dest == "-") throw Error(ErrorKind::usage, "only one side of cp may be -");
    CopyRequest request;
    request.to_sandbox = dest.has_value();
    const RefPath& remote = request.to_sandbox ? *dest : *src;
    request.host_path = request.to_sandbox ? opt.src : opt.dest;
    request.sandbox_path = remote.path;
    request.user = opt.user;
    request.follow_link = opt.follow_link;
    if (!request.to_sandbox && !opt.user.empty())
        throw Error(ErrorKind::usage,
                    "-u applies to files copied into a sandbox; files copied out belong to you");
    Target target = resolve(ctx, remote.ref.str());
    require(*target.provider, Capability::copy, "cp");
    // Not on_target: a missing path is not_found too, and must not be taken for a missing sandbox.
    with_provider(target.provider_name, [&] { copy(*target.provider, target.id, request); });
    return exit_success;
}

} // namespace

CLI::App* setup_cp(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<CpOptions>();
    CLI::App* sub = app.add_subcommand("cp", "Copy files and directories between the host and a sandbox");
    sub->fallthrough();
    sub->add_option("-u,--user", opt->user,
                    "Owner of the files created in the sandbox: NAME, UID or UID:GID (default: root inside)");
    sub->add_flag("-L,--follow-link", opt->follow_link, "Copy what SRC points to when it is a symlink");
    sub->add_option("SRC", opt->src, "A host path, REF:PATH, or - for a tar stream on stdin")->required();
    sub->add_option("DEST", opt->dest, "A host path, REF:PATH, or - for a tar stream on stdout")->required();
    sub->footer("Exactly one of SRC and DEST is REF:PATH. Examples:\n"
                "  sbox cp ./data REF:/work/          copy a directory into the sandbox\n"
                "  sbox cp REF:/work/out.txt .        copy a file out\n"
                "  sbox cp ./src/. REF:/app           copy a directory's contents\n"
                "  tar -c . | sbox cp - REF:/app      a tar stream in; sbox cp REF:/app - | tar -t");
    sub->callback([opt, &ctx] { ctx.exit_code = run_cp(*opt, ctx); });
    return sub;
}

} // namespace sbox::cli

// sbox snapshot create REF [--name N] | ls | rm SNAP... | export SNAP FILE | import FILE
// A snapshot saves a sandbox's changes to its root filesystem and its settings; `sbox create --snapshot SNAP`
// starts new sandboxes from it. SNAP is an id, a unique id prefix or a name. FILE "-" is stdout (export) or
// stdin (import).
#include <fcntl.h>
#include <unistd.h>

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "cli/output.hpp"
#include "cli/output_file.hpp"

namespace sbox::cli {

namespace {

struct SnapshotOptions {
    std::string ref;
    std::string name;
    std::vector<std::string> snaps;
    std::string file;
};

// The chosen provider (-p), which must support snapshots (and, for export/import, snapshot files).
Provider& snapshot_provider(Context& ctx, std::string& name, bool files) {
    name = ctx.provider_name();
    Provider& provider = ctx.usable_provider(name);
    require(provider, Capability::snapshots, "snapshot");
    if (files) require(provider, Capability::snapshot_files, "snapshot export and import");
    return provider;
}

SnapshotInfo find(Provider& provider, const std::string& provider_name, const std::string& ref) {
    auto found = with_provider(provider_name, [&] { return provider.get_snapshot(ref); });
    if (!found)
        throw Error(ErrorKind::not_found, "no snapshot '" + ref + "' (see sbox snapshot ls)", provider_name);
    return *found;
}

int run_create(const SnapshotOptions& opt, Context& ctx) {
    Target target = resolve(ctx, opt.ref);
    require(*target.provider, Capability::snapshots, "snapshot");
    SnapshotInfo info =
        on_target(ctx, target, [&] { return target.provider->create_snapshot(target.id, opt.name); });
    if (ctx.global.json)
        std::cout << snapshot_json(info).dump(2) << '\n';
    else
        std::cout << info.id << '\n';
    return exit_success;
}

int run_ls(Context& ctx) {
    std::string name;
    Provider& provider = snapshot_provider(ctx, name, false);
    auto all = with_provider(name, [&] { return provider.list_snapshots(); });
    for (auto& s : all)
        if (s.provider.empty()) s.provider = name;
    if (ctx.global.json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& s : all)
            out.push_back(snapshot_json(s));
        std::cout << out.dump(2) << '\n';
    } else if (ctx.global.quiet) {
        for (const auto& s : all)
            std::cout << s.id << '\n';
    } else {
        std::cout << render_snapshot_table(all, now_seconds());
    }
    return exit_success;
}

int run_rm(const SnapshotOptions& opt, Context& ctx) {
    std::string name;
    Provider& provider = snapshot_provider(ctx, name, false);
    nlohmann::json removed = nlohmann::json::array();
    bool failed = false;
    for (const auto& ref : opt.snaps) {
        try {
            SnapshotInfo info = find(provider, name, ref);
            with_provider(name, [&] { provider.delete_snapshot(info.id); });
            if (ctx.global.json) {
                removed.push_back(info.id);
            } else {
                std::cout << info.id << '\n';
                std::cout.flush();
            }
        } catch (const Error& e) {
            report_error(ctx, e);
            failed = true;
        }
    }
    if (ctx.global.json) std::cout << removed.dump(2) << '\n';
    return failed ? exit_failure : exit_success;
}

int run_export(const SnapshotOptions& opt, Context& ctx) {
    std::string name;
    Provider& provider = snapshot_provider(ctx, name, true);
    SnapshotInfo info = find(provider, name, opt.ref);
    OutputFile out(opt.file); // FILE is whole or untouched
    with_provider(name, [&] { provider.export_snapshot(info.id, out.fd()); });
    out.commit();
    return exit_success;
}

int run_import(const SnapshotOptions& opt, Context& ctx) {
    std::string name;
    Provider& provider = snapshot_provider(ctx, name, true);
    int fd = 0;
    if (opt.file != "-") {
        fd = ::open(opt.file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd == -1)
            throw Error(errno == ENOENT ? ErrorKind::not_found : ErrorKind::invalid,
                        opt.file + ": " + std::strerror(errno));
    }
    SnapshotInfo info;
    try {
        info = with_provider(name, [&] { return provider.import_snapshot(fd); });
    } catch (...) {
        if (fd != 0) ::close(fd);
        throw;
    }
    if (fd != 0) ::close(fd);
    if (ctx.global.json)
        std::cout << snapshot_json(info).dump(2) << '\n';
    else
        std::cout << info.id << '\n';
    return exit_success;
}

} // namespace

CLI::App* setup_snapshot(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<SnapshotOptions>();
    CLI::App* sub =
        app.add_subcommand("snapshot", "Save sandboxes' changes and start new sandboxes from them");
    sub->fallthrough();
    sub->require_subcommand(1);

    CLI::App* create = sub->add_subcommand("create", "Snapshot a running sandbox; prints the snapshot's id");
    create->fallthrough();
    create->add_option("REF", opt->ref, "The sandbox")->required();
    create->add_option("--name", opt->name, "A name for the snapshot");
    create->callback([opt, &ctx] { ctx.exit_code = run_create(*opt, ctx); });

    CLI::App* ls = sub->add_subcommand("ls", "List snapshots (-q: ids only)");
    ls->fallthrough();
    ls->callback([&ctx] { ctx.exit_code = run_ls(ctx); });

    CLI::App* rm = sub->add_subcommand("rm", "Remove snapshots");
    rm->fallthrough();
    rm->add_option("SNAP", opt->snaps, "Snapshots: ids, id prefixes or names")->required();
    rm->callback([opt, &ctx] { ctx.exit_code = run_rm(*opt, ctx); });

    CLI::App* exp =
        sub->add_subcommand("export", "Write a snapshot (and the layers below it) to a .tar.zst file");
    exp->fallthrough();
    exp->add_option("SNAP", opt->ref, "The snapshot")->required();
    exp->add_option("FILE", opt->file, "The file to write, or - for stdout")->required();
    exp->callback([opt, &ctx] { ctx.exit_code = run_export(*opt, ctx); });

    CLI::App* imp = sub->add_subcommand("import", "Read a snapshot file made by export; prints its id");
    imp->fallthrough();
    imp->add_option("FILE", opt->file, "The file, or - for stdin")->required();
    imp->callback([opt, &ctx] { ctx.exit_code = run_import(*opt, ctx); });
    return sub;
}

} // namespace sbox::cli

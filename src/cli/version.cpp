// sbox version: "sbox X.Y.Z", or {"version":"X.Y.Z"} with --json.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"

#ifndef SBOX_VERSION
#define SBOX_VERSION "unknown"
#endif

namespace sbox::cli {

namespace {

struct VersionOptions {};

int run_version(const VersionOptions&, Context& ctx) {
    if (ctx.global.json)
        std::cout << nlohmann::json{{"version", SBOX_VERSION}}.dump() << '\n';
    else
        std::cout << "sbox " SBOX_VERSION "\n";
    return exit_success;
}

} // namespace

CLI::App* setup_version(CLI::App& app, Context& ctx) {
    auto opt = std::make_shared<VersionOptions>();
    CLI::App* sub = app.add_subcommand("version", "Print sbox's version");
    sub->fallthrough();
    sub->callback([opt, &ctx] { ctx.exit_code = run_version(*opt, ctx); });
    return sub;
}

} // namespace sbox::cli

// The subcommands, one file each (in the style of CLI11's subcom_in_files example): each file has its options
// struct and a setup function that registers the subcommand and its callback. The callback stores the exit
// code in ctx.exit_code; failures are thrown (sbox::Error) and mapped to exit codes by app.cpp.
#pragma once

#include "cli/context.hpp"

namespace CLI {
class App;
}

namespace sbox::cli {

CLI::App* setup_create(CLI::App& app, Context& ctx);
CLI::App* setup_run(CLI::App& app, Context& ctx);
CLI::App* setup_exec(CLI::App& app, Context& ctx);
CLI::App* setup_shell(CLI::App& app, Context& ctx);
CLI::App* setup_ls(CLI::App& app, Context& ctx);
CLI::App* setup_inspect(CLI::App& app, Context& ctx);
CLI::App* setup_kill(CLI::App& app, Context& ctx);
CLI::App* setup_cp(CLI::App& app, Context& ctx);
CLI::App* setup_snapshot(CLI::App& app, Context& ctx);
void setup_pause(CLI::App& app, Context& ctx);
CLI::App* setup_bench(CLI::App& app, Context& ctx);
CLI::App* setup_providers(CLI::App& app, Context& ctx);
CLI::App* setup_version(CLI::App& app, Context& ctx);

} // namespace sbox::cli

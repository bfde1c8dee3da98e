// Exit codes (design.md, "Output and exit codes"). exec and run return the command's own status, 126/127 when
// it could not be executed or found, and 125 when sbox itself failed; every other subcommand returns 0 on
// success, 1 on failure and 2 for a usage error. CLI11's own exit codes (100-127) never leak out.
#pragma once

#include <exception>
#include <string_view>

namespace sbox::cli {

inline constexpr int exit_success = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_sbox_failed = 125;

enum class CommandKind {
    management, // ls, create, kill, ...: 0 / 1 / 2
    command,    // exec, run: the command's status, 125 when sbox failed
};

// The exit code for an exception that ended the command: sbox::CommandError (126/127 for exec/run),
// sbox::Error, CLI::ParseError (0 for --help, else a usage error) or anything else.
int exit_code_for(const std::exception& error, CommandKind kind);

// The "kind" of an error in sbox's JSON error object: the sbox::Error's kind, "usage" for a CLI11 parse
// error, "internal" for anything else.
std::string_view error_kind(const std::exception& error);

} // namespace sbox::cli

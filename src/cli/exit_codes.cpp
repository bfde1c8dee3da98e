#include "cli/exit_codes.hpp"

#include <CLI/Error.hpp>

#include "providers/provider.hpp"

namespace sbox::cli {

int exit_code_for(const std::exception& error, CommandKind kind) {
    const bool command = kind == CommandKind::command;
    if (const auto* parse = dynamic_cast<const CLI::ParseError*>(&error)) {
        if (parse->get_exit_code() == 0) return exit_success; // --help
        return command ? exit_sbox_failed : exit_usage;
    }
    if (const auto* cmd = dynamic_cast<const CommandError*>(&error)) {
        if (command) return cmd->exit_status();
        return exit_failure;
    }
    if (const auto* e = dynamic_cast<const Error*>(&error)) {
        if (command) return exit_sbox_failed;
        return e->kind() == ErrorKind::usage ? exit_usage : exit_failure;
    }
    return command ? exit_sbox_failed : exit_failure;
}

std::string_view error_kind(const std::exception& error) {
    if (dynamic_cast<const CLI::ParseError*>(&error) != nullptr) return "usage";
    if (const auto* e = dynamic_cast<const Error*>(&error)) return to_string(e->kind());
    return "internal";
}

} // namespace sbox::cli

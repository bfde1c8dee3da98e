// Exit codes: the command's status for exec/run, 125 when sbox failed; 0/1/2 elsewhere; CLI11's never.
#include <doctest/doctest.h>

#include <CLI/CLI.hpp>

#include "cli/exit_codes.hpp"
#include "providers/provider.hpp"

using namespace sbox;
using namespace sbox::cli;

TEST_CASE("sbox errors") {
    Error not_found(ErrorKind::not_found, "no sandbox 'x'");
    Error usage(ErrorKind::usage, "bad flags");
    Error invalid(ErrorKind::invalid, "bad value");
    CommandError not_executable(126, "permission denied");
    CommandError missing(127, "command not found");
    std::runtime_error other("boom");

    CHECK(exit_code_for(not_found, CommandKind::management) == 1);
    CHECK(exit_code_for(invalid, CommandKind::management) == 1);
    CHECK(exit_code_for(usage, CommandKind::management) == 2);
    CHECK(exit_code_for(other, CommandKind::management) == 1);

    CHECK(exit_code_for(not_found, CommandKind::command) == 125);
    CHECK(exit_code_for(usage, CommandKind::command) == 125);
    CHECK(exit_code_for(other, CommandKind::command) == 125);
    CHECK(exit_code_for(not_executable, CommandKind::command) == 126);
    CHECK(exit_code_for(missing, CommandKind::command) == 127);

    CHECK(error_kind(not_found) == "not_found");
    CHECK(error_kind(missing) == "invalid");
    CHECK(error_kind(other) == "internal");
}

TEST_CASE("CLI11's parse errors map to 2 (or 125 for exec/run), --help to 0") {
    CLI::ExtrasError extras("sbox", std::vector<std::string>{"--bogus"});
    CLI::RequiredError required("a subcommand");
    CLI::ArgumentMismatch mismatch("-e", 1, 0);
    CLI::ConversionError conversion("x", "-n");
    CLI::ValidationError validation("--timeout", "bad");
    CLI::CallForHelp help;
    CLI::CallForAllHelp all_help;

    for (const CLI::ParseError* e :
         std::vector<const CLI::ParseError*>{&extras, &required, &mismatch, &conversion, &validation}) {
        CAPTURE(e->what());
        CHECK(e->get_exit_code() >= 100);                       // CLI11's own codes...
        CHECK(exit_code_for(*e, CommandKind::management) == 2); // ...never leak
        CHECK(exit_code_for(*e, CommandKind::command) == 125);
        CHECK(error_kind(*e) == "usage");
    }
    CHECK(exit_code_for(help, CommandKind::management) == 0);
    CHECK(exit_code_for(help, CommandKind::command) == 0);
    CHECK(exit_code_for(all_help, CommandKind::management) == 0);
}

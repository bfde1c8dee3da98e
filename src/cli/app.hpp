// The sbox command line.
#pragma once

#include <string>
#include <vector>

#include "providers/registry.hpp"

namespace sbox::cli {

// The program: the built-in providers, argv as given to main(). Returns the exit code; stdout is flushed.
int main(int argc, char** argv);

// The command line `args` (without the program name) against `registry`. Returns the exit code (see
// exit_codes.hpp); errors have been reported on stderr and stdout is flushed.
int run(std::vector<std::string> args, Registry& registry);

} // namespace sbox::cli

// sbox's diagnostics switch: `-v/--verbose` turns it on; providers then log what they do on stderr (remote
// providers: each HTTP request and response status, secrets redacted; local: the phases of a sandbox's
// start).
#pragma once

#include <string_view>

namespace sbox {

void set_verbose(bool on);
bool verbose();

// "sbox: PROVIDER: MESSAGE" on stderr, only when verbose.
void log(std::string_view provider, std::string_view message);

} // namespace sbox

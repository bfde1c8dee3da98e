// Phase timings of the engine on stderr (`sbox -v`): where a sandbox's start-up time goes.
#pragma once

namespace sbox::local {
void set_tracing(bool on);
bool tracing();
// "sbox: local: +1.234 ms <what>", measured from the first call in this process.
void trace(const char* what);
} // namespace sbox::local

// sbox: the executable. Everything is in sbox::cli (src/cli/app.cpp).
#include "cli/app.hpp"

// Read only by the sanitizer runtime of the asan preset: `exec` ends inside the sandbox's user namespace,
// where LeakSanitizer's ptrace-based check at exit cannot attach to its own threads and spins forever.
extern "C" const char* __lsan_default_options() {
    return "detect_leaks=0";
}

int main(int argc, char** argv) {
    return sbox::cli::main(argc, argv);
}

// sbox: the executable. Everything is in sbox::cli (src/cli/app.cpp).
#include "cli/app.hpp"

int main(int argc, char** argv) {
    return sbox::cli::main(argc, argv);
}

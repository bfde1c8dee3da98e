// The integration tests: they drive the built sbox binary (SBOX_BIN) as a user would.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

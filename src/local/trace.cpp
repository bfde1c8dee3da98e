#include "local/trace.hpp"

#include <cstdio>
#include <ctime>

namespace sbox::local {

namespace {
bool enabled = false;
struct timespec origin = {0, 0};
} // namespace

void set_tracing(bool on) {
    enabled = on;
    if (on && origin.tv_sec == 0) ::clock_gettime(CLOCK_MONOTONIC, &origin);
}

bool tracing() {
    return enabled;
}

void trace(const char* what) {
    if (!enabled) return;
    struct timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = static_cast<double>(now.tv_sec - origin.tv_sec) * 1e3 +
                static_cast<double>(now.tv_nsec - origin.tv_nsec) / 1e6;
    std::fprintf(stderr, "sbox: local: +%.3f ms %s\n", ms, what);
}

} // namespace sbox::local

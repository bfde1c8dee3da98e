#include "providers/log.hpp"

#include <atomic>
#include <cstdio>
#include <string>

namespace sbox {

namespace {
std::atomic<bool> verbose_on{false};
}

void set_verbose(bool on) {
    verbose_on.store(on, std::memory_order_relaxed);
}

bool verbose() {
    return verbose_on.load(std::memory_order_relaxed);
}

void log(std::string_view provider, std::string_view message) {
    if (!verbose()) return;
    std::string line = "sbox: ";
    if (!provider.empty()) line.append(provider).append(": ");
    line.append(message);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
}

} // namespace sbox

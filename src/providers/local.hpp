// The built-in `local` provider: adapts the namespace sandbox engine (src/local) to the Provider interface.
#pragma once

#include <memory>

#include "providers/provider.hpp"

namespace sbox {
std::unique_ptr<Provider> make_local_provider();
}

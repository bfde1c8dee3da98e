// placeholder replaced by the archive module implementation
#include "local/archive.hpp"
#include "providers/module.hpp"
extern "C" __attribute__((visibility("default"))) const sbox_module_info_v1* sbox_module_v1(void) {
    static const sbox_module_info_v1 info{"archive", SBOX_MODULE_ABI_VERSION, nullptr, nullptr};
    return &info;
}

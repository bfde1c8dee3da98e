// sbox's own modules (design.md, "Start-up cost"): remote providers and archive support are shared libraries
// loaded with dlopen on first use, so a local command never maps libcurl, libprotobuf or libarchive.
//
// A module is `libsbox-NAME.so`, found in this order:
//   1. each directory of $SBOX_MODULE_PATH (colon-separated);
//   2. <directory of the sbox executable>/<SBOX_MODULE_DIR_FROM_BIN> (an install: bin/../lib/sbox);
//   3. <directory of the sbox executable>/modules (the build tree).
// It exports the C function `sbox_module_v1`, returning a pointer to a static sbox_module_info_v1.
//
// A module is C++ code built from the same sources as the binary that loads it (it implements sbox::Provider,
// a C++ class); SBOX_MODULE_ABI_VERSION must be raised whenever provider.hpp changes in a way that breaks
// that.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "providers/provider.hpp"

#define SBOX_MODULE_ABI_VERSION 4u

namespace sbox {
class Config;
}

extern "C" {

struct sbox_module_info_v1 {
    const char* name;     // NAME of libsbox-NAME.so, e.g. "e2b"
    unsigned abi_version; // SBOX_MODULE_ABI_VERSION the module was built with
    // A new provider, owned by the caller (may throw sbox::Error). Null when the module offers none. `config`
    // (never null) holds the configuration file's settings and outlives the provider.
    sbox::Provider* (*make_provider)(const sbox::Config* config);
    // Another interface the module implements, by name (for example "archiver-v1", see
    // local/archive.hpp): a pointer to an object that lives as long as the process, or null. May be null.
    void* (*get_interface)(const char* name);
};

// The entry point every module exports:
//     extern "C" const sbox_module_info_v1* sbox_module_v1(void) { static const sbox_module_info_v1
//     info{...};
//                                                                   return &info; }
typedef const sbox_module_info_v1* (*sbox_module_v1_fn)(void);

} // extern "C"

namespace sbox {

struct LoadedModule {
    std::string name;
    std::string path; // the file that was loaded
    const sbox_module_info_v1* info =
        nullptr; // valid for the life of the process (modules are never unloaded)
};

// The directories searched for modules, in order (see above).
std::vector<std::string> module_search_dirs();

// Loads libsbox-NAME.so once per process and returns it. Failure is Error(unavailable) saying which file was
// missing (and where sbox looked) or what dlopen/dlsym reported, and what to do.
const LoadedModule& load_module(std::string_view name);

// load_module(name)'s interface `interface`. Error(unavailable) when the module has none.
void* module_interface(std::string_view name, const char* interface);

// load_module(name) and its provider, given the configuration. Error(unavailable) when the module has none.
std::unique_ptr<Provider> make_module_provider(std::string_view name, const Config& config);

} // namespace sbox

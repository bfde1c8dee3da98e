#include "providers/module.hpp"

#include <cerrno>
#include <dlfcn.h>
#include <map>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SBOX_MODULE_DIR_FROM_BIN
#define SBOX_MODULE_DIR_FROM_BIN "../lib/sbox"
#endif

namespace sbox {

namespace {

std::string exe_dir() {
    std::string buf(4096, '\0');
    ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size());
    if (n <= 0 || static_cast<std::size_t>(n) >= buf.size()) return {};
    buf.resize(static_cast<std::size_t>(n));
    auto slash = buf.rfind('/');
    if (slash == std::string::npos) return {};
    return slash == 0 ? "/" : buf.substr(0, slash);
}

bool valid_name(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
    return true;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : sep) + s;
    return out;
}

const char fix_hint[] =
    "reinstall sbox with its modules, or set SBOX_MODULE_PATH to the directory that holds it";

LoadedModule open_module(std::string_view name) {
    if (!valid_name(name)) throw Error(ErrorKind::invalid, "invalid module name '" + std::string(name) + "'");
    std::string file = "libsbox-" + std::string(name) + ".so";
    std::vector<std::string> dirs = module_search_dirs();
    std::string path;
    for (const auto& dir : dirs) {
        std::string candidate = dir + "/" + file;
        struct stat st {};
        if (::stat(candidate.c_str(), &st) == 0) {
            path = candidate;
            break;
        }
    }
    if (path.empty())
        throw Error(ErrorKind::unavailable,
                    "module " + file + " is not installed (looked in " +
                        (dirs.empty() ? std::string("no directory") : join(dirs, ", ")) + "); " + fix_hint);

    ::dlerror();
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* err = ::dlerror();
        throw Error(ErrorKind::unavailable,
                    "cannot load module " + path + ": " + (err != nullptr ? err : "unknown dlopen error") +
                        " (" + fix_hint + "; a module must come from the same build as sbox)");
    }
    // From here on the handle stays loaded for the life of the process, even on failure: unloading C++ code
    // that may have registered destructors or thrown exceptions is not worth the risk.
    ::dlerror();
    void* sym = ::dlsym(handle, "sbox_module_v1");
    if (sym == nullptr)
        throw Error(ErrorKind::unavailable,
                    path + " is not an sbox module: it has no sbox_module_v1 entry point (" + fix_hint + ")");
    auto entry = reinterpret_cast<sbox_module_v1_fn>(sym);
    const sbox_module_info_v1* info = entry();
    if (info == nullptr)
        throw Error(ErrorKind::unavailable,
                    "module " + path + " returned no module information (" + fix_hint + ")");
    if (info->abi_version != SBOX_MODULE_ABI_VERSION)
        throw Error(ErrorKind::unavailable, "module " + path + " was built for module ABI " +
                                                std::to_string(info->abi_version) + ", this sbox needs " +
                                                std::to_string(SBOX_MODULE_ABI_VERSION) +
                                                " (install the module from the same build as sbox)");
    if (info->name == nullptr || name != info->name)
        throw Error(ErrorKind::unavailable, "module " + path + " calls itself '" +
                                                (info->name != nullptr ? info->name : "") + "', not '" +
                                                std::string(name) + "' (" + fix_hint + ")");
    return LoadedModule{std::string(name), path, info};
}

} // namespace

std::vector<std::string> module_search_dirs() {
    std::vector<std::string> dirs;
    if (const char* env = std::getenv("SBOX_MODULE_PATH")) {
        std::string_view rest = env;
        while (true) {
            auto colon = rest.find(':');
            std::string_view dir = rest.substr(0, colon);
            if (!dir.empty()) dirs.emplace_back(dir);
            if (colon == std::string_view::npos) break;
            rest.remove_prefix(colon + 1);
        }
    }
    if (std::string exe = exe_dir(); !exe.empty()) {
        std::string base = exe == "/" ? "" : exe;
        dirs.push_back(base + "/" SBOX_MODULE_DIR_FROM_BIN);
        dirs.push_back(base + "/modules");
    }
    return dirs;
}

const LoadedModule& load_module(std::string_view name) {
    static std::mutex mutex;
    static std::map<std::string, LoadedModule, std::less<>> loaded; // never destroyed before exit: see above
    std::lock_guard lock(mutex);
    if (auto it = loaded.find(name); it != loaded.end()) return it->second;
    LoadedModule m = open_module(name);
    return loaded.emplace(m.name, std::move(m)).first->second;
}

void* module_interface(std::string_view name, const char* interface) {
    const LoadedModule& m = load_module(name);
    void* found = m.info->get_interface != nullptr ? m.info->get_interface(interface) : nullptr;
    if (found == nullptr)
        throw Error(ErrorKind::unavailable, "module " + m.path + " does not implement " + interface +
                                                " (install the module from the same build as sbox)");
    return found;
}

std::unique_ptr<Provider> make_module_provider(std::string_view name, const Config& config) {
    const LoadedModule& m = load_module(name);
    if (m.info->make_provider == nullptr)
        throw Error(ErrorKind::unavailable, "module " + m.path + " provides no sandbox provider",
                    std::string(name));
    std::unique_ptr<Provider> p(m.info->make_provider(&config));
    if (!p)
        throw Error(ErrorKind::internal, "module " + m.path + " could not create its provider",
                    std::string(name));
    return p;
}

} // namespace sbox

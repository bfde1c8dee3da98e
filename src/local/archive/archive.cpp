// libsbox-archive.so's entry point: the module information and the one Archiver it hands out.
#include <cstring>

#include "local/archive/common.hpp"
#include "providers/module.hpp"

namespace {

// Stateless: one instance serves every caller, from any thread.
class LibArchiver final : public sbox::local::Archiver {
  public:
    sbox::local::ArchiveStats write(const std::vector<sbox::local::ArchiveSource>& sources, int out_fd,
                                    const sbox::local::WriteOptions& options) override {
        return sbox::local::archive_impl::write_archive(sources, out_fd, options);
    }
    sbox::local::ArchiveStats extract(int in_fd, int dest_dir_fd,
                                      const sbox::local::ExtractOptions& options) override {
        return sbox::local::archive_impl::extract_archive(in_fd, dest_dir_fd, options);
    }
};

void* get_interface(const char* name) {
    if (name == nullptr || std::strcmp(name, sbox::local::kArchiverInterface) != 0) return nullptr;
    static LibArchiver archiver;
    // The caller converts the pointer back to Archiver*, so hand out exactly that base.
    return static_cast<sbox::local::Archiver*>(&archiver);
}

} // namespace

extern "C" __attribute__((visibility("default"))) const sbox_module_info_v1* sbox_module_v1(void) {
    static const sbox_module_info_v1 info{"archive", SBOX_MODULE_ABI_VERSION, nullptr, &get_interface};
    return &info;
}

// libsbox-testmodule.so: a module built only for the tests, so the module loader is proven on a real dlopen.
// Its provider keeps its sandboxes in memory; exec "runs" a command by returning the number of its arguments
// (or the status given by `exit N`), which is enough for the loader test to see the module's code at work.
//
// Like every sbox module it binds to the Provider base class (vtable, typeinfo, the default run()) and to the
// C++ runtime of the executable that loads it, which exports them (ENABLE_EXPORTS).
#include "providers/module.hpp"

namespace {

class MemoryProvider final : public sbox::Provider {
  public:
    std::string_view name() const override { return "testmodule"; }
    sbox::Capabilities capabilities() const override {
        return {sbox::Capability::exec, sbox::Capability::names, sbox::Capability::labels};
    }
    bool configured(std::string& why) const override {
        why.clear();
        return true;
    }

    sbox::SandboxInfo create(const sbox::CreateSpec& spec) override {
        sbox::SandboxInfo info;
        info.provider = "testmodule";
        info.id = "mem" + std::to_string(++counter_);
        info.name = spec.name;
        info.status = "running";
        info.image = spec.image.empty() ? "memory" : spec.image;
        info.created_at = 1700000000 + counter_;
        info.labels = spec.labels;
        sandboxes_.push_back(info);
        return info;
    }
    std::vector<sbox::SandboxInfo> list() override { return sandboxes_; }
    std::optional<sbox::SandboxInfo> get(std::string_view id_or_name) override {
        for (const auto& s : sandboxes_)
            if (s.id == id_or_name || (!s.name.empty() && s.name == id_or_name)) return s;
        return std::nullopt;
    }
    int exec(std::string_view id, const sbox::ExecSpec& spec) override {
        if (!get(id))
            throw sbox::Error(sbox::ErrorKind::not_found, "no sandbox " + std::string(id), "testmodule");
        if (spec.argv.empty()) throw sbox::CommandError(127, "empty command", "testmodule");
        if (spec.argv.size() == 2 && spec.argv[0] == "exit") return std::stoi(spec.argv[1]);
        return static_cast<int>(spec.argv.size());
    }
    void kill(std::string_view id) override {
        auto before = sandboxes_.size();
        std::erase_if(sandboxes_, [&](const sbox::SandboxInfo& s) { return s.id == id; });
        if (sandboxes_.size() == before)
            throw sbox::Error(sbox::ErrorKind::not_found, "no sandbox " + std::string(id), "testmodule");
    }

  private:
    int counter_ = 0;
    std::vector<sbox::SandboxInfo> sandboxes_;
};

sbox::Provider* make_provider(const sbox::Config*) {
    return new MemoryProvider();
}

} // namespace

extern "C" __attribute__((visibility("default"))) const sbox_module_info_v1* sbox_module_v1(void) {
    static const sbox_module_info_v1 info{"testmodule", SBOX_MODULE_ABI_VERSION, &make_provider, nullptr};
    return &info;
}

// Helpers shared by the unit tests: temporary directories, scoped environment variables, a fake provider and
// running the CLI with its stdout and stderr captured.
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "cli/app.hpp"
#include "providers/provider.hpp"
#include "providers/registry.hpp"

namespace sbox::test {

// The message of the sbox::Error(invalid) that `f` throws; fails the test when it throws nothing.
inline std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::invalid);
        return e.what();
    }
    FAIL("no error was thrown");
    return {};
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/sbox-unit-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    std::filesystem::path write(const std::string& name, const std::string& content) const {
        auto p = path / name;
        std::ofstream(p, std::ios::binary) << content;
        return p;
    }
};

inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// Sets (or, with nullopt, unsets) an environment variable for the scope.
class ScopedEnv {
  public:
    ScopedEnv(std::string name, std::optional<std::string> value) : name_(std::move(name)) {
        if (const char* old = std::getenv(name_.c_str())) old_ = old;
        if (value)
            ::setenv(name_.c_str(), value->c_str(), 1);
        else
            ::unsetenv(name_.c_str());
    }
    ~ScopedEnv() {
        if (old_)
            ::setenv(name_.c_str(), old_->c_str(), 1);
        else
            ::unsetenv(name_.c_str());
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

  private:
    std::string name_;
    std::optional<std::string> old_;
};

// A provider that keeps its sandboxes in memory and records what it was asked.
class FakeProvider : public Provider {
  public:
    explicit FakeProvider(std::string name = "fake") : name_(std::move(name)) {}

    std::string name_;
    Capabilities caps{Capability::exec,         Capability::exec_stdin, Capability::exec_detach,
                      Capability::exec_timeout, Capability::exec_user,  Capability::exec_cwd,
                      Capability::lifetime,     Capability::labels,     Capability::names,
                      Capability::image_dir};
    bool is_configured = true;
    std::string not_configured_why = "FAKE_TOKEN is not set";

    std::vector<SandboxInfo> boxes;
    std::vector<std::string> next_ids; // ids for the next creates; then "fake0001", ...
    int counter = 0;
    std::vector<std::string> calls; // "create ID", "exec ID", "kill ID"
    std::optional<CreateSpec> last_create;
    std::optional<ExecSpec> last_exec;
    std::function<int(std::string_view, const ExecSpec&)> on_exec; // default: returns exec_status
    int exec_status = 0;
    std::vector<std::string> kill_fails; // ids whose kill fails with Error(internal)

    std::string_view name() const override { return name_; }
    Capabilities capabilities() const override { return caps; }
    bool configured(std::string& why) const override {
        if (!is_configured) why = not_configured_why;
        return is_configured;
    }
    SandboxInfo create(const CreateSpec& spec) override {
        last_create = spec;
        SandboxInfo info;
        info.provider = name_;
        if (!next_ids.empty()) {
            info.id = next_ids.front();
            next_ids.erase(next_ids.begin());
        } else {
            char buf[16];
            std::snprintf(buf, sizeof buf, "fake%04d", ++counter);
            info.id = buf;
        }
        info.name = spec.name;
        info.status = "running";
        info.image = spec.image.empty() ? "default" : spec.image;
        info.created_at = 1700000000 + static_cast<std::int64_t>(boxes.size());
        info.labels = spec.labels;
        boxes.push_back(info);
        calls.push_back("create " + info.id);
        return info;
    }
    std::vector<SandboxInfo> list() override { return boxes; }
    std::optional<SandboxInfo> get(std::string_view id_or_name) override {
        for (const auto& b : boxes)
            if (b.id == id_or_name || (!b.name.empty() && b.name == id_or_name)) return b;
        return std::nullopt;
    }
    int exec(std::string_view id, const ExecSpec& spec) override {
        calls.push_back("exec " + std::string(id));
        last_exec = spec;
        if (!get(id)) throw Error(ErrorKind::not_found, "no such sandbox " + std::string(id));
        if (on_exec) return on_exec(id, spec);
        return exec_status;
    }
    void kill(std::string_view id) override {
        calls.push_back("kill " + std::string(id));
        for (const auto& f : kill_fails)
            if (f == id) throw Error(ErrorKind::internal, "the fake refuses to remove " + f);
        auto before = boxes.size();
        std::erase_if(boxes, [&](const SandboxInfo& b) { return b.id == id; });
        if (boxes.size() == before) throw Error(ErrorKind::not_found, "no such sandbox " + std::string(id));
    }
};

struct CliResult {
    int code = -1;
    std::string out;
    std::string err;
};

// Runs `sbox ARGS...` in this process with fds 1 and 2 redirected to files.
inline CliResult run_cli(Registry& registry, std::vector<std::string> args) {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    char out_tmpl[] = "/tmp/sbox-unit-out-XXXXXX";
    char err_tmpl[] = "/tmp/sbox-unit-err-XXXXXX";
    int out_fd = ::mkstemp(out_tmpl);
    int err_fd = ::mkstemp(err_tmpl);
    REQUIRE(out_fd >= 0);
    REQUIRE(err_fd >= 0);
    int saved_out = ::dup(1);
    int saved_err = ::dup(2);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    CliResult r;
    r.code = cli::run(std::move(args), registry);
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    ::dup2(saved_out, 1);
    ::dup2(saved_err, 2);
    ::close(saved_out);
    ::close(saved_err);
    ::close(out_fd);
    ::close(err_fd);
    r.out = read_file(out_tmpl);
    r.err = read_file(err_tmpl);
    ::unlink(out_tmpl);
    ::unlink(err_tmpl);
    return r;
}

} // namespace sbox::test

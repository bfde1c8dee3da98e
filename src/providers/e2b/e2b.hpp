// The E2B provider (e2b.dev), speaking E2B's API the way its official SDK (npm `e2b` 2.51.0) does; the facts
// are in ../shared/providers/e2b.md. Two planes:
//   - the control plane (REST, X-API-KEY): sandboxes, their lifetime, pause, snapshots;
//   - envd, a daemon in each sandbox (Connect RPC and a small HTTP file API, X-Access-Token): processes and
//     files.
// Built into libsbox-e2b.so with the shared HTTP layer (providers/http/), loaded on first use.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "providers/config.hpp"
#include "providers/http/client.hpp"
#include "providers/http/connect.hpp"
#include "providers/provider.hpp"

namespace sbox::e2b {

// Where the service is and who we are, from the environment (the SDK's variables) or [providers.e2b].
struct Settings {
    std::string api_key;     // E2B_API_KEY / api_key
    std::string domain;      // E2B_DOMAIN / domain, default e2b.app
    std::string api_url;     // E2B_API_URL / api_url, default https://api.<domain>
    std::string sandbox_url; // E2B_SANDBOX_URL / sandbox_url: one base for every envd call (routing headers)
    // Each request's total time limit (not a command's stream): SBOX_HTTP_TIMEOUT, default 60 s, the SDK's.
    std::chrono::milliseconds request_timeout{60'000};

    static Settings from(const Config& config);
};

// Metadata keys sbox sets on the sandboxes it creates.
inline constexpr const char* kNameKey = "sbox-name";       // --name
inline constexpr const char* kTimeoutKey = "sbox-timeout"; // --timeout in seconds, reused by resume
// A random token per create: when the reply is lost, the sandbox it made can still be found and removed.
inline constexpr const char* kCreateKey = "sbox-create";

// How to reach one sandbox's envd.
struct Envd {
    std::string base;      // the URL envd calls start with
    http::Headers headers; // X-Access-Token, routing headers
    std::string sandbox_id;
};

class Provider final : public sbox::Provider {
  public:
    explicit Provider(const Config& config);

    std::string_view name() const override { return "e2b"; }
    Capabilities capabilities() const override;
    bool configured(std::string& why) const override;
    nlohmann::json about() const override;

    SandboxInfo create(const CreateSpec& spec) override;
    std::vector<SandboxInfo> list() override;
    std::vector<SandboxInfo> list_filtered(const Labels& only) override;
    std::optional<SandboxInfo> get(std::string_view id_or_name) override;
    int exec(std::string_view id, const ExecSpec& spec) override;
    void kill(std::string_view id) override;

    PathInfo stat_path(std::string_view id, const std::string& path, bool follow_link) override;
    void upload(std::string_view id, const UploadSpec& spec, int tar_fd) override;
    void download(std::string_view id, const DownloadSpec& spec, int tar_fd) override;

    SnapshotInfo create_snapshot(std::string_view id, const std::string& name) override;
    std::vector<SnapshotInfo> list_snapshots() override;
    std::optional<SnapshotInfo> get_snapshot(std::string_view ref) override;
    void delete_snapshot(std::string_view snapshot_id) override;

    void pause(std::string_view id) override;
    void resume(std::string_view id) override;

    // The pieces exec and cp are made of (exec.cpp, files.cpp).
    const Settings& settings() const { return settings_; }
    http::Client& client();
    // envd of a running sandbox: from what create returned, else from GET /sandboxes/{id} (Error(conflict)
    // for a paused sandbox, not_found when there is none).
    Envd envd(std::string_view id);
    // A request to the control plane: the URL is api_url + path; the error says `what` failed.
    http::Response api(const std::string& method, const std::string& path, const nlohmann::json* body,
                       std::string_view what, http::Retry retry = http::Retry::automatic);

  private:
    void require_key() const;
    SandboxInfo info_from(const nlohmann::json& sandbox) const;
    void remember(const std::string& id, const nlohmann::json& created);
    // After a create whose reply was lost or unreadable: removes the sandbox it may have made.
    void remove_orphan(const std::string& create_token) noexcept;
    // GET path_and_query (which has a '?') and every further page; `each` sees every item.
    void for_each_listed(const std::string& path_and_query, const std::string& what,
                         const std::function<void(const nlohmann::json&)>& each);

    Settings settings_;
    std::unique_ptr<http::Client> client_;
    mutable std::mutex mutex_;
    std::map<std::string, Envd, std::less<>> envd_cache_; // sandboxes this process created or looked up
    std::string envd_version_;                            // the last created sandbox's, for about()
};

// The command's run through envd's process.Process/Start (exec.cpp).
int run_process(Provider& provider, const Envd& envd, const ExecSpec& spec);

// A command run to its end with its output captured, for cp's helpers inside the sandbox: stdout goes to
// `out_fd` (or is captured when -1), stderr is captured. Returns the exit status.
struct Captured {
    int status = 0;
    std::string out, err;
};
Captured run_captured(Provider& provider, const Envd& envd, const std::vector<std::string>& argv,
                      const std::string& user, int out_fd = -1);

// `length` random characters of [0-9a-z].
std::string random_token(std::size_t length);

// Basic auth for envd's user selection: "Basic base64(user:)".
std::string basic_user(std::string_view user);
std::string base64_encode(std::string_view data);
std::string base64_decode(std::string_view text); // throws Error(invalid) on bad input

} // namespace sbox::e2b

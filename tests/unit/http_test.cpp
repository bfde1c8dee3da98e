// The shared HTTP layer: pure parts (headers, Retry-After, backoff, URL handling, stream readers, the Connect
// codec, error mapping), and real exchanges with a scripted HTTP server on loopback for the retry rules.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "providers/http/client.hpp"
#include "providers/http/connect.hpp"
#include "providers/http/errors.hpp"
#include "providers/http/streams.hpp"

using namespace sbox;
using namespace sbox::http;
using namespace std::chrono_literals;

TEST_CASE("http: headers are found case-insensitively") {
    Headers h = {{"Content-Type", "a"}, {"x-next-token", "t"}};
    CHECK(find_header(h, "content-type") == "a");
    CHECK(find_header(h, "X-Next-Token") == "t");
    CHECK_FALSE(find_header(h, "Retry-After"));
}

TEST_CASE("http: Retry-After as seconds or an HTTP date, garbage refused") {
    CHECK(parse_retry_after("0") == 0ms);
    CHECK(parse_retry_after(" 3 ") == 3000ms);
    auto now = std::chrono::system_clock::from_time_t(784111777); // Sun, 06 Nov 1994 08:49:37 GMT
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now) == 10000ms);
    CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:27 GMT", now) == 0ms); // in the past: now
    CHECK_FALSE(parse_retry_after(""));
    CHECK_FALSE(parse_retry_after("soon"));
    CHECK_FALSE(parse_retry_after("-1"));
}

TEST_CASE("http: backoff is full jitter over a doubling, capped ceiling") {
    CHECK(backoff_delay(1, 200ms, 5000ms, 0.0) == 0ms);
    CHECK(backoff_delay(1, 200ms, 5000ms, 0.999) <= 200ms);
    CHECK(backoff_delay(3, 200ms, 5000ms, 0.5) == 400ms);
    CHECK(backoff_delay(20, 200ms, 5000ms, 0.999) <= 5000ms);
}

TEST_CASE("http: URLs are encoded and secrets redacted for logs") {
    CHECK(url_encode("a b&c=d/é") == "a%20b%26c%3Dd%2F%C3%A9");
    CHECK(url_encode("Az09-_.~") == "Az09-_.~");
    CHECK(redact_url("https://h/p?token=abc&x=1", {"token"}) == "https://h/p?token=REDACTED&x=1");
    CHECK(redact_url("https://h/p?x=1", {"token"}) == "https://h/p?x=1");
}

TEST_CASE("http: statuses and Connect codes map to sbox's error kinds, keeping the service's message") {
    CHECK(kind_for_status(401) == ErrorKind::auth);
    CHECK(kind_for_status(404) == ErrorKind::not_found);
    CHECK(kind_for_status(409) == ErrorKind::conflict);
    CHECK(kind_for_status(429) == ErrorKind::rate_limited);
    CHECK(kind_for_status(503) == ErrorKind::unavailable);
    CHECK(kind_for_status(504) == ErrorKind::timeout);
    CHECK(kind_for_status(500) == ErrorKind::internal);
    CHECK(connect::kind_for_code("not_found") == ErrorKind::not_found);
    CHECK(connect::kind_for_code("deadline_exceeded") == ErrorKind::timeout);
    CHECK(connect::kind_for_code("unauthenticated") == ErrorKind::auth);
    CHECK(message_from_body(R"({"code":404,"message":"sandbox not found"})") == "sandbox not found");
    CHECK(message_from_body(R"({"error":{"message":"nope"}})") == "nope");
    CHECK(message_from_body("<html>gateway</html>").empty());
    Response r;
    r.status = 429;
    r.body = R"({"code":429,"message":"slow down"})";
    r.headers = {{"Retry-After", "7"}};
    Error e = error_from(r, "create", "e2b");
    CHECK(e.kind() == ErrorKind::rate_limited);
    CHECK(std::string(e.what()) == "create: slow down (HTTP 429); retry after 7 s");
    CHECK(e.provider() == "e2b");
}

TEST_CASE("http: line, multipart and envelope readers take input split at any byte") {
    std::string ndjson = "{\"a\":1}\r\n{\"b\":2}\n{\"c\":3}";
    std::string frames = connect::envelope(R"({"x":1})") + connect::envelope("{}", connect::kFlagEndStream);
    std::string multipart =
        "preamble\r\n--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BB\r\nX: y\r\n\r\n"
        "wor\r\nld\r\n--BB--\r\nepilogue";
    for (std::size_t cut = 0; cut <= multipart.size(); ++cut) {
        std::vector<std::string> lines;
        LineReader lr([&](std::string_view l) { lines.emplace_back(l); });
        std::vector<std::pair<int, std::string>> got;
        connect::EnvelopeReader er(
            [&](connect::EnvelopeReader::Frame&& f) { got.emplace_back(f.flags, f.payload); });
        std::vector<std::string> parts;
        MultipartReader mr("BB", [&](const Headers&, std::string_view d) { parts.emplace_back(d); });
        auto feed = [](auto& reader, const std::string& s, std::size_t at) {
            at = std::min(at, s.size());
            reader.feed(std::string_view(s).substr(0, at));
            reader.feed(std::string_view(s).substr(at));
        };
        feed(lr, ndjson, cut);
        lr.finish();
        feed(er, frames, cut);
        feed(mr, multipart, cut);
        REQUIRE(lines == std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"});
        REQUIRE(got.size() == 2);
        CHECK(got[0] == std::pair<int, std::string>{0, R"({"x":1})"});
        CHECK(got[1] == std::pair<int, std::string>{2, "{}"});
        REQUIRE(parts == std::vector<std::string>{"hello", "wor\r\nld"});
        CHECK(mr.complete());
    }
    CHECK(boundary_of("multipart/form-data; boundary=\"a b\"") == "a b");
    CHECK(boundary_of("multipart/mixed; boundary=xyz; charset=utf-8") == "xyz");
    connect::EnvelopeReader huge([](connect::EnvelopeReader::Frame&&) {});
    CHECK_THROWS_AS(huge.feed(std::string("\0\x7f\xff\xff\xff", 5)), Error);
}

namespace {

// A scripted HTTP/1.1 server on 127.0.0.1: answers the Nth connection with replies[N] (raw bytes, then it
// closes), and records each request's head.
class ScriptedServer {
  public:
    explicit ScriptedServer(std::vector<std::string> replies) : replies_(std::move(replies)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        REQUIRE(::listen(fd_, 16) == 0);
        thread_ = std::thread([this] { serve(); });
    }
    ~ScriptedServer() {
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    std::string url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }
    int requests() const { return served_.load(); }
    std::string last_request() {
        std::lock_guard l(m_);
        return last_;
    }

  private:
    void serve() {
        for (std::size_t i = 0;; ++i) {
            int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) return;
            std::string req;
            char buf[65536];
            // Read the head and a body of Content-Length, or a chunked body up to its last chunk.
            for (;;) {
                ssize_t n = ::read(c, buf, sizeof buf);
                if (n <= 0) break;
                req.append(buf, static_cast<std::size_t>(n));
                auto head = req.find("\r\n\r\n");
                if (head == std::string::npos) continue;
                auto cl = req.find("Content-Length: ");
                if (cl != std::string::npos && cl < head) {
                    std::size_t want = std::stoul(req.substr(cl + 16));
                    if (req.size() >= head + 4 + want) break;
                } else if (req.find("chunked") != std::string::npos && req.find("chunked") < head) {
                    if (req.find("\r\n0\r\n\r\n", head) != std::string::npos) break;
                } else {
                    break;
                }
            }
            {
                std::lock_guard l(m_);
                last_ = req;
            }
            ++served_;
            const std::string& reply = replies_[std::min(i, replies_.size() - 1)];
            if (reply == "STALL") {
                ::usleep(1'500'000);
            } else {
                [[maybe_unused]] auto n = ::write(c, reply.data(), reply.size());
            }
            ::close(c);
        }
    }
    std::vector<std::string> replies_;
    int fd_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::atomic<int> served_{0};
    std::mutex m_;
    std::string last_;
};

std::string reply(int status, const std::string& body, const std::string& extra = {}) {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n" + extra + "\r\n" + body;
}

Client::Options fast() {
    Client::Options o;
    o.provider = "test";
    o.backoff_base = 1ms;
    o.backoff_max = 2ms;
    return o;
}

} // namespace

TEST_CASE("http: a POST is repeated only when the server says when (429 or 503 with Retry-After)") {
    {
        ScriptedServer s({reply(429, "{}", "Retry-After: 0\r\n"), reply(201, R"({"ok":1})")});
        Client c(fast());
        Response r = c.send({.method = "POST", .url = s.url("/x"), .body = "{}"});
        CHECK(r.status == 201);
        CHECK(r.attempts == 2);
        CHECK(r.body == R"({"ok":1})");
    }
    {
        ScriptedServer s({reply(429, "{}"), reply(201, "{}")});
        Client c(fast());
        CHECK(c.send({.method = "POST", .url = s.url("/x")}).attempts == 1);
    }
    {
        ScriptedServer s({reply(503, "{}"), reply(201, "{}")});
        Client c(fast());
        Response r = c.send({.method = "POST", .url = s.url("/x")});
        CHECK(r.status == 503);
        CHECK(r.attempts == 1);
    }
    {
        ScriptedServer s({reply(429, "{}", "Retry-After: 0\r\n"), reply(201, "{}")});
        Client c(fast());
        CHECK(c.send({.method = "POST", .url = s.url("/x"), .retry = Retry::never}).attempts == 1);
    }
    {
        ScriptedServer s({reply(429, "{}", "Retry-After: 3600\r\n"), reply(201, "{}")});
        Client c(fast());
        Response r = c.send({.method = "POST", .url = s.url("/x")});
        CHECK(r.status == 429);
        CHECK(r.attempts == 1);
    }
}

TEST_CASE("http: reads are repeated after 502/503/504 and lost connections, up to max_attempts") {
    {
        ScriptedServer s({reply(503, ""), reply(502, ""), reply(200, "fine")});
        Client c(fast());
        Response r = c.send({.url = s.url("/x")});
        CHECK(r.status == 200);
        CHECK(r.attempts == 3);
    }
    {
        ScriptedServer s({"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"}); // cut every time
        Client c(fast());
        Response r = c.send({.url = s.url("/x")});
        REQUIRE(r.transport_error);
        CHECK(r.transport_error->kind == TransportError::Kind::cut);
        CHECK(r.attempts == 4);
        CHECK(s.requests() == 4);
    }
    {
        int port;
        {
            ScriptedServer gone({reply(200, "")});
            port = std::stoi(gone.url("").substr(17));
        }
        Client c(fast());
        Response r = c.send({.url = "http://127.0.0.1:" + std::to_string(port) + "/x"});
        REQUIRE(r.transport_error);
        CHECK(r.transport_error->kind == TransportError::Kind::connect);
        CHECK(error_from(r, "list", "t").kind() == ErrorKind::unavailable);
    }
    {
        ScriptedServer s({"STALL"});
        Client::Options o = fast();
        o.max_attempts = 1;
        Client c(o);
        Response r = c.send({.url = s.url("/x"), .timeout = 300ms});
        REQUIRE(r.transport_error);
        CHECK(r.transport_error->kind == TransportError::Kind::timeout);
        CHECK(error_from(r, "list", "t").kind() == ErrorKind::timeout);
    }
}

TEST_CASE("http: a streamed multipart upload arrives byte for byte") {
    ScriptedServer s({reply(200, "[]")});
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::string data = std::string(100000, 'z') + "end";
    std::thread writer([&] {
        [[maybe_unused]] auto n = ::write(fds[1], data.data(), data.size());
        ::close(fds[1]);
    });
    Request req{.method = "POST", .url = s.url("/files?path=%2Ftmp%2Fa")};
    set_multipart_body(req, {.filename = "a\"b", .fd = fds[0]});
    Client c(fast());
    Response r = c.send(req);
    writer.join();
    ::close(fds[0]);
    CHECK(r.status == 200);
    std::string got = s.last_request();
    CHECK(got.find("Transfer-Encoding: chunked") != std::string::npos);
    CHECK(got.find("filename=\"a\\\"b\"") != std::string::npos);
    // De-chunk and parse the body as multipart.
    std::string body, rest = got.substr(got.find("\r\n\r\n") + 4);
    for (std::size_t pos = 0;;) {
        auto eol = rest.find("\r\n", pos);
        std::size_t len = std::stoul(rest.substr(pos, eol - pos), nullptr, 16);
        if (len == 0) break;
        body += rest.substr(eol + 2, len);
        pos = eol + 2 + len + 2;
    }
    auto ct = got.substr(got.find("boundary=") + 9);
    std::vector<std::string> parts;
    MultipartReader mr(ct.substr(0, ct.find("\r\n")),
                       [&](const Headers&, std::string_view d) { parts.emplace_back(d); });
    mr.feed(body);
    REQUIRE(parts.size() == 1);
    CHECK(parts[0] == data);
}

TEST_CASE("http: Connect streams end with their end frame, an error in it, or a cut that is an error") {
    auto stream_reply = [](const std::string& frames) {
        return "HTTP/1.1 200 OK\r\nContent-Type: application/connect+json\r\nContent-Length: " +
               std::to_string(frames.size()) + "\r\nConnection: close\r\n\r\n" + frames;
    };
    Client c(fast());
    {
        ScriptedServer s({stream_reply(connect::envelope(R"({"n":1})") + connect::envelope(R"({"n":2})") +
                                       connect::envelope("{}", connect::kFlagEndStream))});
        connect::Channel ch(c, s.url(""), {}, "t");
        std::vector<int> seen;
        ch.server_stream("pkg.S/M", {{"q", 1}}, [&](const nlohmann::json& m) {
            seen.push_back(m["n"]);
            return true;
        });
        CHECK(seen == std::vector<int>{1, 2});
        std::string req = s.last_request();
        CHECK(req.find("Content-Type: application/connect+json") != std::string::npos);
        CHECK(req.find("Connect-Protocol-Version: 1") != std::string::npos);
        CHECK(req.find(connect::envelope(R"({"q":1})")) != std::string::npos);
    }
    {
        ScriptedServer s({stream_reply(connect::envelope(
            R"({"error":{"code":"not_found","message":"no pid"}})", connect::kFlagEndStream))});
        connect::Channel ch(c, s.url(""), {}, "t");
        try {
            ch.server_stream("pkg.S/M", {}, [](const nlohmann::json&) { return true; });
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::not_found);
            CHECK(std::string(e.what()).find("no pid") != std::string::npos);
        }
    }
    {
        ScriptedServer s({stream_reply(connect::envelope(R"({"n":1})"))});
        connect::Channel ch(c, s.url(""), {}, "t");
        try {
            ch.server_stream("pkg.S/M", {}, [](const nlohmann::json&) { return true; });
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::unavailable);
            CHECK(std::string(e.what()).find("end-of-stream") != std::string::npos);
        }
    }
    {
        ScriptedServer s({reply(404, R"({"code":"not_found","message":"process 9 not found"})")});
        connect::Channel ch(c, s.url(""), {}, "t");
        try {
            ch.unary("pkg.S/U", {});
            FAIL("no error");
        } catch (const Error& e) {
            CHECK(e.kind() == ErrorKind::not_found);
            CHECK(std::string(e.what()).find("process 9 not found") != std::string::npos);
        }
    }
}

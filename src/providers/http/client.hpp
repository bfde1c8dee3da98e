// The HTTP client every remote provider shares (design.md, "Providers"), on libcurl. It lives in the remote
// providers' modules only: a local command never maps libcurl (design.md, "Start-up cost").
//
// What it does for every request:
//   - connection reuse (one connection cache for the whole process, shared between threads), HTTP/2 where the
//     server offers it over TLS (ALPN), HTTP/1.1 on plain http:// (a loopback fake);
//   - proxies from the environment (http_proxy, https_proxy, no_proxy, as curl reads them); TLS verification on;
//   - a connect timeout and a total timeout;
//   - retries with jittered exponential backoff: for idempotent requests (GET, HEAD, PUT, DELETE, OPTIONS, or
//     Request::retry = Retry::idempotent) after a transport failure or a 502/503/504; for ANY request after a
//     429 or 503 that carries Retry-After (the server said so), honouring its delay when it is at most
//     Options::max_retry_after, and giving up otherwise;
//   - with -v (sbox::verbose()), one line per attempt on stderr: method, URL (query values of secret
//     parameters redacted), status, bytes and time; header values are never logged;
//   - transport failures are values (Response::transport_error), not exceptions; statuses are not errors
//     either: the provider decides, with http::error_from (errors.hpp), which maps them to sbox's kinds.
//
// Thread safety: one Client may be used from several threads at once (exec's stdin thread sends input while
// the output stream is read); each call uses its own curl handle, and handles share connections.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sbox::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

// The first header named `name` (case-insensitive), or nullopt.
std::optional<std::string> find_header(const Headers& headers, std::string_view name);

enum class Retry {
    automatic,  // by method: idempotent methods are retried after transport failures and 502/503/504
    idempotent, // this POST is safe to repeat (a Connect unary read, a signal): retried like a GET
    never,      // never retried, not even after a 429 with Retry-After (a call whose repetition would harm)
};

// A transport failure: no HTTP status was received (or the body was cut off).
struct TransportError {
    enum class Kind {
        connect,   // could not connect (refused, DNS, TLS handshake, proxy)
        timeout,   // the connect or total timeout expired
        cut,       // the connection broke after the request was sent (reset, truncated body)
        cancelled, // Request::cancel was set, or a body callback asked to stop
        other,
    };
    Kind kind = Kind::other;
    std::string message; // curl's explanation, with the URL's host
};

struct Request {
    std::string method = "GET";
    std::string url;
    Headers headers;
    // The body: either `body`, or `body_source` for a streaming upload (called until it returns 0; a
    // negative return aborts the request), with body_size when known (else chunked transfer encoding).
    std::string body;
    std::function<long(char* buffer, std::size_t capacity)> body_source;
    std::optional<std::uint64_t> body_size;
    Retry retry = Retry::automatic;
    // 0: Options::timeout. For a stream: the limit on the whole exchange; streams usually set none
    // (std::chrono::milliseconds::max()) and rely on the server's deadline.
    std::chrono::milliseconds timeout{0};
    // Set from another thread to abort the request (checked at least every 100 ms).
    const std::atomic<bool>* cancel = nullptr;
};

struct Response {
    long status = 0; // 0 when transport_error is set
    Headers headers;
    std::string body; // the whole body (send), or, for stream(), the body of a non-2xx response
    std::optional<TransportError> transport_error;
    int attempts = 1;
    double seconds = 0; // the last attempt's total time

    bool ok() const { return !transport_error && status >= 200 && status < 300; }
    std::optional<std::string> header(std::string_view name) const { return find_header(headers, name); }
};

class Client {
  public:
    struct Options {
        std::string provider;   // names log lines and errors: "sbox: e2b: POST https://... 201 (12 ms)"
        std::string user_agent; // default "sbox/VERSION"
        std::chrono::milliseconds connect_timeout{10'000};
        std::chrono::milliseconds timeout{60'000};
        int max_attempts = 4; // including the first
        std::chrono::milliseconds backoff_base{200};   // first retry after ~base, doubling, with full jitter
        std::chrono::milliseconds backoff_max{5'000};  //
        std::chrono::milliseconds max_retry_after{30'000}; // a longer Retry-After is not waited for
        // Query parameters whose values are redacted in logs (headers are never logged).
        std::vector<std::string> secret_query_params;
    };

    explicit Client(Options options);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    const Options& options() const { return options_; }

    // The whole exchange, retried as described above; the body is read into Response::body.
    Response send(const Request& request);

    // A streaming response: on_data receives the body as it arrives (2xx only; return false to stop, which
    // ends the call with TransportError::cancelled). A non-2xx response is read whole into Response::body
    // and on_data is not called. Retried like send() only until the first byte of a 2xx body was delivered.
    Response stream(const Request& request, const std::function<bool(std::string_view chunk)>& on_data);

  private:
    struct Impl;
    Options options_;
    std::unique_ptr<Impl> impl_;
};

// Redacts the values of `secret_params` in a URL's query ("?token=abc" -> "?token=REDACTED"), for logs.
std::string redact_url(std::string_view url, const std::vector<std::string>& secret_params);

// Percent-encodes a query or path component (RFC 3986 unreserved characters pass).
std::string url_encode(std::string_view text);

// Retry-After: delay-seconds or an HTTP-date; nullopt when absent or malformed. `now` for HTTP-dates.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now =
                                                               std::chrono::system_clock::now());

// The delay before retry number `retry` (1 = the first retry): full jitter over base * 2^(retry-1), capped.
// `random01` in [0,1) (injected for tests).
std::chrono::milliseconds backoff_delay(int retry, std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                        double random01);

} // namespace sbox::http

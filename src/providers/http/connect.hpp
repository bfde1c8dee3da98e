// The Connect protocol (connectrpc.com/docs/protocol), JSON codec: unary calls and server streams, as envd
// (E2B) and others speak it.
//
// Unary: POST /<package>.<Service>/<Method>, Content-Type application/json, Connect-Protocol-Version: 1; the
// response is the JSON message, or an error status with {"code":"not_found","message":...}.
// Server streaming: Content-Type application/connect+json; the request body is one envelope; the response is
// a series of envelopes (1 flag byte, 4-byte big-endian length, payload). Flag 0x02 marks the end-of-stream
// frame, whose JSON is {} or {"error":{"code","message"}} (and optional "metadata"); a stream that stops
// without it is an error. Flag 0x01 (compressed) is refused: sbox asks for none.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "providers/http/client.hpp"
#include "providers/provider.hpp"

namespace sbox::http::connect {

inline constexpr std::uint8_t kFlagCompressed = 0x01;
inline constexpr std::uint8_t kFlagEndStream = 0x02;

// One envelope: flag byte, length, payload.
std::string envelope(std::string_view payload, std::uint8_t flags = 0);

// Splits a byte stream into envelopes as chunks arrive.
class EnvelopeReader {
  public:
    struct Frame {
        std::uint8_t flags = 0;
        std::string payload;
    };
    explicit EnvelopeReader(std::function<void(Frame&&)> on_frame) : on_frame_(std::move(on_frame)) {}
    // Throws Error(invalid) for a frame longer than max_frame (16 MiB).
    void feed(std::string_view chunk);
    // Bytes of a frame begun but not complete (a cut stream leaves some).
    std::size_t pending() const { return buffer_.size(); }

  private:
    std::function<void(Frame&&)> on_frame_;
    std::string buffer_;
};

// A Connect error code ("not_found", "unavailable", ...) as sbox's kind.
ErrorKind kind_for_code(std::string_view code);

// Calls a Connect method over `client`. `base` is the service's base URL (no trailing slash), `method` e.g.
// "process.Process/SendInput". `headers` are added to every call (auth, routing).
class Channel {
  public:
    Channel(Client& client, std::string base, Headers headers, std::string provider);

    // A unary call: returns the response message; throws Error (kind from the Connect code or HTTP status,
    // the server's message kept) on failure. retry: Retry::idempotent for calls that may be repeated.
    nlohmann::json unary(std::string_view method, const nlohmann::json& message, Retry retry = Retry::never,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

    // A server-streaming call: on_message receives each message (return false to stop early, which is not
    // an error). Returns normally after the end-of-stream frame; throws Error for an error in it, for a
    // non-2xx response, for a transport failure, and Error(unavailable) "the stream ended before its
    // end-of-stream frame" for a cut stream. `deadline` is sent as Connect-Timeout-Ms when set.
    // `extra_headers` are added to this call only.
    void server_stream(std::string_view method, const nlohmann::json& message,
                       const std::function<bool(const nlohmann::json&)>& on_message,
                       std::optional<std::chrono::milliseconds> deadline = std::nullopt,
                       const std::atomic<bool>* cancel = nullptr, const Headers& extra_headers = {});

    Client& client() { return client_; }
    const std::string& base() const { return base_; }
    const Headers& headers() const { return headers_; }

  private:
    Client& client_;
    std::string base_;
    Headers headers_;
    std::string provider_;
};

} // namespace sbox::http::connect

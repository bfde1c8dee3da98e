#include "providers/http/connect.hpp"

#include "providers/http/errors.hpp"

namespace sbox::http::connect {

namespace {
constexpr std::size_t kMaxFrame = 16u << 20;
}

std::string envelope(std::string_view payload, std::uint8_t flags) {
    std::string out;
    out.reserve(payload.size() + 5);
    out += static_cast<char>(flags);
    auto n = static_cast<std::uint32_t>(payload.size());
    out += static_cast<char>((n >> 24) & 0xff);
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 8) & 0xff);
    out += static_cast<char>(n & 0xff);
    out.append(payload);
    return out;
}

void EnvelopeReader::feed(std::string_view chunk) {
    buffer_.append(chunk);
    std::size_t at = 0;
    while (buffer_.size() - at >= 5) {
        auto b = [&](std::size_t i) {
            return static_cast<std::uint32_t>(static_cast<unsigned char>(buffer_[at + i]));
        };
        std::uint32_t len = (b(1) << 24) | (b(2) << 16) | (b(3) << 8) | b(4);
        if (len > kMaxFrame)
            throw Error(ErrorKind::invalid,
                        "a Connect frame of " + std::to_string(len) + " bytes (the limit is 16 MiB)");
        if (buffer_.size() - at - 5 < len) break;
        Frame f;
        f.flags = static_cast<std::uint8_t>(buffer_[at]);
        f.payload = buffer_.substr(at + 5, len);
        at += 5 + len;
        on_frame_(std::move(f));
    }
    buffer_.erase(0, at);
}

ErrorKind kind_for_code(std::string_view code) {
    if (code == "invalid_argument" || code == "out_of_range") return ErrorKind::invalid;
    if (code == "deadline_exceeded") return ErrorKind::timeout;
    if (code == "not_found") return ErrorKind::not_found;
    if (code == "already_exists" || code == "failed_precondition" || code == "aborted")
        return ErrorKind::conflict;
    if (code == "permission_denied" || code == "unauthenticated") return ErrorKind::auth;
    if (code == "resource_exhausted") return ErrorKind::rate_limited;
    if (code == "unimplemented") return ErrorKind::unsupported;
    if (code == "unavailable") return ErrorKind::unavailable;
    return ErrorKind::internal; // canceled, unknown, internal, data_loss
}

Channel::Channel(Client& client, std::string base, Headers headers, std::string provider)
    : client_(client), base_(std::move(base)), headers_(std::move(headers)), provider_(std::move(provider)) {}

namespace {

// A Connect error body ({"code","message"}) or, failing that, the HTTP status's meaning.
Error connect_error(const Response& r, std::string_view method, const std::string& provider) {
    if (r.transport_error || r.status == 0) return error_from(r, method, provider);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("code") && j["code"].is_string()) {
        std::string msg = j.value("message", std::string());
        return Error(kind_for_code(j["code"].get<std::string>()),
                     std::string(method) + ": " + (msg.empty() ? j["code"].get<std::string>() : msg) + " (" +
                         j["code"].get<std::string>() + ")",
                     provider);
    }
    return error_from(r, method, provider);
}

} // namespace

nlohmann::json Channel::unary(std::string_view method, const nlohmann::json& message, Retry retry,
                              std::chrono::milliseconds timeout) {
    Request req;
    req.method = "POST";
    req.url = base_ + "/" + std::string(method);
    req.headers = headers_;
    req.headers.emplace_back("Content-Type", "application/json");
    req.headers.emplace_back("Connect-Protocol-Version", "1");
    req.body = message.dump();
    req.retry = retry;
    req.timeout = timeout;
    Response r = client_.send(req);
    if (!r.ok()) throw connect_error(r, method, provider_);
    if (r.body.empty()) return nlohmann::json::object();
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded())
        throw Error(ErrorKind::internal,
                    std::string(method) + " returned malformed JSON: " + r.body.substr(0, 80), provider_);
    return j;
}

void Channel::server_stream(std::string_view method, const nlohmann::json& message,
                            const std::function<bool(const nlohmann::json&)>& on_message,
                            std::optional<std::chrono::milliseconds> deadline,
                            const std::atomic<bool>* cancel, const Headers& extra_headers) {
    Request req;
    req.method = "POST";
    req.url = base_ + "/" + std::string(method);
    req.headers = headers_;
    for (const auto& h : extra_headers)
        req.headers.push_back(h);
    req.headers.emplace_back("Content-Type", "application/connect+json");
    req.headers.emplace_back("Connect-Protocol-Version", "1");
    if (deadline) req.headers.emplace_back("Connect-Timeout-Ms", std::to_string(deadline->count()));
    req.body = envelope(message.dump());
    // A stream lives as long as its command; with a deadline the server ends it, and we give it some grace.
    req.timeout = deadline ? *deadline + std::chrono::seconds(10) : std::chrono::milliseconds::max();
    req.cancel = cancel;
    // Starting a process is not idempotent; a stream is repeated only when the server said so (429/503 with
    // Retry-After), before any of it arrived.
    req.retry = Retry::automatic;

    bool ended = false, stopped = false;
    std::optional<Error> failure;
    EnvelopeReader reader([&](EnvelopeReader::Frame&& f) {
        if (ended || stopped || failure) return;
        if (f.flags & kFlagCompressed) {
            failure = Error(ErrorKind::internal,
                            std::string(method) + ": a compressed frame (none was asked for)", provider_);
            return;
        }
        auto j = nlohmann::json::parse(f.payload, nullptr, false);
        if (j.is_discarded()) {
            failure =
                Error(ErrorKind::internal, std::string(method) + ": a frame of malformed JSON", provider_);
            return;
        }
        if (f.flags & kFlagEndStream) {
            ended = true;
            if (auto e = j.find("error"); e != j.end() && e->is_object()) {
                std::string code = e->value("code", std::string("unknown"));
                std::string msg = e->value("message", std::string());
                failure = Error(kind_for_code(code),
                                std::string(method) + ": " + (msg.empty() ? code : msg) + " (" + code + ")",
                                provider_);
            }
            return;
        }
        if (!on_message(j)) stopped = true;
    });
    Response r = client_.stream(req, [&](std::string_view chunk) {
        try {
            reader.feed(chunk);
        } catch (const Error& e) {
            failure = Error(e.kind(), std::string(method) + ": " + e.what(), provider_);
        }
        return !(stopped || failure);
    });
    if (failure) throw *failure;
    if (stopped) return;
    if (ended) return;
    if (r.transport_error && r.transport_error->kind != TransportError::Kind::cancelled) {
        if (r.transport_error->kind == TransportError::Kind::timeout)
            throw Error(ErrorKind::timeout,
                        std::string(method) + ": timed out (" + r.transport_error->message + ")", provider_);
        if (r.status == 0 && r.headers.empty()) throw connect_error(r, method, provider_);
    }
    if (!r.transport_error && (r.status < 200 || r.status >= 300)) throw connect_error(r, method, provider_);
    throw Error(ErrorKind::unavailable,
                std::string(method) + ": the stream ended before its end-of-stream frame (connection cut)",
                provider_);
}

} // namespace sbox::http::connect

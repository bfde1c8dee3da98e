#include "providers/http/errors.hpp"

#include <nlohmann/json.hpp>

namespace sbox::http {

ErrorKind kind_for_status(long status) {
    switch (status) {
    case 400:
    case 422:
        return ErrorKind::invalid;
    case 401:
    case 403:
        return ErrorKind::auth;
    case 404:
    case 410:
        return ErrorKind::not_found;
    case 409:
    case 412:
        return ErrorKind::conflict;
    case 429:
        return ErrorKind::rate_limited;
    case 408:
    case 504:
        return ErrorKind::timeout;
    case 501:
        return ErrorKind::unsupported;
    case 502:
    case 503:
    case 507:
        return ErrorKind::unavailable;
    default:
        return ErrorKind::internal;
    }
}

std::string message_from_body(std::string_view body) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object()) {
        for (const char* key : {"message", "detail", "error_description"})
            if (auto it = j.find(key); it != j.end() && it->is_string() && !it->get<std::string>().empty())
                return it->get<std::string>();
        if (auto it = j.find("error"); it != j.end()) {
            if (it->is_string()) return it->get<std::string>();
            if (it->is_object() && it->contains("message") && (*it)["message"].is_string())
                return (*it)["message"].get<std::string>();
        }
        return {};
    }
    // Short plain text only: an HTML page or a long dump says nothing useful on a terminal.
    std::string_view line = body.substr(0, body.find('\n'));
    while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
        line.remove_suffix(1);
    if (line.empty() || line.front() == '<' || line.front() == '{' || line.front() == '[') return {};
    return std::string(line.substr(0, 200));
}

Error error_from(const Response& r, std::string_view what, std::string_view provider) {
    std::string prefix = what.empty() ? "" : std::string(what) + ": ";
    if (r.transport_error) {
        const auto& t = *r.transport_error;
        switch (t.kind) {
        case TransportError::Kind::connect:
            return Error(ErrorKind::unavailable, prefix + "cannot reach " + t.message, std::string(provider));
        case TransportError::Kind::timeout:
            return Error(ErrorKind::timeout, prefix + "timed out (" + t.message + ")", std::string(provider));
        case TransportError::Kind::cut:
            return Error(ErrorKind::unavailable, prefix + "the connection broke (" + t.message + ")",
                         std::string(provider));
        case TransportError::Kind::cancelled:
            return Error(ErrorKind::internal, prefix + "cancelled", std::string(provider));
        case TransportError::Kind::other:
            return Error(ErrorKind::internal, prefix + t.message, std::string(provider));
        }
    }
    std::string msg = message_from_body(r.body);
    if (msg.empty()) msg = "the service answered";
    std::string text = prefix + msg + " (HTTP " + std::to_string(r.status) + ")";
    if (r.status == 429) {
        if (auto ra = r.header("Retry-After")) text += "; retry after " + *ra + " s";
    }
    return Error(kind_for_status(r.status), text, std::string(provider));
}

void check(const Response& r, std::string_view what, std::string_view provider) {
    if (!r.ok()) throw error_from(r, what, provider);
}

} // namespace sbox::http

// From HTTP outcomes to sbox's error kinds (design.md, "Providers": auth, not-found, conflict, rate-limited,
// unavailable, invalid, timeout), keeping the provider's own message.
#pragma once

#include <string>
#include <string_view>

#include "providers/http/client.hpp"
#include "providers/provider.hpp"

namespace sbox::http {

// The kind an HTTP status means: 400/422 invalid, 401/403 auth, 404/410 not_found, 409/412 conflict,
// 429 rate_limited, 408/504 timeout, 501 unsupported, 502/503 unavailable, 507 unavailable (no space),
// anything else internal.
ErrorKind kind_for_status(long status);

// The provider's own message in an error body: a JSON object's "message" (or "error" as a string, or
// "error":{"message"}, or "detail"), else the body's first line when it is short text; empty otherwise.
std::string message_from_body(std::string_view body);

// An Error for a failed response (a transport error, or a status that is not 2xx): "WHAT: MESSAGE (HTTP 404)"
// where MESSAGE is the provider's own when it gave one. Transport errors: connect -> unavailable ("cannot
// reach HOST: ..."), timeout -> timeout, cut -> unavailable, cancelled -> internal. A 429 says when to retry.
Error error_from(const Response& response, std::string_view what, std::string_view provider);

// Throws error_from(...) unless response.ok().
void check(const Response& response, std::string_view what, std::string_view provider);

} // namespace sbox::http

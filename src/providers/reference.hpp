// Sandbox references (design.md, "References"): `PROVIDER/ID`, or a bare ID or name that is resolved through
// sbox's index and then the chosen provider. In `cp`, `REF:PATH` splits at the first ':' after the reference.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sbox {

struct Reference {
    std::string provider; // empty for a bare reference
    std::string token;    // the provider's id (qualified), or an id, id prefix or name (bare)

    bool qualified() const { return !provider.empty(); }
    // "PROVIDER/ID", or the bare token.
    std::string str() const { return qualified() ? provider + "/" + token : token; }
};

// `PROVIDER/ID` when the text contains a '/': PROVIDER must be one of `providers` and ID must be non-empty
// and contain no further '/'. Otherwise a bare ID or name. Empty text, whitespace or control characters are
// rejected. Errors: Error(invalid).
Reference parse_reference(std::string_view text, const std::vector<std::string>& providers);

// One side of `cp`.
struct RefPath {
    Reference ref;
    std::string path; // inside the sandbox; never empty
};

// `REF:PATH` → the reference and the path (split at the first ':'; the path may contain ':'). nullopt when
// the text is a host path: it has no ':', is "-" (a tar stream), or starts with '/' or '.' (an explicit host
// path, like docker's `./file:name`). A REF:PATH with an invalid reference or an empty path is
// Error(invalid).
std::optional<RefPath> parse_ref_path(std::string_view text, const std::vector<std::string>& providers);

} // namespace sbox

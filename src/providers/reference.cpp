#include "providers/reference.hpp"

#include <algorithm>

#include "providers/provider.hpp"

namespace sbox {

namespace {

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : ", ") + s;
    return out.empty() ? "none" : out;
}

Error invalid(std::string_view text, const std::string& why) {
    return Error(ErrorKind::invalid, "invalid sandbox reference '" + std::string(text) + "': " + why);
}

void check_chars(std::string_view text) {
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f)
            throw invalid(text,
                          "it contains whitespace or control characters (use PROVIDER/ID, an ID or a name)");
    }
}

} // namespace

Reference parse_reference(std::string_view text, const std::vector<std::string>& providers) {
    if (text.empty())
        throw Error(ErrorKind::invalid, "empty sandbox reference (use PROVIDER/ID, an ID or a name)");
    check_chars(text);
    auto slash = text.find('/');
    if (slash == std::string_view::npos) return Reference{{}, std::string(text)};

    std::string_view provider = text.substr(0, slash);
    std::string_view id = text.substr(slash + 1);
    if (provider.empty()) throw invalid(text, "the provider is missing before '/' (use PROVIDER/ID)");
    if (std::find(providers.begin(), providers.end(), provider) == providers.end())
        throw invalid(text,
                      "unknown provider '" + std::string(provider) + "' (known: " + join(providers) + ")");
    if (id.empty()) throw invalid(text, "the ID is missing after '/' (use PROVIDER/ID)");
    if (id.find('/') != std::string_view::npos)
        throw invalid(text, "an ID cannot contain '/' (use PROVIDER/ID)");
    return Reference{std::string(provider), std::string(id)};
}

std::optional<RefPath> parse_ref_path(std::string_view text, const std::vector<std::string>& providers) {
    if (text.empty() || text == "-" || text.front() == '/' || text.front() == '.') return std::nullopt;
    auto colon = text.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string_view ref = text.substr(0, colon);
    std::string_view path = text.substr(colon + 1);
    if (ref.empty())
        throw Error(ErrorKind::invalid, "invalid 'REF:PATH' '" + std::string(text) +
                                            "': the sandbox reference before ':' is empty (use REF:PATH, or "
                                            "./" +
                                            std::string(text) + " for a host file)");
    if (path.empty())
        throw Error(ErrorKind::invalid, "invalid 'REF:PATH' '" + std::string(text) +
                                            "': the path after ':' is empty (use " + std::string(ref) +
                                            ":/path/in/sandbox)");
    return RefPath{parse_reference(ref, providers), std::string(path)};
}

} // namespace sbox

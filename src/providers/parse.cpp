#include "providers/parse.hpp"
#include "local/system.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <unistd.h>

namespace sbox {

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string in_quotes(std::string_view s) {
    return "'" + std::string(s) + "'";
}

// A decimal number "123" or "1.25" at the start of s; returns the characters consumed (0: none).
// The whole part must fit in uint64; the fraction is kept as digits (at most 18 significant ones).
struct Number {
    std::uint64_t whole = 0;
    std::uint64_t frac = 0;     // fraction digits as an integer
    std::uint64_t frac_den = 1; // 10^(number of fraction digits kept)
    bool overflow = false;
};

std::size_t read_number(std::string_view s, Number& n) {
    std::size_t i = 0;
    while (i < s.size() && is_digit(s[i])) {
        std::uint64_t d = static_cast<std::uint64_t>(s[i] - '0');
        if (__builtin_mul_overflow(n.whole, 10u, &n.whole) || __builtin_add_overflow(n.whole, d, &n.whole))
            n.overflow = true;
        ++i;
    }
    if (i == 0) return 0;
    if (i < s.size() && s[i] == '.') {
        std::size_t j = i + 1;
        while (j < s.size() && is_digit(s[j])) {
            if (n.frac_den < 1000000000000000000ull) {
                n.frac = n.frac * 10 + static_cast<std::uint64_t>(s[j] - '0');
                n.frac_den *= 10;
            }
            ++j;
        }
        if (j == i + 1) return 0; // "1." is not a number
        i = j;
    }
    return i;
}

// n * unit, truncated; false on overflow.
bool scale(const Number& n, std::uint64_t unit, std::uint64_t& out) {
    if (n.overflow) return false;
    std::uint64_t whole = 0;
    if (__builtin_mul_overflow(n.whole, unit, &whole)) return false;
    // frac/frac_den * unit without overflowing: split unit into multiples of frac_den.
    unsigned __int128 part = static_cast<unsigned __int128>(n.frac) * unit / n.frac_den;
    if (part > std::numeric_limits<std::uint64_t>::max()) return false;
    return !__builtin_add_overflow(whole, static_cast<std::uint64_t>(part), &out);
}

const char duration_help[] =
    "use a number of seconds or a combination of units ms, s, m, h, e.g. 90, 90s, 500ms, "
    "5m, 1h30m";
const char size_help[] =
    "use a number of bytes with an optional unit b, k, m, g, t (1024-based; KB, KiB also "
    "accepted), e.g. 512m, 1.5g, 2GiB";

} // namespace

std::chrono::milliseconds parse_duration(std::string_view text) {
    auto fail = [&](const std::string& why) -> Error {
        return Error(ErrorKind::invalid,
                     "invalid duration " + in_quotes(text) + ": " + why + " (" + duration_help + ")");
    };
    if (text.empty()) throw fail("it is empty");
    if (text[0] == '-') throw fail("it is negative");
    constexpr std::int64_t max_ms = std::numeric_limits<std::int64_t>::max();

    std::size_t pos = 0;
    std::uint64_t total = 0;
    bool first = true;
    while (pos < text.size()) {
        Number n;
        std::size_t len = read_number(text.substr(pos), n);
        if (len == 0) {
            if (first) throw fail("it does not start with a number");
            throw fail("expected a number at " + in_quotes(text.substr(pos)));
        }
        pos += len;
        std::size_t unit_start = pos;
        while (pos < text.size() && !is_digit(text[pos]) && text[pos] != '.')
            ++pos;
        std::string_view unit = text.substr(unit_start, pos - unit_start);
        std::uint64_t unit_ms = 0;
        if (unit.empty()) {
            if (!first || pos < text.size()) throw fail("a number without a unit");
            unit_ms = 1000; // a bare number is seconds
        } else if (unit == "ms") {
            unit_ms = 1;
        } else if (unit == "s") {
            unit_ms = 1000;
        } else if (unit == "m") {
            unit_ms = 60'000;
        } else if (unit == "h") {
            unit_ms = 3'600'000;
        } else {
            throw fail("unknown unit " + in_quotes(unit));
        }
        std::uint64_t ms = 0;
        if (!scale(n, unit_ms, ms) || __builtin_add_overflow(total, ms, &total) ||
            total > static_cast<std::uint64_t>(max_ms))
            throw fail("it is too large");
        first = false;
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(total));
}

std::uint64_t parse_size(std::string_view text) {
    auto fail = [&](const std::string& why) -> Error {
        return Error(ErrorKind::invalid,
                     "invalid size " + in_quotes(text) + ": " + why + " (" + size_help + ")");
    };
    if (text.empty()) throw fail("it is empty");
    if (text[0] == '-') throw fail("it is negative");
    Number n;
    std::size_t len = read_number(text, n);
    if (len == 0) throw fail("it does not start with a number");
    std::string_view rest = text.substr(len);
    if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
    std::string unit;
    for (char c : rest)
        unit += lower(c);
    std::uint64_t mult = 0;
    if (unit.empty() || unit == "b") {
        mult = 1;
    } else {
        // k, kb, kib (and so on): all binary, like docker's RAMInBytes.
        std::string_view u = unit;
        char prefix = u[0];
        u.remove_prefix(1);
        if (!(u.empty() || u == "b" || u == "ib")) throw fail("unknown unit " + in_quotes(rest));
        switch (prefix) {
        case 'k':
            mult = 1ull << 10;
            break;
        case 'm':
            mult = 1ull << 20;
            break;
        case 'g':
            mult = 1ull << 30;
            break;
        case 't':
            mult = 1ull << 40;
            break;
        case 'p':
            mult = 1ull << 50;
            break;
        default:
            throw fail("unknown unit " + in_quotes(rest));
        }
    }
    std::uint64_t bytes = 0;
    if (!scale(n, mult, bytes)) throw fail("it is too large");
    return bytes;
}

KeyValue parse_key_value(std::string_view text, std::string_view what) {
    KeyValue kv;
    auto eq = text.find('=');
    std::string_view key = text.substr(0, eq);
    if (key.empty())
        throw Error(ErrorKind::invalid, "invalid " + std::string(what) + " " + in_quotes(text) +
                                            ": the name is empty (use KEY=VALUE)");
    for (char c : key)
        if (is_space(c) || c == '\0')
            throw Error(ErrorKind::invalid, "invalid " + std::string(what) + " " + in_quotes(text) +
                                                ": the name contains whitespace (use KEY=VALUE)");
    kv.key = std::string(key);
    if (eq != std::string_view::npos) kv.value = std::string(text.substr(eq + 1));
    return kv;
}

std::optional<std::pair<std::string, std::string>> parse_env_assignment(std::string_view text) {
    KeyValue kv = parse_key_value(text, "environment variable");
    if (kv.value) return std::pair{std::move(kv.key), std::move(*kv.value)};
    if (const char* v = std::getenv(kv.key.c_str())) return std::pair{std::move(kv.key), std::string(v)};
    return std::nullopt;
}

std::pair<std::string, std::string> parse_label(std::string_view text) {
    KeyValue kv = parse_key_value(text, "label");
    return {std::move(kv.key), kv.value.value_or(std::string())};
}

PublishedPort parse_port(std::string_view text) {
    auto fail = [&](const std::string& why) {
        return Error(ErrorKind::invalid, "invalid --port " + in_quotes(text) + ": " + why +
                                             " (use PORT, HOSTPORT:PORT, optionally with /tcp or /udp; "
                                             "for example 8080, 9000:80 or 53/udp)");
    };
    auto number = [&](std::string_view digits, const char* what) {
        if (digits.empty() || digits.size() > 5)
            throw fail(std::string(what) + " must be a number from 1 to 65535");
        unsigned long value = 0;
        for (char c : digits) {
            if (!is_digit(c)) throw fail(std::string(what) + " must be a number from 1 to 65535");
            value = value * 10 + static_cast<unsigned long>(c - '0');
        }
        if (value < 1 || value > 65535) throw fail(std::string(what) + " must be a number from 1 to 65535");
        return static_cast<std::uint16_t>(value);
    };
    PublishedPort port;
    std::string_view rest = text;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        std::string protocol(rest.substr(slash + 1));
        for (auto& c : protocol)
            c = lower(c);
        if (protocol != "tcp" && protocol != "udp") throw fail("the protocol must be tcp or udp");
        port.protocol = protocol;
        rest = rest.substr(0, slash);
    }
    if (auto colon = rest.find(':'); colon != std::string_view::npos) {
        // Only the host's loopback is ever bound, so an address is not taken (docker's IP:HOST:PORT).
        if (rest.find(':', colon + 1) != std::string_view::npos)
            throw fail("an address cannot be given: ports are published on 127.0.0.1 only");
        port.host = number(rest.substr(0, colon), "the host port");
        port.sandbox = number(rest.substr(colon + 1), "the sandbox's port");
    } else {
        port.sandbox = number(rest, "the port");
    }
    return port;
}

namespace {

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
        i += len;
    }
    return true;
}

} // namespace

std::string read_text_file(const std::string& path, std::string_view what) {
    auto fail = [&](int err) {
        return Error(ErrorKind::invalid,
                     "cannot read " + std::string(what) + " " + in_quotes(path) + ": " + std::strerror(err));
    };
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw fail(errno);
    std::string content;
    int err = local::read_to_end(fd, content);
    ::close(fd);
    if (err) throw fail(err);
    return content;
}

Env read_env_file(const std::string& path) {
    std::string content = read_text_file(path, "env file");

    Env env;
    std::size_t line_no = 0;
    std::size_t pos = 0;
    while (pos < content.size()) {
        std::size_t end = content.find('\n', pos);
        if (end == std::string::npos) end = content.size();
        std::string_view line(content.data() + pos, end - pos);
        pos = end + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line_no == 1 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
        auto where = [&] {
            return "env file " + in_quotes(path) + ", line " + std::to_string(line_no) + ": ";
        };
        if (!valid_utf8(line))
            throw Error(ErrorKind::invalid, where() + "invalid UTF-8 (save the file as UTF-8)");
        while (!line.empty() && is_space(line.front()))
            line.remove_prefix(1);
        if (line.empty() || line.front() == '#') continue;
        auto eq = line.find('=');
        std::string_view key = line.substr(0, eq);
        if (key.empty())
            throw Error(ErrorKind::invalid, where() + "no variable name before '=' (use KEY=VALUE)");
        for (char c : key)
            if (is_space(c))
                throw Error(ErrorKind::invalid,
                            where() + "variable " + in_quotes(key) + " contains whitespace (use KEY=VALUE)");
        if (eq != std::string_view::npos) {
            env.emplace_back(std::string(key), std::string(line.substr(eq + 1)));
        } else if (const char* v = std::getenv(std::string(key).c_str())) {
            env.emplace_back(std::string(key), std::string(v));
        }
    }
    return env;
}

std::uint64_t parse_cpus(std::string_view text) {
    auto invalid = [&] {
        return Error(ErrorKind::invalid, "invalid number of CPUs '" + std::string(text) +
                                             "': give a positive number such as 2, 0.5 or 1.25");
    };
    std::uint64_t whole = 0, millis = 0;
    std::size_t i = 0, digits = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++digits) {
        whole = whole * 10 + static_cast<std::uint64_t>(text[i] - '0');
        if (whole > 1'000'000) throw invalid();
    }
    if (i < text.size() && text[i] == '.') {
        ++i;
        std::uint64_t scale = 100;
        for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++digits) {
            millis += static_cast<std::uint64_t>(text[i] - '0') * scale; // digits past the third are dropped
            scale /= 10;
        }
    }
    if (digits == 0 || i != text.size()) throw invalid();
    std::uint64_t total = whole * 1000 + millis;
    if (total == 0)
        throw Error(ErrorKind::invalid,
                    "--cpus " + std::string(text) + ": the number of CPUs must be at least 0.001");
    return total;
}

} // namespace sbox

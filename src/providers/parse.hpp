// Parsing of command-line values: durations, sizes, K=V pairs and docker-style env files.
// Every function throws sbox::Error(ErrorKind::invalid) with a message that says what was wrong and what to
// do.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "providers/provider.hpp"

namespace sbox {

// "90" (a bare number is seconds), "90s", "500ms", "5m", "2h", "1h30m", "1.5h". Units: ms, s, m, h; terms may
// be combined in any order. Zero is allowed (callers that need a positive duration check).
std::chrono::milliseconds parse_duration(std::string_view text);

// Bytes: "512", "512b", "512k", "512m", "1g", "1.5g", "2t", "2GiB", "100MB", "1 GB". Like docker, every unit
// is binary (k = KB = KiB = 1024) and case does not matter; fractions are truncated to whole bytes.
std::uint64_t parse_size(std::string_view text);

// --cpus: a positive decimal number of CPUs ("2", "0.5", "1.25"), in thousandths of a CPU (at least 0.001).
std::uint64_t parse_cpus(std::string_view text);

// KEY=VALUE, split at the first '='. A bare KEY has no value. what names the thing in messages ("label",
// "environment variable"). The key must not be empty or contain whitespace.
struct KeyValue {
    std::string key;
    std::optional<std::string> value;
};
KeyValue parse_key_value(std::string_view text, std::string_view what);

// -e: KEY=VALUE, or a bare KEY that takes its value from the current environment (like docker), or nothing
// when that variable is not set.
std::optional<std::pair<std::string, std::string>> parse_env_assignment(std::string_view text);

// -l on create: KEY=VALUE, or a bare KEY with an empty value (like docker).
std::pair<std::string, std::string> parse_label(std::string_view text);

// --port: "PORT", "HOST:PORT", either with "/tcp" or "/udp" (default tcp); ports 1-65535.
PublishedPort parse_port(std::string_view text);

// docker's --env-file format: KEY=VALUE lines taken literally (no quotes, no trimming of the value), '#'
// comment lines and blank lines ignored, leading whitespace of a line ignored, a bare KEY takes the current
// environment's value (dropped when unset). Errors name the file and the line.
Env read_env_file(const std::string& path);

// The whole content of a file; Error(invalid) "cannot read <what> '<path>': <reason>" when it cannot be read.
std::string read_text_file(const std::string& path, std::string_view what);

} // namespace sbox

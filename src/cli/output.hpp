// Rendering: JSON of sandboxes and errors, aligned tables, times.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "providers/provider.hpp"

namespace sbox::cli {

// {"provider","id","ref","name","status","image","created_at","expires_at","labels","details"}; times are
// RFC 3339 UTC strings ("2024-05-01T12:00:00Z"), expires_at null when there is no lifetime, name null when
// none.
nlohmann::json sandbox_json(const SandboxInfo& info);
nlohmann::json snapshot_json(const SnapshotInfo& info);
// Bytes as docker shows them: "0B", "532B", "12.3kB", "1.5GB" (decimal units).
std::string human_size(std::uint64_t bytes);
// The `sbox snapshot ls` table: NAME ID SIZE CREATED SOURCE (the id shortened to 12 characters).
std::string render_snapshot_table(const std::vector<SnapshotInfo>& snapshots, std::int64_t now);

// {"error":{"kind":…,"message":…,"provider":…}}, provider null when empty.
nlohmann::json error_json(std::string_view kind, std::string_view message, std::string_view provider);

// "sbox: PROVIDER: MESSAGE\n", or "sbox: MESSAGE\n" without a provider.
std::string format_error(std::string_view message, std::string_view provider);

// Unix seconds → "2024-05-01T12:00:00Z".
std::string rfc3339(std::int64_t unix_seconds);

// A duration in words, like docker: "Less than a second", "1 second", "12 seconds", "About a minute",
// "5 minutes", "About an hour", "3 hours", "2 days", "3 weeks", "4 months", "2 years".
std::string human_duration(std::int64_t seconds);

// "12 seconds ago", or "in 5 minutes" for a time after now.
std::string relative_time(std::int64_t unix_seconds, std::int64_t now);

std::int64_t now_seconds();

// Columns left-aligned and separated by three spaces; the last column is not padded. Each line ends in '\n'.
std::string render_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows);

// The `sbox ls` table: REF NAME STATUS IMAGE CREATED ("-" for an empty cell).
std::string render_sandbox_table(const std::vector<SandboxInfo>& sandboxes, std::int64_t now);

// `sbox inspect`: "key: value" lines, values aligned; details flattened as details.KEY.
std::string render_inspect(const SandboxInfo& info, std::int64_t now);

} // namespace sbox::cli

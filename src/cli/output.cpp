#include "cli/output.hpp"

#include <algorithm>
#include <ctime>

namespace sbox::cli {

nlohmann::json sandbox_json(const SandboxInfo& info) {
    nlohmann::json j = nlohmann::json::object();
    j["provider"] = info.provider;
    j["id"] = info.id;
    j["ref"] = info.ref();
    j["name"] = info.name.empty() ? nlohmann::json(nullptr) : nlohmann::json(info.name);
    j["status"] = info.status;
    j["image"] = info.image;
    j["created_at"] = rfc3339(info.created_at);
    j["expires_at"] = info.expires_at ? nlohmann::json(rfc3339(*info.expires_at)) : nlohmann::json(nullptr);
    j["labels"] = nlohmann::json::object();
    for (const auto& [k, v] : info.labels)
        j["labels"][k] = v;
    j["details"] = info.details.is_null() ? nlohmann::json::object() : info.details;
    return j;
}

nlohmann::json error_json(std::string_view kind, std::string_view message, std::string_view provider) {
    return {{"error",
             {{"kind", kind},
              {"message", message},
              {"provider", provider.empty() ? nlohmann::json(nullptr) : nlohmann::json(provider)}}}};
}

std::string format_error(std::string_view message, std::string_view provider) {
    std::string out = "sbox: ";
    if (!provider.empty()) out.append(provider).append(": ");
    out.append(message);
    out += '\n';
    return out;
}

std::string rfc3339(std::int64_t unix_seconds) {
    std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    if (::gmtime_r(&t, &tm) == nullptr) return std::to_string(unix_seconds);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string human_duration(std::int64_t seconds) {
    auto plural = [](std::int64_t n, const char* unit) {
        return std::to_string(n) + " " + unit + (n == 1 ? "" : "s");
    };
    if (seconds < 1) return "Less than a second";
    if (seconds < 60) return plural(seconds, "second");
    std::int64_t minutes = seconds / 60;
    if (minutes == 1) return "About a minute";
    if (minutes < 60) return plural(minutes, "minute");
    std::int64_t hours = (seconds + 1800) / 3600; // rounded, like docker
    if (hours == 1) return "About an hour";
    if (hours < 48) return plural(hours, "hour");
    if (hours < 24 * 7 * 2) return plural(hours / 24, "day");
    if (hours < 24 * 30 * 2) return plural(hours / 24 / 7, "week");
    if (hours < 24 * 365 * 2) return plural(hours / 24 / 30, "month");
    return plural(hours / 24 / 365, "year");
}

std::string relative_time(std::int64_t unix_seconds, std::int64_t now) {
    if (unix_seconds > now) return "in " + human_duration(unix_seconds - now);
    return human_duration(now - unix_seconds) + " ago";
}

std::int64_t now_seconds() {
    return static_cast<std::int64_t>(std::time(nullptr));
}

namespace {

// Display width: code points, not bytes (good enough for names and images).
std::size_t width(std::string_view s) {
    return static_cast<std::size_t>(std::count_if(
        s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

} // namespace

std::string render_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> widths(header.size(), 0);
    auto measure = [&](const std::vector<std::string>& row) {
        for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i)
            widths[i] = std::max(widths[i], width(row[i]));
    };
    measure(header);
    for (const auto& row : rows)
        measure(row);
    std::string out;
    auto line = [&](const std::vector<std::string>& row) {
        std::string l;
        for (std::size_t i = 0; i < widths.size(); ++i) {
            const std::string cell = i < row.size() ? row[i] : std::string();
            l += cell;
            if (i + 1 < widths.size()) l.append(widths[i] - width(cell) + 3, ' ');
        }
        while (!l.empty() && l.back() == ' ')
            l.pop_back();
        out += l;
        out += '\n';
    };
    line(header);
    for (const auto& row : rows)
        line(row);
    return out;
}

std::string render_sandbox_table(const std::vector<SandboxInfo>& sandboxes, std::int64_t now) {
    auto cell = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
    std::vector<std::vector<std::string>> rows;
    rows.reserve(sandboxes.size());
    for (const auto& s : sandboxes)
        rows.push_back({s.ref(), cell(s.name), cell(s.status), cell(s.image),
                        s.created_at > 0 ? relative_time(s.created_at, now) : std::string("-")});
    return render_table({"REF", "NAME", "STATUS", "IMAGE", "CREATED"}, rows);
}

nlohmann::json snapshot_json(const SnapshotInfo& info) {
    return {{"provider", info.provider},
            {"id", info.id},
            {"name", info.name},
            {"size", info.size},
            {"created_at", info.created_at},
            {"source", info.source},
            {"parent", info.parent},
            {"details", info.details}};
}

std::string human_size(std::uint64_t bytes) {
    static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    double value = static_cast<double>(bytes);
    size_t unit = 0;
    while (value >= 1000 && unit + 1 < std::size(units)) {
        value /= 1000;
        ++unit;
    }
    char buf[32];
    if (unit == 0)
        std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(bytes));
    else
        std::snprintf(buf, sizeof buf, value < 10 ? "%.2g%s" : "%.3g%s", value, units[unit]);
    return buf;
}

std::string render_snapshot_table(const std::vector<SnapshotInfo>& snapshots, std::int64_t now) {
    auto cell = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : snapshots)
        rows.push_back({cell(s.name), s.id.substr(0, 12), human_size(s.size),
                        s.created_at > 0 ? relative_time(s.created_at, now) : std::string("-"),
                        cell(s.source)});
    return render_table({"NAME", "ID", "SIZE", "CREATED", "SOURCE"}, rows);
}

std::string render_inspect(const SandboxInfo& info, std::int64_t now) {
    std::vector<std::pair<std::string, std::string>> lines;
    auto value = [](const std::string& s) { return s.empty() ? std::string("-") : s; };
    lines.emplace_back("ref", info.ref());
    lines.emplace_back("provider", info.provider);
    lines.emplace_back("id", info.id);
    lines.emplace_back("name", value(info.name));
    lines.emplace_back("status", value(info.status));
    lines.emplace_back("image", value(info.image));
    lines.emplace_back("created_at", info.created_at > 0 ? rfc3339(info.created_at) + " (" +
                                                               relative_time(info.created_at, now) + ")"
                                                         : std::string("-"));
    lines.emplace_back("expires_at", info.expires_at ? rfc3339(*info.expires_at) + " (" +
                                                           relative_time(*info.expires_at, now) + ")"
                                                     : std::string("-"));
    std::string labels;
    for (const auto& [k, v] : info.labels)
        labels += (labels.empty() ? "" : ", ") + k + "=" + v;
    lines.emplace_back("labels", value(labels));
    if (info.details.is_object())
        for (const auto& [k, v] : info.details.items())
            lines.emplace_back("details." + k, v.is_string() ? v.get<std::string>() : v.dump());

    std::size_t w = 0;
    for (const auto& [k, v] : lines)
        w = std::max(w, k.size());
    std::string out;
    for (const auto& [k, v] : lines) {
        out += k;
        out += ':';
        out.append(w - k.size() + 1, ' ');
        out += v;
        out += '\n';
    }
    return out;
}

} // namespace sbox::cli

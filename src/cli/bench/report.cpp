#include "cli/bench/report.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "cli/bench/chart.hpp"
#include "cli/bench/runner.hpp"
#include "cli/output.hpp"

namespace sbox::cli::bench {

namespace {

bool counted(const Sample& s) {
    return !s.warmup && !s.interrupted;
}

std::string percent(double fraction) {
    char buf[16];
    double pct = fraction * 100;
    std::snprintf(buf, sizeof buf, std::fabs(pct - std::round(pct)) < 1e-9 ? "%.0f%%" : "%.1f%%", pct);
    return buf;
}

std::string ratio_text(double r) {
    char buf[32];
    std::snprintf(buf, sizeof buf, r >= 100 ? "%.0fx" : r >= 10 ? "%.1fx" : "%.2fx", r);
    return buf;
}

std::string pad_left(const std::string& s, std::size_t w) {
    return s.size() >= w ? s : std::string(w - s.size(), ' ') + s;
}

std::string pad_right(const std::string& s, std::size_t w) {
    return s.size() >= w ? s : s + std::string(w - s.size(), ' ');
}

std::string signal_name(int sig) {
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// The rows of one provider's table: a label and its statistics (in ms).
std::vector<std::pair<std::string, const Stats*>> stat_rows(const ProviderSummary& p) {
    std::vector<std::pair<std::string, const Stats*>> rows;
    for (Phase phase : kPhases)
        rows.emplace_back(title_of(phase), &p.phases.at(phase));
    if (p.first_ready) rows.emplace_back("first ready", &*p.first_ready);
    if (p.all_ready) rows.emplace_back("all ready", &*p.all_ready);
    return rows;
}

std::string mean_sd(const Stats& s) {
    return format_ms(s.mean) + " ± " + format_ms(s.stddev);
}

} // namespace

std::vector<double> phase_samples(const Results& results, const std::string& provider, Phase phase) {
    std::vector<double> out;
    for (const auto& s : results.samples) {
        if (!counted(s) || !s.ok || s.provider != provider) continue;
        switch (phase) {
        case Phase::create:
            out.push_back(*s.create_ms);
            break;
        case Phase::first_exec:
            out.push_back(*s.first_exec_ms);
            break;
        case Phase::exec:
            out.insert(out.end(), s.exec_ms.begin(), s.exec_ms.end());
            break;
        case Phase::kill:
            out.push_back(*s.kill_ms);
            break;
        }
    }
    return out;
}

Summary summary_of(const Results& results) {
    Summary sum;
    for (const auto& name : results.settings.providers) {
        ProviderSummary p;
        p.name = name;
        for (const auto& s : results.samples) {
            if (s.provider != name || s.warmup) continue;
            if (s.interrupted) {
                ++p.interrupted;
                continue;
            }
            ++p.attempted;
            if (s.ok) {
                ++p.ok;
                if (s.silent) ++p.silent;
            } else {
                ++p.failed;
                ++p.errors[s.failed_in + ": " + s.error];
            }
        }
        for (Phase phase : kPhases)
            p.phases[phase] = bench::summarize(phase_samples(results, name, phase));
        if (results.settings.concurrency > 1) {
            std::vector<double> first, all, rate;
            for (const auto& b : results.bursts) {
                if (b.provider != name || b.warmup) continue;
                if (b.first_ready_ms) first.push_back(*b.first_ready_ms);
                if (b.all_ready_ms) all.push_back(*b.all_ready_ms);
                if (b.per_second) rate.push_back(*b.per_second);
            }
            p.first_ready = bench::summarize(first);
            p.all_ready = bench::summarize(all);
            p.per_second = bench::summarize(rate);
        }
        sum.providers.push_back(std::move(p));
    }

    // Warnings: what the numbers cannot carry.
    for (const auto& p : sum.providers) {
        if (p.attempted > 0 && p.ok == 0)
            sum.warnings.push_back(p.name +
                                   ": every sandbox failed; there is nothing to time (see the errors above)");
        if (p.silent > 0)
            sum.warnings.push_back(p.name + ": the command printed nothing in " + std::to_string(p.silent) +
                                   " sandboxes, so their time to first exec runs to the command's end (give "
                                   "--command one that prints)");
    }
    std::string outliers;
    for (const auto& p : sum.providers)
        for (const auto& [phase, st] : p.phases)
            if (st.outliers > 0)
                outliers += (outliers.empty() ? "" : ", ") + p.name + " " + title_of(phase) + " " +
                            std::to_string(st.outliers) + " of " + std::to_string(st.n);
    if (!outliers.empty())
        sum.warnings.push_back("outliers (modified z-score above 3.5): " + outliers +
                               "; something else disturbed those runs (the raw samples: --export-json)");
    std::string thin;
    std::size_t least = SIZE_MAX;
    for (const auto& p : sum.providers) {
        std::size_t n = p.phases.at(Phase::first_exec).n;
        if (n > 0) least = std::min(least, n);
    }
    if (least != SIZE_MAX) {
        for (double q : {99.0, 95.0, 90.0}) {
            std::size_t need = samples_needed_for(q);
            if (least < need) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "p%.0f", q);
                thin = thin.empty() ? buf : thin + ", " + buf;
            }
        }
        if (!thin.empty())
            sum.warnings.push_back(
                "too few runs for " + thin +
                ": a percentile p needs 100/(100-p) samples (p90: 10, "
                "p95: 20, p99: 100) before it is more than the largest value; this run has " +
                std::to_string(least) + " per provider (raise -n)");
    }

    // Comparisons of the headline figure, the fastest provider (by median) against each other one.
    const ProviderSummary* fastest = nullptr;
    for (const auto& p : sum.providers) {
        const auto& st = p.phases.at(Phase::first_exec);
        if (st.n == 0) continue;
        if (!fastest || st.p50 < fastest->phases.at(Phase::first_exec).p50) fastest = &p;
    }
    if (fastest) {
        auto a = phase_samples(results, fastest->name, Phase::first_exec);
        for (const auto& p : sum.providers) {
            if (&p == fastest || p.phases.at(Phase::first_exec).n == 0) continue;
            auto b = phase_samples(results, p.name, Phase::first_exec);
            auto r = median_ratio(a, b);
            if (!r) continue;
            std::string medians = "medians " + format_ms(fastest->phases.at(Phase::first_exec).p50) +
                                  " and " + format_ms(p.phases.at(Phase::first_exec).p50);
            if (r->low <= 1.0)
                sum.comparisons.push_back(fastest->name + " and " + p.name +
                                          " cannot be told apart to first exec (ratio " +
                                          ratio_text(r->value) + ", 95% interval " + ratio_text(r->low) +
                                          "-" + ratio_text(r->high) + " holds 1; " + medians + ")");
            else
                sum.comparisons.push_back(fastest->name + " was " + ratio_text(r->value) + " faster than " +
                                          p.name + " to first exec (95% interval " + ratio_text(r->low) +
                                          "-" + ratio_text(r->high) + "; " + medians + ")");
        }
    }
    return sum;
}

std::string render_terminal(const Results& results, const Summary& summary, bool chart, int width) {
    std::string out;
    const auto& set = results.settings;
    out += "sbox bench: " + std::to_string(set.runs) + " rounds";
    if (set.warmup) out += " after " + std::to_string(set.warmup) + " warmup";
    if (set.concurrency > 1) out += ", bursts of " + std::to_string(set.concurrency) + " sandboxes";
    out += ", command `" + set.command + "` then " + std::to_string(set.exec_repeat) + " more";
    if (!set.image.empty()) out += ", image " + set.image;
    out += "\n";
    if (results.interrupted_by)
        out += "interrupted by " + std::string(signal_name(results.interrupted_by)) +
               ": these are the rounds that finished\n";

    const std::vector<std::string> header = {"", "n", "min", "p50", "p90", "p95", "p99", "max", "mean ± σ"};
    for (const auto& p : summary.providers) {
        out += "\n" + p.name + ": " + std::to_string(p.ok) + " of " + std::to_string(p.attempted) +
               " sandboxes ok (" + percent(p.success_rate()) + ")";
        if (p.interrupted) out += ", " + std::to_string(p.interrupted) + " interrupted";
        out += "\n";
        std::vector<std::vector<std::string>> rows;
        for (const auto& [label, st] : stat_rows(p)) {
            if (st->n == 0) {
                rows.push_back({label, "0", "-", "-", "-", "-", "-", "-", "-"});
                continue;
            }
            rows.push_back({label, std::to_string(st->n), format_ms(st->min), format_ms(st->p50),
                            format_ms(st->p90), format_ms(st->p95), format_ms(st->p99), format_ms(st->max),
                            mean_sd(*st)});
        }
        std::vector<std::size_t> w(header.size(), 0);
        for (std::size_t i = 0; i < header.size(); ++i) {
            w[i] = header[i].size();
            for (const auto& r : rows)
                w[i] = std::max(w[i], r[i].size());
        }
        auto line = [&](const std::vector<std::string>& r) {
            std::string l = "  " + pad_right(r[0], w[0]);
            for (std::size_t i = 1; i + 1 < r.size(); ++i)
                l += "  " + pad_left(r[i], w[i]);
            l += "  " + r.back();
            out += l + "\n";
        };
        line(header);
        for (const auto& r : rows)
            line(r);
        if (p.per_second && p.per_second->n > 0) {
            char buf[96];
            std::snprintf(buf, sizeof buf,
                          "  sandboxes ready per second: %.1f (median of %zu bursts; %.1f-%.1f)\n",
                          p.per_second->p50, p.per_second->n, p.per_second->min, p.per_second->max);
            out += buf;
        }
        for (const auto& [error, count] : p.errors)
            out += "  failed " + std::to_string(count) + "x in " + error + "\n";
    }
    if (chart) {
        std::string drawn = draw_box_chart(summary, width);
        if (!drawn.empty()) out += "\n" + drawn;
    }
    if (!summary.comparisons.empty()) {
        out += "\n";
        for (const auto& c : summary.comparisons)
            out += c + "\n";
    }
    for (const auto& w : summary.warnings)
        out += "warning: " + w + "\n";
    for (const auto& leak : results.leaked)
        out += "error: could not remove " + leak + "\n";
    return out;
}

namespace {

std::string read_first_line_with(const char* path, const char* key) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key, 0) == 0) {
            std::string v = line.substr(std::string(key).size());
            auto colon = v.find_first_not_of(" \t:=");
            v = colon == std::string::npos ? "" : v.substr(colon);
            if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
            return v;
        }
    return {};
}

nlohmann::json machine_json() {
    nlohmann::json m;
    struct utsname u {};
    if (::uname(&u) == 0) {
        m["hostname"] = u.nodename;
        m["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.version;
        m["arch"] = u.machine;
    }
    m["os"] = read_first_line_with("/etc/os-release", "PRETTY_NAME");
    m["cpu"] = read_first_line_with("/proc/cpuinfo", "model name");
    m["cpus"] = std::thread::hardware_concurrency();
    long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0)
        m["memory_bytes"] = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
    return m;
}

nlohmann::json stats_json(const Stats& s) {
    if (s.n == 0) return {{"n", 0}};
    return {{"n", s.n},     {"min", s.min},   {"p25", s.p25},       {"p50", s.p50},
            {"p75", s.p75}, {"p90", s.p90},   {"p95", s.p95},       {"p99", s.p99},
            {"max", s.max}, {"mean", s.mean}, {"stddev", s.stddev}, {"outliers", s.outliers}};
}

nlohmann::json optional_ms(const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json();
}

std::string iso_time(double unix_seconds) {
    auto whole = static_cast<std::int64_t>(std::floor(unix_seconds));
    std::string s = rfc3339(whole);
    char ms[8];
    std::snprintf(ms, sizeof ms, ".%03d",
                  static_cast<int>((unix_seconds - static_cast<double>(whole)) * 1000));
    return s.substr(0, s.size() - 1) + ms + "Z";
}

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    return buf;
}

} // namespace

nlohmann::json export_json(const Results& results, const Summary& summary) {
    using nlohmann::json;
    const auto& set = results.settings;
    json j;
    j["format"] = "sbox-bench/1";
    j["sbox"] = {{"version", SBOX_VERSION}};
    j["machine"] = machine_json();
    j["started_at"] = iso_time(results.started_at);
    j["finished_at"] = iso_time(results.finished_at);
    j["interrupted_by"] = results.interrupted_by ? json(signal_name(results.interrupted_by)) : json();
    j["settings"] = {
        {"providers", set.providers},     {"runs", set.runs},
        {"warmup", set.warmup},           {"concurrency", set.concurrency},
        {"exec_repeat", set.exec_repeat}, {"image", set.image.empty() ? json() : json(set.image)},
        {"command", set.command},         {"seed", set.seed}};
    j["definitions"] = {
        {"times", "milliseconds, from a monotonic clock"},
        {"create", "create called .. returned (the provider says the sandbox exists)"},
        {"first_exec", "create called .. the first byte of the first command's output received"},
        {"exec", "the same command again on the warm sandbox, called .. returned"},
        {"kill", "kill called .. returned"},
        {"percentiles", "linear interpolation between closest ranks (Hyndman-Fan 7, numpy's default)"},
        {"stddev", "sample standard deviation (n - 1)"},
        {"outliers", "modified z-score 0.6745 (x - median) / MAD above 3.5"},
        {"counted", "samples of measured rounds that succeeded; failed ones keep their error, warmup and "
                    "interrupted ones are recorded but not counted"}};
    j["rounds"] = results.orders;
    j["providers"] = results.providers;
    json samples = json::array();
    for (const auto& s : results.samples)
        samples.push_back({{"provider", s.provider},
                           {"round", s.round},
                           {"warmup", s.warmup},
                           {"slot", s.slot},
                           {"started_at", s.started_at},
                           {"sandbox", s.sandbox.empty() ? json() : json(s.sandbox)},
                           {"ok", s.ok},
                           {"interrupted", s.interrupted},
                           {"failed_in", s.failed_in.empty() ? json() : json(s.failed_in)},
                           {"error", s.error.empty() ? json() : json(s.error)},
                           {"create_ms", optional_ms(s.create_ms)},
                           {"first_exec_ms", optional_ms(s.first_exec_ms)},
                           {"exec_ms", s.exec_ms},
                           {"kill_ms", optional_ms(s.kill_ms)},
                           {"silent", s.silent}});
    j["samples"] = std::move(samples);
    json bursts = json::array();
    for (const auto& b : results.bursts)
        bursts.push_back({{"provider", b.provider},
                          {"round", b.round},
                          {"warmup", b.warmup},
                          {"concurrency", b.concurrency},
                          {"ready", b.ready},
                          {"first_ready_ms", optional_ms(b.first_ready_ms)},
                          {"all_ready_ms", optional_ms(b.all_ready_ms)},
                          {"per_second", optional_ms(b.per_second)}});
    j["bursts"] = std::move(bursts);
    json sum = json::object();
    for (const auto& p : summary.providers) {
        json phases = json::object();
        for (const auto& [phase, st] : p.phases)
            phases[to_string(phase)] = stats_json(st);
        json e = {{"attempted", p.attempted},
                  {"ok", p.ok},
                  {"failed", p.failed},
                  {"interrupted", p.interrupted},
                  {"success_rate", p.success_rate()},
                  {"errors", p.errors},
                  {"phases", phases}};
        if (p.first_ready) e["first_ready"] = stats_json(*p.first_ready);
        if (p.all_ready) e["all_ready"] = stats_json(*p.all_ready);
        if (p.per_second) e["per_second"] = stats_json(*p.per_second);
        sum[p.name] = std::move(e);
    }
    j["summary"] = std::move(sum);
    j["comparisons"] = summary.comparisons;
    j["warnings"] = summary.warnings;
    j["leaked"] = results.leaked;
    return j;
}

std::string export_csv(const Results& results) {
    std::string out =
        "provider,round,warmup,slot,sandbox,started_at,phase,index,ms,ok,interrupted,failed_in,error\n";
    for (const auto& s : results.samples) {
        std::string common = csv_field(s.provider) + "," + std::to_string(s.round) + "," +
                             (s.warmup ? "true" : "false") + "," + std::to_string(s.slot) + "," +
                             csv_field(s.sandbox) + "," + number(s.started_at) + ",";
        std::string tail = std::string(",") + (s.ok ? "true" : "false") + "," +
                           (s.interrupted ? "true" : "false") + "," + csv_field(s.failed_in) + "," +
                           csv_field(s.error) + "\n";
        auto row = [&](const char* phase, int index, const std::optional<double>& ms) {
            out += common + phase + "," + std::to_string(index) + "," + (ms ? number(*ms) : std::string()) +
                   tail;
        };
        bool failure_row = !s.ok && !s.failed_in.empty();
        if (s.create_ms) row("create", 0, s.create_ms);
        if (s.first_exec_ms) row("first_exec", 0, s.first_exec_ms);
        for (std::size_t i = 0; i < s.exec_ms.size(); ++i)
            row("exec", static_cast<int>(i), s.exec_ms[i]);
        if (s.kill_ms) row("kill", 0, s.kill_ms);
        // The phase that failed, with no time: the row that says why.
        if (failure_row) row(s.failed_in.c_str(), 0, std::nullopt);
        if (!s.ok && s.failed_in.empty() && !s.create_ms) row("create", 0, std::nullopt); // interrupted early
    }
    return out;
}

std::string export_markdown(const Results& results, const Summary& summary) {
    const auto& set = results.settings;
    std::string out = "| provider | phase | n | ok | min | p50 | p90 | p95 | p99 | max | mean ± σ |\n"
                      "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n";
    for (const auto& p : summary.providers)
        for (const auto& [label, st] : stat_rows(p)) {
            out += "| " + p.name + " | " + label + " | " + std::to_string(st->n) + " | " +
                   percent(p.success_rate()) + " | ";
            if (st->n == 0) {
                out += "- | - | - | - | - | - | - |\n";
                continue;
            }
            out += format_ms(st->min) + " | " + format_ms(st->p50) + " | " + format_ms(st->p90) + " | " +
                   format_ms(st->p95) + " | " + format_ms(st->p99) + " | " + format_ms(st->max) + " | " +
                   mean_sd(*st) + " |\n";
        }
    out += "\n" + std::to_string(set.runs) + " rounds";
    if (set.warmup) out += " after " + std::to_string(set.warmup) + " warmup";
    if (set.concurrency > 1) out += ", bursts of " + std::to_string(set.concurrency);
    out += "; command `" + set.command + "`, then " + std::to_string(set.exec_repeat) +
           " more on the warm sandbox; first exec = create called until the command's first output byte.\n";
    for (const auto& c : summary.comparisons)
        out += "\n" + c + "\n";
    for (const auto& w : summary.warnings)
        out += "\n> warning: " + w + "\n";
    return out;
}

} // namespace sbox::cli::bench

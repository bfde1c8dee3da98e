// What sbox bench makes of its samples: per provider and phase statistics, warnings and comparisons, and the
// forms they are shown and exported in (terminal table and chart, JSON, CSV, Markdown, SVG).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/bench/model.hpp"
#include "cli/bench/stats.hpp"

namespace sbox::cli::bench {

struct ProviderSummary {
    std::string name;
    // Measured rounds only (warmup rounds are recorded, never counted). Interrupted sandboxes count nowhere.
    int attempted = 0, ok = 0, failed = 0, interrupted = 0, silent = 0;
    std::map<std::string, int> errors; // "PHASE: message" -> how often
    std::map<Phase, Stats> phases;
    // Bursts (--concurrency): over the measured rounds.
    std::optional<Stats> first_ready, all_ready, per_second;
    double success_rate() const { return attempted ? static_cast<double>(ok) / attempted : 0; }
};

struct Summary {
    std::vector<ProviderSummary> providers; // in the order given with -p
    std::vector<std::string> warnings;
    std::vector<std::string> comparisons; // "local was 120x faster than e2b to first exec (...)"
};

Summary summary_of(const Results& results);

// The samples of a phase for a provider: its successful, measured sandboxes' times.
std::vector<double> phase_samples(const Results& results, const std::string& provider, Phase phase);

// The table (one block per provider) and the warnings and comparisons. `chart`: a box chart of the time to
// first exec drawn with Unicode blocks, `width` columns wide.
std::string render_terminal(const Results& results, const Summary& summary, bool chart, int width);

nlohmann::json export_json(const Results& results, const Summary& summary);
std::string export_csv(const Results& results);
std::string export_markdown(const Results& results, const Summary& summary);
std::string export_svg(const Results& results, const Summary& summary);

} // namespace sbox::cli::bench

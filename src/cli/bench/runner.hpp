// Runs the benchmark: rounds of every provider in a shuffled order, each round one sandbox per provider
// (or a burst of --concurrency of them), each sandbox created, asked the command, asked again, and removed.
// Everything goes through the Provider interface, so every provider, present and future, is measured alike.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cli/bench/model.hpp"
#include "providers/provider.hpp"

namespace sbox::cli::bench {

struct Target {
    std::string name;
    Provider* provider = nullptr;
    CreateSpec create; // what each sandbox is created with (the CLI's checks already applied)
};

// Called after each sandbox (sequential) or burst: a line for the progress display.
using ProgressFn = std::function<void(const std::string& line)>;

// Runs `settings.runs` rounds (after `settings.warmup` ones) over `targets`. Every sandbox created is
// removed, also when the run fails or is interrupted (SIGINT, SIGTERM, SIGHUP: the run stops, in-flight
// sandboxes are removed at once, and the results so far are returned with interrupted_by set).
Results run(const Settings& settings, std::vector<Target> targets, const ProgressFn& progress);

// "12.3 ms", "0.412 ms", "252 ms", "12.5 s": three significant figures.
std::string format_ms(double ms);

} // namespace sbox::cli::bench

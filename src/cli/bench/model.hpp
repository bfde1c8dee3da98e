// What sbox bench measures and keeps: every sample, raw, with its round, its provider and its error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sbox::cli::bench {

// The phases of one sandbox's life that are timed, in milliseconds:
//   create      create() called .. it returned (the provider says the sandbox exists)
//   first_exec  create() called .. the first byte of the first command's output arrived (the headline)
//   exec        one more run of the same command on the warm sandbox, called .. returned (exec_repeat times)
//   kill        kill() called .. returned
enum class Phase { create, first_exec, exec, kill };
inline constexpr Phase kPhases[] = {Phase::create, Phase::first_exec, Phase::exec, Phase::kill};
const char* to_string(Phase phase); // create, first_exec, exec, kill
const char* title_of(Phase phase);  // create, first exec, exec, kill

struct Settings {
    std::vector<std::string> providers; // in the order given
    int runs = 10;                      // measured rounds
    int warmup = 1;                     // rounds before them, recorded but not counted
    int concurrency = 1;                // sandboxes started at once per provider and round (1: sequential)
    int exec_repeat = 3;                // warm execs per sandbox
    std::string image;                  // empty: each provider's default
    std::string command = "echo sbox-bench";
    std::uint64_t seed = 0; // of the rounds' provider order
};

// One sandbox's life. A failed one keeps its error and the phase it failed in, and counts in no timing.
struct Sample {
    std::string provider;
    int round = 0; // 1..runs; warmup rounds are numbered 1..warmup with warmup = true
    bool warmup = false;
    int slot = 0;          // which of a burst's sandboxes (0 when sequential)
    double started_at = 0; // unix time in seconds when create was called
    std::string sandbox;   // its id, once created
    bool ok = false;
    bool interrupted = false; // the run was stopped meanwhile: neither a success nor a failure
    std::string failed_in;    // the phase (or "cleanup") that failed
    std::string error;
    std::optional<double> create_ms, first_exec_ms, kill_ms;
    std::vector<double> exec_ms;
    bool silent = false; // the first command printed nothing: first_exec_ms runs to its end instead
};

// A burst (--concurrency C): C sandboxes of one provider started at once.
struct Burst {
    std::string provider;
    int round = 0;
    bool warmup = false;
    int concurrency = 0;
    int ready = 0;                        // how many answered their first command
    std::optional<double> first_ready_ms; // the burst's start .. the first sandbox ready
    std::optional<double> all_ready_ms;   // .. the last one ready (only when all were)
    std::optional<double> per_second;     // sandboxes ready per second of all_ready_ms
};

struct Results {
    Settings settings;
    std::vector<Sample> samples;
    std::vector<Burst> bursts;
    std::vector<std::vector<std::string>> orders;        // each round's provider order, warmup rounds first
    double started_at = 0, finished_at = 0;              // unix seconds
    int interrupted_by = 0;                              // the signal that stopped the run early (0: none)
    std::vector<std::string> leaked;                     // PROVIDER/ID that could not be removed, with why
    nlohmann::json providers = nlohmann::json::object(); // name -> Provider::about()
};

} // namespace sbox::cli::bench

// The statistics sbox bench reports, by stated definitions, untrimmed: every successful sample counts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace sbox::cli::bench {

struct Stats {
    std::size_t n = 0;
    double min = 0, p25 = 0, p50 = 0, p75 = 0, p90 = 0, p95 = 0, p99 = 0, max = 0;
    double mean = 0;
    double stddev = 0;        // the sample standard deviation (n - 1 in the denominator); 0 when n < 2
    std::size_t outliers = 0; // samples whose modified z-score exceeds kOutlierScore
};

// Iglewicz and Hoaglin's threshold for the modified z-score 0.6745 (x - median) / MAD.
inline constexpr double kOutlierScore = 3.5;

// The p-th percentile (0 <= p <= 100) of ascending `sorted` by linear interpolation between the closest
// ranks: h = (n - 1) p / 100, x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]) — Hyndman and Fan's
// definition 7, the default of numpy, R and Excel's PERCENTILE.INC. Requires a non-empty input.
double percentile(const std::vector<double>& sorted, double p);

// Every statistic of `samples` (any order). All zero when empty.
Stats summarize(std::vector<double> samples);

// How many samples the percentile needs before its estimate rests on more than the extreme values: 100 / (100
// - p) (p90: 10, p95: 20, p99: 100).
std::size_t samples_needed_for(double p);

// How many times larger b's median is than a's, with a 95% percentile-bootstrap interval (2000 resamples of
// each side, a fixed seed so that the same samples give the same interval).
struct Ratio {
    double value = 0;
    double low = 0, high = 0;
};
std::optional<Ratio> median_ratio(const std::vector<double>& a, const std::vector<double>& b,
                                  std::uint64_t seed = 0x5b0c5b0c);

} // namespace sbox::cli::bench

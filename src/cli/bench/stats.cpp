#include "cli/bench/stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace sbox::cli::bench {

double percentile(const std::vector<double>& sorted, double p) {
    if (sorted.size() == 1) return sorted.front();
    double h = static_cast<double>(sorted.size() - 1) * std::clamp(p, 0.0, 100.0) / 100.0;
    auto lo = static_cast<std::size_t>(std::floor(h));
    if (lo + 1 >= sorted.size()) return sorted.back();
    return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[lo + 1] - sorted[lo]);
}

namespace {

double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return percentile(v, 50);
}

} // namespace

Stats summarize(std::vector<double> samples) {
    Stats s;
    s.n = samples.size();
    if (samples.empty()) return s;
    std::sort(samples.begin(), samples.end());
    s.min = samples.front();
    s.max = samples.back();
    s.p25 = percentile(samples, 25);
    s.p50 = percentile(samples, 50);
    s.p75 = percentile(samples, 75);
    s.p90 = percentile(samples, 90);
    s.p95 = percentile(samples, 95);
    s.p99 = percentile(samples, 99);
    s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(s.n);
    if (s.n >= 2) {
        double sq = 0;
        for (double x : samples)
            sq += (x - s.mean) * (x - s.mean);
        s.stddev = std::sqrt(sq / static_cast<double>(s.n - 1));
    }
    std::vector<double> deviations;
    deviations.reserve(s.n);
    for (double x : samples)
        deviations.push_back(std::fabs(x - s.p50));
    double mad = median_of(std::move(deviations));
    if (mad > 0)
        for (double x : samples)
            if (std::fabs(0.6745 * (x - s.p50) / mad) > kOutlierScore) ++s.outliers;
    return s;
}

std::size_t samples_needed_for(double p) {
    return static_cast<std::size_t>(std::ceil(100.0 / (100.0 - p) - 1e-9));
}

std::optional<Ratio> median_ratio(const std::vector<double>& a, const std::vector<double>& b,
                                  std::uint64_t seed) {
    if (a.empty() || b.empty()) return std::nullopt;
    double ma = median_of(a), mb = median_of(b);
    if (ma <= 0) return std::nullopt;
    Ratio r;
    r.value = mb / ma;
    constexpr int kResamples = 2000;
    std::mt19937_64 rng(seed);
    std::vector<double> ratios, ra(a.size()), rb(b.size());
    ratios.reserve(kResamples);
    std::uniform_int_distribution<std::size_t> pick_a(0, a.size() - 1), pick_b(0, b.size() - 1);
    for (int i = 0; i < kResamples; ++i) {
        for (auto& x : ra)
            x = a[pick_a(rng)];
        for (auto& x : rb)
            x = b[pick_b(rng)];
        double da = median_of(ra);
        if (da > 0) ratios.push_back(median_of(rb) / da);
    }
    if (ratios.empty()) return std::nullopt;
    std::sort(ratios.begin(), ratios.end());
    r.low = percentile(ratios, 2.5);
    r.high = percentile(ratios, 97.5);
    return r;
}

} // namespace sbox::cli::bench

// The charts of time to first exec: a box chart in Unicode blocks for the terminal, and an SVG for browsers.
// Both put every provider on one axis, logarithmic when the times span more than a factor of 20.
#pragma once

#include <string>
#include <vector>

#include "cli/bench/report.hpp"

namespace sbox::cli::bench {

struct Axis {
    double lo = 0, hi = 1;
    bool log = false;
    std::vector<double> ticks; // within [lo, hi]
    // Where v falls, from 0 (lo) to 1 (hi).
    double position(double v) const;
};

// An axis that holds [min, max] with round tick values.
Axis axis_for(double min, double max);
// A tick's value: "0", "0.5 ms", "20 ms", "1 s".
std::string tick_label(double ms);

// One line per provider: whiskers from min to max, the box from p25 to p75, the median marked; "" when no
// provider has a sample.
std::string draw_box_chart(const Summary& summary, int width);

} // namespace sbox::cli::bench

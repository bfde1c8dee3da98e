#include "cli/bench/chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/bench/runner.hpp"

namespace sbox::cli::bench {

double Axis::position(double v) const {
    if (hi <= lo) return 0;
    double p = log ? (std::log10(std::max(v, lo)) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
                   : (v - lo) / (hi - lo);
    return std::clamp(p, 0.0, 1.0);
}

Axis axis_for(double min, double max) {
    Axis a;
    if (!(max > 0)) max = 1;
    if (min > 0 && max / min > 20) {
        a.log = true;
        a.lo = std::pow(10, std::floor(std::log10(min)));
        a.hi = std::pow(10, std::ceil(std::log10(max)));
        if (a.hi <= a.lo) a.hi = a.lo * 10;
        for (double t = a.lo; t <= a.hi * 1.0001; t *= 10)
            a.ticks.push_back(t);
        return a;
    }
    // Linear from 0: a bar's length then means its time. Steps of 1, 2 or 5 times a power of ten.
    double raw = max / 5;
    double magnitude = std::pow(10, std::floor(std::log10(raw)));
    double step = magnitude;
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * magnitude >= raw) {
            step = m * magnitude;
            break;
        }
    a.lo = 0;
    a.hi = std::ceil(max / step) * step;
    for (double t = 0; t <= a.hi + step / 2; t += step)
        a.ticks.push_back(t);
    return a;
}

std::string tick_label(double ms) {
    char buf[32];
    if (ms == 0) return "0";
    if (ms >= 1000)
        std::snprintf(buf, sizeof buf, "%g s", ms / 1000);
    else
        std::snprintf(buf, sizeof buf, "%g ms", ms);
    return buf;
}

std::string draw_box_chart(const Summary& summary, int width) {
    double lo = 0, hi = 0;
    bool any = false;
    std::size_t label_width = 0;
    for (const auto& p : summary.providers) {
        label_width = std::max(label_width, p.name.size());
        const auto& st = p.phases.at(Phase::first_exec);
        if (st.n == 0) continue;
        lo = any ? std::min(lo, st.min) : st.min;
        hi = any ? std::max(hi, st.max) : st.max;
        any = true;
    }
    if (!any) return {};
    Axis axis = axis_for(lo, hi);
    const int cols = std::max(20, width - static_cast<int>(label_width) - 4);
    auto column = [&](double v) { return static_cast<int>(std::lround(axis.position(v) * (cols - 1))); };

    std::string out = "time to first exec" + std::string(axis.log ? " (log scale)" : "") +
                      ": ├ min ─ max ┤, █ p25-p75, ┃ median\n";
    for (const auto& p : summary.providers) {
        const auto& st = p.phases.at(Phase::first_exec);
        std::string label = p.name + std::string(label_width - p.name.size(), ' ');
        if (st.n == 0) {
            out += "  " + label + "  (no successful sandbox)\n";
            continue;
        }
        std::vector<std::string> cells(static_cast<std::size_t>(cols), " ");
        int a = column(st.min), b = column(st.max), q1 = column(st.p25), q3 = column(st.p75),
            m = column(st.p50);
        for (int c = a; c <= b; ++c)
            cells[static_cast<std::size_t>(c)] = "─";
        for (int c = q1; c <= q3; ++c)
            cells[static_cast<std::size_t>(c)] = "█";
        if (b > a) {
            cells[static_cast<std::size_t>(a)] = "├";
            cells[static_cast<std::size_t>(b)] = "┤";
        }
        cells[static_cast<std::size_t>(m)] = "┃";
        std::string line;
        for (const auto& c : cells)
            line += c;
        while (line.size() >= 1 && line.back() == ' ')
            line.pop_back();
        out += "  " + label + "  " + line + "  " + format_ms(st.p50) + "\n";
    }
    // The axis: tick marks and their values under them.
    std::string marks(static_cast<std::size_t>(cols), ' '), values(static_cast<std::size_t>(cols) + 16, ' ');
    for (double t : axis.ticks) {
        int c = column(t);
        marks[static_cast<std::size_t>(c)] = '|';
        std::string v = tick_label(t);
        std::size_t at = static_cast<std::size_t>(std::max(0, c - static_cast<int>(v.size()) / 2));
        bool free = true;
        for (std::size_t i = (at > 0 ? at - 1 : 0); i < at + v.size() + 1 && i < values.size(); ++i)
            if (values[i] != ' ') free = false;
        if (free && at + v.size() <= values.size()) values.replace(at, v.size(), v);
    }
    while (!values.empty() && values.back() == ' ')
        values.pop_back();
    std::string indent(label_width + 4, ' ');
    out += indent + marks + "\n" + indent + values + "\n";
    return out;
}

} // namespace sbox::cli::bench

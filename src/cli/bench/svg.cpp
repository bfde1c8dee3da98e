// export_svg: a box plot of every provider's time to first exec, with each sample as a dot, on one axis.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/bench/chart.hpp"
#include "cli/bench/runner.hpp"
#include "cli/output.hpp"

namespace sbox::cli::bench {

namespace {

std::string xml_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&apos;";
            break;
        default:
            // Control characters are not allowed in XML 1.0.
            if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out += c;
        }
    }
    return out;
}

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                   "#9467bd", "#8c564b", "#e377c2"};

} // namespace

std::string export_svg(const Results& results, const Summary& summary) {
    const double width = 960, left = 150, right = 110, top = 92, row = 64, bottom = 64;
    const double plot_w = width - left - right;
    const double height =
        top + row * static_cast<double>(std::max<std::size_t>(1, summary.providers.size())) + bottom;

    double lo = 0, hi = 0;
    bool any = false;
    for (const auto& p : summary.providers) {
        const auto& st = p.phases.at(Phase::first_exec);
        if (st.n == 0) continue;
        lo = any ? std::min(lo, st.min) : st.min;
        hi = any ? std::max(hi, st.max) : st.max;
        any = true;
    }
    Axis axis = axis_for(any ? lo : 1, any ? hi : 10);
    auto x = [&](double v) { return left + axis.position(v) * plot_w; };
    const double plot_bottom =
        top + row * static_cast<double>(std::max<std::size_t>(1, summary.providers.size()));

    const auto& set = results.settings;
    std::string subtitle = "from create called to the first byte of the output of `" + set.command + "`; " +
                           std::to_string(set.runs) + " rounds";
    if (set.concurrency > 1) subtitle += " of " + std::to_string(set.concurrency) + " at once";
    const std::string legend = "box: p25-p75, line: median, whiskers: min-max, dots: every sample";

    std::string o;
    o += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
         "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
         "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n";
    o += "<title>sbox bench: time to first exec</title>\n";
    o += "<rect x=\"0\" y=\"0\" width=\"" + num(width) + "\" height=\"" + num(height) +
         "\" fill=\"#ffffff\"/>\n";
    o += "<text x=\"" + num(left) +
         "\" y=\"28\" font-size=\"17\" font-weight=\"bold\">Time to first exec</text>\n";
    o += "<text x=\"" + num(left) + "\" y=\"50\" fill=\"#555555\">" + xml_escape(subtitle) + "</text>\n";
    o += "<text x=\"" + num(left) + "\" y=\"68\" fill=\"#555555\" font-size=\"11\">" + xml_escape(legend) +
         "</text>\n";

    // Grid and axis.
    o += "<g class=\"axis\" stroke=\"#dddddd\">\n";
    for (double t : axis.ticks)
        o += "<line x1=\"" + num(x(t)) + "\" y1=\"" + num(top) + "\" x2=\"" + num(x(t)) + "\" y2=\"" +
             num(plot_bottom) + "\"/>\n";
    o += "<line x1=\"" + num(left) + "\" y1=\"" + num(plot_bottom) + "\" x2=\"" + num(left + plot_w) +
         "\" y2=\"" + num(plot_bottom) + "\" stroke=\"#333333\"/>\n";
    o += "</g>\n<g class=\"ticks\" text-anchor=\"middle\" fill=\"#333333\">\n";
    for (double t : axis.ticks)
        o += "<text x=\"" + num(x(t)) + "\" y=\"" + num(plot_bottom + 18) + "\">" +
             xml_escape(tick_label(t)) + "</text>\n";
    o += "<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(plot_bottom + 42) + "\">time to first exec" +
         (axis.log ? " (logarithmic scale)" : "") + "</text>\n";
    o += "</g>\n";

    // One series per provider.
    for (std::size_t i = 0; i < summary.providers.size(); ++i) {
        const auto& p = summary.providers[i];
        const auto& st = p.phases.at(Phase::first_exec);
        const std::string color = kColors[i % std::size(kColors)];
        const double mid = top + row * static_cast<double>(i) + row / 2;
        o += "<g class=\"series\" data-provider=\"" + xml_escape(p.name) + "\">\n";
        o += "<text x=\"" + num(left - 12) + "\" y=\"" + num(mid - 2) +
             "\" text-anchor=\"end\" font-weight=\"bold\">" + xml_escape(p.name) + "</text>\n";
        char rate[64];
        std::snprintf(rate, sizeof rate, "%d of %d ok", p.ok, p.attempted);
        o += "<text x=\"" + num(left - 12) + "\" y=\"" + num(mid + 14) +
             "\" text-anchor=\"end\" fill=\"#777777\" font-size=\"11\">" + rate + "</text>\n";
        if (st.n == 0) {
            o += "<text x=\"" + num(left + 8) + "\" y=\"" + num(mid + 4) +
                 "\" fill=\"#777777\">no successful sandbox</text>\n</g>\n";
            continue;
        }
        const double box_h = 22;
        o += "<line x1=\"" + num(x(st.min)) + "\" y1=\"" + num(mid) + "\" x2=\"" + num(x(st.max)) +
             "\" y2=\"" + num(mid) + "\" stroke=\"" + color + "\"/>\n";
        for (double v : {st.min, st.max})
            o += "<line x1=\"" + num(x(v)) + "\" y1=\"" + num(mid - 7) + "\" x2=\"" + num(x(v)) + "\" y2=\"" +
                 num(mid + 7) + "\" stroke=\"" + color + "\"/>\n";
        o += "<rect x=\"" + num(x(st.p25)) + "\" y=\"" + num(mid - box_h / 2) + "\" width=\"" +
             num(std::max(1.0, x(st.p75) - x(st.p25))) + "\" height=\"" + num(box_h) + "\" fill=\"" + color +
             "\" fill-opacity=\"0.25\" stroke=\"" + color + "\"/>\n";
        o += "<line x1=\"" + num(x(st.p50)) + "\" y1=\"" + num(mid - box_h / 2) + "\" x2=\"" +
             num(x(st.p50)) + "\" y2=\"" + num(mid + box_h / 2) + "\" stroke=\"" + color +
             "\" stroke-width=\"2.5\"/>\n";
        // Every sample, spread over the row's height by its index so that equal times stay visible.
        auto samples = phase_samples(results, p.name, Phase::first_exec);
        for (std::size_t k = 0; k < samples.size(); ++k) {
            double jitter = (static_cast<double>((k * 7919) % 17) / 16.0 - 0.5) * (box_h + 10);
            o += "<circle class=\"sample\" cx=\"" + num(x(samples[k])) + "\" cy=\"" + num(mid + jitter) +
                 "\" r=\"2\" fill=\"" + color + "\" fill-opacity=\"0.55\"/>\n";
        }
        o += "<text x=\"" + num(left + plot_w + 8) + "\" y=\"" + num(mid + 4) + "\">p50 " +
             xml_escape(format_ms(st.p50)) + "</text>\n";
        o += "</g>\n";
    }
    o += "<text x=\"" + num(width - 12) + "\" y=\"" + num(height - 10) +
         "\" text-anchor=\"end\" fill=\"#999999\" font-size=\"10\">sbox " SBOX_VERSION " bench, " +
         xml_escape(rfc3339(static_cast<std::int64_t>(results.started_at))) + "</text>\n";
    o += "</svg>\n";
    return o;
}

} // namespace sbox::cli::bench

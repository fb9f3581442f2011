// handgraph/eval/pck_svg.hpp: 3D PCK curves (eval/metrics.hpp) as a small SVG picture,
// one line per method with its AUC in the legend. Returns the text; the caller writes
// it. (eval/pck_image.hpp draws one run's curve as a raster image instead.)
// Depends on eval/metrics.hpp.
#pragma once
#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "metrics.hpp"

namespace handgraph {

namespace detail {
inline std::string svg_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '<') o += "&lt;";
        else if (c == '>') o += "&gt;";
        else if (c == '&') o += "&amp;";
        else if (c == '"') o += "&quot;";
        else o += c;
    }
    return o;
}
inline std::string svg_number(double v, const char* fmt = "%.2f") {
    char b[64];
    std::snprintf(b, sizeof b, fmt, v);
    return b;
}
}  // namespace detail

// curves: (label, curve) pairs; all must share their thresholds. y runs from y_min to 1.
inline std::string pck_curve_svg(const std::vector<std::pair<std::string, pck_curve>>& curves,
                                 const std::string& title = "3D PCK", double y_min = 0.0) {
    if (curves.empty()) throw error("pck_curve_svg: no curves");
    const auto& t = curves[0].second.thresholds_mm;
    if (t.size() < 2) throw error("pck_curve_svg: needs at least two thresholds");
    for (const auto& c : curves)
        if (c.second.thresholds_mm != t || c.second.pck.size() != t.size())
            throw error("pck_curve_svg: curve '" + c.first + "' has other thresholds");
    if (!(y_min < 1.0)) throw error("pck_curve_svg: y_min must be below 1");
    const double W = 480, H = 360, left = 60, right = 20, top = 40, bottom = 50;
    auto X = [&](double mm) { return left + (mm - t.front()) / (t.back() - t.front()) * (W - left - right); };
    auto Y = [&](double p) { return top + (1.0 - (std::clamp(p, y_min, 1.0) - y_min) / (1.0 - y_min)) * (H - top - bottom); };
    static const char* colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
    std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"480\" height=\"360\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s += "<rect width=\"480\" height=\"360\" fill=\"white\"/>\n";
    s += "<text x=\"240\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" + detail::svg_escape(title) + "</text>\n";
    // axes and grid
    for (int k = 0; k <= 5; ++k) {
        double p = y_min + (1.0 - y_min) * k / 5.0;
        s += "<line x1=\"" + detail::svg_number(left) + "\" y1=\"" + detail::svg_number(Y(p)) + "\" x2=\"" + detail::svg_number(W - right) + "\" y2=\"" +
             detail::svg_number(Y(p)) + "\" stroke=\"#ddd\"/>\n";
        s += "<text x=\"" + detail::svg_number(left - 6) + "\" y=\"" + detail::svg_number(Y(p) + 4) + "\" text-anchor=\"end\">" + detail::svg_number(p) + "</text>\n";
    }
    for (int k = 0; k <= 6; ++k) {
        double mm = t.front() + (t.back() - t.front()) * k / 6.0;
        s += "<text x=\"" + detail::svg_number(X(mm)) + "\" y=\"" + detail::svg_number(H - bottom + 18) + "\" text-anchor=\"middle\">" +
             detail::svg_number(mm, "%.0f") + "</text>\n";
    }
    s += "<text x=\"" + detail::svg_number((left + W - right) / 2) + "\" y=\"" + detail::svg_number(H - 10) +
         "\" text-anchor=\"middle\">error threshold (mm)</text>\n";
    s += "<rect x=\"" + detail::svg_number(left) + "\" y=\"" + detail::svg_number(top) + "\" width=\"" + detail::svg_number(W - left - right) +
         "\" height=\"" + detail::svg_number(H - top - bottom) + "\" fill=\"none\" stroke=\"black\"/>\n";
    for (std::size_t c = 0; c < curves.size(); ++c) {
        const char* col = colors[c % 6];
        s += "<polyline fill=\"none\" stroke=\"" + std::string(col) + "\" stroke-width=\"2\" points=\"";
        for (std::size_t i = 0; i < t.size(); ++i)
            s += (i ? " " : "") + detail::svg_number(X(t[i])) + "," + detail::svg_number(Y(curves[c].second.pck[i]));
        s += "\"/>\n";
        double ly = H - bottom - 12 - 16.0 * double(curves.size() - 1 - c);
        s += "<text x=\"" + detail::svg_number(W - right - 8) + "\" y=\"" + detail::svg_number(ly) + "\" text-anchor=\"end\" fill=\"" + col + "\">" +
             detail::svg_escape(curves[c].first) + " (AUC " + detail::svg_number(curves[c].second.auc, "%.3f") + ")</text>\n";
    }
    s += "</svg>\n";
    return s;
}

}  // namespace handgraph

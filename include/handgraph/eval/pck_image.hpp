// handgraph/eval/pck_image.hpp: the 3D PCK curve (eval/metrics.hpp) of one run as a
// raster picture (an image, which hand_eval writes as pck.png): axes, grid, curve and
// a legend with the AUC. eval/pck_svg.hpp draws several curves as SVG text instead.
// Depends on image.hpp, eval/metrics.hpp, eval/render.hpp (lines, discs) and
// eval/font.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "../error.hpp"
#include "../image.hpp"
#include "font.hpp"
#include "metrics.hpp"
#include "render.hpp"

namespace handgraph {

// The PCK curve as a 640 x 480 picture: axes with ticks and labels, grid, the curve
// with markers, and a legend with the AUC. y runs from 0 to 1.
inline image pck_plot_image(const pck_curve& curve, const std::string& title, const std::string& label = "handgraph") {
    const auto& t = curve.thresholds_mm;
    if (t.size() < 2 || curve.pck.size() != t.size()) throw error("pck_plot_image: needs a curve of at least two thresholds");
    const int W = 640, H = 480, left = 78, right = 24, top = 48, bottom = 66;
    const bgr white{255, 255, 255}, black{0, 0, 0}, grid{225, 225, 225}, line{40, 40, 214}, text_col{30, 30, 30};
    image img(W, H);
    std::fill(img.pixels.begin(), img.pixels.end(), std::uint8_t(255));
    const double x0 = left, x1 = W - right, y0 = H - bottom, y1 = top;  // y0: PCK 0, y1: PCK 1
    auto X = [&](double mm) { return x0 + (mm - t.front()) / (t.back() - t.front()) * (x1 - x0); };
    auto Y = [&](double p) { return y0 + std::clamp(p, 0.0, 1.0) * (y1 - y0); };
    // grid and y ticks
    for (int k = 0; k <= 10; ++k) {
        double p = k / 10.0;
        int y = int(std::lround(Y(p)));
        if (k % 2 == 0) {
            draw_line(img, x0, y, x1, y, grid, 1);
            char b[16];
            std::snprintf(b, sizeof b, "%.1f", p);
            draw_text(img, left - 10 - text_width(b, 2), y - font_cap_height, b, text_col, 2);
        }
        draw_line(img, x0 - 6, y, x0, y, black, 1);
    }
    // x ticks every 5 mm (or at every threshold when the range is short)
    double span = t.back() - t.front(), step = span >= 10 ? 5 : span / 2;
    for (double mm = std::ceil(t.front() / step) * step; mm <= t.back() + 1e-9; mm += step) {
        int x = int(std::lround(X(mm)));
        draw_line(img, x, y1, x, y0, grid, 1);
        draw_line(img, x, y0, x, y0 + 6, black, 1);
        char b[16];
        std::snprintf(b, sizeof b, "%g", mm);
        draw_text(img, x - text_width(b, 2) / 2, int(y0) + 12, b, text_col, 2);
    }
    // frame
    draw_line(img, x0, y0, x1, y0, black, 1);
    draw_line(img, x0, y1, x1, y1, black, 1);
    draw_line(img, x0, y0, x0, y1, black, 1);
    draw_line(img, x1, y0, x1, y1, black, 1);
    // labels and title
    const std::string xl = "error threshold (mm)", yl = "3D PCK";
    draw_text(img, int((x0 + x1) / 2) - text_width(xl, 2) / 2, H - 30, xl, text_col, 2);
    draw_text(img, 10, int((y0 + y1) / 2) + text_width(yl, 2) / 2, yl, text_col, 2, true);
    std::string ti = title;
    int tscale = text_width(ti, 2) <= W - 20 ? 2 : 1;
    if (text_width(ti, tscale) > W - 10) ti = ti.substr(0, std::size_t((W - 10) / font_advance - 3)) + "...";
    draw_text(img, W / 2 - text_width(ti, tscale) / 2, 14, ti, black, tscale);
    // curve
    for (std::size_t i = 1; i < t.size(); ++i) draw_line(img, X(t[i - 1]), Y(curve.pck[i - 1]), X(t[i]), Y(curve.pck[i]), line, 3);
    for (std::size_t i = 0; i < t.size(); ++i) draw_disc(img, X(t[i]), Y(curve.pck[i]), 3.5, line);
    // legend: the first corner of the axes (bottom right, top left, top right, bottom
    // left) whose box the curve does not cross
    char auc[64];
    std::snprintf(auc, sizeof auc, " (AUC %.3f)", curve.auc);
    std::string legend = label + auc;
    const int lw = text_width(legend, 2) + 46, lh = 30;
    auto crosses = [&](int bx, int by) {
        for (std::size_t i = 1; i < t.size(); ++i)
            for (int s = 0; s <= 64; ++s) {
                double a = s / 64.0;
                double px = X(t[i - 1]) * (1 - a) + X(t[i]) * a, py = Y(curve.pck[i - 1]) * (1 - a) + Y(curve.pck[i]) * a;
                if (px >= bx - 6 && px <= bx + lw + 6 && py >= by - 6 && py <= by + lh + 6) return true;
            }
        return false;
    };
    const int corners[4][2] = {{int(x1) - lw - 10, int(y0) - lh - 10}, {int(x0) + 10, int(y1) + 10},
                               {int(x1) - lw - 10, int(y1) + 10}, {int(x0) + 10, int(y0) - lh - 10}};
    int lx = corners[0][0], ly = corners[0][1];
    for (const auto& c : corners)
        if (!crosses(c[0], c[1])) {
            lx = c[0];
            ly = c[1];
            break;
        }
    detail::fill_rect(img, lx, ly, lx + lw, ly + lh, white);
    draw_line(img, lx, ly, lx + lw, ly, black, 1);
    draw_line(img, lx, ly + lh, lx + lw, ly + lh, black, 1);
    draw_line(img, lx, ly, lx, ly + lh, black, 1);
    draw_line(img, lx + lw, ly, lx + lw, ly + lh, black, 1);
    draw_line(img, lx + 8, ly + lh / 2, lx + 36, ly + lh / 2, line, 3);
    draw_disc(img, lx + 22, ly + lh / 2, 3.5, line);
    draw_text(img, lx + 42, ly + lh / 2 - font_cap_height, legend, text_col, 2);
    return img;
}

}  // namespace handgraph

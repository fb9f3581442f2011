// handgraph/eval/evaluate.hpp: the evaluation loop of examples/hand_eval as a library,
// and the pictures it draws.
//
//   handgraph::real_world_testset ds("data/real_world_testset");
//   auto model = handgraph::model::load("weights/stb.safetensors");
//   handgraph::evaluation_options o;  o.limit = 20;  o.threads = 2;
//   handgraph::evaluation_run run = handgraph::run_evaluation(ds, model, o);
//   handgraph::pose_metrics m = handgraph::evaluate_run(run);
//
// - run_evaluation: frames 0..N-1 in order, in chunks of `batch` crops through
//   model::estimate_batch; the estimates do not depend on threads or batch. With a
//   checkpoint path, the estimates done so far are written there (atomically) after every
//   chunk, and `resume` continues from it: a run killed at any point and resumed gives
//   the same estimates as one that was never interrupted.
// - Outputs (write_evaluation_outputs): pose_estimations.mat (image_ids, image_paths,
//   gt_pose_xyz, est_pose_xyz: N x 21 x 3, cm; est_uv: N x 21 x 2, crop pixels),
//   summary.json, per_frame.csv, pck.png, and with vis > 0, vis/<frame>.png (crop with the 2D skeleton | crop with the predicted
//   mesh, shaded) and vis/<frame>.obj. Every file is written to a temporary name and
//   renamed; summary.json comes last.
// - Pictures: a 5x7 bitmap font (draw_text), the PCK curve as a raster plot
//   (pck_plot_image) and a z-buffered, flat-shaded triangle rasteriser (render_mesh).
//
// Depends on pipeline.hpp, io.hpp, json.hpp, mat.hpp, image.hpp, eval/datasets.hpp,
// eval/metrics.hpp, eval/render.hpp.
#pragma once
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "../error.hpp"
#include "../image.hpp"
#include "../io.hpp"
#include "../json.hpp"
#include "../mat.hpp"
#include "../pipeline.hpp"
#include "datasets.hpp"
#include "metrics.hpp"
#include "pose.hpp"
#include "render.hpp"

namespace handgraph {

// ---------------------------------------------------------------- bitmap font

namespace detail {

// 5-pixel-wide glyphs, 7 rows above the baseline and up to 2 below ('#' = ink).
struct font_glyph {
    char c;
    std::array<const char*, 9> rows;  // top to bottom; nullptr past the last row
};

inline const std::array<const font_glyph*, 128>& font_table() {
    static const font_glyph glyphs[] = {
        {' ', {".....", ".....", ".....", ".....", ".....", ".....", "....."}},
        {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
        {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
        {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
        {'3', {"####.", "....#", "....#", ".###.", "....#", "....#", "####."}},
        {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
        {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
        {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
        {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
        {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
        {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
        {'A', {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
        {'B', {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}},
        {'C', {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}},
        {'D', {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."}},
        {'E', {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}},
        {'F', {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}},
        {'G', {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}},
        {'H', {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
        {'I', {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
        {'J', {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
        {'K', {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}},
        {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},
        {'M', {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}},
        {'N', {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}},
        {'O', {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
        {'P', {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}},
        {'Q', {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}},
        {'R', {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}},
        {'S', {".####", "#....", "#....", ".###.", "....#", "....#", "####."}},
        {'T', {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
        {'U', {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
        {'V', {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
        {'W', {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}},
        {'X', {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}},
        {'Y', {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}},
        {'Z', {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}},
        {'a', {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}},
        {'b', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."}},
        {'c', {".....", ".....", ".###.", "#....", "#....", "#...#", ".###."}},
        {'d', {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"}},
        {'e', {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}},
        {'f', {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."}},
        {'g', {".....", ".....", ".####", "#...#", "#...#", ".####", "....#", "#...#", ".###."}},
        {'h', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
        {'i', {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}},
        {'j', {"...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
        {'k', {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}},
        {'l', {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
        {'m', {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#"}},
        {'n', {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
        {'o', {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}},
        {'p', {".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."}},
        {'q', {".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"}},
        {'r', {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}},
        {'s', {".....", ".....", ".###.", "#....", ".###.", "....#", "####."}},
        {'t', {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."}},
        {'u', {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}},
        {'v', {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
        {'w', {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}},
        {'x', {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}},
        {'y', {".....", ".....", "#...#", "#...#", "#...#", ".####", "....#", "#...#", ".###."}},
        {'z', {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}},
        {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
        {',', {".....", ".....", ".....", ".....", ".....", ".##..", ".##..", "..#..", ".#..."}},
        {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
        {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
        {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
        {'-', {".....", ".....", ".....", "#####", ".....", ".....", "....."}},
        {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
        {'=', {".....", ".....", "#####", ".....", "#####", ".....", "....."}},
        {'/', {"....#", "....#", "...#.", "..#..", ".#...", "#....", "#...."}},
        {'%', {"##..#", "##..#", "...#.", "..#..", ".#...", "#..##", "#..##"}},
        {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
        {'\'', {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."}},
        {'[', {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."}},
        {']', {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."}},
        {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},
        {'*', {".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."}},
        {'#', {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."}},
    };
    static const std::array<const font_glyph*, 128> table = [] {
        std::array<const font_glyph*, 128> t{};
        for (const auto& g : glyphs) t[std::size_t(static_cast<unsigned char>(g.c))] = &g;
        return t;
    }();
    return table;
}

// The glyph of c, or '?' for characters outside the font.
inline const font_glyph& font_glyph_of(char c) {
    const auto& t = font_table();
    unsigned char u = static_cast<unsigned char>(c);
    const font_glyph* g = u < 128 ? t[u] : nullptr;
    return g ? *g : *t[std::size_t('?')];
}

inline void put_pixel(image& img, int x, int y, bgr color) {
    if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
    std::uint8_t* p = img.row(y) + std::size_t(x) * 3;
    p[0] = color.b;
    p[1] = color.g;
    p[2] = color.r;
}

inline void fill_rect(image& img, int x0, int y0, int x1, int y1, bgr color) {  // inclusive corners
    for (int y = std::max(0, y0); y <= std::min(img.height - 1, y1); ++y)
        for (int x = std::max(0, x0); x <= std::min(img.width - 1, x1); ++x) put_pixel(img, x, y, color);
}

}  // namespace detail

// Glyph cell: 6 x 10 pixels at scale 1 (5 of ink, 1 of spacing; 7 above the baseline).
constexpr int font_advance = 6, font_line_height = 10, font_cap_height = 7;

inline int text_width(const std::string& text, int scale = 1) {
    return text.empty() ? 0 : int(text.size()) * font_advance * scale - scale;
}

// Draws `text` with its top-left corner at (x, y); vertical = true turns it 90 degrees
// counter-clockwise (reading bottom to top, (x, y) then being the bottom-left corner).
// Characters outside the font are drawn as '?'. Clipped to the image.
inline void draw_text(image& img, int x, int y, const std::string& text, bgr color, int scale = 1, bool vertical = false) {
    scale = std::max(1, scale);
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto& glyph = detail::font_glyph_of(text[i]);
        for (int gy = 0; gy < 9 && glyph.rows[std::size_t(gy)]; ++gy)
            for (int gx = 0; gx < 5; ++gx) {
                if (glyph.rows[std::size_t(gy)][gx] != '#') continue;
                int cx = int(i) * font_advance + gx;  // along the text
                for (int sy = 0; sy < scale; ++sy)
                    for (int sx = 0; sx < scale; ++sx) {
                        int along = cx * scale + sx, across = gy * scale + sy;
                        if (vertical) detail::put_pixel(img, x + across, y - along, color);
                        else detail::put_pixel(img, x + along, y + across, color);
                    }
            }
    }
}

// ---------------------------------------------------------------- PCK plot (raster)

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

// ---------------------------------------------------------------- mesh rasteriser

struct mesh_render_style {
    bgr color{150, 190, 235};  // BGR: a light skin tone
    double alpha = 0.75;       // opacity of the mesh over the picture
    double ambient = 0.3;      // light that every face gets
};

// Renders a triangle mesh given in camera space (cm; vertices n x 3, faces m x 3) into
// img: each vertex is projected with cam = fx, fy, u0, v0 and the crop box [x, y, w, h]
// mapped onto the image (as eval/render.hpp's project_to_crop), pixel (px, py) sampled at
// its integer coordinates (the pipeline's uv convention). Hidden surfaces by a z-buffer
// (1/z interpolated linearly in the image: perspective-correct); each face flat-shaded by
// Lambert's law with a light at the camera, two-sided, then alpha-blended over img.
// Faces with a vertex at z <= 0 or not finite are skipped. Returns the pixels covered.
inline std::size_t render_mesh(image& img, const std::vector<float>& vertices, const std::vector<std::int32_t>& faces,
                               const std::array<double, 4>& cam, const std::array<int, 4>& bbox, const mesh_render_style& style = {}) {
    if (img.empty() || bbox[2] <= 0 || bbox[3] <= 0) return 0;
    const std::size_t nv = vertices.size() / 3;
    std::vector<double> sx(nv), sy(nv), iz(nv);
    std::vector<char> ok(nv, 0);
    for (std::size_t v = 0; v < nv; ++v) {
        double X = vertices[3 * v], Y = vertices[3 * v + 1], Z = vertices[3 * v + 2];
        if (!(Z > 0) || !std::isfinite(X) || !std::isfinite(Y) || !std::isfinite(Z)) continue;
        double u = X / Z * cam[0] + cam[2], w = Y / Z * cam[1] + cam[3];
        sx[v] = (u - bbox[0]) / bbox[2] * img.width;
        sy[v] = (w - bbox[1]) / bbox[3] * img.height;
        iz[v] = 1.0 / Z;
        ok[v] = std::isfinite(sx[v]) && std::isfinite(sy[v]) && std::abs(sx[v]) < 1e9 && std::abs(sy[v]) < 1e9;
    }
    const std::size_t npx = std::size_t(img.width) * std::size_t(img.height);
    std::vector<double> zbuf(npx, 0.0);   // 1/z of the nearest face so far (0: none)
    std::vector<float> shade(npx, -1.f);  // its brightness
    for (std::size_t f = 0; f + 2 < faces.size(); f += 3) {
        std::size_t a = std::size_t(faces[f]), b = std::size_t(faces[f + 1]), c = std::size_t(faces[f + 2]);
        if (a >= nv || b >= nv || c >= nv || !ok[a] || !ok[b] || !ok[c]) continue;
        // Lambert with a head light: |n . direction to the camera|.
        double e1[3], e2[3], n[3], cen[3];
        for (int k = 0; k < 3; ++k) {
            e1[k] = double(vertices[3 * b + k]) - vertices[3 * a + k];
            e2[k] = double(vertices[3 * c + k]) - vertices[3 * a + k];
            cen[k] = (double(vertices[3 * a + k]) + vertices[3 * b + k] + vertices[3 * c + k]) / 3.0;
        }
        n[0] = e1[1] * e2[2] - e1[2] * e2[1];
        n[1] = e1[2] * e2[0] - e1[0] * e2[2];
        n[2] = e1[0] * e2[1] - e1[1] * e2[0];
        double nl = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
        double cl = std::sqrt(cen[0] * cen[0] + cen[1] * cen[1] + cen[2] * cen[2]);
        if (!(nl > 0) || !(cl > 0)) continue;
        double lambert = std::abs(n[0] * cen[0] + n[1] * cen[1] + n[2] * cen[2]) / (nl * cl);
        float bright = float(style.ambient + (1.0 - style.ambient) * lambert);
        // Edge functions over the clipped bounding box.
        double area = (sx[b] - sx[a]) * (sy[c] - sy[a]) - (sy[b] - sy[a]) * (sx[c] - sx[a]);
        if (!(std::abs(area) > 1e-12)) continue;
        int bx0 = std::max(0, int(std::ceil(std::min({sx[a], sx[b], sx[c]}))));
        int bx1 = std::min(img.width - 1, int(std::floor(std::max({sx[a], sx[b], sx[c]}))));
        int by0 = std::max(0, int(std::ceil(std::min({sy[a], sy[b], sy[c]}))));
        int by1 = std::min(img.height - 1, int(std::floor(std::max({sy[a], sy[b], sy[c]}))));
        for (int py = by0; py <= by1; ++py)
            for (int px = bx0; px <= bx1; ++px) {
                // Each weight from its own edge function: exact on integer coordinates,
                // so pixels on a shared edge belong to both triangles (no cracks).
                double w0 = ((sx[b] - px) * (sy[c] - py) - (sy[b] - py) * (sx[c] - px)) / area;
                double w1 = ((sx[c] - px) * (sy[a] - py) - (sy[c] - py) * (sx[a] - px)) / area;
                double w2 = ((sx[a] - px) * (sy[b] - py) - (sy[a] - py) * (sx[b] - px)) / area;
                if (w0 < 0 || w1 < 0 || w2 < 0) continue;
                double z = w0 * iz[a] + w1 * iz[b] + w2 * iz[c];
                std::size_t i = std::size_t(py) * std::size_t(img.width) + std::size_t(px);
                if (z > zbuf[i]) {
                    zbuf[i] = z;
                    shade[i] = bright;
                }
            }
    }
    std::size_t covered = 0;
    const double al = std::clamp(style.alpha, 0.0, 1.0);
    const double col[3] = {double(style.color.b), double(style.color.g), double(style.color.r)};
    for (std::size_t i = 0; i < npx; ++i) {
        if (shade[i] < 0) continue;
        ++covered;
        std::uint8_t* p = img.pixels.data() + i * 3;
        for (int k = 0; k < 3; ++k)
            p[k] = std::uint8_t(std::clamp(std::lround((1.0 - al) * p[k] + al * col[k] * double(shade[i])), 0L, 255L));
    }
    return covered;
}

// ---------------------------------------------------------------- the evaluation loop

// What the run keeps of one frame's estimate.
struct frame_estimate {
    std::array<float, pose_joint_count * 3> pose_xyz{};  // cm, as the pipeline gives them
    std::array<std::int32_t, pose_joint_count * 2> uv{};  // crop pixels
    std::vector<float> mesh_xyz;                          // cm, only for frames < vis
};

struct evaluation_options {
    std::size_t limit = 0;  // first `limit` frames; 0: all
    int threads = 1;
    int batch = 0;          // crops per estimate_batch call; 0: 2 * threads
    std::size_t vis = 0;    // keep the mesh of the first `vis` frames (for the overlays)
    // Checkpoint file (empty: none), written after every chunk; with resume, a checkpoint
    // found there is continued. `fingerprint` identifies the run (evaluation_fingerprint):
    // a checkpoint of another run is refused.
    std::filesystem::path checkpoint;
    bool resume = false;
    std::string fingerprint;
    // Called after every chunk: frames done (resumed ones included), frames in the run.
    std::function<void(std::size_t done, std::size_t total)> progress;
};

struct evaluation_run {
    std::string dataset;                  // dataset::name()
    std::size_t frames_in_dataset = 0;
    std::vector<sample> frames;           // labels of frames 0..N-1 (no images)
    std::vector<frame_estimate> estimates;
    std::size_t resumed = 0;              // frames taken from the checkpoint
    double wall_s = 0;                    // time this run spent on the frames it estimated
    int threads = 1, batch = 1;
};

namespace detail {

constexpr std::uint64_t fnv_offset = 1469598103934665603ull, fnv_prime = 1099511628211ull;

inline std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h = fnv_offset) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * fnv_prime;
    return h;
}

inline std::string hex64(std::uint64_t v) {
    char b[20];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
    return b;
}

inline std::uint64_t fnv1a_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error(path.string() + ": cannot read");
    std::uint64_t h = fnv_offset;
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), std::streamsize(buf.size()));
        h = fnv1a(buf.data(), std::size_t(in.gcount()), h);
    }
    return h;
}

// Checkpoint file: "HGEVALC1", u64 fingerprint length + bytes, u64 frames in the run,
// u64 vis, u64 mesh floats per vis frame, u64 frames done; per done frame 63 float32
// pose values, 42 int32 uv, and the mesh when the frame is < vis; then the FNV-1a hash of
// everything before it. Host byte order (the magic would read differently elsewhere).
constexpr char checkpoint_magic[9] = "HGEVALC1";

template <class T>
void put_raw(std::string& s, const T& v) {
    s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

struct byte_reader {
    const std::string& s;
    std::size_t off;
    std::string where;
    template <class T>
    T get() {
        T v;
        if (s.size() - off < sizeof v) throw error(where + ": truncated");
        std::memcpy(&v, s.data() + off, sizeof v);
        off += sizeof v;
        return v;
    }
    void bytes(void* dst, std::size_t n) {
        if (s.size() - off < n) throw error(where + ": truncated");
        std::memcpy(dst, s.data() + off, n);
        off += n;
    }
};

}  // namespace detail

struct evaluation_checkpoint {
    std::string fingerprint;
    std::size_t frames = 0, vis = 0, mesh_floats = 0;
    std::vector<frame_estimate> done;
};

inline std::string serialize_checkpoint(const evaluation_checkpoint& c) {
    std::string s(detail::checkpoint_magic, 8);
    detail::put_raw(s, std::uint64_t(c.fingerprint.size()));
    s += c.fingerprint;
    for (std::uint64_t v : {std::uint64_t(c.frames), std::uint64_t(c.vis), std::uint64_t(c.mesh_floats), std::uint64_t(c.done.size())})
        detail::put_raw(s, v);
    for (std::size_t i = 0; i < c.done.size(); ++i) {
        const auto& e = c.done[i];
        s.append(reinterpret_cast<const char*>(e.pose_xyz.data()), sizeof e.pose_xyz);
        s.append(reinterpret_cast<const char*>(e.uv.data()), sizeof e.uv);
        if (i < c.vis) {
            if (e.mesh_xyz.size() != c.mesh_floats) throw error("checkpoint: frame " + std::to_string(i) + " lacks its mesh");
            s.append(reinterpret_cast<const char*>(e.mesh_xyz.data()), e.mesh_xyz.size() * sizeof(float));
        }
    }
    detail::put_raw(s, detail::fnv1a(s.data(), s.size()));
    return s;
}

inline evaluation_checkpoint parse_checkpoint(const std::string& s, const std::string& where) {
    if (s.size() < 8 + 8 || std::memcmp(s.data(), detail::checkpoint_magic, 8) != 0)
        throw error(where + ": not a hand_eval checkpoint (wrong magic)");
    std::uint64_t stored = 0;
    std::memcpy(&stored, s.data() + s.size() - 8, 8);
    if (detail::fnv1a(s.data(), s.size() - 8) != stored) throw error(where + ": checksum mismatch (damaged checkpoint)");
    std::string body = s.substr(0, s.size() - 8);
    detail::byte_reader r{body, 8, where};
    evaluation_checkpoint c;
    auto flen = r.get<std::uint64_t>();
    if (flen > body.size()) throw error(where + ": truncated");
    c.fingerprint.resize(std::size_t(flen));
    r.bytes(c.fingerprint.data(), c.fingerprint.size());
    c.frames = std::size_t(r.get<std::uint64_t>());
    c.vis = std::size_t(r.get<std::uint64_t>());
    c.mesh_floats = std::size_t(r.get<std::uint64_t>());
    auto done = r.get<std::uint64_t>();
    if (done > c.frames || c.mesh_floats > (std::size_t(1) << 24)) throw error(where + ": inconsistent header");
    for (std::uint64_t i = 0; i < done; ++i) {
        frame_estimate e;
        r.bytes(e.pose_xyz.data(), sizeof e.pose_xyz);
        r.bytes(e.uv.data(), sizeof e.uv);
        if (i < c.vis) {
            e.mesh_xyz.resize(c.mesh_floats);
            r.bytes(e.mesh_xyz.data(), c.mesh_floats * sizeof(float));
        }
        c.done.push_back(std::move(e));
    }
    if (r.off != body.size()) throw error(where + ": trailing bytes");
    return c;
}

// Frames a run over `ds` with `limit` evaluates.
inline std::size_t evaluation_frames(const dataset& ds, std::size_t limit) {
    return limit ? std::min(limit, ds.size()) : ds.size();
}

// Identifies a run for its checkpoint: the weight file's contents, the data set's name,
// frame count and labels (ids, cameras, boxes, roots, scales, ground truth) of the
// frames evaluated, and vis. Images are not hashed.
inline std::string evaluation_fingerprint(const dataset& ds, std::size_t limit, std::size_t vis,
                                          const std::filesystem::path& weights) {
    std::size_t n = evaluation_frames(ds, limit);
    std::uint64_t h = detail::fnv_offset;
    for (std::size_t i = 0; i < n; ++i) {
        sample s = ds.load(i, false);
        h = detail::fnv1a(s.image_id.data(), s.image_id.size() + 1, h);
        h = detail::fnv1a(s.cam.data(), sizeof s.cam, h);
        h = detail::fnv1a(s.bbox.data(), sizeof s.bbox, h);
        h = detail::fnv1a(s.root_cm.data(), sizeof s.root_cm, h);
        h = detail::fnv1a(&s.scale_cm, sizeof s.scale_cm, h);
        h = detail::fnv1a(s.gt_pose_cm.data(), sizeof s.gt_pose_cm, h);
    }
    return "hand_eval checkpoint v1; dataset " + ds.name() + "; frames " + std::to_string(n) + "; vis " + std::to_string(std::min(vis, n)) +
           "; labels " + detail::hex64(h) + "; weights " + detail::hex64(detail::fnv1a_file(weights));
}

// The pipeline's parameters for a frame: where its crop came from.
inline crop_params crop_params_of(const sample& s) {
    crop_params p;
    for (int k = 0; k < 4; ++k) p.cam[std::size_t(k)] = float(s.cam[std::size_t(k)]);
    for (int k = 0; k < 4; ++k) p.bbox[std::size_t(k)] = float(s.bbox[std::size_t(k)]);
    for (int k = 0; k < 3; ++k) p.root_cm[std::size_t(k)] = float(s.root_cm[std::size_t(k)]);
    p.scale_cm = float(s.scale_cm);
    return p;
}

inline pose21 estimated_pose(const frame_estimate& e) {
    pose21 p{};
    for (std::size_t j = 0; j < pose_joint_count; ++j)
        for (std::size_t k = 0; k < 3; ++k) p[j][k] = double(e.pose_xyz[j * 3 + k]);
    return p;
}

// Runs the model over frames 0..N-1 of ds (see the top of this file).
inline evaluation_run run_evaluation(const dataset& ds, const model& m, const evaluation_options& o) {
    evaluation_run run;
    run.dataset = ds.name();
    run.frames_in_dataset = ds.size();
    const std::size_t n = evaluation_frames(ds, o.limit);
    if (n == 0) throw error(ds.name() + ": no frames to evaluate");
    run.threads = std::max(1, o.threads);
    run.batch = o.batch > 0 ? o.batch : 2 * run.threads;
    const std::size_t vis = std::min(o.vis, n);
    for (std::size_t i = 0; i < n; ++i) run.frames.push_back(ds.load(i, false));

    evaluation_checkpoint ck;
    ck.fingerprint = o.fingerprint;
    ck.frames = n;
    ck.vis = vis;
    const std::string ck_where = "checkpoint '" + o.checkpoint.string() + "'";
    std::error_code ec;
    if (o.resume && !o.checkpoint.empty() && std::filesystem::exists(o.checkpoint, ec)) {
        std::ifstream in(o.checkpoint, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!in && !in.eof()) throw error(ck_where + ": cannot read");
        evaluation_checkpoint got = parse_checkpoint(bytes, ck_where);
        if (got.fingerprint != o.fingerprint || got.frames != n || got.vis != vis)
            throw error(ck_where + " belongs to another run (" + got.fingerprint + ", frames " + std::to_string(got.frames) +
                        ", vis " + std::to_string(got.vis) + "; this run: " + o.fingerprint +
                        "): delete it or run without --resume to start over");
        ck = std::move(got);
        run.resumed = ck.done.size();
    }
    run.estimates = ck.done;
    if (o.progress) o.progress(run.estimates.size(), n);

    estimate_options eo;
    eo.threads = run.threads;
    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    for (std::size_t start = run.estimates.size(); start < n; start += std::size_t(run.batch)) {
        const std::size_t end = std::min(n, start + std::size_t(run.batch));
        std::vector<sample> chunk(end - start);
        std::vector<std::string> errors(chunk.size());
        const int nchunk = int(chunk.size());
#pragma omp parallel for num_threads(run.threads) schedule(dynamic, 1)
        for (int i = 0; i < nchunk; ++i) {
            try {
                chunk[std::size_t(i)] = ds.load(start + std::size_t(i), true);
            } catch (const std::exception& e) {
                errors[std::size_t(i)] = e.what();
            }
        }
        for (const auto& e : errors)
            if (!e.empty()) throw error(e);
        std::vector<const unsigned char*> crops;
        std::vector<crop_params> params;
        for (std::size_t i = 0; i < chunk.size(); ++i) {
            const sample& s = chunk[i];
            if (s.crop.width != input_size || s.crop.height != input_size)
                throw error(ds.name() + ", frame " + std::to_string(start + i) + " (" + s.image_id + "): crop is not 256x256");
            crops.push_back(s.crop.pixels.data());
            params.push_back(crop_params_of(s));
        }
        std::vector<hand_estimate> est;
        try {
            est = m.estimate_batch(crops, params, eo);
        } catch (const std::exception& e) {
            throw error(ds.name() + ", frames " + std::to_string(start) + ".." + std::to_string(end - 1) + ": " + e.what());
        }
        for (std::size_t i = 0; i < est.size(); ++i) {
            frame_estimate f;
            if (est[i].pose_xyz.size() != f.pose_xyz.size()) throw error("run_evaluation: pipeline returned a pose of the wrong size");
            std::copy(est[i].pose_xyz.begin(), est[i].pose_xyz.end(), f.pose_xyz.begin());
            std::copy(est[i].uv.begin(), est[i].uv.end(), f.uv.begin());
            if (start + i < vis) f.mesh_xyz = est[i].mesh_xyz;
            run.estimates.push_back(std::move(f));
        }
        if (!o.checkpoint.empty()) {
            ck.done = run.estimates;  // copies; the checkpoint is small (0.4 KB a frame)
            if (vis) ck.mesh_floats = run.estimates.front().mesh_xyz.size();
            write_file_atomic(o.checkpoint.string(), serialize_checkpoint(ck));
        }
        if (o.progress) o.progress(run.estimates.size(), n);
    }
    run.wall_s = std::chrono::duration<double>(clock::now() - t0).count();
    return run;
}

// The metrics of a run (eval/metrics.hpp), from the estimates as stored (float cm).
inline pose_metrics evaluate_run(const evaluation_run& run) {
    std::vector<pose21> est, gt;
    for (std::size_t i = 0; i < run.estimates.size(); ++i) {
        est.push_back(estimated_pose(run.estimates[i]));
        gt.push_back(run.frames[i].gt_pose_cm);
    }
    return evaluate_poses(est, gt);
}

// Per frame: mean over joints 1..20 of the error after moving joint 0 to the origin (mm).
inline double root_relative_frame_error_mm(const pose21& est_cm, const pose21& gt_cm) {
    double s = 0;
    for (std::size_t j = 1; j < pose_joint_count; ++j) {
        std::array<double, 3> a, b;
        for (int k = 0; k < 3; ++k) {
            a[std::size_t(k)] = est_cm[j][std::size_t(k)] - est_cm[0][std::size_t(k)];
            b[std::size_t(k)] = gt_cm[j][std::size_t(k)] - gt_cm[0][std::size_t(k)];
        }
        s += joint_error_mm(a, b);
    }
    return s / double(pose_joint_count - 1);
}

// ---------------------------------------------------------------- outputs

// Run-level facts for summary.json.
struct evaluation_info {
    std::string data, weights, kernels;
    double load_s = 0;  // model load
};

inline std::string summary_json(const evaluation_run& run, const pose_metrics& m, const evaluation_info& info) {
    namespace js = json;
    auto num = [](double v) { return js::number(v, 17); };
    const std::size_t computed = run.estimates.size() - run.resumed;
    std::string s = "{\n";
    s += "  \"dataset\": " + js::quote(run.dataset) + ",\n";
    s += "  \"data\": " + js::quote(info.data) + ",\n";
    s += "  \"weights\": " + js::quote(info.weights) + ",\n";
    s += "  \"frames\": " + std::to_string(m.frames) + ",\n";
    s += "  \"frames_in_dataset\": " + std::to_string(run.frames_in_dataset) + ",\n";
    s += "  \"units\": \"mm; poses in pose_estimations.mat are in cm\",\n";
    s += "  \"mean_error_mm\": " + num(m.mean_error_mm) + ",\n";
    s += "  \"root_relative_error_mm\": " + num(m.root_relative_error_mm) + ",\n";
    s += "  \"joint_error_mm\": {";
    for (std::size_t j = 0; j < pose_joint_count; ++j)
        s += std::string(j ? ", " : "") + js::quote(joint_names()[j]) + ": " + num(m.joint_error_mm[j]);
    s += "},\n";
    s += "  \"pck_thresholds_mm\": [";
    for (std::size_t i = 0; i < m.pck.thresholds_mm.size(); ++i) s += (i ? ", " : "") + num(m.pck.thresholds_mm[i]);
    s += "],\n  \"pck\": [";
    for (std::size_t i = 0; i < m.pck.pck.size(); ++i) s += (i ? ", " : "") + num(m.pck.pck[i]);
    s += "],\n";
    s += "  \"auc_20_50\": " + num(m.pck.auc) + ",\n";
    s += "  \"wall_time_s\": " + js::number(run.wall_s, 6) + ",\n";
    s += "  \"images_per_s\": " + js::number(run.wall_s > 0 ? double(computed) / run.wall_s : 0.0, 6) + ",\n";
    s += "  \"frames_estimated\": " + std::to_string(computed) + ",\n";
    s += "  \"frames_resumed\": " + std::to_string(run.resumed) + ",\n";
    s += "  \"load_time_s\": " + js::number(info.load_s, 6) + ",\n";
    s += "  \"threads\": " + std::to_string(run.threads) + ",\n";
    s += "  \"batch\": " + std::to_string(run.batch) + ",\n";
    s += "  \"kernels\": " + js::quote(info.kernels) + "\n";
    s += "}\n";
    return s;
}

namespace detail {
inline std::string csv_field(const std::string& f) {
    if (f.find_first_of(",\"\n\r") == std::string::npos) return f;
    std::string q = "\"";
    for (char c : f) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}
}  // namespace detail

inline std::string per_frame_csv(const evaluation_run& run, const pose_metrics& m) {
    std::string s = "index,image_id,mean_error_mm,root_relative_error_mm\n";
    char b[64];
    for (std::size_t i = 0; i < run.estimates.size(); ++i) {
        double rel = root_relative_frame_error_mm(estimated_pose(run.estimates[i]), run.frames[i].gt_pose_cm);
        s += std::to_string(i) + "," + detail::csv_field(run.frames[i].image_id);
        std::snprintf(b, sizeof b, ",%.9g,%.9g\n", m.frame_error_mm[i], rel);
        s += b;
    }
    return s;
}

// pose_estimations.mat's variables: image_ids (1 x N int32, 0-based frame indices, as the
// release stores them), image_paths (N rows of char), gt_pose_xyz and est_pose_xyz
// (N x 21 x 3 double, cm; the estimates are the pipeline's float32 values), and est_uv
// (N x 21 x 2 int32: the 2D joints in crop pixels, 0..255).
inline std::vector<mat_array> pose_estimation_variables(const evaluation_run& run) {
    const std::size_t n = run.estimates.size();
    std::vector<std::int32_t> ids(n);
    std::vector<std::string> paths(n);
    std::vector<double> gt(n * pose_joint_count * 3), est(n * pose_joint_count * 3);
    std::vector<std::int32_t> uv(n * pose_joint_count * 2);
    for (std::size_t i = 0; i < n; ++i) {
        ids[i] = std::int32_t(i);
        paths[i] = run.frames[i].image_id;
        for (std::size_t j = 0; j < pose_joint_count; ++j)
            for (std::size_t k = 0; k < 3; ++k) {
                gt[(i * pose_joint_count + j) * 3 + k] = run.frames[i].gt_pose_cm[j][k];
                est[(i * pose_joint_count + j) * 3 + k] = double(run.estimates[i].pose_xyz[j * 3 + k]);
            }
        std::copy(run.estimates[i].uv.begin(), run.estimates[i].uv.end(), uv.begin() + std::ptrdiff_t(i * pose_joint_count * 2));
    }
    return {mat_array::from_row_major("image_ids", {1, n}, ids), mat_array::char_rows("image_paths", paths),
            mat_array::from_row_major("gt_pose_xyz", {n, pose_joint_count, 3}, gt),
            mat_array::from_row_major("est_pose_xyz", {n, pose_joint_count, 3}, est),
            mat_array::from_row_major("est_uv", {n, pose_joint_count, 2}, uv)};
}

// The overlay of one frame: left the crop with the ground-truth skeleton (thin, grey)
// and the estimated 2D joints; right the crop with the estimated mesh, shaded. 512 x 256.
inline image overlay_image(const sample& s, const frame_estimate& e, const std::vector<std::int32_t>& faces) {
    if (s.crop.width != input_size || s.crop.height != input_size) throw error("overlay_image: frame " + s.image_id + " has no 256x256 crop");
    image left = s.crop, right = s.crop;
    uv21 gt = project_to_crop(s.gt_pose_cm, s.cam, s.bbox, input_size);
    for (const auto& bone : hand_bones())
        draw_line(left, gt[bone[0]][0], gt[bone[0]][1], gt[bone[1]][0], gt[bone[1]][1], bgr{200, 200, 200}, 1);
    uv21 uv{};
    for (std::size_t j = 0; j < pose_joint_count; ++j) uv[j] = {double(e.uv[2 * j]), double(e.uv[2 * j + 1])};
    draw_skeleton(left, uv, 2);
    render_mesh(right, e.mesh_xyz, faces, s.cam, s.bbox);
    image out(2 * input_size, input_size);
    for (int y = 0; y < input_size; ++y) {
        std::memcpy(out.row(y), left.row(y), std::size_t(input_size) * 3);
        std::memcpy(out.row(y) + std::size_t(input_size) * 3, right.row(y), std::size_t(input_size) * 3);
    }
    for (int y = 0; y < input_size; ++y) detail::put_pixel(out, input_size, y, bgr{255, 255, 255});
    draw_text(out, 5, 5, "2D joints (grey: truth)", bgr{0, 0, 0});
    draw_text(out, 4, 4, "2D joints (grey: truth)", bgr{255, 255, 255});
    draw_text(out, input_size + 5, 5, "mesh", bgr{0, 0, 0});
    draw_text(out, input_size + 4, 4, "mesh", bgr{255, 255, 255});
    return out;
}

// Names of the files write_evaluation_outputs writes into the output folder.
inline std::vector<std::string> evaluation_output_names(std::size_t vis) {
    std::vector<std::string> n = {"pose_estimations.mat", "per_frame.csv", "pck.png", "summary.json"};
    for (std::size_t i = 0; i < vis; ++i) {
        char b[32];
        std::snprintf(b, sizeof b, "vis/%05zu", i);
        n.push_back(std::string(b) + ".png");
        n.push_back(std::string(b) + ".obj");
    }
    return n;
}

// Writes every output of a run into `out` (which must exist); vis frames are reloaded
// from ds for their crops. Each file is written atomically; summary.json last.
inline void write_evaluation_outputs(const std::filesystem::path& out, const dataset& ds, const model& m, const evaluation_run& run,
                                     std::size_t vis, const evaluation_info& info) {
    pose_metrics metrics = evaluate_run(run);
    vis = std::min(vis, run.estimates.size());
    if (vis) {
        std::filesystem::create_directories(out / "vis");
        for (std::size_t i = 0; i < vis; ++i) {
            const frame_estimate& e = run.estimates[i];
            if (e.mesh_xyz.empty()) throw error("write_evaluation_outputs: frame " + std::to_string(i) + " has no mesh");
            sample s = ds.load(i, true);
            char b[32];
            std::snprintf(b, sizeof b, "%05zu", i);
            write_png(out / "vis" / (std::string(b) + ".png"), overlay_image(s, e, m.faces()));
            write_file_atomic((out / "vis" / (std::string(b) + ".obj")).string(),
                              obj_text(e.mesh_xyz, m.faces(), "handgraph mesh, cm, camera space; " + run.dataset + " frame " + std::to_string(i) +
                                                                  " (" + s.image_id + ")"));
        }
    }
    write_mat(out / "pose_estimations.mat", pose_estimation_variables(run), "handgraph hand_eval pose estimations");
    write_file_atomic((out / "per_frame.csv").string(), per_frame_csv(run, metrics));
    char title[160];
    std::snprintf(title, sizeof title, "3D PCK: %s, %zu frames", run.dataset.c_str(), metrics.frames);
    write_png(out / "pck.png", pck_plot_image(metrics.pck, title));
    write_file_atomic((out / "summary.json").string(), summary_json(run, metrics, info));
}

// Removes what an interrupted earlier run may have left in `out`: temporary files of our
// outputs (<name>.tmp*) and of the checkpoint.
inline void remove_stale_temporaries(const std::filesystem::path& out, const std::vector<std::string>& names) {
    std::error_code ec;
    for (const auto& dir : {out, out / "vis"}) {
        if (!std::filesystem::is_directory(dir, ec)) continue;
        std::vector<std::filesystem::path> doomed;
        for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
            std::string f = entry.path().filename().string();
            for (const auto& n : names) {
                std::string base = std::filesystem::path(n).filename().string() + ".tmp";
                if (f.size() > base.size() && f.compare(0, base.size(), base) == 0 && entry.is_regular_file(ec)) doomed.push_back(entry.path());
            }
        }
        for (const auto& p : doomed) std::filesystem::remove(p, ec);
    }
}

}  // namespace handgraph

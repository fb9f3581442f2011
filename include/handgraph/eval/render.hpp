// handgraph/eval/render.hpp: pictures of hand poses: 21-joint skeletons projected into a
// crop and drawn onto a BGR image (one colour per finger), for eyeballing results; and
// the drawing primitives every picture of eval/ uses (bgr, pixels, rectangles, discs,
// lines). Drawing is clipped to the image; points that are not finite are skipped.
// Depends on image.hpp and eval/pose.hpp.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

#include "../image.hpp"
#include "pose.hpp"

namespace handgraph {

// (x, y) pixel positions of the 21 joints.
using uv21 = std::array<std::array<double, 2>, pose_joint_count>;

struct bgr {
    std::uint8_t b = 0, g = 0, r = 0;
};

namespace detail {

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

// The 20 bones as (parent, child) joint indices: each finger from the wrist outwards.
inline const std::array<std::array<std::size_t, 2>, pose_joint_count - 1>& hand_bones() {
    static const std::array<std::array<std::size_t, 2>, pose_joint_count - 1> bones = [] {
        std::array<std::array<std::size_t, 2>, pose_joint_count - 1> b{};
        for (std::size_t f = 0; f < 5; ++f)
            for (std::size_t k = 0; k < 4; ++k) b[f * 4 + k] = {k == 0 ? 0 : 1 + f * 4 + k - 1, 1 + f * 4 + k};
        return b;
    }();
    return bones;
}

// Camera-space joints (cm) -> pixels of the crop: project with cam = fx, fy, u0, v0, then
// map the box [x, y, w, h] of the original image onto crop_size x crop_size (inverse of
// spec section 4's uvd -> xyz). Joints at z <= 0 give NaN.
inline uv21 project_to_crop(const pose21& xyz_cm, const std::array<double, 4>& cam, const std::array<int, 4>& bbox,
                            int crop_size = 256) {
    uv21 uv{};
    for (std::size_t j = 0; j < pose_joint_count; ++j) {
        double z = xyz_cm[j][2];
        if (!(z > 0) || bbox[2] <= 0 || bbox[3] <= 0) {
            uv[j] = {std::nan(""), std::nan("")};
            continue;
        }
        double u = xyz_cm[j][0] / z * cam[0] + cam[2], v = xyz_cm[j][1] / z * cam[1] + cam[3];
        uv[j] = {(u - bbox[0]) / bbox[2] * crop_size, (v - bbox[1]) / bbox[3] * crop_size};
    }
    return uv;
}

// A filled disc of the given radius centred at (x, y).
inline void draw_disc(image& img, double x, double y, double radius, bgr color) {
    if (!std::isfinite(x) || !std::isfinite(y) || !(radius >= 0) || img.empty()) return;
    double x0 = std::max(0.0, std::floor(x - radius)), x1 = std::min(double(img.width - 1), std::ceil(x + radius));
    double y0 = std::max(0.0, std::floor(y - radius)), y1 = std::min(double(img.height - 1), std::ceil(y + radius));
    for (double py = y0; py <= y1; ++py)
        for (double px = x0; px <= x1; ++px)
            if ((px - x) * (px - x) + (py - y) * (py - y) <= radius * radius + 0.25) {
                std::uint8_t* p = img.row(int(py)) + std::size_t(px) * 3;
                p[0] = color.b;
                p[1] = color.g;
                p[2] = color.r;
            }
}

// A line of the given thickness, clipped to the image.
inline void draw_line(image& img, double x0, double y0, double x1, double y1, bgr color, double thickness = 2) {
    if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1) || img.empty()) return;
    double r = std::max(0.5, thickness / 2);
    // Clip the segment to the image grown by r (Liang-Barsky) so that far-off points cost nothing.
    double t0 = 0, t1 = 1, dx = x1 - x0, dy = y1 - y0;
    const double lo[2] = {-r, -r}, hi[2] = {img.width - 1 + r, img.height - 1 + r};
    const double p0[2] = {x0, y0}, d[2] = {dx, dy};
    for (int a = 0; a < 2; ++a) {
        if (d[a] == 0) {
            if (p0[a] < lo[a] || p0[a] > hi[a]) return;
            continue;
        }
        double ta = (lo[a] - p0[a]) / d[a], tb = (hi[a] - p0[a]) / d[a];
        if (ta > tb) std::swap(ta, tb);
        t0 = std::max(t0, ta);
        t1 = std::min(t1, tb);
        if (t0 > t1) return;
    }
    double len = std::hypot(dx, dy) * (t1 - t0);
    int steps = std::max(1, int(std::ceil(len * 2)));
    for (int s = 0; s <= steps; ++s) {
        double t = t0 + (t1 - t0) * s / steps;
        draw_disc(img, x0 + dx * t, y0 + dy * t, r, color);
    }
}

// Finger colours (BGR): thumb red, index yellow, middle green, ring cyan, little magenta.
inline bgr finger_color(std::size_t finger) {
    static const bgr c[5] = {{0, 0, 255}, {0, 220, 255}, {0, 200, 0}, {255, 200, 0}, {255, 0, 200}};
    return c[finger % 5];
}

// Bones and joints of one skeleton drawn onto img.
inline void draw_skeleton(image& img, const uv21& uv, double thickness = 2) {
    for (std::size_t b = 0; b < hand_bones().size(); ++b) {
        const auto& bone = hand_bones()[b];
        draw_line(img, uv[bone[0]][0], uv[bone[0]][1], uv[bone[1]][0], uv[bone[1]][1], finger_color(b / 4), thickness);
    }
    for (std::size_t j = 0; j < pose_joint_count; ++j)
        draw_disc(img, uv[j][0], uv[j][1], thickness + 1, j == 0 ? bgr{255, 255, 255} : finger_color((j - 1) / 4));
}

}  // namespace handgraph

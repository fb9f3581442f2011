// handgraph/root.hpp: the root joint (wrist) in camera space without ground truth: its depth
// solved in closed form so that a reference bone, rebuilt from the network's 2D joints and
// relative depths, has the hand's scale as its length (Iqbal et al. 2018, "Hand Pose
// Estimation via Latent 2.5D Heatmap Regression", eqs. 6-7).
//
// With x_n = K^-1 [u_n, v_n, 1] (image pixels through the camera) and depths d_n relative to
// the root in units of the scale s, joint n is P_n = s (z + d_n) x_n, z the root's depth over
// s. The reference bone is joints 9 and 10 (middle finger, first bone: the spec's scale):
// |P_9 - P_10| = s gives |z (x_9 - x_10) + (d_9 x_9 - d_10 x_10)|^2 = 1, that is
//   a z^2 + b z + c = 0,  a = |x_9 - x_10|^2,  b = 2 (d_9 x_9 - d_10 x_10) . (x_9 - x_10),
//   c = |d_9 x_9 - d_10 x_10|^2 - 1,
// and z is its larger root. Both roots rebuild the 2D joints and the bone exactly; the larger
// is the ground truth's on 574 of the real-world test set's 583 frames, the smaller on the
// other 9, where the bone points nearly at the camera (its 2D length under 5% of its 3D
// length: tests/test_photo.cpp; hand-size and bone-ratio priors chose worse). The root's x
// and y then follow from its own 2D joint: P_0 = s z x_0.
// No real root (the 2D bone is longer than s can be at any depth, e.g. a badly placed
// joint): the fallback takes the depth where the rebuilt bone comes closest to s, z = -b/2a,
// and says so. That or the larger root not in front of the camera (or a = 0: both joints on
// one pixel): the second fallback puts the hand at the depth where `fallback_span_px`
// pixels span 4 s (a hand is about 4 times its middle finger's first bone long), and says so.
// Depends on handgraph.hpp (root_method).
#pragma once
#include <array>
#include <cmath>
#include <utility>

#include "handgraph.hpp"

namespace handgraph {
namespace detail {

struct root_solution {
    std::array<double, 3> root_cm{};  // camera space
    root_method method = root_method::closed_form;
};

// a, b, c of the bone's quadratic in z (the root's depth over the scale), and the rays.
struct bone_quadratic {
    double a = 0, b = 0, c = 0;
    std::array<double, 3> x0{};  // the root joint's ray
};

inline bone_quadratic make_bone_quadratic(const std::array<std::array<double, 2>, 21>& uv, const std::array<double, 21>& depth,
                                          const std::array<double, 4>& cam) {
    auto ray = [&](int j) {
        return std::array<double, 3>{(uv[std::size_t(j)][0] - cam[2]) / cam[0], (uv[std::size_t(j)][1] - cam[3]) / cam[1], 1.0};
    };
    const auto x9 = ray(9), x10 = ray(10);
    std::array<double, 3> e{}, f{};
    for (int k = 0; k < 3; ++k) {
        e[std::size_t(k)] = x9[std::size_t(k)] - x10[std::size_t(k)];
        f[std::size_t(k)] = depth[9] * x9[std::size_t(k)] - depth[10] * x10[std::size_t(k)];
    }
    bone_quadratic q;
    q.a = e[0] * e[0] + e[1] * e[1] + e[2] * e[2];
    q.b = 2 * (f[0] * e[0] + f[1] * e[1] + f[2] * e[2]);
    q.c = f[0] * f[0] + f[1] * f[1] + f[2] * f[2] - 1;
    q.x0 = ray(0);
    return q;
}

// Both roots of the quadratic, smaller first, when real (false otherwise). The larger in
// the form that does not cancel: for b < 0, (-b + sqrt) / 2a; for b >= 0, 2c / (-b - sqrt);
// the smaller from their product c / a.
inline bool bone_roots(const bone_quadratic& q, double& smaller, double& larger) {
    const double disc = q.b * q.b - 4 * q.a * q.c;
    if (!(q.a > 0) || !(disc >= 0)) return false;
    const double r = std::sqrt(disc);
    if (q.b < 0) {
        larger = (-q.b + r) / (2 * q.a);
    } else {
        const double den = -q.b - r;
        larger = den != 0 ? 2 * q.c / den : 0;
    }
    smaller = larger != 0 ? q.c / (q.a * larger) : (-q.b - r) / (2 * q.a);
    if (smaller > larger) std::swap(smaller, larger);
    return true;
}

// uv: the 21 joints in image pixels; depth: relative to the root in units of the scale
// (depth[0] = 0); cam: fx, fy, u0, v0; scale_cm > 0; fallback_span_px: the crop's side.
inline root_solution solve_root(const std::array<std::array<double, 2>, 21>& uv, const std::array<double, 21>& depth,
                                const std::array<double, 4>& cam, double scale_cm, double fallback_span_px) {
    const bone_quadratic q = make_bone_quadratic(uv, depth, cam);
    root_solution s;
    double z = 0, smaller = 0;
    if (bone_roots(q, smaller, z)) {
        s.method = root_method::closed_form;
    } else if (q.a > 0) {
        z = -q.b / (2 * q.a);
        s.method = root_method::closest_approach;
    }
    if (!(q.a > 0) || !(z > 0) || !std::isfinite(z)) {
        z = cam[0] * 4.0 / (fallback_span_px > 0 ? fallback_span_px : 1.0);  // Z = fx * 4 s / span, over s
        s.method = root_method::box_size;
    }
    const double zc = z * scale_cm;
    s.root_cm = {q.x0[0] * zc, q.x0[1] * zc, zc};
    return s;
}

}  // namespace detail
}  // namespace handgraph

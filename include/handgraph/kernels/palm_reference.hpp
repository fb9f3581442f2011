// handgraph/kernels/palm_reference.hpp: plain scalar twins of the palm detector's kernels,
// for the tests, written from TFLite's op definitions (weights/PALM_FORMAT.md): loops over
// the logical channels, sums in double, taps outside the input skipped, nothing shared with
// the fast kernels. Same conventions: `out` shaped by the caller, only its interior written.
// Depends on tensor.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "../tensor.hpp"

namespace handgraph {
namespace kernels {

// DEPTHWISE_CONV_2D: filter [1][kh][kw][C] (TFLite), bias [C] or null; clamp to [lo, hi].
inline void depthwise_conv2d_reference(const float* filter, const float* bias, int kh, int kw, int sh, int sw, int dh, int dw, int top,
                                       int left, const feature_map& in, feature_map& out, float lo, float hi) {
    const int c = in.channels;
    for (int oy = 0; oy < out.height; ++oy)
        for (int ox = 0; ox < out.width; ++ox)
            for (int ch = 0; ch < c; ++ch) {
                double s = bias ? bias[ch] : 0.0;
                for (int ky = 0; ky < kh; ++ky)
                    for (int kx = 0; kx < kw; ++kx) {
                        const int iy = oy * sh + ky * dh - top, ix = ox * sw + kx * dw - left;
                        if (iy < 0 || ix < 0 || iy >= in.height || ix >= in.width) continue;
                        s += double(filter[(std::size_t(ky) * kw + kx) * c + ch]) * double(in.at(ch, iy, ix));
                    }
                out.pixel(oy, ox)[ch] = std::min(std::max(float(s), lo), hi);
            }
}

// PRELU (then + residual when given), clamp to [lo, hi].
inline void prelu_reference(const feature_map& in, const float* alpha, const feature_map* residual, feature_map& out, float lo, float hi) {
    for (int y = 0; y < in.height; ++y)
        for (int x = 0; x < in.width; ++x)
            for (int c = 0; c < in.channels; ++c) {
                const float v = in.at(c, y, x);
                float r = v >= 0 ? v : alpha[c] * v;
                if (residual) r += residual->at(c, y, x);
                out.pixel(y, x)[c] = std::min(std::max(r, lo), hi);
            }
}

// ADD, clamp to [lo, hi].
inline void add_clamped_reference(const feature_map& a, const feature_map& b, feature_map& out, float lo, float hi) {
    for (int y = 0; y < a.height; ++y)
        for (int x = 0; x < a.width; ++x)
            for (int c = 0; c < a.channels; ++c) out.pixel(y, x)[c] = std::min(std::max(a.at(c, y, x) + b.at(c, y, x), lo), hi);
}

// MAX_POOL_2D: the maximum over the window's taps inside the input; output channels beyond
// the input's are 0.
inline void max_pool_reference(const feature_map& in, int fh, int fw, int sh, int sw, int top, int left, feature_map& out, float lo, float hi) {
    for (int oy = 0; oy < out.height; ++oy)
        for (int ox = 0; ox < out.width; ++ox)
            for (int c = 0; c < out.channels; ++c) {
                if (c >= in.channels) {
                    out.pixel(oy, ox)[c] = 0.0f;
                    continue;
                }
                float m = -std::numeric_limits<float>::infinity();
                for (int ky = 0; ky < fh; ++ky)
                    for (int kx = 0; kx < fw; ++kx) {
                        const int iy = oy * sh + ky - top, ix = ox * sw + kx - left;
                        if (iy >= 0 && ix >= 0 && iy < in.height && ix < in.width) m = std::max(m, in.at(c, iy, ix));
                    }
                out.pixel(oy, ox)[c] = std::min(std::max(m, lo), hi);
            }
}

// RESIZE_BILINEAR, TFLite's reference formula (float32 scale, source coordinate, clamped
// indices), the four taps weighted in double.
inline void resize_bilinear_reference(const feature_map& in, feature_map& out, bool align_corners, bool half_pixel_centers) {
    auto axis = [&](int d, int n_in, int n_out, int& lo, int& hi, double& f) {
        const float scale = align_corners && n_out > 1 ? float(n_in - 1) / float(n_out - 1) : float(n_in) / float(n_out);
        const double s = half_pixel_centers ? (double(d) + 0.5) * double(scale) - 0.5 : double(d) * double(scale);
        lo = std::max(int(std::floor(s)), 0);
        hi = std::min(int(std::ceil(s)), n_in - 1);
        f = s - lo;
    };
    for (int oy = 0; oy < out.height; ++oy)
        for (int ox = 0; ox < out.width; ++ox) {
            int y0, y1, x0, x1;
            double fy, fx;
            axis(oy, in.height, out.height, y0, y1, fy);
            axis(ox, in.width, out.width, x0, x1, fx);
            for (int c = 0; c < in.channels; ++c) {
                const double v = in.at(c, y0, x0) * (1 - fy) * (1 - fx) + in.at(c, y1, x0) * fy * (1 - fx) + in.at(c, y0, x1) * (1 - fy) * fx +
                                 in.at(c, y1, x1) * fy * fx;
                out.pixel(oy, ox)[c] = float(v);
            }
        }
}

// PAD (zeros around; paddings before of rows, columns, channels).
inline void pad_reference(const feature_map& in, int top, int left, int front, feature_map& out) {
    for (int y = 0; y < out.height; ++y)
        for (int x = 0; x < out.width; ++x)
            for (int c = 0; c < out.channels; ++c) {
                const int sy = y - top, sx = x - left, sc = c - front;
                const bool inside = sy >= 0 && sx >= 0 && sc >= 0 && sy < in.height && sx < in.width && sc < in.channels;
                out.pixel(y, x)[c] = inside ? in.at(sc, sy, sx) : 0.0f;
            }
}

// The row-major NHWC index of every element of a map (RESHAPE's meaning).
inline std::vector<float> map_to_dense_reference(const feature_map& m) {
    std::vector<float> d(std::size_t(m.height) * m.width * m.channels);
    std::size_t i = 0;
    for (int y = 0; y < m.height; ++y)
        for (int x = 0; x < m.width; ++x)
            for (int c = 0; c < m.channels; ++c) d[i++] = m.at(c, y, x);
    return d;
}

// CONCATENATION of dense tensors: element by element through the multi-index.
inline std::vector<float> concat_dense_reference(const std::vector<std::vector<float>>& in, const std::vector<std::vector<int>>& shapes, int axis) {
    std::vector<int> out_shape = shapes[0];
    out_shape[std::size_t(axis)] = 0;
    for (const auto& s : shapes) out_shape[std::size_t(axis)] += s[std::size_t(axis)];
    std::size_t n = 1;
    for (int d : out_shape) n *= std::size_t(d);
    std::vector<float> out(n);
    std::vector<int> idx(out_shape.size(), 0);
    for (std::size_t flat = 0; flat < n; ++flat) {
        std::size_t rem = flat;
        for (std::size_t k = out_shape.size(); k-- > 0;) {
            idx[k] = int(rem % std::size_t(out_shape[k]));
            rem /= std::size_t(out_shape[k]);
        }
        int which = 0, along = idx[std::size_t(axis)];
        while (along >= shapes[std::size_t(which)][std::size_t(axis)]) along -= shapes[std::size_t(which++)][std::size_t(axis)];
        std::size_t src = 0;
        for (std::size_t k = 0; k < out_shape.size(); ++k)
            src = src * std::size_t(shapes[std::size_t(which)][k]) + std::size_t(k == std::size_t(axis) ? along : idx[k]);
        out[flat] = in[std::size_t(which)][src];
    }
    return out;
}

}  // namespace kernels
}  // namespace handgraph

// handgraph/kernels/reference.hpp: plain scalar twins of every kernel, for the tests.
//
// Straightforward loops over the logical channels, accumulating in double; they check
// nothing beyond what they need and are slow on purpose. Same conventions as the fast
// kernels: `out` is shaped by the caller, only its interior is written.
// Depends on tensor.hpp.
#pragma once
#include <algorithm>
#include <cstddef>

#include "../tensor.hpp"

namespace handgraph {
namespace kernels {

// out = [relu]((conv(in, weight) + bias) * scale + shift) [+ residual]; weight OIHW.
inline void conv2d_reference(const float* weight, const float* bias, int cout, int cin, int k, int stride,
                             int pad, const float* scale, const float* shift, const feature_map& in,
                             feature_map& out, bool relu, const feature_map* residual) {
    for (int co = 0; co < cout; ++co)
        for (int oy = 0; oy < out.height; ++oy)
            for (int ox = 0; ox < out.width; ++ox) {
                double s = 0.0;
                for (int ci = 0; ci < cin; ++ci)
                    for (int ky = 0; ky < k; ++ky)
                        for (int kx = 0; kx < k; ++kx) {
                            int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                            if (iy < 0 || ix < 0 || iy >= in.height || ix >= in.width) continue;
                            s += double(weight[((std::size_t(co) * cin + ci) * k + ky) * k + kx]) *
                                 double(in.at(ci, iy, ix));
                        }
                if (bias) s += bias[co];
                if (scale) s *= scale[co];
                if (shift) s += shift[co];
                if (relu && s < 0) s = 0;
                if (residual) s += residual->at(co, oy, ox);
                out.pixel(oy, ox)[co] = float(s);
            }
}

// out = max(0, in * scale + shift) per channel.
inline void scale_shift_relu_reference(const feature_map& in, const float* scale, const float* shift,
                                       feature_map& out) {
    for (int y = 0; y < in.height; ++y)
        for (int x = 0; x < in.width; ++x)
            for (int c = 0; c < in.channels; ++c) {
                float v = in.at(c, y, x) * scale[c] + shift[c];
                out.pixel(y, x)[c] = v > 0 ? v : 0.0f;
            }
}

inline void maxpool2x2_reference(const feature_map& in, feature_map& out) {
    for (int y = 0; y < out.height; ++y)
        for (int x = 0; x < out.width; ++x)
            for (int c = 0; c < in.channels; ++c)
                out.pixel(y, x)[c] = std::max(std::max(in.at(c, 2 * y, 2 * x), in.at(c, 2 * y, 2 * x + 1)),
                                              std::max(in.at(c, 2 * y + 1, 2 * x), in.at(c, 2 * y + 1, 2 * x + 1)));
}

// out = up + nearest_x2(low)
inline void upsample2x_add_reference(const feature_map& low, const feature_map& up, feature_map& out) {
    for (int y = 0; y < up.height; ++y)
        for (int x = 0; x < up.width; ++x)
            for (int c = 0; c < up.channels; ++c) out.pixel(y, x)[c] = up.at(c, y, x) + low.at(c, y / 2, x / 2);
}

inline void add_reference(const feature_map& a, const feature_map& b, feature_map& out) {
    for (int y = 0; y < a.height; ++y)
        for (int x = 0; x < a.width; ++x)
            for (int c = 0; c < a.channels; ++c) out.pixel(y, x)[c] = a.at(c, y, x) + b.at(c, y, x);
}

// y = [relu](weight x + bias); weight [out][in].
inline void linear_reference(const float* weight, const float* bias, int out, int in, const float* x, float* y,
                             bool relu) {
    for (int o = 0; o < out; ++o) {
        double s = bias ? bias[o] : 0.0;
        for (int i = 0; i < in; ++i) s += double(weight[std::size_t(o) * in + i]) * double(x[i]);
        if (relu && s < 0) s = 0;
        y[o] = float(s);
    }
}

// The dense part of a Chebyshev convolution (graph_conv.hpp's cheb_dense) as the plain
// loop it replaced: y[v][o] = [relu](float(b + sum over i, then k, of t[k][v][i] * w[o][i][k]))
// in double, w = float(weight * scale), b = float(bias * scale + shift) (scale, shift
// optional); weight [fout][fin * 3] as nn.Linear stores it (fin-major, k-minor).
inline void cheb_dense_reference(const float* weight, const float* bias, int fout, int fin, const float* scale, const float* shift,
                                 const float* const t[3], int n, float* y, bool relu) {
    for (int v = 0; v < n; ++v)
        for (int o = 0; o < fout; ++o) {
            const float s = scale ? scale[o] : 1.0f;
            double acc = double(bias[o] * s + (shift ? shift[o] : 0.0f));
            for (int i = 0; i < fin; ++i)
                for (int k = 0; k < 3; ++k)
                    acc += double(t[k][std::size_t(v) * fin + i]) * double(weight[std::size_t(o) * fin * 3 + std::size_t(i) * 3 + k] * s);
            const float f = float(acc);
            y[std::size_t(v) * fout + o] = relu ? std::max(f, 0.0f) : f;
        }
}

}  // namespace kernels
}  // namespace handgraph

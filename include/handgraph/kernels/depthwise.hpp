// handgraph/kernels/depthwise.hpp: depthwise 2D convolution (one filter per channel, depth
// multiplier 1) on feature maps, with TFLite's padding: any kernel, stride and dilation, and
// the padding given per side (top, bottom, left, right) as TFLite's SAME rule makes it
// (kernels/padding.h: the odd pixel after), read from the input's zero border.
//
//   y[oy, ox, c] = act(bias[c] + sum_{ky, kx} x[oy*sh + ky*dh - top, ox*sw + kx*dw - left, c] * w[ky, kx, c])
//
// depthwise_conv2d::prepare packs the TFLite filter [1, KH, KW, C] as [KH*KW][cpad] (zero
// in the padding channels) once; run() computes the interior of `out`. The input needs a
// border of at least max(top, left) and of what the last window reads past the bottom and
// right edges (bottom, right for SAME). The fused activation is a clamp to [lo, hi]
// (TFLite's RELU, RELU6, RELU_N1_TO_1; +-inf for none).
// Kernel (depthwise_conv<Arch>): one work item per output row and group of channel
// vectors; a tile of 12 (AVX-512; 8 otherwise) consecutive output pixels of one channel
// vector accumulates in registers, each tap's weight vector loaded once per tile (about one
// load per FMA, 12 independent FMA chains). Accumulation order: bias, then the taps row by
// row, left to right, one FMA each (the same for every pixel, whatever its tile).
// Depends on tensor.hpp, detector_dispatch.hpp, parallel.hpp.
#pragma once
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>

#include "../error.hpp"
#include "../tensor.hpp"
#include "detector_dispatch.hpp"
#include "parallel.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

struct depthwise_args {
    const float* in;  // in.pixel(0, 0)
    std::ptrdiff_t in_row;
    float* out;  // out.pixel(0, 0)
    std::ptrdiff_t out_row;
    int cpad;  // of in and out (the same channels)
    int out_h, out_w;
    int kh, kw, sh, sw, dh, dw, top, left;
    const float* weight;  // [kh * kw][cpad]
    const float* bias;    // [cpad]
    float lo, hi;         // activation clamp
    loop_runner loop;
};

// v clamped to [lo, hi] by comparisons (a NaN stays NaN, as std::min(std::max(v, lo), hi)).
template <class B>
inline B clamp_batch(const B& v, const B& lo, const B& hi) {
    return xsimd::select(v < lo, lo, xsimd::select(v > hi, hi, v));
}

// N consecutive output pixels of one channel vector: N accumulators, each tap's weight
// vector loaded once for all of them. p: the input under tap (0, 0) of the first pixel.
template <class Arch, int N>
inline void depthwise_tile(const depthwise_args& a, const float* p, const float* w, const float* bias, float* o) {
    using B = xsimd::batch<float, Arch>;
    const std::ptrdiff_t xs = std::ptrdiff_t(a.sw) * a.cpad, kxs = std::ptrdiff_t(a.dw) * a.cpad, kys = std::ptrdiff_t(a.dh) * a.in_row;
    B acc[N];
    const B b = B::load_aligned(bias);
#pragma GCC unroll 16
    for (int j = 0; j < N; ++j) acc[j] = b;
    for (int ky = 0; ky < a.kh; ++ky) {
        const float* row = p + ky * kys;
        for (int kx = 0; kx < a.kw; ++kx, w += a.cpad) {
            const B wv = B::load_aligned(w);
            const float* q = row + kx * kxs;
#pragma GCC unroll 16
            for (int j = 0; j < N; ++j) acc[j] = xsimd::fma(B::load_aligned(q + j * xs), wv, acc[j]);
        }
    }
    const B lo(a.lo), hi(a.hi);
#pragma GCC unroll 16
    for (int j = 0; j < N; ++j) clamp_batch(acc[j], lo, hi).store_aligned(o + std::ptrdiff_t(j) * a.cpad);
}

// The same for a KW-wide undilated window at stride S: each input vector of a kernel row is
// loaded once and multiplied into every accumulator whose window holds it (KW weight vectors
// of the row in registers), so a 5-wide window at stride 1 costs about 0.3 loads per FMA.
// Per pixel the taps still come row by row, left to right: results equal depthwise_tile's.
template <class Arch, int N, int KW, int S>
inline void depthwise_tile_reuse(const depthwise_args& a, const float* p, const float* w, const float* bias, float* o) {
    using B = xsimd::batch<float, Arch>;
    constexpr int span = S * (N - 1) + KW;  // input pixels a kernel row of the tile reads
    const std::ptrdiff_t cp = a.cpad;
    B acc[N];
    const B b = B::load_aligned(bias);
#pragma GCC unroll 16
    for (int j = 0; j < N; ++j) acc[j] = b;
    for (int ky = 0; ky < a.kh; ++ky, w += KW * cp) {
        const float* row = p + ky * a.in_row;
        B wk[KW];
#pragma GCC unroll 8
        for (int kx = 0; kx < KW; ++kx) wk[kx] = B::load_aligned(w + kx * cp);
#pragma GCC unroll 64
        for (int i = 0; i < span; ++i) {
            const B x = B::load_aligned(row + i * cp);
#pragma GCC unroll 8
            for (int kx = 0; kx < KW; ++kx) {
                const int d = i - kx;
                if (d >= 0 && d % S == 0 && d / S < N) acc[d / S] = xsimd::fma(x, wk[kx], acc[d / S]);
            }
        }
    }
    const B lo(a.lo), hi(a.hi);
#pragma GCC unroll 16
    for (int j = 0; j < N; ++j) clamp_batch(acc[j], lo, hi).store_aligned(o + std::ptrdiff_t(j) * cp);
}

// Output row oy, channel vectors [v0, v1) (L floats each): tiles of T pixels, the rest in
// tiles of 4, 2, 1.
template <class Arch>
inline void depthwise_row(const depthwise_args& a, int oy, int v0, int v1) {
    using B = xsimd::batch<float, Arch>;
    constexpr int L = int(B::size);
    constexpr int T = L >= 16 ? 12 : 8;  // accumulators: 12 of 32 zmm, 8 of 16 ymm/xmm
    const float* base = a.in + std::ptrdiff_t(oy * a.sh - a.top) * a.in_row - std::ptrdiff_t(a.left) * a.cpad;
    float* o = a.out + std::ptrdiff_t(oy) * a.out_row;
    const std::ptrdiff_t xs = std::ptrdiff_t(a.sw) * a.cpad;
    for (int v = v0; v < v1; ++v) {
        const int c = v * L;
        const float* w = a.weight + c;
        const float* b = a.bias + c;
        int ox = 0;
        if (a.kw == 5 && a.dw == 1 && a.sw == 1)
            for (; ox + T <= a.out_w; ox += T) depthwise_tile_reuse<Arch, T, 5, 1>(a, base + ox * xs + c, w, b, o + std::ptrdiff_t(ox) * a.cpad + c);
        else if (a.kw == 5 && a.dw == 1 && a.sw == 2)
            for (; ox + T <= a.out_w; ox += T) depthwise_tile_reuse<Arch, T, 5, 2>(a, base + ox * xs + c, w, b, o + std::ptrdiff_t(ox) * a.cpad + c);
        for (; ox + T <= a.out_w; ox += T) depthwise_tile<Arch, T>(a, base + ox * xs + c, w, b, o + std::ptrdiff_t(ox) * a.cpad + c);
        for (; ox + 4 <= a.out_w; ox += 4) depthwise_tile<Arch, 4>(a, base + ox * xs + c, w, b, o + std::ptrdiff_t(ox) * a.cpad + c);
        for (; ox + 2 <= a.out_w; ox += 2) depthwise_tile<Arch, 2>(a, base + ox * xs + c, w, b, o + std::ptrdiff_t(ox) * a.cpad + c);
        for (; ox < a.out_w; ++ox) depthwise_tile<Arch, 1>(a, base + ox * xs + c, w, b, o + std::ptrdiff_t(ox) * a.cpad + c);
    }
}

template <class Arch>
void depthwise_conv(const depthwise_args& a) {
    using B = xsimd::batch<float, Arch>;
    constexpr int L = int(B::size);
    const int nvec = a.cpad / L;
    // Items: output rows x groups of up to 64 channels (enough items for the pool on the
    // small maps, whole rows' worth of work on the large ones).
    const int per = 64 / L < 1 ? 1 : 64 / L;
    const int groups = (nvec + per - 1) / per;
    const std::ptrdiff_t work = std::ptrdiff_t(a.out_h) * a.out_w * a.cpad * a.kh * a.kw;
    // Shared out from 2^15 multiply-adds per thread (~2 us): see share_floats_log2
    // (palm_elementwise.hpp) for why even small maps.
    parallel_for(a.loop, work >= (std::ptrdiff_t(a.loop.threads) << 15), a.out_h * groups, 1, [&](int item, int) {
        const int oy = item / groups, g = item % groups;
        const int v0 = g * per, v1 = v0 + per < nvec ? v0 + per : nvec;
        depthwise_row<Arch>(a, oy, v0, v1);
    });
}

}  // namespace detail

// A fused activation as a clamp: TFLite's NONE, RELU, RELU6, RELU_N1_TO_1.
struct clamp_range {
    float lo = -std::numeric_limits<float>::infinity();
    float hi = std::numeric_limits<float>::infinity();
    bool none() const { return std::isinf(lo) && lo < 0 && std::isinf(hi) && hi > 0; }
};

// Padding of a window op per side, in pixels.
struct window_pads {
    int top = 0, bottom = 0, left = 0, right = 0;
};

// Output size of a window of `kernel` taps `dilation` apart, stride `stride`, over `size`
// pixels padded by `before` and `after` (0 when the window does not fit).
inline int window_output(int size, int kernel, int stride, int dilation, int before, int after) {
    const long span = long(kernel - 1) * dilation + 1, padded = long(size) + before + after;
    return padded < span ? 0 : int((padded - span) / stride + 1);
}

// Border a window op's input needs so that every tap it reads lies inside the stored map.
inline int window_border(int size, int out, int kernel, int stride, int dilation, int before) {
    const long last = long(out - 1) * stride + long(kernel - 1) * dilation - before;  // last tap read
    const long past = last - (size - 1);
    return int(before > past ? before : past > 0 ? past : 0);
}

class depthwise_conv2d {
public:
    // filter: TFLite's [1, kh, kw, channels] layout (element [0, y, x, c] at (y * kw + x) *
    // channels + c); bias [channels] or null (zero).
    static depthwise_conv2d prepare(const float* filter, const float* bias, int channels, int kh, int kw, int sh, int sw, int dh, int dw,
                                    const window_pads& pads, const detector_setup& setup = {}) {
        if (!filter) throw error("depthwise_conv2d::prepare: no filter");
        if (channels <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || dh <= 0 || dw <= 0 || pads.top < 0 || pads.bottom < 0 ||
            pads.left < 0 || pads.right < 0)
            throw error("depthwise_conv2d::prepare: bad shape (channels " + std::to_string(channels) + ", kernel " + std::to_string(kh) + "x" +
                        std::to_string(kw) + ", stride " + std::to_string(sh) + "x" + std::to_string(sw) + ")");
        depthwise_conv2d d;
        d.c_ = channels;
        d.cpad_ = round_up(channels, channel_block);
        d.kh_ = kh, d.kw_ = kw, d.sh_ = sh, d.sw_ = sw, d.dh_ = dh, d.dw_ = dw, d.pads_ = pads;
        d.kernels_ = &setup.table();
        d.weight_ = aligned_buffer(std::size_t(kh) * kw * d.cpad_, setup.weights);  // zeroed: padding channels stay 0
        d.bias_ = aligned_buffer(std::size_t(d.cpad_), setup.weights);
        for (int t = 0; t < kh * kw; ++t)
            for (int c = 0; c < channels; ++c) d.weight_[std::size_t(t) * d.cpad_ + c] = filter[std::size_t(t) * channels + c];
        for (int c = 0; c < channels; ++c) d.bias_[std::size_t(c)] = bias ? bias[c] : 0.0f;
        return d;
    }

    int out_height(int in_h) const { return window_output(in_h, kh_, sh_, dh_, pads_.top, pads_.bottom); }
    int out_width(int in_w) const { return window_output(in_w, kw_, sw_, dw_, pads_.left, pads_.right); }
    // The input border run() needs for an in_h x in_w map.
    int border_needed(int in_h, int in_w) const {
        const int a = window_border(in_h, out_height(in_h), kh_, sh_, dh_, pads_.top);
        const int b = window_border(in_w, out_width(in_w), kw_, sw_, dw_, pads_.left);
        return a > b ? a : b;
    }

    // out = act(depthwise(in) + bias), over out's interior; out shaped by the caller.
    void run(const feature_map& in, feature_map& out, const clamp_range& act, const exec& ex) const {
        check(in, out);
        detail::depthwise_args a{};
        a.in = in.pixel(0, 0);
        a.in_row = std::ptrdiff_t(in.row_stride());
        a.out = out.pixel(0, 0);
        a.out_row = std::ptrdiff_t(out.row_stride());
        a.cpad = cpad_;
        a.out_h = out.height;
        a.out_w = out.width;
        a.kh = kh_, a.kw = kw_, a.sh = sh_, a.sw = sw_, a.dh = dh_, a.dw = dw_, a.top = pads_.top, a.left = pads_.left;
        a.weight = weight_.data();
        a.bias = bias_.data();
        a.lo = act.lo;
        a.hi = act.hi;
        a.loop = ex.loop;
        kernels_->depthwise(a);
    }

    int channels() const { return c_; }
    int kernel_h() const { return kh_; }
    int kernel_w() const { return kw_; }
    int stride_h() const { return sh_; }
    int stride_w() const { return sw_; }
    const window_pads& pads() const { return pads_; }
    const char* kernels_name() const { return kernels_ ? kernels_->name : ""; }

private:
    void check(const feature_map& in, const feature_map& out) const {
        auto valid = [](const feature_map& m) {
            return m.height > 0 && m.width > 0 && m.channels > 0 && m.border >= 0 && m.cpad == round_up(m.channels, channel_block) &&
                   m.buf.size() == std::size_t(m.height + 2 * m.border) * std::size_t(m.width + 2 * m.border) * std::size_t(m.cpad);
        };
        if (!valid(in) || !valid(out)) throw error("depthwise_conv2d: input or output is not a valid feature map");
        if (in.channels != c_ || out.channels != c_)
            throw error("depthwise_conv2d: maps of " + std::to_string(in.channels) + " and " + std::to_string(out.channels) + " channels, layer has " +
                        std::to_string(c_));
        if (out.height != out_height(in.height) || out.width != out_width(in.width))
            throw error("depthwise_conv2d: output is " + std::to_string(out.height) + "x" + std::to_string(out.width) + ", expected " +
                        std::to_string(out_height(in.height)) + "x" + std::to_string(out_width(in.width)));
        if (in.border < border_needed(in.height, in.width))
            throw error("depthwise_conv2d: input border " + std::to_string(in.border) + " < " + std::to_string(border_needed(in.height, in.width)) +
                        " (the padding)");
        if (in.buf.data() == out.buf.data()) throw error("depthwise_conv2d: output aliases the input");
    }

    int c_ = 0, cpad_ = 0, kh_ = 0, kw_ = 0, sh_ = 1, sw_ = 1, dh_ = 1, dw_ = 1;
    window_pads pads_;
    const detector_kernel_table* kernels_ = nullptr;
    aligned_buffer weight_, bias_;
};

}  // namespace kernels
}  // namespace handgraph

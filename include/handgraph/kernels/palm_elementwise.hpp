// handgraph/kernels/palm_elementwise.hpp: the palm detector's per-pixel kernels on feature
// maps (HWC, channels padded to 16, zero border), as TFLite defines the ops:
//  - pointwise: PReLU (y = x for x >= 0, alpha[c] * x otherwise), PReLU then a residual add
//    (y = prelu(x) + r), ADD (y = a + b) and a plain clamp (a fused activation), each
//    followed by a clamp to [lo, hi] (the op's fused activation; +-inf for none). Maps of
//    one call share their size and channel count; their borders may differ; out may alias
//    the inputs.
//  - max_pool: MAX_POOL_2D, any window, stride and TFLite padding per side; the maximum over
//    the window's taps that lie inside the input (padding never wins). The output may have
//    more channels than the input: they are written as zeros (MAX_POOL_2D followed by a PAD
//    of the channels, in one pass).
//  - resize_bilinear: RESIZE_BILINEAR with TFLite's rule (kernels/internal/reference:
//    ComputeInterpolationValues): per axis scale = in / out, or (in - 1) / (out - 1) with
//    align_corners, as float32; source s = (d + 0.5) * scale - 0.5 with half_pixel_centers,
//    else d * scale; lo = max(floor(s), 0), hi = min(ceil(s), in - 1), weight of hi s - lo;
//    y = (1 - fy) * ((1 - fx) * x[lo, lo] + fx * x[lo, hi]) + fy * ((1 - fx) * x[hi, lo] + fx * x[hi, hi]).
//    The per-axis taps are computed once per call in generic code (resize_taps).
// All vectorised over the channels, padding channels included (they stay zero: alpha and
// the inputs are zero there). Only the interior of out is written.
// Depends on tensor.hpp, detector_dispatch.hpp, parallel.hpp, depthwise.hpp (clamp_range,
// window_pads, window_output).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"
#include "depthwise.hpp"
#include "detector_dispatch.hpp"
#include "parallel.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

enum class pointwise_op { prelu, prelu_add, add, clamp };

// The detector's row loops are shared out from 2^11 output floats per thread (a few
// microseconds): even its small maps. Their rows then stay with the thread whose home range
// (parallel.hpp) holds them in the layers before and after; run on the caller alone, a
// 12 x 12 x 256 layer read the helper's half of its input from the other core and was
// slower than on one thread (benchmarks/NOTES.md, 2026-12-03).
constexpr int share_floats_log2 = 11;

struct pointwise_args {
    pointwise_op op;
    const float* a;  // prelu, prelu_add, clamp: x; add: a
    std::ptrdiff_t a_row;
    const float* b;  // prelu_add: the residual r; add: b
    std::ptrdiff_t b_row;
    float* out;
    std::ptrdiff_t out_row;
    int height, width, cpad;
    const float* alpha;  // [cpad], zero in the padding (prelu, prelu_add)
    float lo, hi;
    loop_runner loop;
};

template <class Arch>
void pointwise(const pointwise_args& a) {
    using B = xsimd::batch<float, Arch>;
    constexpr int L = int(B::size);
    const int n = a.width * a.cpad;
    const bool par = a.loop.threads > 1 && std::ptrdiff_t(a.height) * n >= (std::ptrdiff_t(a.loop.threads) << share_floats_log2);
    parallel_for(a.loop, par, a.height, 1, [&](int y, int) {
        const B lo(a.lo), hi(a.hi), zero(0.0f);
        const float* x = a.a + std::ptrdiff_t(y) * a.a_row;
        const float* r = a.b ? a.b + std::ptrdiff_t(y) * a.b_row : nullptr;
        float* o = a.out + std::ptrdiff_t(y) * a.out_row;
        switch (a.op) {
            case pointwise_op::prelu:
            case pointwise_op::prelu_add:
                for (int i = 0; i < n; i += a.cpad)
                    for (int c = 0; c < a.cpad; c += L) {
                        const B v = B::load_aligned(x + i + c);
                        B y = xsimd::select(v >= zero, v, v * B::load_aligned(a.alpha + c));
                        if (a.op == pointwise_op::prelu_add) y += B::load_aligned(r + i + c);
                        clamp_batch(y, lo, hi).store_aligned(o + i + c);
                    }
                break;
            case pointwise_op::add:
                for (int i = 0; i < n; i += L)
                    clamp_batch(B::load_aligned(x + i) + B::load_aligned(r + i), lo, hi).store_aligned(o + i);
                break;
            case pointwise_op::clamp:
                for (int i = 0; i < n; i += L) clamp_batch(B::load_aligned(x + i), lo, hi).store_aligned(o + i);
                break;
        }
    });
}

struct pool_args {
    const float* in;  // in.pixel(0, 0)
    std::ptrdiff_t in_row;
    int in_h, in_w, in_cpad;
    float* out;
    std::ptrdiff_t out_row;
    int out_h, out_w, out_cpad;  // out_cpad >= in_cpad: channels from in_cpad on are written as 0
    int fh, fw, sh, sw, top, left;
    float lo, hi;
    loop_runner loop;
};

template <class Arch>
void max_pool(const pool_args& a) {
    using B = xsimd::batch<float, Arch>;
    constexpr int L = int(B::size);
    const bool par = a.loop.threads > 1 && std::ptrdiff_t(a.out_h) * a.out_w * a.out_cpad >= (std::ptrdiff_t(a.loop.threads) << share_floats_log2);
    parallel_for(a.loop, par, a.out_h, 1, [&](int oy, int) {
        const B lo(a.lo), hi(a.hi), zero(0.0f);
        const int y0 = oy * a.sh - a.top, y1 = y0 + a.fh;
        const int ya = y0 < 0 ? 0 : y0, yb = y1 > a.in_h ? a.in_h : y1;
        float* o = a.out + std::ptrdiff_t(oy) * a.out_row;
        for (int ox = 0; ox < a.out_w; ++ox) {
            const int x0 = ox * a.sw - a.left, x1 = x0 + a.fw;
            const int xa = x0 < 0 ? 0 : x0, xb = x1 > a.in_w ? a.in_w : x1;
            float* op = o + std::ptrdiff_t(ox) * a.out_cpad;
            for (int c = 0; c < a.in_cpad; c += L) {
                const float* p = a.in + std::ptrdiff_t(ya) * a.in_row + std::ptrdiff_t(xa) * a.in_cpad + c;
                B m = B::load_aligned(p);  // the window holds at least one input pixel (checked)
                for (int y = ya; y < yb; ++y, p += a.in_row)
                    for (int x = 0; x < xb - xa; ++x) m = xsimd::max(m, B::load_aligned(p + std::ptrdiff_t(x) * a.in_cpad));
                clamp_batch(m, lo, hi).store_aligned(op + c);
            }
            for (int c = a.in_cpad; c < a.out_cpad; c += L) zero.store_aligned(op + c);
        }
    });
}

struct resize_args {
    const float* in;
    std::ptrdiff_t in_row;
    float* out;
    std::ptrdiff_t out_row;
    int out_h, out_w, cpad;
    const int* y_lo;  // [out_h]
    const int* y_hi;
    const float* y_frac;
    const int* x_lo;  // [out_w]
    const int* x_hi;
    const float* x_frac;
    loop_runner loop;
};

template <class Arch>
void resize_bilinear(const resize_args& a) {
    using B = xsimd::batch<float, Arch>;
    constexpr int L = int(B::size);
    const bool par = a.loop.threads > 1 && std::ptrdiff_t(a.out_h) * a.out_w * a.cpad >= (std::ptrdiff_t(a.loop.threads) << share_floats_log2);
    parallel_for(a.loop, par, a.out_h, 1, [&](int oy, int) {
        const float* r0 = a.in + std::ptrdiff_t(a.y_lo[oy]) * a.in_row;
        const float* r1 = a.in + std::ptrdiff_t(a.y_hi[oy]) * a.in_row;
        const B fy(a.y_frac[oy]), gy(1.0f - a.y_frac[oy]);
        float* o = a.out + std::ptrdiff_t(oy) * a.out_row;
        for (int ox = 0; ox < a.out_w; ++ox) {
            const std::ptrdiff_t i0 = std::ptrdiff_t(a.x_lo[ox]) * a.cpad, i1 = std::ptrdiff_t(a.x_hi[ox]) * a.cpad;
            const B fx(a.x_frac[ox]), gx(1.0f - a.x_frac[ox]);
            for (int c = 0; c < a.cpad; c += L) {
                const B top = gx * B::load_aligned(r0 + i0 + c) + fx * B::load_aligned(r0 + i1 + c);
                const B bot = gx * B::load_aligned(r1 + i0 + c) + fx * B::load_aligned(r1 + i1 + c);
                (gy * top + fy * bot).store_aligned(o + std::ptrdiff_t(ox) * a.cpad + c);
            }
        }
    });
}

inline void check_palm_map(const feature_map& m, const char* fn, const char* what) {
    std::size_t n = std::size_t(m.height + 2 * m.border) * std::size_t(m.width + 2 * m.border) * std::size_t(m.cpad);
    if (m.height <= 0 || m.width <= 0 || m.channels <= 0 || m.border < 0 || m.cpad != round_up(m.channels, channel_block) ||
        m.buf.size() != n)
        throw error(std::string(fn) + ": " + what + " is not a valid feature map");
}

inline void check_like(const feature_map& x, const feature_map& ref, const char* fn, const char* what) {
    if (x.height != ref.height || x.width != ref.width || x.channels != ref.channels)
        throw error(std::string(fn) + ": " + what + " is " + std::to_string(x.height) + "x" + std::to_string(x.width) + "x" +
                    std::to_string(x.channels) + ", expected " + std::to_string(ref.height) + "x" + std::to_string(ref.width) + "x" +
                    std::to_string(ref.channels));
}

inline pointwise_args pointwise_base(pointwise_op op, const feature_map& a, feature_map& out, const clamp_range& act, const exec& ex) {
    pointwise_args p{};
    p.op = op;
    p.a = a.pixel(0, 0);
    p.a_row = std::ptrdiff_t(a.row_stride());
    p.out = out.pixel(0, 0);
    p.out_row = std::ptrdiff_t(out.row_stride());
    p.height = out.height;
    p.width = out.width;
    p.cpad = out.cpad;
    p.lo = act.lo;
    p.hi = act.hi;
    p.loop = ex.loop;
    return p;
}

}  // namespace detail

// PReLU's per-channel slopes, padded for the kernels (zero in the padding channels).
class prelu_slopes {
public:
    static prelu_slopes prepare(const float* alpha, int channels, const detector_setup& setup = {}) {
        if (!alpha || channels <= 0) throw error("prelu: no slopes");
        prelu_slopes p;
        p.c_ = channels;
        p.kernels_ = &setup.table();
        p.alpha_ = aligned_buffer(std::size_t(round_up(channels, channel_block)), setup.weights);
        for (int c = 0; c < channels; ++c) p.alpha_[std::size_t(c)] = alpha[c];
        return p;
    }
    // out = clamp(prelu(in) [+ residual]); all of in's shape (any borders); out may alias
    // in or residual.
    void run(const feature_map& in, const feature_map* residual, feature_map& out, const clamp_range& act, const exec& ex) const {
        const char* fn = "prelu";
        detail::check_palm_map(in, fn, "input");
        detail::check_palm_map(out, fn, "output");
        detail::check_like(out, in, fn, "output");
        if (in.channels != c_) throw error("prelu: input has " + std::to_string(in.channels) + " channels, the slopes " + std::to_string(c_));
        detail::pointwise_args p = detail::pointwise_base(residual ? detail::pointwise_op::prelu_add : detail::pointwise_op::prelu, in, out, act, ex);
        if (residual) {
            detail::check_palm_map(*residual, fn, "residual");
            detail::check_like(*residual, in, fn, "residual");
            p.b = residual->pixel(0, 0);
            p.b_row = std::ptrdiff_t(residual->row_stride());
        }
        p.alpha = alpha_.data();
        kernels_->pointwise(p);
    }
    int channels() const { return c_; }

private:
    int c_ = 0;
    const detector_kernel_table* kernels_ = nullptr;
    aligned_buffer alpha_;
};

// out = clamp(a + b) (TFLite ADD without broadcasting); out may alias a or b.
inline void add_clamped(const detector_kernel_table& k, const feature_map& a, const feature_map& b, feature_map& out, const clamp_range& act,
                        const exec& ex) {
    const char* fn = "add";
    detail::check_palm_map(a, fn, "a");
    detail::check_palm_map(b, fn, "b");
    detail::check_palm_map(out, fn, "output");
    detail::check_like(b, a, fn, "b");
    detail::check_like(out, a, fn, "output");
    detail::pointwise_args p = detail::pointwise_base(detail::pointwise_op::add, a, out, act, ex);
    p.b = b.pixel(0, 0);
    p.b_row = std::ptrdiff_t(b.row_stride());
    k.pointwise(p);
}

// out = clamp(in) (a fused activation applied on its own); out may alias in.
inline void clamp(const detector_kernel_table& k, const feature_map& in, feature_map& out, const clamp_range& act, const exec& ex) {
    detail::check_palm_map(in, "clamp", "input");
    detail::check_palm_map(out, "clamp", "output");
    detail::check_like(out, in, "clamp", "output");
    k.pointwise(detail::pointwise_base(detail::pointwise_op::clamp, in, out, act, ex));
}

// MAX_POOL_2D: window fh x fw, stride sh x sw, padding `pads`; out is the window_output
// size with in's channels or more (the extra ones zero); out must not alias in.
inline void max_pool(const detector_kernel_table& k, const feature_map& in, int fh, int fw, int sh, int sw, const window_pads& pads, feature_map& out,
                     const clamp_range& act, const exec& ex) {
    const char* fn = "max_pool";
    detail::check_palm_map(in, fn, "input");
    detail::check_palm_map(out, fn, "output");
    if (fh < 1 || fw < 1 || sh < 1 || sw < 1 || pads.top < 0 || pads.left < 0 || pads.top >= fh || pads.left >= fw || pads.bottom >= fh ||
        pads.right >= fw)
        throw error("max_pool: window " + std::to_string(fh) + "x" + std::to_string(fw) + " with padding that can hold a window without input");
    const int oh = window_output(in.height, fh, sh, 1, pads.top, pads.bottom), ow = window_output(in.width, fw, sw, 1, pads.left, pads.right);
    if (out.height != oh || out.width != ow || out.channels < in.channels)
        throw error("max_pool: output is " + std::to_string(out.height) + "x" + std::to_string(out.width) + "x" + std::to_string(out.channels) +
                    ", expected " + std::to_string(oh) + "x" + std::to_string(ow) + "x" + std::to_string(in.channels) + " (or more channels)");
    if (in.buf.data() == out.buf.data()) throw error("max_pool: output aliases the input");
    detail::pool_args p{};
    p.in = in.pixel(0, 0);
    p.in_row = std::ptrdiff_t(in.row_stride());
    p.in_h = in.height, p.in_w = in.width, p.in_cpad = in.cpad;
    p.out = out.pixel(0, 0);
    p.out_row = std::ptrdiff_t(out.row_stride());
    p.out_h = oh, p.out_w = ow, p.out_cpad = out.cpad;
    p.fh = fh, p.fw = fw, p.sh = sh, p.sw = sw, p.top = pads.top, p.left = pads.left;
    p.lo = act.lo, p.hi = act.hi;
    p.loop = ex.loop;
    k.max_pool(p);
}

// One axis of TFLite's bilinear resize (see the top): lower and upper source index and the
// upper one's weight for every output index.
struct resize_axis {
    std::vector<int> lo, hi;
    std::vector<float> frac;
};

inline resize_axis resize_taps(int in, int out, bool align_corners, bool half_pixel_centers) {
    resize_axis t;
    t.lo.resize(std::size_t(out));
    t.hi.resize(std::size_t(out));
    t.frac.resize(std::size_t(out));
    const float scale = align_corners && out > 1 ? float(in - 1) / float(out - 1) : float(in) / float(out);
    for (int d = 0; d < out; ++d) {
        const float s = half_pixel_centers ? (float(d) + 0.5f) * scale - 0.5f : float(d) * scale;
        const int lo = std::max(int(std::floor(s)), 0), hi = std::min(int(std::ceil(s)), in - 1);
        t.lo[std::size_t(d)] = std::min(lo, in - 1);
        t.hi[std::size_t(d)] = hi;
        t.frac[std::size_t(d)] = s - float(lo);
    }
    return t;
}

// RESIZE_BILINEAR of in to out's size (same channels); the taps of resize_taps.
inline void resize_bilinear(const detector_kernel_table& k, const feature_map& in, feature_map& out, bool align_corners, bool half_pixel_centers,
                            const exec& ex) {
    const char* fn = "resize_bilinear";
    detail::check_palm_map(in, fn, "input");
    detail::check_palm_map(out, fn, "output");
    if (out.channels != in.channels) throw error("resize_bilinear: output has " + std::to_string(out.channels) + " channels, input " + std::to_string(in.channels));
    if (in.buf.data() == out.buf.data()) throw error("resize_bilinear: output aliases the input");
    const resize_axis ty = resize_taps(in.height, out.height, align_corners, half_pixel_centers);
    const resize_axis tx = resize_taps(in.width, out.width, align_corners, half_pixel_centers);
    detail::resize_args a{};
    a.in = in.pixel(0, 0);
    a.in_row = std::ptrdiff_t(in.row_stride());
    a.out = out.pixel(0, 0);
    a.out_row = std::ptrdiff_t(out.row_stride());
    a.out_h = out.height, a.out_w = out.width, a.cpad = out.cpad;
    a.y_lo = ty.lo.data(), a.y_hi = ty.hi.data(), a.y_frac = ty.frac.data();
    a.x_lo = tx.lo.data(), a.x_hi = tx.hi.data(), a.x_frac = tx.frac.data();
    a.loop = ex.loop;
    k.resize_bilinear(a);
}

}  // namespace kernels
}  // namespace handgraph

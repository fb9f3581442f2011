// handgraph/kernels/conv.hpp: 2D convolution on feature maps (HWC, channels padded to 16).
//
// conv2d::prepare packs the OIHW weights once (folded affine included); conv2d::run computes
// out = [relu](conv(in) + bias) [+ residual] over the interior of `out`.
// Direct kernel ("conv_direct"): output channels in 16-wide blocks held in SIMD registers,
// a register tile of `pixels` consecutive output pixels x `blocks` 16-channel blocks,
// accumulating over taps and the *logical* input channels (so a 3-channel image costs 3, not
// 16, multiply-adds per tap), input scalars broadcast, bias/relu/residual fused in the store.
// Weights are packed per 16 output channels as [cout/16][ky][kx][cin][16].
// Each layer runs the algorithm it was prepared with (conv_algorithm): the direct kernel,
// or Winograd F(4x4, 3x3) or F(2x2, 3x3) for 3x3 stride-1 pad-1 layers (winograd.hpp). Which layers get
// Winograd is decided in one place, model.hpp's conv_algorithm_for; exec::exact runs the
// direct kernel everywhere.
// AVX-512 on a Zen 4 core (117 GFLOP/s peak): direct 105-116 GFLOP/s on the network's 1x1
// and 3x3 shapes, Winograd 300-400 effective GFLOP/s; on a Zen 5 core (261 peak, full-rate
// 512-bit FMA): direct 210-242, F(4x4) 580-710, F(2x2) 400-440 (benchmarks/kernel_bench,
// benchmarks/NOTES.md 2026-12-04).
// Depends on tensor.hpp, dispatch.hpp, conv_tile.hpp, winograd.hpp (3x3 stride-1 layers).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"
#include "conv_tile.hpp"
#include "dispatch.hpp"
#include "winograd.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

struct conv_args {
    const float* in;  // input at the first tap of output pixel (0, 0): in.pixel(-pad, -pad)
    std::ptrdiff_t in_row;  // floats between input rows
    int in_cpad;
    float* out;  // out.pixel(0, 0)
    std::ptrdiff_t out_row;
    int out_cpad;
    const float* res;  // residual.pixel(0, 0) or nullptr
    std::ptrdiff_t res_row;
    int res_cpad;
    int out_h, out_w;
    int cin, kernel, stride;
    const float* weight;  // [cout16][k][k][cin][16]
    const float* bias;    // [cout16 * 16]
    int cout16;
    bool relu;
    loop_runner loop;  // serial by default
    // conv_direct_preact only (1x1 stride-1 layers): the input's pre-activation
    // max(0, in * pre_scale + pre_shift) per channel ([in_cpad], zero in the padding), and the
    // per-slot scratch its rows go through (in.width * in_cpad floats).
    const float* pre_scale = nullptr;
    const float* pre_shift = nullptr;
    float* (*scratch)(void* spaces, int slot, std::size_t floats) = nullptr;
    void* spaces = nullptr;
    // conv_direct_double only: the unscaled weights in double ([cout16][k][k][cin][16], as
    // `weight`), and the per-output-channel epilogue y = sum * scale64 + shift64 ([cout16 * 16];
    // shift64 = bias * scale + shift).
    const double* weight64 = nullptr;
    const double* scale64 = nullptr;
    const double* shift64 = nullptr;
};

// Output row `oy`, output blocks [g, g + NB).
template <class Arch, int NB, int CIN>
inline void conv_direct_row(const conv_args& a, int oy, int g) {
    constexpr int P = conv_tile_shape<Arch>::pixels;
    const std::ptrdiff_t gs = std::ptrdiff_t(a.kernel) * a.kernel * a.cin * 16;
    const std::ptrdiff_t ps = std::ptrdiff_t(a.stride) * a.in_cpad;
    const float* ip = a.in + std::ptrdiff_t(oy) * a.stride * a.in_row;
    const float* w = a.weight + g * gs;
    const float* bias = a.bias + g * 16;
    float* op = a.out + oy * a.out_row + g * 16;
    const float* rp = a.res ? a.res + oy * a.res_row + g * 16 : nullptr;
    // A short remainder (r < P / 2 pixels) shares the last full tile's pixels: two tiles of
    // about (P + r) / 2 instead of P and r (64 = 4 x 12 + 2 x 8, not 5 x 12 + 4): a tile of
    // few pixels has too few accumulators to keep the FMA units busy (AVX-512, 1x1
    // 256->128, benchmarks/NOTES.md 2026-12-04: 12 px 242 GFLOP/s, 8 px 241, 4 px 150).
    // A pixel's result does not depend on its tile (conv_tile.hpp).
    const int r = a.out_w % P;
    const int full_end = r > 0 && r < P / 2 && a.out_w > P ? a.out_w - r - P : a.out_w - r;
    auto tail = [&](int x0, int n) {
        conv_direct_tail<Arch, NB, P>::run(n, ip + x0 * ps, ps, a.in_row, a.in_cpad, a.kernel, a.cin, w, gs, bias,
                                           op + x0 * a.out_cpad, a.out_cpad, rp ? rp + x0 * a.res_cpad : nullptr,
                                           a.res_cpad, a.relu);
    };
    int ox = 0;
    for (; ox < full_end; ox += P)
        conv_direct_tile<Arch, P, NB, CIN>(ip + ox * ps, ps, a.in_row, a.in_cpad, a.kernel, a.cin, w, gs, bias,
                                      op + ox * a.out_cpad, a.out_cpad, rp ? rp + ox * a.res_cpad : nullptr,
                                      a.res_cpad, a.relu);
    const int left = a.out_w - ox;
    if (left > P) {
        tail(ox, (left + 1) / 2);
        tail(ox + (left + 1) / 2, left / 2);
    } else if (left > 0) {
        tail(ox, left);
    }
}

template <class Arch, int NB>
struct conv_direct_blocks {
    static void run(int nb, const conv_args& a, int oy, int g) {
        if (nb == NB && a.cin == 3) conv_direct_row<Arch, NB, 3>(a, oy, g);
        else if (nb == NB) conv_direct_row<Arch, NB, 0>(a, oy, g);
        else conv_direct_blocks<Arch, NB - 1>::run(nb, a, oy, g);
    }
};
template <class Arch>
struct conv_direct_blocks<Arch, 0> {
    static void run(int, const conv_args&, int, int) {}
};

// A 1x1 stride-1 layer whose input first goes through a pre-activation (BatchNorm folded to
// a per-channel affine, then ReLU): each item is one output row, whose input row is
// transformed into the slot's scratch (L2-sized) and convolved for every output group. The
// transformed map is never stored whole (residual.run's `a`: 4 MB at 64x64x256, the largest
// map at the network's memory peak), and the arithmetic is scale_shift_relu's, so results
// equal the two-step form bit for bit.
template <class Arch>
void conv_direct_preact(const conv_args& a) {
    using B = xsimd::batch<float, Arch>;
    constexpr int L = int(B::size);
    constexpr int NB = conv_tile_shape<Arch>::blocks;
    const int ngroups = (a.cout16 + NB - 1) / NB;
    const std::size_t row_floats = std::size_t(a.out_w) * std::size_t(a.in_cpad);
    parallel_for(a.loop, true, a.out_h, 1, [&](int oy, int slot) {
        float* row = a.scratch(a.spaces, slot, row_floats);
        const float* src = a.in + std::ptrdiff_t(oy) * a.in_row;
        const B zero(0.0f);
        for (std::size_t i = 0; i < row_floats; i += std::size_t(a.in_cpad))
            for (int c = 0; c < a.in_cpad; c += L) {
                B v = xsimd::fma(B::load_aligned(src + i + c), B::load_aligned(a.pre_scale + c), B::load_aligned(a.pre_shift + c));
                xsimd::max(v, zero).store_aligned(row + i + c);
            }
        conv_args r = a;
        r.in = row;
        r.out = a.out + std::ptrdiff_t(oy) * a.out_row;
        r.res = a.res ? a.res + std::ptrdiff_t(oy) * a.res_row : nullptr;
        for (int gi = 0; gi < ngroups; ++gi) {
            const int g = gi * NB, nb = a.cout16 - g < NB ? a.cout16 - g : NB;
            conv_direct_blocks<Arch, NB>::run(nb, r, 0, g);
        }
    });
}

template <class Arch>
void conv_direct(const conv_args& a) {
    constexpr int NB = conv_tile_shape<Arch>::blocks;
    const int ngroups = (a.cout16 + NB - 1) / NB;
    const int items = a.out_h * ngroups;
    parallel_for(a.loop, true, items, 1, [&](int it, int) {
        int oy = it / ngroups, g = (it % ngroups) * NB;
        int nb = a.cout16 - g < NB ? a.cout16 - g : NB;
        conv_direct_blocks<Arch, NB>::run(nb, a, oy, g);
    });
}

// The end of a direct_double tile: y = float(sum * scale64 + shift64), relu, residual.
template <class Arch, int P, class D, int V>
inline void conv_double_store(const conv_args& a, const D (&acc)[P][V], const double* sc, const double* sh, float* op, const float* rp) {
    constexpr int LD = int(D::size);
    alignas(64) double y[16];
    for (int p = 0; p < P; ++p) {
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v)
            xsimd::fma(acc[p][v], D::load_unaligned(sc + v * LD), D::load_unaligned(sh + v * LD)).store_aligned(y + v * LD);
        for (int l = 0; l < 16; ++l) {
            float f = float(y[l]);
            if (a.relu && f < 0.0f) f = 0.0f;
            if (rp) f += rp[p * a.res_cpad + l];
            op[p * a.out_cpad + l] = f;
        }
    }
}

// conv_direct_double: P output pixels x 16 output channels of one block, accumulated in
// double (every product exact, one rounding per add) over the taps and logical input
// channels, then y = float(sum * scale64 + shift64), relu, residual. The input `ip` is the
// float map itself (`irow`, `icpad` its row and pixel strides) or, in
// conv_direct_double_rows, rows already converted to double: the same products, added in
// the same order.
template <class Arch, int P, class T>
inline void conv_double_tile(const conv_args& a, const T* ip, std::ptrdiff_t ps, std::ptrdiff_t irow, std::ptrdiff_t icpad,
                             const double* w, const double* sc, const double* sh, float* op, const float* rp) {
    using D = xsimd::batch<double, Arch>;
    constexpr int LD = int(D::size), V = 16 / LD;
    D acc[P][V];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) acc[p][v] = D(0.0);
    for (int ky = 0; ky < a.kernel; ++ky)
        for (int kx = 0; kx < a.kernel; ++kx) {
            const T* x = ip + ky * irow + kx * icpad;
            const double* wt = w + std::ptrdiff_t(ky * a.kernel + kx) * a.cin * 16;
            for (int ci = 0; ci < a.cin; ++ci, wt += 16) {
                D wv[V];
#pragma GCC unroll 8
                for (int v = 0; v < V; ++v) wv[v] = D::load_unaligned(wt + v * LD);
#pragma GCC unroll 8
                for (int p = 0; p < P; ++p) {
                    const D xb(static_cast<double>(x[p * ps + ci]));
#pragma GCC unroll 8
                    for (int v = 0; v < V; ++v) acc[p][v] = xsimd::fma(xb, wv[v], acc[p][v]);
                }
            }
        }
    conv_double_store<Arch, P>(a, acc, sc, sh, op, rp);
}

template <class Arch, int P>
struct conv_double_tail {
    template <class T, class... U>
    static void run(int n, const conv_args& a, const T* ip, U... u) {
        if (n == P) conv_double_tile<Arch, P>(a, ip, u...);
        else conv_double_tail<Arch, P - 1>::run(n, a, ip, u...);
    }
};
template <class Arch>
struct conv_double_tail<Arch, 0> {
    template <class T, class... U>
    static void run(int, const conv_args&, const T*, U...) {}
};

// Output row `oy` of block `g` from input `ip` (strides as conv_double_tile's).
template <class Arch, int P, class T>
inline void conv_double_block_row(const conv_args& a, int oy, int g, const T* ip, std::ptrdiff_t ps, std::ptrdiff_t irow, std::ptrdiff_t icpad) {
    const std::ptrdiff_t gs = std::ptrdiff_t(a.kernel) * a.kernel * a.cin * 16;
    const double* w = a.weight64 + g * gs;
    const double* sc = a.scale64 + g * 16;
    const double* sh = a.shift64 + g * 16;
    float* op = a.out + oy * a.out_row + g * 16;
    const float* rp = a.res ? a.res + oy * a.res_row + g * 16 : nullptr;
    int ox = 0;
    for (; ox + P <= a.out_w; ox += P)
        conv_double_tile<Arch, P>(a, ip + ox * ps, ps, irow, icpad, w, sc, sh, op + ox * a.out_cpad, rp ? rp + ox * a.res_cpad : nullptr);
    if (ox < a.out_w)
        conv_double_tail<Arch, P - 1>::run(a.out_w - ox, a, ip + ox * ps, ps, irow, icpad, w, sc, sh, op + ox * a.out_cpad,
                                           rp ? rp + ox * a.res_cpad : nullptr);
}

// Input channels at most this many (the 3-channel image) on the AVX-512 kernels:
// conv_direct_double converts each output row's input rows to double once (the slot's
// scratch), and the tiles broadcast doubles from memory instead of converting a float per
// pixel and term. Stem 7x7/2 3->64 @256 on a Zen 5 (kernel_bench, 1 thread, 2026-12-04):
// AVX-512 4.0-4.2 -> 3.1-3.2 ms; the same path (8-pixel tiles) made AVX2 and SSE2 slower
// (6.4 -> 7.0 and 17.2 -> 17.8 ms), so they keep the float path. The same bits either way.
constexpr int conv_double_rows_max_cin = 4;

template <class Arch>
void conv_direct_double_rows(const conv_args& a) {
    constexpr int P = 8;
    const int cin = a.cin, in_w = (a.out_w - 1) * a.stride + a.kernel;
    const std::size_t doubles = std::size_t(a.kernel) * std::size_t(in_w) * std::size_t(cin);
    const std::ptrdiff_t ps = std::ptrdiff_t(a.stride) * cin, irow = std::ptrdiff_t(in_w) * cin;
    parallel_for(a.loop, true, a.out_h, 1, [&](int oy, int slot) {
        double* rows = reinterpret_cast<double*>(a.scratch(a.spaces, slot, 2 * doubles));
        const float* src = a.in + std::ptrdiff_t(oy) * a.stride * a.in_row;
        double* d = rows;
        for (int ky = 0; ky < a.kernel; ++ky)
            for (int x = 0; x < in_w; ++x)
                for (int c = 0; c < cin; ++c) *d++ = double(src[std::ptrdiff_t(ky) * a.in_row + std::ptrdiff_t(x) * a.in_cpad + c]);
        for (int g = 0; g < a.cout16; ++g) conv_double_block_row<Arch, P>(a, oy, g, static_cast<const double*>(rows), ps, irow, std::ptrdiff_t(cin));
    });
}

// The direct convolution accumulated in double (conv_algorithm::direct_double): each item
// one output row of one 16-channel block.
template <class Arch>
void conv_direct_double(const conv_args& a) {
    if (int(xsimd::batch<double, Arch>::size) == 8 && a.cin <= conv_double_rows_max_cin && a.scratch) return conv_direct_double_rows<Arch>(a);
    constexpr int V = 16 / int(xsimd::batch<double, Arch>::size);
    constexpr int P = V <= 2 ? 8 : V == 4 ? 3 : 1;  // accumulators: 16, 12, 8 of the registers
    const std::ptrdiff_t ps = std::ptrdiff_t(a.stride) * a.in_cpad;
    parallel_for(a.loop, true, a.out_h * a.cout16, 1, [&](int it, int) {
        const int oy = it / a.cout16, g = it % a.cout16;
        conv_double_block_row<Arch, P>(a, oy, g, a.in + std::ptrdiff_t(oy) * a.stride * a.in_row, ps, a.in_row, std::ptrdiff_t(a.in_cpad));
    });
}

inline void check_map(const feature_map& m, const char* what) {
    std::size_t n = std::size_t(m.height + 2 * m.border) * std::size_t(m.width + 2 * m.border) * std::size_t(m.cpad);
    if (m.height <= 0 || m.width <= 0 || m.channels <= 0 || m.border < 0 || m.cpad != round_up(m.channels, channel_block) ||
        m.buf.size() != n)
        throw error(std::string("kernels: ") + what + " is not a valid feature map (" + std::to_string(m.height) + "x" +
                    std::to_string(m.width) + "x" + std::to_string(m.channels) + ", border " +
                    std::to_string(m.border) + ")");
}

inline std::string shape_str(const feature_map& m) {
    return std::to_string(m.height) + "x" + std::to_string(m.width) + "x" + std::to_string(m.channels);
}

}  // namespace detail

// How a convolution layer computes: the direct kernel; the direct kernel accumulated in
// double with the layer's affine (folded BatchNorm) applied in double after the sum instead
// of folded into float weights (for the layers whose rounding the rest of the network
// amplifies most; the stem and a 3x3 64->64 layer at 128x128 took 2.8x the direct kernel's
// time with AVX-512, 2.3-3.1x with AVX2, 2.1-2.3x with SSE2, 2026-12-02); or Winograd
// F(4x4, 3x3) or F(2x2, 3x3) (3x3 stride-1 pad-1 layers only). model.hpp's
// conv_algorithm_for chooses per layer.
enum class conv_algorithm { direct, direct_double, winograd_f4x4, winograd_f2x2 };

// The output tile side of a Winograd algorithm (4 or 2), 0 for the others.
inline int winograd_tile_side(conv_algorithm a) {
    return a == conv_algorithm::winograd_f4x4 ? 4 : a == conv_algorithm::winograd_f2x2 ? 2 : 0;
}

// A convolution layer with its weights packed for the kernels. Move-only.
class conv2d {
public:
    // weight OIHW [cout][cin][kernel][kernel], bias [cout] (may be null: zero); optional
    // per-output-channel affine applied after the convolution (folded BatchNorm):
    // y = (conv(x) + bias) * scale + shift (scale and shift may each be null).
    // `algorithm`: how run() computes (the Winograd ones only for 3x3 stride-1 pad-1 layers).
    // `setup`: the instruction set (chosen here, once) and where the packed weights live.
    // direct_double only: `scale64`/`shift64` (may be null: `scale`/`shift` widened), the
    // affine as computed in double from the BatchNorm's parameters.
    static conv2d prepare(const float* weight, const float* bias, int cout, int cin, int kernel, int stride, int pad,
                          const float* scale, const float* shift, conv_algorithm algorithm, const layer_setup& setup = {},
                          const double* scale64 = nullptr, const double* shift64 = nullptr) {
        if (!weight) throw error("conv2d::prepare: no weights");
        if (cout <= 0 || cin <= 0 || kernel <= 0 || stride <= 0 || pad < 0)
            throw error("conv2d::prepare: bad shape cout " + std::to_string(cout) + " cin " + std::to_string(cin) +
                        " kernel " + std::to_string(kernel) + " stride " + std::to_string(stride) + " pad " +
                        std::to_string(pad));
        if (winograd_tile_side(algorithm) && !(kernel == 3 && stride == 1 && pad == 1))
            throw error("conv2d::prepare: Winograd needs a 3x3 stride-1 pad-1 layer (kernel " + std::to_string(kernel) +
                        ", stride " + std::to_string(stride) + ", pad " + std::to_string(pad) + ")");
        conv2d c;
        c.cout_ = cout; c.cin_ = cin; c.k_ = kernel; c.stride_ = stride; c.pad_ = pad;
        c.cout16_ = round_up(cout, channel_block) / channel_block;
        c.kernels_ = &setup.table();
        c.algorithm_ = algorithm;
        const std::size_t kk = std::size_t(kernel) * kernel;
        const std::size_t gs = kk * cin * 16;
        if (algorithm != conv_algorithm::direct_double) {
            c.weight_ = aligned_buffer(setup.weights);
            c.bias_ = aligned_buffer(setup.weights);
            c.weight_.resize_uninitialized(c.cout16_ * gs);  // every value written below
            c.bias_.resize(std::size_t(c.cout16_) * 16);
            for (int co = 0; co < cout; ++co) {
                const float s = scale ? scale[co] : 1.0f;
                const float b = bias ? bias[co] : 0.0f;
                c.bias_[co] = scale || shift ? b * s + (shift ? shift[co] : 0.0f) : b;
            }
            // Output order (each 16-float row written once, front to back; padding channels 0).
            for (int cb = 0; cb < c.cout16_; ++cb) {
                const int n = cout - cb * 16 < 16 ? cout - cb * 16 : 16;  // real channels of the block
                float sc[16];
                const float* src[16];
                for (int l = 0; l < n; ++l) {
                    sc[l] = scale ? scale[cb * 16 + l] : 1.0f;
                    src[l] = weight + std::size_t(cb * 16 + l) * cin * kk;
                }
                float* dst = c.weight_.data() + std::size_t(cb) * gs;
                for (std::size_t t = 0; t < kk; ++t)
                    for (int ci = 0; ci < cin; ++ci, dst += 16) {
                        for (int l = 0; l < n; ++l) dst[l] = src[l][std::size_t(ci) * kk + t] * sc[l];
                        for (int l = n; l < 16; ++l) dst[l] = 0.0f;
                    }
            }
        }
        if (kernel == 3 && stride == 1 && pad == 1 && algorithm != conv_algorithm::direct_double)
            c.wino_ = winograd_3x3::prepare(cout, cin);
        if (algorithm == conv_algorithm::direct_double) {
            // Unscaled weights, same packing, in double (no float copy); the affine in
            // double: y = sum * s + (bias * s + t).
            c.store64_.assign(c.cout16_ * gs + std::size_t(c.cout16_) * 32, 0.0);
            double* w64 = c.store64_.data();
            double* s64 = w64 + c.cout16_ * gs;
            double* t64 = s64 + std::size_t(c.cout16_) * 16;
            for (int co = 0; co < cout; ++co) {
                const double s = scale64 ? scale64[co] : scale ? double(scale[co]) : 1.0;
                const double t = shift64 ? shift64[co] : shift ? double(shift[co]) : 0.0;
                s64[std::size_t(co)] = s;
                t64[std::size_t(co)] = (bias ? double(bias[co]) : 0.0) * s + t;
                const std::size_t cb = std::size_t(co / 16), l = std::size_t(co % 16);
                for (std::size_t t2 = 0; t2 < kk; ++t2)
                    for (int ci = 0; ci < cin; ++ci)
                        w64[cb * gs + (t2 * std::size_t(cin) + std::size_t(ci)) * 16 + l] =
                            weight[(std::size_t(co) * cin + std::size_t(ci)) * kk + t2];
            }
            c.weight64_ = w64;
            c.scale64_ = s64;
            c.shift64_ = t64;
        }
        return c;
    }

    // What a layer's packed weights are (a prepared weight file stores them; from_packed
    // takes them back): for direct and Winograd layers `weight` [cout16][k*k][cin][16] (the
    // affine folded in) and `bias` [cout16 * 16]; for direct_double layers `weight64` (same
    // order, unscaled), `scale64` and `shift64` [cout16 * 16] each. Null where the layer
    // has none.
    struct packed_view {
        const float* weight = nullptr;
        const float* bias = nullptr;
        const double* weight64 = nullptr;
        const double* scale64 = nullptr;
        const double* shift64 = nullptr;
    };
    // Element counts of the packed arrays of a layer of this shape.
    static std::size_t packed_weight_count(int cout, int cin, int kernel) {
        return std::size_t(round_up(cout, channel_block)) * std::size_t(kernel) * std::size_t(kernel) * std::size_t(cin);
    }
    static std::size_t packed_channel_count(int cout) { return std::size_t(round_up(cout, channel_block)); }
    packed_view packed() const {
        packed_view v;
        if (algorithm_ == conv_algorithm::direct_double) {
            v.weight64 = weight64_;
            v.scale64 = scale64_;
            v.shift64 = shift64_;
        } else {
            v.weight = weight_.data();
            v.bias = bias_.data();
        }
        return v;
    }

    // A layer over packed weights that live elsewhere (a prepared file's mapping, which must
    // outlive the layer): the arrays packed() names for `algorithm` (counts
    // packed_weight_count / packed_channel_count, the float ones 64-byte aligned; the
    // caller has checked both), used in place, not copied.
    static conv2d from_packed(const packed_view& p, int cout, int cin, int kernel, int stride, int pad, conv_algorithm algorithm,
                              const layer_setup& setup = {}) {
        if (cout <= 0 || cin <= 0 || kernel <= 0 || stride <= 0 || pad < 0)
            throw error("conv2d::from_packed: bad shape cout " + std::to_string(cout) + " cin " + std::to_string(cin) + " kernel " +
                        std::to_string(kernel) + " stride " + std::to_string(stride) + " pad " + std::to_string(pad));
        if (winograd_tile_side(algorithm) && !(kernel == 3 && stride == 1 && pad == 1))
            throw error("conv2d::from_packed: Winograd needs a 3x3 stride-1 pad-1 layer");
        conv2d c;
        c.cout_ = cout; c.cin_ = cin; c.k_ = kernel; c.stride_ = stride; c.pad_ = pad;
        c.cout16_ = round_up(cout, channel_block) / channel_block;
        c.kernels_ = &setup.table();
        c.algorithm_ = algorithm;
        if (algorithm == conv_algorithm::direct_double) {
            if (!p.weight64 || !p.scale64 || !p.shift64) throw error("conv2d::from_packed: a direct_double layer needs weight64, scale64 and shift64");
            c.weight64_ = p.weight64;
            c.scale64_ = p.scale64;
            c.shift64_ = p.shift64;
        } else {
            if (!p.weight || !p.bias) throw error("conv2d::from_packed: the layer needs its packed weight and bias");
            c.weight_ = aligned_buffer::borrowed(p.weight, packed_weight_count(cout, cin, kernel));
            c.bias_ = aligned_buffer::borrowed(p.bias, packed_channel_count(cout));
            if (kernel == 3 && stride == 1 && pad == 1) c.wino_ = winograd_3x3::prepare(cout, cin);
        }
        return c;
    }

    // out = [relu](conv(in) + bias') [+ residual], relu before the residual add, with the
    // algorithm of prepare() (the direct kernel when ex.exact). `out` must be shaped by the
    // caller (any border; only its interior is written); `in` needs a border of at least
    // `pad`; `residual` (optional) has out's shape and may be `out` itself.
    void run(const feature_map& in, feature_map& out, bool relu, const feature_map* residual, const exec& ex) const {
        if (winograd_tile_side(algorithm_) && !ex.exact) run_winograd(in, out, relu, residual, ex);
        else if (algorithm_ == conv_algorithm::direct_double) run_direct_double(in, out, relu, residual, ex);
        else run_direct(in, out, relu, residual, ex);
    }

    // The direct kernel accumulated in double (direct_double layers only, else throws).
    void run_direct_double(const feature_map& in, feature_map& out, bool relu, const feature_map* residual,
                           const exec& ex) const {
        if (!weight64_) throw error("conv2d::run_direct_double: not prepared as direct_double");
        check(in, out, residual);
        detail::conv_args a = args(in, out, relu, residual, ex);
        a.weight64 = weight64_;
        a.scale64 = scale64_;
        a.shift64 = shift64_;
        const detail::call_spaces spaces(ex);  // conv_direct_double_rows: the converted input rows
        a.scratch = &handgraph::detail::slot_scratch;
        a.spaces = spaces.opaque();
        kernels_->conv_direct_double(a);
    }

    // The direct kernel, whatever prepare chose (tests and benchmarks compare the methods);
    // for a direct_double layer, the direct kernel in double.
    void run_direct(const feature_map& in, feature_map& out, bool relu, const feature_map* residual,
                    const exec& ex) const {
        if (algorithm_ == conv_algorithm::direct_double) return run_direct_double(in, out, relu, residual, ex);
        check(in, out, residual);
        detail::conv_args a = args(in, out, relu, residual, ex);
        kernels_->conv_direct(a);
    }

    // out = [relu](conv(max(0, in * pre_scale + pre_shift)) + bias') [+ residual] for a 1x1
    // stride-1 pad-0 layer, the pre-activation applied row by row on the fly
    // (conv_direct_preact). pre_scale and pre_shift hold in.cpad floats, 64-byte aligned,
    // zero in the padding channels.
    void run_preact(const feature_map& in, const float* pre_scale, const float* pre_shift, feature_map& out, bool relu,
                    const feature_map* residual, const exec& ex) const {
        if (k_ != 1 || stride_ != 1 || pad_ != 0) throw error("conv2d::run_preact: not a 1x1 stride-1 pad-0 layer");
        if (algorithm_ == conv_algorithm::direct_double) throw error("conv2d::run_preact: a direct_double layer");
        if (!pre_scale || !pre_shift) throw error("conv2d::run_preact: no pre-activation scale or shift");
        check(in, out, residual);
        detail::conv_args a = args(in, out, relu, residual, ex);
        a.pre_scale = pre_scale;
        a.pre_shift = pre_shift;
        const detail::call_spaces spaces(ex);  // scratch rows: the context's slots (or this call's)
        a.scratch = &handgraph::detail::slot_scratch;
        a.spaces = spaces.opaque();
        kernels_->conv_direct_preact(a);
    }

    // The Winograd kernel, whatever prepare chose (3x3 stride-1 pad-1 layers only, else
    // throws), with output tiles of side `m` (4: F(4x4, 3x3), 2: F(2x2, 3x3)); 0: the
    // layer's own Winograd algorithm, F(4x4) for a layer prepared otherwise.
    void run_winograd(const feature_map& in, feature_map& out, bool relu, const feature_map* residual,
                      const exec& ex, int m = 0) const {
        if (algorithm_ == conv_algorithm::direct_double) throw error("conv2d::run_winograd: a direct_double layer");
        if (!wino_.ready()) throw error("conv2d::run_winograd: not a 3x3 stride-1 pad-1 layer");
        if (m == 0) m = winograd_tile_side(algorithm_);
        if (m == 0) m = 4;
        check(in, out, residual);
        wino_.run(*kernels_, weight_.data(), bias_.data(), in, out, relu, residual, ex, m);
    }

    conv_algorithm algorithm() const { return algorithm_; }
    // The instruction set of this layer's kernels ("avx512bw", ...).
    const char* kernels_name() const { return kernels_ ? kernels_->name : ""; }
    int cin() const { return cin_; }
    int cout() const { return cout_; }
    int kernel() const { return k_; }
    int stride() const { return stride_; }
    int pad() const { return pad_; }

private:
    detail::conv_args args(const feature_map& in, feature_map& out, bool relu, const feature_map* residual, const exec& ex) const {
        detail::conv_args a;
        a.in = in.pixel(-pad_, -pad_);
        a.in_row = std::ptrdiff_t(in.row_stride());
        a.in_cpad = in.cpad;
        a.out = out.pixel(0, 0);
        a.out_row = std::ptrdiff_t(out.row_stride());
        a.out_cpad = out.cpad;
        a.res = residual ? residual->pixel(0, 0) : nullptr;
        a.res_row = residual ? std::ptrdiff_t(residual->row_stride()) : 0;
        a.res_cpad = residual ? residual->cpad : 0;
        a.out_h = out.height;
        a.out_w = out.width;
        a.cin = cin_;
        a.kernel = k_;
        a.stride = stride_;
        a.weight = weight_.data();
        a.bias = bias_.data();
        a.cout16 = cout16_;
        a.relu = relu;
        a.loop = ex.loop;
        return a;
    }

    void check(const feature_map& in, const feature_map& out, const feature_map* residual) const {
        detail::check_map(in, "conv2d input");
        detail::check_map(out, "conv2d output");
        if (in.channels != cin_)
            throw error("conv2d: input has " + std::to_string(in.channels) + " channels, layer expects " +
                        std::to_string(cin_));
        if (in.border < pad_)
            throw error("conv2d: input border " + std::to_string(in.border) + " < pad " + std::to_string(pad_));
        const int oh = (in.height + 2 * pad_ - k_) / stride_ + 1, ow = (in.width + 2 * pad_ - k_) / stride_ + 1;
        if (in.height + 2 * pad_ < k_ || in.width + 2 * pad_ < k_ || out.height != oh || out.width != ow ||
            out.channels != cout_)
            throw error("conv2d: output is " + detail::shape_str(out) + ", expected " + std::to_string(oh) + "x" +
                        std::to_string(ow) + "x" + std::to_string(cout_) + " for input " + detail::shape_str(in));
        if (&in == &out || in.buf.data() == out.buf.data()) throw error("conv2d: output aliases the input");
        if (residual) {
            detail::check_map(*residual, "conv2d residual");
            if (residual->height != out.height || residual->width != out.width || residual->channels != out.channels)
                throw error("conv2d: residual is " + detail::shape_str(*residual) + ", output is " +
                            detail::shape_str(out));
        }
    }

    int cin_ = 0, cout_ = 0, k_ = 0, stride_ = 1, pad_ = 0, cout16_ = 0;
    const detail::kernel_table* kernels_ = nullptr;
    conv_algorithm algorithm_ = conv_algorithm::direct;
    aligned_buffer weight_, bias_;
    // direct_double layers only: weight64 [cout16][k*k][cin][16], scale64, shift64 [cout16 * 16],
    // in store64_ (prepared here) or elsewhere (from_packed); a moved vector keeps its memory.
    const double* weight64_ = nullptr;
    const double* scale64_ = nullptr;
    const double* shift64_ = nullptr;
    std::vector<double> store64_;
    winograd_3x3 wino_;
};

}  // namespace kernels
}  // namespace handgraph

// handgraph/kernels/winograd.hpp: Winograd F(4x4, 3x3) and F(2x2, 3x3) for 3x3 stride-1
// pad-1 convolutions.
//
// Per m x m output tile (m = 4 or 2, n = m + 2): input patch d (n x n) -> V = B^T d B; n^2
// independent GEMMs M[xi] = V[xi] (tiles x cin) * U[xi] (cin x cout) with U = G g G^T;
// output Y = A^T M A (+ bias, relu, residual). F(4x4): 36 multiplies per 16 outputs and
// input channel instead of 144, about 4x fewer flops than the direct kernel; F(2x2): 16 per
// 4 instead of 36, 2.25x fewer, with transforms of 0 and +-1 only (B^T, A^T) and 1/2 (G),
// so its rounding stays close to the direct kernel's (the layers that F(4x4) would cost too
// much accuracy on can take it; model.hpp's conv_algorithm_for).
// U is not kept: every call transforms the layer's packed direct weights into a buffer of
// the calling workspace (in double, rounded once; ~0.1 ms for 128 -> 128), because holding
// U for every Winograd layer would take 4x (F(4x4)) the direct weights' memory (~90 MB more).
// Tiles are processed in chunks (12 or 24 tiles): input transform of the chunk into the
// slot's scratch, then for each 32-channel output group the n^2 GEMMs (the direct
// kernel's register tile with a 1x1 "kernel") and the output transform of that group, so V
// and M stay in L2 and each weight matrix U[xi] is read once per chunk.
// F(4x4): points 0, +-1, +-2: B^T and A^T have small integer entries and run in float; G
// (1/4, 1/6, 1/12, 1/24) is applied in double at prepare. Max |err| / max |out| against the
// double reference: 3.2e-6 over the test shapes, ~10x the direct kernel's rms error (the
// transforms' rounding), which is why model.hpp's conv_algorithm_for keeps it off the layers
// the network's output is most sensitive to; tests/test_kernels.cpp prints both variants'
// figures; bound 1e-5. F(2x2): points 0, +-1.
// conv2d (conv.hpp) runs it for the layers prepared with conv_algorithm::winograd_f4x4 or
// winograd_f2x2 (model.hpp's conv_algorithm_for says which, and why).
// Depends on tensor.hpp, dispatch.hpp, conv_tile.hpp.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"
#include "conv_tile.hpp"
#include "dispatch.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

constexpr int winograd_max_chunk = 24;  // tiles per chunk; a multiple of every arch's tile
constexpr int winograd_group = 32;      // output channels per GEMM group (2 blocks of 16)

struct winograd_args {
    const float* in;  // in.pixel(0, 0); in.border >= 1
    std::ptrdiff_t in_row;
    int in_cpad;
    float* out;  // out.pixel(0, 0)
    std::ptrdiff_t out_row;
    int out_cpad;
    const float* res;  // residual.pixel(0, 0) or nullptr
    std::ptrdiff_t res_row;
    int res_cpad;
    int height, width;  // of in and out
    int cin;
    int m;                // output tile side: 4 (F(4x4, 3x3)) or 2 (F(2x2, 3x3))
    const float* weight;  // U: [n^2][cout16][cin][16], n = m + 2 (transformed by winograd_weights)
    const float* bias;    // [cout16 * 16]
    int cout16;
    bool relu;
    loop_runner loop;                // serial by default
    int chunk;                       // tiles per chunk (<= winograd_max_chunk)
    // Per slot: V [n^2][chunk][in_cpad], M [n^2][chunk][32], T [n^2][in_cpad], from
    // scratch(spaces, slot, scratch_per_slot) (generic code, reached through the pointer).
    float* (*scratch)(void* spaces, int slot, std::size_t floats);
    void* spaces;
    std::size_t scratch_per_slot;  // floats
};

// The transforms of F(m x m, 3x3): bt (r = B^T d, n values in), at (o = A^T m, m values out)
// and G (n x 3, applied to the weights in double).
template <int M>
struct winograd_tile;

// F(4x4, 3x3), points 0, 1, -1, 2, -2.
template <>
struct winograd_tile<4> {
    static constexpr int n = 6;
    static constexpr double G[6][3] = {{1.0 / 4, 0, 0},
                                       {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                       {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                       {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                       {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                       {0, 0, 1}};
    template <class B>
    static void bt(const B* d, B* r) {
        const B four(4.0f), five(5.0f), two(2.0f);
        const B t0 = xsimd::fnma(four, d[2], d[4]);  // d4 - 4 d2
        const B t1 = xsimd::fnma(four, d[1], d[3]);  // d3 - 4 d1
        const B t2 = d[4] - d[2];
        const B t3 = two * (d[3] - d[1]);
        r[0] = xsimd::fma(four, d[0], xsimd::fnma(five, d[2], d[4]));
        r[1] = t0 + t1;
        r[2] = t0 - t1;
        r[3] = t2 + t3;
        r[4] = t2 - t3;
        r[5] = xsimd::fma(four, d[1], xsimd::fnma(five, d[3], d[5]));
    }
    template <class B>
    static void at(const B* m, B* o) {
        const B two(2.0f), four(4.0f), eight(8.0f);
        const B s12 = m[1] + m[2], d12 = m[1] - m[2];
        const B s34 = m[3] + m[4], d34 = m[3] - m[4];
        o[0] = m[0] + s12 + s34;
        o[1] = xsimd::fma(two, d34, d12);
        o[2] = xsimd::fma(four, s34, s12);
        o[3] = xsimd::fma(eight, d34, d12) + m[5];
    }
};

// F(2x2, 3x3), points 0, 1, -1: B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], A^T = [1 1 1 0; 0 1 -1 -1].
template <>
struct winograd_tile<2> {
    static constexpr int n = 4;
    static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    template <class B>
    static void bt(const B* d, B* r) {
        r[0] = d[0] - d[2];
        r[1] = d[1] + d[2];
        r[2] = d[2] - d[1];
        r[3] = d[1] - d[3];
    }
    template <class B>
    static void at(const B* m, B* o) {
        o[0] = m[0] + m[1] + m[2];
        o[1] = m[1] - m[2] - m[3];
    }
};

// Input transform of tile (ty, tx), all channels, into V[xi * vstride + c]: first B^T down
// each of the n input columns (reading the n rows front to back, prefetch-friendly) into
// tbuf [n^2][cpad] (L1), then B along each row of tbuf.
template <class Arch, int M>
inline void winograd_input_tile(const winograd_args& a, int ty, int tx, float* v, std::ptrdiff_t vstride,
                                float* tbuf) {
    using B = xsimd::batch<float, Arch>;
    using T = winograd_tile<M>;
    constexpr int L = int(B::size), N = T::n;
    const int cpad = a.in_cpad;
    const int y0 = M * ty - 1, x0 = M * tx - 1;
    const float* base = a.in + y0 * a.in_row + std::ptrdiff_t(x0) * cpad;
    const bool inside = y0 + N <= a.height + 1 && x0 + N <= a.width + 1;  // within the zero border of 1
    bool row_ok[N];
    for (int i = 0; i < N; ++i) row_ok[i] = inside || (y0 + i >= 0 && y0 + i < a.height);
    for (int j = 0; j < N; ++j) {
        const bool col_ok = inside || (x0 + j >= 0 && x0 + j < a.width);
        const float* col = base + std::ptrdiff_t(j) * cpad;
        for (int c = 0; c < cpad; c += L) {
            B d[N], r[N];
#pragma GCC unroll 6
            for (int i = 0; i < N; ++i)
                d[i] = col_ok && row_ok[i] ? B::load_aligned(col + i * a.in_row + c) : B(0.0f);
            T::bt(d, r);
#pragma GCC unroll 6
            for (int i = 0; i < N; ++i) r[i].store_aligned(tbuf + (i * N + j) * cpad + c);
        }
    }
    for (int i = 0; i < N; ++i)
        for (int c = 0; c < cpad; c += L) {
            B d[N], r[N];
#pragma GCC unroll 6
            for (int j = 0; j < N; ++j) d[j] = B::load_aligned(tbuf + (i * N + j) * cpad + c);
            T::bt(d, r);
#pragma GCC unroll 6
            for (int j = 0; j < N; ++j) r[j].store_aligned(v + (i * N + j) * vstride + c);
        }
}

// Output transform of one tile, channels [c, c + L) of the group: m[xi * mstride].
template <class Arch, int M>
inline void winograd_output_tile(const winograd_args& a, int ty, int tx, int co, const float* m,
                                 std::ptrdiff_t mstride) {
    using B = xsimd::batch<float, Arch>;
    using T = winograd_tile<M>;
    constexpr int N = T::n;
    B s[M][N], col[N], o[M], y[M];
#pragma GCC unroll 6
    for (int j = 0; j < N; ++j) {
#pragma GCC unroll 6
        for (int i = 0; i < N; ++i) col[i] = B::load_aligned(m + (i * N + j) * mstride);
        T::at(col, o);
#pragma GCC unroll 4
        for (int i = 0; i < M; ++i) s[i][j] = o[i];
    }
    const B bias = B::load_aligned(a.bias + co), zero(0.0f);
    const int y0 = M * ty, x0 = M * tx;
    const int ny = a.height - y0 < M ? a.height - y0 : M, nx = a.width - x0 < M ? a.width - x0 : M;
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
        if (i >= ny) break;
        T::at(s[i], y);
        float* op = a.out + (y0 + i) * a.out_row + std::ptrdiff_t(x0) * a.out_cpad + co;
        const float* rp = a.res ? a.res + (y0 + i) * a.res_row + std::ptrdiff_t(x0) * a.res_cpad + co : nullptr;
#pragma GCC unroll 4
        for (int j = 0; j < M; ++j) {
            if (j >= nx) break;
            B v = y[j] + bias;
            if (a.relu) v = xsimd::max(v, zero);
            if (rp) v += B::load_aligned(rp + j * a.res_cpad);
            v.store_aligned(op + j * a.out_cpad);
        }
    }
}

template <class Arch, int M>
void winograd_tiles(const winograd_args& a) {
    using B = xsimd::batch<float, Arch>;
    constexpr int L = int(B::size), N = winograd_tile<M>::n, NN = N * N;
    constexpr int P = conv_tile_shape<Arch>::pixels, NB = conv_tile_shape<Arch>::blocks;
    static_assert(winograd_max_chunk % P == 0 && 12 % P == 0, "chunk must hold whole register tiles");
    static_assert(NB * 16 <= winograd_group, "group too small for the register tile");
    const int tiles_x = (a.width + M - 1) / M, tiles_y = (a.height + M - 1) / M, tiles = tiles_x * tiles_y;
    const int chunks = (tiles + a.chunk - 1) / a.chunk;
    const int cpad = a.in_cpad;
    // Fewer chunks than 2 per thread: split the output groups too, so every thread has work;
    // each such item transforms its chunk's input itself. (Results do not depend on the
    // split: every output is computed by the same operations in any item.)
    const int ngroups = (a.cout16 + NB - 1) / NB;
    const int threads = a.loop.threads;
    int gsplit = 1;
    if (threads > 1 && chunks < 2 * threads) {
        gsplit = (2 * threads + chunks - 1) / chunks;
        if (gsplit > ngroups) gsplit = ngroups;
    }
    alignas(64) static constexpr float zeros[winograd_group] = {};
    parallel_for(a.loop, threads > 1, chunks * gsplit, 1, [&](int item, int slot) {
        const int ch = item / gsplit, gi = item % gsplit;
        const int g_begin = gi * ngroups / gsplit * NB, g_end = (gi + 1) * ngroups / gsplit * NB;
        float* V = a.scratch(a.spaces, slot, a.scratch_per_slot);
        float* Mb = V + std::size_t(NN) * a.chunk * cpad;
        float* T = Mb + std::size_t(NN) * a.chunk * winograd_group;
        const int t0 = ch * a.chunk, nt = tiles - t0 < a.chunk ? tiles - t0 : a.chunk;
        // V[xi][t][c]
        for (int t = 0; t < nt; ++t) {
            const int ty = (t0 + t) / tiles_x, tx = (t0 + t) % tiles_x;
            winograd_input_tile<Arch, M>(a, ty, tx, V + std::ptrdiff_t(t) * cpad, std::ptrdiff_t(a.chunk) * cpad, T);
        }
        for (int g = g_begin; g < g_end && g < a.cout16; g += NB) {
            const int nb = a.cout16 - g < NB ? a.cout16 - g : NB;
            // M[xi][t][0..16 nb) = V[xi][t][:] U[xi][:][g..]
            for (int xi = 0; xi < NN; ++xi) {
                const float* vx = V + std::ptrdiff_t(xi) * a.chunk * cpad;
                const float* w = a.weight + (std::ptrdiff_t(xi) * a.cout16 + g) * a.cin * 16;
                float* mx = Mb + std::ptrdiff_t(xi) * a.chunk * winograd_group;
                for (int t = 0; t < nt; t += P) {
                    const int n = nt - t < P ? nt - t : P;
                    const float* ip = vx + std::ptrdiff_t(t) * cpad;
                    float* op = mx + std::ptrdiff_t(t) * winograd_group;
                    if (n == P && nb == NB)
                        conv_direct_tile<Arch, P, NB>(ip, cpad, 0, 0, 1, a.cin, w, std::ptrdiff_t(a.cin) * 16, zeros, op,
                                                      winograd_group, nullptr, 0, false);
                    else
                        conv_direct_blocks_tail<Arch, NB, P>::run(nb, n, ip, std::ptrdiff_t(cpad), std::ptrdiff_t(0), 0, 1,
                                                                  a.cin, w, std::ptrdiff_t(a.cin) * 16, zeros, op,
                                                                  winograd_group, static_cast<const float*>(nullptr), 0,
                                                                  false);
                }
            }
            for (int t = 0; t < nt; ++t) {
                const int ty = (t0 + t) / tiles_x, tx = (t0 + t) % tiles_x;
                for (int c = 0; c < nb * 16; c += L)
                    winograd_output_tile<Arch, M>(a, ty, tx, g * 16 + c, Mb + std::ptrdiff_t(t) * winograd_group + c,
                                                  std::ptrdiff_t(a.chunk) * winograd_group);
            }
        }
    });
}

template <class Arch>
void winograd(const winograd_args& a) {
    if (a.m == 2) winograd_tiles<Arch, 2>(a);
    else winograd_tiles<Arch, 4>(a);
}

// U = G g G^T for every (output block, input channel), from the direct kernel's packed
// weights [cout16][9][cin][16] into U [n^2][cout16][cin][16].
struct winograd_weights_args {
    const float* packed;
    float* u;
    int cout16, cin;
    int m;             // output tile side, 4 or 2 (winograd_args::m)
    loop_runner loop;  // serial by default
};

// In double, rounded once to float (a float transform cost the network 20% more error):
// plain loops over the 16 lanes, which the compiler vectorises with the Arch TU's flags.
template <class Arch, int M>
void winograd_weights_tiles(const winograd_weights_args& a) {
    using T = winograd_tile<M>;
    constexpr int N = T::n;
    const int cin = a.cin, items = a.cout16 * cin;
    const std::ptrdiff_t xs = std::ptrdiff_t(a.cout16) * cin * 16;  // floats between U[xi] planes
    const bool par = a.loop.threads > 1 && items >= 256;
    parallel_for(a.loop, par, items, 16, [&](int it, int) {
        const int cb = it / cin, ci = it % cin;
        const float* src = a.packed + (std::ptrdiff_t(cb) * 9 * cin + ci) * 16;
        float* dst = a.u + std::ptrdiff_t(it) * 16;
        alignas(64) double g[3][3][16], t[N][3][16];
        for (int k = 0; k < 9; ++k)
            for (int l = 0; l < 16; ++l) g[k / 3][k % 3][l] = double(src[std::ptrdiff_t(k) * cin * 16 + l]);
        for (int i = 0; i < N; ++i)
            for (int j = 0; j < 3; ++j)
                for (int l = 0; l < 16; ++l)
                    t[i][j][l] = T::G[i][0] * g[0][j][l] + T::G[i][1] * g[1][j][l] + T::G[i][2] * g[2][j][l];
        for (int i = 0; i < N; ++i)
            for (int j = 0; j < N; ++j) {
                float* d = dst + (i * N + j) * xs;
                for (int l = 0; l < 16; ++l)
                    d[l] = float(t[i][0][l] * T::G[j][0] + t[i][1][l] * T::G[j][1] + t[i][2][l] * T::G[j][2]);
            }
    });
}

template <class Arch>
void winograd_weights(const winograd_weights_args& a) {
    if (a.m == 2) winograd_weights_tiles<Arch, 2>(a);
    else winograd_weights_tiles<Arch, 4>(a);
}

}  // namespace detail

// The Winograd runner of one 3x3 stride-1 pad-1 layer, F(4x4, 3x3) or F(2x2, 3x3) as each
// call asks. Holds no transformed weights (see the top of this file): run() builds U from
// the direct kernel's packed weights on every call.
class winograd_3x3 {
public:
    static winograd_3x3 prepare(int cout, int cin) {
        winograd_3x3 w;
        w.cin_ = cin;
        w.cout16_ = round_up(cout, channel_block) / channel_block;
        return w;
    }

    bool ready() const { return cin_ > 0; }

    // Preconditions (conv2d::run checks them): in has cin channels and border >= 1, out has
    // in's size and cout channels, residual (optional) out's shape; `packed` and `bias` are
    // the direct kernel's [cout16][9][cin][16] (affine folded) and [cout16 * 16]; `m` the
    // output tile side, 4 or 2.
    void run(const detail::kernel_table& k, const float* packed, const float* bias, const feature_map& in, feature_map& out, bool relu,
             const feature_map* residual, const exec& ex, int m) const {
        if (m != 2 && m != 4) throw error("winograd_3x3::run: tile side " + std::to_string(m) + " (2 or 4)");
        const int nn = (m + 2) * (m + 2);
        detail::winograd_args a;
        a.in = in.pixel(0, 0);
        a.in_row = std::ptrdiff_t(in.row_stride());
        a.in_cpad = in.cpad;
        a.out = out.pixel(0, 0);
        a.out_row = std::ptrdiff_t(out.row_stride());
        a.out_cpad = out.cpad;
        a.res = residual ? residual->pixel(0, 0) : nullptr;
        a.res_row = residual ? std::ptrdiff_t(residual->row_stride()) : 0;
        a.res_cpad = residual ? residual->cpad : 0;
        a.height = out.height;
        a.width = out.width;
        a.cin = cin_;
        a.m = m;
        a.bias = bias;
        a.cout16 = cout16_;
        a.relu = relu;
        a.loop = ex.loop;
        const int tiles = ((out.height + m - 1) / m) * ((out.width + m - 1) / m);
        // Chunk size depends on the map only, so results do not depend on the thread count.
        a.chunk = tiles >= 16 * detail::winograd_max_chunk ? detail::winograd_max_chunk : detail::winograd_max_chunk / 2;
        a.scratch_per_slot = std::size_t(nn) * a.chunk * (std::size_t(in.cpad) + detail::winograd_group) + std::size_t(nn) * in.cpad;
        a.scratch_per_slot = (a.scratch_per_slot + 15) / 16 * 16;
        // The tiles go into each slot's scratch: the context's workspaces (or this call's).
        const detail::call_spaces spaces(ex);
        // U lives for this call only, among the activations (the pool places it where the
        // layer's maps leave room; a separate buffer would add its 2.4 MB to the peak).
        aligned_buffer ubuf(&spaces.get()[0]->blocks);
        ubuf.resize_uninitialized(std::size_t(nn) * cout16_ * cin_ * 16);  // written in full by winograd_weights
        float* u = ubuf.data();
        detail::winograd_weights_args wa{packed, u, cout16_, cin_, m, ex.loop};
        k.winograd_weights(wa);
        a.weight = u;
        a.scratch = &handgraph::detail::slot_scratch;
        a.spaces = spaces.opaque();
        k.winograd(a);
    }

private:
    int cin_ = 0, cout16_ = 0;
};

}  // namespace kernels
}  // namespace handgraph

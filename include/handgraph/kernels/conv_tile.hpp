// handgraph/kernels/conv_tile.hpp: the register-tile micro-kernel shared by the direct
// convolution (conv.hpp) and the Winograd GEMMs (winograd.hpp).
//
// conv_direct_tile<Arch, P, NB, CIN>: P output pixels x NB blocks of 16 output channels held in
// SIMD registers; loops over the k x k taps and the logical input channels, broadcasting one
// input scalar per pixel and multiplying it with NB x 16 packed weights ([k][k][cin][16] per
// block, blocks `gs` floats apart); the store adds bias (accumulator start), relu, residual.
// CIN > 0: exactly CIN input channels (unrolled; used for the 3-channel image).
// Accumulation: chains of at most conv_partial_terms (16) input-channel FMAs, the chains
// summed pairwise in L1 tiles; a 3x3 x 128 layer as one chain of 1152 FMAs carried 3-4x
// PyTorch's rounding error and the network failed the 1e-5 parity bound; chains of 16 summed
// in a running sum: rms error 1.65e-7 of a 3x3 128->128 layer's rms, pairwise 9.1e-8
// (benchmarks/NOTES.md). The order is fixed, so a pixel's result never depends on the tile it
// is computed in (nor on the thread count).
// Depends on xsimd.
#pragma once
#include <cstddef>

#include <xsimd/xsimd.hpp>

namespace handgraph {
namespace kernels {
namespace detail {

// Register tile per instruction set: `pixels` x `blocks` 16-channel blocks of accumulators
// (AVX-512: 12 x 2 = 24 of 32 zmm registers; AVX2: 6 x 1 x 2 ymm = 12 of 16; SSE: 2 x 1 x 4).
template <class Arch>
struct conv_tile_shape {
    static constexpr int lanes = int(xsimd::batch<float, Arch>::size);
    static constexpr int pixels = lanes >= 16 ? 12 : lanes == 8 ? 6 : 2;
    static constexpr int blocks = lanes >= 16 ? 2 : 1;
};

// Longest FMA chain of one accumulator (input-channel terms) before it is folded into a
// partial sum.
#ifndef HANDGRAPH_CONV_PARTIAL_TERMS
#define HANDGRAPH_CONV_PARTIAL_TERMS 16
#endif
constexpr int conv_partial_terms = HANDGRAPH_CONV_PARTIAL_TERMS;

// One tile: P output pixels (input pixels `ps` floats apart) x NB output blocks.
template <class Arch, int P, int NB, int CIN = 0>
inline void conv_direct_tile(const float* ip, std::ptrdiff_t ps, std::ptrdiff_t irow, int icpad, int k,
                             int cin, const float* w, std::ptrdiff_t gs, const float* bias, float* op,
                             int ocpad, const float* rp, int rcpad, bool relu) {
    using B = xsimd::batch<float, Arch>;
    constexpr int L = int(B::size), R = 16 / L, V = NB * R;
    B acc[P][V];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 4
        for (int j = 0; j < NB; ++j) {
            __builtin_prefetch(op + p * ocpad + j * 16, 1);
            if (rp) __builtin_prefetch(rp + p * rcpad + j * 16);
        }
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
        B b = B::load_aligned(bias + (v / R) * 16 + (v % R) * L);
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) acc[p][v] = b;
    }
    // acc += x[p * ps + ci] * w[0..16 NB) for one input channel
    auto step = [&](const float* x, int ci, const float* wc) {
        B wv[V];
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) wv[v] = B::load_aligned(wc + (v / R) * gs + (v % R) * L);
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) {
            B xb(x[p * ps + ci]);
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v) acc[p][v] = xsimd::fma(xb, wv[v], acc[p][v]);
        }
    };
    // Partial sums: every `conv_partial_terms` input channels (at most) the accumulators
    // are flushed and restart from zero, so no FMA chain is longer than that; the flushed
    // chains are summed pairwise (a binary counter of partial-sum tiles in L1: tile `l`
    // holds the sum of 2^l chains), so a 3x3 x 256 layer's 144 chains meet in a tree of
    // depth 8 instead of a running sum of 144 adds (benchmarks/NOTES.md, 2026-12-02).
    constexpr int levels = 10;  // the top tile keeps summing past 2^9 chains
    alignas(64) float part[levels][P][V * L];
    unsigned chains = 0;  // chains flushed; bit l set: tile l holds a sum
    bool top_used = false;
    int run = 0;  // terms in the open chain
    auto flush = [&]() {
        int l = 0;
        while (l < levels - 1 && ((chains >> l) & 1u)) {
#pragma GCC unroll 16
            for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
                for (int v = 0; v < V; ++v) acc[p][v] = B::load_aligned(&part[l][p][v * L]) + acc[p][v];
            ++l;
        }
        const bool add_top = l == levels - 1 && top_used;
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v) {
                B s = add_top ? B::load_aligned(&part[l][p][v * L]) + acc[p][v] : acc[p][v];
                s.store_aligned(&part[l][p][v * L]);
                acc[p][v] = B(0.0f);
            }
        if (l == levels - 1) top_used = true;
        ++chains;
        run = 0;
    };
    for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx) {
            const float* x = ip + ky * irow + kx * icpad;
            if (CIN > 0) {  // few input channels known at compile time (the RGB image)
#pragma GCC unroll 4
                for (int ci = 0; ci < CIN; ++ci, w += 16) step(x, ci, w);
                run += CIN;
                if (run + CIN > conv_partial_terms) flush();
                continue;
            }
            for (int cb = 0; cb < cin; cb += 16) {
#pragma GCC unroll 16
                for (int p = 0; p < P; ++p) __builtin_prefetch(x + p * ps + cb + 32);
                const int ce = cb + 16 < cin ? cb + 16 : cin;
                for (int ci = cb; ci < ce; ++ci, w += 16) step(x, ci, w);
                run += ce - cb;
                if (run + 16 > conv_partial_terms) flush();
            }
        }
    // The last (open) chain, then the tiles from the smallest sums up.
    for (int l = 0; l < levels; ++l) {
        const bool held = l < levels - 1 ? ((chains >> l) & 1u) != 0 : top_used;
        if (!held) continue;
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v) acc[p][v] += B::load_aligned(&part[l][p][v * L]);
    }
    const B zero(0.0f);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) {
            std::ptrdiff_t c = (v / R) * 16 + (v % R) * L;
            B y = acc[p][v];
            if (relu) y = xsimd::max(y, zero);
            if (rp) y += B::load_aligned(rp + p * rcpad + c);
            y.store_aligned(op + p * ocpad + c);
        }
}

// n <= P pixels, as one tile of exactly n pixels.
template <class Arch, int NB, int P>
struct conv_direct_tail {
    template <class... T>
    static void run(int n, T... t) {
        if (n == P) conv_direct_tile<Arch, P, NB>(t...);
        else conv_direct_tail<Arch, NB, P - 1>::run(n, t...);
    }
};
template <class Arch, int NB>
struct conv_direct_tail<Arch, NB, 0> {
    template <class... T>
    static void run(int, T...) {}
};

// Any nb <= NB blocks and n <= P pixels.
template <class Arch, int NB, int P>
struct conv_direct_blocks_tail {
    template <class... T>
    static void run(int nb, int n, T... t) {
        if (nb == NB) conv_direct_tail<Arch, NB, P>::run(n, t...);
        else conv_direct_blocks_tail<Arch, NB - 1, P>::run(nb, n, t...);
    }
};
template <class Arch, int P>
struct conv_direct_blocks_tail<Arch, 0, P> {
    template <class... T>
    static void run(int, int, T...) {}
};

}  // namespace detail
}  // namespace kernels
}  // namespace handgraph

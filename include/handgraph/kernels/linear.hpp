// handgraph/kernels/linear.hpp: fully connected layer y = [relu](W x + b), one vector.
//
// Memory-bound matrix-vector product: the weights are packed once as [out/16][in][16] so the
// kernel streams them exactly once, front to back, broadcasting x[i] and accumulating 16
// outputs per SIMD block (4 interleaved partial sums to hide FMA latency, folded into a
// running total every 64 inputs: chains of 1024 FMAs in the 4096-input layer carried
// several times the rounding error of the rest of the network). Threads split the
// output blocks; each output is summed in a fixed order, so results do not depend on threads.
// Depends on tensor.hpp, dispatch.hpp.
#pragma once
#include <cstddef>
#include <string>

#include "../error.hpp"
#include "../tensor.hpp"
#include "dispatch.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

struct linear_args {
    const float* weight;  // [out16][in][16]
    const float* bias;    // [out16 * 16]
    int in, out, out16;
    const float* x;  // [in]
    float* y;        // [out]
    bool relu;
    loop_runner loop;  // serial by default
};

template <class Arch>
void linear_kernel(const linear_args& a) {
    using B = xsimd::batch<float, Arch>;
    constexpr int L = int(B::size), R = 16 / L;
    const int in = a.in;
    const bool par = a.loop.threads > 1 && std::ptrdiff_t(a.out16) * in >= 16384;
    parallel_for(a.loop, par, a.out16, 1, [&](int ob, int) {
        const float* w = a.weight + std::ptrdiff_t(ob) * in * 16;
        const float* x = a.x;
        B acc[4][R];
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u)
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) acc[u][r] = B(0.0f);
        B tot[R];
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) tot[r] = B(0.0f);
        int i = 0;
        for (; i + 4 <= in; i += 4, w += 64) {
#pragma GCC unroll 4
            for (int u = 0; u < 4; ++u) {
                B xb(x[i + u]);
#pragma GCC unroll 4
                for (int r = 0; r < R; ++r) acc[u][r] = xsimd::fma(xb, B::load_aligned(w + u * 16 + r * L), acc[u][r]);
            }
            if ((i & 63) == 60) {  // every 64 inputs: fold the 4 chains of 16 into the total
#pragma GCC unroll 4
                for (int r = 0; r < R; ++r) {
                    tot[r] += (acc[0][r] + acc[1][r]) + (acc[2][r] + acc[3][r]);
                    acc[0][r] = acc[1][r] = acc[2][r] = acc[3][r] = B(0.0f);
                }
            }
        }
        for (; i < in; ++i, w += 16) {
            B xb(x[i]);
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) acc[0][r] = xsimd::fma(xb, B::load_aligned(w + r * L), acc[0][r]);
        }
        alignas(64) float tmp[16];
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
            B s = (tot[r] + ((acc[0][r] + acc[1][r]) + (acc[2][r] + acc[3][r]))) + B::load_aligned(a.bias + ob * 16 + r * L);
            if (a.relu) s = xsimd::max(s, B(0.0f));
            s.store_aligned(tmp + r * L);
        }
        const int n = a.out - ob * 16 < 16 ? a.out - ob * 16 : 16;
        for (int k = 0; k < n; ++k) a.y[ob * 16 + k] = tmp[k];
    });
}

}  // namespace detail

// A fully connected layer with its weights packed for the kernel. Move-only.
class linear {
public:
    // weight [out][in] row-major (PyTorch nn.Linear), bias [out] (may be null: zero).
    // `setup`: the instruction set (chosen here, once) and where the packed weights live.
    static linear prepare(const float* weight, const float* bias, int out, int in, const layer_setup& setup = {}) {
        if (!weight) throw error("linear::prepare: no weights");
        if (out <= 0 || in <= 0)
            throw error("linear::prepare: bad shape out " + std::to_string(out) + " in " + std::to_string(in));
        linear l;
        l.in_ = in;
        l.out_ = out;
        l.out16_ = round_up(out, channel_block) / channel_block;
        l.kernels_ = &setup.table();
        l.weight_ = aligned_buffer(setup.weights);
        l.bias_ = aligned_buffer(setup.weights);
        l.weight_.resize_uninitialized(std::size_t(l.out16_) * in * 16);  // every value written below
        l.bias_.resize(std::size_t(l.out16_) * 16);
        for (int o = 0; o < out; ++o) l.bias_[o] = bias ? bias[o] : 0.0f;
        // Blocks of 64 inputs x 16 outputs: 16 sequential reads, a 4 KiB destination block
        // that stays in L1 (rows `in` floats apart alias in the cache when read together).
        for (int ob = 0; ob < l.out16_; ++ob) {
            const int n = out - ob * 16 < 16 ? out - ob * 16 : 16;
            const float* src = weight + std::size_t(ob) * 16 * in;
            float* dst = l.weight_.data() + std::size_t(ob) * in * 16;
            for (int i0 = 0; i0 < in; i0 += 64) {
                const int i1 = in - i0 < 64 ? in : i0 + 64;
                for (int k = 0; k < 16; ++k) {
                    if (k < n) {
                        const float* s = src + std::size_t(k) * in;
                        for (int i = i0; i < i1; ++i) dst[std::size_t(i) * 16 + k] = s[i];
                    } else {
                        for (int i = i0; i < i1; ++i) dst[std::size_t(i) * 16 + k] = 0.0f;
                    }
                }
            }
        }
        return l;
    }

    // The packed weights ([out16][in][16]) and bias ([out16 * 16]) a prepared weight file
    // stores, and a layer over such arrays that live elsewhere (64-byte aligned, counts
    // packed_weight_count / packed_bias_count, outliving the layer), used in place.
    static std::size_t packed_weight_count(int out, int in) { return std::size_t(round_up(out, channel_block)) * std::size_t(in); }
    static std::size_t packed_bias_count(int out) { return std::size_t(round_up(out, channel_block)); }
    const float* packed_weight() const { return weight_.data(); }
    const float* packed_bias() const { return bias_.data(); }
    static linear from_packed(const float* weight, const float* bias, int out, int in, const layer_setup& setup = {}) {
        if (!weight || !bias) throw error("linear::from_packed: no weights");
        if (out <= 0 || in <= 0) throw error("linear::from_packed: bad shape out " + std::to_string(out) + " in " + std::to_string(in));
        linear l;
        l.in_ = in;
        l.out_ = out;
        l.out16_ = round_up(out, channel_block) / channel_block;
        l.kernels_ = &setup.table();
        l.weight_ = aligned_buffer::borrowed(weight, packed_weight_count(out, in));
        l.bias_ = aligned_buffer::borrowed(bias, packed_bias_count(out));
        return l;
    }

    // y[out] = [relu](W x[in] + b). x and y must not overlap.
    void run(const float* x, float* y, bool relu, const exec& ex) const {
        if (!x || !y) throw error("linear::run: null input or output");
        if (x < y + out_ && y < x + in_) throw error("linear::run: output overlaps the input");
        detail::linear_args a;
        a.weight = weight_.data();
        a.bias = bias_.data();
        a.in = in_;
        a.out = out_;
        a.out16 = out16_;
        a.x = x;
        a.y = y;
        a.relu = relu;
        a.loop = ex.loop;
        kernels_->linear(a);
    }

    int in() const { return in_; }
    int out() const { return out_; }

private:
    int in_ = 0, out_ = 0, out16_ = 0;
    const detail::kernel_table* kernels_ = nullptr;
    aligned_buffer weight_, bias_;
};

}  // namespace kernels
}  // namespace handgraph

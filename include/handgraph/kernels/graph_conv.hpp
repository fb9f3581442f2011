// handgraph/kernels/graph_conv.hpp: the graph side of the network: sparse Laplacian
// times features, Chebyshev convolution (K = 3) with the release's feature order,
// graph upsampling x4 and max-pooling by 4. Node features are row-major V x F.
// The sparse products, upsampling and pooling are plain loops over CSR matrices; the
// Chebyshev convolution's dense part (y = W [T0 T1 T2] + b, summed in double) is a SIMD
// kernel of the layer's instruction set (cheb_dense: 4.0% of an image's time as a plain loop
// in the baseline translation unit on a Zen 5, 2026-12-04). Every product of two floats is
// exact in double and each output's terms are added in the same order on any instruction set
// and thread (the SIMD lanes are output features, fused or not the multiply-add rounds once):
// the same bits as the plain loop (cheb_dense_reference, reference.hpp). The convolutions
// share their rows and nodes out on the context's pool (12.3 ms of an image's ~610 ms on a
// 2-core Zen 1, 2026-12-03, before either change). Temporaries come from the call's
// workspace (exec::memory()).
// Depends on error.hpp, tensor.hpp, dispatch.hpp (exec), parallel.hpp.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cmath>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"
#include "dispatch.hpp"
#include "parallel.hpp"

namespace handgraph::kernels {

// A square sparse matrix in CSR form (e.g. a rescaled graph Laplacian).
struct csr_view {
    int n = 0;
    const int* row_ptr = nullptr;  // n + 1 entries
    const int* col = nullptr;
    const float* val = nullptr;
};

// y (n x f) = L (n x n) * x (n x f), rows on ex's threads when there are enough of them.
inline void sparse_times_dense(const csr_view& L, const float* x, float* y, int f, const exec& ex = {}) {
    const bool par = ex.threads() > 1 && std::ptrdiff_t(L.row_ptr[L.n]) * f >= (std::ptrdiff_t(ex.threads()) << 13);
    detail::parallel_for(ex.loop, par, L.n, 16, [&](int r, int) {
        float* yr = y + std::size_t(r) * f;
        std::fill(yr, yr + f, 0.0f);
        for (int e = L.row_ptr[r]; e < L.row_ptr[r + 1]; ++e) {
            const float w = L.val[e];
            const float* xc = x + std::size_t(L.col[e]) * f;
            for (int j = 0; j < f; ++j) yr[j] += w * xc[j];
        }
    });
}

namespace detail {

struct cheb_dense_args {
    const float* t[3];  // T0, T1, T2: n x fin each
    const double* w;    // [3][fin][fout_pad], zero past fout
    const double* b;    // [fout_pad]
    int n, fin, fout, fout_pad;
    float* y;  // n x fout
    bool relu;
    loop_runner loop;  // serial by default
};

// y[v][o] = [relu](float(b[o] + sum over i, then k, of T[k][v][i] * w[k][i][o])), in double:
// one node per item, its outputs in chunks of up to 8 SIMD registers of doubles.
template <class Arch>
void cheb_dense(const cheb_dense_args& a) {
    using D = xsimd::batch<double, Arch>;
    constexpr int DL = int(D::size), C = 8;
    const int fin = a.fin, fp = a.fout_pad;
    const bool par = a.loop.threads > 1 && std::ptrdiff_t(a.n) * fin * a.fout * 3 >= (std::ptrdiff_t(a.loop.threads) << 15);
    parallel_for(a.loop, par, a.n, 4, [&](int v, int) {
        const float* x0 = a.t[0] + std::ptrdiff_t(v) * fin;
        const float* x1 = a.t[1] + std::ptrdiff_t(v) * fin;
        const float* x2 = a.t[2] + std::ptrdiff_t(v) * fin;
        float* yv = a.y + std::ptrdiff_t(v) * a.fout;
        for (int o0 = 0; o0 < fp; o0 += C * DL) {
            const int nb = (fp - o0) / DL < C ? (fp - o0) / DL : C;
            D acc[C];
#pragma GCC unroll 8
            for (int j = 0; j < C; ++j) acc[j] = j < nb ? D::load_unaligned(a.b + o0 + j * DL) : D(0.0);
            const double* w = a.w + o0;
            const std::ptrdiff_t ks = std::ptrdiff_t(fin) * fp;  // between the k planes
            for (int i = 0; i < fin; ++i, w += fp) {
                const D t0(static_cast<double>(x0[i])), t1(static_cast<double>(x1[i])), t2(static_cast<double>(x2[i]));
#pragma GCC unroll 8
                for (int j = 0; j < C; ++j)
                    if (j < nb) {
                        acc[j] = xsimd::fma(t0, D::load_unaligned(w + j * DL), acc[j]);
                        acc[j] = xsimd::fma(t1, D::load_unaligned(w + ks + j * DL), acc[j]);
                        acc[j] = xsimd::fma(t2, D::load_unaligned(w + 2 * ks + j * DL), acc[j]);
                    }
            }
            alignas(64) double tmp[C * DL];
#pragma GCC unroll 8
            for (int j = 0; j < C; ++j)
                if (j < nb) acc[j].store_aligned(tmp + j * DL);
            const int end = o0 + nb * DL < a.fout ? o0 + nb * DL : a.fout;
            for (int o = o0; o < end; ++o) {
                const float f = float(tmp[o - o0]);
                yv[o] = a.relu ? std::max(f, 0.0f) : f;
            }
        }
    });
}

}  // namespace detail

// Chebyshev graph convolution, K = 3:
//   T0 = x, T1 = L x, T2 = 2 L T1 - T0; feature index fin * 3 + k (Fin-major, K-minor);
//   y = W [T] + b, W of shape (fout, fin * 3) as nn.Linear stores it;
// optionally followed by a folded BatchNorm1d (y * scale + shift) and ReLU.
class cheb_conv {
public:
    static constexpr int max_features = 256;  // output features (the network's are at most 64)

    // `setup`: the instruction set of the dense part (chosen here, once).
    static cheb_conv prepare(const float* weight, const float* bias, int fout, int fin,
                             const float* scale = nullptr, const float* shift = nullptr, const layer_setup& setup = {}) {
        if (fout < 1 || fout > max_features || fin < 1)
            throw error("cheb_conv::prepare: bad shape fout " + std::to_string(fout) + " fin " + std::to_string(fin));
        cheb_conv c;
        c.fin_ = fin;
        c.fout_ = fout;
        c.fout_pad_ = (fout + 7) / 8 * 8;
        c.kernels_ = &setup.table();
        // Repack to [k][fin][fout_pad] in double (each float weight exactly) so the inner
        // loop runs over output features.
        c.w_.assign(std::size_t(3) * fin * c.fout_pad_, 0.0);
        c.b_.assign(std::size_t(c.fout_pad_), 0.0);
        for (int o = 0; o < fout; ++o) {
            float s = scale ? scale[o] : 1.0f;
            for (int i = 0; i < fin; ++i)
                for (int k = 0; k < 3; ++k)
                    c.w_[(std::size_t(k) * fin + i) * c.fout_pad_ + o] = double(weight[std::size_t(o) * fin * 3 + std::size_t(i) * 3 + k] * s);
            c.b_[std::size_t(o)] = double(bias[o] * s + (shift ? shift[o] : 0.0f));
        }
        return c;
    }
    int fin() const { return fin_; }
    int fout() const { return fout_; }

    // x: n x fin, y: n x fout (must not alias x).
    void run(const csr_view& L, const float* x, float* y, bool relu, const exec& ex = {}) const {
        const int n = L.n;
        const std::size_t nf = std::size_t(n) * fin_;
        aligned_buffer t1(ex.memory()), t2(ex.memory());
        t1.resize_uninitialized(nf);  // written in full by sparse_times_dense
        t2.resize_uninitialized(nf);
        sparse_times_dense(L, x, t1.data(), fin_, ex);
        sparse_times_dense(L, t1.data(), t2.data(), fin_, ex);
        for (std::size_t i = 0; i < nf; ++i) t2[i] = 2.0f * t2[i] - x[i];
        detail::cheb_dense_args a{{x, t1.data(), t2.data()}, w_.data(), b_.data(), n, fin_, fout_, fout_pad_, y, relu, ex.loop};
        kernels_->cheb_dense(a);
    }

private:
    int fin_ = 0, fout_ = 0, fout_pad_ = 0;
    const detail::kernel_table* kernels_ = nullptr;
    std::vector<double> w_, b_;
};

// Graph upsampling by 4: node n of the coarse level becomes nodes 4n .. 4n+3.
// x: n x f, y: 4n x f.
inline void graph_upsample4(const float* x, int n, int f, float* y) {
    for (int v = 0; v < n; ++v)
        for (int r = 0; r < 4; ++r) std::copy(x + std::size_t(v) * f, x + std::size_t(v + 1) * f, y + (std::size_t(v) * 4 + r) * f);
}

// Graph max-pooling by 4: coarse node n takes the maximum over nodes 4n .. 4n+3.
// x: n x f, y: (n / 4) x f.
inline void graph_maxpool4(const float* x, int n, int f, float* y) {
    if (n % 4) throw error("graph_maxpool4: node count " + std::to_string(n) + " is not a multiple of 4");
    for (int v = 0; v < n / 4; ++v)
        for (int j = 0; j < f; ++j) {
            float m = x[(std::size_t(v) * 4) * f + j];
            for (int r = 1; r < 4; ++r) m = std::max(m, x[(std::size_t(v) * 4 + r) * f + j]);
            y[std::size_t(v) * f + j] = m;
        }
}

}  // namespace handgraph::kernels

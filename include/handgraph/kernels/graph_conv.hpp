// handgraph/kernels/graph_conv.hpp: the graph side of the network: sparse Laplacian
// times features, Chebyshev convolution (K = 3) with the release's feature order,
// graph upsampling x4 and max-pooling by 4. Node features are row-major V x F.
// They are plain loops over CSR matrices that the compiler vectorises; the Chebyshev
// convolutions (12.3 ms of an image's ~610 ms on a 2-core Zen 1, 2026-12-03) share their
// rows and nodes out on the context's pool (each row's and node's sums in the same order on
// any thread: the same bits). Temporaries come from the call's workspace (exec::memory()).
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

// Chebyshev graph convolution, K = 3:
//   T0 = x, T1 = L x, T2 = 2 L T1 - T0; feature index fin * 3 + k (Fin-major, K-minor);
//   y = W [T] + b, W of shape (fout, fin * 3) as nn.Linear stores it;
// optionally followed by a folded BatchNorm1d (y * scale + shift) and ReLU.
class cheb_conv {
public:
    static constexpr int max_features = 256;  // output features (the network's are at most 64)

    static cheb_conv prepare(const float* weight, const float* bias, int fout, int fin,
                             const float* scale = nullptr, const float* shift = nullptr) {
        if (fout < 1 || fout > max_features || fin < 1)
            throw error("cheb_conv::prepare: bad shape fout " + std::to_string(fout) + " fin " + std::to_string(fin));
        cheb_conv c;
        c.fin_ = fin;
        c.fout_ = fout;
        // Repack to [k][fin][fout] so the inner loop runs over output features.
        c.w_.assign(std::size_t(3) * fin * fout, 0.0f);
        c.b_.assign(std::size_t(fout), 0.0f);
        for (int o = 0; o < fout; ++o) {
            float s = scale ? scale[o] : 1.0f;
            for (int i = 0; i < fin; ++i)
                for (int k = 0; k < 3; ++k)
                    c.w_[(std::size_t(k) * fin + i) * fout + o] = weight[std::size_t(o) * fin * 3 + std::size_t(i) * 3 + k] * s;
            c.b_[std::size_t(o)] = bias[o] * s + (shift ? shift[o] : 0.0f);
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
        const float* T[3] = {x, t1.data(), t2.data()};
        // Sums in double (up to 192 terms), one node per item.
        const bool par = ex.threads() > 1 && std::ptrdiff_t(n) * fin_ * fout_ * 3 >= (std::ptrdiff_t(ex.threads()) << 15);
        detail::parallel_for(ex.loop, par, n, 4, [&](int v, int) {
            double acc[max_features];
            float* yv = y + std::size_t(v) * fout_;
            for (int o = 0; o < fout_; ++o) acc[o] = b_[std::size_t(o)];
            for (int i = 0; i < fin_; ++i)
                for (int k = 0; k < 3; ++k) {
                    const double a = T[k][std::size_t(v) * fin_ + i];
                    const float* w = w_.data() + (std::size_t(k) * fin_ + i) * fout_;
                    for (int o = 0; o < fout_; ++o) acc[o] += a * double(w[o]);
                }
            for (int o = 0; o < fout_; ++o) yv[o] = relu ? std::max(float(acc[o]), 0.0f) : float(acc[o]);
        });
    }

private:
    int fin_ = 0, fout_ = 0;
    std::vector<float> w_, b_;
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

// handgraph/graph.hpp: the hand graph of the released method (spec section 3).
// From the template mesh (obj.hpp): the faces without the arm, the adjacency, four
// levels of Heavy Edge Matching (visiting nodes in the order of numpy <= 1.24's
// introsort argsort, reproduced exactly), the binary-tree permutation with fake nodes,
// the mask and the five graph Laplacians the Chebyshev convolutions use. Built once at
// model load (a few milliseconds). Depends on error.hpp, obj.hpp, Eigen (dense vectors
// inside Lanczos) and the standard library.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "error.hpp"
#include "obj.hpp"

namespace handgraph {

// Template vertices [arm_begin, arm_end) are the arm: their faces are dropped and the
// indices above them shift down (spec 3.1).
constexpr std::int32_t arm_begin = 473;
constexpr std::int32_t arm_end = 529;
constexpr int coarsening_levels = 4;  // five graphs: levels 0..4

// Square sparse matrix, CSR, columns ascending within each row, no stored zeros.
struct sparse_matrix {
    std::int32_t size = 0;
    std::vector<std::int32_t> row_ptr;  // size + 1
    std::vector<std::int32_t> col;
    std::vector<float> values;
    std::size_t nnz() const { return values.size(); }
};

struct hand_graph {
    std::int32_t num_vertices = 0;           // mesh vertices without the arm (954)
    std::vector<std::int32_t> faces;         // num_faces() x 3 over num_vertices (1892 x 3)
    std::vector<std::int32_t> perm;          // graph position -> vertex; >= num_vertices: fake (1280)
    std::vector<std::int32_t> perm_reverse;  // vertex -> graph position (954)
    std::vector<std::uint8_t> mask;          // 1 where perm < num_vertices
    std::vector<sparse_matrix> laplacians;   // levels 0..4: 1280, 640, 320, 160, 80 nodes;
                                             // 0..3 rescaled L / (2 lmax) - I, 4 plain L
    std::vector<double> lmax;                // largest eigenvalue of each level's L (levels 0..3)
    std::vector<std::int32_t> real_sizes;    // real (non-fake) nodes per level: 954, ...
    std::size_t num_faces() const { return faces.size() / 3; }
    std::int32_t num_nodes(int level) const { return laplacians.at(static_cast<std::size_t>(level)).size; }
};

namespace detail {

// numpy's `less` for floating point: NaNs sort last.
struct numpy_float_less {
    template <class T>
    bool operator()(T a, T b) const { return a < b || (b != b && a == a); }
};

// numpy <= 1.24's default argsort (npysort `aquicksort`): introsort that is not stable.
// Median-of-three quicksort, insertion sort once a partition has pr - pl <= 15, heapsort
// past depth 2*floor(log2 n). `index` receives the permutation. Generic in the key and
// the comparison so that tests can drive it with an adversary; `heapsorts` (optional)
// counts the heapsort fallbacks.
template <class Key, class Less>
void numpy_argsort(const Key* v, std::int32_t* index, std::ptrdiff_t n, Less less, int* heapsorts = nullptr) {
    constexpr std::ptrdiff_t small_quicksort = 15;
    for (std::ptrdiff_t i = 0; i < n; ++i) index[i] = static_cast<std::int32_t>(i);
    if (n <= 1) return;

    // Sorts index[lo..hi] (inclusive) by heapsort, numpy's `aheapsort` (1-based heap).
    auto heapsort = [&](std::ptrdiff_t lo, std::ptrdiff_t hi) {
        std::int32_t* a = index + lo - 1;
        std::ptrdiff_t count = hi - lo + 1;
        auto sift = [&](std::ptrdiff_t i, std::ptrdiff_t size) {
            std::int32_t top = a[i];
            for (std::ptrdiff_t j = 2 * i; j <= size; j = 2 * i) {
                if (j < size && less(v[a[j]], v[a[j + 1]])) ++j;
                if (!less(v[top], v[a[j]])) break;
                a[i] = a[j];
                i = j;
            }
            a[i] = top;
        };
        for (std::ptrdiff_t l = count / 2; l > 0; --l) sift(l, count);
        while (count > 1) {
            std::swap(a[count], a[1]);  // numpy: tmp = a[n]; a[n] = a[1]; sift tmp from 1
            --count;
            sift(1, count);
        }
    };

    int depth_limit = 0;
    for (auto u = static_cast<std::size_t>(n); u >>= 1;) ++depth_limit;
    depth_limit *= 2;

    struct range { std::ptrdiff_t lo, hi; int depth; };
    std::vector<range> stack;
    std::ptrdiff_t pl = 0, pr = n - 1;
    int depth = depth_limit;
    for (;;) {
        if (depth < 0) {
            heapsort(pl, pr);
            if (heapsorts) ++*heapsorts;
        } else {
            while (pr - pl > small_quicksort) {
                std::ptrdiff_t pm = pl + ((pr - pl) >> 1);
                if (less(v[index[pm]], v[index[pl]])) std::swap(index[pm], index[pl]);
                if (less(v[index[pr]], v[index[pm]])) std::swap(index[pr], index[pm]);
                if (less(v[index[pm]], v[index[pl]])) std::swap(index[pm], index[pl]);
                const Key pivot = v[index[pm]];
                std::ptrdiff_t pi = pl, pj = pr - 1;
                std::swap(index[pm], index[pj]);
                for (;;) {
                    do ++pi; while (less(v[index[pi]], pivot));
                    do --pj; while (less(pivot, v[index[pj]]));
                    if (pi >= pj) break;
                    std::swap(index[pi], index[pj]);
                }
                std::swap(index[pi], index[pr - 1]);
                // the larger side waits on the stack; iterate on the smaller one
                if (pi - pl < pr - pi) {
                    stack.push_back({pi + 1, pr, 0});
                    pr = pi - 1;
                } else {
                    stack.push_back({pl, pi - 1, 0});
                    pl = pi + 1;
                }
                stack.back().depth = --depth;
            }
            for (std::ptrdiff_t i = pl + 1; i <= pr; ++i) {
                const std::int32_t moving = index[i];
                const Key key = v[moving];
                std::ptrdiff_t j = i;
                while (j > pl && less(key, v[index[j - 1]])) {
                    index[j] = index[j - 1];
                    --j;
                }
                index[j] = moving;
            }
        }
        if (stack.empty()) break;
        pl = stack.back().lo;
        pr = stack.back().hi;
        depth = stack.back().depth;
        stack.pop_back();
    }
}

// numpy.argsort(values) for float32 values (default kind, numpy <= 1.24).
inline std::vector<std::int32_t> numpy_argsort(const std::vector<float>& values) {
    std::vector<std::int32_t> index(values.size());
    numpy_argsort(values.data(), index.data(), static_cast<std::ptrdiff_t>(values.size()), numpy_float_less{});
    return index;
}

struct triplet {
    std::int32_t row, col;
    float value;
};

// CSR from (row, col, value) triplets: duplicates summed (in float, in triplet order),
// zeros dropped, columns ascending. Stable counting sort by row, then by column.
inline sparse_matrix csr_from_triplets(std::int32_t size, const std::vector<triplet>& entries) {
    std::vector<std::int32_t> count(static_cast<std::size_t>(size) + 1, 0);
    for (const triplet& e : entries) ++count[static_cast<std::size_t>(e.row) + 1];
    for (std::int32_t i = 0; i < size; ++i) count[i + 1] += count[i];
    std::vector<triplet> by_row(entries.size());
    {
        std::vector<std::int32_t> next(count.begin(), count.end() - 1);
        for (const triplet& e : entries) by_row[static_cast<std::size_t>(next[e.row]++)] = e;
    }
    sparse_matrix m;
    m.size = size;
    m.row_ptr.assign(static_cast<std::size_t>(size) + 1, 0);
    m.col.reserve(entries.size());
    m.values.reserve(entries.size());
    for (std::int32_t r = 0; r < size; ++r) {
        auto b = by_row.begin() + count[r], e = by_row.begin() + count[r + 1];
        std::stable_sort(b, e, [](const triplet& x, const triplet& y) { return x.col < y.col; });
        for (auto it = b; it != e;) {
            float sum = 0.0f;
            const std::int32_t c = it->col;
            for (; it != e && it->col == c; ++it) sum += it->value;
            if (sum != 0.0f) {
                m.col.push_back(c);
                m.values.push_back(sum);
            }
        }
        m.row_ptr[static_cast<std::size_t>(r) + 1] = static_cast<std::int32_t>(m.values.size());
    }
    return m;
}

// Spec 3.1: faces without the arm, indices above it shifted down.
inline std::vector<std::int32_t> hand_faces(const template_mesh& mesh) {
    std::vector<std::int32_t> out;
    out.reserve(mesh.faces.size());
    constexpr std::int32_t shift = arm_end - arm_begin;
    for (std::size_t f = 0; f + 2 < mesh.faces.size(); f += 3) {
        const std::int32_t* t = &mesh.faces[f];
        bool arm = false;
        for (int k = 0; k < 3; ++k) arm = arm || (t[k] >= arm_begin && t[k] < arm_end);
        if (arm) continue;
        for (int k = 0; k < 3; ++k) out.push_back(t[k] >= arm_end ? t[k] - shift : t[k]);
    }
    return out;
}

// Spec 3.2: 1 on each triangle edge, symmetric, no self loops.
inline sparse_matrix adjacency(const std::vector<std::int32_t>& faces, std::int32_t n) {
    std::vector<triplet> entries;
    entries.reserve(faces.size() * 2);
    for (std::size_t f = 0; f + 2 < faces.size(); f += 3) {
        const std::int32_t a = faces[f], b = faces[f + 1], c = faces[f + 2];
        const std::pair<std::int32_t, std::int32_t> edges[3] = {{a, b}, {b, c}, {a, c}};
        for (auto [x, y] : edges) {
            if (x == y) continue;
            entries.push_back({x, y, 1.0f});
            entries.push_back({y, x, 1.0f});
        }
    }
    sparse_matrix w = csr_from_triplets(n, entries);
    std::fill(w.values.begin(), w.values.end(), 1.0f);  // an edge of two triangles is still 1
    return w;
}

// Column sums, accumulated in double, as float32 (exact for the integer weights here).
inline std::vector<float> column_sums(const sparse_matrix& w) {
    std::vector<double> sum(static_cast<std::size_t>(w.size), 0.0);
    for (std::size_t k = 0; k < w.col.size(); ++k) sum[static_cast<std::size_t>(w.col[k])] += w.values[k];
    return std::vector<float>(sum.begin(), sum.end());
}

inline float diagonal_entry(const sparse_matrix& w, std::int32_t r) {
    for (std::int32_t k = w.row_ptr[r]; k < w.row_ptr[r + 1]; ++k)
        if (w.col[k] == r) return w.values[k];
    return 0.0f;
}

// Spec 3.3, one level of Heavy Edge Matching. Returns the cluster id of each node and
// sets `clusters` to their count.
inline std::vector<std::int32_t> heavy_edge_matching(const sparse_matrix& w, bool first_level, std::int32_t& clusters) {
    const std::int32_t n = w.size;
    const std::vector<float> colsum = column_sums(w);
    std::vector<float> degree = colsum;
    if (first_level)
        for (std::int32_t i = 0; i < n; ++i) degree[i] = colsum[i] - diagonal_entry(w, i);
    const std::vector<std::int32_t> order = numpy_argsort(colsum);
    // The release's quirk: "W_tt'" is the first stored value of row t, not its diagonal.
    std::vector<double> first(static_cast<std::size_t>(n), 0.0);
    for (std::int32_t i = 0; i < n; ++i)
        if (w.row_ptr[i] < w.row_ptr[i + 1]) first[i] = w.values[w.row_ptr[i]];

    std::vector<std::uint8_t> marked(static_cast<std::size_t>(n), 0);
    std::vector<std::int32_t> cluster(static_cast<std::size_t>(n), -1);
    std::int32_t count = 0;
    for (std::int32_t t : order) {
        if (marked[t]) continue;
        marked[t] = 1;
        std::int32_t best = -1;
        double best_score = 0.0;
        for (std::int32_t k = w.row_ptr[t]; k < w.row_ptr[t + 1]; ++k) {
            const std::int32_t m = w.col[k];
            if (marked[m]) continue;
            // as the release evaluates it: float32 degree sum, the rest in double
            const float degrees = degree[t] + degree[m];
            const double score = (2.0 * w.values[k] + first[t] + first[m]) / (static_cast<double>(degrees) + 1e-9);
            if (score > best_score) {
                best_score = score;
                best = m;
            }
        }
        cluster[t] = count;
        if (best >= 0) {
            cluster[best] = count;
            marked[best] = 1;
        }
        ++count;
    }
    clusters = count;
    return cluster;
}

// Next level: W's values summed into (cluster[col], cluster[row]).
inline sparse_matrix coarsen(const sparse_matrix& w, const std::vector<std::int32_t>& cluster, std::int32_t clusters) {
    std::vector<triplet> entries;
    entries.reserve(w.values.size());
    for (std::int32_t r = 0; r < w.size; ++r)
        for (std::int32_t k = w.row_ptr[r]; k < w.row_ptr[r + 1]; ++k)
            entries.push_back({cluster[w.col[k]], cluster[r], w.values[k]});
    return csr_from_triplets(clusters, entries);
}

// Spec 3.4: node orders per level (finest first), from the coarsest nodes down; a
// node's children are its members ascending, padded with fake ids counted up from the
// finer level's real size.
inline std::vector<std::vector<std::int32_t>> binary_tree_orders(const std::vector<std::vector<std::int32_t>>& parents,
                                                                 std::int32_t coarsest) {
    std::vector<std::vector<std::int32_t>> orders(parents.size() + 1);
    std::vector<std::int32_t>& top = orders.back();
    for (std::int32_t i = 0; i < coarsest; ++i) top.push_back(i);
    for (std::size_t level = parents.size(); level-- > 0;) {
        const std::vector<std::int32_t>& cluster = parents[level];
        const auto finer = static_cast<std::int32_t>(cluster.size());
        const std::int32_t coarser = level + 1 < parents.size()
                                         ? static_cast<std::int32_t>(parents[level + 1].size())
                                         : coarsest;
        std::vector<std::int32_t> kids(static_cast<std::size_t>(coarser) * 2, -1);
        for (std::int32_t v = 0; v < finer; ++v) {
            std::int32_t* slot = &kids[static_cast<std::size_t>(cluster[v]) * 2];
            if (slot[0] < 0) slot[0] = v;
            else if (slot[1] < 0) slot[1] = v;
            else throw error("hand graph: a cluster with more than two members (internal error)");
        }
        std::int32_t fake = finer;
        std::vector<std::int32_t>& out = orders[level];
        out.reserve(orders[level + 1].size() * 2);
        for (std::int32_t node : orders[level + 1]) {
            for (int k = 0; k < 2; ++k) {
                std::int32_t member = node < coarser ? kids[static_cast<std::size_t>(node) * 2 + k] : -1;
                out.push_back(member >= 0 ? member : fake++);
            }
        }
    }
    return orders;
}

// W (n real nodes) laid out in `order`'s positions; fake nodes stay isolated.
inline sparse_matrix permute(const sparse_matrix& w, const std::vector<std::int32_t>& order) {
    const auto size = static_cast<std::int32_t>(order.size());
    std::vector<std::int32_t> position(order.size());
    for (std::int32_t p = 0; p < size; ++p) position[order[p]] = p;
    sparse_matrix out;
    out.size = size;
    out.row_ptr.assign(order.size() + 1, 0);
    out.col.reserve(w.col.size());
    out.values.reserve(w.values.size());
    std::vector<std::pair<std::int32_t, float>> row;
    for (std::int32_t p = 0; p < size; ++p) {
        const std::int32_t v = order[p];
        if (v < w.size) {
            row.clear();
            for (std::int32_t k = w.row_ptr[v]; k < w.row_ptr[v + 1]; ++k) row.push_back({position[w.col[k]], w.values[k]});
            std::sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
            for (const auto& [c, x] : row) {
                out.col.push_back(c);
                out.values.push_back(x);
            }
        }
        out.row_ptr[static_cast<std::size_t>(p) + 1] = static_cast<std::int32_t>(out.values.size());
    }
    return out;
}

// float32 product, rounded once (a double product of floats is exact), never fused.
inline float mul_f32(float a, float b) { return static_cast<float>(static_cast<double>(a) * b); }

// L = I - D^-1/2 W D^-1/2 in float32 as the release computes it: d = column sums plus
// the smallest positive float (isolated nodes: zero rows of D^-1/2 W D^-1/2), exact zeros
// dropped.
inline sparse_matrix normalized_laplacian(const sparse_matrix& w) {
    const std::vector<float> d = column_sums(w);
    std::vector<float> inv_sqrt(d.size());
    for (std::size_t i = 0; i < d.size(); ++i) {
        const float di = d[i] + std::numeric_limits<float>::denorm_min();
        inv_sqrt[i] = 1.0f / std::sqrt(di);
    }
    sparse_matrix l;
    l.size = w.size;
    l.row_ptr.assign(static_cast<std::size_t>(w.size) + 1, 0);
    l.col.reserve(w.col.size() + static_cast<std::size_t>(w.size));
    l.values.reserve(w.col.size() + static_cast<std::size_t>(w.size));
    auto emit = [&](std::int32_t c, float x) {
        if (x != 0.0f) {
            l.col.push_back(c);
            l.values.push_back(x);
        }
    };
    for (std::int32_t r = 0; r < w.size; ++r) {
        bool diagonal_done = false;
        for (std::int32_t k = w.row_ptr[r]; k < w.row_ptr[r + 1]; ++k) {
            const std::int32_t c = w.col[k];
            const float m = mul_f32(mul_f32(inv_sqrt[r], w.values[k]), inv_sqrt[c]);
            if (c > r && !diagonal_done) {
                emit(r, 1.0f);
                diagonal_done = true;
            }
            if (c == r) {
                emit(r, 1.0f - m);
                diagonal_done = true;
            } else {
                emit(c, -m);
            }
        }
        if (!diagonal_done) emit(r, 1.0f);
        l.row_ptr[static_cast<std::size_t>(r) + 1] = static_cast<std::int32_t>(l.values.size());
    }
    return l;
}

// y = A x in double.
inline void multiply(const sparse_matrix& a, const double* x, double* y) {
    for (std::int32_t r = 0; r < a.size; ++r) {
        double s = 0.0;
        for (std::int32_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) s += static_cast<double>(a.values[k]) * x[a.col[k]];
        y[r] = s;
    }
}

// Largest eigenvalue of the symmetric tridiagonal matrix (diagonal d, off-diagonal e) by
// bisection on Sturm counts, to about machine precision.
inline double tridiagonal_largest_eigenvalue(const std::vector<double>& d, const std::vector<double>& e) {
    const std::size_t k = d.size();
    double lo = d[0], hi = d[0], scale = 0.0;
    for (std::size_t i = 0; i < k; ++i) {  // Gershgorin bounds
        const double r = (i > 0 ? std::abs(e[i - 1]) : 0.0) + (i + 1 < k ? std::abs(e[i]) : 0.0);
        lo = std::min(lo, d[i] - r);
        hi = std::max(hi, d[i] + r);
        scale = std::max(scale, std::abs(d[i]) + r);
    }
    const double tiny = std::numeric_limits<double>::min() / std::numeric_limits<double>::epsilon();
    auto count_below = [&](double x) {  // number of eigenvalues < x
        std::size_t count = 0;
        double q = 1.0;
        for (std::size_t i = 0; i < k; ++i) {
            q = d[i] - x - (i > 0 ? e[i - 1] * e[i - 1] / q : 0.0);
            if (std::abs(q) < tiny) q = -tiny;
            if (q < 0) ++count;
        }
        return count;
    };
    for (int iteration = 0; iteration < 200; ++iteration) {
        const double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi || hi - lo <= 2 * std::numeric_limits<double>::epsilon() * scale) break;
        if (count_below(mid) == k) hi = mid;
        else lo = mid;
    }
    return 0.5 * (lo + hi);
}

// Last component of the unit eigenvector of the tridiagonal (d, e) for its eigenvalue
// theta: two steps of inverse iteration, Gaussian elimination with partial pivoting.
inline double tridiagonal_eigenvector_last(const std::vector<double>& d, const std::vector<double>& e, double theta) {
    const std::size_t k = d.size();
    double scale = 0.0;
    for (std::size_t i = 0; i < k; ++i) scale = std::max(scale, std::abs(d[i]) + (i + 1 < k ? std::abs(e[i]) : 0.0));
    const double tiny_pivot = std::numeric_limits<double>::epsilon() * std::max(scale, 1e-300);
    auto guard = [&](double p) { return std::abs(p) < tiny_pivot ? (p < 0 ? -tiny_pivot : tiny_pivot) : p; };
    std::vector<std::array<double, 3>> u(k);  // rows of U: diagonal and two superdiagonals
    std::vector<double> rhs(k, 1.0), y(k);
    for (int iteration = 0; iteration < 2; ++iteration) {
        // the row being eliminated, entries at columns i, i+1, i+2
        double c0 = d[0] - theta, c1 = k > 1 ? e[0] : 0.0, c2 = 0.0, cb = rhs[0];
        for (std::size_t i = 0; i + 1 < k; ++i) {
            const double n0 = e[i], n1 = d[i + 1] - theta, n2 = i + 2 < k ? e[i + 1] : 0.0, nb = rhs[i + 1];
            if (std::abs(c0) >= std::abs(n0)) {
                c0 = guard(c0);
                const double m = n0 / c0;
                u[i] = {c0, c1, c2};
                y[i] = cb;
                c0 = n1 - m * c1;
                c1 = n2 - m * c2;
                cb = nb - m * cb;
            } else {
                const double m = c0 / n0;
                u[i] = {n0, n1, n2};
                y[i] = nb;
                c0 = c1 - m * n1;
                c1 = c2 - m * n2;
                cb = cb - m * nb;
            }
            c2 = 0.0;
        }
        u[k - 1] = {guard(c0), 0.0, 0.0};
        y[k - 1] = cb;
        double norm = 0.0;
        for (std::size_t i = k; i-- > 0;) {
            double x = y[i];
            if (i + 1 < k) x -= u[i][1] * y[i + 1];
            if (i + 2 < k) x -= u[i][2] * y[i + 2];
            y[i] = x / u[i][0];
            norm = std::max(norm, std::abs(y[i]));
        }
        for (std::size_t i = 0; i < k; ++i) rhs[i] = y[i] / norm;  // rescaled: no overflow
    }
    double norm = 0.0;
    for (double x : rhs) norm += x * x;
    return rhs[k - 1] / std::sqrt(norm);
}

// Largest eigenvalue of a symmetric matrix by Lanczos with full reorthogonalisation, in
// double, from a fixed pseudo-random start (deterministic). Stops when the Ritz residual
// |beta_k s_k| is below 1e-10 * lmax, which bounds the error by the same amount. For the
// Laplacians (eigenvalues in [0, 2]) this is scipy's eigsh(L, k=1, which='LM').
inline double largest_eigenvalue(const sparse_matrix& a) {
    const std::int32_t n = a.size;
    if (n == 0) return 0.0;
    const int max_steps = static_cast<int>(std::min<std::int32_t>(n, 400));
    Eigen::MatrixXd basis(n, max_steps + 1);  // Lanczos vectors, column by column
    Eigen::VectorXd w(n), coefficients;
    std::vector<double> alpha, beta;
    std::uint64_t state = 0x9E3779B97F4A7C15ull;
    for (std::int32_t i = 0; i < n; ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        basis(i, 0) = static_cast<double>(state >> 11) * (1.0 / 9007199254740992.0) - 0.5;
    }
    basis.col(0).normalize();

    double theta = 0.0, magnitude = 0.0;
    for (int k = 0; k < max_steps; ++k) {
        multiply(a, basis.col(k).data(), w.data());
        alpha.push_back(w.dot(basis.col(k)));
        // full reorthogonalisation, classical Gram-Schmidt applied twice: once is not enough
        // when w nearly vanishes (a nearly invariant subspace, e.g. a template whose faces
        // leave most vertices isolated): w / |w| then keeps components along the basis, the
        // recurrence diverges and lmax came out far above the spectrum (200 for a
        // normalised Laplacian; found by tests/fuzz/fuzz_obj).
        for (int pass = 0; pass < 2; ++pass) {
            coefficients.noalias() = basis.leftCols(k + 1).transpose() * w;
            w.noalias() -= basis.leftCols(k + 1) * coefficients;
        }
        const double bk = w.norm();
        const int steps = k + 1;
        magnitude = std::max({magnitude, std::abs(alpha.back()), bk});
        const bool breakdown = !(bk > 1e-14 * magnitude);  // an invariant subspace: T is exact
        // (the tridiagonal solve is cheap, but not free: check every fourth step)
        if (steps % 4 == 0 || steps == max_steps || breakdown) {
            theta = tridiagonal_largest_eigenvalue(alpha, beta);
            const double residual = bk * std::abs(tridiagonal_eigenvector_last(alpha, beta, theta));
            if (residual <= 1e-10 * std::max(std::abs(theta), 1e-300) || steps == max_steps || breakdown) return theta;
        }
        beta.push_back(bk);
        basis.col(k + 1) = w / bk;
    }
    return theta;
}

// Levels 0..3: L / (2 lmax) - I, in double, rounded to float once (spec 3.5: the release
// divides by 2 lmax where the textbook multiplies by 2 / lmax).
inline sparse_matrix rescale(const sparse_matrix& l, double lmax) {
    sparse_matrix out;
    out.size = l.size;
    out.row_ptr.assign(static_cast<std::size_t>(l.size) + 1, 0);
    out.col.reserve(l.col.size() + static_cast<std::size_t>(l.size));
    out.values.reserve(l.col.size() + static_cast<std::size_t>(l.size));
    auto emit = [&](std::int32_t c, double x) {
        const auto f = static_cast<float>(x);
        if (f != 0.0f) {
            out.col.push_back(c);
            out.values.push_back(f);
        }
    };
    const double scale = 2.0 * lmax;
    for (std::int32_t r = 0; r < l.size; ++r) {
        bool diagonal_done = false;
        for (std::int32_t k = l.row_ptr[r]; k < l.row_ptr[r + 1]; ++k) {
            const std::int32_t c = l.col[k];
            if (c > r && !diagonal_done) {
                emit(r, -1.0);
                diagonal_done = true;
            }
            if (c == r) {
                emit(r, static_cast<double>(l.values[k]) / scale - 1.0);
                diagonal_done = true;
            } else {
                emit(c, static_cast<double>(l.values[k]) / scale);
            }
        }
        if (!diagonal_done) emit(r, -1.0);
        out.row_ptr[static_cast<std::size_t>(r) + 1] = static_cast<std::int32_t>(out.values.size());
    }
    return out;
}

}  // namespace detail

// The hand graph of a template mesh with the release's layout (the arm at vertices
// [473, 529)). Deterministic; throws handgraph::error for a mesh it cannot use.
// `known_lmax` (levels 0..3, as a graph of the same mesh computed them: a prepared weight
// file stores them) skips the Lanczos runs; each must lie in (0, 2], the spectrum of a
// normalised Laplacian.
inline hand_graph build_hand_graph(const template_mesh& mesh, const std::vector<double>* known_lmax = nullptr) {
    if (known_lmax) {
        if (known_lmax->size() != static_cast<std::size_t>(coarsening_levels))
            throw error("hand graph: " + std::to_string(known_lmax->size()) + " known largest eigenvalues, the graph has " +
                        std::to_string(coarsening_levels) + " levels to rescale");
        for (double v : *known_lmax)
            if (!(v > 0.0 && v <= 2.0)) throw error("hand graph: a known largest eigenvalue " + std::to_string(v) + " is outside (0, 2]");
    }
    const std::size_t nv = mesh.num_vertices();
    if (mesh.vertices.size() % 3 != 0 || mesh.faces.size() % 3 != 0 || mesh.faces.empty())
        throw error("hand graph: the template mesh must have n x 3 vertices and m x 3 faces");
    if (nv <= static_cast<std::size_t>(arm_end))
        throw error("hand graph: the template mesh has " + std::to_string(nv) + " vertices; the release's layout (arm at [" +
                    std::to_string(arm_begin) + ", " + std::to_string(arm_end) + ")) needs more than " + std::to_string(arm_end));
    if (nv > (std::size_t(1) << 20))  // keeps the 16x wider node orders and Lanczos's memory in bounds
        throw error("hand graph: the template mesh has " + std::to_string(nv) + " vertices, too many for a hand template");
    for (std::size_t i = 0; i < mesh.faces.size(); ++i)
        if (mesh.faces[i] < 0 || static_cast<std::size_t>(mesh.faces[i]) >= nv)
            throw error("hand graph: template face " + std::to_string(i / 3) + " has vertex index " +
                        std::to_string(mesh.faces[i]) + ", outside [0, " + std::to_string(nv) + ")");

    hand_graph g;
    g.num_vertices = static_cast<std::int32_t>(nv) - (arm_end - arm_begin);
    g.faces = detail::hand_faces(mesh);
    if (g.faces.empty()) throw error("hand graph: every face of the template mesh touches the arm");

    std::vector<sparse_matrix> graphs{detail::adjacency(g.faces, g.num_vertices)};
    std::vector<std::vector<std::int32_t>> parents;
    g.real_sizes.push_back(g.num_vertices);
    for (int level = 0; level < coarsening_levels; ++level) {
        std::int32_t clusters = 0;
        parents.push_back(detail::heavy_edge_matching(graphs.back(), level == 0, clusters));
        graphs.push_back(detail::coarsen(graphs.back(), parents.back(), clusters));
        g.real_sizes.push_back(clusters);
    }
    const auto orders = detail::binary_tree_orders(parents, g.real_sizes.back());

    for (int level = 0; level <= coarsening_levels; ++level) {
        const auto& order = orders[static_cast<std::size_t>(level)];
        sparse_matrix l = detail::normalized_laplacian(
            level < coarsening_levels ? detail::permute(graphs[static_cast<std::size_t>(level)], order)
                                      : graphs[static_cast<std::size_t>(level)]);
        if (level < coarsening_levels) {
            const double lmax = known_lmax ? (*known_lmax)[static_cast<std::size_t>(level)] : detail::largest_eigenvalue(l);
            if (!(lmax > 0.0)) throw error("hand graph: level " + std::to_string(level) + " Laplacian has no positive eigenvalue");
            g.lmax.push_back(lmax);
            l = detail::rescale(l, lmax);
        }
        g.laplacians.push_back(std::move(l));
    }

    g.perm = orders[0];
    g.mask.resize(g.perm.size());
    g.perm_reverse.assign(static_cast<std::size_t>(g.num_vertices), -1);
    for (std::size_t p = 0; p < g.perm.size(); ++p) {
        const bool real = g.perm[p] < g.num_vertices;
        g.mask[p] = real ? 1 : 0;
        if (real) g.perm_reverse[static_cast<std::size_t>(g.perm[p])] = static_cast<std::int32_t>(p);
    }
    return g;
}

}  // namespace handgraph

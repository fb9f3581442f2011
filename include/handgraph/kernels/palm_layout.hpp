// handgraph/kernels/palm_layout.hpp: the palm detector's data-movement ops: RESHAPE
// (a feature map to and from the dense row-major NHWC order TFLite's tensors have),
// CONCATENATION (of dense tensors on any axis, of feature maps on rows, columns or
// channels), PAD (zeros around a feature map: rows, columns, channels) and the shifted copy
// that lets conv2d (symmetric padding) run a layer with TFLite's asymmetric SAME padding.
// These only move floats (memcpy of contiguous runs, no arithmetic), so they are plain
// generic code, not per-instruction-set kernels; each has a scalar twin written from the
// index formulas in palm_reference.hpp, and the tests compare them.
// Every function writes all of its output's interior (padding channels as zeros).
// Depends on tensor.hpp.
#pragma once
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"

namespace handgraph {
namespace kernels {

// dense[(y * W + x) * C + c] = m(y, x, c): the map's logical channels in TFLite's order.
inline void map_to_dense(const feature_map& m, float* dense) {
    const std::size_t c = std::size_t(m.channels);
    for (int y = 0; y < m.height; ++y)
        for (int x = 0; x < m.width; ++x) std::memcpy(dense + (std::size_t(y) * m.width + x) * c, m.pixel(y, x), c * sizeof(float));
}

// m(y - dy, x - dx, c) = dense[(y * W + x) * C + c] for the map's interior shape (W = m.width,
// C = m.channels); with a shift (dy, dx > 0) the first rows and columns go into the border
// and the last dy rows / dx columns of the interior become zero. Padding channels are zero.
inline void dense_to_map(const float* dense, feature_map& m, int dy = 0, int dx = 0) {
    if (dy < 0 || dx < 0 || dy > m.border || dx > m.border) throw error("dense_to_map: shift beyond the map's border");
    const std::size_t c = std::size_t(m.channels), pad = std::size_t(m.cpad) - c;
    for (int y = -dy; y < m.height; ++y)
        for (int x = -dx; x < m.width; ++x) {
            float* p = m.pixel(y, x);
            const int sy = y + dy, sx = x + dx;
            if (sy < m.height && sx < m.width) std::memcpy(p, dense + (std::size_t(sy) * m.width + sx) * c, c * sizeof(float));
            else std::memset(p, 0, c * sizeof(float));
            if (pad) std::memset(p + c, 0, pad * sizeof(float));
        }
}

// out(y - dy, x - dx) = in(y, x) over in's interior (out has in's shape and a border of at
// least dy, dx); the last dy rows / dx columns of out's interior become zero.
inline void shifted_copy(const feature_map& in, feature_map& out, int dy, int dx) {
    if (out.height != in.height || out.width != in.width || out.channels != in.channels || dy < 0 || dx < 0 || dy > out.border ||
        dx > out.border)
        throw error("shifted_copy: output must have the input's shape and a border of at least the shift");
    const std::size_t cp = std::size_t(in.cpad);
    for (int y = -dy; y < out.height; ++y)
        for (int x = -dx; x < out.width; ++x) {
            const int sy = y + dy, sx = x + dx;
            if (sy < in.height && sx < in.width) std::memcpy(out.pixel(y, x), in.pixel(sy, sx), cp * sizeof(float));
            else std::memset(out.pixel(y, x), 0, cp * sizeof(float));
        }
}

// PAD: out(y + top, x + left, c + front) = in(y, x, c), zeros elsewhere; out is
// (top + H + bottom) x (left + W + right) x (front + C + back).
inline void pad_map(const feature_map& in, int top, int left, int front, feature_map& out) {
    if (top < 0 || left < 0 || front < 0 || out.height < in.height + top || out.width < in.width + left || out.channels < in.channels + front)
        throw error("pad: the output does not hold the padded input");
    const std::size_t c = std::size_t(in.channels), ocp = std::size_t(out.cpad);
    for (int y = 0; y < out.height; ++y)
        for (int x = 0; x < out.width; ++x) {
            float* p = out.pixel(y, x);
            const int sy = y - top, sx = x - left;
            if (sy < 0 || sx < 0 || sy >= in.height || sx >= in.width) {
                std::memset(p, 0, ocp * sizeof(float));
                continue;
            }
            if (front) std::memset(p, 0, std::size_t(front) * sizeof(float));
            std::memcpy(p + front, in.pixel(sy, sx), c * sizeof(float));
            std::memset(p + front + c, 0, (ocp - std::size_t(front) - c) * sizeof(float));
        }
}

// CONCATENATION of feature maps along axis 1 (rows), 2 (columns) or 3 (channels) of NHWC.
inline void concat_maps(const std::vector<const feature_map*>& in, int axis, feature_map& out) {
    if (in.empty() || axis < 1 || axis > 3) throw error("concatenation: maps concatenate on axis 1, 2 or 3");
    int off = 0;
    for (const feature_map* m : in) {
        const int h = axis == 1 ? out.height - off : out.height, w = axis == 2 ? out.width - off : out.width;
        if ((axis != 1 && m->height != out.height) || (axis != 2 && m->width != out.width) || (axis != 3 && m->channels != out.channels) ||
            m->height > h || m->width > w)
            throw error("concatenation: inputs do not fit the output");
        for (int y = 0; y < m->height; ++y)
            for (int x = 0; x < m->width; ++x) {
                const int oy = axis == 1 ? y + off : y, ox = axis == 2 ? x + off : x, oc = axis == 3 ? off : 0;
                std::memcpy(out.pixel(oy, ox) + oc, m->pixel(y, x), std::size_t(m->channels) * sizeof(float));
            }
        off += axis == 1 ? m->height : axis == 2 ? m->width : m->channels;
    }
    if (off != (axis == 1 ? out.height : axis == 2 ? out.width : out.channels)) throw error("concatenation: inputs do not fill the output");
    const std::size_t c = std::size_t(out.channels), pad = std::size_t(out.cpad) - c;
    if (pad)
        for (int y = 0; y < out.height; ++y)
            for (int x = 0; x < out.width; ++x) std::memset(out.pixel(y, x) + c, 0, pad * sizeof(float));
}

// CONCATENATION of dense row-major tensors along `axis`: the shapes agree except on it.
inline void concat_dense(const std::vector<const float*>& in, const std::vector<std::vector<int>>& shapes, int axis, float* out) {
    if (in.empty() || in.size() != shapes.size()) throw error("concatenation: no inputs");
    const std::size_t rank = shapes[0].size();
    if (axis < 0 || std::size_t(axis) >= rank) throw error("concatenation: axis outside the tensors");
    std::size_t outer = 1, inner = 1;
    for (std::size_t k = 0; k < std::size_t(axis); ++k) outer *= std::size_t(shapes[0][k]);
    for (std::size_t k = std::size_t(axis) + 1; k < rank; ++k) inner *= std::size_t(shapes[0][k]);
    std::size_t total = 0;
    for (const auto& s : shapes) total += std::size_t(s[std::size_t(axis)]) * inner;
    for (std::size_t o = 0; o < outer; ++o) {
        float* dst = out + o * total;
        for (std::size_t i = 0; i < in.size(); ++i) {
            const std::size_t n = std::size_t(shapes[i][std::size_t(axis)]) * inner;
            std::memcpy(dst, in[i] + o * n, n * sizeof(float));
            dst += n;
        }
    }
}

}  // namespace kernels
}  // namespace handgraph

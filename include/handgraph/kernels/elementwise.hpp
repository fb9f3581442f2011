// handgraph/kernels/elementwise.hpp: per-pixel kernels on feature maps: scale_shift_relu
// (pre-activation BatchNorm + ReLU), add, maxpool2x2, upsample2x_add.
//
// All are memory-bound loops over the interior rows (each row's interior is contiguous in
// HWC), vectorised over channels including the zero padding channels (which stay zero).
// Maps of one call share their channel count; their borders may differ. `out` is shaped by
// the caller and only its interior is written. Each function takes the kernel table of the
// layer that calls it (the instruction set its network was prepared with).
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

enum class eltwise_op { scale_shift_relu, add, maxpool2x2, upsample2x_add };

struct eltwise_args {
    eltwise_op op;
    const float* a;  // scale_shift_relu: in; add: a; maxpool2x2: in; upsample2x_add: up
    std::ptrdiff_t a_row;
    const float* b;  // add: b; upsample2x_add: low
    std::ptrdiff_t b_row;
    float* out;
    std::ptrdiff_t out_row;
    int height, width, cpad;  // of out
    const float* scale;       // [cpad], zero in the padding
    const float* shift;       // [cpad], zero in the padding
    loop_runner loop;         // serial by default
};

template <class Arch>
void eltwise(const eltwise_args& a) {
    using B = xsimd::batch<float, Arch>;
    constexpr int L = int(B::size);
    const int n = a.width * a.cpad;  // floats per interior row of out
    const bool par = a.loop.threads > 1 && std::ptrdiff_t(a.height) * n >= 16384;
    const int cpad = a.cpad;
    parallel_for(a.loop, par, a.height, 1, [&](int y, int) {
        float* o = a.out + y * a.out_row;
        switch (a.op) {
            case eltwise_op::scale_shift_relu: {
                const float* x = a.a + y * a.a_row;
                const B zero(0.0f);
                for (int i = 0; i < n; i += cpad)
                    for (int c = 0; c < cpad; c += L) {
                        B v = xsimd::fma(B::load_aligned(x + i + c), B::load_aligned(a.scale + c),
                                         B::load_aligned(a.shift + c));
                        xsimd::max(v, zero).store_aligned(o + i + c);
                    }
                break;
            }
            case eltwise_op::add: {
                const float* x = a.a + y * a.a_row;
                const float* z = a.b + y * a.b_row;
                for (int i = 0; i < n; i += L) (B::load_aligned(x + i) + B::load_aligned(z + i)).store_aligned(o + i);
                break;
            }
            case eltwise_op::maxpool2x2: {
                const float* r0 = a.a + 2 * y * a.a_row;
                const float* r1 = r0 + a.a_row;
                for (int x = 0; x < a.width; ++x)
                    for (int c = 0; c < cpad; c += L) {
                        const std::ptrdiff_t i = std::ptrdiff_t(2 * x) * cpad + c;
                        B m = xsimd::max(xsimd::max(B::load_aligned(r0 + i), B::load_aligned(r0 + i + cpad)),
                                         xsimd::max(B::load_aligned(r1 + i), B::load_aligned(r1 + i + cpad)));
                        m.store_aligned(o + std::ptrdiff_t(x) * cpad + c);
                    }
                break;
            }
            case eltwise_op::upsample2x_add: {
                const float* u = a.a + y * a.a_row;
                const float* l = a.b + (y / 2) * a.b_row;
                for (int x = 0; x < a.width; ++x)
                    for (int c = 0; c < cpad; c += L) {
                        const std::ptrdiff_t i = std::ptrdiff_t(x) * cpad + c;
                        (B::load_aligned(u + i) + B::load_aligned(l + std::ptrdiff_t(x / 2) * cpad + c))
                            .store_aligned(o + i);
                    }
                break;
            }
        }
    });
}

inline void check_eltwise_map(const feature_map& m, const char* fn, const char* what) {
    std::size_t n = std::size_t(m.height + 2 * m.border) * std::size_t(m.width + 2 * m.border) * std::size_t(m.cpad);
    if (m.height <= 0 || m.width <= 0 || m.channels <= 0 || m.border < 0 ||
        m.cpad != round_up(m.channels, channel_block) || m.buf.size() != n)
        throw error(std::string(fn) + ": " + what + " is not a valid feature map");
}

inline void check_same(const feature_map& x, const feature_map& ref, int h, int w, const char* fn, const char* what) {
    if (x.height != h || x.width != w || x.channels != ref.channels)
        throw error(std::string(fn) + ": " + what + " is " + std::to_string(x.height) + "x" + std::to_string(x.width) +
                    "x" + std::to_string(x.channels) + ", expected " + std::to_string(h) + "x" + std::to_string(w) +
                    "x" + std::to_string(ref.channels));
}

inline eltwise_args eltwise_base(eltwise_op op, const feature_map& a, feature_map& out, const exec& ex) {
    eltwise_args e{};
    e.op = op;
    e.a = a.pixel(0, 0);
    e.a_row = std::ptrdiff_t(a.row_stride());
    e.out = out.pixel(0, 0);
    e.out_row = std::ptrdiff_t(out.row_stride());
    e.height = out.height;
    e.width = out.width;
    e.cpad = out.cpad;
    e.loop = ex.loop;
    return e;
}

}  // namespace detail

// out = max(0, in * scale + shift) per channel (pre-activation BatchNorm + ReLU); scale and
// shift have in.channels entries. out has in's shape (any border); out may alias in.
inline void scale_shift_relu(const detail::kernel_table& k, const feature_map& in, const float* scale, const float* shift,
                             feature_map& out, const exec& ex) {
    const char* fn = "scale_shift_relu";
    detail::check_eltwise_map(in, fn, "input");
    detail::check_eltwise_map(out, fn, "output");
    detail::check_same(out, in, in.height, in.width, fn, "output");
    if (!scale || !shift) throw error("scale_shift_relu: no scale or shift");
    aligned_buffer s(std::size_t(in.cpad), ex.memory()), t(std::size_t(in.cpad), ex.memory());
    for (int c = 0; c < in.channels; ++c) { s[c] = scale[c]; t[c] = shift[c]; }
    detail::eltwise_args e = detail::eltwise_base(detail::eltwise_op::scale_shift_relu, in, out, ex);
    e.scale = s.data();
    e.shift = t.data();
    k.eltwise(e);
}

// out = a + b (same shapes; any borders); out may alias a or b.
inline void add(const detail::kernel_table& k, const feature_map& a, const feature_map& b, feature_map& out, const exec& ex) {
    const char* fn = "add";
    detail::check_eltwise_map(a, fn, "a");
    detail::check_eltwise_map(b, fn, "b");
    detail::check_eltwise_map(out, fn, "output");
    detail::check_same(b, a, a.height, a.width, fn, "b");
    detail::check_same(out, a, a.height, a.width, fn, "output");
    detail::eltwise_args e = detail::eltwise_base(detail::eltwise_op::add, a, out, ex);
    e.b = b.pixel(0, 0);
    e.b_row = std::ptrdiff_t(b.row_stride());
    k.eltwise(e);
}

// 2x2 max pooling, stride 2, floor: out is (in.height / 2) x (in.width / 2), in's channels.
inline void maxpool2x2(const detail::kernel_table& k, const feature_map& in, feature_map& out, const exec& ex) {
    const char* fn = "maxpool2x2";
    detail::check_eltwise_map(in, fn, "input");
    detail::check_eltwise_map(out, fn, "output");
    detail::check_same(out, in, in.height / 2, in.width / 2, fn, "output");
    if (in.buf.data() == out.buf.data()) throw error("maxpool2x2: output aliases the input");
    detail::eltwise_args e = detail::eltwise_base(detail::eltwise_op::maxpool2x2, in, out, ex);
    k.eltwise(e);
}

// out = up + nearest_x2(low): up and out are (2 low.height) x (2 low.width); out may alias up.
inline void upsample2x_add(const detail::kernel_table& k, const feature_map& low, const feature_map& up, feature_map& out,
                           const exec& ex) {
    const char* fn = "upsample2x_add";
    detail::check_eltwise_map(low, fn, "low");
    detail::check_eltwise_map(up, fn, "up");
    detail::check_eltwise_map(out, fn, "output");
    detail::check_same(up, low, 2 * low.height, 2 * low.width, fn, "up");
    detail::check_same(out, low, 2 * low.height, 2 * low.width, fn, "output");
    if (low.buf.data() == out.buf.data()) throw error("upsample2x_add: output aliases low");
    detail::eltwise_args e = detail::eltwise_base(detail::eltwise_op::upsample2x_add, up, out, ex);
    e.b = low.pixel(0, 0);
    e.b_row = std::ptrdiff_t(low.row_stride());
    k.eltwise(e);
}

}  // namespace kernels
}  // namespace handgraph

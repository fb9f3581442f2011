// handgraph/crop.hpp: a box of an image, zero-padded where it leaves the image, resized as
// OpenCV's cv2.resize(INTER_LINEAR) does, bit for bit (checked against OpenCV 4.6 in
// tests/test_image.cpp): the release's crop (spec section 5), and the crop a photo's hand
// box becomes. Reads any image_view (pixel formats converted to B, G, R as they are read);
// needs no image library.
//
// The resize: 11-bit fixed-point weights, horizontal pass in integers, vertical pass
// `(((c0*(S0>>4))>>16) + ((c1*(S1>>4))>>16) + 2) >> 2`. Horizontally, taps outside the
// source are clamped with their weight (s<0: s=0, a=0; s>=n-1: s=n-1, a=0); vertically only
// the row index is clamped and the weights stay as computed, so the first and last rows of
// an upscale mix a row with itself, which rounds differently from weight 1 (this is what
// makes them exact). Only the source rows an output row uses are read (two per row).
// Depends on handgraph.hpp (image_view) and error.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "error.hpp"
#include "handgraph.hpp"

namespace handgraph {
namespace detail {

// One axis of cv2.resize's bilinear taps: source indices and 11-bit weights.
struct linear_taps {
    std::vector<int> i0, i1;
    std::vector<int> c0, c1;
};

inline int resize_coef(float v) {
    long r = std::lrint(v * 2048.0f);  // OpenCV's saturate_cast<short>(float): round half to even
    return int(std::clamp<long>(r, std::numeric_limits<short>::min(), std::numeric_limits<short>::max()));
}

// clamp_weights: the horizontal rule (a tap outside the source gets weight 0); without it
// only the indices are clamped (the vertical rule).
inline linear_taps make_linear_taps(int src, int dst, bool clamp_weights) {
    linear_taps t;
    t.i0.resize(std::size_t(dst));
    t.i1.resize(std::size_t(dst));
    t.c0.resize(std::size_t(dst));
    t.c1.resize(std::size_t(dst));
    double scale = 1.0 / (double(dst) / double(src));
    for (int d = 0; d < dst; ++d) {
        float f = float((d + 0.5) * scale - 0.5);
        int s = int(std::floor(f));
        f -= float(s);
        int s0 = s, s1 = s + 1;
        if (clamp_weights) {
            if (s < 0) { s0 = 0; f = 0.f; }
            if (s0 >= src - 1) { s0 = src - 1; f = 0.f; }
            s1 = std::min(s0 + 1, src - 1);
        } else {
            s0 = std::clamp(s0, 0, src - 1);
            s1 = std::clamp(s1, 0, src - 1);
        }
        t.i0[std::size_t(d)] = s0;
        t.i1[std::size_t(d)] = s1;
        t.c0[std::size_t(d)] = resize_coef(1.0f - f);
        t.c1[std::size_t(d)] = resize_coef(f);
    }
    return t;
}

// Source channel of B, G, R for each pixel format.
inline void bgr_channels(pixel_format f, int ch[3]) {
    ch[0] = 0, ch[1] = 1, ch[2] = 2;
    if (f == pixel_format::rgb || f == pixel_format::rgba) ch[0] = 2, ch[2] = 0;
    if (f == pixel_format::gray) ch[1] = ch[2] = 0;
}

}  // namespace detail

// The w x h box at (x, y) of `src` (pixels outside src are 0: the box may lie partly or
// wholly outside), resized to out_w x out_h, into `out` (out_w * out_h * 3 bytes, B, G, R,
// rows packed).
inline void crop_resize_bgr(const image_view& src, long x, long y, long w, long h, int out_w, int out_h, std::uint8_t* out) {
    src.check("image");
    if (w <= 0 || h <= 0 || w > (1L << 28) || h > (1L << 28) || double(w) * double(h) > double(std::int64_t(1) << 40))
        throw error("crop: invalid box size " + std::to_string(w) + "x" + std::to_string(h));
    if (out_w <= 0 || out_h <= 0 || std::int64_t(out_w) * std::int64_t(out_h) > (std::int64_t(1) << 28))
        throw error("resize: invalid size " + std::to_string(out_w) + "x" + std::to_string(out_h));
    const detail::linear_taps tx = detail::make_linear_taps(int(w), out_w, true);
    const detail::linear_taps ty = detail::make_linear_taps(int(h), out_h, false);
    int ch[3];
    detail::bgr_channels(src.format, ch);
    const int n = channel_count(src.format);
    const std::ptrdiff_t stride = src.stride();
    // The horizontal pass of crop row r (image row y + r), as 32-bit integers; zero outside.
    const std::size_t row_len = std::size_t(out_w) * 3;
    auto hpass = [&](long r, int* o) {
        const long sy = y + r;
        if (sy < 0 || sy >= src.height) {
            std::fill(o, o + row_len, 0);
            return;
        }
        const std::uint8_t* row = src.data + std::ptrdiff_t(sy) * stride;
        auto px = [&](int s, int c) -> int {
            const long sx = x + s;
            return sx < 0 || sx >= src.width ? 0 : row[std::ptrdiff_t(sx) * n + ch[c]];
        };
        for (int d = 0; d < out_w; ++d) {
            const int s0 = tx.i0[std::size_t(d)], s1 = tx.i1[std::size_t(d)], c0 = tx.c0[std::size_t(d)], c1 = tx.c1[std::size_t(d)];
            for (int c = 0; c < 3; ++c) o[d * 3 + c] = px(s0, c) * c0 + px(s1, c) * c1;
        }
    };
    // Output rows use nondecreasing source rows: keep the last two computed.
    std::vector<int> buf(2 * row_len);
    long have[2] = {-1, -1};
    auto row_of = [&](long r) -> const int* {
        for (int k = 0; k < 2; ++k)
            if (have[k] == r) return buf.data() + std::size_t(k) * row_len;
        const int k = have[0] < have[1] ? 0 : 1;  // replace the older (smaller) row
        hpass(r, buf.data() + std::size_t(k) * row_len);
        have[k] = r;
        return buf.data() + std::size_t(k) * row_len;
    };
    for (int d = 0; d < out_h; ++d) {
        const int* s0 = row_of(ty.i0[std::size_t(d)]);
        const int* s1 = row_of(ty.i1[std::size_t(d)]);
        const int b0 = ty.c0[std::size_t(d)], b1 = ty.c1[std::size_t(d)];
        std::uint8_t* o = out + std::size_t(d) * row_len;
        for (std::size_t k = 0; k < row_len; ++k) {
            const int v = (((b0 * (s0[k] >> 4)) >> 16) + ((b1 * (s1[k] >> 4)) >> 16) + 2) >> 2;
            o[k] = std::uint8_t(std::clamp(v, 0, 255));
        }
    }
}

}  // namespace handgraph

// tests/test_detector_kernels.cpp: the palm detector's kernels (depthwise convolution,
// PReLU, add, clamp, max-pool, bilinear resize; the data-movement ops) against their scalar
// twins (kernels/palm_reference.hpp) on odd shapes and every compiled instruction set the
// CPU runs, 1 and 2 threads bit-identical, borders and padding channels left zero, and the
// conv2d-on-a-shifted-input form of TFLite's asymmetric SAME padding against a direct
// evaluation of the asymmetric definition.
#include <doctest/doctest.h>

#include <handgraph/context.hpp>
#include <handgraph/kernels/kernels.hpp>
#include <handgraph/kernels/palm_kernels.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace handgraph;
using namespace handgraph::kernels;

namespace {

void fill_random(feature_map& m, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> d(lo, hi);
    for (int y = 0; y < m.height; ++y)
        for (int x = 0; x < m.width; ++x)
            for (int c = 0; c < m.channels; ++c) m.pixel(y, x)[c] = d(rng);
}

std::vector<float> random_vector(std::size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

bool border_and_padding_zero(const feature_map& m) {
    for (int y = -m.border; y < m.height + m.border; ++y)
        for (int x = -m.border; x < m.width + m.border; ++x) {
            const bool inside = y >= 0 && x >= 0 && y < m.height && x < m.width;
            for (int c = inside ? m.channels : 0; c < m.cpad; ++c)
                if (m.pixel(y, x)[c] != 0.0f) return false;
        }
    return true;
}

// max |a - b| / max |b| over the interior's logical channels (infinite on NaN).
double relative_error(const feature_map& a, const feature_map& b) {
    double err = 0, mag = 0;
    for (int y = 0; y < b.height; ++y)
        for (int x = 0; x < b.width; ++x)
            for (int c = 0; c < b.channels; ++c) {
                const double d = std::fabs(double(a.at(c, y, x)) - double(b.at(c, y, x)));
                if (std::isnan(d)) return INFINITY;
                err = std::max(err, d);
                mag = std::max(mag, double(std::fabs(b.at(c, y, x))));
            }
    return mag > 0 ? err / mag : err;
}

bool same_bits(const feature_map& a, const feature_map& b) {
    return a.buf.size() == b.buf.size() && std::memcmp(a.buf.data(), b.buf.data(), a.buf.size() * sizeof(float)) == 0;
}

bool same_interior(const feature_map& a, const feature_map& b) {
    for (int y = 0; y < b.height; ++y)
        for (int x = 0; x < b.width; ++x)
            for (int c = 0; c < b.channels; ++c)
                if (!(a.at(c, y, x) == b.at(c, y, x))) return false;
    return true;
}

struct contexts {
    handgraph::detail::context_state one{1}, two{2};
};

const detector_kernel_table& dtable(const std::string& arch) { return select_detector_kernels(select_kernels(arch.c_str())); }
detector_setup dsetup(const std::string& arch) { return detector_setup{&dtable(arch), nullptr}; }

// A map whose interior holds NaN where a kernel must write, border and padding zero: shows
// values a kernel never wrote.
feature_map poisoned(int h, int w, int c, int border) {
    feature_map m(h, w, c, border);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int k = 0; k < m.cpad; ++k) m.pixel(y, x)[k] = std::numeric_limits<float>::quiet_NaN();
    return m;
}

// TFLite's SAME padding of one axis (kernels/padding.h).
void same_pads(int size, int k, int s, int d, int& before, int& after) {
    const int out = (size + s - 1) / s;
    const int total = std::max((out - 1) * s + (k - 1) * d + 1 - size, 0);
    before = total / 2;
    after = total - before;
}

struct dw_case {
    int h, w, c, kh, kw, sh, sw, dh, dw;
    bool same;
    clamp_range act;
};

}  // namespace

TEST_CASE("detector kernel tables: one per compiled instruction set, named as the hand network's") {
    for (const std::string& arch : available_arch_names()) {
        CAPTURE(arch);
        const kernel_table& k = select_kernels(arch.c_str());
        const detector_kernel_table& d = select_detector_kernels(k);
        CHECK(std::string(d.name) == k.name);
        CHECK(d.version == k.version);
        CHECK(bool(d.depthwise));
        CHECK(bool(d.pointwise));
        CHECK(bool(d.max_pool));
        CHECK(bool(d.resize_bilinear));
    }
}

TEST_CASE("depthwise convolution equals its scalar twin: 5x5 stride 1 and 2 with SAME padding, other kernels, dilation, odd sizes") {
    std::mt19937 rng(12);
    const clamp_range none{}, relu6{0.0f, 6.0f}, n1{-1.0f, 1.0f};
    const dw_case cases[] = {
        {96, 96, 32, 5, 5, 1, 1, 1, 1, true, none},  // the detectors' shapes
        {24, 24, 128, 5, 5, 2, 2, 1, 1, true, none},
        {6, 6, 256, 5, 5, 1, 1, 1, 1, true, none},
        {13, 11, 3, 5, 5, 1, 1, 1, 1, true, none},   // odd sizes, channels below a block
        {13, 11, 17, 5, 5, 2, 2, 1, 1, true, none},  // odd: padding [2, 2] on 13 at stride 2
        {7, 29, 40, 5, 5, 2, 2, 1, 1, true, relu6},
        {5, 5, 33, 3, 3, 1, 1, 1, 1, true, n1},
        {9, 14, 16, 3, 5, 1, 2, 1, 1, true, none},  // non-square kernel, different strides
        {15, 15, 20, 3, 3, 1, 1, 2, 2, true, none}, // dilated
        {11, 9, 24, 5, 5, 1, 1, 1, 1, false, none}, // VALID
        {1, 1, 7, 5, 5, 1, 1, 1, 1, true, none},    // one pixel
        {4, 3, 18, 1, 1, 1, 1, 1, 1, false, relu6},
    };
    contexts ctx;
    for (const dw_case& t : cases) {
        CAPTURE(t.h);
        CAPTURE(t.w);
        CAPTURE(t.c);
        CAPTURE(t.kh);
        CAPTURE(t.kw);
        CAPTURE(t.sh);
        CAPTURE(t.sw);
        CAPTURE(t.dh);
        window_pads p;
        if (t.same) {
            same_pads(t.h, t.kh, t.sh, t.dh, p.top, p.bottom);
            same_pads(t.w, t.kw, t.sw, t.dw, p.left, p.right);
        }
        const std::vector<float> filt = random_vector(std::size_t(t.kh) * t.kw * t.c, rng, -0.3f, 0.3f);
        const std::vector<float> bias = random_vector(std::size_t(t.c), rng);
        for (const std::string& arch : available_arch_names()) {
            CAPTURE(arch);
            depthwise_conv2d d = depthwise_conv2d::prepare(filt.data(), bias.data(), t.c, t.kh, t.kw, t.sh, t.sw, t.dh, t.dw, p, dsetup(arch));
            CHECK(std::string(d.kernels_name()) == arch);
            const int oh = d.out_height(t.h), ow = d.out_width(t.w), b = d.border_needed(t.h, t.w);
            if (t.same) {
                CHECK(oh == (t.h + t.sh - 1) / t.sh);
                CHECK(ow == (t.w + t.sw - 1) / t.sw);
            }
            feature_map in(t.h, t.w, t.c, b);
            fill_random(in, rng);
            feature_map ref(oh, ow, t.c, 0);
            depthwise_conv2d_reference(filt.data(), bias.data(), t.kh, t.kw, t.sh, t.sw, t.dh, t.dw, p.top, p.left, in, ref, t.act.lo, t.act.hi);
            feature_map o1 = poisoned(oh, ow, t.c, 2), o2 = poisoned(oh, ow, t.c, 2);
            d.run(in, o1, t.act, ctx.one.exec());
            d.run(in, o2, t.act, ctx.two.exec());
            CHECK(relative_error(o1, ref) <= 1e-6);
            CHECK(same_bits(o1, o2));
            CHECK(border_and_padding_zero(o1));
        }
    }
}

TEST_CASE("depthwise convolution refuses a border narrower than the padding, and wrong shapes") {
    const std::vector<float> filt(25 * 8, 0.1f);
    depthwise_conv2d d = depthwise_conv2d::prepare(filt.data(), nullptr, 8, 5, 5, 1, 1, 1, 1, window_pads{2, 2, 2, 2});
    contexts ctx;
    feature_map thin(8, 8, 8, 1), ok(8, 8, 8, 2), out(8, 8, 8, 0), wrong(7, 8, 8, 0), other(8, 8, 9, 0);
    CHECK_THROWS_WITH_AS(d.run(thin, out, {}, ctx.one.exec()), doctest::Contains("border"), error);
    CHECK_THROWS_AS(d.run(ok, wrong, {}, ctx.one.exec()), error);
    CHECK_THROWS_AS(d.run(ok, other, {}, ctx.one.exec()), error);
    CHECK_NOTHROW(d.run(ok, out, {}, ctx.one.exec()));
}

TEST_CASE("PReLU, PReLU + residual, add and clamp equal their scalar twins, in place too") {
    std::mt19937 rng(5);
    const int shapes[][3] = {{96, 96, 32}, {13, 7, 3}, {5, 9, 17}, {12, 12, 256}, {1, 1, 1}};
    const clamp_range acts[] = {{}, {0.0f, 6.0f}, {-1.0f, 1.0f}};
    contexts ctx;
    for (const auto& s : shapes)
        for (const clamp_range& act : acts) {
            CAPTURE(s[0]);
            CAPTURE(s[1]);
            CAPTURE(s[2]);
            CAPTURE(act.hi);
            const int h = s[0], w = s[1], c = s[2];
            feature_map x(h, w, c, 2), r(h, w, c, 0);
            fill_random(x, rng, -3, 3);
            fill_random(r, rng, -3, 3);
            const std::vector<float> alpha = random_vector(std::size_t(c), rng, -0.5f, 1.5f);
            for (const std::string& arch : available_arch_names()) {
                CAPTURE(arch);
                const detector_kernel_table& k = dtable(arch);
                const prelu_slopes p = prelu_slopes::prepare(alpha.data(), c, dsetup(arch));
                for (int with_res = 0; with_res < 2; ++with_res) {
                    CAPTURE(with_res);
                    feature_map ref(h, w, c, 0), o1 = poisoned(h, w, c, 1), o2 = poisoned(h, w, c, 1);
                    prelu_reference(x, alpha.data(), with_res ? &r : nullptr, ref, act.lo, act.hi);
                    p.run(x, with_res ? &r : nullptr, o1, act, ctx.one.exec());
                    p.run(x, with_res ? &r : nullptr, o2, act, ctx.two.exec());
                    CHECK(same_interior(o1, ref));  // no arithmetic to reorder: equal
                    CHECK(same_bits(o1, o2));
                    CHECK(border_and_padding_zero(o1));
                    feature_map in_place(h, w, c, 2);
                    std::memcpy(in_place.buf.data(), x.buf.data(), x.buf.size() * sizeof(float));
                    p.run(in_place, with_res ? &r : nullptr, in_place, act, ctx.two.exec());
                    CHECK(same_interior(in_place, ref));
                }
                feature_map ref(h, w, c, 0), o = poisoned(h, w, c, 0);
                add_clamped_reference(x, r, ref, act.lo, act.hi);
                add_clamped(k, x, r, o, act, ctx.two.exec());
                CHECK(same_interior(o, ref));
                CHECK(border_and_padding_zero(o));
                feature_map cl = poisoned(h, w, c, 3);
                clamp(k, x, cl, act, ctx.one.exec());
                for (int y = 0; y < h; ++y)
                    for (int xx = 0; xx < w; ++xx)
                        for (int ch = 0; ch < c; ++ch) CHECK_EQ(cl.at(ch, y, xx), std::min(std::max(x.at(ch, y, xx), act.lo), act.hi));
                CHECK(border_and_padding_zero(cl));
            }
        }
}

TEST_CASE("max-pool equals its scalar twin: 2x2 stride 2 on even and odd sizes (SAME), 3x3 windows, wider outputs zero-filled") {
    std::mt19937 rng(9);
    struct pool_case {
        int h, w, c, fh, fw, sh, sw, out_c;
        bool same;
    } cases[] = {{96, 96, 32, 2, 2, 2, 2, 64, true}, {24, 24, 128, 2, 2, 2, 2, 128, true}, {13, 7, 3, 2, 2, 2, 2, 3, true},
                 {13, 7, 3, 2, 2, 2, 2, 35, true},   {9, 11, 17, 3, 3, 2, 2, 17, true},   {9, 11, 17, 3, 3, 2, 2, 17, false},
                 {1, 1, 5, 2, 2, 2, 2, 5, true},     {8, 5, 20, 3, 2, 1, 2, 40, true}};
    contexts ctx;
    for (const pool_case& t : cases) {
        CAPTURE(t.h);
        CAPTURE(t.w);
        CAPTURE(t.c);
        CAPTURE(t.fh);
        CAPTURE(t.out_c);
        CAPTURE(t.same);
        window_pads p;
        if (t.same) {
            same_pads(t.h, t.fh, t.sh, 1, p.top, p.bottom);
            same_pads(t.w, t.fw, t.sw, 1, p.left, p.right);
        }
        const int oh = window_output(t.h, t.fh, t.sh, 1, p.top, p.bottom), ow = window_output(t.w, t.fw, t.sw, 1, p.left, p.right);
        feature_map in(t.h, t.w, t.c, 2);
        fill_random(in, rng, -5, 5);
        feature_map ref(oh, ow, t.out_c, 0);
        max_pool_reference(in, t.fh, t.fw, t.sh, t.sw, p.top, p.left, ref, -INFINITY, INFINITY);
        for (const std::string& arch : available_arch_names()) {
            CAPTURE(arch);
            feature_map o1 = poisoned(oh, ow, t.out_c, 2), o2 = poisoned(oh, ow, t.out_c, 0);
            max_pool(dtable(arch), in, t.fh, t.fw, t.sh, t.sw, p, o1, {}, ctx.one.exec());
            max_pool(dtable(arch), in, t.fh, t.fw, t.sh, t.sw, p, o2, {}, ctx.two.exec());
            CHECK(same_interior(o1, ref));
            CHECK(same_interior(o2, ref));
            CHECK(border_and_padding_zero(o1));
        }
    }
    // Every input value negative: padding (never a candidate) must not give 0.
    feature_map neg(5, 5, 4, 1);
    for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 5; ++x)
            for (int c = 0; c < 4; ++c) neg.pixel(y, x)[c] = -1.0f - float(y * 5 + x);
    feature_map o(3, 3, 4, 0);
    max_pool(dtable(available_arch_names().front()), neg, 2, 2, 2, 2, window_pads{0, 1, 0, 1}, o, {}, ctx.one.exec());
    CHECK(o.at(0, 2, 2) == -25.0f);  // the bottom-right window holds one real pixel
    CHECK(o.at(0, 0, 0) == -1.0f);
}

TEST_CASE("bilinear resize equals TFLite's formula: half-pixel centres, align corners, neither; up and down, odd sizes") {
    std::mt19937 rng(3);
    struct rs_case {
        int h, w, c, oh, ow;
        bool align, half;
    } cases[] = {{6, 6, 256, 12, 12, false, true}, {12, 12, 256, 24, 24, false, true}, {5, 7, 3, 13, 11, false, true},
                 {5, 7, 3, 13, 11, true, false},   {5, 7, 3, 13, 11, false, false},   {17, 9, 20, 4, 5, false, true},
                 {1, 1, 2, 3, 3, false, true},     {3, 4, 16, 1, 1, true, false}};
    contexts ctx;
    for (const rs_case& t : cases) {
        CAPTURE(t.h);
        CAPTURE(t.w);
        CAPTURE(t.oh);
        CAPTURE(t.ow);
        CAPTURE(t.align);
        CAPTURE(t.half);
        feature_map in(t.h, t.w, t.c, 2);
        fill_random(in, rng);
        feature_map ref(t.oh, t.ow, t.c, 0);
        resize_bilinear_reference(in, ref, t.align, t.half);
        for (const std::string& arch : available_arch_names()) {
            CAPTURE(arch);
            feature_map o1 = poisoned(t.oh, t.ow, t.c, 2), o2 = poisoned(t.oh, t.ow, t.c, 1);
            resize_bilinear(dtable(arch), in, o1, t.align, t.half, ctx.one.exec());
            resize_bilinear(dtable(arch), in, o2, t.align, t.half, ctx.two.exec());
            CHECK(relative_error(o1, ref) <= 1e-6);
            CHECK(same_interior(o1, o2));
            CHECK(border_and_padding_zero(o1));
        }
    }
    // 6 -> 12 with half-pixel centres: output 0 is input 0 (the source -0.25 clamps), output 1
    // is 0.75 * x0 + 0.25 * x1 (TFLite's rule; PyTorch's align_corners=False agrees).
    feature_map in(1, 6, 1, 0), out(1, 12, 1, 0);
    for (int x = 0; x < 6; ++x) in.pixel(0, x)[0] = float(x * x);
    resize_bilinear(dtable(available_arch_names().front()), in, out, false, true, ctx.one.exec());
    CHECK(out.at(0, 0, 0) == doctest::Approx(0.0f));
    CHECK(out.at(0, 0, 1) == doctest::Approx(0.25f));
    CHECK(out.at(0, 0, 2) == doctest::Approx(0.75f));
    CHECK(out.at(0, 0, 11) == doctest::Approx(25.0f));
}

TEST_CASE("reshape, pad, concatenation and the shifted copy equal their index-formula twins") {
    std::mt19937 rng(21);
    feature_map m(5, 7, 19, 2);
    fill_random(m, rng);
    // map -> dense is RESHAPE's row-major NHWC order; dense -> map puts it back.
    std::vector<float> dense(5 * 7 * 19);
    map_to_dense(m, dense.data());
    CHECK(dense == map_to_dense_reference(m));
    feature_map back = poisoned(5, 7, 19, 1);
    dense_to_map(dense.data(), back);
    CHECK(same_interior(back, m));
    CHECK(border_and_padding_zero(back));
    // The shift: out(y - 1, x - 2) = in(y, x), the vacated interior zero.
    feature_map sh = poisoned(5, 7, 19, 2);
    dense_to_map(dense.data(), sh, 1, 2);
    feature_map sc(5, 7, 19, 2);
    shifted_copy(m, sc, 1, 2);
    for (int y = -1; y < 5; ++y)
        for (int x = -2; x < 7; ++x)
            for (int c = 0; c < 19; ++c) {
                const float want = y + 1 < 5 && x + 2 < 7 ? m.at(c, y + 1, x + 2) : 0.0f;
                CHECK_EQ(sh.pixel(y, x)[c], want);
                CHECK_EQ(sc.pixel(y, x)[c], want);
            }
    // PAD on rows, columns and channels (the detectors pad channels only).
    for (auto pads : {std::array<int, 6>{0, 0, 0, 0, 0, 13}, std::array<int, 6>{1, 2, 3, 0, 4, 5}, std::array<int, 6>{0, 1, 0, 1, 0, 0}}) {
        feature_map out = poisoned(5 + pads[0] + pads[1], 7 + pads[2] + pads[3], 19 + pads[4] + pads[5], 1), ref(out.height, out.width, out.channels, 0);
        pad_map(m, pads[0], pads[2], pads[4], out);
        pad_reference(m, pads[0], pads[2], pads[4], ref);
        CHECK(same_interior(out, ref));
        CHECK(border_and_padding_zero(out));
    }
    // Concatenation of maps on rows, columns, channels; of dense tensors on every axis.
    feature_map a(3, 7, 19, 0), b(2, 7, 19, 1);
    fill_random(a, rng);
    fill_random(b, rng);
    feature_map rows = poisoned(5, 7, 19, 0);
    concat_maps({&a, &b}, 1, rows);
    for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 7; ++x)
            for (int c = 0; c < 19; ++c) CHECK_EQ(rows.at(c, y, x), y < 3 ? a.at(c, y, x) : b.at(c, y - 3, x));
    feature_map p(3, 7, 5, 0), q(3, 7, 30, 0);
    fill_random(p, rng);
    fill_random(q, rng);
    feature_map chans = poisoned(3, 7, 35, 0);
    concat_maps({&p, &q}, 3, chans);
    CHECK(border_and_padding_zero(chans));
    for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 7; ++x)
            for (int c = 0; c < 35; ++c) CHECK_EQ(chans.at(c, y, x), c < 5 ? p.at(c, y, x) : q.at(c - 5, y, x));
    feature_map u(3, 2, 5, 0), cols = poisoned(3, 9, 5, 0);
    fill_random(u, rng);
    concat_maps({&u, &p}, 2, cols);
    for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 9; ++x)
            for (int c = 0; c < 5; ++c) CHECK_EQ(cols.at(c, y, x), x < 2 ? u.at(c, y, x) : p.at(c, y, x - 2));
    for (int axis = 0; axis < 3; ++axis) {
        CAPTURE(axis);
        std::vector<std::vector<int>> shapes = {{2, 3, 4}, {2, 3, 4}, {2, 3, 4}};
        shapes[1][std::size_t(axis)] = 5;
        shapes[2][std::size_t(axis)] = 1;
        std::vector<std::vector<float>> ins;
        std::vector<const float*> ptrs;
        std::size_t total = 0;
        for (const auto& s : shapes) {
            ins.push_back(random_vector(std::size_t(s[0] * s[1] * s[2]), rng));
            total += ins.back().size();
        }
        for (const auto& v : ins) ptrs.push_back(v.data());
        std::vector<float> out(total);
        concat_dense(ptrs, shapes, axis, out.data());
        CHECK(out == concat_dense_reference(ins, shapes, axis));
    }
    // The detectors' last op: [1, 1152, 18] and [1, 864, 18] on axis 1.
    std::vector<std::vector<int>> shapes = {{1, 1152, 18}, {1, 864, 18}};
    std::vector<std::vector<float>> ins = {random_vector(1152 * 18, rng), random_vector(864 * 18, rng)};
    std::vector<float> out(2016 * 18);
    concat_dense({ins[0].data(), ins[1].data()}, shapes, 1, out.data());
    CHECK(out == concat_dense_reference(ins, shapes, 1));
}

TEST_CASE("TFLite's asymmetric SAME padding as conv2d on a shifted input: the 5x5 stride-2 stem, odd sizes") {
    // conv2d pads symmetrically (P); TFLite's SAME puts the odd pixel after (top/left t,
    // bottom/right P). Storing the input shifted by P - t into its border makes conv2d read
    // exactly TFLite's taps: checked here against the asymmetric definition directly.
    std::mt19937 rng(77);
    struct stem_case {
        int h, w, cin, cout, k, s;
    } cases[] = {{192, 192, 3, 32, 5, 2}, {17, 13, 3, 24, 5, 2}, {9, 12, 5, 16, 3, 2}, {12, 9, 3, 8, 3, 2}, {11, 11, 3, 8, 5, 2}};
    contexts ctx;
    for (const stem_case& t : cases) {
        CAPTURE(t.h);
        CAPTURE(t.w);
        CAPTURE(t.k);
        CAPTURE(t.s);
        int top, bottom, left, right;
        same_pads(t.h, t.k, t.s, 1, top, bottom);
        same_pads(t.w, t.k, t.s, 1, left, right);
        const int P = std::max(bottom, right), oh = (t.h + t.s - 1) / t.s, ow = (t.w + t.s - 1) / t.s;
        REQUIRE(P >= top);
        REQUIRE(P >= left);
        REQUIRE(window_output(t.h, t.k, t.s, 1, P, P) == oh);
        REQUIRE(window_output(t.w, t.k, t.s, 1, P, P) == ow);
        const std::vector<float> wt = random_vector(std::size_t(t.cout) * t.cin * t.k * t.k, rng, -0.2f, 0.2f);  // OIHW
        const std::vector<float> bias = random_vector(std::size_t(t.cout), rng);
        feature_map in(t.h, t.w, t.cin, 0);
        fill_random(in, rng);
        std::vector<float> dense(std::size_t(t.h) * t.w * t.cin);
        map_to_dense(in, dense.data());
        feature_map ref(oh, ow, t.cout, 0);
        for (int oy = 0; oy < oh; ++oy)
            for (int ox = 0; ox < ow; ++ox)
                for (int o = 0; o < t.cout; ++o) {
                    double s = bias[std::size_t(o)];
                    for (int i = 0; i < t.cin; ++i)
                        for (int ky = 0; ky < t.k; ++ky)
                            for (int kx = 0; kx < t.k; ++kx) {
                                const int iy = oy * t.s + ky - top, ix = ox * t.s + kx - left;
                                if (iy >= 0 && ix >= 0 && iy < t.h && ix < t.w)
                                    s += double(wt[((std::size_t(o) * t.cin + i) * t.k + ky) * t.k + kx]) * in.at(i, iy, ix);
                            }
                    ref.pixel(oy, ox)[o] = float(s);
                }
        for (const std::string& arch : available_arch_names()) {
            CAPTURE(arch);
            conv2d c = conv2d::prepare(wt.data(), bias.data(), t.cout, t.cin, t.k, t.s, P, nullptr, nullptr, conv_algorithm::direct,
                                       layer_setup{&select_kernels(arch.c_str()), nullptr});
            feature_map shifted(t.h, t.w, t.cin, P);
            dense_to_map(dense.data(), shifted, P - top, P - left);
            feature_map out(oh, ow, t.cout, 0);
            c.run(shifted, out, false, nullptr, ctx.two.exec());
            CHECK(relative_error(out, ref) <= 1e-5);
        }
    }
}

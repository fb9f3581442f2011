// tests/test_kernels.cpp: every SIMD kernel against its scalar twin (reference.hpp) on odd
// shapes and every compiled instruction set, thread-count independence (bit-identical
// results), untouched borders/padding, dispatch, and precondition checks.
#include <doctest/doctest.h>

#include <handgraph/context.hpp>
#include <handgraph/kernels/kernels.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace handgraph;
using namespace handgraph::kernels;

namespace {

std::vector<float> random_vector(std::size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

void fill_random(feature_map& m, std::mt19937& rng) {
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (int y = 0; y < m.height; ++y)
        for (int x = 0; x < m.width; ++x)
            for (int c = 0; c < m.channels; ++c) m.pixel(y, x)[c] = d(rng);
}

// Border pixels and padding channels of m are all zero.
bool border_and_padding_zero(const feature_map& m) {
    for (int y = -m.border; y < m.height + m.border; ++y)
        for (int x = -m.border; x < m.width + m.border; ++x) {
            const bool inside = y >= 0 && x >= 0 && y < m.height && x < m.width;
            for (int c = inside ? m.channels : 0; c < m.cpad; ++c)
                if (m.pixel(y, x)[c] != 0.0f) return false;
        }
    return true;
}

// max |a - b| / max |b| over the interior's logical channels (infinite if any is NaN).
double relative_error(const feature_map& a, const feature_map& b) {
    double err = 0, mag = 0;
    for (int y = 0; y < b.height; ++y)
        for (int x = 0; x < b.width; ++x)
            for (int c = 0; c < b.channels; ++c) {
                const double d = std::fabs(double(a.at(c, y, x)) - double(b.at(c, y, x)));
                if (std::isnan(d)) return INFINITY;  // also: a value the kernel never wrote
                err = std::max(err, d);
                mag = std::max(mag, double(std::fabs(b.at(c, y, x))));
            }
    return mag > 0 ? err / mag : err;
}

// Contexts of 1 and 2 threads (their pools and workspaces) for the kernels' exec.
struct contexts {
    handgraph::detail::context_state one{1}, two{2};
};

// A layer prepared for instruction set `arch`.
layer_setup for_arch(const std::string& arch) { return layer_setup{&select_kernels(arch.c_str()), nullptr}; }
const kernel_table& table(const std::string& arch) { return select_kernels(arch.c_str()); }

// The algorithm a 3x3 stride-1 pad-1 layer can take; the direct kernel otherwise.
conv_algorithm fastest(int k, int stride, int pad) {
    return k == 3 && stride == 1 && pad == 1 ? conv_algorithm::winograd_f4x4 : conv_algorithm::direct;
}

bool same_bits(const feature_map& a, const feature_map& b) {
    return a.buf.size() == b.buf.size() && std::memcmp(a.buf.data(), b.buf.data(), a.buf.size() * sizeof(float)) == 0;
}

struct conv_case {
    int cin, cout, k, stride, pad, h, w, in_border, out_border;
    bool affine, relu, residual;
};

std::string describe(const conv_case& c) {
    return "cin " + std::to_string(c.cin) + " cout " + std::to_string(c.cout) + " k " + std::to_string(c.k) + " s " +
           std::to_string(c.stride) + " p " + std::to_string(c.pad) + " in " + std::to_string(c.h) + "x" +
           std::to_string(c.w) + " borders " + std::to_string(c.in_border) + "/" + std::to_string(c.out_border) +
           (c.affine ? " affine" : "") + (c.relu ? " relu" : "") + (c.residual ? " residual" : "");
}

// Runs one case through conv2d::run (and run_direct), compares with the reference.
void check_conv(const conv_case& c, std::mt19937& rng, double tol) {
    CAPTURE(describe(c));
    const float fan = 1.0f / std::sqrt(float(c.cin * c.k * c.k));
    std::vector<float> w = random_vector(std::size_t(c.cout) * c.cin * c.k * c.k, rng, -fan, fan);
    std::vector<float> b = random_vector(c.cout, rng, -0.5f, 0.5f);
    std::vector<float> sc = random_vector(c.cout, rng, 0.5f, 1.5f), sh = random_vector(c.cout, rng, -0.5f, 0.5f);
    feature_map in(c.h, c.w, c.cin, c.in_border);
    fill_random(in, rng);
    const int oh = (c.h + 2 * c.pad - c.k) / c.stride + 1, ow = (c.w + 2 * c.pad - c.k) / c.stride + 1;
    feature_map res(oh, ow, c.cout, 1);
    fill_random(res, rng);
    const float* s = c.affine ? sc.data() : nullptr;
    const float* t = c.affine ? sh.data() : nullptr;
    feature_map ref(oh, ow, c.cout, c.out_border);
    conv2d_reference(w.data(), b.data(), c.cout, c.cin, c.k, c.stride, c.pad, s, t, in, ref, c.relu,
                     c.residual ? &res : nullptr);
    contexts ctx;
    for (const std::string& arch : available_arch_names())
    for (int method = 0; method < 4; ++method) {  // 0: run() as prepared, 1: run_direct, 2: direct_double, 3: F(2x2)
        CAPTURE(arch);
        CAPTURE(method);
        if (method == 3 && fastest(c.k, c.stride, c.pad) == conv_algorithm::direct) continue;  // not a Winograd shape
        conv2d conv = conv2d::prepare(w.data(), b.data(), c.cout, c.cin, c.k, c.stride, c.pad, s, t,
                                      method == 2   ? conv_algorithm::direct_double
                                      : method == 3 ? conv_algorithm::winograd_f2x2
                                                    : fastest(c.k, c.stride, c.pad),
                                      for_arch(arch));
        CHECK(conv.cin() == c.cin);
        CHECK(conv.cout() == c.cout);
        CHECK(conv.kernel() == c.k);
        CHECK(conv.stride() == c.stride);
        CHECK(conv.pad() == c.pad);
        CHECK(conv.kernels_name() == arch);
        feature_map o1(oh, ow, c.cout, c.out_border), o2(oh, ow, c.cout, c.out_border);
        if (method != 1) {
            conv.run(in, o1, c.relu, c.residual ? &res : nullptr, ctx.one.exec());
            conv.run(in, o2, c.relu, c.residual ? &res : nullptr, ctx.two.exec());
        } else {
            conv.run_direct(in, o1, c.relu, c.residual ? &res : nullptr, ctx.one.exec());
            conv.run_direct(in, o2, c.relu, c.residual ? &res : nullptr, ctx.two.exec());
        }
        const double err = relative_error(o1, ref);
        // direct_double: sums in double, one rounding to float at the end.
        CHECK(err <= (method == 0 && conv.algorithm() == conv_algorithm::winograd_f4x4 ? 1e-4 : method == 2 ? 1e-6 : tol));
        if (method == 2) CHECK(conv.algorithm() == conv_algorithm::direct_double);
        if (method == 3) CHECK(conv.algorithm() == conv_algorithm::winograd_f2x2);
        CHECK(same_bits(o1, o2));
        CHECK(border_and_padding_zero(o1));
    }
}

}  // namespace

TEST_CASE("dispatch picks an instruction set") {
    const std::string name = select_kernels().name;
    MESSAGE("kernels run with: " << name);
    CHECK(!name.empty());
    const std::vector<std::string> names = available_arch_names();
    REQUIRE(!names.empty());
    CHECK(names.front() == name);
    for (const std::string& n : names) {
        MESSAGE("available: " << n);
        CHECK(select_kernels(n.c_str()).name == n);
        CHECK(&select_kernels(n.c_str()) == &select_kernels(n.c_str()));  // one table per set
    }
    CHECK_THROWS_AS(select_kernels("no-such-arch"), handgraph::error);
    // a layer keeps the table it was prepared with
    std::vector<float> w(16 * 16, 0.5f);
    conv2d c = conv2d::prepare(w.data(), nullptr, 16, 16, 1, 1, 0, nullptr, nullptr, conv_algorithm::direct, for_arch(names.back()));
    CHECK(c.kernels_name() == names.back());
#if HANDGRAPH_KERNELS_DISPATCH
    const auto best = xsimd::available_architectures();
    if (best.avx512f && best.avx512cd && best.avx512dq && best.avx512bw) CHECK(name == std::string("avx512bw"));
    if (best.fma3_avx2) CHECK(std::find(names.begin(), names.end(), "fma3+avx2") != names.end());
    CHECK(names.back() == "sse2");
#endif
}

TEST_CASE("conv2d matches the reference on odd shapes") {
    std::mt19937 rng(1234);
    const conv_case cases[] = {
        // cin, cout, k, s, p, h, w, in border, out border, affine, relu, residual
        {3, 64, 7, 2, 3, 37, 29, 3, 0, true, true, false},   // first layer, small cin
        {3, 21, 7, 2, 3, 20, 21, 4, 1, false, false, false},
        {4, 19, 3, 1, 1, 10, 13, 1, 1, true, true, true},    // few channels (double rows), residual
        {1, 16, 5, 2, 2, 11, 9, 2, 0, false, false, true},
        {21, 37, 1, 1, 0, 13, 27, 0, 2, false, false, true},  // cin with padding channels
        {37, 21, 1, 1, 0, 9, 31, 1, 0, true, true, true},     // relu then residual
        {64, 64, 1, 1, 0, 5, 16, 0, 0, true, true, false},
        {16, 48, 1, 1, 0, 4, 4, 2, 1, false, true, false},
        {37, 37, 3, 1, 1, 11, 23, 1, 1, true, true, false},
        {21, 3, 3, 1, 1, 7, 5, 2, 0, false, false, true},
        {32, 64, 3, 1, 1, 16, 16, 1, 2, false, false, true},
        {19, 33, 3, 2, 1, 15, 14, 1, 0, false, true, false},  // stride 2, odd size
        {5, 7, 5, 1, 2, 9, 13, 2, 1, true, false, false},
        {8, 17, 3, 1, 0, 6, 19, 0, 0, false, false, false},   // no padding: output smaller
        {128, 128, 3, 1, 1, 8, 8, 1, 0, true, true, true},
        {256, 21, 1, 1, 0, 8, 12, 0, 0, false, false, false},
        {21, 256, 1, 1, 0, 8, 12, 0, 1, false, false, true},
    };
    for (const conv_case& c : cases) check_conv(c, rng, 1e-5);
}

TEST_CASE("conv2d: Winograd F(4x4,3x3) and F(2x2,3x3) match the reference") {
    std::mt19937 rng(321);
    struct wcase { int cin, cout, h, w, in_border, out_border; bool affine, relu, residual; };
    const wcase cases[] = {
        {37, 37, 11, 23, 1, 1, true, true, false},  // partial tiles on both edges
        {3, 21, 5, 7, 2, 0, false, false, true},
        {21, 40, 1, 1, 1, 0, true, false, true},    // one partial tile
        {64, 64, 33, 30, 1, 2, false, true, true},
        {16, 16, 97, 13, 1, 0, false, false, false}, // chunk tails
        {32, 48, 81, 79, 1, 1, true, true, true},    // 420 tiles: 24-tile chunks
        {128, 128, 4, 4, 1, 0, true, true, false},
        {128, 128, 64, 64, 1, 1, true, false, true}, // the network's main layer
    };
    double worst[5] = {};  // by tile side
    for (const wcase& c : cases) {
        CAPTURE(c.cin);
        CAPTURE(c.cout);
        CAPTURE(c.h);
        CAPTURE(c.w);
        const float fan = 1.0f / std::sqrt(float(c.cin * 9));
        std::vector<float> w = random_vector(std::size_t(c.cout) * c.cin * 9, rng, -fan, fan);
        std::vector<float> b = random_vector(c.cout, rng, -0.5f, 0.5f);
        std::vector<float> sc = random_vector(c.cout, rng, 0.5f, 1.5f), sh = random_vector(c.cout, rng, -0.5f, 0.5f);
        const float* s = c.affine ? sc.data() : nullptr;
        const float* t = c.affine ? sh.data() : nullptr;
        feature_map in(c.h, c.w, c.cin, c.in_border), res(c.h, c.w, c.cout, 0), ref(c.h, c.w, c.cout, 0);
        fill_random(in, rng);
        fill_random(res, rng);
        const feature_map* r = c.residual ? &res : nullptr;
        conv2d_reference(w.data(), b.data(), c.cout, c.cin, 3, 1, 1, s, t, in, ref, c.relu, r);
        contexts ctx;
        for (const std::string& arch : available_arch_names())
            for (int m : {4, 2}) {
                CAPTURE(arch);
                CAPTURE(m);
                conv2d conv = conv2d::prepare(w.data(), b.data(), c.cout, c.cin, 3, 1, 1, s, t,
                                              m == 4 ? conv_algorithm::winograd_f4x4 : conv_algorithm::winograd_f2x2, for_arch(arch));
                CHECK(winograd_tile_side(conv.algorithm()) == m);
                feature_map o1(c.h, c.w, c.cout, c.out_border), o2(c.h, c.w, c.cout, c.out_border), o3(c.h, c.w, c.cout, c.out_border);
                conv.run(in, o1, c.relu, r, ctx.one.exec());
                conv.run_winograd(in, o2, c.relu, r, ctx.two.exec());
                conv.run_winograd(in, o3, c.relu, r, exec{}, m);  // no context: scratch for the call
                CHECK(same_bits(o1, o3));
                const double err = relative_error(o1, ref);
                worst[m] = std::max(worst[m], err);
                CHECK(err <= 1e-5);
                CHECK(same_bits(o1, o2));
                CHECK(border_and_padding_zero(o1));
            }
    }
    MESSAGE("Winograd F(4x4,3x3): max |err| / max |ref| = " << worst[4]);
    MESSAGE("Winograd F(2x2,3x3): max |err| / max |ref| = " << worst[2]);
    // F(2x2)'s transforms round less than F(4x4)'s (the reason it may run where F(4x4) may not).
    CHECK(worst[2] < worst[4]);
    {
        // conv_algorithm::direct: a 3x3 layer that runs the direct kernel; exec::exact makes
        // a Winograd layer run the direct kernel (bit-identical to run_direct); run() of a
        // Winograd layer is run_winograd.
        std::vector<float> w3 = random_vector(std::size_t(24) * 20 * 9, rng, -0.2f, 0.2f), b3 = random_vector(24, rng);
        conv2d direct = conv2d::prepare(w3.data(), b3.data(), 24, 20, 3, 1, 1, nullptr, nullptr, conv_algorithm::direct);
        conv2d wino = conv2d::prepare(w3.data(), b3.data(), 24, 20, 3, 1, 1, nullptr, nullptr, conv_algorithm::winograd_f4x4);
        feature_map in3(12, 12, 20, 1), o1(12, 12, 24, 0), o2(12, 12, 24, 0), o3(12, 12, 24, 0), o4(12, 12, 24, 0), o5(12, 12, 24, 0);
        fill_random(in3, rng);
        CHECK(direct.algorithm() == conv_algorithm::direct);
        CHECK(wino.algorithm() == conv_algorithm::winograd_f4x4);
        handgraph::detail::context_state two(2);
        direct.run(in3, o1, true, nullptr, two.exec());
        wino.run_direct(in3, o2, true, nullptr, two.exec());
        wino.run(in3, o3, true, nullptr, two.exec(true));  // exact
        CHECK(same_bits(o1, o2));
        CHECK(same_bits(o1, o3));
        wino.run(in3, o4, true, nullptr, two.exec());
        direct.run_winograd(in3, o5, true, nullptr, two.exec());
        CHECK(same_bits(o4, o5));
        CHECK_FALSE(same_bits(o1, o4));  // the two algorithms round differently
        // The same for F(2x2, 3x3); run_winograd picks the tile side by the layer's algorithm
        // unless told.
        conv2d wino2 = conv2d::prepare(w3.data(), b3.data(), 24, 20, 3, 1, 1, nullptr, nullptr, conv_algorithm::winograd_f2x2);
        CHECK(wino2.algorithm() == conv_algorithm::winograd_f2x2);
        feature_map o6(12, 12, 24, 0), o7(12, 12, 24, 0), o8(12, 12, 24, 0), o9(12, 12, 24, 0);
        wino2.run(in3, o6, true, nullptr, two.exec(true));  // exact
        CHECK(same_bits(o1, o6));
        wino2.run(in3, o7, true, nullptr, two.exec());
        direct.run_winograd(in3, o8, true, nullptr, two.exec(), 2);
        wino2.run_winograd(in3, o9, true, nullptr, two.exec(), 4);
        CHECK(same_bits(o7, o8));
        CHECK(same_bits(o4, o9));
        CHECK_FALSE(same_bits(o1, o7));
        CHECK_FALSE(same_bits(o4, o7));
        CHECK_THROWS_AS(wino2.run_winograd(in3, o9, true, nullptr, two.exec(), 3), handgraph::error);  // no F(3x3, 3x3)
    }
    std::vector<float> w(16 * 16 * 9, 0.1f);
    conv2d strided = conv2d::prepare(w.data(), nullptr, 16, 16, 3, 2, 1, nullptr, nullptr, conv_algorithm::direct);
    feature_map in(8, 8, 16, 1), out(4, 4, 16, 0);
    CHECK_THROWS_AS(strided.run_winograd(in, out, false, nullptr, exec{}), handgraph::error);
    CHECK_THROWS_AS(conv2d::prepare(w.data(), nullptr, 16, 16, 3, 2, 1, nullptr, nullptr, conv_algorithm::winograd_f4x4), handgraph::error);
    CHECK_THROWS_AS(conv2d::prepare(w.data(), nullptr, 16, 16, 3, 2, 1, nullptr, nullptr, conv_algorithm::winograd_f2x2), handgraph::error);
    CHECK_THROWS_AS(conv2d::prepare(w.data(), nullptr, 16, 16, 1, 1, 0, nullptr, nullptr, conv_algorithm::winograd_f2x2), handgraph::error);
}

// reset_output leaves the interior unspecified: every kernel must write all of it, padding
// channels included (as zeros). Outputs start full of NaN here.
TEST_CASE("kernels write every interior value of their output (reset_output is enough)") {
    std::mt19937 rng(77);
    auto garbage = [](feature_map& m, int h, int w, int c, int b) {
        m.reset(h, w, c, b);
        for (std::size_t i = 0; i < m.buf.size(); ++i) m.buf[i] = std::nanf("");
        m.reset_output(h, w, c, b);  // same size: keeps the NaN interior, zeroes the border
    };
    handgraph::detail::context_state two(2);
    const exec ex = two.exec();
    for (const std::string& arch : available_arch_names()) {
        CAPTURE(arch);
        const kernel_table& kt = table(arch);
        feature_map in(13, 11, 21, 1), out, ref(13, 11, 37, 0);
        fill_random(in, rng);
        for (int k : {1, 3}) {
            std::vector<float> w = random_vector(std::size_t(37) * 21 * k * k, rng, -0.2f, 0.2f), b = random_vector(37, rng);
            conv2d conv = conv2d::prepare(w.data(), b.data(), 37, 21, k, 1, k / 2, nullptr, nullptr, fastest(k, 1, k / 2), for_arch(arch));
            conv2d_reference(w.data(), b.data(), 37, 21, k, 1, k / 2, nullptr, nullptr, in, ref, true, nullptr);
            garbage(out, 13, 11, 37, 2);
            CHECK(border_and_padding_zero(out) == false);
            conv.run_direct(in, out, true, nullptr, ex);
            CHECK(relative_error(out, ref) <= 1e-5);
            CHECK(border_and_padding_zero(out));
            if (k == 3)
                for (int m : {4, 2}) {
                    CAPTURE(m);
                    garbage(out, 13, 11, 37, 1);
                    conv.run_winograd(in, out, true, nullptr, ex, m);
                    CHECK(relative_error(out, ref) <= 1e-5);
                    CHECK(border_and_padding_zero(out));
                }
        }
        std::vector<float> sc = random_vector(21, rng), sh = random_vector(21, rng);
        feature_map eref(13, 11, 21, 0);
        scale_shift_relu_reference(in, sc.data(), sh.data(), eref);
        garbage(out, 13, 11, 21, 1);
        scale_shift_relu(kt, in, sc.data(), sh.data(), out, ex);
        CHECK(relative_error(out, eref) <= 1e-6);
        CHECK(border_and_padding_zero(out));
        add_reference(in, in, eref);
        garbage(out, 13, 11, 21, 1);
        add(kt, in, in, out, ex);
        CHECK(relative_error(out, eref) == 0);
        CHECK(border_and_padding_zero(out));
        feature_map pref(6, 5, 21, 0);
        maxpool2x2_reference(in, pref);
        garbage(out, 6, 5, 21, 1);
        maxpool2x2(kt, in, out, ex);
        CHECK(relative_error(out, pref) == 0);
        CHECK(border_and_padding_zero(out));
        feature_map up(12, 10, 21, 0), uref(12, 10, 21, 0);
        fill_random(up, rng);
        upsample2x_add_reference(pref, up, uref);
        garbage(out, 12, 10, 21, 2);
        upsample2x_add(kt, pref, up, out, ex);
        CHECK(relative_error(out, uref) == 0);
        CHECK(border_and_padding_zero(out));
    }
}

TEST_CASE("conv2d: one pixel wide and one channel") {
    std::mt19937 rng(7);
    check_conv({1, 1, 1, 1, 0, 1, 1, 0, 0, false, true, true}, rng, 1e-5);
    check_conv({1, 1, 3, 1, 1, 1, 1, 1, 0, false, false, false}, rng, 1e-5);
    check_conv({2, 17, 3, 1, 1, 1, 40, 1, 0, true, false, true}, rng, 1e-5);
}

TEST_CASE("conv2d: residual may be the output itself") {
    std::mt19937 rng(11);
    std::vector<float> w = random_vector(37 * 21, rng), b = random_vector(37, rng);
    feature_map in(9, 13, 21, 0), out(9, 13, 37, 1);
    fill_random(in, rng);
    fill_random(out, rng);
    feature_map ref(9, 13, 37, 0), res(9, 13, 37, 0);
    for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 13; ++x) std::memcpy(res.pixel(y, x), out.pixel(y, x), sizeof(float) * 48);
    handgraph::detail::context_state two(2);
    conv2d conv = conv2d::prepare(w.data(), b.data(), 37, 21, 1, 1, 0, nullptr, nullptr, conv_algorithm::direct);
    conv2d_reference(w.data(), b.data(), 37, 21, 1, 1, 0, nullptr, nullptr, in, ref, false, &res);
    conv.run(in, out, false, &out, two.exec());
    CHECK(relative_error(out, ref) <= 1e-5);

    // the same through the Winograd kernel (3x3)
    std::vector<float> w3 = random_vector(37 * 37 * 9, rng, -0.1f, 0.1f);
    feature_map in3(9, 13, 37, 1), out3(9, 13, 37, 1), res3(9, 13, 37, 0), ref3(9, 13, 37, 0);
    fill_random(in3, rng);
    fill_random(out3, rng);
    for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 13; ++x) std::memcpy(res3.pixel(y, x), out3.pixel(y, x), sizeof(float) * 48);
    conv2d conv3 = conv2d::prepare(w3.data(), b.data(), 37, 37, 3, 1, 1, nullptr, nullptr, conv_algorithm::winograd_f4x4);
    conv2d_reference(w3.data(), b.data(), 37, 37, 3, 1, 1, nullptr, nullptr, in3, ref3, true, &res3);
    feature_map out2(9, 13, 37, 1);  // the same start for F(2x2)
    std::memcpy(out2.buf.data(), out3.buf.data(), out3.buf.size() * sizeof(float));
    conv3.run_winograd(in3, out3, true, &out3, two.exec());
    CHECK(relative_error(out3, ref3) <= 1e-5);
    conv3.run_winograd(in3, out2, true, &out2, two.exec(), 2);
    CHECK(relative_error(out2, ref3) <= 1e-5);
}

TEST_CASE("conv2d preconditions") {
    std::vector<float> w(16 * 8 * 9, 0.1f), b(16, 0.0f);
    conv2d conv = conv2d::prepare(w.data(), b.data(), 16, 8, 3, 1, 1, nullptr, nullptr, conv_algorithm::winograd_f4x4);
    feature_map in(10, 10, 8, 1), out(10, 10, 16, 0);
    CHECK_NOTHROW(conv.run(in, out, false, nullptr, exec{}));
    feature_map in_c(10, 10, 9, 1), in_b(10, 10, 8, 0), out_s(9, 10, 16, 0), out_c(10, 10, 17, 0);
    CHECK_THROWS_AS(conv.run(in_c, out, false, nullptr, exec{}), handgraph::error);
    CHECK_THROWS_AS(conv.run(in_b, out, false, nullptr, exec{}), handgraph::error);
    CHECK_THROWS_AS(conv.run(in, out_s, false, nullptr, exec{}), handgraph::error);
    CHECK_THROWS_AS(conv.run(in, out_c, false, nullptr, exec{}), handgraph::error);
    feature_map res_bad(10, 9, 16, 0);
    CHECK_THROWS_AS(conv.run(in, out, false, &res_bad, exec{}), handgraph::error);
    feature_map same(10, 10, 16, 1);
    conv2d square = conv2d::prepare(std::vector<float>(16 * 16 * 9).data(), nullptr, 16, 16, 3, 1, 1, nullptr, nullptr, conv_algorithm::direct);
    CHECK_THROWS_AS(square.run(same, same, false, nullptr, exec{}), handgraph::error);
    feature_map empty;
    CHECK_THROWS_AS(conv.run(empty, out, false, nullptr, exec{}), handgraph::error);
    const auto d = conv_algorithm::direct;
    CHECK_THROWS_AS(conv2d::prepare(nullptr, b.data(), 16, 8, 3, 1, 1, nullptr, nullptr, d), handgraph::error);
    CHECK_THROWS_AS(conv2d::prepare(w.data(), b.data(), 16, 8, 3, 0, 1, nullptr, nullptr, d), handgraph::error);
    CHECK_THROWS_AS(conv2d::prepare(w.data(), b.data(), 0, 8, 3, 1, 1, nullptr, nullptr, d), handgraph::error);
    CHECK_THROWS_AS(conv2d::prepare(w.data(), b.data(), 16, 8, 3, 1, -1, nullptr, nullptr, d), handgraph::error);
}

TEST_CASE("scale_shift_relu, add, maxpool2x2, upsample2x_add match the reference") {
    std::mt19937 rng(99);
    contexts ctx;
    const exec one = ctx.one.exec(), two = ctx.two.exec();
    for (const std::string& arch : available_arch_names())
    for (int channels : {3, 21, 37, 64}) {
        for (int border : {0, 1, 2}) {
            CAPTURE(arch);
            const kernel_table& kt = table(arch);
            CAPTURE(channels);
            CAPTURE(border);
            const int h = 13, w = 11;
            feature_map a(h, w, channels, border), b(h, w, channels, 1 - border / 2);
            fill_random(a, rng);
            fill_random(b, rng);
            std::vector<float> sc = random_vector(channels, rng, 0.5f, 2.0f), sh = random_vector(channels, rng);

            feature_map ref(h, w, channels, 0), o1(h, w, channels, 2 - border), o2(h, w, channels, 2 - border);
            scale_shift_relu_reference(a, sc.data(), sh.data(), ref);
            scale_shift_relu(kt, a, sc.data(), sh.data(), o1, one);
            scale_shift_relu(kt, a, sc.data(), sh.data(), o2, two);
            CHECK(relative_error(o1, ref) <= 1e-6);
            CHECK(same_bits(o1, o2));
            CHECK(border_and_padding_zero(o1));

            add_reference(a, b, ref);
            add(kt, a, b, o1, one);
            add(kt, a, b, o2, two);
            CHECK(relative_error(o1, ref) == 0);
            CHECK(same_bits(o1, o2));
            CHECK(border_and_padding_zero(o1));
            feature_map a2(h, w, channels, border);
            std::memcpy(a2.buf.data(), a.buf.data(), a.buf.size() * sizeof(float));
            add(kt, a2, b, a2, two);  // in place
            CHECK(relative_error(a2, ref) == 0);

            feature_map pref(h / 2, w / 2, channels, 0), p1(h / 2, w / 2, channels, border), p2(h / 2, w / 2, channels, border);
            maxpool2x2_reference(a, pref);
            maxpool2x2(kt, a, p1, one);
            maxpool2x2(kt, a, p2, two);
            CHECK(relative_error(p1, pref) == 0);
            CHECK(same_bits(p1, p2));
            CHECK(border_and_padding_zero(p1));

            feature_map low(7, 6, channels, border), up(14, 12, channels, 1), uref(14, 12, channels, 0),
                u1(14, 12, channels, 2), u2(14, 12, channels, 2);
            fill_random(low, rng);
            fill_random(up, rng);
            upsample2x_add_reference(low, up, uref);
            upsample2x_add(kt, low, up, u1, one);
            upsample2x_add(kt, low, up, u2, two);
            CHECK(relative_error(u1, uref) == 0);
            CHECK(same_bits(u1, u2));
            CHECK(border_and_padding_zero(u1));
            upsample2x_add(kt, low, up, up, two);  // in place
            CHECK(relative_error(up, uref) == 0);
        }
    }
}

TEST_CASE("elementwise preconditions") {
    feature_map a(8, 8, 21, 1), b(8, 7, 21, 1), c(8, 8, 22, 0), p(4, 4, 21, 0), q(3, 4, 21, 0);
    std::vector<float> s(21, 1.0f);
    const kernel_table& k = select_kernels();
    CHECK_THROWS_AS(add(k, a, b, a, exec{}), handgraph::error);
    CHECK_THROWS_AS(add(k, a, c, a, exec{}), handgraph::error);
    CHECK_THROWS_AS(scale_shift_relu(k, a, s.data(), s.data(), b, exec{}), handgraph::error);
    CHECK_THROWS_AS(scale_shift_relu(k, a, nullptr, s.data(), a, exec{}), handgraph::error);
    CHECK_NOTHROW(maxpool2x2(k, a, p, exec{}));
    CHECK_THROWS_AS(maxpool2x2(k, a, q, exec{}), handgraph::error);
    CHECK_THROWS_AS(maxpool2x2(k, a, a, exec{}), handgraph::error);
    CHECK_NOTHROW(upsample2x_add(k, p, a, a, exec{}));
    CHECK_THROWS_AS(upsample2x_add(k, q, a, a, exec{}), handgraph::error);
    CHECK_THROWS_AS(upsample2x_add(k, p, b, b, exec{}), handgraph::error);
}

// The products of two floats are exact in double and each output's terms keep the plain
// loop's order, so the SIMD kernel must equal it bit for bit (graph_conv.hpp).
TEST_CASE("cheb_conv's dense part equals the plain double loop bit for bit") {
    std::mt19937 rng(13);
    // A random sparse n x n matrix, ~5 entries per row.
    const int n = 37;
    std::vector<int> row_ptr{0}, col;
    std::vector<float> val;
    for (int r = 0; r < n; ++r) {
        for (int e = 0; e < 5; ++e) {
            col.push_back(int(rng() % unsigned(n)));
            val.push_back(std::uniform_real_distribution<float>(-0.5f, 0.5f)(rng));
        }
        row_ptr.push_back(int(col.size()));
    }
    const csr_view L{n, row_ptr.data(), col.data(), val.data()};
    const int shapes[][2] = {{3, 32}, {32, 3}, {64, 64}, {32, 32}, {5, 70}, {70, 130}, {1, 1}};  // fin, fout
    contexts ctx;
    for (const auto& sh : shapes) {
        const int fin = sh[0], fout = sh[1];
        CAPTURE(fin);
        CAPTURE(fout);
        std::vector<float> w = random_vector(std::size_t(fout) * fin * 3, rng), b = random_vector(fout, rng),
                           sc = random_vector(fout, rng), shf = random_vector(fout, rng), x = random_vector(std::size_t(n) * fin, rng);
        // T1 = L x, T2 = 2 L T1 - x, as cheb_conv::run forms them.
        std::vector<float> t1(std::size_t(n) * fin), t2(std::size_t(n) * fin);
        sparse_times_dense(L, x.data(), t1.data(), fin);
        sparse_times_dense(L, t1.data(), t2.data(), fin);
        for (std::size_t i = 0; i < t2.size(); ++i) t2[i] = 2.0f * t2[i] - x[i];
        const float* t[3] = {x.data(), t1.data(), t2.data()};
        for (bool bn : {false, true})
            for (bool relu : {false, true}) {
                std::vector<float> ref(std::size_t(n) * fout);
                cheb_dense_reference(w.data(), b.data(), fout, fin, bn ? sc.data() : nullptr, bn ? shf.data() : nullptr, t, n, ref.data(), relu);
                for (const std::string& arch : available_arch_names()) {
                    CAPTURE(arch);
                    cheb_conv c = cheb_conv::prepare(w.data(), b.data(), fout, fin, bn ? sc.data() : nullptr, bn ? shf.data() : nullptr, for_arch(arch));
                    for (int threads : {1, 2}) {
                        CAPTURE(threads);
                        std::vector<float> y(std::size_t(n) * fout + 1, 7.0f);
                        c.run(L, x.data(), y.data(), relu, threads == 1 ? ctx.one.exec() : ctx.two.exec());
                        CHECK(std::memcmp(y.data(), ref.data(), sizeof(float) * ref.size()) == 0);
                        CHECK(y.back() == 7.0f);  // nothing written past the end
                    }
                }
            }
    }
}

TEST_CASE("linear matches the reference") {
    std::mt19937 rng(5);
    const int shapes[][2] = {{20, 512}, {37, 21}, {1, 1}, {512, 4096}, {16, 3}, {33, 129}};
    for (const auto& sh : shapes) {
        const int out = sh[0], in = sh[1];
        CAPTURE(out);
        CAPTURE(in);
        std::vector<float> w = random_vector(std::size_t(out) * in, rng), b = random_vector(out, rng),
                           x = random_vector(in, rng);
        contexts ctx;
        for (const std::string& arch : available_arch_names())
        for (bool relu : {false, true}) {
            CAPTURE(arch);
            linear l = linear::prepare(w.data(), b.data(), out, in, for_arch(arch));
            CHECK(l.in() == in);
            CHECK(l.out() == out);
            std::vector<float> ref(out), y1(out + 1, 7.0f), y2(out + 1, 7.0f);
            linear_reference(w.data(), b.data(), out, in, x.data(), ref.data(), relu);
            l.run(x.data(), y1.data(), relu, ctx.one.exec());
            l.run(x.data(), y2.data(), relu, ctx.two.exec());
            double err = 0, mag = 0;
            for (int o = 0; o < out; ++o) {
                err = std::max(err, double(std::fabs(y1[o] - ref[o])));
                mag = std::max(mag, double(std::fabs(ref[o])));
            }
            CHECK(err <= 1e-5 * std::max(mag, 1e-30));
            CHECK(std::memcmp(y1.data(), y2.data(), sizeof(float) * out) == 0);
            CHECK(y1[out] == 7.0f);  // nothing written past the end
        }
    }
    std::vector<float> w(8, 1.0f);
    CHECK_THROWS_AS(linear::prepare(nullptr, nullptr, 2, 4), handgraph::error);
    CHECK_THROWS_AS(linear::prepare(w.data(), nullptr, 0, 4), handgraph::error);
    linear l = linear::prepare(w.data(), nullptr, 2, 4);
    CHECK_THROWS_AS(l.run(nullptr, w.data(), false, exec{}), handgraph::error);
    CHECK_THROWS_AS(l.run(w.data(), w.data() + 1, false, exec{}), handgraph::error);
}

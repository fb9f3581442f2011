// The pipeline's heat-map argmax (spec section 4: bilinear 64 -> 256 as PyTorch's
// interpolate(mode="bilinear", align_corners=False), then the first maximum in row-major
// order) against a reference written from that definition alone, in double and as two
// separable passes, sharing no expression with the production code. A disagreement is
// accepted only at a genuine near-tie: both positions' double-precision upsampled values
// within float rounding of each other. Such ties are counted and their number bounded.
// Cases: random maps, maps full of exact ties, maxima on the border, smooth negative maps,
// a single sharp peak at random places.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "handgraph/pipeline.hpp"
#include "test_support.hpp"

namespace {

constexpr int src_size = 64, dst_size = 256, joints = 21;
using maps = std::vector<float>;  // joints x 64 x 64, row-major per joint

// ---- The production code: the only place this file calls it (adapt here when its API changes).
int production_argmax(const maps& m, int joint) {
    handgraph::feature_map hm(src_size, src_size, joints, 0);
    for (int j = 0; j < joints; ++j)
        for (int y = 0; y < src_size; ++y)
            for (int x = 0; x < src_size; ++x) hm.pixel(y, x)[j] = m[std::size_t((j * src_size + y) * src_size + x)];
    return handgraph::detail::upsampled_argmax(hm, joint);
}
// ----

// One output coordinate's two source taps and weights, per the definition of
// align_corners=False: source coordinate (d + 0.5) * in / out - 0.5, negative values
// clamped to 0; lower neighbour floor(src), upper one clamped to in - 1; the upper weight
// is the fractional part. Where the clamp makes both neighbours the same pixel, that
// pixel's weight is the sum, 1, so the value is exactly the pixel's.
struct tap {
    int lo, hi;
    double w_lo, w_hi;
};
tap source_tap(int d) {
    double src = (d + 0.5) * double(src_size) / double(dst_size) - 0.5;
    if (src < 0) src = 0;
    const double lo = std::floor(src);
    const int i = int(lo);
    if (i + 1 > src_size - 1) return {i, i, 1.0, 0.0};
    return {i, i + 1, 1.0 - (src - lo), src - lo};
}

// The 256x256 upsampling of one 64x64 map in double: horizontal pass, then vertical.
std::vector<double> upsample_reference(const float* map) {
    std::vector<double> rows(std::size_t(src_size) * dst_size), out(std::size_t(dst_size) * dst_size);
    for (int y = 0; y < src_size; ++y)
        for (int u = 0; u < dst_size; ++u) {
            const tap t = source_tap(u);
            rows[std::size_t(y * dst_size + u)] = t.w_lo * double(map[y * src_size + t.lo]) + t.w_hi * double(map[y * src_size + t.hi]);
        }
    for (int v = 0; v < dst_size; ++v) {
        const tap t = source_tap(v);
        for (int u = 0; u < dst_size; ++u)
            out[std::size_t(v * dst_size + u)] = t.w_lo * rows[std::size_t(t.lo * dst_size + u)] + t.w_hi * rows[std::size_t(t.hi * dst_size + u)];
    }
    return out;
}

int first_maximum(const std::vector<double>& up) {
    return int(std::max_element(up.begin(), up.end()) - up.begin());  // the first of equal maxima
}

// Near-tie bound: float rounding of a bilinear value is a few ulp (6e-8) of the map's
// largest magnitude; 1e-6 of it is a tight bound that no real gap in these maps comes near.
constexpr double tie_tolerance = 1e-6;

enum class kind { random, exact_ties, border, smooth_negative, sharp_peak, count };
const char* const kind_names[] = {"random", "exact ties", "maximum on the border", "smooth negative", "sharp peak"};

}  // namespace

TEST_CASE("the reference upsampling matches closed forms of align_corners=False") {
    // A ramp in x (and in y) upsamples to the clamped source coordinate itself: 0 for the
    // first two outputs, (d + 0.5) / 4 - 0.5 inside, 63 for the last two.
    std::vector<float> ramp_x(src_size * src_size), ramp_y(src_size * src_size);
    for (int y = 0; y < src_size; ++y)
        for (int x = 0; x < src_size; ++x) {
            ramp_x[std::size_t(y * src_size + x)] = float(x);
            ramp_y[std::size_t(y * src_size + x)] = float(y);
        }
    auto ux = upsample_reference(ramp_x.data()), uy = upsample_reference(ramp_y.data());
    for (int v = 0; v < dst_size; ++v)
        for (int u = 0; u < dst_size; ++u) {
            auto expect = [](int d) { return std::min(std::max((d + 0.5) / 4.0 - 0.5, 0.0), 63.0); };
            REQUIRE(ux[std::size_t(v * dst_size + u)] == expect(u));
            REQUIRE(uy[std::size_t(v * dst_size + u)] == expect(v));
        }
    // Spot values: output 0 and 1 sit on source 0, output 2 is 7/8 of source 0 and 1/8 of source 1.
    CHECK(source_tap(0).lo == 0);
    CHECK(source_tap(1).w_lo == 1.0);
    CHECK(source_tap(2).w_hi == 0.125);
    CHECK(source_tap(255).lo == 63);
    CHECK(source_tap(255).hi == 63);
    CHECK(source_tap(254).w_lo == 1.0);
}

TEST_CASE("heat-map argmax equals the first maximum of the definition, up to near-ties") {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    constexpr int kinds = int(kind::count), per_kind = 15;
    std::array<int, kinds> compared{}, ties{};
    double worst_tie_gap = 0;  // largest accepted |value(ours) - max| / magnitude
    for (int it = 0; it < kinds * per_kind; ++it) {
        const kind k = kind(it % kinds);
        maps m(std::size_t(joints) * src_size * src_size);
        std::vector<std::array<int, 2>> peak(joints);
        for (int j = 0; j < joints; ++j) {
            float* map = &m[std::size_t(j) * src_size * src_size];
            const float offset = 4.0f * d(rng), height = 2.0f + 1.5f * d(rng);
            // the peak's column and row: the borders half of the time
            auto place = [&]() {
                const int r = int(rng() % 4);
                return r == 0 ? 0 : r == 1 ? src_size - 1 : int(rng() % src_size);
            };
            peak[std::size_t(j)] = {place(), place()};
            for (int y = 0; y < src_size; ++y)
                for (int x = 0; x < src_size; ++x) {
                    float v = d(rng);
                    if (k == kind::exact_ties) v = std::round(v * 2);                   // few distinct values: exact ties
                    if (k == kind::border && (x == 0 || y == src_size - 1)) v = 0.9f;  // maximum along two borders
                    if (k == kind::smooth_negative)
                        v = -1e-3f * float((x - 20) * (x - 20) + (y - 40) * (y - 40)) + 1e-4f * v;
                    if (k == kind::sharp_peak)
                        v = offset + 0.05f * v + (x == peak[std::size_t(j)][0] && y == peak[std::size_t(j)][1] ? height : 0.0f);
                    map[y * src_size + x] = v;
                }
        }
        for (int j = 0; j < joints; ++j) {
            const float* map = &m[std::size_t(j) * src_size * src_size];
            const auto up = upsample_reference(map);
            const int expected = first_maximum(up);
            const int ours = production_argmax(m, j);
            const std::string kind_name = kind_names[int(k)];
            CAPTURE(kind_name);
            CAPTURE(it);
            CAPTURE(j);
            CAPTURE(expected);
            CAPTURE(ours);
            ++compared[std::size_t(k)];
            REQUIRE(ours >= 0);
            REQUIRE(ours < dst_size * dst_size);
            if (k == kind::sharp_peak) {  // the reference itself: the maximum is next to the peak
                CHECK(std::fabs(expected % dst_size - (4 * peak[std::size_t(j)][0] + 1.5)) <= 2.0);
                CHECK(std::fabs(expected / dst_size - (4 * peak[std::size_t(j)][1] + 1.5)) <= 2.0);
            }
            if (ours == expected) continue;
            double mag = 0;
            for (int i = 0; i < src_size * src_size; ++i) mag = std::max(mag, std::fabs(double(map[i])));
            const double gap = (up[std::size_t(expected)] - up[std::size_t(ours)]) / mag;
            CAPTURE(gap);
            CHECK(gap <= tie_tolerance);  // gap >= 0: expected is the maximum
            // A sharp peak's neighbours differ by the noise; only on the last row or column,
            // where outputs 254 and 255 both reproduce the source pixel, is there a tie.
            if (k == kind::sharp_peak) CHECK((peak[std::size_t(j)][0] == src_size - 1 || peak[std::size_t(j)][1] == src_size - 1));
            worst_tie_gap = std::max(worst_tie_gap, gap);
            ++ties[std::size_t(k)];
        }
    }
    int all = 0, all_ties = 0;
    for (int k = 0; k < kinds; ++k) {
        MESSAGE(std::string(kind_names[k]) << ": " << compared[std::size_t(k)] << " maps, near-ties " << ties[std::size_t(k)]);
        CHECK(compared[std::size_t(k)] == per_kind * joints);
        all += compared[std::size_t(k)];
        all_ties += ties[std::size_t(k)];
    }
    MESSAGE("near-ties " << all_ties << " of " << all << ", largest accepted gap " << worst_tie_gap << " of the map's magnitude");
    // With values k/2 and weights k/8 every interpolated value is exact in float as in
    // double: the first maximum is then the only right answer.
    CHECK(ties[std::size_t(kind::exact_ties)] == 0);
    CHECK(all_ties * 20 <= all);  // at most 5% of maps, as test_pipeline allows
}

// ---- uvd-to-xyz (spec section 4): pipeline.hpp computes it in double and says why. The
// products and sums partly cancel (u * w + x - u0, with x and u0 often hundreds of pixels),
// so in float the result can be many ulps from the exact value; in double it is the float
// nearest to it (within 1 ulp). Checked against long double on random crops, and the same
// formula evaluated in float (written here) must fail that check often, or this test could
// not tell the two apart. Also the comment that states it must stay.
namespace {

handgraph::point3f exact_xyz(float un, float vn, float d, const handgraph::crop_params& p) {
    using L = long double;
    const L u = L(un) * p.bbox[2] + p.bbox[0], v = L(vn) * p.bbox[3] + p.bbox[1], z = L(d) * p.scale_cm + p.root_cm[2];
    return {float((u - p.cam[2]) / p.cam[0] * z), float((v - p.cam[3]) / p.cam[1] * z), float(z)};
}

handgraph::point3f float_xyz(float un, float vn, float d, const handgraph::crop_params& p) {
    const float u = un * p.bbox[2] + p.bbox[0], v = vn * p.bbox[3] + p.bbox[1], z = d * p.scale_cm + p.root_cm[2];
    return {(u - p.cam[2]) / p.cam[0] * z, (v - p.cam[3]) / p.cam[1] * z, z};
}

// Distance in ulps between two finite floats.
long ulps(float a, float b) {
    auto key = [](float f) {
        std::int32_t i;
        std::memcpy(&i, &f, 4);
        return i < 0 ? std::int64_t(std::numeric_limits<std::int32_t>::min()) - i : std::int64_t(i);
    };
    return long(std::llabs(key(a) - key(b)));
}

}  // namespace

TEST_CASE("uvd-to-xyz is within 1 ulp of exact arithmetic (double inside); float arithmetic is not") {
    std::mt19937 rng(2026);
    auto uni = [&](float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); };
    int cases = 0, float_off = 0;
    long worst_ours = 0, worst_float = 0;
    for (int it = 0; it < 20000; ++it) {
        handgraph::crop_params p;
        p.cam = {uni(300, 2000), uni(300, 2000), uni(0, 1920), uni(0, 1080)};
        // boxes around the principal point (where the subtraction cancels) and elsewhere
        const float bw = uni(40, 600), bh = uni(40, 600);
        p.bbox = {p.cam[2] - uni(0, 1) * bw + uni(-20, 20), p.cam[3] - uni(0, 1) * bh + uni(-20, 20), bw, bh};
        if (it % 3 == 0) p.bbox[0] = uni(-500, 2500), p.bbox[1] = uni(-500, 1500);
        p.root_cm = {uni(-30, 30), uni(-30, 30), uni(20, 200)};
        p.scale_cm = uni(0.5f, 10);
        const float un = float(int(uni(0, 256))) / 256.0f, vn = float(int(uni(0, 256))) / 256.0f, d = uni(-3, 3);
        const handgraph::point3f ours = handgraph::detail::uvd_to_xyz(un, vn, d, p), exact = exact_xyz(un, vn, d, p),
                                 fl = float_xyz(un, vn, d, p);
        bool off = false;
        for (int k = 0; k < 3; ++k) {
            worst_ours = std::max(worst_ours, ulps(ours[std::size_t(k)], exact[std::size_t(k)]));
            const long f = ulps(fl[std::size_t(k)], exact[std::size_t(k)]);
            worst_float = std::max(worst_float, f);
            off = off || f > 1;
        }
        float_off += off;
        ++cases;
    }
    MESSAGE("uvd-to-xyz over " << cases << " random crops: worst " << worst_ours << " ulp (double inside); float arithmetic: worst "
                               << worst_float << " ulp, more than 1 ulp off in " << float_off << " crops");
    CHECK(worst_ours <= 1);
    CHECK(float_off * 10 >= cases);  // float arithmetic is > 1 ulp off in at least 10% of the crops
    CHECK(worst_float >= 100);
}

TEST_CASE("the comment that says why uvd-to-xyz runs in double is still there") {
    const std::filesystem::path src = handgraph_test::source_dir() / "include" / "handgraph" / "pipeline.hpp";
    std::ifstream in(src);
    REQUIRE_MESSAGE(in, "cannot read " << src);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t fn = text.find("inline point3f uvd_to_xyz(");
    REQUIRE(fn != std::string::npos);
    const std::string before = text.substr(fn > 1200 ? fn - 1200 : 0, fn > 1200 ? 1200 : fn);
    CHECK(before.find("Computed in double") != std::string::npos);
    CHECK(before.find("tests/test_postprocess.cpp") != std::string::npos);
    // and the arithmetic is the double one: u through crop_u_to_image, z in uvd_to_xyz
    const std::size_t cu = text.find("inline double crop_u_to_image(");
    REQUIRE(cu != std::string::npos);
    CHECK(text.find("double(un)", cu) < fn);
    CHECK(text.find("const double z = double(d) * p.scale_cm", fn) != std::string::npos);
}

// Parity of the whole C++ pipeline with the PyTorch reference (tests/reference), on
// random released-style weights (several seeds, non-trivial BN statistics) and on real
// crops from the release's test set (PNG-converted) or generated crops.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "handgraph/demo.hpp"
#include "handgraph/handgraph.hpp"
#include "handgraph/weights.hpp"
#include "test_images.hpp"
#include "test_support.hpp"

using namespace handgraph;
namespace fs = std::filesystem;
using handgraph_test::read_png_bgr;

namespace {

// max |a - b| / max |b|
double rel_error(const float* a, const float* b, std::size_t n) {
    double err = 0, mag = 0;
    for (std::size_t i = 0; i < n; ++i) {
        err = std::max(err, double(std::fabs(a[i] - b[i])));
        mag = std::max(mag, double(std::fabs(b[i])));
    }
    return mag > 0 ? err / mag : err;
}

// Value of the 256x256 bilinear upsampling (align_corners=False) of a 64x64 map at (u, v), in double.
double upsampled(const float* map, int u, int v) {
    auto src = [](int d, int& i0, int& i1, double& l1) {
        double s = std::max(0.25 * (d + 0.5) - 0.5, 0.0);
        i0 = int(s);
        i1 = std::min(i0 + 1, 63);
        l1 = s - i0;
    };
    int x0, x1, y0, y1;
    double lx, ly;
    src(u, x0, x1, lx);
    src(v, y0, y1, ly);
    auto at = [&](int y, int x) { return double(map[y * 64 + x]); };
    return (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
}


// The bound is flat: every array of every crop within 1e-5 relative (max |ours - f64| /
// max |f64|) of the float64 evaluation of the same network, in both convolution modes (the
// default, Winograd F(4x4,3x3) on the 3x3 layers of the larger maps, and
// estimate_options::exact, direct convolution only), and for every instruction set this CPU
// runs. The kernels' partial sums (conv_tile.hpp, linear.hpp) bring it there; with single
// long FMA chains it was 2.6e-5 (benchmarks/NOTES.md). Against PyTorch's own float32 run,
// whose rounding differs from ours by about as much as each differs from float64, the bound
// is 5e-5.
struct pipeline_result {
    int compared = 0, ties = 0, joints = 0;
    double worst64 = 0, worst32 = 0;
    std::string worst_where;
};

pipeline_result check_pipeline(bool exact_mode, const std::string& arch) {
    pipeline_result r;
    fs::path td = handgraph_test::testdata();
    for (int seed : {1, 2, 3}) {
        fs::path dir = td / ("seed" + std::to_string(seed));
        if (!fs::exists(dir / "weights.safetensors")) continue;
        load_options lo;
        lo.kernels = arch;
        model m = model::load((dir / "weights.safetensors").string(), lo);
        REQUIRE(std::string(m.kernels()) == arch);
        context ctx(2);
        for (auto& entry : fs::directory_iterator(dir)) {
            std::string name = entry.path().filename().string();
            if (name.rfind("ref_", 0) != 0) continue;
            std::string stem = name.substr(4, name.size() - 4 - std::string(".safetensors").size());
            CAPTURE(seed);
            CAPTURE(stem);
            auto ref = safetensors_file::read(entry.path().string());
            auto img = read_png_bgr(td / "images" / (stem + ".png"));
            crop_params p;
            auto cam = ref.values<float>("cam"), bbox = ref.values<float>("bbox"), root = ref.values<float>("root"), scale = ref.values<float>("scale");
            std::copy(cam.begin(), cam.end(), p.cam.begin());
            std::copy(bbox.begin(), bbox.end(), p.bbox.begin());
            std::copy(root.begin(), root.end(), p.root_cm.begin());
            p.scale_cm = scale[0];
            estimate_options opt;
            opt.exact = exact_mode;
            const hand_trace t = m.trace(ctx, image_view(img.data(), crop_size, crop_size), p, opt);
            const hand_estimate& e = t.estimate;
            REQUIRE(e.metric);

            const std::size_t hsz = 21 * 64 * 64;
            auto check = [&](const char* name, const float* ours, std::size_t n) {
                auto exact = ref.values<double>(std::string(name) + "_f64");
                auto f32 = ref.values<float>(name);
                REQUIRE(exact.size() == n);
                std::vector<float> exact_f(exact.begin(), exact.end());
                double e64 = rel_error(ours, exact_f.data(), n), e32 = rel_error(ours, f32.data(), n);
                const std::string array = name;
                CAPTURE(array);
                CHECK(e64 <= 1e-5);
                CHECK(e32 <= 5e-5);
                if (e64 > r.worst64) {
                    r.worst64 = e64;
                    r.worst_where = array + ", seed " + std::to_string(seed) + " " + stem;
                }
                r.worst32 = std::max(r.worst32, e32);
            };
            check("heatmaps_0", t.heatmaps.data(), hsz);
            check("heatmaps_1", t.heatmaps.data() + hsz, hsz);
            check("enc_0", t.enc0.data(), t.enc0.size());
            check("enc_1", t.enc1.data(), t.enc1.size());
            check("features", t.features.data(), t.features.size());
            check("mesh_raw", t.mesh_nodes.data(), t.mesh_nodes.size());
            check("mesh_xyz", e.mesh_cm.front().data(), e.mesh_cm.size() * 3);
            check("depths", t.depths.data(), t.depths.size());

            auto uv = ref.values<std::int32_t>("uv_f64");
            auto pose = ref.values<double>("pose_xyz_f64");
            auto hm1 = ref.values<double>("heatmaps_1_f64");
            double pose_mag = 0;
            for (double v : pose) pose_mag = std::max(pose_mag, std::fabs(v));
            for (int j = 0; j < 21; ++j) {
                ++r.joints;
                int u = e.uv_px[std::size_t(j)][0], v = e.uv_px[std::size_t(j)][1];
                if (u == uv[std::size_t(2 * j)] && v == uv[std::size_t(2 * j + 1)]) {
                    for (int k = 0; k < 3; ++k)
                        CHECK(std::fabs(e.pose_cm[std::size_t(j)][std::size_t(k)] - pose[std::size_t(3 * j + k)]) <= 1e-5 * pose_mag);
                    continue;
                }
                // A disagreement is allowed only at a near-tie: both maxima have the same
                // upsampled value up to float rounding.
                std::vector<float> map(hm1.begin() + std::ptrdiff_t(j) * 4096, hm1.begin() + std::ptrdiff_t(j + 1) * 4096);
                double ours = upsampled(map.data(), u, v), theirs = upsampled(map.data(), uv[std::size_t(2 * j)], uv[std::size_t(2 * j + 1)]);
                double mag = 0;
                for (float x : map) mag = std::max(mag, double(std::fabs(x)));
                CAPTURE(j);
                CHECK(std::fabs(ours - theirs) <= 1e-5 * mag);
                ++r.ties;
            }
            ++r.compared;
        }
    }
    MESSAGE(arch << std::string(exact_mode ? ", exact mode: " : ", default mode: ") << "compared " << r.compared << " crops, " << r.joints
                 << " joints; argmax near-ties: " << r.ties << "; worst relative error vs float64 " << r.worst64 << " (" << r.worst_where
                 << "), vs PyTorch float32 " << r.worst32);
    CHECK(r.compared >= 6);
    CHECK(r.ties * 20 <= r.joints);  // at most 5% of joints may sit on a near-tie
    return r;
}

// Field by field (a struct's padding bytes are not part of its value).
template <class T>
bool same_bits(const T& a, const T& b) {
    return std::memcmp(&a, &b, sizeof(T)) == 0;
}
bool same(const hand_estimate& a, const hand_estimate& b) {
    return same_bits(a.uv_px, b.uv_px) && a.metric == b.metric && same_bits(a.pose_uvd, b.pose_uvd) && same_bits(a.mesh_uvd, b.mesh_uvd) &&
           same_bits(a.pose_cm, b.pose_cm) && same_bits(a.mesh_cm, b.mesh_cm);
}

bool have_fixture() { return fs::exists(handgraph_test::testdata() / "seed1" / "weights.safetensors"); }
std::string no_fixture() {
    return "no converted weights in " + handgraph_test::testdata().string() + " (the fixture needs the release's template mesh; see " +
           (handgraph_test::testdata() / "README").string() + ")";
}

}  // namespace

TEST_CASE("C++ pipeline equals the float64 reference within 1e-5 (default: Winograd), best instruction set") {
    HANDGRAPH_SKIP_IF(!have_fixture(), no_fixture());
    check_pipeline(false, available_kernels().front());
}

TEST_CASE("C++ pipeline equals the float64 reference within 1e-5 (exact: direct convolution), best instruction set") {
    HANDGRAPH_SKIP_IF(!have_fixture(), no_fixture());
    check_pipeline(true, available_kernels().front());
}

TEST_CASE("C++ pipeline equals the float64 reference within 1e-5 on every other instruction set, both modes") {
    HANDGRAPH_SKIP_IF(!have_fixture(), no_fixture());
    const auto names = available_kernels();
    HANDGRAPH_SKIP_IF(names.size() < 2, "this CPU runs one compiled instruction set (" << names.front() << ")");
    for (std::size_t i = 1; i < names.size(); ++i)
        for (bool exact : {false, true}) {
            CAPTURE(names[i]);
            check_pipeline(exact, names[i]);
        }
}

TEST_CASE("1, 2 and 5 threads give identical outputs; the model is safe to share") {
    std::string src;
    template_mesh t = demo_template("", &src);
    model m = random_model(7, t);
    auto crop = demo_crop();
    const image_view v(crop.data(), crop_size, crop_size);
    crop_params p = demo_params();
    context one(1), two(2), five(5);
    hand_trace a = m.trace(one, v, p), b = m.trace(two, v, p), c = m.trace(five, v, p);
    for (const hand_trace* x : {&b, &c}) {
        CHECK(same(a.estimate, x->estimate));
        CHECK(a.mesh_nodes == x->mesh_nodes);
        CHECK(a.depths == x->depths);
        CHECK(a.heatmaps == x->heatmaps);
    }
    // estimate() is trace() without the intermediates
    hand_estimate e = m.estimate(two, v, p);
    CHECK(same(e, a.estimate));
}

TEST_CASE("image views: strides, channel orders, and what is refused") {
    std::string src;
    template_mesh t = demo_template("", &src);
    model m = random_model(7, t);
    const auto bgr = demo_crop();
    context ctx(1);
    const hand_estimate ref = m.estimate(ctx, image_view(bgr.data(), crop_size, crop_size));
    // the same pixels, rows 1000 bytes apart, as RGB, as BGRA
    std::vector<unsigned char> strided(std::size_t(1000) * crop_size, 0), rgb(bgr.size()), bgra(std::size_t(crop_size) * crop_size * 4);
    for (int y = 0; y < crop_size; ++y)
        for (int x = 0; x < crop_size; ++x) {
            const unsigned char* px = &bgr[(std::size_t(y) * crop_size + std::size_t(x)) * 3];
            std::memcpy(&strided[std::size_t(y) * 1000 + std::size_t(x) * 3], px, 3);
            unsigned char* q = &rgb[(std::size_t(y) * crop_size + std::size_t(x)) * 3];
            q[0] = px[2], q[1] = px[1], q[2] = px[0];
            unsigned char* r = &bgra[(std::size_t(y) * crop_size + std::size_t(x)) * 4];
            r[0] = px[0], r[1] = px[1], r[2] = px[2], r[3] = 17;
        }
    for (const image_view& v : {image_view(strided.data(), crop_size, crop_size, pixel_format::bgr, 1000),
                                image_view(rgb.data(), crop_size, crop_size, pixel_format::rgb),
                                image_view(bgra.data(), crop_size, crop_size, pixel_format::bgra)}) {
        const hand_estimate e = m.estimate(ctx, v);
        CHECK(same(e, ref));
    }
    CHECK_THROWS_WITH_AS(m.estimate(ctx, image_view(bgr.data(), 255, 256)), doctest::Contains("crop is 255x256, the network needs 256x256"), error);
    CHECK_THROWS_WITH_AS(m.estimate(ctx, image_view(nullptr, 256, 256)), doctest::Contains("no pixel data"), error);
    CHECK_THROWS_WITH_AS(m.estimate(ctx, image_view(bgr.data(), 256, 256, pixel_format::bgr, 700)), doctest::Contains("row stride 700"), error);
    CHECK_THROWS_WITH_AS(m.estimate(ctx, image_view(bgr.data(), 0, 256)), doctest::Contains("not positive"), error);
    // normalised outputs without crop parameters; the root joint at its own 2D position, depth 0
    const hand_estimate n = m.estimate(ctx, image_view(bgr.data(), crop_size, crop_size));
    CHECK_FALSE(n.metric);
    CHECK(n.pose_uvd[0][0] == float(n.uv_px[0][0]) / 256.0f);
    CHECK(n.pose_uvd[0][2] == 0.0f);
    CHECK(n.pose_cm[5][2] == 0.0f);
}

// Parity of the whole C++ pipeline with the PyTorch reference (tests/reference), on
// random released-style weights (several seeds, non-trivial BN statistics) and on real
// crops from the release's test set (PNG-converted) or generated crops.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <stb_image.h>

#include "handgraph/demo.hpp"
#include "handgraph/pipeline.hpp"
#include "test_support.hpp"

using namespace handgraph;
namespace fs = std::filesystem;

namespace {

std::vector<unsigned char> read_png_bgr(const fs::path& p) {
    int w, h, c;
    unsigned char* rgb = stbi_load(p.string().c_str(), &w, &h, &c, 3);
    REQUIRE_MESSAGE(rgb, p.string());
    REQUIRE(w == 256);
    REQUIRE(h == 256);
    std::vector<unsigned char> bgr(std::size_t(w) * h * 3);
    for (std::size_t i = 0; i < bgr.size(); i += 3) {
        bgr[i] = rgb[i + 2];
        bgr[i + 1] = rgb[i + 1];
        bgr[i + 2] = rgb[i];
    }
    stbi_image_free(rgb);
    return bgr;
}

// max |a - b| / max |b|
double rel_error(const float* a, const float* b, std::size_t n) {
    double err = 0, mag = 0;
    for (std::size_t i = 0; i < n; ++i) {
        err = std::max(err, double(std::fabs(a[i] - b[i])));
        mag = std::max(mag, double(std::fabs(b[i])));
    }
    return mag > 0 ? err / mag : err;
}
double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    return rel_error(a.data(), b.data(), a.size());
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

}  // namespace

// Both convolution modes, each against the bound below (1e-5 relative to the float64
// evaluation, or 1.5x PyTorch float32's own error where larger): the default (Winograd
// F(4x4,3x3) on the 3x3 layers) and estimate_options::exact (direct convolution only).
// Measured on this fixture (seeds 1-3, 10 crops, AVX-512): every array within 1e-5, worst
// 9.8e-6 (default) and 9.7e-6 (exact) (mesh_xyz, seed 2 synthetic_0, where
// PyTorch's own float32 run is 1.0e-5 away, and 1.36e-5 on mesh_raw); typical 1-5e-6.
// The kernels' partial sums (conv_tile.hpp, linear.hpp) bring it there; with single
// long FMA chains it was 2.6e-5 (benchmarks/NOTES.md).
void check_pipeline(bool exact_mode) {
    fs::path td = handgraph_test::testdata();
    HANDGRAPH_SKIP_IF(!fs::exists(td / "seed1" / "weights.safetensors"),
                      "no converted weights in " << td << " (the fixture needs the release's template mesh; see " << (td / "README") << ")");
    int compared = 0, ties = 0, joints = 0;
    double worst64 = 0, worst32 = 0;
    for (int seed : {1, 2, 3}) {
        fs::path dir = td / ("seed" + std::to_string(seed));
        if (!fs::exists(dir / "weights.safetensors")) continue;
        model m = model::load((dir / "weights.safetensors").string());
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
            opt.keep_heatmaps = opt.keep_intermediates = true;
            opt.threads = 2;
            opt.exact = exact_mode;
            hand_estimate e = m.estimate(img.data(), &p, opt);

            // Against the float64 evaluation of the same network (the exact answer up to
            // ~1e-16): the bound, 1e-5 relative, except where PyTorch's own float32
            // run is itself further than that from float64 (up to 1.36e-5 on this fixture's
            // mesh_raw, enc_1, depths): there no float32 implementation can promise 1e-5,
            // and the bound is 1.5x PyTorch's own error. Against PyTorch's float32 run,
            // whose rounding differs from ours by about as much as each differs from
            // float64, the bound is 5e-5.
            const std::size_t hsz = 21 * 64 * 64;
            auto check = [&](const char* name, const float* ours, std::size_t n) {
                auto exact = ref.values<double>(std::string(name) + "_f64");
                auto f32 = ref.values<float>(name);
                REQUIRE(exact.size() == n);
                std::vector<float> exact_f(exact.begin(), exact.end());
                double e64 = rel_error(ours, exact_f.data(), n), e32 = rel_error(ours, f32.data(), n);
                double torch64 = rel_error(f32.data(), exact_f.data(), n);  // PyTorch float32 vs float64
                const std::string array = name;
                CAPTURE(array);
                CAPTURE(torch64);
                CHECK(e64 <= std::max(1e-5, 1.5 * torch64));
                CHECK(e32 <= 5e-5);
                worst64 = std::max(worst64, e64);
                worst32 = std::max(worst32, e32);
            };
            check("heatmaps_0", e.heatmaps.data(), hsz);
            check("heatmaps_1", e.heatmaps.data() + hsz, hsz);
            check("enc_0", e.enc0.data(), e.enc0.size());
            check("enc_1", e.enc1.data(), e.enc1.size());
            check("features", e.features.data(), e.features.size());
            check("mesh_raw", e.mesh_raw.data(), e.mesh_raw.size());
            check("mesh_xyz", e.mesh_xyz.data(), e.mesh_xyz.size());
            check("depths", e.depths.data(), e.depths.size());

            auto uv = ref.values<std::int32_t>("uv_f64");
            auto pose = ref.values<double>("pose_xyz_f64");
            auto hm1 = ref.values<double>("heatmaps_1_f64");
            double pose_mag = 0;
            for (double v : pose) pose_mag = std::max(pose_mag, std::fabs(v));
            for (int j = 0; j < 21; ++j) {
                ++joints;
                int u = e.uv[std::size_t(2 * j)], v = e.uv[std::size_t(2 * j + 1)];
                if (u == uv[std::size_t(2 * j)] && v == uv[std::size_t(2 * j + 1)]) {
                    for (int k = 0; k < 3; ++k)
                        CHECK(std::fabs(e.pose_xyz[std::size_t(3 * j + k)] - pose[std::size_t(3 * j + k)]) <= 1e-5 * pose_mag);
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
                ++ties;
            }
            ++compared;
        }
    }
    MESSAGE(std::string(exact_mode ? "exact mode: " : "default mode: ") << "compared " << compared << " crops, " << joints << " joints; argmax near-ties: " << ties << "; worst relative error vs float64 "
                        << worst64 << ", vs PyTorch float32 " << worst32);
    CHECK(compared >= 6);
    CHECK(ties * 20 <= joints);  // at most 5% of joints may sit on a near-tie
}

TEST_CASE("C++ pipeline equals the PyTorch reference (default: Winograd)") { check_pipeline(false); }

TEST_CASE("C++ pipeline equals the PyTorch reference (exact: direct convolution)") { check_pipeline(true); }

TEST_CASE("1 and 2 threads give identical outputs; the model is safe to share") {
    std::string src;
    template_mesh t = demo_template("", &src);
    model m = random_model(7, t);
    auto crop = demo_crop();
    crop_params p = demo_params();
    estimate_options one, two;
    two.threads = 2;
    hand_estimate a = m.estimate(crop.data(), &p, one);
    hand_estimate b = m.estimate(crop.data(), &p, two);
    CHECK(a.uv == b.uv);
    CHECK(a.mesh_raw == b.mesh_raw);
    CHECK(a.pose_xyz == b.pose_xyz);
    CHECK(a.depths == b.depths);
}

// STB loader (eval/datasets.hpp) and metrics (eval/metrics.hpp) on a generated STB-shaped
// fixture whose expected values tests/reference/eval_stb_fixture.py computes from the spec.
#include <doctest/doctest.h>

#include <handgraph/eval/datasets.hpp>
#include <handgraph/eval/metrics.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include "test_eval_support.hpp"

using namespace handgraph;
using namespace handgraph_test;

namespace {

std::vector<pose21> read_poses(const std::filesystem::path& p) {
    auto v = read_raw_f64(p);
    REQUIRE(v.size() % 63 == 0);
    std::vector<pose21> out(v.size() / 63);
    for (std::size_t f = 0; f < out.size(); ++f)
        for (std::size_t j = 0; j < 21; ++j)
            for (std::size_t k = 0; k < 3; ++k) out[f][j][k] = v[(f * 21 + j) * 3 + k];
    return out;
}

std::map<std::string, std::vector<double>> read_metrics(const std::string& path) {
    std::ifstream in(path);
    std::map<std::string, std::vector<double>> m;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string key, t;
        ls >> key;
        while (ls >> t) m[key].push_back(std::strtod(t.c_str(), nullptr));
    }
    return m;
}

struct fixture {
    scratch_dir tmp{"eval_stb"};
    bool ok = false;
    fixture() {
        std::vector<std::string> args = {tmp.path.string()};
        if (have_shared_data()) args.push_back((shared_data() / "STB_eval_bboxes.mat").string());
        ok = run_reference("eval_stb_fixture.py", args);
    }
};

}  // namespace

TEST_CASE("stb: transforms, joint order and camera are the spec's") {
    auto R = stb_depth_to_color_rotation();
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            double d = 0;
            for (int k = 0; k < 3; ++k) d += R[i][k] * R[j][k];
            CHECK(d == doctest::Approx(i == j ? 1.0 : 0.0).epsilon(1e-15));
        }
    const auto& order = stb_to_pose_order();
    CHECK(order[0] == 0);                          // palm -> wrist position
    CHECK(order[joint_index("thumb_1")] == 17);
    CHECK(order[joint_index("index_4")] == 16);
    CHECK(order[joint_index("middle_1")] == 9);
    CHECK(order[joint_index("ring_1")] == 5);
    CHECK(order[joint_index("little_4")] == 4);
    CHECK(stb_color_camera()[0] == 607.92271);
    CHECK(joint_index("nope") == pose_joint_count);

    // A label whose palm is 1 cm beyond ring_1 gives a wrist 2 cm beyond it.
    pose21 mm{};
    for (std::size_t j = 0; j < 21; ++j) mm[j] = {double(j), 2.0 * double(j), 500.0};
    mm[5] = {0, 0, 400};   // ring_1
    mm[0] = {10, 0, 400};  // palm
    auto l = stb_labels(mm);
    // wrist - ring_1 = 2 * (palm - ring_1) in the colour frame
    auto p_only = stb_labels([&] {
        pose21 p = mm;
        p[0] = p[5];
        return p;
    }());
    for (int k = 0; k < 3; ++k) {
        // (palm - ring_1) in the colour frame, cm: (10, 0, 0) mm @ R / 10
        double palm_minus_ring = (10.0 * R[0][k]) / 10.0;
        CHECK(l.pose_cm[0][k] - l.pose_cm[joint_index("ring_1")][k] == doctest::Approx(2 * palm_minus_ring).epsilon(1e-12));
        CHECK(p_only.pose_cm[0][k] == doctest::Approx(p_only.pose_cm[joint_index("ring_1")][k]).epsilon(1e-12));
    }
    CHECK(l.root_cm == l.pose_cm[0]);
}

TEST_CASE("stb: the fixture loads as spec section 5 computes it") {
    HANDGRAPH_SKIP_IF(!have_reference_python(), "no Python with numpy, scipy and cv2 (HANDGRAPH_PYTHON)");
    fixture fx;
    REQUIRE(fx.ok);
    const auto& tmp = fx.tmp;
    stb_dataset ds(tmp.path / "stb", tmp.path / "bboxes.mat");
    REQUIRE(ds.size() == 7);
    CHECK(ds.name() == "stb");
    auto pose = read_poses(tmp.path / "expected_pose.bin");
    auto root = read_raw_f64(tmp.path / "expected_root.bin");
    auto scale = read_raw_f64(tmp.path / "expected_scale.bin");
    auto bbox = read_raw_f64(tmp.path / "expected_bbox.bin");
    REQUIRE(pose.size() == 7);
    double worst = 0;
    int crop_max_diff = 0;
    for (std::size_t i = 0; i < ds.size(); ++i) {
        INFO("frame " << i);
        sample s = ds.load(i);
        CHECK(s.index == i);
        CHECK(s.image_id == (i < 3 ? "B1Counting/SK_color_" + std::to_string(i) : "B1Random/SK_color_" + std::to_string(i - 3)) + ".png");
        for (std::size_t j = 0; j < 21; ++j)
            for (int k = 0; k < 3; ++k) worst = std::max(worst, std::abs(s.gt_pose_cm[j][k] - pose[i][j][k]));
        for (int k = 0; k < 3; ++k) CHECK(s.root_cm[k] == doctest::Approx(root[i * 3 + k]).epsilon(1e-12));
        CHECK(s.scale_cm == doctest::Approx(scale[i]).epsilon(1e-12));
        for (int k = 0; k < 4; ++k) CHECK(s.bbox[k] == int(bbox[i * 4 + k]));
        CHECK(s.cam == stb_color_camera());
        REQUIRE(s.crop.width == 256);
        REQUIRE(s.crop.height == 256);
        image ref = load_image(tmp / ("expected_crop_" + std::to_string(i) + ".png"));
        for (std::size_t p = 0; p < ref.pixels.size(); ++p)
            crop_max_diff = std::max(crop_max_diff, std::abs(int(ref.pixels[p]) - int(s.crop.pixels[p])));
        sample n = ds.load(i, false);
        CHECK(n.crop.empty());
        CHECK(n.gt_pose_cm == s.gt_pose_cm);
    }
    CHECK(worst < 1e-12);
    CHECK(crop_max_diff == 0);  // cv2.resize is reproduced bit for bit (test_image)
    CHECK_THROWS_WITH_AS(ds.load(7), doctest::Contains("out of range"), handgraph::error);

    // Failures name what is missing or wrong.
    CHECK_THROWS_WITH_AS(stb_dataset(tmp.path / "stb", tmp.path / "none.mat"), doctest::Contains("none.mat"), handgraph::error);
    CHECK_THROWS_WITH_AS(stb_dataset(tmp.path / "nowhere", tmp.path / "bboxes.mat"), doctest::Contains("B1Counting_SK.mat"), handgraph::error);
    CHECK_THROWS_WITH_AS(stb_dataset(tmp.path / "stb", tmp.path / "bboxes.mat", {"B1Counting"}), doctest::Contains("bboxes"), handgraph::error);
    std::filesystem::remove(tmp.path / "stb" / "B1Random" / "SK_color_2.png");
    CHECK_THROWS_WITH_AS(ds.load(5), doctest::Contains("SK_color_2.png"), handgraph::error);
    CHECK(ds.load(5, false).scale_cm == doctest::Approx(scale[5]));

    // The release's boxes, truncated to int, on 1500-frame label files.
    if (have_shared_data()) {
        stb_dataset full(tmp.path / "stb_full", shared_data() / "STB_eval_bboxes.mat");
        REQUIRE(full.size() == 3000);
        auto real = read_raw_f64(tmp.path / "expected_real_bbox.bin");
        REQUIRE(real.size() == 12000);
        std::size_t bad = 0;
        for (std::size_t i = 0; i < 3000; ++i) {
            sample s = full.load(i, false);
            for (int k = 0; k < 4; ++k) bad += s.bbox[k] != int(real[i * 4 + k]);
        }
        CHECK(bad == 0);
        CHECK(full.load(1500, false).image_id == "B1Random/SK_color_0.png");
    } else {
        MESSAGE("SKIPPED: the release's STB boxes (HANDGRAPH_SHARED_DATA absent)");
    }
}

TEST_CASE("metrics: equal numpy's on 500 noisy frames") {
    HANDGRAPH_SKIP_IF(!have_reference_python(), "no Python with numpy, scipy and cv2 (HANDGRAPH_PYTHON)");
    fixture fx;
    REQUIRE(fx.ok);
    auto gt = read_poses(fx.tmp.path / "metrics_gt.bin");
    auto est = read_poses(fx.tmp.path / "metrics_est.bin");
    auto ref = read_metrics(fx.tmp / "metrics.txt");
    auto m = evaluate_poses(est, gt);
    REQUIRE(m.frames == 500);
    REQUIRE(ref["frame"].size() == 500);
    double worst = 0;
    for (std::size_t f = 0; f < 500; ++f) worst = std::max(worst, std::abs(m.frame_error_mm[f] - ref["frame"][f]));
    for (std::size_t f = 0; f < 500; ++f) CHECK(mean_joint_error_mm(est[f], gt[f]) == m.frame_error_mm[f]);
    CHECK(worst < 1e-6);
    CHECK(m.mean_error_mm == doctest::Approx(ref["mean"][0]).epsilon(1e-9));
    CHECK(std::abs(m.mean_error_mm - ref["mean"][0]) < 1e-6);
    for (std::size_t j = 0; j < 21; ++j) CHECK(std::abs(m.joint_error_mm[j] - ref["joint"][j]) < 1e-6);
    CHECK(std::abs(m.root_relative_error_mm - ref["rel"][0]) < 1e-6);
    REQUIRE(m.pck.pck.size() == 31);
    REQUIRE(ref["pck"].size() == 31);
    for (std::size_t t = 0; t < 31; ++t) CHECK(std::abs(m.pck.pck[t] - ref["pck"][t]) < 1e-6);
    CHECK(std::abs(m.pck.auc - ref["auc"][0]) < 1e-6);
    CHECK(m.pck.thresholds_mm.front() == 20.0);
    CHECK(m.pck.thresholds_mm.back() == 50.0);
    MESSAGE("mean " << m.mean_error_mm << " mm, AUC " << m.pck.auc);
}

TEST_CASE("metrics: hand-computed values and refusals") {
    pose21 gt{};
    for (std::size_t j = 0; j < 21; ++j) gt[j] = {double(j), -double(j), 40.0};
    pose21 est = gt;
    est[7][0] += 3.0;  // 30 mm off
    auto m = evaluate_poses({est, gt}, {gt, gt});
    CHECK(m.frame_error_mm[0] == doctest::Approx(30.0 / 21));
    CHECK(m.frame_error_mm[1] == 0.0);
    CHECK(m.mean_error_mm == doctest::Approx(15.0 / 21));
    CHECK(m.joint_error_mm[7] == doctest::Approx(15.0));
    CHECK(m.joint_error_mm[0] == 0.0);
    CHECK(m.root_relative_error_mm == doctest::Approx(30.0 / 40));
    // 41 of 42 joint errors are 0; one is 30 mm: PCK 41/42 below 30 mm, 1 from 30 mm (<=).
    CHECK(m.pck.pck[0] == doctest::Approx(41.0 / 42));
    CHECK(m.pck.pck[9] == doctest::Approx(41.0 / 42));
    CHECK(m.pck.pck[10] == 1.0);
    double area = 9 * (41.0 / 42) + 0.5 * (41.0 / 42 + 1.0) + 20 * 1.0;
    CHECK(m.pck.auc == doctest::Approx(area / 30));
    // Moving the whole estimate leaves the root-relative error unchanged.
    pose21 shifted = est;
    for (auto& j : shifted) j[2] += 5.0;
    CHECK(evaluate_poses({shifted}, {gt}).root_relative_error_mm == doctest::Approx(30.0 / 20));

    CHECK_THROWS_AS(evaluate_poses({}, {}), handgraph::error);
    CHECK_THROWS_AS(evaluate_poses({est}, {gt, gt}), handgraph::error);
    est[3][1] = std::nan("");
    CHECK_THROWS_WITH_AS(evaluate_poses({gt, est}, {gt, gt}), doctest::Contains("frame 1"), handgraph::error);
    CHECK_THROWS_AS(compute_pck({1.0}, {20.0}), handgraph::error);
    CHECK_THROWS_AS(compute_pck({1.0}, {30.0, 20.0}), handgraph::error);
}

// Real-world test set loader (eval/datasets.hpp) against scipy's reading of the release's files.
#include <doctest/doctest.h>

#include <handgraph/eval/datasets.hpp>
#include <handgraph/eval/metrics.hpp>

#include "test_eval_support.hpp"

using namespace handgraph;
using namespace handgraph_test;

namespace {

const dumped_var& find(const std::vector<dumped_var>& d, const std::string& name) {
    for (const auto& v : d)
        if (v.name == name) return v;
    FAIL("no " << name << " in the dump");
    throw 0;
}

}  // namespace

TEST_CASE("real-world test set: labels as scipy reads them, 256x256 crops") {
    HANDGRAPH_SKIP_IF(!have_shared_data(), "the release's data is absent (HANDGRAPH_SHARED_DATA=" << shared_data() << ")");
    HANDGRAPH_SKIP_IF(!have_reference_python(), "no Python with numpy, scipy and cv2 (HANDGRAPH_PYTHON)");
    auto dir = shared_data() / "real_world_testset";
    scratch_dir tmp("eval_rw");
    REQUIRE(run_reference("eval_mat_dump.py", {(dir / "params.mat").string(), tmp / "params.txt"}));
    REQUIRE(run_reference("eval_mat_dump.py", {(dir / "pose_gt.mat").string(), tmp / "pose_gt.txt"}));
    auto params = read_dump(tmp / "params.txt");
    auto gt = read_dump(tmp / "pose_gt.txt");
    const auto& cam = find(params, "cam_param").numbers;
    const auto& bbox = find(params, "bbox").numbers;
    const auto& root = find(params, "pose_root").numbers;
    const auto& scale = find(params, "pose_scale").numbers;
    const auto& paths = find(params, "image_path").strings;
    const auto& pose = find(gt, "pose_gt").numbers;

    real_world_testset ds(dir);
    REQUIRE(ds.size() == 583);
    CHECK(ds.name() == "real_world_testset");
    std::size_t bad = 0;
    std::vector<pose21> all;
    for (std::size_t i = 0; i < ds.size(); ++i) {
        sample s = ds.load(i, false);
        bad += s.image_id != paths[i];
        for (int k = 0; k < 4; ++k) bad += s.cam[k] != cam[i * 4 + k];
        for (int k = 0; k < 4; ++k) bad += s.bbox[k] != int(bbox[i * 4 + k]);
        for (int k = 0; k < 3; ++k) bad += s.root_cm[k] != root[i * 3 + k];
        bad += s.scale_cm != scale[i];
        for (std::size_t j = 0; j < 21; ++j)
            for (int k = 0; k < 3; ++k) bad += s.gt_pose_cm[j][k] != pose[(i * 21 + j) * 3 + k];
        bad += s.root_cm != s.gt_pose_cm[0];  // the release's root is the GT wrist
        all.push_back(s.gt_pose_cm);
    }
    CHECK(bad == 0);
    CHECK(ds.load(0, false).image_id == "images/00000.jpg");
    CHECK(ds.load(0, false).scale_cm == 5.0);
    for (std::size_t i : {std::size_t(0), std::size_t(291), std::size_t(582)}) {
        sample s = ds.load(i);
        CHECK(s.crop.width == 256);
        CHECK(s.crop.height == 256);
    }
    auto m = evaluate_poses(all, all);
    CHECK(m.mean_error_mm == 0.0);
    CHECK(m.pck.auc == 1.0);
    CHECK_THROWS_WITH_AS(ds.load(583), doctest::Contains("out of range"), handgraph::error);
}

TEST_CASE("real-world test set: missing and inconsistent files are named") {
    scratch_dir tmp("eval_rw_bad");
    CHECK_THROWS_WITH_AS(real_world_testset(tmp.path), doctest::Contains("params.mat"), handgraph::error);
    // A consistent two-frame set written with our MAT writer, then broken one way at a time.
    auto write = [&](std::size_t n_pose, double scale0, const std::string& path0) {
        std::vector<mat_array> p;
        p.push_back(mat_array::char_rows("image_path", {path0, "images/b.png"}));
        p.push_back(mat_array::numeric<double>("cam_param", {2, 4}, {500, 500, 501, 501, 320, 320, 240, 240}));
        p.push_back(mat_array::numeric<std::int32_t>("bbox", {2, 4}, {1, 2, 3, 4, 100, 100, 100, 100}));
        p.push_back(mat_array::numeric<float>("pose_root", {2, 3}, {0, 0, 1, 1, 40, 40}));
        p.push_back(mat_array::numeric<double>("pose_scale", {1, 2}, {scale0, 5}));
        write_mat(tmp.path / "params.mat", p);
        write_mat(tmp.path / "pose_gt.mat", {mat_array::numeric<float>("pose_gt", {n_pose, 21, 3}, std::vector<float>(n_pose * 63, 1.0f))});
    };
    write(2, 5, "images/a.png");
    real_world_testset ok(tmp.path);
    CHECK(ok.size() == 2);
    CHECK(ok.load(1, false).bbox == std::array<int, 4>{2, 4, 100, 100});
    CHECK(ok.load(0, false).image_id == "images/a.png");  // char-matrix padding removed
    CHECK_THROWS_WITH_AS(ok.load(0), doctest::Contains("a.png"), handgraph::error);
    std::filesystem::create_directories(tmp.path / "images");
    write_png(tmp.path / "images" / "a.png", image(255, 256));
    CHECK_THROWS_WITH_AS(ok.load(0), doctest::Contains("256x256"), handgraph::error);
    write_png(tmp.path / "images" / "a.png", image(256, 256));
    CHECK(ok.load(0).crop.width == 256);

    write(3, 5, "images/a.png");
    CHECK_THROWS_WITH_AS(real_world_testset(tmp.path), doctest::Contains("pose_gt"), handgraph::error);
    write(2, 0, "images/a.png");
    CHECK_THROWS_WITH_AS(real_world_testset(tmp.path), doctest::Contains("pose_scale"), handgraph::error);
    write(2, std::nan(""), "images/a.png");
    CHECK_THROWS_WITH_AS(real_world_testset(tmp.path), doctest::Contains("pose_scale"), handgraph::error);
    std::filesystem::remove(tmp.path / "pose_gt.mat");
    CHECK_THROWS_WITH_AS(real_world_testset(tmp.path), doctest::Contains("pose_gt.mat"), handgraph::error);
}

// The evaluation loop (eval/evaluate.hpp) and its checkpoint (eval/checkpoint.hpp):
// checkpoint format, resume after an interruption, outputs. Its pictures are tested in
// test_eval_render.cpp.
// The binary examples/hand_eval is tested end to end by tests/test_hand_eval*.py.
#include <doctest/doctest.h>

#include <handgraph/demo.hpp>
#include <handgraph/eval.hpp>
#include <handgraph/synthetic_template.hpp>

#include <cmath>
#include <map>

#include "test_eval_support.hpp"

using namespace handgraph;

namespace {

// A data set of generated crops with made-up labels (no files).
class fake_dataset : public dataset {
public:
    explicit fake_dataset(std::size_t n) : n_(n) {}
    std::string name() const override { return "fake"; }
    std::size_t size() const override { return n_; }
    sample load(std::size_t i, bool with_image = true) const override {
        sample s;
        s.index = i;
        s.image_id = "frame," + std::to_string(i);  // a comma: CSV quoting
        s.cam = {600, 600, 320, 240};
        s.bbox = {200 + int(i), 120, 256, 256};
        s.root_cm = {-3.0 + 0.1 * double(i), 11.0, 42.0};
        s.scale_cm = 5.0;
        for (std::size_t j = 0; j < pose_joint_count; ++j)
            s.gt_pose_cm[j] = {s.root_cm[0] + 0.3 * double(j), s.root_cm[1] - 0.2 * double(j), s.root_cm[2] + 0.05 * double(j)};
        s.gt_pose_cm[0] = s.root_cm;
        if (with_image) {
            s.crop = image(256, 256);
            auto base = demo_crop();
            for (std::size_t k = 0; k < base.size(); ++k) s.crop.pixels[k] = std::uint8_t((base[k] + 37 * i + (k % 7)) & 0xff);
        }
        return s;
    }

private:
    std::size_t n_;
};

// Not a static: a model must not outlive the calling thread's block cache (tensor.hpp's
// thread_local cache is destroyed before objects with static storage duration).
model test_model() { return random_model(3, synthetic_template()); }

}  // namespace

TEST_CASE("evaluate: checkpoint format round trip and refusals") {
    evaluation_checkpoint c;
    c.fingerprint = "run A";
    c.frames = 5;
    c.vis = 1;
    c.mesh_floats = 6;
    for (int i = 0; i < 3; ++i) {
        frame_estimate e;
        for (std::size_t k = 0; k < e.pose_xyz.size(); ++k) e.pose_xyz[k] = float(i) + 0.001f * float(k);
        for (std::size_t k = 0; k < e.uv.size(); ++k) e.uv[k] = std::int32_t(k * 3 + std::size_t(i));
        if (i < 1) e.mesh_xyz = {1, 2, 3, 4, 5, 6};
        c.done.push_back(e);
    }
    std::string bytes = serialize_checkpoint(c);
    evaluation_checkpoint d = parse_checkpoint(bytes, "ck");
    CHECK(d.fingerprint == "run A");
    CHECK(d.frames == 5);
    CHECK(d.vis == 1);
    REQUIRE(d.done.size() == 3);
    for (int i = 0; i < 3; ++i) {
        CHECK(d.done[std::size_t(i)].pose_xyz == c.done[std::size_t(i)].pose_xyz);
        CHECK(d.done[std::size_t(i)].uv == c.done[std::size_t(i)].uv);
        CHECK(d.done[std::size_t(i)].mesh_xyz == c.done[std::size_t(i)].mesh_xyz);
    }
    CHECK(serialize_checkpoint(d) == bytes);
    std::string flipped = bytes;
    flipped[40] = char(flipped[40] ^ 1);
    CHECK_THROWS_WITH_AS(parse_checkpoint(flipped, "ck"), doctest::Contains("checksum"), error);
    CHECK_THROWS_WITH_AS(parse_checkpoint(bytes.substr(0, bytes.size() - 9), "ck"), doctest::Contains("ck"), error);
    CHECK_THROWS_WITH_AS(parse_checkpoint("not a checkpoint at all", "ck"), doctest::Contains("magic"), error);
    c.done[0].mesh_xyz.clear();
    CHECK_THROWS_AS(serialize_checkpoint(c), error);
}

TEST_CASE("evaluate: run, interrupt, resume; outputs; threads and batch do not matter") {
    const model m = test_model();
    fake_dataset ds(5);
    handgraph_test::scratch_dir tmp("evaluate");
    const std::string weights = tmp / "weights.bin";  // stands in for the weight file in the fingerprint
    write_file_atomic(weights, "weights A");

    context two(2), one(1);
    evaluation_options o;
    o.batch = 3;
    o.vis = 2;
    o.fingerprint = evaluation_fingerprint(ds, 0, o.vis, weights);
    evaluation_run full = run_evaluation(ds, m, two, o);
    REQUIRE(full.estimates.size() == 5);
    CHECK(full.resumed == 0);
    CHECK(full.estimates[1].mesh_xyz.size() == 954 * 3);
    CHECK(full.estimates[2].mesh_xyz.empty());

    // The same frames one by one, single-threaded, through the pipeline directly.
    for (std::size_t i = 0; i < 5; ++i) {
        sample s = ds.load(i);
        crop_params p = crop_params_of(s);
        hand_estimate e = m.estimate(one, image_view(s.crop.pixels.data(), s.crop.width, s.crop.height), p);
        for (std::size_t j = 0; j < 21; ++j) {
            for (std::size_t k = 0; k < 3; ++k) CHECK(e.pose_cm[j][k] == full.estimates[i].pose_xyz[j * 3 + k]);
            for (std::size_t k = 0; k < 2; ++k) CHECK(e.uv_px[j][k] == full.estimates[i].uv[j * 2 + k]);
        }
    }

    // Interrupted after the first chunk (batch 2, one thread), then resumed.
    evaluation_options o2 = o;
    o2.batch = 2;
    o2.checkpoint = tmp.path / "progress.partial.bin";
    o2.progress = [](std::size_t done, std::size_t) {
        if (done == 2) throw std::runtime_error("killed");
    };
    CHECK_THROWS_WITH(run_evaluation(ds, m, one, o2), "killed");
    REQUIRE(std::filesystem::exists(o2.checkpoint));
    std::vector<std::pair<std::size_t, std::size_t>> calls;
    o2.progress = [&](std::size_t done, std::size_t total) { calls.emplace_back(done, total); };
    o2.resume = true;
    evaluation_run resumed = run_evaluation(ds, m, one, o2);
    CHECK(resumed.resumed == 2);
    REQUIRE(calls.size() == 3);
    CHECK(calls[0] == std::pair<std::size_t, std::size_t>{2, 5});
    CHECK(calls[2] == std::pair<std::size_t, std::size_t>{5, 5});
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(resumed.estimates[i].pose_xyz == full.estimates[i].pose_xyz);
        CHECK(resumed.estimates[i].uv == full.estimates[i].uv);
        CHECK(resumed.estimates[i].mesh_xyz == full.estimates[i].mesh_xyz);
    }
    // A checkpoint of another run is refused by name; without resume it is ignored.
    write_file_atomic(weights, "weights B");
    evaluation_options o3 = o2;
    o3.progress = nullptr;
    o3.fingerprint = evaluation_fingerprint(ds, 0, o.vis, weights);
    CHECK(o3.fingerprint != o2.fingerprint);
    CHECK_THROWS_WITH_AS(run_evaluation(ds, m, one, o3), doctest::Contains("belongs to another run"), error);
    o3.limit = 4;
    o3.fingerprint = evaluation_fingerprint(ds, 4, o.vis, weights);
    CHECK_THROWS_WITH_AS(run_evaluation(ds, m, one, o3), doctest::Contains("progress.partial.bin"), error);
    o3.resume = false;
    CHECK(run_evaluation(ds, m, one, o3).estimates.size() == 4);

    // Outputs.
    evaluation_info info;
    info.data = "nowhere";
    info.weights = weights;
    info.kernels = "test";
    write_file_atomic((tmp.path / "summary.json.tmp123").string(), "stale");
    write_evaluation_outputs(tmp.path, ds, m, full, 2, info);
    remove_stale_temporaries(tmp.path, evaluation_output_names(2));
    CHECK(!std::filesystem::exists(tmp.path / "summary.json.tmp123"));
    for (const auto& n : evaluation_output_names(2)) CHECK_MESSAGE(std::filesystem::exists(tmp.path / n), n);
    pose_metrics pm = evaluate_run(full);
    std::ifstream js(tmp.path / "summary.json");
    std::string text((std::istreambuf_iterator<char>(js)), std::istreambuf_iterator<char>());
    json::value v = json::parse(text, "summary.json");
    auto key = [&](const json::value& o, const char* k) -> const json::value& {
        const json::value* p = o.find(k);
        REQUIRE_MESSAGE(p != nullptr, k);
        return *p;
    };
    CHECK(key(v, "frames").num == 5);
    CHECK(key(v, "dataset").str == "fake");
    CHECK(key(v, "mean_error_mm").num == pm.mean_error_mm);  // 17 digits: exact
    CHECK(key(v, "auc_20_50").num == pm.pck.auc);
    CHECK(key(key(v, "joint_error_mm"), "little_4").num == pm.joint_error_mm[20]);
    CHECK(key(v, "pck").items.size() == 31);
    std::ifstream csv(tmp.path / "per_frame.csv");
    std::string line;
    std::getline(csv, line);
    CHECK(line == "index,image_id,mean_error_mm,root_relative_error_mm");
    std::getline(csv, line);
    CHECK(line.rfind("0,\"frame,0\",", 0) == 0);
    mat_file mf = read_mat(tmp.path / "pose_estimations.mat");
    CHECK(mf.get("est_pose_xyz").dims() == std::vector<std::size_t>{5, 21, 3});
    CHECK(mf.get("est_uv").dims() == std::vector<std::size_t>{5, 21, 2});
    CHECK(mf.get("image_paths").strings()[4] == "frame,4");
    CHECK(mf.get("est_pose_xyz").at(3, 7, 2) == double(full.estimates[3].pose_xyz[7 * 3 + 2]));
    image overlay = load_image(tmp.path / "vis" / "00001.png");
    CHECK(overlay.width == 512);
    CHECK(overlay.height == 256);
    template_mesh obj = read_obj(tmp.path / "vis" / "00001.obj");
    CHECK(obj.num_vertices() == 954);
    CHECK(obj.faces == m.faces());
}

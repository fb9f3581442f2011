// compare_dump: handgraph's side of the agreement check in benchmarks/compare.
//
//   compare_dump --weights W --out DIR [--threads N] [--crop FILE]
//
// Writes DIR/crop.bgr (the 256x256x3 BGR bytes: --crop's, else the demo crop that
// hand_bench times), DIR/params.json (the demo crop_params that hand_bench uses) and
// DIR/handgraph_t<N>.bin: the outputs of one model.estimate() call, little-endian, in
// this order: heatmaps f32 (2, 21, 64, 64), mesh_raw f32 (1280, 3), depths f32 (20),
// uv i32 (21, 2), pose_xyz f32 (21, 3), mesh_xyz f32 (954, 3).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "../../examples/cli.hpp"
#include "handgraph/demo.hpp"
#include "handgraph/handgraph.hpp"
#include "handgraph/io.hpp"
#include "handgraph/json.hpp"

namespace {

template <typename T>
void append(std::string& out, const T* data, std::size_t n) {
    out.append(reinterpret_cast<const char*>(data), n * sizeof(T));
}

int run(int argc, char** argv) {
    std::string weights, out_dir, crop_path;
    int threads = 1;
    for (cli::arguments args(argc, argv, ""); args.next();) {
        const std::string& a = args.flag();
        if (a == "--weights") weights = args.value();
        else if (a == "--out") out_dir = args.value();
        else if (a == "--crop") crop_path = args.value();
        else if (a == "--threads") threads = int(cli::parse_integer(a, args.value(), 1, handgraph::context::max_threads, cli::thread_count_in));
        else throw handgraph::error("unknown argument \"" + a + "\" (usage: compare_dump --weights W --out DIR [--threads N] [--crop FILE])");
    }
    if (weights.empty() || out_dir.empty() || threads < 1) throw handgraph::error("usage: compare_dump --weights W --out DIR [--threads N] [--crop FILE]");

    std::vector<unsigned char> crop;
    if (crop_path.empty()) {
        crop = handgraph::demo_crop();
    } else {
        std::ifstream f(crop_path, std::ios::binary);
        crop.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
        const std::size_t want = std::size_t(handgraph::crop_size) * handgraph::crop_size * 3;
        if (crop.size() != want) throw handgraph::error(crop_path + ": " + std::to_string(crop.size()) + " bytes, a raw 256x256x3 BGR crop has " + std::to_string(want));
    }
    const handgraph::crop_params p = handgraph::demo_params();
    handgraph::model model = handgraph::model::load(weights);
    handgraph::context ctx(threads);
    const handgraph::hand_trace t = model.trace(ctx, handgraph::image_view(crop.data(), handgraph::crop_size, handgraph::crop_size), p);
    const handgraph::hand_estimate& e = t.estimate;

    std::vector<std::int32_t> uv;
    std::vector<float> pose, mesh;
    for (const auto& q : e.uv_px) uv.insert(uv.end(), q.begin(), q.end());
    for (const auto& q : e.pose_cm) pose.insert(pose.end(), q.begin(), q.end());
    for (const auto& q : e.mesh_cm) mesh.insert(mesh.end(), q.begin(), q.end());
    std::string bin;
    append(bin, t.heatmaps.data(), t.heatmaps.size());
    append(bin, t.mesh_nodes.data(), t.mesh_nodes.size());
    append(bin, t.depths.data(), t.depths.size());
    append(bin, uv.data(), uv.size());
    append(bin, pose.data(), pose.size());
    append(bin, mesh.data(), mesh.size());
    handgraph::write_file_atomic(out_dir + "/handgraph_t" + std::to_string(threads) + ".bin", bin);
    handgraph::write_file_atomic(out_dir + "/crop.bgr", std::string(crop.begin(), crop.end()));

    namespace js = handgraph::json;
    auto arr = [](const float* v, int n) {
        std::string s = "[";
        for (int i = 0; i < n; ++i) s += (i ? ", " : "") + js::number(v[i], 9);
        return s + "]";
    };
    std::string params = "{\"cam\": " + arr(p.cam.data(), 4) + ", \"bbox\": " + arr(p.bbox.data(), 4) + ", \"root\": " + arr(p.root_cm.data(), 3) +
                         ", \"scale\": " + arr(&p.scale_cm, 1) + ", \"sizes\": {\"heatmaps\": " + std::to_string(t.heatmaps.size()) +
                         ", \"mesh_raw\": " + std::to_string(t.mesh_nodes.size()) + ", \"depths\": " + std::to_string(t.depths.size()) +
                         ", \"uv\": " + std::to_string(uv.size()) + ", \"pose_xyz\": " + std::to_string(pose.size()) +
                         ", \"mesh_xyz\": " + std::to_string(mesh.size()) + "}}\n";
    handgraph::write_file_atomic(out_dir + "/params.json", params);
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main(run, argc, argv); }

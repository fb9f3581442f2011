// hand_demo: one 256x256 crop in, 2D joints, 3D joints and the hand mesh out.
//
//   hand_demo --weights W --image IMG [--cam fx,fy,u0,v0 --bbox x,y,w,h --root x,y,z
//             --scale s] --json OUT.json [--obj OUT.obj] [--threads N]
//
// Without --weights and --image it runs on the embedded default (a generated crop and a
// deterministic random-weight model of the real shapes) and says so.
#include <chrono>
#include <cmath>
#include <optional>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "handgraph/demo.hpp"
#include "handgraph/image.hpp"
#include "handgraph/io.hpp"
#include "handgraph/handgraph.hpp"
#include "handgraph/json.hpp"

namespace {

const char* usage =
    "usage: hand_demo [--weights W.safetensors] [--image CROP.png|.jpg]\n"
    "                 [--cam fx,fy,u0,v0 --bbox x,y,w,h --root x,y,z --scale s]\n"
    "                 [--json OUT.json] [--obj OUT.obj] [--threads N] [--template T.obj]\n"
    "\n"
    "Runs the hand shape and pose network (Ge et al., CVPR 2019) on one 256x256 crop.\n"
    "  --weights   weight file made by tools/convert_weights.py; without it a\n"
    "              deterministic random-weight model of the real shapes is used\n"
    "              (outputs meaningless, timings real)\n"
    "  --image     the 256x256 crop (PNG/JPEG); without it a generated crop is used\n"
    "  --cam, --bbox, --root, --scale\n"
    "              camera intrinsics (pixels), the crop's box in the original image,\n"
    "              the root joint (cm, camera space) and the hand scale (cm). All four\n"
    "              together give metric outputs; without them the 3D outputs are\n"
    "              normalised: (u/256, v/256, root-relative depth in units of scale)\n"
    "  --json      write uv (21x2), pose_xyz (21x3), mesh_xyz (954x3) and timings\n"
    "  --obj       write the mesh as Wavefront OBJ (954 vertices, 1892 faces)\n"
    "  --threads   threads for inference (default 1)\n"
    "  --template  template OBJ for the random-weight model (default: the release's\n"
    "              in ../shared/data/hand-graph-cnn, else a synthetic one)\n"
    "Values are comma-separated and may be negative: --root -3.2,11.0,42.4\n";

// The crop as BGR bytes, loaded as cv2.imread(IMREAD_COLOR) does (image.hpp: grey is
// replicated, alpha dropped, 16-bit samples keep their high byte; the pixel budget is
// checked before decoding). The network takes exactly 256x256: anything else is refused.
std::vector<unsigned char> load_crop(const std::string& path) {
    handgraph::image img = handgraph::load_image(path);
    if (img.width != handgraph::crop_size || img.height != handgraph::crop_size)
        throw handgraph::error("image '" + path + "' is " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                               ", the network needs a 256x256 crop (crop and resize the hand first)");
    return std::move(img.pixels);
}

int run(int argc, char** argv) {
    std::string weights, image, json_out, obj_out, template_path;
    std::string cam, bbox, root, scale;
    int threads = 1;
    for (cli::arguments args(argc, argv); args.next();) {
        const std::string& a = args.flag();
        if (a == "--help" || a == "-h") {
            std::cout << usage;
            return 0;
        }
        if (a == "--weights") weights = args.value();
        else if (a == "--image") image = args.value();
        else if (a == "--json") json_out = args.value();
        else if (a == "--obj") obj_out = args.value();
        else if (a == "--template") template_path = args.value();
        else if (a == "--cam") cam = args.value();
        else if (a == "--bbox") bbox = args.value();
        else if (a == "--root") root = args.value();
        else if (a == "--scale") scale = args.value();
        else if (a == "--threads") threads = int(cli::parse_integer(a, args.value(), 1, handgraph::context::max_threads, cli::thread_count_in));
        else throw args.unknown();
    }
    int given = !cam.empty() + !bbox.empty() + !root.empty() + !scale.empty();
    if (given != 0 && given != 4) throw handgraph::error("--cam, --bbox, --root and --scale go together (metric outputs need all four)");
    handgraph::crop_params params;
    if (given == 4) {
        params.cam = cli::parse_floats<4>("--cam", cam);
        params.bbox = cli::parse_floats<4>("--bbox", bbox);
        params.root_cm = cli::parse_floats<3>("--root", root);
        params.scale_cm = cli::parse_floats<1>("--scale", scale)[0];
        if (params.cam[0] == 0 || params.cam[1] == 0) throw handgraph::error("--cam: focal lengths must not be zero");
        if (!(params.bbox[2] > 0 && params.bbox[3] > 0)) throw handgraph::error("--bbox: width and height must be positive, got \"" + bbox + "\"");
    }

    if (!json_out.empty()) cli::check_writable("--json", json_out);
    if (!obj_out.empty()) cli::check_writable("--obj", obj_out);

    // The crop before the model: a bad image is refused without loading the weights.
    std::vector<unsigned char> crop = image.empty() ? handgraph::demo_crop() : load_crop(image);
    const handgraph::image_view crop_view(crop.data(), handgraph::crop_size, handgraph::crop_size, handgraph::pixel_format::bgr);

    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    std::string model_desc, template_desc;
    handgraph::model model = [&] {
        if (!weights.empty()) {
            model_desc = weights;
            return handgraph::model::load(weights);
        }
        handgraph::template_mesh t = handgraph::demo_template(template_path, &template_desc);
        model_desc = "random weights (seed 1), template: " + template_desc;
        return handgraph::random_model(1, t);
    }();
    double load_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    bool demo_params = given == 0 && image.empty();
    if (demo_params) params = handgraph::demo_params();
    const bool metric = given == 4 || demo_params;

    handgraph::context ctx(threads);
    auto t1 = clock::now();
    const handgraph::hand_estimate e = model.estimate(ctx, crop_view, metric ? std::optional<handgraph::crop_params>(params) : std::nullopt);
    double run_ms = std::chrono::duration<double, std::milli>(clock::now() - t1).count();
    const handgraph::stage_times st = ctx.last_stage_times();
    const auto& pose = metric ? e.pose_cm : e.pose_uvd;
    const auto& mesh = metric ? e.mesh_cm : e.mesh_uvd;
    // Weights that are finite but damaged (or hostile) can still overflow inside the
    // network: refuse to write NaN/Inf as results.
    for (const auto* v : {pose.data(), mesh.data()})
        for (std::size_t i = 0; i < (v == pose.data() ? pose.size() : mesh.size()); ++i)
            if (!std::isfinite(v[i][0]) || !std::isfinite(v[i][1]) || !std::isfinite(v[i][2]))
                throw handgraph::error("the network's outputs are not finite (NaN or Inf in the 3D joints or mesh): " +
                                       std::string(weights.empty() ? "random weights" : "are the weights in " + weights + " damaged?") +
                                       " Nothing written.");

    std::cerr << "model:   " << model_desc << (weights.empty() ? "  [DEMO: not the released weights; outputs are meaningless]" : "") << "\n"
              << "image:   " << (image.empty() ? "generated demo crop" : image) << "\n"
              << "outputs: " << (metric ? "metric (cm, camera space)" : "normalised (u/256, v/256, root-relative depth / scale): pass --cam --bbox --root --scale for cm") << "\n"
              << "kernels: " << model.kernels() << ", threads " << threads << "\n"
              << "time:    load " << load_ms << " ms, inference " << run_ms << " ms (net_hm " << st.net_hm_ms << ", feature+mesh " << st.feat_mesh_ms
              << ", pose " << st.mesh_pose_ms << ", post " << st.post_ms << ")\n";
    if (json_out.empty() && obj_out.empty()) {
        std::cerr << "(no --json/--obj given: printing 2D joints)\n";
        for (int j = 0; j < handgraph::num_joints; ++j) std::cout << "joint " << j << ": u " << e.uv_px[std::size_t(j)][0] << " v " << e.uv_px[std::size_t(j)][1] << "\n";
    }
    if (!json_out.empty()) {
        namespace js = handgraph::json;
        std::string s = "{\n";
        s += "  \"model\": " + js::quote(model_desc) + ",\n";
        s += "  \"random_weights\": " + std::string(weights.empty() ? "true" : "false") + ",\n";
        s += "  \"image\": " + js::quote(image.empty() ? "generated demo crop" : image) + ",\n";
        s += "  \"metric\": " + std::string(metric ? "true" : "false") + ",\n";
        s += "  \"units\": " + js::quote(metric ? "cm, camera space" : "normalised: u/256, v/256, depth relative to the root joint in units of scale") + ",\n";
        s += "  \"uv\": " + js::matrix(e.uv_px) + ",\n";
        s += "  \"pose_xyz\": " + js::matrix(pose) + ",\n";
        s += "  \"mesh_xyz\": " + js::matrix(mesh) + ",\n";
        s += "  \"timing_ms\": {\"load\": " + js::number(load_ms, 5) + ", \"inference\": " + js::number(run_ms, 5) + ", \"net_hm\": " + js::number(st.net_hm_ms, 5) +
             ", \"feat_mesh\": " + js::number(st.feat_mesh_ms, 5) + ", \"mesh_pose\": " + js::number(st.mesh_pose_ms, 5) + ", \"post\": " + js::number(st.post_ms, 5) + "},\n";
        s += "  \"threads\": " + std::to_string(threads) + "\n}\n";
        handgraph::write_file_atomic(json_out, s);
        std::cerr << "wrote " << json_out << "\n";
    }
    if (!obj_out.empty()) {
        std::vector<float> flat;
        for (const auto& v : mesh) flat.insert(flat.end(), v.begin(), v.end());
        handgraph::write_file_atomic(obj_out, handgraph::obj_text(flat, model.faces(), "handgraph mesh, " + std::string(metric ? "cm" : "normalised")));
        std::cerr << "wrote " << obj_out << "\n";
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main(run, argc, argv); }

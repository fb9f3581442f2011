// hand_demo: a photo (or a crop) in, the hands' 2D joints, 3D joints and meshes out.
//
//   hand_demo --image IMG [--hand-box x,y,w,h] [--margin m] [--cam fx,fy,u0,v0]
//             [--scale s] [--root x,y,z] [--hand left|right] --json OUT.json
//             [--obj OUT.obj] [--ply OUT.ply] [--overlay OUT.png] [--threads N]
//   hand_demo --image PHOTO [--max-hands N] [--detector FILE] ...   (no --hand-box: the
//             hands are found by MediaPipe's palm detector, each is estimated)
//   hand_demo --image CROP --bbox x,y,w,h --cam fx,fy,u0,v0 [--root x,y,z] [--scale s] ...
//
// Without --weights and --image it runs on the embedded default (a generated crop and a
// deterministic random-weight model of the real shapes) and says so.
#include <chrono>
#include <filesystem>
#include <cmath>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "hands_json.hpp"
#include "handgraph/demo.hpp"
#include "handgraph/detector.hpp"
#include "handgraph/eval/mesh_render.hpp"
#include "handgraph/eval/render.hpp"
#include "handgraph/handgraph.hpp"
#include "handgraph/image.hpp"
#include "handgraph/io.hpp"
#include "handgraph/json.hpp"

namespace {

const char* usage =
    "usage: hand_demo [--weights W.safetensors] [--image IMG.png|.jpg] [--hand-box x,y,w,h] [--margin m]\n"
    "                 [--bbox x,y,w,h] [--cam fx,fy,u0,v0] [--scale s] [--root x,y,z] [--hand left|right]\n"
    "                 [--json OUT.json] [--obj OUT.obj] [--ply OUT.ply] [--overlay OUT.png]\n"
    "                 [--units cm|normalised] [--threads N] [--template T.obj]\n"
    "                 [--max-hands N] [--detector D.safetensors]\n"
    "\n"
    "Runs the hand shape and pose network (Ge et al., CVPR 2019) on the hands of an image.\n"
    "  --weights   weight file made by tools/convert_weights.py; without it a\n"
    "              deterministic random-weight model of the real shapes is used\n"
    "              (outputs meaningless, timings real)\n"
    "  --image     the picture (PNG/JPEG, any size); without it a generated crop is used\n"
    "  --hand-box  the hand's box in the image, pixels; the crop is the square centred on\n"
    "              it of side max(w, h) x --margin (default 1), zero-padded where it leaves\n"
    "              the image. Without it (and without --bbox), an image that is not\n"
    "              256x256 has its hands found by the palm detector; a 256x256 image is\n"
    "              the crop\n"
    "  --max-hands the most hands to find and estimate (default 2, best first)\n"
    "  --detector  the palm detector (tools/convert_palm.py output; default\n"
    "              weights/palm_detection_full.safetensors, made by\n"
    "              tools/get_palm_detector.sh). The detector does not tell left from\n"
    "              right: --hand applies to every hand found\n"
    "  --bbox      instead: the 256x256 image is itself a crop, cut from a larger frame at\n"
    "              this box (the evaluation protocols); --cam is then that frame's camera\n"
    "  --cam       camera intrinsics in pixels; default: assumed, focal max(W, H), the\n"
    "              principal point at the image's centre (said in the output)\n"
    "  --scale     the hand's scale: the middle finger's first bone, cm (default 5)\n"
    "  --root      the root joint (wrist) in camera space, cm; default: solved from the 2D\n"
    "              joints, the relative depths and the scale (closed form)\n"
    "  --hand      left or right (default right): a left hand is mirrored for the network\n"
    "              and its outputs mirrored back\n"
    "  --json      write the result (schema handgraph-hands/1: image, hands[...] with box,\n"
    "              box_source, uv, uv_image, pose_xyz, mesh_xyz, camera, root, ...; found\n"
    "              hands also detection_score and palm_keypoints; README). The top-level\n"
    "              uv, pose_xyz, mesh_xyz are the first hand's (null when none was found)\n"
    "  --obj, --ply  write the (first) hand's mesh (954 vertices, 1892 faces); not written\n"
    "              when no hand is found\n"
    "  --overlay   write the image with the 2D skeletons and the shaded meshes drawn on it\n"
    "              (and the boxes of the hands found)\n"
    "  --units     cm (default: camera space) or normalised (u/256, v/256, depth relative\n"
    "              to the root in units of scale: the network's own output)\n"
    "  --threads   threads for inference (default 1)\n"
    "  --template  template OBJ for the random-weight model (default: the release's\n"
    "              in ../shared/data/hand-graph-cnn, else a synthetic one)\n"
    "Values are comma-separated and may be negative: --root -3.2,11.0,42.4\n";

using hands_json::draw_detection;
using hands_json::flat;
using hands_json::overlay;

int run(int argc, char** argv) {
    std::string weights, image_path, json_out, obj_out, ply_out, overlay_out, template_path, units = "cm";
    std::string cam, bbox, hand_box, root, scale, side = "right", margin;
    std::string detector_path = "weights/palm_detection_full.safetensors";
    bool detector_given = false;
    int threads = 1, max_hands = 2;
    for (cli::arguments args(argc, argv); args.next();) {
        const std::string& a = args.flag();
        if (a == "--help" || a == "-h") {
            std::cout << usage;
            return 0;
        }
        if (a == "--weights") weights = args.value();
        else if (a == "--image") image_path = args.value();
        else if (a == "--json") json_out = args.value();
        else if (a == "--obj") obj_out = args.value();
        else if (a == "--ply") ply_out = args.value();
        else if (a == "--overlay") overlay_out = args.value();
        else if (a == "--template") template_path = args.value();
        else if (a == "--cam") cam = args.value();
        else if (a == "--bbox") bbox = args.value();
        else if (a == "--hand-box") hand_box = args.value();
        else if (a == "--margin") margin = args.value();
        else if (a == "--root") root = args.value();
        else if (a == "--scale") scale = args.value();
        else if (a == "--hand") side = args.value();
        else if (a == "--units") units = args.value();
        else if (a == "--threads") threads = int(cli::parse_integer(a, args.value(), 1, handgraph::context::max_threads, cli::thread_count_in));
        else if (a == "--max-hands") max_hands = int(cli::parse_integer(a, args.value(), 1, 2016, cli::whole_number_in));
        else if (a == "--detector") detector_path = args.value(), detector_given = true;
        else throw args.unknown();
    }
    // Every flag is checked before anything is read or written.
    handgraph::photo_options opt;
    if (side == "left") opt.side = handgraph::hand_side::left;
    else if (side != "right") throw handgraph::error("--hand: \"" + side + "\" is not left or right");
    if (units != "cm" && units != "normalised") throw handgraph::error("--units: \"" + units + "\" is not cm or normalised");
    if (!cam.empty()) {
        opt.camera = cli::parse_floats<4>("--cam", cam);
        if (!((*opt.camera)[0] > 0) || !((*opt.camera)[1] > 0)) throw handgraph::error("--cam: focal lengths must be positive, got \"" + cam + "\"");
    }
    if (!bbox.empty() && !hand_box.empty()) throw handgraph::error("--bbox and --hand-box do not go together: --bbox says the image is a crop of a larger frame, --hand-box where the hand is in the image");
    if (!bbox.empty()) {
        opt.crop_box = cli::parse_floats<4>("--bbox", bbox);
        if (!((*opt.crop_box)[2] > 0 && (*opt.crop_box)[3] > 0)) throw handgraph::error("--bbox: width and height must be positive, got \"" + bbox + "\"");
        if (!opt.camera) throw handgraph::error("--bbox places the crop in a larger frame: give that frame's camera with --cam");
    }
    if (!hand_box.empty()) {
        opt.hand_box = cli::parse_floats<4>("--hand-box", hand_box);
        if (!((*opt.hand_box)[2] > 0 && (*opt.hand_box)[3] > 0)) throw handgraph::error("--hand-box: width and height must be positive, got \"" + hand_box + "\"");
    }
    if (!margin.empty()) {
        opt.margin = cli::parse_floats<1>("--margin", margin)[0];
        if (!(opt.margin > 0) || opt.margin > 100) throw handgraph::error("--margin: \"" + margin + "\" is not a factor in (0, 100]");
    }
    if (!scale.empty()) {
        opt.scale_cm = cli::parse_floats<1>("--scale", scale)[0];
        if (!(opt.scale_cm > 0)) throw handgraph::error("--scale: the hand's scale must be positive (cm), got \"" + scale + "\"");
    }
    if (!root.empty()) opt.root_cm = cli::parse_floats<3>("--root", root);
    for (auto [flag, path] : {std::pair{"--json", &json_out}, std::pair{"--obj", &obj_out}, std::pair{"--ply", &ply_out},
                              std::pair{"--overlay", &overlay_out}})
        if (!path->empty()) cli::check_writable(flag, *path);

    // The image before the model: a bad image is refused without loading the weights.
    handgraph::image img;
    const bool demo_image = image_path.empty();
    if (demo_image) {
        img = handgraph::image(handgraph::crop_size, handgraph::crop_size);
        img.pixels = handgraph::demo_crop();
        if (!opt.hand_box && !opt.crop_box) {  // the embedded default: the demo crop's place in a frame
            const handgraph::crop_params d = handgraph::demo_params();
            opt.crop_box = d.bbox;
            if (!opt.camera) opt.camera = d.cam;
            if (!opt.root_cm && scale.empty()) opt.root_cm = d.root_cm;
            if (scale.empty()) opt.scale_cm = d.scale_cm;
        }
    } else {
        img = handgraph::load_image(image_path);
    }
    // No box and not a 256x256 crop: the hands are found by the palm detector.
    const bool detect = !demo_image && !opt.hand_box && !opt.crop_box && (img.width != handgraph::crop_size || img.height != handgraph::crop_size);
    if (!margin.empty() && !opt.hand_box && !detect) throw handgraph::error("--margin applies to --hand-box (or to the boxes of the hands found)");
    if (!detect && (detector_given || max_hands != 2))
        throw handgraph::error("--detector and --max-hands apply when the hands are found: an image that is not 256x256, without --hand-box or --bbox");
    if (detect && !root.empty() && max_hands > 1)
        throw handgraph::error("--root gives one hand's root joint: with hands found by the detector, add --max-hands 1 (or give --hand-box)");
    std::optional<handgraph::palm_detector> detector;
    if (detect)
        detector = hands_json::load_detector(detector_path,
                                             "image '" + image_path + "' is " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                                                 " and no --hand-box was given: ",
                                             "or give --detector FILE, or the hand's box with --hand-box x,y,w,h; a 256x256 image is used as the crop");

    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    std::string model_desc;
    handgraph::model model = hands_json::load_hand_model(weights, template_path, model_desc);
    const double load_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();

    handgraph::context ctx(threads);
    auto t1 = clock::now();
    // One result per hand: the box given (or the whole image, or the frame crop), or each
    // hand the detector found (palms[i] its detection).
    std::vector<handgraph::hand_result> results;
    std::vector<handgraph::palm_detection> palms;
    double detect_ms = 0;
    if (detect) {
        const auto d0 = clock::now();
        palms = detector->find_hands(ctx, handgraph::view_of(img), max_hands);
        detect_ms = std::chrono::duration<double, std::milli>(clock::now() - d0).count();
        for (const handgraph::palm_detection& d : palms) {
            handgraph::photo_options o = opt;
            o.hand_box = d.hand_box;
            results.push_back(model.estimate_hand(ctx, handgraph::view_of(img), o));
            results.back().box_from = handgraph::box_source::detected;
        }
    } else {
        results.push_back(model.estimate_hand(ctx, handgraph::view_of(img), opt));
    }
    const double run_ms = std::chrono::duration<double, std::milli>(clock::now() - t1).count();
    const handgraph::stage_times st = ctx.last_stage_times();
    const bool metric = units == "cm";
    auto pose_of = [&](const handgraph::hand_result& h) -> const auto& { return metric ? h.estimate.pose_cm : h.estimate.pose_uvd; };
    auto mesh_of = [&](const handgraph::hand_result& h) -> const auto& { return metric ? h.estimate.mesh_cm : h.estimate.mesh_uvd; };
    // Weights that are finite but damaged (or hostile) can still overflow inside the
    // network: refuse to write NaN/Inf as results.
    auto finite = [](const auto& pts) {
        for (const auto& p : pts)
            for (float v : p)
                if (!std::isfinite(v)) return false;
        return true;
    };
    for (const handgraph::hand_result& h : results)
        if (!finite(pose_of(h)) || !finite(mesh_of(h)) || !finite(h.estimate.pose_cm) || !finite(h.estimate.mesh_cm))
            throw handgraph::error("the network's outputs are not finite (NaN or Inf in the 3D joints or mesh): " +
                                   std::string(weights.empty() ? "random weights" : "are the weights in " + weights + " damaged?") + " Nothing written.");

    const std::string image_desc = demo_image ? "generated demo crop" : image_path;
    const std::string units_desc = metric ? "cm, camera space" : "normalised: u/256, v/256, depth relative to the root joint in units of scale";
    std::cerr << "model:   " << model_desc << (weights.empty() ? "  [DEMO: not the released weights; outputs are meaningless]" : "") << "\n"
              << "image:   " << image_desc << " (" << img.width << "x" << img.height << ")\n";
    if (detect)
        std::cerr << "hands:   " << palms.size() << " found (at most " << max_hands << ") by " << detector->model_name() << " (" << detector_path << ") in "
                  << detect_ms << " ms; the detector does not tell left from right: every hand is taken as " << handgraph::to_string(opt.side) << "\n";
    if (results.empty())
        std::cerr << "no hand found in '" << image_desc << "': the JSON's \"hands\" is empty, its uv, pose_xyz and mesh_xyz are null"
                  << (obj_out.empty() && ply_out.empty() ? "" : "; no mesh file written") << "\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
        const handgraph::hand_result& r = results[i];
        char camera_line[160];
        std::snprintf(camera_line, sizeof camera_line, "%.6g, %.6g, %.6g, %.6g (%s)", double(r.camera[0]), double(r.camera[1]), double(r.camera[2]),
                      double(r.camera[3]), r.camera_assumed ? "assumed from the image size: pass --cam" : "given");
        std::cerr << (results.size() > 1 ? "hand " + std::to_string(i) + ":  " : "hand:    ") << handgraph::to_string(r.side) << ", box " << r.box[0] << ","
                  << r.box[1] << "," << r.box[2] << "," << r.box[3] << " (" << handgraph::to_string(r.box_from);
        if (detect) std::cerr << ", score " << palms[i].score;
        std::cerr << ")\n"
                  << "camera:  " << camera_line << "\n"
                  << "root:    " << handgraph::to_string(r.root) << ", scale " << r.scale_cm << " cm\n";
    }
    std::cerr << "outputs: " << units_desc << "\n"
              << "kernels: " << model.kernels() << ", threads " << threads << "\n"
              << "time:    load " << load_ms << " ms, inference " << run_ms << " ms" << (detect ? " (detector " + std::to_string(detect_ms) + " ms)" : "")
              << " (last hand: net_hm " << st.net_hm_ms << ", feature+mesh " << st.feat_mesh_ms << ", pose " << st.mesh_pose_ms << ", post " << st.post_ms
              << ")\n";
    if (json_out.empty() && obj_out.empty() && ply_out.empty() && overlay_out.empty()) {
        std::cerr << "(no --json/--obj/--ply/--overlay given: printing 2D joints in image pixels)\n";
        for (std::size_t i = 0; i < results.size(); ++i)
            for (int j = 0; j < handgraph::num_joints; ++j)
                std::cout << (results.size() > 1 ? "hand " + std::to_string(i) + " " : "") << "joint " << j << ": u "
                          << results[i].uv_image[std::size_t(j)][0] << " v " << results[i].uv_image[std::size_t(j)][1] << "\n";
    }
    // All outputs are made in memory first, then written (each atomically).
    std::vector<std::pair<std::string, std::string>> files;
    if (!json_out.empty()) {
        namespace js = handgraph::json;
        std::string hands;
        for (std::size_t i = 0; i < results.size(); ++i) {
            const handgraph::hand_result& r = results[i];
            hands_json::hand_entry_options o;
            o.metric = metric;
            if (detect) o.palm = &palms[i];
            const std::string hand = hands_json::hand_entry(r, o);
            hands += (i ? ",\n" : "") + hand;
        }
        const handgraph::hand_result* first = results.empty() ? nullptr : &results.front();
        std::string s = "{\n";
        s += "  \"schema\": \"handgraph-hands/1\",\n";
        s += "  \"model\": " + js::quote(model_desc) + ",\n";
        s += "  \"random_weights\": " + std::string(weights.empty() ? "true" : "false") + ",\n";
        s += "  \"image\": {\"path\": " + js::quote(image_desc) + ", \"width\": " + std::to_string(img.width) + ", \"height\": " + std::to_string(img.height) + "},\n";
        if (detect)
            s += "  \"detector\": {\"path\": " + js::quote(detector_path) + ", \"model\": " + js::quote(detector->model_name()) +
                 ", \"max_hands\": " + std::to_string(max_hands) + ", \"found\": " + std::to_string(palms.size()) + "},\n";
        s += "  \"metric\": " + std::string(metric ? "true" : "false") + ",\n";
        s += "  \"units\": " + js::quote(units_desc) + ",\n";
        s += "  \"uv\": " + (first ? js::matrix(first->estimate.uv_px) : std::string("null")) + ",\n";
        s += "  \"pose_xyz\": " + (first ? js::matrix(pose_of(*first)) : std::string("null")) + ",\n";
        s += "  \"mesh_xyz\": " + (first ? js::matrix(mesh_of(*first)) : std::string("null")) + ",\n";
        s += "  \"hands\": [" + (hands.empty() ? std::string("]") : "\n" + hands + "\n  ]") + ",\n";
        s += "  \"timing_ms\": {\"load\": " + js::number(load_ms, 5) + ", \"inference\": " + js::number(run_ms, 5) +
             (detect ? ", \"detector\": " + js::number(detect_ms, 5) : std::string()) + ", \"net_hm\": " + js::number(st.net_hm_ms, 5) +
             ", \"feat_mesh\": " + js::number(st.feat_mesh_ms, 5) + ", \"mesh_pose\": " + js::number(st.mesh_pose_ms, 5) + ", \"post\": " + js::number(st.post_ms, 5) + "},\n";
        s += "  \"threads\": " + std::to_string(threads) + "\n}\n";
        files.emplace_back(json_out, s);
    }
    if (!results.empty()) {
        const handgraph::hand_result& r = results.front();
        const std::string mesh_comment = "handgraph mesh, " + std::string(metric ? "cm, camera space" : "normalised") + ", " + handgraph::to_string(r.side) + " hand";
        if (!obj_out.empty()) files.emplace_back(obj_out, handgraph::obj_text(flat(mesh_of(r)), model.faces(r.side), mesh_comment));
        if (!ply_out.empty()) files.emplace_back(ply_out, handgraph::ply_text(flat(mesh_of(r)), model.faces(r.side), mesh_comment));
    }
    if (!overlay_out.empty()) {
        handgraph::image pic = img;
        for (const handgraph::hand_result& r : results) pic = overlay(pic, r, model);
        for (const handgraph::palm_detection& d : palms) draw_detection(pic, d);
        handgraph::write_png(overlay_out, pic);
    }
    for (const auto& [path, text] : files) handgraph::write_file_atomic(path, text);
    std::vector<const std::string*> written = {&json_out, &overlay_out};
    if (!results.empty()) written.insert(written.end(), {&obj_out, &ply_out});
    for (const std::string* p : written)
        if (!p->empty()) std::cerr << "wrote " << *p << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main(run, argc, argv); }

// hands_json.hpp: what hand_demo and hand_track share about one hand's result: its entry
// of the `hands` list (schema handgraph-hands/1, README "A photo in"), written either as
// hand_demo's indented lines or on one line (hand_track's frames.jsonl), and the overlay
// drawing (the shaded mesh, the 2D skeleton, a detection's boxes and keypoints), and how
// both load the hand model and the palm detector.
// Not part of the installed library.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "handgraph/demo.hpp"
#include "handgraph/detector.hpp"
#include "handgraph/eval/mesh_render.hpp"
#include "handgraph/eval/render.hpp"
#include "handgraph/handgraph.hpp"
#include "handgraph/image.hpp"
#include "handgraph/json.hpp"

namespace hands_json {

template <std::size_t N>
std::vector<float> flat(const std::array<std::array<float, 3>, N>& points) {
    std::vector<float> out;
    out.reserve(N * 3);
    for (const auto& p : points) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// How one hand entry is laid out and what it adds to hand_demo's fields.
struct hand_entry_options {
    bool metric = true;                                // cm (pose_cm, mesh_cm) or normalised (pose_uvd, mesh_uvd)
    bool pretty = true;                                // hand_demo's indented lines, or one line
    const handgraph::palm_detection* palm = nullptr;   // the detection it came from: detection_score, palm_keypoints, ...
    std::string leading_fields;                        // written first, e.g. "\"id\": 3" (one line's fields, comma-separated)
    std::string box_source;                            // replaces to_string(r.box_from) when not empty
};

// One entry of `hands`. pretty: exactly hand_demo's text ("    {\n      \"side\": ..."); else
// the same keys and numbers on one line.
inline std::string hand_entry(const handgraph::hand_result& r, const hand_entry_options& o) {
    namespace js = handgraph::json;
    const std::string open = o.pretty ? "    {\n" : "{";
    const std::string ind = o.pretty ? "      " : "";
    const std::string sep = o.pretty ? ",\n" : ", ";
    const std::string close = o.pretty ? "\n    }" : "}";
    const auto& pose = o.metric ? r.estimate.pose_cm : r.estimate.pose_uvd;
    const auto& mesh = o.metric ? r.estimate.mesh_cm : r.estimate.mesh_uvd;
    const std::string root_desc = r.root == handgraph::root_method::given ? "given" : "estimated";
    std::string h = open;
    if (!o.leading_fields.empty()) h += ind + o.leading_fields + sep;
    h += ind + "\"side\": " + js::quote(handgraph::to_string(r.side)) + sep;
    h += ind + "\"box\": [" + js::number(r.box[0]) + ", " + js::number(r.box[1]) + ", " + js::number(r.box[2]) + ", " + js::number(r.box[3]) + "]" + sep;
    h += ind + "\"box_source\": " + js::quote(o.box_source.empty() ? std::string(handgraph::to_string(r.box_from)) : o.box_source) + sep;
    if (o.palm) {
        const handgraph::palm_detection& d = *o.palm;
        h += ind + "\"detection_score\": " + js::number(d.score) + sep;
        h += ind + "\"palm_keypoints\": " + js::matrix(d.keypoints) + sep;
        h += ind + "\"palm_box\": [" + js::number(d.palm_box[0]) + ", " + js::number(d.palm_box[1]) + ", " + js::number(d.palm_box[2]) + ", " +
             js::number(d.palm_box[3]) + "]" + sep;
        h += ind + "\"hand_region\": {\"center\": [" + js::number(d.region_center[0]) + ", " + js::number(d.region_center[1]) +
             "], \"side\": " + js::number(d.region_side) + ", \"rotation_rad\": " + js::number(d.region_rotation) + "}" + sep;
    }
    h += ind + "\"uv\": " + js::matrix(r.estimate.uv_px) + sep;
    h += ind + "\"uv_image\": " + js::matrix(r.uv_image) + sep;
    h += ind + "\"pose_xyz\": " + js::matrix(pose) + sep;
    h += ind + "\"mesh_xyz\": " + js::matrix(mesh) + sep;
    h += ind + "\"units\": " + js::quote(o.metric ? "cm" : "normalised") + sep;
    h += ind + "\"root\": " + js::quote(root_desc) + sep;
    h += ind + "\"root_method\": " + js::quote(handgraph::to_string(r.root)) + sep;
    h += ind + "\"root_xyz\": [" + js::number(r.estimate.pose_cm[0][0]) + ", " + js::number(r.estimate.pose_cm[0][1]) + ", " +
         js::number(r.estimate.pose_cm[0][2]) + "]" + sep;
    h += ind + "\"camera\": [" + js::number(r.camera[0]) + ", " + js::number(r.camera[1]) + ", " + js::number(r.camera[2]) + ", " +
         js::number(r.camera[3]) + "]" + sep;
    h += ind + "\"camera_source\": " + js::quote(r.camera_assumed ? "assumed" : "given") + sep;
    h += ind + "\"scale_cm\": " + js::number(r.scale_cm) + close;
    return h;
}

// The picture with the hand drawn on: the mesh, shaded and projected with the camera used,
// then the 2D skeleton. For a frame crop (--bbox) the picture is the crop, so the mesh is
// projected into the crop's box.
inline handgraph::image overlay(const handgraph::image& img, const handgraph::hand_result& r, const handgraph::model& m) {
    handgraph::image out = img;
    const std::array<double, 4> cam{r.camera[0], r.camera[1], r.camera[2], r.camera[3]};
    std::array<int, 4> box{0, 0, img.width, img.height};
    if (r.box_from == handgraph::box_source::frame_crop)
        box = {int(std::lround(r.box[0])), int(std::lround(r.box[1])), int(std::lround(r.box[2])), int(std::lround(r.box[3]))};
    handgraph::render_mesh(out, flat(r.estimate.mesh_cm), m.faces(r.side), cam, box);
    handgraph::uv21 uv{};
    for (std::size_t j = 0; j < handgraph::pose_joint_count; ++j) {
        if (r.box_from == handgraph::box_source::frame_crop) uv[j] = {double(r.estimate.uv_px[j][0]), double(r.estimate.uv_px[j][1])};
        else uv[j] = {double(r.uv_image[j][0]), double(r.uv_image[j][1])};
    }
    handgraph::draw_skeleton(out, uv, std::max(2.0, double(std::max(img.width, img.height)) / 300.0));
    return out;
}

// An axis-aligned box (x, y, w, h) drawn with lines of thickness t.
inline void draw_box(handgraph::image& img, const std::array<float, 4>& b, const handgraph::bgr& colour, double t) {
    const double x0 = b[0], y0 = b[1], x1 = x0 + b[2], y1 = y0 + b[3];
    handgraph::draw_line(img, x0, y0, x1, y0, colour, t);
    handgraph::draw_line(img, x1, y0, x1, y1, colour, t);
    handgraph::draw_line(img, x1, y1, x0, y1, colour, t);
    handgraph::draw_line(img, x0, y1, x0, y0, colour, t);
}

// A hand the detector found: its crop box (the square handed to the network, white), the
// palm's keypoints (yellow) and MediaPipe's rotated hand region (thin, grey).
inline void draw_detection(handgraph::image& img, const handgraph::palm_detection& d) {
    const double t = std::max(2.0, double(std::max(img.width, img.height)) / 300.0);
    const handgraph::bgr white{255, 255, 255}, yellow{0, 220, 255}, grey{160, 160, 160};
    draw_box(img, d.hand_box, white, t);
    const double c = std::cos(d.region_rotation), s = std::sin(d.region_rotation), h = d.region_side / 2;
    const double corner[4][2] = {{-h, -h}, {h, -h}, {h, h}, {-h, h}};
    for (int k = 0; k < 4; ++k) {
        const double* a = corner[k];
        const double* b = corner[(k + 1) % 4];
        handgraph::draw_line(img, d.region_center[0] + a[0] * c - a[1] * s, d.region_center[1] + a[0] * s + a[1] * c, d.region_center[0] + b[0] * c - b[1] * s,
                             d.region_center[1] + b[0] * s + b[1] * c, grey, std::max(1.0, t / 2));
    }
    for (const auto& k : d.keypoints) handgraph::draw_disc(img, k[0], k[1], t + 1, yellow);
}

// The hand model of --weights, or without it the embedded random-weight model (seed 1) on the
// template of --template (or the one demo_template finds); `desc` says which.
inline handgraph::model load_hand_model(const std::string& weights, const std::string& template_path, std::string& desc) {
    if (!weights.empty()) {
        desc = weights;
        return handgraph::model::load(weights);
    }
    std::string template_desc;
    handgraph::template_mesh t = handgraph::demo_template(template_path, &template_desc);
    desc = "random weights (seed 1), template: " + template_desc;
    return handgraph::random_model(1, t);
}

// The palm detector at `path`. Not a file: one error, `context` + what is missing + how to
// get it, then `alternatives` (the caller's other ways) in parentheses.
inline handgraph::palm_detector load_detector(const std::string& path, const std::string& context, const std::string& alternatives) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        throw handgraph::error(context + "finding the hands needs the palm detector '" + path + "', which " +
                               (std::filesystem::exists(path, ec) ? "is not a file" : "does not exist") +
                               ": run tools/get_palm_detector.sh (" + alternatives + ")");
    return handgraph::palm_detector::load(path);
}

}  // namespace hands_json

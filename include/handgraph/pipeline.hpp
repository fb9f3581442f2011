// handgraph/pipeline.hpp: the prepared model behind handgraph::model (internal): the three
// networks with their weights, the hand graph, and the way from a 256x256 crop to 2D
// joints, 3D joints and the 954-vertex mesh (spec section 4).
//
// hand_model is immutable after construction: every call takes the exec of a context
// (context.hpp: its threads and scratch), so one model serves any number of threads, each
// with its own context.
// Depends on handgraph.hpp (the result types), context.hpp, model.hpp, graph.hpp, weights.hpp.
#pragma once
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "context.hpp"
#include "crop.hpp"
#include "error.hpp"
#include "graph.hpp"
#include "handgraph.hpp"
#include "model.hpp"
#include "obj.hpp"
#include "root.hpp"
#include "weights.hpp"

namespace handgraph {
namespace detail {

// Bilinear resize of a 64x64 map to 256x256 as PyTorch's interpolate(align_corners=False),
// then the flat index of the first maximum (row-major). An interpolated value never
// exceeds the largest of its four source values (up to rounding), so output rows whose
// two source rows stay below a value already reached cannot hold the maximum and are
// skipped; the rows that remain are evaluated in full, in order, as before.
inline int upsampled_argmax(const feature_map& hm, int joint) {
    constexpr int in = heatmap_size, out = input_size;
    struct taps {
        std::array<int, out> i0{}, i1{};
        std::array<float, out> l0{}, l1{};
        taps() {
            const float scale = float(in) / float(out);
            for (int d = 0; d < out; ++d) {
                float s = std::max(scale * (float(d) + 0.5f) - 0.5f, 0.0f);
                int i = int(s);
                float w1 = s - float(i);
                i0[std::size_t(d)] = i;
                i1[std::size_t(d)] = i + (i < in - 1 ? 1 : 0);
                l1[std::size_t(d)] = w1;
                l0[std::size_t(d)] = 1.0f - w1;
            }
        }
    };
    static const taps t;
    std::array<float, in * in> m;
    std::array<float, in> row_max;
    int sy = 0, sx = 0;
    for (int y = 0; y < in; ++y) {
        float rm = -std::numeric_limits<float>::infinity();
        for (int x = 0; x < in; ++x) {
            float v = hm.at(joint, y, x);
            m[std::size_t(y * in + x)] = v;
            rm = std::max(rm, v);
            if (v > m[std::size_t(sy * in + sx)]) { sy = y; sx = x; }
        }
        row_max[std::size_t(y)] = rm;
    }
    auto value = [&](int v, int u) {
        const int y0 = t.i0[std::size_t(v)], y1 = t.i1[std::size_t(v)], a = t.i0[std::size_t(u)], b = t.i1[std::size_t(u)];
        const float* r0 = &m[std::size_t(y0 * in)];
        const float* r1 = &m[std::size_t(y1 * in)];
        return t.l0[std::size_t(v)] * (t.l0[std::size_t(u)] * r0[a] + t.l1[std::size_t(u)] * r0[b]) +
               t.l1[std::size_t(v)] * (t.l0[std::size_t(u)] * r1[a] + t.l1[std::size_t(u)] * r1[b]);
    };
    // A value the maximum reaches: the output pixel nearest the source maximum.
    const float reached = value(std::min(out - 1, 4 * sy + 2), std::min(out - 1, 4 * sx + 2));
    int best = 0;
    float best_v = -std::numeric_limits<float>::infinity();
    for (int v = 0; v < out; ++v) {
        float bound = std::max(row_max[std::size_t(t.i0[std::size_t(v)])], row_max[std::size_t(t.i1[std::size_t(v)])]);
        bound += std::fabs(bound) * 1e-5f + 1e-30f;  // rounding of the interpolation
        if (bound < reached) continue;
        for (int u = 0; u < out; ++u) {
            float val = value(v, u);
            if (val > best_v) {
                best_v = val;
                best = v * out + u;
            }
        }
    }
    return best;
}

// Normalised (u, v, depth) to camera space in cm (spec section 4):
//   x_img = u * w + x, y_img = v * h + y, z = depth * scale + root_z,
//   X = (x_img - u0) / fx * z, Y = (y_img - v0) / fy * z.
// Computed in double: the products and sums partly cancel (u * w + x - u0, with x and u0
// hundreds of pixels), so in float the result is more than 1 ulp from the exact value on
// 64% of random crops, by up to 1.5e5 ulps near the principal point; in double it is the
// float nearest the exact value (0 ulps off in 20000 crops; tests/test_postprocess.cpp).
// `mirrored`: un is a column of the mirrored crop (a left hand): u_n becomes 255/256 - u_n,
// in double, so a mirrored image gives exactly mirrored coordinates.
inline double crop_u_to_image(float un, const crop_params& p, bool mirrored) {
    const double u = mirrored ? double(input_size - 1) / double(input_size) - double(un) : double(un);
    return u * p.bbox[2] + p.bbox[0];
}

inline point3f uvd_to_xyz(float un, float vn, float d, const crop_params& p, bool mirrored = false) {
    const double u = crop_u_to_image(un, p, mirrored);
    const double v = double(vn) * p.bbox[3] + p.bbox[1];
    const double z = double(d) * p.scale_cm + p.root_cm[2];
    return {float((u - p.cam[2]) / p.cam[0] * z), float((v - p.cam[3]) / p.cam[1] * z), float(z)};
}

// The crop as the network's input map: B, G, R in [-0.5, 0.5] (pixel / 255 - 0.5), with the
// zero border of 3 that conv1 (7x7, pad 3) reads.
inline void crop_to_input(const image_view& crop, feature_map& input) {
    crop.check("crop");
    if (crop.width != input_size || crop.height != input_size)
        throw error("crop is " + std::to_string(crop.width) + "x" + std::to_string(crop.height) + ", the network needs " +
                    std::to_string(input_size) + "x" + std::to_string(input_size));
    int ch[3] = {0, 1, 2};  // source channel of B, G, R
    if (crop.format == pixel_format::rgb || crop.format == pixel_format::rgba) ch[0] = 2, ch[2] = 0;
    if (crop.format == pixel_format::gray) ch[1] = ch[2] = 0;
    const int n = channel_count(crop.format);
    const std::ptrdiff_t stride = crop.stride();
    input.reset(input_size, input_size, 3, 3);
    for (int y = 0; y < input_size; ++y) {
        const std::uint8_t* row = crop.data + std::ptrdiff_t(y) * stride;
        for (int x = 0; x < input_size; ++x) {
            const std::uint8_t* px = row + std::ptrdiff_t(x) * n;
            float* d = input.pixel(y, x);
            for (int c = 0; c < 3; ++c) d[c] = float(px[ch[c]]) / 255.0f - 0.5f;
        }
    }
}

// The uvd-to-xyz of every joint and vertex with p (the root joint is p.root_cm).
// `mirrored`: e's normalised outputs are still those of the mirrored crop (a left hand).
inline void fill_camera_space(hand_estimate& e, const crop_params& p, bool mirrored = false) {
    e.metric = true;
    e.pose_cm[0] = p.root_cm;
    for (int j = 1; j < num_joints; ++j) {
        const point3f& q = e.pose_uvd[std::size_t(j)];
        e.pose_cm[std::size_t(j)] = uvd_to_xyz(q[0], q[1], q[2], p, mirrored);
    }
    for (std::size_t v = 0; v < e.mesh_uvd.size(); ++v) {
        const point3f& q = e.mesh_uvd[v];
        e.mesh_cm[v] = uvd_to_xyz(q[0], q[1], q[2], p, mirrored);
    }
}

// The root solved for an estimate whose crop was cut at p.bbox with camera p.cam, scale
// p.scale_cm: p with root_cm filled in.
inline crop_params solve_root_params(const hand_estimate& e, crop_params p, root_method* method, bool mirrored = false) {
    std::array<std::array<double, 2>, num_joints> uv{};
    std::array<double, num_joints> depth{};
    for (int j = 0; j < num_joints; ++j) {
        const point3f& q = e.pose_uvd[std::size_t(j)];
        uv[std::size_t(j)] = {crop_u_to_image(q[0], p, mirrored), double(q[1]) * p.bbox[3] + p.bbox[1]};
        depth[std::size_t(j)] = j == 0 ? 0.0 : double(q[2]);
    }
    const root_solution r = solve_root(uv, depth, {p.cam[0], p.cam[1], p.cam[2], p.cam[3]}, p.scale_cm, std::max(p.bbox[2], p.bbox[3]));
    p.root_cm = {float(r.root_cm[0]), float(r.root_cm[1]), float(r.root_cm[2])};
    if (method) *method = r.method;
    return p;
}

// A left hand: the network saw the crop mirrored (column i became 255 - i); its outputs
// mirrored back into the crop's own frame, in the pixel-index convention of uvd-to-xyz
// (u_img = u * w / 256 + x): column u -> 255 - u, normalised u_n -> 255/256 - u_n.
inline void unmirror(hand_estimate& e) {
    constexpr float last = float(input_size - 1) / float(input_size);
    for (int j = 0; j < num_joints; ++j) {
        e.uv_px[std::size_t(j)][0] = input_size - 1 - e.uv_px[std::size_t(j)][0];
        e.pose_uvd[std::size_t(j)][0] = last - e.pose_uvd[std::size_t(j)][0];
    }
    for (auto& v : e.mesh_uvd) v[0] = last - v[0];
}

inline std::string box_text(const std::array<float, 4>& b) {
    auto n = [](float v) {
        char t[32];
        std::snprintf(t, sizeof t, "%g", double(v));
        return std::string(t);
    };
    return n(b[0]) + "," + n(b[1]) + "," + n(b[2]) + "," + n(b[3]);
}

inline void check_finite_positive(float v, const std::string& what) {
    if (!std::isfinite(v) || !(v > 0)) throw error(what + " must be a positive number, got " + std::to_string(v));
}

class hand_model {
public:
    // `record` (prepare_weights): where the layers' packed arrays are recorded.
    hand_model(const weight_source& w, const kernels::detail::kernel_table& kernels, packed_record* record = nullptr)
        : kernels_(&kernels), source_(w.path()), mapping_(w.keep_alive()) {
        staging_scope staging;  // the tensors' staging blocks are reused while the networks pack them
        net_setup n{w, kernels::layer_setup{&kernels, &arena_}, record};
        hm_ = std::make_unique<net_hm>(n);
        feat_mesh_ = std::make_unique<net_feat_mesh>(n);
        mesh_pose_ = std::make_unique<net_mesh_pose>(n);
        if (w.metadata("num_joints", "21") != "21" || w.metadata("num_stacks", "2") != "2" || w.metadata("num_features", "256") != "256")
            throw error(w.path() + ": hyper-parameters in the metadata (num_joints/num_stacks/num_features) differ from this network's 21/2/256");
        const std::vector<std::int64_t> vs = w.shape_of("template.vertices"), fs = w.shape_of("template.faces");
        if (vs.size() != 2 || vs[1] != 3) throw error(w.path() + ": tensor \"template.vertices\" must have shape (N, 3)");
        if (fs.size() != 2 || fs[1] != 3) throw error(w.path() + ": tensor \"template.faces\" must have shape (M, 3)");
        // The graph has mesh_nodes nodes at level 0, so the hand (the template less its arm)
        // has at most that many vertices; refuse a bigger template before building a graph
        // of it (a hostile file would otherwise cost minutes and gigabytes of Lanczos).
        if (vs[0] > std::int64_t(mesh_nodes) + (arm_end - arm_begin))
            throw error(w.path() + ": tensor \"template.vertices\" has " + std::to_string(vs[0]) + " vertices; the network's graph has " +
                        std::to_string(mesh_nodes) + " nodes, so the template can have at most " + std::to_string(mesh_nodes + (arm_end - arm_begin)));
        const float_values vertices = w.f32("template.vertices", vs);
        std::vector<double> known_lmax;
        if (w.prepared()) known_lmax = parse_lmax(w);
        graph_ = build_hand_graph(make_template_mesh(std::vector<float>(vertices.begin(), vertices.end()), w.i32("template.faces", fs), w.path() + ": template mesh"),
                                  w.prepared() ? &known_lmax : nullptr);
        if (graph_.laplacians.size() != 5 || graph_.num_nodes(0) != mesh_nodes || graph_.num_nodes(4) != 80)
            throw error(w.path() + ": the template mesh gives a graph of " + std::to_string(graph_.num_nodes(0)) +
                        " nodes, the network needs 1280 (80 coarsest)");
        if (graph_.perm_reverse.size() != std::size_t(num_vertices))
            throw error(w.path() + ": the template's hand has " + std::to_string(graph_.perm_reverse.size()) + " vertices, the network's mesh " +
                        std::to_string(num_vertices));
        w.check_all_used();
        for (int l = 0; l < 5; ++l) {
            const auto& L = graph_.laplacians[std::size_t(l)];
            ops_.laplacian[std::size_t(l)] = kernels::csr_view{L.size, L.row_ptr.data(), L.col.data(), L.values.data()};
        }
        mask_.assign(graph_.mask.begin(), graph_.mask.end());
        ops_.mask = mask_.data();
        left_faces_ = graph_.faces;
        for (std::size_t f = 0; f + 2 < left_faces_.size(); f += 3) std::swap(left_faces_[f + 1], left_faces_[f + 2]);
    }
    hand_model(const hand_model&) = delete;
    hand_model& operator=(const hand_model&) = delete;

    // A prepared file's metadata "graph_lmax": the Laplacians' largest eigenvalues, levels
    // 0..3, comma-separated with 17 significant digits (exact in double).
    static std::string format_lmax(const std::vector<double>& lmax) {
        std::string out;
        char buf[40];
        for (std::size_t i = 0; i < lmax.size(); ++i) {
            std::snprintf(buf, sizeof buf, "%.17g", lmax[i]);
            out += (i ? "," : "") + std::string(buf);
        }
        return out;
    }
    static std::vector<double> parse_lmax(const weight_source& w) {
        const std::string text = w.metadata("graph_lmax");
        std::vector<double> out;
        std::size_t at = 0;
        while (!text.empty() && at <= text.size() && out.size() < 16) {
            const std::size_t end = std::min(text.find(',', at), text.size());
            const std::string item = text.substr(at, end - at);
            char* stop = nullptr;
            const double v = item.empty() ? 0.0 : std::strtod(item.c_str(), &stop);
            if (item.empty() || stop != item.c_str() + item.size())
                throw error(w.path() + ": metadata \"graph_lmax\" is not a comma-separated list of numbers");
            out.push_back(v);
            at = end + 1;
        }
        if (out.empty()) throw error(w.path() + ": a prepared weight file needs the metadata \"graph_lmax\"");
        for (double v : out)
            if (!(v > 0.0 && v <= 2.0))
                throw error(w.path() + ": metadata \"graph_lmax\" holds " + std::to_string(v) + ", outside (0, 2] (a normalised Laplacian's spectrum)");
        return out;
    }

    const hand_graph& graph() const { return graph_; }
    const std::vector<std::int32_t>& faces(hand_side side = hand_side::right) const { return side == hand_side::left ? left_faces_ : graph_.faces; }
    const std::string& source() const { return source_; }
    const char* kernels_name() const { return kernels_->name; }
    // The prepared weights' bytes: packed here (the arena) or mapped (a prepared file).
    std::size_t weight_bytes() const { return arena_.used() + (mapping_ ? mapping_->size() : 0); }

    // One crop through the networks with `ex` (a context's), into `e`; the intermediates too
    // when `trace` is given; per-stage times into `times` when given.
    void estimate(const kernels::exec& ex, const image_view& crop, const crop_params* params, hand_estimate& e, hand_trace* trace,
                  stage_times* times) const {
        using clock = std::chrono::steady_clock;
        auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
        auto* mem = ex.memory();
        auto t0 = clock::now();
        hm_outputs hm(mem);
        {
            feature_map input(mem);
            crop_to_input(crop, input);
            hm_->run(input, hm, ex);
        }
        if (trace) {  // before the feature net releases the encodings
            trace->heatmaps.resize(std::size_t(num_stacks) * num_joints * heatmap_size * heatmap_size);
            for (int s = 0; s < num_stacks; ++s)
                for (int j = 0; j < num_joints; ++j)
                    for (int y = 0; y < heatmap_size; ++y)
                        for (int x = 0; x < heatmap_size; ++x)
                            trace->heatmaps[((std::size_t(s) * num_joints + j) * heatmap_size + y) * heatmap_size + x] = hm.heatmaps[std::size_t(s)].at(j, y, x);
            for (auto [src, dst] : {std::pair{&hm.enc0, &trace->enc0}, std::pair{&hm.enc1, &trace->enc1}}) {
                dst->resize(std::size_t(num_features) * heatmap_size * heatmap_size);
                for (int c = 0; c < num_features; ++c)
                    for (int y = 0; y < heatmap_size; ++y)
                        for (int x = 0; x < heatmap_size; ++x) (*dst)[(std::size_t(c) * heatmap_size + y) * heatmap_size + x] = src->at(c, y, x);
            }
        }
        auto t1 = clock::now();
        aligned_buffer features(4096, mem), mesh(std::size_t(mesh_nodes) * 3, mem), depths(num_joints - 1, mem);
        feat_mesh_->run(hm, ops_, features.data(), mesh.data(), ex);
        auto t2 = clock::now();
        mesh_pose_->run(mesh.data(), ops_, depths.data(), ex);
        auto t3 = clock::now();

        for (int j = 0; j < num_joints; ++j) {
            const int idx = upsampled_argmax(hm.heatmaps[1], j);
            e.uv_px[std::size_t(j)] = {idx % input_size, idx / input_size};
        }
        for (int j = 0; j < num_joints; ++j) {
            const float un = float(e.uv_px[std::size_t(j)][0]) / float(input_size), vn = float(e.uv_px[std::size_t(j)][1]) / float(input_size);
            e.pose_uvd[std::size_t(j)] = {un, vn, j == 0 ? 0.0f : depths[std::size_t(j - 1)]};
        }
        const auto& rev = graph_.perm_reverse;
        for (std::size_t v = 0; v < rev.size(); ++v) {
            const float* n = &mesh[std::size_t(rev[v]) * 3];
            e.mesh_uvd[v] = {n[0], n[1], n[2]};
        }
        if (params) {
            fill_camera_space(e, *params);
        } else {
            e.metric = false;
            e.pose_cm = {};
            e.mesh_cm = {};
        }
        if (trace) {
            trace->features.assign(features.data(), features.data() + features.size());
            trace->mesh_nodes.assign(mesh.data(), mesh.data() + mesh.size());
            trace->depths.assign(depths.data(), depths.data() + depths.size());
        }
        auto t4 = clock::now();
        if (times) *times = {ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4)};
    }

    // A hand in an image (model::estimate_hand): crop, network, mirror, camera, root.
    void estimate_hand(const kernels::exec& ex, const image_view& image, const photo_options& o, hand_result& r, stage_times* times) const {
        image.check("image");
        if (o.hand_box && o.crop_box) throw error("a hand box and a crop box (--hand-box and --bbox) do not go together: give one");
        if (!std::isfinite(o.margin) || !(o.margin > 0)) throw error("margin must be a positive number, got " + std::to_string(o.margin));
        check_finite_positive(o.scale_cm, "scale (cm)");
        if (o.camera) {
            const auto& c = *o.camera;
            for (int k = 0; k < 4; ++k)
                if (!std::isfinite(c[std::size_t(k)])) throw error("camera: values must be finite numbers");
            if (!(c[0] > 0) || !(c[1] > 0))
                throw error("camera: focal lengths must be positive, got fx " + std::to_string(c[0]) + ", fy " + std::to_string(c[1]));
        }
        if (o.root_cm)
            for (float v : *o.root_cm)
                if (!std::isfinite(v)) throw error("root: values must be finite numbers");
        r = hand_result{};
        r.side = o.side;
        r.scale_cm = o.scale_cm;
        const std::string size = std::to_string(image.width) + "x" + std::to_string(image.height);
        std::vector<std::uint8_t> crop(std::size_t(input_size) * input_size * 3);
        if (o.hand_box) {
            const auto& b = *o.hand_box;
            for (int k = 0; k < 4; ++k)
                if (!std::isfinite(b[std::size_t(k)])) throw error("hand box: values must be finite numbers");
            if (!(b[2] > 0) || !(b[3] > 0))
                throw error("hand box " + box_text(b) + " has no area (width and height must be positive)");
            // The square centred on the box, side max(w, h) x margin in whole pixels.
            const double side = std::max(1.0, std::floor(double(std::max(b[2], b[3])) * o.margin + 0.5));
            const double cx = double(b[0]) + double(b[2]) / 2, cy = double(b[1]) + double(b[3]) / 2;
            const double x0 = std::floor(cx - side / 2 + 0.5), y0 = std::floor(cy - side / 2 + 0.5);
            if (side > double(1 << 20) || std::fabs(x0) > double(1 << 30) || std::fabs(y0) > double(1 << 30))
                throw error("hand box " + box_text(b) + " is too large or too far out");
            if (x0 >= image.width || y0 >= image.height || x0 + side <= 0 || y0 + side <= 0)
                throw error("hand box " + box_text(b) + " lies wholly outside the " + size + " image");
            crop_resize_bgr(image, long(x0), long(y0), long(side), long(side), input_size, input_size, crop.data());
            r.box = {float(x0), float(y0), float(side), float(side)};
            r.box_from = box_source::given;
        } else {
            if (image.width != input_size || image.height != input_size)
                throw error("the image is " + size + ": give the hand's box in it (a 256x256 image is used as the crop)");
            crop_resize_bgr(image, 0, 0, input_size, input_size, input_size, input_size, crop.data());  // as BGR, packed
            if (o.crop_box) {
                const auto& b = *o.crop_box;
                for (int k = 0; k < 4; ++k)
                    if (!std::isfinite(b[std::size_t(k)])) throw error("crop box: values must be finite numbers");
                if (!(b[2] > 0) || !(b[3] > 0)) throw error("crop box " + box_text(b) + " has no area (width and height must be positive)");
                if (!o.camera) throw error("a crop box (--bbox) places the crop in a larger frame: give that frame's camera (--cam)");
                r.box = b;
                r.box_from = box_source::frame_crop;
            } else {
                r.box = {0, 0, float(input_size), float(input_size)};
                r.box_from = box_source::whole_image;
            }
        }
        if (o.side == hand_side::left)
            for (int y = 0; y < input_size; ++y) {
                std::uint8_t* row = crop.data() + std::size_t(y) * input_size * 3;
                for (int x = 0; x < input_size / 2; ++x)
                    for (int c = 0; c < 3; ++c) std::swap(row[std::size_t(x) * 3 + std::size_t(c)], row[std::size_t(input_size - 1 - x) * 3 + std::size_t(c)]);
            }
        estimate(ex, image_view(crop.data(), input_size, input_size), nullptr, r.estimate, nullptr, times);
        const bool mirrored = o.side == hand_side::left;  // outputs mirrored back below, after the 3D
        if (o.camera) {
            r.camera = *o.camera;
        } else {
            const float f = float(std::max(image.width, image.height));
            r.camera = {f, f, float(image.width - 1) / 2.0f, float(image.height - 1) / 2.0f};
            r.camera_assumed = true;
        }
        crop_params p;
        p.cam = r.camera;
        p.bbox = r.box;
        p.scale_cm = o.scale_cm;
        if (o.root_cm) {
            p.root_cm = *o.root_cm;
            r.root = root_method::given;
        } else {
            p = solve_root_params(r.estimate, p, &r.root, mirrored);
        }
        fill_camera_space(r.estimate, p, mirrored);
        for (int j = 0; j < num_joints; ++j) {
            const point3f& q = r.estimate.pose_uvd[std::size_t(j)];
            r.uv_image[std::size_t(j)] = {float(crop_u_to_image(q[0], p, mirrored)), float(double(q[1]) * p.bbox[3] + p.bbox[1])};
        }
        if (mirrored) unmirror(r.estimate);
    }

    // Several crops with the context `ctx` (see model::estimate_batch).
    void estimate_batch(context_state& ctx, const std::vector<image_view>& crops, const std::vector<crop_params>& params, bool exact,
                        std::vector<hand_estimate>& out) const {
        if (!params.empty() && params.size() != crops.size())
            throw error("estimate_batch: " + std::to_string(params.size()) + " crop_params for " + std::to_string(crops.size()) + " crops");
        for (std::size_t i = 0; i < crops.size(); ++i) crops[i].check("crop " + std::to_string(i));
        out.assign(crops.size(), hand_estimate{});
        const int n = int(crops.size()), threads = ctx.threads();
        auto param = [&](std::size_t i) { return params.empty() ? nullptr : &params[i]; };
        if (threads > 1 && n >= threads) {
            // Crops side by side on the context's pool, each serially in its slot's workspace.
            struct job {
                const hand_model* self;
                context_state* ctx;
                const std::vector<image_view>* crops;
                const crop_params* params;
                bool exact;
                std::vector<hand_estimate>* out;
                std::vector<std::string> errors;
            } j{this, &ctx, &crops, params.empty() ? nullptr : params.data(), exact, &out, std::vector<std::string>(crops.size())};
            ctx.pool().run(threads, n,
                           [](void* c, int i, int slot) {
                               job& b = *static_cast<job*>(c);
                               try {
                                   b.self->estimate(b.ctx->serial_exec(slot, b.exact), (*b.crops)[std::size_t(i)], b.params ? b.params + i : nullptr,
                                                    (*b.out)[std::size_t(i)], nullptr, nullptr);
                               } catch (const std::exception& e) {
                                   b.errors[std::size_t(i)] = e.what();
                               } catch (...) {
                                   b.errors[std::size_t(i)] = "unknown error";
                               }
                           },
                           &j);
            for (int i = 0; i < n; ++i)
                if (!j.errors[std::size_t(i)].empty()) throw error("crop " + std::to_string(i) + ": " + j.errors[std::size_t(i)]);
        } else {
            for (int i = 0; i < n; ++i) {
                try {
                    estimate(ctx.exec(exact), crops[std::size_t(i)], param(std::size_t(i)), out[std::size_t(i)], nullptr, nullptr);
                } catch (const std::exception& e) {
                    throw error("crop " + std::to_string(i) + ": " + e.what());
                }
            }
        }
    }

private:
    const kernels::detail::kernel_table* kernels_;
    std::string source_;
    std::shared_ptr<const mapped_file> mapping_;  // a prepared file's mapping: outlives the networks that use it
    weight_arena arena_;  // declared before the networks: destroyed after them
    std::unique_ptr<net_hm> hm_;
    std::unique_ptr<net_feat_mesh> feat_mesh_;
    std::unique_ptr<net_mesh_pose> mesh_pose_;
    hand_graph graph_;
    std::vector<unsigned char> mask_;
    graph_operators ops_;
    std::vector<std::int32_t> left_faces_;  // each triangle reversed: a mirrored mesh's outward faces
};

}  // namespace detail
}  // namespace handgraph

// handgraph/pipeline.hpp: the public entry point. Load a model from a weight file,
// run a 256x256 BGR crop through the three networks and turn the outputs into
// 2D joints, 3D joints and the 954-vertex mesh (spec section 4).
//
//   auto model = handgraph::model::load("weights/stb.safetensors");
//   handgraph::crop_params p{cam, bbox, root_cm, scale_cm};
//   handgraph::hand_estimate e = model.estimate(bgr_pixels, &p);
//
// A model is immutable after load; estimate() may be called from several threads at once.
// Depends on model.hpp, graph.hpp, weights.hpp.
#pragma once
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "error.hpp"
#include "graph.hpp"
#include "obj.hpp"
#include "model.hpp"
#include "weights.hpp"

namespace handgraph {

// Where the crop came from. Without it, outputs are normalised (see hand_estimate).
struct crop_params {
    std::array<float, 4> cam{};   // fx, fy, u0, v0 (pixels)
    std::array<float, 4> bbox{};  // x, y, w, h of the crop in the original image (pixels)
    std::array<float, 3> root_cm{};  // root joint (wrist) in camera space, cm
    float scale_cm = 1.0f;        // length of the middle finger's first bone, cm
};

struct hand_estimate {
    // Heat-map maxima (u, v) in crop pixels, 0..255, for the 21 joints.
    std::array<int, num_joints * 2> uv{};
    // 21 x 3 joints and 954 x 3 template-ordered vertices. With crop_params: camera
    // space in cm. Without: normalised (u / 256, v / 256, root-relative depth in units of
    // the scale), the root joint at (0, 0, 0) - `metric` says which.
    std::vector<float> pose_xyz, mesh_xyz;
    bool metric = false;
    // Raw network outputs: relative depths of joints 1..20 and the 1280 x 3 mesh nodes.
    std::vector<float> depths, mesh_raw;
    // Only with estimate_options::keep_heatmaps: 2 x 21 x 64 x 64 (stack, joint, y, x).
    std::vector<float> heatmaps;
    // Only with keep_intermediates: enc_0, enc_1 (256 x 64 x 64 each, C, H, W) and the 4096 features.
    std::vector<float> enc0, enc1, features;
};

struct estimate_options {
    int threads = 1;
    // Direct convolution everywhere instead of Winograd F(4x4,3x3) on the 3x3 layers
    // (kernel_bench: 3x3 128->128 @64 direct ~3x Winograd's time). Lower error on most
    // arrays (features worst 6.1e-6 against 8.1e-6 relative to a float64 evaluation on the
    // test fixture); both modes stay within 1e-5 (worst 9.7e-6 / 9.8e-6, mesh_xyz of one
    // crop where PyTorch float32 is 1.0e-5 away). See benchmarks/NOTES.md.
    bool exact = false;
    bool keep_heatmaps = false;
    bool keep_intermediates = false;
};

// Per-stage wall time of one estimate() call, in milliseconds.
struct stage_times {
    double net_hm = 0, feat_mesh = 0, mesh_pose = 0, post = 0;
};

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

// Normalised (u, v, depth) to camera space in cm; without params the normalised values.
// Computed in double: the products and sums partly cancel (u * w + x - u0), and float
// arithmetic here would add more error than the whole network carries.
inline void uvd_to_xyz(float un, float vn, float d, const crop_params* params, float* xyz) {
    if (!params) {
        xyz[0] = un;
        xyz[1] = vn;
        xyz[2] = d;
        return;
    }
    const crop_params& p = *params;
    const double u = double(un) * p.bbox[2] + p.bbox[0];
    const double v = double(vn) * p.bbox[3] + p.bbox[1];
    const double z = double(d) * p.scale_cm + p.root_cm[2];
    xyz[0] = float((u - p.cam[2]) / p.cam[0] * z);
    xyz[1] = float((v - p.cam[3]) / p.cam[1] * z);
    xyz[2] = float(z);
}

}  // namespace detail

class model {
public:
    // Read, validate and prepare a weight file (tools/convert_weights.py output).
    static model load(const std::string& path) {
        weight_file w = weight_file::read(path);
        return model(w);
    }

    explicit model(const weight_file& w)
        : arena_(std::make_unique<detail::weight_arena>()),
          hm_(in_arena<net_hm>(w)),
          feat_mesh_(in_arena<net_feat_mesh>(w)),
          mesh_pose_(in_arena<net_mesh_pose>(w)) {
        if (w.metadata("num_joints", "21") != "21" || w.metadata("num_stacks", "2") != "2" || w.metadata("num_features", "256") != "256")
            throw error(w.path() + ": hyper-parameters in the metadata (num_joints/num_stacks/num_features) differ from this network's 21/2/256");
        const tensor_info& vi = w.info("template.vertices");
        const tensor_info& fi = w.info("template.faces");
        if (vi.shape.size() != 2 || vi.shape[1] != 3) throw error(w.path() + ": tensor \"template.vertices\" must have shape (N, 3)");
        if (fi.shape.size() != 2 || fi.shape[1] != 3) throw error(w.path() + ": tensor \"template.faces\" must have shape (M, 3)");
        // The graph has mesh_nodes nodes at level 0, so the hand (the template less its arm)
        // has at most that many vertices; refuse a bigger template before building a graph
        // of it (a hostile file would otherwise cost minutes and gigabytes of Lanczos).
        if (vi.shape[0] > std::int64_t(mesh_nodes) + (arm_end - arm_begin))
            throw error(w.path() + ": tensor \"template.vertices\" has " + std::to_string(vi.shape[0]) + " vertices; the network's graph has " +
                        std::to_string(mesh_nodes) + " nodes, so the template can have at most " + std::to_string(mesh_nodes + (arm_end - arm_begin)));
        graph_ = build_hand_graph(make_template_mesh(w.f32("template.vertices", vi.shape), w.i32("template.faces", fi.shape),
                                                     w.path() + ": template mesh"));
        if (graph_.laplacians.size() != 5 || graph_.num_nodes(0) != mesh_nodes || graph_.num_nodes(4) != 80)
            throw error(w.path() + ": the template mesh gives a graph of " + std::to_string(graph_.num_nodes(0)) +
                        " nodes, the network needs 1280 (80 coarsest)");
        w.check_all_used();
        init_graph_views();
    }

    model(model&& o) noexcept { *this = std::move(o); }
    model& operator=(model&& o) noexcept {
        // The networks first: their weights live in the arena.
        hm_ = std::move(o.hm_);
        feat_mesh_ = std::move(o.feat_mesh_);
        mesh_pose_ = std::move(o.mesh_pose_);
        graph_ = std::move(o.graph_);
        arena_ = std::move(o.arena_);
        init_graph_views();
        return *this;
    }

    const hand_graph& graph() const { return graph_; }

    // bgr: 256 * 256 * 3 bytes, row-major, channels B, G, R (as OpenCV reads images).
    // params: where the crop came from; nullptr gives normalised outputs.
    hand_estimate estimate(const unsigned char* bgr, const crop_params* params, const estimate_options& opt = {},
                           stage_times* times = nullptr) const {
        using clock = std::chrono::steady_clock;
        auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
        kernels::exec ex{std::max(1, opt.threads)};
        ex.exact = opt.exact;
        auto t0 = clock::now();
        feature_map input(input_size, input_size, 3, 3);
        for (int y = 0; y < input_size; ++y)
            for (int x = 0; x < input_size; ++x) {
                const unsigned char* px = bgr + (std::size_t(y) * input_size + std::size_t(x)) * 3;
                float* d = input.pixel(y, x);
                for (int c = 0; c < 3; ++c) d[c] = float(px[c]) / 255.0f - 0.5f;
            }
        hm_outputs hm;
        hm_->run(input, hm, ex);
        auto t1 = clock::now();
        hand_estimate e;
        std::vector<float> features;
        feat_mesh_->run(hm, ops_, features, e.mesh_raw, ex);
        auto t2 = clock::now();
        mesh_pose_->run(e.mesh_raw, ops_, e.depths, ex);
        auto t3 = clock::now();

        for (int j = 0; j < num_joints; ++j) {
            int idx = detail::upsampled_argmax(hm.heatmaps[1], j);
            e.uv[std::size_t(2 * j)] = idx % input_size;
            e.uv[std::size_t(2 * j + 1)] = idx / input_size;
        }
        e.metric = params != nullptr;
        e.pose_xyz.assign(num_joints * 3, 0.0f);
        if (params) std::copy(params->root_cm.begin(), params->root_cm.end(), e.pose_xyz.begin());
        for (int j = 1; j < num_joints; ++j) {
            float un = float(e.uv[std::size_t(2 * j)]) / float(input_size), vn = float(e.uv[std::size_t(2 * j + 1)]) / float(input_size);
            detail::uvd_to_xyz(un, vn, e.depths[std::size_t(j - 1)], params, &e.pose_xyz[std::size_t(3 * j)]);
        }
        const auto& rev = graph_.perm_reverse;
        e.mesh_xyz.assign(rev.size() * 3, 0.0f);
        for (std::size_t v = 0; v < rev.size(); ++v) {
            const float* n = &e.mesh_raw[std::size_t(rev[v]) * 3];
            detail::uvd_to_xyz(n[0], n[1], n[2], params, &e.mesh_xyz[v * 3]);
        }
        if (opt.keep_heatmaps) {
            e.heatmaps.resize(std::size_t(num_stacks) * num_joints * heatmap_size * heatmap_size);
            for (int s = 0; s < num_stacks; ++s)
                for (int j = 0; j < num_joints; ++j)
                    for (int y = 0; y < heatmap_size; ++y)
                        for (int x = 0; x < heatmap_size; ++x)
                            e.heatmaps[((std::size_t(s) * num_joints + j) * heatmap_size + y) * heatmap_size + x] = hm.heatmaps[std::size_t(s)].at(j, y, x);
        }
        if (opt.keep_intermediates) {
            e.features = std::move(features);
            for (auto [src, dst] : {std::pair{&hm.enc0, &e.enc0}, std::pair{&hm.enc1, &e.enc1}}) {
                dst->resize(std::size_t(num_features) * heatmap_size * heatmap_size);
                for (int c = 0; c < num_features; ++c)
                    for (int y = 0; y < heatmap_size; ++y)
                        for (int x = 0; x < heatmap_size; ++x) (*dst)[(std::size_t(c) * heatmap_size + y) * heatmap_size + x] = src->at(c, y, x);
            }
        }
        auto t4 = clock::now();
        if (times) *times = {ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4)};
        return e;
    }

    // A batch of crops (each 256 * 256 * 3 BGR bytes); params may be empty (normalised
    // outputs) or hold one entry per crop. With several threads and at least as many crops
    // as threads, crops run side by side, one thread each; results do not depend on it.
    std::vector<hand_estimate> estimate_batch(const std::vector<const unsigned char*>& crops, const std::vector<crop_params>& params,
                                              const estimate_options& opt = {}) const {
        if (!params.empty() && params.size() != crops.size())
            throw error("estimate_batch: " + std::to_string(params.size()) + " crop_params for " + std::to_string(crops.size()) + " crops");
        std::vector<hand_estimate> out(crops.size());
        const int n = int(crops.size());
        const int threads = std::max(1, opt.threads);
        if (threads > 1 && n >= threads) {
            estimate_options one = opt;
            one.threads = 1;
            std::vector<std::string> errors(crops.size());
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
            for (int i = 0; i < n; ++i) {
                try {
                    out[std::size_t(i)] = estimate(crops[std::size_t(i)], params.empty() ? nullptr : &params[std::size_t(i)], one);
                } catch (const std::exception& e) {
                    errors[std::size_t(i)] = e.what();
                }
            }
            for (int i = 0; i < n; ++i)
                if (!errors[std::size_t(i)].empty()) throw error("crop " + std::to_string(i) + ": " + errors[std::size_t(i)]);
        } else {
            for (int i = 0; i < n; ++i) out[std::size_t(i)] = estimate(crops[std::size_t(i)], params.empty() ? nullptr : &params[std::size_t(i)], opt);
        }
        return out;
    }

    // Faces of the 954-vertex mesh (1892 x 3, template vertex indices).
    const std::vector<std::int32_t>& faces() const { return graph_.faces; }

private:
    void init_graph_views() {
        for (int l = 0; l < 5; ++l) {
            const auto& L = graph_.laplacians[std::size_t(l)];
            ops_.laplacian[std::size_t(l)] = kernels::csr_view{L.size, L.row_ptr.data(), L.col.data(), L.values.data()};
        }
        mask_.assign(graph_.mask.begin(), graph_.mask.end());
        ops_.mask = mask_.data();
    }

    // A network built with its prepared weights in arena_ (freed with the model).
    template <class Net>
    std::unique_ptr<Net> in_arena(const weight_file& w) {
        detail::arena_scope scope(*arena_);
        return std::make_unique<Net>(w);
    }

    std::unique_ptr<detail::weight_arena> arena_;  // declared first: destroyed after the networks
    std::unique_ptr<net_hm> hm_;
    std::unique_ptr<net_feat_mesh> feat_mesh_;
    std::unique_ptr<net_mesh_pose> mesh_pose_;
    hand_graph graph_;
    std::vector<unsigned char> mask_;
    graph_operators ops_;
};

}  // namespace handgraph

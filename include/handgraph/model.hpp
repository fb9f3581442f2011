// handgraph/model.hpp: the three networks of the release, wired as in the paper
// (spec section 2): net_hm (stacked hourglass), net_feat_mesh (feature net + graph CNN
// mesh decoder) and net_mesh_pose (graph CNN pose regressor).
// Weights are bound by name from a weight_source and prepared once (BatchNorm folded into
// the neighbouring convolution, weights packed for the kernels, into the memory and for
// the instruction set of the layer_setup); forward passes never touch the file again. A
// network object is immutable after construction and may be used from several threads at
// once, each call with its own exec (a context's: threads and scratch).
// Depends on handgraph.hpp (constants), weights.hpp, tensor.hpp, kernels/*.hpp.
#pragma once
#include <array>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "error.hpp"
#include "handgraph.hpp"
#include "kernels/conv.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/linear.hpp"
#include "kernels/graph_conv.hpp"
#include "tensor.hpp"
#include "weights.hpp"

namespace handgraph {

// num_joints, num_vertices and crop_size are handgraph.hpp's.
constexpr int num_features = 256;
constexpr int num_stacks = 2;
constexpr int heatmap_size = 64;
constexpr int input_size = crop_size;
constexpr int mesh_nodes = 1280;

namespace detail {

constexpr float bn_eps = 1e-5f;

// BatchNorm in inference mode as a per-channel affine: y = x * scale + shift.
struct affine {
    std::vector<float> scale, shift;
    std::vector<double> scale64, shift64;  // the same in double (conv_algorithm::direct_double)
    static affine from_bn(const weight_source& w, const std::string& prefix, int c) {
        std::vector<std::int64_t> s{c};
        const float_values g = w.f32(prefix + ".weight", s), b = w.f32(prefix + ".bias", s),
                                 m = w.f32(prefix + ".running_mean", s), v = w.f32(prefix + ".running_var", s);
        affine a;
        a.scale.resize(std::size_t(c));
        a.shift.resize(std::size_t(c));
        a.scale64.resize(std::size_t(c));
        a.shift64.resize(std::size_t(c));
        for (std::size_t i = 0; i < std::size_t(c); ++i) {
            if (v[i] < 0) throw error(w.path() + ": tensor \"" + prefix + ".running_var\" holds a negative variance");
            // Same arithmetic as PyTorch's inference batch norm: (x - mean) / sqrt(var + eps) * weight + bias
            float inv = 1.0f / std::sqrt(v[i] + bn_eps);
            a.scale[i] = g[i] * inv;
            a.shift[i] = b[i] - m[i] * g[i] * inv;
            const double inv64 = 1.0 / std::sqrt(double(v[i]) + double(bn_eps));
            a.scale64[i] = double(g[i]) * inv64;
            a.shift64[i] = double(b[i]) - double(m[i]) * a.scale64[i];
        }
        return a;
    }
};

// The one place that decides how each convolution computes. Winograd needs a 3x3 stride-1
// pad-1 layer; it rebuilds the layer's transformed weights on every call (winograd.hpp:
// ~0.15 ms for 128 -> 128), which the small maps do not earn back: per-thread CPU time for
// 128 -> 128 (benchmarks/kernel_bench, AVX-512, Zen 4) @8 direct 0.167 ms, F(4x4) 0.207;
// @16 direct 0.762, F(4x4) 0.357; on a Zen 1 (AVX2, 2026-12-02, 1 / 2 threads) @8 direct
// 0.657 / 0.345 ms, F(2x2) 0.541 / 0.532 (a loss at 2 threads), @16 direct 2.43 / 1.32,
// F(2x2) 1.51 / 1.09. Accuracy limits it further (below).
// estimate_options::exact (exec::exact) runs every Winograd layer direct instead.
// The layers before the first hourglass (the stem, r1, r4, r5: `early`) are the ones whose
// rounding the rest of the network amplifies most: perturbing one of their outputs by 1e-6 of
// its rms moved enc_1 and mesh_xyz by 4e-6..1e-5 on the parity fixture's worst crop, 2-20x a
// hourglass layer's (benchmarks/NOTES.md, 2026-12-02). So they never run F(4x4) (whose
// transforms carry ~10x the direct kernel's rounding), and the stem (the 7x7 convolution of
// the 3-channel image, ~2% of the multiply-adds) runs direct_double in both modes: with its
// BatchNorm folded into float weights and float sums it alone cost ~3e-6 of the 1e-5 bound.
// F(4x4) runs on the 3x3 layers of maps at least winograd_min_size wide (64: the hourglasses'
// top level and the heads); at 32 and 16 the hourglasses' F(4x4) layers took the default
// mode's worst error from 8.4e-6 to 1.1e-5.
// F(2x2, 3x3) (transforms of 0, +-1 and 1/2, rounding close to the direct kernel's) runs on
// the early 3x3 layers (r1, r4, r5) and the hourglasses' 3x3 layers at 32 and 16, where the
// parity bound was measured to hold with it (test_pipeline, the fixture's 10 crops, default
// mode's worst error vs float64): fma3+avx2 5.9e-6 with it, 6.2e-6 without (Zen 1,
// 2026-12-02); avx512bw 6.7e-6 with it, 8.4e-6 without (Zen 5, 2026-12-04, where
// fma3+avx2 gave 6.3e-6 with it; benchmarks/NOTES.md).
constexpr int winograd_min_size = 64;
constexpr int winograd_f2x2_min_size = 16;

// Without fused multiply-add (the sse2 kernels: xsimd::fma is a multiply and an add, two
// roundings per term) the float kernels missed the bound (mesh_raw 1.1e-5 with every layer
// direct), so there every layer runs direct_double (2.1-2.3x the float direct kernel's time
// per layer, and no Winograd), on CPUs older than AVX2.
// `isa`: the kernels the layer runs with (their fma).
inline kernels::conv_algorithm conv_algorithm_for(int kernel, int stride, int pad, int out_size, int cin, bool early,
                                                  const kernels::kernel_table& isa) {
    if (cin <= 3 || !isa.fma) return kernels::conv_algorithm::direct_double;
    if (!(kernel == 3 && stride == 1 && pad == 1)) return kernels::conv_algorithm::direct;
    if (out_size >= winograd_min_size && !early) return kernels::conv_algorithm::winograd_f4x4;
    if (early || out_size >= winograd_f2x2_min_size) return kernels::conv_algorithm::winograd_f2x2;
    return kernels::conv_algorithm::direct;
}

// What prepare_weights (pipeline.hpp) writes: each packed array of the layers, named after
// its layer, where the model holds it; and the converted file's tensors the packing replaced
// (the layers' weights, biases and folded BatchNorms). The rest of the file is copied.
struct packed_record {
    struct array {
        std::string name;
        bool f64;
        const void* data;
        std::size_t count;
    };
    std::vector<array> arrays;
    std::set<std::string> replaced;
    void add(const std::string& name, const float* p, std::size_t n) { arrays.push_back({name, false, p, n}); }
    void add(const std::string& name, const double* p, std::size_t n) { arrays.push_back({name, true, p, n}); }
};

// A layer as the networks bind it: the weights' source, how layers are prepared, and (while
// prepare_weights runs) where the packed arrays are recorded.
struct net_setup {
    const weight_source& w;
    kernels::layer_setup layers;
    packed_record* record = nullptr;
};

inline void record_bn(packed_record& r, const std::string& bn) {
    for (const char* t : {".weight", ".bias", ".running_mean", ".running_var"}) r.replaced.insert(bn + t);
}

// A prepared file's packed tensor of a layer, with what to do when it holds the other form:
// the direct_double layers' double arrays depend on the kernels (every layer without FMA,
// only the stem with it), so a file prepared on one kind of CPU may lack what another needs.
inline void require_packed_form(const net_setup& n, const std::string& prefix, bool f64) {
    const std::string name = prefix + (f64 ? ".packed_weight64" : ".packed_weight");
    if (n.w.has(name)) return;
    throw error(n.w.path() + ": layer \"" + prefix + "\": the " + n.layers.table().name + " kernels run it " + (f64 ? "in double" : "in float") +
                ", and this prepared file holds only its " + (f64 ? "float" : "double") +
                " packing (it was prepared with other kernels): prepare the converted weights again on this machine "
                "(hand_prepare), or load the converted file");
}

// `out_size`: the side of the layer's (square) output maps; `bn`: the prefix of the
// BatchNorm folded into it ("" for none); `early`: a layer before the first hourglass
// (conv_algorithm_for).
inline kernels::conv2d load_conv(const net_setup& n, const std::string& prefix, int cout, int cin, int k, int stride, int pad, int out_size,
                                 const std::string& bn = "", bool early = false) {
    const kernels::conv_algorithm algorithm = conv_algorithm_for(k, stride, pad, out_size, cin, early, n.layers.table());
    const bool f64 = algorithm == kernels::conv_algorithm::direct_double;
    const std::size_t wc = kernels::conv2d::packed_weight_count(cout, cin, k), cc = kernels::conv2d::packed_channel_count(cout);
    if (n.w.prepared()) {
        require_packed_form(n, prefix, f64);
        kernels::conv2d::packed_view v;
        if (f64) {
            v.weight64 = n.w.packed_f64(prefix + ".packed_weight64", wc);
            v.scale64 = n.w.packed_f64(prefix + ".packed_scale64", cc);
            v.shift64 = n.w.packed_f64(prefix + ".packed_shift64", cc);
        } else {
            v.weight = n.w.packed_f32(prefix + ".packed_weight", wc);
            v.bias = n.w.packed_f32(prefix + ".packed_bias", cc);
        }
        return kernels::conv2d::from_packed(v, cout, cin, k, stride, pad, algorithm, n.layers);
    }
    std::optional<affine> a;
    if (!bn.empty()) a = affine::from_bn(n.w, bn, cout);
    const float_values wt = n.w.f32(prefix + ".weight", {cout, cin, k, k}), b = n.w.f32(prefix + ".bias", {cout});
    kernels::conv2d c = kernels::conv2d::prepare(wt.data(), b.data(), cout, cin, k, stride, pad, a ? a->scale.data() : nullptr, a ? a->shift.data() : nullptr,
                                                 algorithm, n.layers, a ? a->scale64.data() : nullptr, a ? a->shift64.data() : nullptr);
    if (n.record) {
        n.record->replaced.insert(prefix + ".weight");
        n.record->replaced.insert(prefix + ".bias");
        if (!bn.empty()) record_bn(*n.record, bn);
        const kernels::conv2d::packed_view v = c.packed();
        if (f64) {
            n.record->add(prefix + ".packed_weight64", v.weight64, wc);
            n.record->add(prefix + ".packed_scale64", v.scale64, cc);
            n.record->add(prefix + ".packed_shift64", v.shift64, cc);
        } else {
            n.record->add(prefix + ".packed_weight", v.weight, wc);
            n.record->add(prefix + ".packed_bias", v.bias, cc);
        }
    }
    return c;
}

inline kernels::linear load_linear(const net_setup& n, const std::string& prefix, int out, int in) {
    const std::size_t wc = kernels::linear::packed_weight_count(out, in), bc = kernels::linear::packed_bias_count(out);
    if (n.w.prepared())
        return kernels::linear::from_packed(n.w.packed_f32(prefix + ".packed_weight", wc), n.w.packed_f32(prefix + ".packed_bias", bc), out, in, n.layers);
    kernels::linear l = kernels::linear::prepare(n.w.f32(prefix + ".weight", {out, in}).data(), n.w.f32(prefix + ".bias", {out}).data(), out, in, n.layers);
    if (n.record) {
        n.record->replaced.insert(prefix + ".weight");
        n.record->replaced.insert(prefix + ".bias");
        n.record->add(prefix + ".packed_weight", l.packed_weight(), wc);
        n.record->add(prefix + ".packed_bias", l.packed_bias(), bc);
    }
    return l;
}

// A map from `mem` shaped as a kernel's output (feature_map::reset_output: border zeroed,
// interior left for the kernel, which writes all of it): the maps below are all written
// whole by the kernel that follows, so the full zero fill of the constructor was wasted
// (memset 1.4-1.9% of an image's time on a Zen 5, 2026-12-04).
inline feature_map output_map(handgraph::detail::buffer_source* mem, int h, int w, int c, int border) {
    feature_map m(mem);
    m.reset_output(h, w, c, border);
    return m;
}

// Pre-activation bottleneck: y = conv3(relu(bn2(conv2(relu(bn1(conv1(relu(bn(x))))))))) + skip(x).
class residual {
public:
    residual() = default;
    // `size`: the side of the square maps it runs on, `early`: before the first hourglass (both
    // choose the algorithm of its 3x3 conv, conv_algorithm_for).
    residual(const net_setup& n, const std::string& p, int cin, int cout, int size, bool early = false)
        : k_(&n.layers.table()), cin_(cin), cout_(cout) {
        const affine bn = affine::from_bn(n.w, p + ".bn", cin);
        pre_scale_ = aligned_buffer(std::size_t(round_up(cin, channel_block)), n.layers.weights);  // zero padding channels
        pre_shift_ = aligned_buffer(std::size_t(round_up(cin, channel_block)), n.layers.weights);
        for (int c = 0; c < cin; ++c) {
            pre_scale_[std::size_t(c)] = bn.scale[std::size_t(c)];
            pre_shift_[std::size_t(c)] = bn.shift[std::size_t(c)];
        }
        conv1_ = load_conv(n, p + ".conv1", cout / 2, cin, 1, 1, 0, size, p + ".bn1");
        conv2_ = load_conv(n, p + ".conv2", cout / 2, cout / 2, 3, 1, 1, size, p + ".bn2", early);
        conv3_ = load_conv(n, p + ".conv3", cout, cout / 2, 1, 1, 0, size);
        if (cin != cout) conv4_ = std::make_unique<kernels::conv2d>(load_conv(n, p + ".conv4", cout, cin, 1, 1, 0, size));
    }
    int cout() const { return cout_; }

    void run(const feature_map& x, feature_map& out, const kernels::exec& ex) const {
        // Temporaries die as soon as they are used, so the next one of the same size reuses
        // the block (the workspace's block pool); the skip conv writes straight into `out`,
        // which is then conv3's residual (same arithmetic as a separate skip map, 1 map less).
        // The pre-activation bn + relu is applied by conv1 as it reads x (run_preact).
        const int h = x.height, wd = x.width;
        auto* mem = ex.memory();
        feature_map b = output_map(mem, h, wd, cout_ / 2, 1);
        if (conv1_.algorithm() == kernels::conv_algorithm::direct_double) {  // no fused form: two steps
            feature_map a = output_map(mem, h, wd, cin_, 0);
            kernels::scale_shift_relu(*k_, x, pre_scale_.data(), pre_shift_.data(), a, ex);
            conv1_.run(a, b, true, nullptr, ex);
        } else {
            conv1_.run_preact(x, pre_scale_.data(), pre_shift_.data(), b, true, nullptr, ex);
        }
        feature_map c = output_map(mem, h, wd, cout_ / 2, 0);
        conv2_.run(b, c, true, nullptr, ex);
        b = feature_map();
        out.reset_output(h, wd, cout_, 0);
        if (conv4_) {
            conv4_->run(x, out, false, nullptr, ex);
            conv3_.run(c, out, false, &out, ex);
        } else {
            conv3_.run(c, out, false, &x, ex);
        }
    }

private:
    const kernels::kernel_table* k_ = nullptr;
    int cin_ = 0, cout_ = 0;
    aligned_buffer pre_scale_, pre_shift_;  // bn as an affine, [round_up(cin, 16)]
    kernels::conv2d conv1_, conv2_, conv3_;
    std::unique_ptr<kernels::conv2d> conv4_;
};

// Two residuals in a row (the hourglass's `*_[0..1]` pairs).
inline void run_pair(const std::array<residual, 2>& r, const feature_map& x, feature_map& out, const kernels::exec& ex) {
    feature_map t(ex.memory());
    r[0].run(x, t, ex);
    r[1].run(t, out, ex);
}

class hourglass {
public:
    // size: side of the input maps (64 for the outer level).
    hourglass(const net_setup& n, const std::string& p, int depth, int f, int size) : depth_(depth) {
        k_ = &n.layers.table();
        for (int i = 0; i < 2; ++i) {
            up1_[std::size_t(i)] = residual(n, p + ".up1_." + std::to_string(i), f, f, size);
            low1_[std::size_t(i)] = residual(n, p + ".low1_." + std::to_string(i), f, f, size / 2);
            low3_[std::size_t(i)] = residual(n, p + ".low3_." + std::to_string(i), f, f, size / 2);
            if (depth == 1) low2_[std::size_t(i)] = residual(n, p + ".low2_." + std::to_string(i), f, f, size / 2);
        }
        if (depth > 1) inner_ = std::make_unique<hourglass>(n, p + ".low2", depth - 1, f, size / 2);
    }

    void run(const feature_map& x, feature_map& out, const kernels::exec& ex) const {
        auto* mem = ex.memory();
        // Maps are made when they are first written (the activation pool then places them
        // with less fragmentation: benchmarks/NOTES.md).
        feature_map up(mem), low1(mem), low2(mem), low3(mem);
        run_pair(up1_, x, up, ex);
        {
            feature_map pooled = output_map(mem, x.height / 2, x.width / 2, x.channels, 0);
            kernels::maxpool2x2(*k_, x, pooled, ex);
            run_pair(low1_, pooled, low1, ex);
        }
        if (inner_) inner_->run(low1, low2, ex);
        else run_pair(low2_, low1, low2, ex);
        run_pair(low3_, low2, low3, ex);
        out.reset_output(x.height, x.width, up.channels, 0);
        kernels::upsample2x_add(*k_, low3, up, out, ex);
    }

private:
    int depth_;
    const kernels::detail::kernel_table* k_ = nullptr;
    std::array<residual, 2> up1_, low1_, low2_, low3_;
    std::unique_ptr<hourglass> inner_;
};

}  // namespace detail

// Outputs of net_hm for one image.
struct hm_outputs {
    std::array<feature_map, num_stacks> heatmaps;  // 21 x 64 x 64 each
    feature_map enc0, enc1;                       // 256 x 64 x 64 each
    // Maps whose memory comes from `source` (a workspace's block pool; null: the heap).
    explicit hm_outputs(handgraph::detail::buffer_source* source = nullptr)
        : heatmaps{feature_map(source), feature_map(source)}, enc0(source), enc1(source) {}
};

// net_hm: the stacked hourglass (input 3 x 256 x 256 -> 2 x 21 heat-maps of 64 x 64).
class net_hm {
public:
    explicit net_hm(const detail::net_setup& n) {
        const std::string p = "net_hm.";
        k_ = &n.layers.table();
        conv1_ = detail::load_conv(n, p + "conv1_", 64, 3, 7, 2, 3, 128, p + "bn1", true);
        r1_ = detail::residual(n, p + "r1", 64, 128, 128, true);
        r4_ = detail::residual(n, p + "r4", 128, 128, 64, true);
        r5_ = detail::residual(n, p + "r5", 128, num_features, 64, true);
        for (int i = 0; i < num_stacks; ++i) {
            std::string s = std::to_string(i);
            hg_.push_back(std::make_unique<detail::hourglass>(n, p + "hourglass." + s, 4, num_features, heatmap_size));
            res_[std::size_t(2 * i)] = detail::residual(n, p + "Residual." + std::to_string(2 * i), num_features, num_features, heatmap_size);
            res_[std::size_t(2 * i + 1)] = detail::residual(n, p + "Residual." + std::to_string(2 * i + 1), num_features, num_features, heatmap_size);
            lin_[std::size_t(i)] = detail::load_conv(n, p + "lin_." + s + ".0", num_features, num_features, 1, 1, 0, heatmap_size, p + "lin_." + s + ".1");
            tmp_out_[std::size_t(i)] = detail::load_conv(n, p + "tmpOut." + s, num_joints, num_features, 1, 1, 0, heatmap_size);
        }
        ll_ = detail::load_conv(n, p + "ll_.0", num_features, num_features, 1, 1, 0, heatmap_size);
        tmp_out_back_ = detail::load_conv(n, p + "tmpOut_.0", num_features, num_joints, 1, 1, 0, heatmap_size);
    }

    // input: 256 x 256 x 3 (channels B, G, R; values pixel / 255 - 0.5) with border >= 3.
    // `input` is released (reset to empty) once the first convolution has read it.
    void run(feature_map& input, hm_outputs& o, const kernels::exec& ex) const {
        auto* mem = ex.memory();
        feature_map c1 = detail::output_map(mem, 128, 128, 64, 0), t(mem), x(mem);
        conv1_.run(input, c1, true, nullptr, ex);
        input = feature_map();
        r1_.run(c1, t, ex);
        c1 = feature_map();
        {
            feature_map pooled = detail::output_map(mem, 64, 64, 128, 0);
            kernels::maxpool2x2(*k_, t, pooled, ex);
            t = feature_map(mem);
            r4_.run(pooled, t, ex);
        }
        r5_.run(t, x, ex);
        t = feature_map();
        const feature_map* cur = &x;  // the input of the current stack
        for (int i = 0; i < num_stacks; ++i) {
            feature_map hg(mem), a(mem);
            hg_[std::size_t(i)]->run(*cur, hg, ex);
            res_[std::size_t(2 * i)].run(hg, a, ex);
            res_[std::size_t(2 * i + 1)].run(a, hg, ex);
            a = feature_map();
            feature_map ll = detail::output_map(mem, 64, 64, num_features, 0);
            lin_[std::size_t(i)].run(hg, ll, true, nullptr, ex);
            hg = feature_map();
            feature_map& hm = o.heatmaps[std::size_t(i)];
            hm.reset_output(64, 64, num_joints, 0);
            tmp_out_[std::size_t(i)].run(ll, hm, false, nullptr, ex);
            if (i == 0) {
                feature_map y = detail::output_map(mem, 64, 64, num_features, 0);
                ll_.run(ll, y, false, cur, ex);  // x + ll_(ll)
                x = feature_map();
                o.enc0.reset_output(64, 64, num_features, 0);
                tmp_out_back_.run(hm, o.enc0, false, &y, ex);  // ... + tmpOut_(hm_0)
                cur = &o.enc0;
            } else {
                o.enc1 = std::move(ll);
            }
        }
    }

private:
    const kernels::detail::kernel_table* k_ = nullptr;
    kernels::conv2d conv1_;
    detail::residual r1_, r4_, r5_;
    std::vector<std::unique_ptr<detail::hourglass>> hg_;
    std::array<detail::residual, 2 * num_stacks> res_;
    std::array<kernels::conv2d, num_stacks> lin_, tmp_out_;
    kernels::conv2d ll_, tmp_out_back_;
};

// The rescaled Laplacians (levels 0..3) and node mask the graph networks run on.
struct graph_operators {
    std::array<kernels::csr_view, 5> laplacian;  // 1280, 640, 320, 160, 80 nodes
    const unsigned char* mask = nullptr;         // 1280 entries, 1 for real vertices
};

// net_feat_mesh: feature net (heat-maps + encodings -> 4096 features) and the graph
// CNN mesh decoder (4096 features -> 1280 x 3 mesh in normalised u, v, depth).
class net_feat_mesh {
public:
    explicit net_feat_mesh(const detail::net_setup& n) {
        const std::string p = "net_feat_mesh.feat_net.";
        k_ = &n.layers.table();
        heatmap_conv_ = detail::load_conv(n, p + "heatmap_conv", num_features, num_joints, 1, 1, 0, heatmap_size);
        encoding_conv_ = detail::load_conv(n, p + "encoding_conv", num_features, num_features, 1, 1, 0, heatmap_size);
        for (int i = 0; i < 8; ++i)
            reg_[std::size_t(i)] = detail::residual(n, p + "reg_." + std::to_string(i), num_features, num_features, heatmap_size >> (i / 2));
        const std::string m = "net_feat_mesh.mesh_net.";
        fc1_ = detail::load_linear(n, m + "fc.fc_1.fc", 512, 4096);
        fc2_ = detail::load_linear(n, m + "fc.fc_2.fc", 80 * 64, 512);
        const int fin[4] = {64, 64, 32, 32}, fout[4] = {64, 32, 32, 3};
        for (int i = 0; i < 4; ++i) {
            std::string s = std::to_string(i);
            const float_values wt = n.w.f32(m + "cl." + s + ".weight", {fout[i], fin[i] * 3}), b = n.w.f32(m + "cl." + s + ".bias", {fout[i]});
            if (i < 3) {
                detail::affine bn = detail::affine::from_bn(n.w, m + "bn." + s, fout[i]);
                cl_[std::size_t(i)] = kernels::cheb_conv::prepare(wt.data(), b.data(), fout[i], fin[i], bn.scale.data(), bn.shift.data(), n.layers);
            } else {
                cl_[std::size_t(i)] = kernels::cheb_conv::prepare(wt.data(), b.data(), fout[i], fin[i], nullptr, nullptr, n.layers);
            }
        }
    }

    // features: 4096 floats (C, H, W order); mesh: 1280 x 3. hm's encodings are released
    // (reset to empty) once read, so the feature net runs without them in memory.
    void run(hm_outputs& hm, const graph_operators& g, float* features, float* mesh, const kernels::exec& ex) const {
        auto* mem = ex.memory();
        {
            feature_map x = detail::output_map(mem, 64, 64, num_features, 0);
            {
                feature_map t = detail::output_map(mem, 64, 64, num_features, 0);
                encoding_conv_.run(hm.enc1, t, false, &hm.enc0, ex);
                hm.enc0 = feature_map();
                hm.enc1 = feature_map();
                heatmap_conv_.run(hm.heatmaps[1], x, false, &t, ex);
            }
            for (int b = 0; b < 4; ++b) {
                feature_map a(mem), c(mem);
                reg_[std::size_t(2 * b)].run(x, a, ex);
                reg_[std::size_t(2 * b + 1)].run(a, c, ex);
                x.reset_output(c.height / 2, c.width / 2, num_features, 0);
                kernels::maxpool2x2(*k_, c, x, ex);
            }
            for (int c = 0; c < num_features; ++c)
                for (int y = 0; y < 4; ++y)
                    for (int xx = 0; xx < 4; ++xx) features[std::size_t(c * 16 + y * 4 + xx)] = x.at(c, y, xx);
        }
        aligned_buffer h(512, mem), nodes(80 * 64, mem);
        fc1_.run(features, h.data(), true, ex);
        fc2_.run(h.data(), nodes.data(), false, ex);
        // Block 0: 80 -> 320 nodes, Chebyshev on the level-2 Laplacian.
        aligned_buffer u(320 * 64, mem), a(320 * 64, mem), b(320 * 32, mem);
        kernels::graph_upsample4(nodes.data(), 80, 64, u.data());
        cl_[0].run(g.laplacian[2], u.data(), a.data(), true, ex);
        cl_[1].run(g.laplacian[2], a.data(), b.data(), true, ex);
        // Block 1: 320 -> 1280 nodes, Chebyshev on the level-0 Laplacian.
        aligned_buffer u1(1280 * 32, mem), c(1280 * 32, mem);
        kernels::graph_upsample4(b.data(), 320, 32, u1.data());
        cl_[2].run(g.laplacian[0], u1.data(), c.data(), true, ex);
        cl_[3].run(g.laplacian[0], c.data(), mesh, false, ex);
    }

private:
    const kernels::detail::kernel_table* k_ = nullptr;
    kernels::conv2d heatmap_conv_, encoding_conv_;
    std::array<detail::residual, 8> reg_;
    kernels::linear fc1_, fc2_;
    std::array<kernels::cheb_conv, 4> cl_;
};

// net_mesh_pose: masked mesh (1280 x 3) -> relative depths of joints 1..20.
// As released: no BatchNorm (its tensors exist but are unused) and no ReLU.
class net_mesh_pose {
public:
    explicit net_mesh_pose(const detail::net_setup& n) {
        const std::string p = "net_mesh_pose.";
        const int fin[4] = {3, 32, 32, 64}, fout[4] = {32, 32, 64, 64};
        for (int i = 0; i < 4; ++i) {
            std::string s = std::to_string(i);
            cl_[std::size_t(i)] = kernels::cheb_conv::prepare(n.w.f32(p + "cl." + s + ".weight", {fout[i], fin[i] * 3}).data(),
                                                             n.w.f32(p + "cl." + s + ".bias", {fout[i]}).data(), fout[i], fin[i], nullptr, nullptr,
                                                             n.layers);
            for (const char* t : {".weight", ".bias", ".running_mean", ".running_var"}) n.w.ignore(p + "bn." + s + t);
        }
        fc1_ = detail::load_linear(n, p + "fc.fc_1.fc", 512, 80 * 64);
        fc2_ = detail::load_linear(n, p + "fc.fc_2.fc", num_joints - 1, 512);
    }

    // mesh: 1280 x 3 (not yet masked); depths: 20 values.
    void run(const float* mesh, const graph_operators& g, float* depths, const kernels::exec& ex) const {
        auto* mem = ex.memory();
        aligned_buffer x(1280 * 3, mem);
        std::copy(mesh, mesh + 1280 * 3, x.data());
        for (int v = 0; v < mesh_nodes; ++v)
            if (!g.mask[v]) x[std::size_t(v) * 3] = x[std::size_t(v) * 3 + 1] = x[std::size_t(v) * 3 + 2] = 0.0f;
        aligned_buffer a(1280 * 32, mem), b(1280 * 32, mem), p(320 * 32, mem);
        cl_[0].run(g.laplacian[0], x.data(), a.data(), false, ex);
        cl_[1].run(g.laplacian[0], a.data(), b.data(), false, ex);
        kernels::graph_maxpool4(b.data(), 1280, 32, p.data());
        aligned_buffer c(320 * 64, mem), d(320 * 64, mem), q(80 * 64, mem), h(512, mem);
        cl_[2].run(g.laplacian[2], p.data(), c.data(), false, ex);
        cl_[3].run(g.laplacian[2], c.data(), d.data(), false, ex);
        kernels::graph_maxpool4(d.data(), 320, 64, q.data());
        fc1_.run(q.data(), h.data(), false, ex);
        fc2_.run(h.data(), depths, false, ex);
    }

private:
    std::array<kernels::cheb_conv, 4> cl_;
    kernels::linear fc1_, fc2_;
};

// Floating-point operations (multiply and add counted separately) of one forward pass
// of the three networks, from the layer shapes: ~32.4 GFLOP.
inline double network_flops() {
    auto conv = [](double hw, double cin, double cout, double k) { return 2.0 * hw * cin * cout * k * k; };
    auto res = [&](double s, double cin, double cout) {
        double c2 = cout / 2, hw = s * s;
        return conv(hw, cin, c2, 1) + conv(hw, c2, c2, 3) + conv(hw, c2, cout, 1) + (cin != cout ? conv(hw, cin, cout, 1) : 0.0);
    };
    const double f = num_features;
    std::function<double(int, double)> hg = [&](int depth, double s) -> double {
        double low = depth > 1 ? hg(depth - 1, s / 2) : 2 * res(s / 2, f, f);
        return 2 * res(s, f, f) + 2 * res(s / 2, f, f) + low + 2 * res(s / 2, f, f);
    };
    double total = conv(128.0 * 128, 3, 64, 7) + res(128, 64, 128) + res(64, 128, 128) + res(64, 128, f);
    for (int i = 0; i < num_stacks; ++i) total += hg(4, 64) + 2 * res(64, f, f) + conv(64.0 * 64, f, f, 1) + conv(64.0 * 64, f, num_joints, 1);
    total += conv(64.0 * 64, f, f, 1) + conv(64.0 * 64, num_joints, f, 1);                 // ll_, tmpOut_
    total += conv(64.0 * 64, num_joints, f, 1) + conv(64.0 * 64, f, f, 1);                 // feature net inputs
    for (double s : {64.0, 32.0, 16.0, 8.0}) total += 2 * res(s, f, f);
    total += 2.0 * (4096.0 * 512 + 512.0 * 5120 + 5120.0 * 512 + 512.0 * 20);            // fully connected
    auto cheb = [](double n, double fin, double fout, double nnz) { return 2.0 * (2 * nnz * fin + n * 3 * fin * fout); };
    total += cheb(320, 64, 64, 1916) + cheb(320, 64, 32, 1916) + cheb(1280, 32, 32, 6970) + cheb(1280, 32, 3, 6970);
    total += cheb(1280, 3, 32, 6970) + cheb(1280, 32, 32, 6970) + cheb(320, 32, 64, 1916) + cheb(320, 64, 64, 1916);
    return total;
}

}  // namespace handgraph

// handgraph/palm_graph.hpp: a converted palm detector (tools/convert_palm.py, the format of
// weights/PALM_FORMAT.md) read, checked and prepared, and its graph run with handgraph's
// kernels (internal; handgraph/detector.hpp is the public face).
//
// Reading refuses, each with one message naming the file: a file that is not safetensors
// or is damaged (safetensors_file's checks), a TFLite model not yet converted, the hand
// network's weight file, another format or version, a graph or settings that do not parse,
// an op this detector does not run (named), options or shapes that do not agree with what
// the op makes of its inputs (every output shape is inferred again here), a missing,
// misshapen, non-finite or unexpected tensor, and anchors that differ from MediaPipe's rule
// applied to the file's own settings (palm_postprocess.hpp).
//
// Ops and kernels (every activation is a feature_map: HWC, channels padded to 16, one zero
// border for all maps, as wide as the widest padding; rank-3 tensors are dense):
//  CONV_2D            conv2d (kernels/conv.hpp): 1x1 layers directly; TFLite's asymmetric
//                     SAME padding (the 5x5 stride-2 stem: top/left 1, bottom/right 2) as
//                     conv2d's symmetric padding P = max(bottom, right) on an input stored
//                     shifted by (P - top, P - left) into its border: the letterboxed input
//                     is written that way, any other input is copied so
//  DEPTHWISE_CONV_2D  depthwise_conv2d (kernels/depthwise.hpp)
//  PRELU, ADD         prelu_slopes, add_clamped (kernels/palm_elementwise.hpp)
//  MAX_POOL_2D        max_pool (same)
//  PAD                pad_map (kernels/palm_layout.hpp)
//  RESIZE_BILINEAR    resize_bilinear (palm_elementwise.hpp)
//  RESHAPE            map_to_dense / dense_to_map (palm_layout.hpp), dense tensors as they are
//  CONCATENATION      concat_dense / concat_maps (palm_layout.hpp)
// Fused when the graph allows it (the intermediate value has no other reader): a CONV_2D
// (activation none or ReLU) into the ADD that reads it (conv2d's residual, run in place
// when the other addend is not read later), a PRELU into the ADD that reads it (PReLU then
// add, one pass), a MAX_POOL_2D into the channel PAD that reads it (the pool writes the
// wider map, padding channels zero). A fused activation the kernel cannot take is a clamp
// pass after it. Values are freed after their last reader; single-reader PReLU and ADD
// outputs reuse their input's map.
// Depends on weights.hpp (safetensors_file), json.hpp, kernels/palm_kernels.hpp,
// kernels/conv.hpp, palm_postprocess.hpp (the settings and anchors).
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "error.hpp"
#include "json.hpp"
#include "kernels/conv.hpp"
#include "kernels/palm_kernels.hpp"
#include "palm_postprocess.hpp"
#include "tensor.hpp"
#include "weights.hpp"

namespace handgraph {
namespace detail {

constexpr const char* palm_format_name = "handgraph-palm-detector";
constexpr int palm_format_version = 1;

enum class palm_op { conv_2d, depthwise_conv_2d, prelu, add, max_pool_2d, pad, resize_bilinear, reshape, concatenation };

inline const char* palm_op_name(palm_op k) {
    switch (k) {
        case palm_op::conv_2d: return "CONV_2D";
        case palm_op::depthwise_conv_2d: return "DEPTHWISE_CONV_2D";
        case palm_op::prelu: return "PRELU";
        case palm_op::add: return "ADD";
        case palm_op::max_pool_2d: return "MAX_POOL_2D";
        case palm_op::pad: return "PAD";
        case palm_op::resize_bilinear: return "RESIZE_BILINEAR";
        case palm_op::reshape: return "RESHAPE";
        case palm_op::concatenation: return "CONCATENATION";
    }
    return "?";
}

// One op of the graph as the file gives it (checked).
struct palm_op_desc {
    palm_op kind = palm_op::conv_2d;
    int index = 0, tflite_op = -1;
    std::vector<int> inputs;
    int output = -1;
    std::string filter, bias, alpha;  // tensor names ("" when absent)
    int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
    kernels::window_pads pads;
    kernels::clamp_range act;
    std::string act_name = "NONE";
    std::array<std::array<int, 2>, 4> paddings{};  // PAD: N, H, W, C
    bool align_corners = false, half_pixel_centers = false;
    int axis = 0;
};

// What an observer of a run sees: op index, the value's shape and its elements in row-major
// (NHWC) order.
using palm_observer = std::function<void(int op, const std::vector<int>& shape, const std::vector<float>& values)>;

class palm_network {
public:
    // Reads `path` (see the top for what is refused) and prepares every layer for the
    // instruction set of `k` (the hand network's table; the detector's own is the one of the
    // same set), the packed weights in the network's own arena.
    palm_network(const std::string& path, const kernels::kernel_table& k) : path_(path) {
        refuse_other_files(path);
        const safetensors_file f = safetensors_file::read(path);
        read_metadata(f);
        kernels_ = &k;
        dkernels_ = &kernels::select_detector_kernels(k);
        read_graph(f);
        read_anchors(f);
        plan();
        std::string extra;
        int count = 0;
        for (const auto& t : f.tensors())
            if (!used_.count(t.name)) {
                if (count < 5) extra += (count ? ", " : "") + t.name;
                ++count;
            }
        if (count) throw error(path_ + ": " + std::to_string(count) + " tensor(s) that no op of the graph uses: " + extra + (count > 5 ? ", ..." : ""));
    }
    palm_network(const palm_network&) = delete;
    palm_network& operator=(const palm_network&) = delete;

    // input: input_height() x input_width() x 3 floats (the letterboxed RGB tensor);
    // regressors: num_boxes() x num_coords(); logits: num_boxes(). `observer`, when given,
    // sees every op's output (tests).
    void run(const kernels::exec& ex, const float* input, float* regressors, float* logits, const palm_observer* observer = nullptr) const;

    const std::string& path() const { return path_; }
    const std::string& model_name() const { return model_; }
    const palm_settings& settings() const { return settings_; }
    const std::vector<std::array<float, 4>>& anchors() const { return anchors_; }
    int input_height() const { return values_[std::size_t(input_)][1]; }
    int input_width() const { return values_[std::size_t(input_)][2]; }
    int num_boxes() const { return settings_.num_boxes; }
    int num_coords() const { return settings_.num_coords; }
    const std::vector<palm_op_desc>& ops() const { return ops_; }
    const std::vector<std::vector<int>>& value_shapes() const { return values_; }
    const char* kernels_name() const { return kernels_->name; }
    std::size_t weight_bytes() const { return arena_.used(); }
    int border() const { return border_; }
    // Multiply-adds of one forward pass (the convolutions).
    double multiply_adds() const { return macs_; }

private:
    // ---- reading ----------------------------------------------------------------------
    void refuse_other_files(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw error(path + ": cannot open file");
        char head[8] = {};
        in.read(head, 8);
        if (in.gcount() == 8 && std::memcmp(head + 4, "TFL3", 4) == 0)
            throw error(path + ": this is a TFLite model, not a converted palm detector: convert it with tools/convert_palm.py (tools/get_palm_detector.sh does both)");
    }

    void read_metadata(const safetensors_file& f) {
        const auto& md = f.metadata();
        auto get = [&](const char* k) {
            auto it = md.find(k);
            return it == md.end() ? std::string() : it->second;
        };
        const std::string format = get("format");
        if (format == "handgraph-weights" || format == "handgraph-prepared")
            throw error(path_ + ": this is the hand network's " + (format == "handgraph-weights" ? "weight file (tools/convert_weights.py" : "prepared weight file (hand_prepare") +
                        ", format \"" + format + "\"), not a palm detector: give a detector converted by tools/convert_palm.py "
                        "(tools/get_palm_detector.sh makes weights/palm_detection_full.safetensors)");
        if (format != palm_format_name)
            throw error(path_ + ": not a palm detector file (metadata \"format\" is \"" + format + "\", expected \"" + palm_format_name +
                        "\"): convert MediaPipe's palm_detection_*.tflite with tools/convert_palm.py");
        if (get("format_version") != std::to_string(palm_format_version))
            throw error(path_ + ": palm detector format version \"" + get("format_version") + "\" is not supported (this build reads version " +
                        std::to_string(palm_format_version) + "); convert again with this version's tools/convert_palm.py");
        model_ = get("model").empty() ? "unrecognised" : get("model");
        if (!md.count("graph")) throw error(path_ + ": metadata \"graph\" is missing");
        if (!md.count("postprocess")) throw error(path_ + ": metadata \"postprocess\" is missing");
        settings_ = parse_palm_settings(get("postprocess"), path_);
    }

    [[noreturn]] void fail_op(int i, const std::string& kind, const std::string& msg) const {
        throw error(path_ + ": graph op " + std::to_string(i) + " (" + kind + "): " + msg);
    }

    static bool int_of(const json::value* v, long lo, long hi, int& out) {
        if (!v || !v->is_number() || !v->is_integer || v->integer < lo || v->integer > hi) return false;
        out = int(v->integer);
        return true;
    }
    std::vector<int> int_list(const json::value* v, std::size_t n, long lo, long hi, int op, const std::string& kind, const char* name) const {
        if (!v || !v->is_array() || (n && v->items.size() != n)) fail_op(op, kind, std::string("\"") + name + "\" is missing or not " + std::to_string(n) + " integers");
        std::vector<int> out;
        for (const auto& x : v->items) {
            int k = 0;
            if (!int_of(&x, lo, hi, k)) fail_op(op, kind, std::string("\"") + name + "\" holds a value outside " + std::to_string(lo) + ".." + std::to_string(hi));
            out.push_back(k);
        }
        return out;
    }

    // A float32 tensor of exactly `shape`, every value finite; marked used.
    std::vector<float> tensor(const safetensors_file& f, const std::string& name, const std::vector<std::int64_t>& shape) {
        const tensor_info* t = f.find(name);
        if (!t) throw error(path_ + ": tensor \"" + name + "\" is missing");
        if (t->type != dtype::f32) throw error(path_ + ": tensor \"" + name + "\" has dtype " + dtype_name(t->type) + ", expected F32");
        if (t->shape != shape) throw error(path_ + ": tensor \"" + name + "\" has shape " + shape_string(t->shape) + ", expected " + shape_string(shape));
        if (!used_.insert(name).second) throw error(path_ + ": tensor \"" + name + "\" is used by two ops (each op has its own)");
        std::vector<float> v = f.values<float>(name);
        for (std::size_t i = 0; i < v.size(); ++i)
            if (!std::isfinite(v[i])) throw error(path_ + ": tensor \"" + name + "\" holds a non-finite value (NaN or Inf) at flat index " + std::to_string(i));
        return v;
    }

    void read_graph(const safetensors_file& f);
    void read_anchors(const safetensors_file& f);
    void plan();

    // ---- the prepared steps -----------------------------------------------------------
    enum class step_kind { conv, depthwise, prelu, add, max_pool, pad, resize, reshape, concat };
    struct step {
        step_kind kind;
        int op = 0;             // graph op index (the last one fused into it)
        std::vector<int> in;    // value ids read
        int out = -1;           // value id made
        int residual = -1;      // conv / prelu: the fused ADD's other input
        int layer = -1;         // index into convs_ / depthwise_ / prelus_
        bool relu = false;      // conv: conv2d's ReLU (before the residual)
        bool serial = false;    // conv: too little work to share out (see plan())
        kernels::clamp_range act;   // applied by the kernel (depthwise, pointwise, pool)
        kernels::clamp_range post;  // applied after the step by a clamp pass (when !post.none())
        int shift_dy = 0, shift_dx = 0;  // conv: the input stored shifted by this much
        bool shift_copy = false;         // conv: make that shifted copy first
        palm_op_desc desc;              // the op's own fields (window, paddings, axis, ...)
    };

    static bool is_map(const std::vector<int>& shape) { return shape.size() == 4; }

    std::string path_, model_;
    palm_settings settings_;
    const kernels::kernel_table* kernels_ = nullptr;
    const kernels::detector_kernel_table* dkernels_ = nullptr;
    weight_arena arena_;
    std::vector<std::vector<int>> values_;  // shapes
    std::vector<palm_op_desc> ops_;
    int input_ = 0, out_regressors_ = -1, out_scores_ = -1;
    std::vector<std::array<float, 4>> anchors_;
    std::set<std::string> used_;
    // prepared
    std::vector<kernels::conv2d> convs_;
    std::vector<kernels::depthwise_conv2d> depthwise_;
    std::vector<kernels::prelu_slopes> prelus_;
    std::vector<step> steps_;
    std::vector<int> last_use_;       // per value: the last step reading it (-1: none)
    int border_ = 0;
    int input_shift_dy_ = 0, input_shift_dx_ = 0;  // the graph input is written shifted
    double macs_ = 0;
    // weights kept until plan() prepares them
    struct pending_weights {
        std::vector<float> filter, bias, alpha;
    };
    std::vector<pending_weights> pending_;
};

inline void palm_network::read_graph(const safetensors_file& f) {
    const json::value g = json::parse(f.metadata().at("graph"), path_ + ": metadata \"graph\"");
    if (!g.is_object()) throw error(path_ + ": metadata \"graph\" is not a JSON object");
    const json::value* vals = g.find("values");
    const json::value* ops = g.find("ops");
    const json::value* outs = g.find("outputs");
    if (!vals || !vals->is_array() || vals->items.empty() || vals->items.size() > 100000)
        throw error(path_ + ": graph \"values\" is missing or not a list of 1 to 100000 values");
    if (!ops || !ops->is_array() || ops->items.empty() || ops->items.size() > 100000)
        throw error(path_ + ": graph \"ops\" is missing or not a list of 1 to 100000 ops");
    if (!outs || !outs->is_object()) throw error(path_ + ": graph \"outputs\" is missing");
    const std::size_t nv = vals->items.size();
    for (std::size_t i = 0; i < nv; ++i) {
        const json::value& v = vals->items[i];
        int id = -1;
        if (!v.is_object() || !int_of(v.find("id"), 0, long(nv) - 1, id) || std::size_t(id) != i)
            throw error(path_ + ": graph value " + std::to_string(i) + " has no id " + std::to_string(i) + " (ids are dense, in order)");
        const json::value* s = v.find("shape");
        if (!s || !s->is_array() || s->items.empty() || s->items.size() > 4)
            throw error(path_ + ": graph value " + std::to_string(i) + ": \"shape\" is not a list of 1 to 4 sizes");
        std::vector<int> shape;
        std::int64_t numel = 1;
        for (const auto& d : s->items) {
            int k = 0;
            if (!int_of(&d, 1, 1 << 20, k)) throw error(path_ + ": graph value " + std::to_string(i) + ": a size is not an integer in 1..2^20");
            shape.push_back(k);
            numel *= k;
            if (numel > (std::int64_t(1) << 26)) throw error(path_ + ": graph value " + std::to_string(i) + " has more than 2^26 elements");
        }
        if (shape.size() == 4 && shape[0] != 1) throw error(path_ + ": graph value " + std::to_string(i) + " has batch " + std::to_string(shape[0]) + " (this detector runs batch 1)");
        values_.push_back(shape);
    }
    if (!int_of(g.find("input"), 0, long(nv) - 1, input_) || input_ != 0) throw error(path_ + ": graph \"input\" is not value 0");
    const auto& in = values_[0];
    if (in.size() != 4 || in[3] != 3 || in[1] != settings_.input_height || in[2] != settings_.input_width)
        throw error(path_ + ": the graph's input is " + shape_string(std::vector<std::int64_t>(in.begin(), in.end())) + ", the settings say [1, " +
                    std::to_string(settings_.input_height) + ", " + std::to_string(settings_.input_width) + ", 3]");
    if (!int_of(outs->find("regressors"), 0, long(nv) - 1, out_regressors_) || !int_of(outs->find("scores"), 0, long(nv) - 1, out_scores_) ||
        out_regressors_ == out_scores_)
        throw error(path_ + ": graph \"outputs\" does not name two values \"regressors\" and \"scores\"");
    const auto& rs = values_[std::size_t(out_regressors_)];
    const auto& ss = values_[std::size_t(out_scores_)];
    if (rs.size() != 3 || rs[0] != 1 || rs[1] != settings_.num_boxes || rs[2] != settings_.num_coords || ss.size() != 3 || ss[0] != 1 ||
        ss[1] != settings_.num_boxes || ss[2] != 1)
        throw error(path_ + ": the graph's outputs are not [1, " + std::to_string(settings_.num_boxes) + ", " + std::to_string(settings_.num_coords) +
                    "] and [1, " + std::to_string(settings_.num_boxes) + ", 1] (the settings' boxes and coordinates)");

    static const std::map<std::string, palm_op> kinds = {
        {"CONV_2D", palm_op::conv_2d}, {"DEPTHWISE_CONV_2D", palm_op::depthwise_conv_2d}, {"PRELU", palm_op::prelu},
        {"ADD", palm_op::add}, {"MAX_POOL_2D", palm_op::max_pool_2d}, {"PAD", palm_op::pad}, {"RESIZE_BILINEAR", palm_op::resize_bilinear},
        {"RESHAPE", palm_op::reshape}, {"CONCATENATION", palm_op::concatenation}};
    int made = 1;  // values made so far (the input)
    for (std::size_t i = 0; i < ops->items.size(); ++i) {
        const json::value& o = ops->items[i];
        const int oi = int(i);
        if (!o.is_object()) fail_op(oi, "?", "not a JSON object");
        const json::value* name = o.find("op");
        if (!name || !name->is_string()) fail_op(oi, "?", "no \"op\" name");
        auto kit = kinds.find(name->str);
        if (kit == kinds.end())
            throw error(path_ + ": graph op " + std::to_string(i) + " is " + name->str +
                        ", which this detector does not run (it runs CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD, MAX_POOL_2D, PAD, "
                        "RESIZE_BILINEAR, RESHAPE, CONCATENATION)");
        palm_op_desc d;
        d.kind = kit->second;
        const std::string kind = name->str;
        int idx = -1;
        if (!int_of(o.find("index"), 0, 1 << 30, idx) || idx != oi) fail_op(oi, kind, "\"index\" is not its position " + std::to_string(i));
        d.index = idx;
        int_of(o.find("tflite_op"), 0, 1 << 30, d.tflite_op);
        d.inputs = int_list(o.find("inputs"), 0, 0, made - 1, oi, kind, "inputs");
        const std::vector<int> outl = int_list(o.find("outputs"), 1, 0, long(nv) - 1, oi, kind, "outputs");
        if (outl[0] != made) fail_op(oi, kind, "makes value " + std::to_string(outl[0]) + ", expected the next one, " + std::to_string(made));
        d.output = made++;
        const std::size_t want_inputs = d.kind == palm_op::add ? 2 : d.kind == palm_op::concatenation ? 0 : 1;
        if ((want_inputs && d.inputs.size() != want_inputs) || d.inputs.empty() || d.inputs.size() > 64)
            fail_op(oi, kind, "has " + std::to_string(d.inputs.size()) + " inputs");
        const std::vector<int>& x = values_[std::size_t(d.inputs[0])];
        const std::vector<int>& y = values_[std::size_t(d.output)];
        auto need_map = [&](const std::vector<int>& s, const char* what) {
            if (!is_map(s)) fail_op(oi, kind, std::string(what) + " is not a [1, H, W, C] tensor");
        };
        auto expect_shape = [&](const std::vector<int>& want) {
            if (want != y)
                fail_op(oi, kind, "the graph says it makes " + shape_string(std::vector<std::int64_t>(y.begin(), y.end())) + ", the op makes " +
                                      shape_string(std::vector<std::int64_t>(want.begin(), want.end())));
        };
        auto activation = [&](const json::value* a) {
            if (!a || !a->is_string()) fail_op(oi, kind, "\"activation\" is missing");
            d.act_name = a->str;
            if (a->str == "NONE") d.act = {};
            else if (a->str == "RELU") d.act.lo = 0;
            else if (a->str == "RELU6") d.act.lo = 0, d.act.hi = 6;
            else if (a->str == "RELU_N1_TO_1") d.act.lo = -1, d.act.hi = 1;
            else fail_op(oi, kind, "activation " + a->str + " is not one this detector runs (NONE, RELU, RELU6, RELU_N1_TO_1)");
        };
        auto weight_name = [&](const char* key, bool optional) {
            const json::value* w = o.find(key);
            if (optional && w && w->type == json::value::kind::null) return std::string();
            if (!w || !w->is_string() || w->str.empty()) fail_op(oi, kind, std::string("\"") + key + "\" does not name a tensor");
            return w->str;
        };
        // Window ops: kernel, stride, dilation, padding rule, and the pads it amounts to
        // (TFLite's kernels/padding.h, recomputed and compared).
        auto window = [&](int kh, int kw, int dh, int dw) {
            const std::vector<int> st = int_list(o.find("stride"), 2, 1, 64, oi, kind, "stride");
            d.sh = st[0], d.sw = st[1], d.kh = kh, d.kw = kw, d.dh = dh, d.dw = dw;
            const json::value* padding = o.find("padding");
            if (!padding || !padding->is_string() || (padding->str != "SAME" && padding->str != "VALID"))
                fail_op(oi, kind, "\"padding\" is not SAME or VALID");
            const std::vector<int> pad = int_list(o.find("pad"), 4, 0, 4096, oi, kind, "pad");
            int want[4] = {0, 0, 0, 0}, oh = 0, ow = 0;
            auto same = [](int size, int k, int s, int dil, int& before, int& after) {
                const int out = (size + s - 1) / s;
                const long total = std::max(long(out - 1) * s + long(k - 1) * dil + 1 - size, 0L);
                before = int(total / 2), after = int(total - total / 2);
                return out;
            };
            if (padding->str == "SAME") {
                oh = same(x[1], kh, d.sh, dh, want[0], want[1]);
                ow = same(x[2], kw, d.sw, dw, want[2], want[3]);
            } else {
                oh = kernels::window_output(x[1], kh, d.sh, dh, 0, 0);
                ow = kernels::window_output(x[2], kw, d.sw, dw, 0, 0);
            }
            for (int k = 0; k < 4; ++k)
                if (pad[std::size_t(k)] != want[k])
                    fail_op(oi, kind, "\"pad\" [" + std::to_string(pad[0]) + ", " + std::to_string(pad[1]) + ", " + std::to_string(pad[2]) + ", " +
                                          std::to_string(pad[3]) + "] is not what " + padding->str + " padding gives: [" + std::to_string(want[0]) +
                                          ", " + std::to_string(want[1]) + ", " + std::to_string(want[2]) + ", " + std::to_string(want[3]) + "]");
            if (oh < 1 || ow < 1) fail_op(oi, kind, "the window does not fit the input");
            d.pads = {want[0], want[1], want[2], want[3]};
            return std::array<int, 2>{oh, ow};
        };
        pending_weights pw;
        switch (d.kind) {
            case palm_op::conv_2d:
            case palm_op::depthwise_conv_2d: {
                need_map(x, "the input");
                const bool dw = d.kind == palm_op::depthwise_conv_2d;
                const std::vector<int> k = int_list(o.find("kernel"), 2, 1, 64, oi, kind, "kernel");
                const std::vector<int> dil = int_list(o.find("dilation"), 2, 1, 64, oi, kind, "dilation");
                activation(o.find("activation"));
                const auto out = window(k[0], k[1], dil[0], dil[1]);
                const int cout = dw ? x[3] : (need_map(y, "the output"), y[3]);
                expect_shape({1, out[0], out[1], cout});
                d.filter = weight_name("filter", false);
                d.bias = weight_name("bias", true);
                if (dw) pw.filter = tensor(f, d.filter, {1, k[0], k[1], x[3]});
                else pw.filter = tensor(f, d.filter, {cout, k[0], k[1], x[3]});
                if (!d.bias.empty()) pw.bias = tensor(f, d.bias, {cout});
                macs_ += double(out[0]) * out[1] * cout * k[0] * k[1] * (dw ? 1 : x[3]);
                break;
            }
            case palm_op::prelu:
                d.alpha = weight_name("alpha", false);
                pw.alpha = tensor(f, d.alpha, {x.back()});
                expect_shape(x);
                break;
            case palm_op::add:
                activation(o.find("activation"));
                if (values_[std::size_t(d.inputs[1])] != x) fail_op(oi, kind, "its inputs have different shapes (broadcasting is not run)");
                expect_shape(x);
                break;
            case palm_op::max_pool_2d: {
                need_map(x, "the input");
                const std::vector<int> k = int_list(o.find("filter"), 2, 1, 64, oi, kind, "filter");
                activation(o.find("activation"));
                const auto out = window(k[0], k[1], 1, 1);
                if (d.pads.top >= k[0] || d.pads.bottom >= k[0] || d.pads.left >= k[1] || d.pads.right >= k[1])
                    fail_op(oi, kind, "padding as wide as the window");
                expect_shape({1, out[0], out[1], x[3]});
                break;
            }
            case palm_op::pad: {
                const json::value* p = o.find("paddings");
                if (!p || !p->is_array() || p->items.size() != x.size()) fail_op(oi, kind, "\"paddings\" is not one [before, after] pair per dimension");
                std::vector<int> want = x;
                for (std::size_t k = 0; k < x.size(); ++k) {
                    const std::vector<int> pr = int_list(&p->items[k], 2, 0, 4096, oi, kind, "paddings");
                    d.paddings[k] = {pr[0], pr[1]};
                    want[k] += pr[0] + pr[1];
                }
                if (!is_map(x) || d.paddings[0][0] || d.paddings[0][1])
                    fail_op(oi, kind, "pads a tensor that is not [1, H, W, C], or its batch (this detector pads rows, columns and channels)");
                expect_shape(want);
                break;
            }
            case palm_op::resize_bilinear: {
                need_map(x, "the input");
                const std::vector<int> size = int_list(o.find("size"), 2, 1, 16384, oi, kind, "size");
                const json::value* ac = o.find("align_corners");
                const json::value* hp = o.find("half_pixel_centers");
                if (!ac || ac->type != json::value::kind::boolean || !hp || hp->type != json::value::kind::boolean)
                    fail_op(oi, kind, "\"align_corners\" or \"half_pixel_centers\" is not true or false");
                d.align_corners = ac->b, d.half_pixel_centers = hp->b;
                if (d.align_corners && d.half_pixel_centers) fail_op(oi, kind, "align_corners and half_pixel_centers are both set (TFLite refuses this)");
                expect_shape({1, size[0], size[1], x[3]});
                break;
            }
            case palm_op::reshape: {
                const std::vector<int> s = int_list(o.find("shape"), 0, 1, 1 << 26, oi, kind, "shape");
                std::int64_t a = 1, b = 1;
                for (int v : x) a *= v;
                for (int v : s) b *= v;
                if (a != b) fail_op(oi, kind, "the new shape does not hold the input's elements");
                expect_shape(s);
                break;
            }
            case palm_op::concatenation: {
                int axis = 0;
                if (!int_of(o.find("axis"), 0, long(x.size()) - 1, axis)) fail_op(oi, kind, "\"axis\" is outside the inputs' rank");
                activation(o.find("activation"));
                d.axis = axis;
                std::vector<int> want = x;
                want[std::size_t(axis)] = 0;
                for (int v : d.inputs) {
                    const auto& s = values_[std::size_t(v)];
                    for (std::size_t k = 0; k < s.size() || k < x.size(); ++k)
                        if (s.size() != x.size() || (int(k) != axis && s[k] != x[k])) fail_op(oi, kind, "its inputs do not concatenate on axis " + std::to_string(axis));
                    want[std::size_t(axis)] += s[std::size_t(axis)];
                }
                if (is_map(x) && axis == 0) fail_op(oi, kind, "concatenates batches (this detector runs batch 1)");
                expect_shape(want);
                break;
            }
        }
        ops_.push_back(std::move(d));
        pending_.push_back(std::move(pw));
    }
    if (std::size_t(made) != nv) throw error(path_ + ": graph has " + std::to_string(nv) + " values but its ops make " + std::to_string(made - 1));
}

inline void palm_network::read_anchors(const safetensors_file& f) {
    const std::vector<float> a = tensor(f, "anchors", {settings_.num_boxes, 4});
    const std::vector<std::array<double, 4>> gen = generate_anchors(settings_);
    if (gen.size() != std::size_t(settings_.num_boxes))
        throw error(path_ + ": MediaPipe's anchor rule gives " + std::to_string(gen.size()) + " anchors for the file's settings, the model has " +
                    std::to_string(settings_.num_boxes) + " boxes");
    anchors_.resize(gen.size());
    for (std::size_t i = 0; i < gen.size(); ++i)
        for (std::size_t k = 0; k < 4; ++k) {
            const float v = a[i * 4 + k];
            if (v != float(gen[i][k]))
                throw error(path_ + ": anchor " + std::to_string(i) + " value " + std::to_string(k) + " is " + json::number(v) +
                            ", MediaPipe's rule on the file's settings gives " + json::number(gen[i][k]) + ": damaged or made by another converter");
            anchors_[i][k] = v;
        }
}

inline void palm_network::plan() {
    const std::size_t nops = ops_.size(), nv = values_.size();
    // Readers of each value (op index per read).
    std::vector<std::vector<int>> readers(nv);
    for (const auto& d : ops_)
        for (int v : d.inputs) readers[std::size_t(v)].push_back(d.index);
    auto graph_output = [&](int v) { return v == out_regressors_ || v == out_scores_; };
    auto sole_reader = [&](int v) { return readers[std::size_t(v)].size() == 1 && !graph_output(v) ? readers[std::size_t(v)][0] : -1; };
    // Fusions: which ops are folded into a later one (fused_into[i] = j), and what j absorbs.
    std::vector<int> fused_into(nops, -1);
    std::vector<int> absorbs(nops, -1);  // for an ADD or PAD: the op folded into it
    for (const auto& d : ops_) {
        const int r = sole_reader(d.output);
        if (r < 0) continue;
        const palm_op_desc& u = ops_[std::size_t(r)];
        if (absorbs[std::size_t(r)] >= 0) continue;
        const bool conv_add = d.kind == palm_op::conv_2d && u.kind == palm_op::add && (d.act_name == "NONE" || d.act_name == "RELU");
        const bool prelu_add = d.kind == palm_op::prelu && u.kind == palm_op::add && is_map(values_[std::size_t(d.output)]);
        const bool pool_pad = d.kind == palm_op::max_pool_2d && u.kind == palm_op::pad && u.paddings[1][0] == 0 && u.paddings[1][1] == 0 &&
                              u.paddings[2][0] == 0 && u.paddings[2][1] == 0 && u.paddings[3][0] == 0;
        if (conv_add || prelu_add || pool_pad) {
            fused_into[std::size_t(d.index)] = r;
            absorbs[std::size_t(r)] = d.index;
        }
    }
    // The weights, prepared in the arena for the table's instruction set.
    const kernels::layer_setup ls{kernels_, &arena_};
    const kernels::detector_setup ds{dkernels_, &arena_};
    std::vector<int> layer_of(nops, -1);
    for (const auto& d : ops_) {
        pending_weights& pw = pending_[std::size_t(d.index)];
        const auto& x = values_[std::size_t(d.inputs[0])];
        if (d.kind == palm_op::conv_2d) {
            if (d.kh != d.kw || d.sh != d.sw || d.dh != 1 || d.dw != 1)
                fail_op(d.index, "CONV_2D", "a " + std::to_string(d.kh) + "x" + std::to_string(d.kw) + " kernel, stride " + std::to_string(d.sh) + "x" +
                                                std::to_string(d.sw) + ", dilation " + std::to_string(d.dh) + "x" + std::to_string(d.dw) +
                                                ": this detector runs square kernels with one stride and no dilation");
            const int cout = values_[std::size_t(d.output)][3], cin = x[3], k = d.kh;
            // OHWI -> OIHW for conv2d.
            std::vector<float> oihw(pw.filter.size());
            for (int o = 0; o < cout; ++o)
                for (int y = 0; y < k; ++y)
                    for (int xx = 0; xx < k; ++xx)
                        for (int i = 0; i < cin; ++i)
                            oihw[((std::size_t(o) * cin + i) * k + y) * k + xx] = pw.filter[((std::size_t(o) * k + y) * k + xx) * cin + i];
            const int P = std::max(d.pads.bottom, d.pads.right);
            if (P < d.pads.top || P < d.pads.left || kernels::window_output(x[1], k, d.sh, 1, P, P) != values_[std::size_t(d.output)][1] ||
                kernels::window_output(x[2], k, d.sw, 1, P, P) != values_[std::size_t(d.output)][2])
                fail_op(d.index, "CONV_2D", "its padding cannot be run as a symmetric one on a shifted input");
            layer_of[std::size_t(d.index)] = int(convs_.size());
            convs_.push_back(kernels::conv2d::prepare(oihw.data(), pw.bias.empty() ? nullptr : pw.bias.data(), cout, cin, k, d.sh, P, nullptr, nullptr,
                                                      kernels::conv_algorithm::direct, ls));
        } else if (d.kind == palm_op::depthwise_conv_2d) {
            layer_of[std::size_t(d.index)] = int(depthwise_.size());
            depthwise_.push_back(kernels::depthwise_conv2d::prepare(pw.filter.data(), pw.bias.empty() ? nullptr : pw.bias.data(), x[3], d.kh, d.kw, d.sh,
                                                                    d.sw, d.dh, d.dw, d.pads, ds));
        } else if (d.kind == palm_op::prelu) {
            if (!is_map(x)) fail_op(d.index, "PRELU", "its input is not a [1, H, W, C] tensor (this detector runs PReLU on feature maps)");
            layer_of[std::size_t(d.index)] = int(prelus_.size());
            prelus_.push_back(kernels::prelu_slopes::prepare(pw.alpha.data(), x[3], ds));
        } else if (d.kind == palm_op::add && !is_map(x)) {
            fail_op(d.index, "ADD", "its inputs are not [1, H, W, C] tensors (this detector adds feature maps)");
        }
        pw = pending_weights{};
    }
    pending_.clear();
    // Steps in execution order: an op folded into a later one runs at the later one's place
    // (every input it reads is made before its own place, so before the later one's too).
    border_ = 0;
    for (const auto& d : ops_) {
        if (fused_into[std::size_t(d.index)] >= 0) continue;
        step s;
        s.op = d.index;
        s.out = d.output;
        const int a = absorbs[std::size_t(d.index)];
        const palm_op_desc& main = a >= 0 ? ops_[std::size_t(a)] : d;  // the op that does the work
        s.desc = main;
        s.in = main.inputs;
        s.layer = layer_of[std::size_t(main.index)];
        switch (main.kind) {
            case palm_op::conv_2d: {
                s.kind = step_kind::conv;
                s.relu = main.act_name == "RELU";
                if (!s.relu && !main.act.none()) s.post = main.act;
                const int P = convs_[std::size_t(s.layer)].pad();
                s.shift_dy = P - main.pads.top;
                s.shift_dx = P - main.pads.left;
                if (s.shift_dy || s.shift_dx) {
                    if (main.inputs[0] == input_ && readers[std::size_t(input_)].size() == 1) input_shift_dy_ = s.shift_dy, input_shift_dx_ = s.shift_dx;
                    else s.shift_copy = true;
                }
                border_ = std::max(border_, P);
                // A layer of less than 1M multiply-adds (the score heads of 2 and 6 channels,
                // 35-70 us on one Zen 1 core) runs on the calling thread alone: sharing it out
                // gains microseconds and, on a shared machine, risks a wait for a helper
                // descheduled mid-item. (It was 4M, which kept the 6 x 6 layers and the 12 x 12
                // and 24 x 24 heads serial; with home ranges (parallel.hpp) the 6 x 6 layers'
                // 140 us halve on 2 threads: benchmarks/NOTES.md, 2026-12-03.)
                {
                    const auto& y = values_[std::size_t(main.output)];
                    const auto& xin = values_[std::size_t(main.inputs[0])];
                    s.serial = double(y[1]) * y[2] * y[3] * xin[3] * main.kh * main.kw < 1e6;
                }
                if (a >= 0) {  // + the ADD's other input, then the ADD's activation
                    s.residual = d.inputs[0] == main.output ? d.inputs[1] : d.inputs[0];
                    s.post = d.act;
                }
                break;
            }
            case palm_op::depthwise_conv_2d: {
                s.kind = step_kind::depthwise;
                s.act = main.act;
                const auto& x = values_[std::size_t(main.inputs[0])];
                border_ = std::max(border_, depthwise_[std::size_t(s.layer)].border_needed(x[1], x[2]));
                break;
            }
            case palm_op::prelu:
                s.kind = step_kind::prelu;
                if (a >= 0) {
                    s.residual = d.inputs[0] == main.output ? d.inputs[1] : d.inputs[0];
                    s.act = d.act;
                }
                break;
            case palm_op::add:
                s.kind = step_kind::add;
                s.act = main.act;
                break;
            case palm_op::max_pool_2d:
                s.kind = step_kind::max_pool;
                s.act = main.act;  // the PAD it may be folded into only widens the channels
                break;
            case palm_op::pad: s.kind = step_kind::pad; break;
            case palm_op::resize_bilinear: s.kind = step_kind::resize; break;
            case palm_op::reshape: s.kind = step_kind::reshape; break;
            case palm_op::concatenation:
                s.kind = step_kind::concat;
                if (!main.act.none()) s.post = main.act;
                break;
        }
        steps_.push_back(std::move(s));
    }
    if (border_ > 64) throw error(path_ + ": the graph's padding needs a border of " + std::to_string(border_) + " pixels (this detector keeps at most 64)");
    last_use_.assign(nv, -1);
    for (std::size_t i = 0; i < steps_.size(); ++i) {
        for (int v : steps_[i].in) last_use_[std::size_t(v)] = int(i);
        if (steps_[i].residual >= 0) last_use_[std::size_t(steps_[i].residual)] = int(i);
    }
    last_use_[std::size_t(out_regressors_)] = last_use_[std::size_t(out_scores_)] = int(steps_.size());
}

inline void palm_network::run(const kernels::exec& ex, const float* input, float* regressors, float* logits, const palm_observer* observer) const {
    buffer_source* mem = ex.memory();
    const std::size_t nv = values_.size();
    std::vector<feature_map> maps(nv);
    std::vector<aligned_buffer> dense(nv);
    std::vector<char> made(nv, 0);
    auto new_map = [&](int v, bool zero) -> feature_map& {
        const auto& s = values_[std::size_t(v)];
        feature_map& m = maps[std::size_t(v)];
        m = feature_map(mem);
        if (zero) m.reset(s[1], s[2], s[3], border_);
        else m.reset_output(s[1], s[2], s[3], border_);
        made[std::size_t(v)] = 1;
        return m;
    };
    auto numel = [&](int v) {
        std::size_t n = 1;
        for (int d : values_[std::size_t(v)]) n *= std::size_t(d);
        return n;
    };
    auto new_dense = [&](int v) -> float* {
        dense[std::size_t(v)] = aligned_buffer(mem);
        dense[std::size_t(v)].resize_uninitialized(numel(v));
        made[std::size_t(v)] = 1;
        return dense[std::size_t(v)].data();
    };
    auto take = [&](int from, int to) -> feature_map& {  // `to` reuses `from`'s map
        maps[std::size_t(to)] = std::move(maps[std::size_t(from)]);
        made[std::size_t(to)] = 1;
        made[std::size_t(from)] = 0;
        return maps[std::size_t(to)];
    };
    auto observe = [&](int op, int v) {
        if (!observer) return;
        std::vector<float> d(numel(v));
        if (is_map(values_[std::size_t(v)])) kernels::map_to_dense(maps[std::size_t(v)], d.data());
        else std::memcpy(d.data(), dense[std::size_t(v)].data(), d.size() * sizeof(float));
        (*observer)(op, values_[std::size_t(v)], d);
    };
    // The input, shifted when the stem convolution wants it so.
    {
        feature_map& m = new_map(input_, input_shift_dy_ || input_shift_dx_);
        kernels::dense_to_map(input, m, input_shift_dy_, input_shift_dx_);
    }
    for (std::size_t si = 0; si < steps_.size(); ++si) {
        const step& s = steps_[si];
        const int x = s.in[0];
        auto last = [&](int v) { return last_use_[std::size_t(v)] == int(si); };
        switch (s.kind) {
            case step_kind::conv: {
                const kernels::conv2d& c = convs_[std::size_t(s.layer)];
                kernels::exec one = ex;
                if (s.serial) one.loop = kernels::detail::loop_runner{};
                const kernels::exec& cx = s.serial ? one : ex;
                const feature_map* in = &maps[std::size_t(x)];
                feature_map shifted(mem);
                if (s.shift_copy) {
                    shifted.reset_output(in->height, in->width, in->channels, border_);
                    kernels::shifted_copy(*in, shifted, s.shift_dy, s.shift_dx);
                    in = &shifted;
                }
                if (s.residual >= 0 && last(s.residual) && s.residual != x) {
                    feature_map& o = take(s.residual, s.out);  // out = conv(in) + out, in place
                    c.run(*in, o, s.relu, &o, cx);
                } else {
                    c.run(*in, new_map(s.out, false), s.relu, s.residual >= 0 ? &maps[std::size_t(s.residual)] : nullptr, cx);
                }
                break;
            }
            case step_kind::depthwise:
                depthwise_[std::size_t(s.layer)].run(maps[std::size_t(x)], new_map(s.out, false), s.act, ex);
                break;
            case step_kind::prelu: {
                const kernels::prelu_slopes& p = prelus_[std::size_t(s.layer)];
                if (s.residual >= 0) {
                    if (last(x) && x != s.residual) {
                        feature_map& o = take(x, s.out);
                        p.run(o, &maps[std::size_t(s.residual)], o, s.act, ex);
                    } else if (last(s.residual)) {
                        feature_map& o = take(s.residual, s.out);
                        p.run(maps[std::size_t(x)], &o, o, s.act, ex);
                    } else {
                        p.run(maps[std::size_t(x)], &maps[std::size_t(s.residual)], new_map(s.out, false), s.act, ex);
                    }
                } else if (last(x)) {
                    feature_map& o = take(x, s.out);
                    p.run(o, nullptr, o, s.act, ex);
                } else {
                    p.run(maps[std::size_t(x)], nullptr, new_map(s.out, false), s.act, ex);
                }
                break;
            }
            case step_kind::add: {
                const int y = s.in[1];
                if (last(x) && x != y) {
                    feature_map& o = take(x, s.out);
                    kernels::add_clamped(*dkernels_, o, maps[std::size_t(y)], o, s.act, ex);
                } else if (last(y) && x != y) {
                    feature_map& o = take(y, s.out);
                    kernels::add_clamped(*dkernels_, maps[std::size_t(x)], o, o, s.act, ex);
                } else {
                    kernels::add_clamped(*dkernels_, maps[std::size_t(x)], maps[std::size_t(y)], new_map(s.out, false), s.act, ex);
                }
                break;
            }
            case step_kind::max_pool: {
                const palm_op_desc& d = s.desc;
                kernels::max_pool(*dkernels_, maps[std::size_t(x)], d.kh, d.kw, d.sh, d.sw, d.pads, new_map(s.out, false), s.act, ex);
                break;
            }
            case step_kind::pad: {
                const palm_op_desc& d = s.desc;
                kernels::pad_map(maps[std::size_t(x)], d.paddings[1][0], d.paddings[2][0], d.paddings[3][0], new_map(s.out, false));
                break;
            }
            case step_kind::resize:
                kernels::resize_bilinear(*dkernels_, maps[std::size_t(x)], new_map(s.out, false), s.desc.align_corners, s.desc.half_pixel_centers, ex);
                break;
            case step_kind::reshape: {
                const bool from_map = is_map(values_[std::size_t(x)]), to_map = is_map(values_[std::size_t(s.out)]);
                if (!from_map && !to_map) {
                    float* o = new_dense(s.out);
                    std::memcpy(o, dense[std::size_t(x)].data(), numel(s.out) * sizeof(float));
                } else if (from_map && !to_map) {
                    kernels::map_to_dense(maps[std::size_t(x)], new_dense(s.out));
                } else if (!from_map) {
                    kernels::dense_to_map(dense[std::size_t(x)].data(), new_map(s.out, false));
                } else {
                    aligned_buffer tmp(numel(x), mem);
                    kernels::map_to_dense(maps[std::size_t(x)], tmp.data());
                    kernels::dense_to_map(tmp.data(), new_map(s.out, false));
                }
                break;
            }
            case step_kind::concat: {
                if (is_map(values_[std::size_t(x)])) {
                    std::vector<const feature_map*> ins;
                    for (int v : s.in) ins.push_back(&maps[std::size_t(v)]);
                    kernels::concat_maps(ins, s.desc.axis, new_map(s.out, false));
                } else {
                    std::vector<const float*> ins;
                    std::vector<std::vector<int>> shapes;
                    for (int v : s.in) {
                        ins.push_back(dense[std::size_t(v)].data());
                        shapes.push_back(values_[std::size_t(v)]);
                    }
                    kernels::concat_dense(ins, shapes, s.desc.axis, new_dense(s.out));
                }
                break;
            }
        }
        if (!s.post.none()) {
            if (is_map(values_[std::size_t(s.out)])) kernels::clamp(*dkernels_, maps[std::size_t(s.out)], maps[std::size_t(s.out)], s.post, ex);
            else {
                float* o = dense[std::size_t(s.out)].data();
                for (std::size_t i = 0, n = numel(s.out); i < n; ++i) o[i] = std::min(std::max(o[i], s.post.lo), s.post.hi);
            }
        }
        observe(s.op, s.out);
        // Free what no later step reads.
        for (int v : s.in)
            if (last(v) && made[std::size_t(v)]) {
                maps[std::size_t(v)] = feature_map();
                dense[std::size_t(v)] = aligned_buffer();
                made[std::size_t(v)] = 0;
            }
        if (s.residual >= 0 && last(s.residual) && made[std::size_t(s.residual)]) {
            maps[std::size_t(s.residual)] = feature_map();
            made[std::size_t(s.residual)] = 0;
        }
    }
    auto copy_out = [&](int v, float* dst) {
        if (is_map(values_[std::size_t(v)])) kernels::map_to_dense(maps[std::size_t(v)], dst);
        else std::memcpy(dst, dense[std::size_t(v)].data(), numel(v) * sizeof(float));
    };
    copy_out(out_regressors_, regressors);
    copy_out(out_scores_, logits);
}

}  // namespace detail
}  // namespace handgraph

// handgraph/implementation.hpp: the definitions of handgraph.hpp's API. Compiled once per
// program: included by handgraph.hpp in the one translation unit that defines
// HANDGRAPH_IMPLEMENTATION (tools/runtime/implementation.cpp for handgraph's own binaries).
// Its functions are not inline: a second translation unit defining HANDGRAPH_IMPLEMENTATION
// gives duplicate symbols at link time, which is the intended diagnostic.
// Depends on everything inference needs: pipeline.hpp (and so model.hpp, kernels/,
// graph.hpp, weights.hpp), context.hpp, kernels/kernels.hpp (the kernel tables).
#pragma once
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <utility>

#include "context.hpp"
#include "handgraph.hpp"
#include "io.hpp"
#include "json.hpp"
#include "kernels/kernels.hpp"
#include "pipeline.hpp"
#include "weights.hpp"

namespace handgraph {

struct context::impl {
    detail::context_state state;
    stage_times last;
    explicit impl(int threads) : state(threads) {}
};

context::context(int threads) {
    if (threads < 1 || threads > max_threads)
        throw error("context: thread count " + std::to_string(threads) + " is outside 1.." + std::to_string(max_threads));
    impl_ = std::make_unique<impl>(threads);
}
context::~context() = default;
context::context(context&&) noexcept = default;
context& context::operator=(context&&) noexcept = default;

static detail::context_state& live_state(const std::unique_ptr<context::impl>& p) {
    if (!p) throw error("context: used after it was moved from");
    return p->state;
}

int context::threads() const { return live_state(impl_).threads(); }
stage_times context::last_stage_times() const {
    live_state(impl_);
    return impl_->last;
}
std::size_t context::memory_bytes() const { return live_state(impl_).bytes_held(); }
void context::release_memory() {
    std::lock_guard<std::mutex> lock(live_state(impl_).call_mutex());
    impl_->state.release_cached();
}
detail::context_state& context::state() { return live_state(impl_); }

context& default_context() {
    static context ctx(1);
    return ctx;
}

model::model(std::shared_ptr<const detail::hand_model> m) : impl_(std::move(m)) {}
model::model(model&&) noexcept = default;
model& model::operator=(model&&) noexcept = default;
model::model(const model&) = default;
model& model::operator=(const model&) = default;
model::~model() = default;

static const detail::hand_model& live_model(const std::shared_ptr<const detail::hand_model>& p) {
    if (!p) throw error("model: used after it was moved from");
    return *p;
}

model model::load(const std::string& path, const load_options& options) {
    const auto& k = kernels::select_kernels(options.kernels.c_str());
    weight_file w = weight_file::read(path);
    return model(std::make_shared<const detail::hand_model>(w, k));
}

void prepare_weights(const std::string& weights, const std::string& out, const load_options& options) {
    namespace fs = std::filesystem;
    const auto& k = kernels::select_kernels(options.kernels.c_str());
    std::error_code ec;
    if (fs::exists(out, ec) && fs::equivalent(weights, out, ec))
        throw error(out + ": the prepared file would replace the converted weights it is made from; give another output path");
    weight_file w = weight_file::read(weights);
    if (w.prepared()) throw error(weights + ": already a prepared weight file; prepare the converted file (tools/convert_weights.py output)");
    detail::packed_record record;
    const detail::hand_model m(w, k, &record);

    // Header: the packed arrays first (each a multiple of 64 bytes, so each starts on a
    // 64-byte boundary of the data), then the converted file's other tensors as they were;
    // the header padded with spaces so the data starts on a 64-byte boundary of the file.
    struct entry {
        std::string name, dtype;
        std::vector<std::int64_t> shape;
        const void* data;      // packed: the model's array; copied: null
        const tensor_info* t;  // copied: the converted file's tensor
        std::size_t bytes;
    };
    std::vector<entry> entries;
    for (const auto& a : record.arrays) {
        const std::size_t bytes = a.count * (a.f64 ? 8 : 4);
        if (bytes % 64) throw error("prepare_weights: packed array \"" + a.name + "\" is not a multiple of 64 bytes");
        entries.push_back({a.name, a.f64 ? "F64" : "F32", {std::int64_t(a.count)}, a.data, nullptr, bytes});
    }
    for (const auto& t : w.file().tensors())
        if (!record.replaced.count(t.name)) entries.push_back({t.name, dtype_name(t.type), t.shape, nullptr, &t, t.end - t.begin});
    std::map<std::string, std::string> meta = w.file().metadata();
    meta["prepared_from"] = meta["format"] + " " + meta["format_version"];
    meta["format"] = weight_file::prepared_format_name;
    meta["format_version"] = std::to_string(weight_file::prepared_format_version);
    meta["prepared_kernels"] = k.name;
    meta["graph_lmax"] = detail::hand_model::format_lmax(m.graph().lmax);

    std::string header = "{\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, v] : meta) {
        header += (first ? "" : ",") + json::quote(key) + ":" + json::quote(v);
        first = false;
    }
    header += "}";
    std::size_t offset = 0;
    for (const auto& e : entries) {
        header += "," + json::quote(e.name) + ":{\"dtype\":\"" + e.dtype + "\",\"shape\":[";
        for (std::size_t i = 0; i < e.shape.size(); ++i) header += (i ? "," : "") + std::to_string(e.shape[i]);
        header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + e.bytes) + "]}";
        offset += e.bytes;
    }
    header += "}";
    header.append((64 - (8 + header.size()) % 64) % 64, ' ');

    std::string bytes;
    bytes.reserve(8 + header.size() + offset);
    for (int i = 0; i < 8; ++i) bytes.push_back(char((std::uint64_t(header.size()) >> (8 * i)) & 0xff));
    bytes += header;
    for (const auto& e : entries) {
        const std::size_t at = bytes.size();
        bytes.resize(at + e.bytes);
        if (e.data) std::memcpy(&bytes[at], e.data, e.bytes);
        else w.file().read_into(*e.t, &bytes[at]);
    }
    write_file_atomic(out, bytes, "prepared weight file");
}

model model::random(std::uint64_t seed, const std::vector<float>& template_vertices, const std::vector<std::int32_t>& template_faces,
                    const load_options& options) {
    const auto& k = kernels::select_kernels(options.kernels.c_str());
    random_weights w(seed, template_vertices, template_faces);
    return model(std::make_shared<const detail::hand_model>(w, k));
}

// One crop with ctx (its lock held for the call), into e (and the intermediates into t).
static void estimate_one(const detail::hand_model& m, detail::context_state& st, const image_view& crop, const std::optional<crop_params>& params,
                         const estimate_options& options, hand_estimate& e, hand_trace* t, stage_times& times) {
    std::lock_guard<std::mutex> lock(st.call_mutex());
    m.estimate(st.exec(options.exact), crop, params ? &*params : nullptr, e, t, &times);
}

hand_estimate model::estimate(context& ctx, const image_view& crop, const std::optional<crop_params>& params, const estimate_options& options) const {
    hand_estimate e;
    detail::context_state& st = ctx.state();  // refuses a moved-from context
    estimate_one(live_model(impl_), st, crop, params, options, e, nullptr, ctx.impl_->last);
    return e;
}

hand_estimate model::estimate(const image_view& crop, const std::optional<crop_params>& params, const estimate_options& options) const {
    return estimate(default_context(), crop, params, options);
}

std::vector<hand_estimate> model::estimate_batch(context& ctx, const std::vector<image_view>& crops, const std::vector<crop_params>& params,
                                                 const estimate_options& options) const {
    const detail::hand_model& m = live_model(impl_);
    detail::context_state& st = ctx.state();
    std::lock_guard<std::mutex> lock(st.call_mutex());
    std::vector<hand_estimate> out;
    m.estimate_batch(st, crops, params, options.exact, out);
    return out;
}

hand_trace model::trace(context& ctx, const image_view& crop, const std::optional<crop_params>& params, const estimate_options& options) const {
    hand_trace tr;
    detail::context_state& st = ctx.state();
    estimate_one(live_model(impl_), st, crop, params, options, tr.estimate, &tr, ctx.impl_->last);
    return tr;
}

hand_result model::estimate_hand(context& ctx, const image_view& image, const photo_options& options) const {
    const detail::hand_model& m = live_model(impl_);
    detail::context_state& st = ctx.state();
    std::lock_guard<std::mutex> lock(st.call_mutex());
    hand_result r;
    m.estimate_hand(st.exec(options.exact), image, options, r, &ctx.impl_->last);
    return r;
}

const std::vector<std::int32_t>& model::faces(hand_side side) const { return live_model(impl_).faces(side); }
const std::string& model::source() const { return live_model(impl_).source(); }
const char* model::kernels() const { return live_model(impl_).kernels_name(); }
std::size_t model::weight_bytes() const { return live_model(impl_).weight_bytes(); }
const detail::hand_model& model::impl() const { return live_model(impl_); }

std::vector<std::string> available_kernels() { return kernels::available_arch_names(); }

crop_params solve_root(const hand_estimate& e, const std::array<float, 4>& cam, const std::array<float, 4>& bbox, float scale_cm, root_method* method) {
    crop_params p;
    p.cam = cam;
    p.bbox = bbox;
    p.scale_cm = scale_cm;
    return detail::solve_root_params(e, p, method);
}

void to_camera_space(hand_estimate& e, const crop_params& p) { detail::fill_camera_space(e, p); }

}  // namespace handgraph

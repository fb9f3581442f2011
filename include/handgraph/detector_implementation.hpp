// handgraph/detector_implementation.hpp: the definitions of detector.hpp's API. Compiled once
// per program with handgraph.hpp's implementation (detector.hpp includes it where
// HANDGRAPH_IMPLEMENTATION is defined); not inline, like implementation.hpp.
// Depends on palm_detector.hpp (the prepared detector), context.hpp, kernels/dispatch.hpp.
#pragma once
#include <mutex>
#include <utility>

#include "context.hpp"
#include "detector.hpp"
#include "kernels/dispatch.hpp"
#include "palm_detector.hpp"

namespace handgraph {
palm_detector::palm_detector(std::shared_ptr<const detail::palm_detector_state> s) : impl_(std::move(s)) {}
palm_detector::palm_detector(palm_detector&&) noexcept = default;
palm_detector& palm_detector::operator=(palm_detector&&) noexcept = default;
palm_detector::palm_detector(const palm_detector&) = default;
palm_detector& palm_detector::operator=(const palm_detector&) = default;
palm_detector::~palm_detector() = default;

static const detail::palm_detector_state& live_detector(const std::shared_ptr<const detail::palm_detector_state>& p) {
    if (!p) throw error("palm_detector: used after it was moved from");
    return *p;
}

palm_detector palm_detector::load(const std::string& path, const load_options& options) {
    const auto& k = kernels::select_kernels(options.kernels.c_str());
    return palm_detector(std::make_shared<const detail::palm_detector_state>(path, k));
}

palm_trace palm_detector::trace(context& ctx, const image_view& image) const {
    const detail::palm_detector_state& d = live_detector(impl_);
    detail::context_state& st = ctx.state();
    std::lock_guard<std::mutex> lock(st.call_mutex());
    palm_trace t;
    d.run(st.exec(), image, t);
    return t;
}

std::vector<palm_detection> palm_detector::find_hands(context& ctx, const image_view& image, int max_hands) const {
    if (max_hands < 1) throw error("find_hands: max_hands must be at least 1, got " + std::to_string(max_hands));
    palm_trace t = trace(ctx, image);
    if (t.hands.size() > std::size_t(max_hands)) t.hands.resize(std::size_t(max_hands));
    return std::move(t.hands);
}

std::vector<palm_detection> palm_detector::find_hands(const image_view& image, int max_hands) const {
    return find_hands(default_context(), image, max_hands);
}

const std::string& palm_detector::source() const { return live_detector(impl_).net.path(); }
const std::string& palm_detector::model_name() const { return live_detector(impl_).net.model_name(); }
const char* palm_detector::kernels() const { return live_detector(impl_).net.kernels_name(); }
std::size_t palm_detector::weight_bytes() const { return live_detector(impl_).net.weight_bytes(); }
int palm_detector::num_boxes() const { return live_detector(impl_).net.num_boxes(); }
double palm_detector::multiply_adds() const { return live_detector(impl_).net.multiply_adds(); }
const detail::palm_detector_state& palm_detector::impl() const { return live_detector(impl_); }

std::vector<detected_hand> estimate_hands(const model& m, const palm_detector& detector, context& ctx, const image_view& image,
                                          const photo_options& options, int max_hands) {
    if (options.hand_box || options.crop_box)
        throw error("estimate_hands: the hands are found in the image; give no hand box or crop box (model::estimate_hand takes those)");
    std::vector<detected_hand> out;
    for (const palm_detection& d : detector.find_hands(ctx, image, max_hands)) {
        photo_options o = options;
        o.hand_box = d.hand_box;
        detected_hand h;
        h.palm = d;
        h.hand = m.estimate_hand(ctx, image, o);
        h.hand.box_from = box_source::detected;
        out.push_back(std::move(h));
    }
    return out;
}

}  // namespace handgraph

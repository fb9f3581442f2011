// handgraph/palm_detector.hpp: the prepared palm detector behind handgraph::palm_detector
// (internal): the network (palm_graph.hpp) and one pass from a picture to detections, with
// MediaPipe's pre- and post-processing (palm_postprocess.hpp): letterbox, network, decoding,
// weighted suppression, letterbox removal, hand region.
// Depends on detector.hpp (the public result types), palm_graph.hpp, palm_postprocess.hpp.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "detector.hpp"
#include "palm_graph.hpp"
#include "palm_postprocess.hpp"

namespace handgraph {
namespace detail {

// The prepared detector: the network and its settings (immutable).
class palm_detector_state {
public:
    palm_detector_state(const std::string& path, const kernels::kernel_table& k) : net(path, k) {}

    // One pass on `image` with ex: the trace (input, raw outputs, every detection after
    // suppression, image pixels).
    void run(const kernels::exec& ex, const image_view& image, palm_trace& t) const {
        const palm_settings& p = net.settings();
        letterbox_input lb = make_letterbox(image, p);
        t.input_width = p.input_width;
        t.input_height = p.input_height;
        t.letterbox_padding = lb.padding;
        t.regressors.assign(std::size_t(p.num_boxes) * std::size_t(p.num_coords), 0.0f);
        t.logits.assign(std::size_t(p.num_boxes), 0.0f);
        net.run(ex, lb.tensor.data(), t.regressors.data(), t.logits.data());
        t.input = std::move(lb.tensor);
        const std::vector<palm_candidate> raw = decode_palms(t.regressors.data(), t.logits.data(), net.anchors(), p);
        t.hands.clear();
        for (const palm_candidate& c : weighted_nms(raw, p)) t.hands.push_back(to_detection(remove_letterbox(c, t.letterbox_padding), image, p));
    }

    static palm_detection to_detection(const palm_candidate& c, const image_view& image, const palm_settings& p) {
        const double W = image.width, H = image.height;
        palm_detection d;
        d.score = float(c.score);
        d.palm_box = {float(c.box[0] * W), float(c.box[1] * H), float(c.box[2] * W), float(c.box[3] * H)};
        for (int k = 0; k < palm_keypoint_count; ++k)
            d.keypoints[std::size_t(k)] = {float(c.keypoints[std::size_t(2 * k)] * W), float(c.keypoints[std::size_t(2 * k + 1)] * H)};
        const hand_region r = palm_hand_region(c, image.width, image.height, p);
        d.region_center = {float(r.cx), float(r.cy)};
        d.region_side = float(r.side);
        d.region_rotation = float(r.rotation);
        d.hand_box = {float(r.box[0]), float(r.box[1]), float(r.box[2]), float(r.box[2])};
        d.anchor = c.anchor;
        d.merged = c.merged;
        return d;
    }

    palm_network net;
};

}  // namespace detail
}  // namespace handgraph

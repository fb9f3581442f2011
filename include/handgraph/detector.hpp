// handgraph/detector.hpp: finding hands in a picture. MediaPipe's palm detector (Apache-2.0;
// palm_detection_full or _lite, converted by tools/convert_palm.py: tools/get_palm_detector.sh
// fetches and converts both) run by handgraph's own kernels, with MediaPipe's pre- and
// post-processing; each palm gives the square hand box that model::estimate_hand crops.
//
//   #include <handgraph/handgraph.hpp>        // (or this header alone)
//   auto detector = handgraph::palm_detector::load("weights/palm_detection_full.safetensors");
//   handgraph::context ctx(2);
//   for (const handgraph::palm_detection& d : detector.find_hands(ctx, image, 2)) {
//       handgraph::photo_options o;  o.hand_box = d.hand_box;
//       handgraph::hand_result r = model.estimate_hand(ctx, image, o);   // or estimate_hands()
//   }
//
// - A palm_detector is immutable data like a model (share it between threads); a call runs
//   on the context given (its threads and scratch; one call at a time per context).
// - The detector does not say which hand it saw (MediaPipe's palm detector has no
//   handedness output): estimate_hands uses photo_options::side for every hand found.
// - Errors are handgraph::error exceptions naming the file, tensor or op at fault. A file
//   that is not a converted palm detector (the hand network's weight file, a .tflite not yet
//   converted, a damaged or truncated file, a graph with an op this detector does not run)
//   is refused when loaded.
// Declarations only (the standard library and handgraph.hpp); the definitions are
// detector_implementation.hpp, compiled with handgraph.hpp's (HANDGRAPH_IMPLEMENTATION).
#pragma once
#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "handgraph.hpp"

namespace handgraph {

constexpr int palm_keypoint_count = 7;  // the palm detector's keypoints, in its order:
// 0 wrist, 1 index finger MCP, 2 middle finger MCP, 3 ring finger MCP, 4 little finger MCP,
// 5 thumb base, 6 thumb MCP (as seen on the real-world crops: ../shared/data/mediapipe/README.md).

// One palm found, in image pixels: x from the image's left edge, y from its top edge (pixel
// i spans [i, i + 1)), i.e. MediaPipe's image-relative values times the width and height.
struct palm_detection {
    float score = 0;                   // the sigmoid score, MediaPipe's threshold is 0.5
    std::array<float, 4> palm_box{};   // the palm's box: x, y, w, h (the weighted average of the boxes merged)
    std::array<std::array<float, 2>, palm_keypoint_count> keypoints{};  // x, y in the model's order
    // MediaPipe's hand region: a square of side region_side about region_center, rotated by
    // region_rotation (radians, clockwise in the image: the wrist-to-middle-finger direction
    // turned to point up).
    std::array<float, 2> region_center{};
    float region_side = 0;
    float region_rotation = 0;
    // The axis-aligned square of the region's side about its centre: x, y, side, side. What
    // estimate_hands gives model::estimate_hand as photo_options::hand_box.
    std::array<float, 4> hand_box{};
    int anchor = -1;  // the box of the best detection merged into this one (0..2015)
    int merged = 1;   // raw detections merged by the weighted non-maximum suppression
};

// What one detector pass computed (palm_detector::trace), for checks against a reference.
struct palm_trace {
    int input_width = 0, input_height = 0;        // 192 x 192
    std::vector<float> input;                     // input_height x input_width x 3: the letterboxed RGB tensor
    std::array<double, 4> letterbox_padding{};    // left, top, right, bottom, fractions of the input
    std::vector<float> regressors;                // num_boxes x 18: the raw box regressors
    std::vector<float> logits;                    // num_boxes raw scores (before the sigmoid)
    std::vector<palm_detection> hands;            // every detection after suppression, best first
};

namespace detail {
class palm_detector_state;
}

class palm_detector {
public:
    // Reads, checks and prepares a converted palm detector (tools/convert_palm.py output).
    // options.kernels caps the instruction set as for model::load.
    static palm_detector load(const std::string& path, const load_options& options = {});

    palm_detector(palm_detector&&) noexcept;
    palm_detector& operator=(palm_detector&&) noexcept;
    palm_detector(const palm_detector&);  // cheap: the prepared detector is shared, immutable
    palm_detector& operator=(const palm_detector&);
    ~palm_detector();

    // The hands in `image` (any size and pixel format), best first, at most max_hands (>= 1;
    // MediaPipe's hand solution keeps 2 by default): palms with a score >= the model's
    // threshold (0.5), after weighted non-maximum suppression.
    std::vector<palm_detection> find_hands(context& ctx, const image_view& image, int max_hands = 2) const;
    std::vector<palm_detection> find_hands(const image_view& image, int max_hands = 2) const;  // default_context()
    // find_hands() and what the network computed on the way (all detections kept).
    palm_trace trace(context& ctx, const image_view& image) const;

    const std::string& source() const;      // the file's path
    const std::string& model_name() const;  // "palm_detection_full", "palm_detection_lite" or "unrecognised"
    const char* kernels() const;            // the instruction set ("avx512bw", ...)
    std::size_t weight_bytes() const;       // prepared weights
    int num_boxes() const;                  // 2016
    double multiply_adds() const;           // of one pass of the network (~0.34e9 for the full model)

    const detail::palm_detector_state& impl() const;  // internal (tests)

private:
    explicit palm_detector(std::shared_ptr<const detail::palm_detector_state> s);
    std::shared_ptr<const detail::palm_detector_state> impl_;
};

// A hand found and estimated.
struct detected_hand {
    palm_detection palm;
    hand_result hand;  // hand.box_from == box_source::detected, hand.box from palm.hand_box
};

// Finds the hands in `image` and estimates each with `model`: photo_options::hand_box is
// the detection's hand_box (with options.margin, 1 by default), box_source detected; every
// other option (camera, scale, side, exact) applies to each hand. options.hand_box and
// options.crop_box must be empty. No hand found: an empty list.
std::vector<detected_hand> estimate_hands(const model& m, const palm_detector& detector, context& ctx, const image_view& image,
                                          const photo_options& options = {}, int max_hands = 2);

}  // namespace handgraph

#if defined(HANDGRAPH_IMPLEMENTATION)
#include "detector_implementation.hpp"
#endif

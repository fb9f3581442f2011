// handgraph/palm_postprocess.hpp: MediaPipe's pre- and post-processing around its palm
// detector (internal; handgraph/detector.hpp is the public face): the letterboxed input,
// the SSD anchors, box and keypoint decoding, sigmoid scores with clipping, weighted
// non-maximum suppression, and the hand region from the palm, turned into the square
// axis-aligned box that model::estimate_hand crops.
//
// Every number used here comes from the converted file's `postprocess` settings
// (tools/convert_palm.py writes them; weights/PALM_FORMAT.md lists them with their source:
// the hand solution's palm-detection graph, decoded in ../shared/data/mediapipe/README.md).
// The formulas are those of MediaPipe's calculators, named at each function (read from its
// public source; none of it copied), as tests/reference/palm_reference.py implements them;
// for MediaPipe's palm detectors the settings are:
//  - input (ImageToTensorCalculator): 192 x 192, RGB, value * (1 - 0) / 255 + 0 (range
//    [0, 1]), aspect kept, zero border; resampled as cv2.resize(INTER_LINEAR) of the 8-bit
//    image to round(w * s) x round(h * s), s = 192 / max(w, h) (Python's round: half to
//    even), pasted at ((192 - w') / 2, (192 - h') / 2) (integer division). That is
//    palm_reference.py's default letterbox (MediaPipe's GPU sampling, pixel centres on pixel
//    centres), which reproduces the mediapipe README's counts on the 583 real-world crops.
//  - anchors (SsdAnchorsCalculator): 4 layers, strides 8, 16, 16, 16, scales 0.1484375 ..
//    0.75, offsets 0.5, aspect ratio 1, interpolated scale aspect ratio 1, fixed anchor size
//    (w = h = 1): 2016 anchors (24 x 24 x 2, then 12 x 12 x 6). The file's `anchors` tensor
//    must equal, in float32, what generate_anchors makes of the settings.
//  - decoding (TensorsToDetectionsCalculator): 18 values per box, box at offset 0 as x, y,
//    w, h (reverse_output_order), keypoints at offset 4, 7 of them (x, y); x / 192 * anchor w
//    + anchor x (y alike), w / 192 * anchor w (no exponential); score sigmoid(clamp(logit,
//    -100, 100)), kept when >= 0.5 and the box's width and height are >= 0 (not NaN).
//  - non-maximum suppression (NonMaxSuppressionCalculator): WEIGHTED, intersection over
//    union, threshold 0.3.
//  - letterbox removal (DetectionLetterboxRemovalCalculator): (x - left) / (1 - left -
//    right), w / (1 - left - right); y alike.
//  - hand region (DetectionsToRectsCalculator, RectTransformationCalculator): rotation
//    90 deg - atan2(-(y2 - y0), x2 - x0) from keypoint 0 (wrist) to 2 (middle finger MCP) in
//    pixels, normalised to [-pi, pi); centre shifted by shift_y -0.5 of the box's height
//    along the rotated y axis (towards the fingers), shift_x 0; square on the long side;
//    scaled 2.6 x 2.6. The hand network's crop is axis-aligned: the square of the same side
//    about the same centre (palm_reference.py's `box`; the rotation is dropped). On the
//    real-world crops it holds >= 20 of the 21 joints on 99.5% (full) / 98.8% (lite) of the
//    detected crops (PALM_FORMAT.md, "Validation").
// Arithmetic in double, like the reference; the network's outputs are float32.
// Depends on handgraph.hpp (image_view), crop.hpp (the cv2-exact resize), json.hpp, error.hpp.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "crop.hpp"
#include "error.hpp"
#include "handgraph.hpp"
#include "json.hpp"

namespace handgraph {
namespace detail {

constexpr double palm_pi = 3.14159265358979323846;

// The `postprocess` settings of a converted palm detector (PALM_FORMAT.md), checked.
struct palm_settings {
    // input
    int input_width = 0, input_height = 0;
    float range_lo = 0, range_hi = 1;
    // anchors
    int num_layers = 0;
    double min_scale = 0, max_scale = 0;
    int anchor_input_w = 0, anchor_input_h = 0;
    double offset_x = 0, offset_y = 0;
    std::vector<int> strides;
    std::vector<double> aspect_ratios;
    double interpolated_scale_aspect_ratio = 0;
    bool reduce_boxes_in_lowest_layer = false, fixed_anchor_size = false;
    // decode
    int num_boxes = 0, num_coords = 0, box_coord_offset = 0, keypoint_coord_offset = 0, num_keypoints = 0, values_per_keypoint = 0;
    double x_scale = 0, y_scale = 0, w_scale = 0, h_scale = 0;
    bool exponential_box_size = false, sigmoid_score = true;
    double score_clipping = 0, min_score = 0;
    // nms
    double suppression_threshold = 0;
    // hand region
    int rotation_start = 0, rotation_end = 0;
    double target_angle_deg = 0, region_scale_x = 0, region_scale_y = 0, region_shift_x = 0, region_shift_y = 0;
    bool square_long = false;
};

// Reads and checks the `postprocess` JSON; `where` names the file in messages. Refuses what
// this code does not implement (another box format, NMS algorithm or overlap type, ...).
inline palm_settings parse_palm_settings(const std::string& text, const std::string& where) {
    const std::string what = where + ": metadata \"postprocess\"";
    const json::value root = json::parse(text, what);
    if (!root.is_object()) throw error(what + " is not a JSON object");
    auto section = [&](const char* name) -> const json::value& {
        const json::value* v = root.find(name);
        if (!v || !v->is_object()) throw error(what + ": section \"" + name + "\" is missing or not an object");
        return *v;
    };
    auto field = [&](const json::value& s, const char* sec, const char* key) -> const json::value& {
        const json::value* v = s.find(key);
        if (!v) throw error(what + ": \"" + sec + "." + key + "\" is missing");
        return *v;
    };
    auto num = [&](const json::value& s, const char* sec, const char* key, double lo, double hi) {
        const json::value& v = field(s, sec, key);
        if (!v.is_number() || !std::isfinite(v.num) || v.num < lo || v.num > hi)
            throw error(what + ": \"" + sec + "." + key + "\" is not a number in [" + json::number(lo) + ", " + json::number(hi) + "]");
        return v.num;
    };
    auto integer = [&](const json::value& s, const char* sec, const char* key, int lo, int hi) {
        const json::value& v = field(s, sec, key);
        if (!v.is_number() || !v.is_integer || v.integer < lo || v.integer > hi)
            throw error(what + ": \"" + sec + "." + key + "\" is not an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
        return int(v.integer);
    };
    auto boolean = [&](const json::value& s, const char* sec, const char* key) {
        const json::value& v = field(s, sec, key);
        if (v.type != json::value::kind::boolean) throw error(what + ": \"" + sec + "." + key + "\" is not true or false");
        return v.b;
    };
    auto text_is = [&](const json::value& s, const char* sec, const char* key, const char* want, const char* why) {
        const json::value& v = field(s, sec, key);
        if (!v.is_string() || v.str != want)
            throw error(what + ": \"" + sec + "." + key + "\" is " + (v.is_string() ? "\"" + v.str + "\"" : std::string("not a string")) +
                        "; this detector implements \"" + want + "\" only (" + why + ")");
    };
    palm_settings p;
    const json::value& in = section("input");
    p.input_width = integer(in, "input", "width", 1, 4096);
    p.input_height = integer(in, "input", "height", 1, 4096);
    text_is(in, "input", "color", "RGB", "MediaPipe's palm detectors take RGB");
    const json::value& range = field(in, "input", "range");
    if (!range.is_array() || range.items.size() != 2 || !range.items[0].is_number() || !range.items[1].is_number() ||
        !std::isfinite(range.items[0].num) || !std::isfinite(range.items[1].num) || !(range.items[0].num < range.items[1].num) ||
        std::fabs(range.items[0].num) > 1e6 || std::fabs(range.items[1].num) > 1e6)
        throw error(what + ": \"input.range\" is not [lo, hi] with lo < hi");
    p.range_lo = float(range.items[0].num), p.range_hi = float(range.items[1].num);
    if (!boolean(in, "input", "keep_aspect_ratio")) throw error(what + ": \"input.keep_aspect_ratio\" is false; this detector letterboxes (keeps the aspect) only");
    text_is(in, "input", "border", "zero", "a zero border");
    text_is(in, "input", "resample", "bilinear_pixel_centres", "cv2.resize's bilinear sampling");

    const json::value& an = section("anchors");
    p.num_layers = integer(an, "anchors", "num_layers", 1, 16);
    p.min_scale = num(an, "anchors", "min_scale", 1e-6, 100);
    p.max_scale = num(an, "anchors", "max_scale", 1e-6, 100);
    p.anchor_input_h = integer(an, "anchors", "input_size_height", 1, 4096);
    p.anchor_input_w = integer(an, "anchors", "input_size_width", 1, 4096);
    p.offset_x = num(an, "anchors", "anchor_offset_x", 0, 1);
    p.offset_y = num(an, "anchors", "anchor_offset_y", 0, 1);
    const json::value& st = field(an, "anchors", "strides");
    const json::value& ar = field(an, "anchors", "aspect_ratios");
    if (!st.is_array() || int(st.items.size()) != p.num_layers) throw error(what + ": \"anchors.strides\" does not hold num_layers strides");
    for (const auto& s : st.items) {
        if (!s.is_number() || !s.is_integer || s.integer < 1 || s.integer > 4096) throw error(what + ": \"anchors.strides\" holds a stride outside 1..4096");
        p.strides.push_back(int(s.integer));
    }
    if (!ar.is_array() || ar.items.empty() || ar.items.size() > 16) throw error(what + ": \"anchors.aspect_ratios\" is not a list of 1 to 16 ratios");
    for (const auto& a : ar.items) {
        if (!a.is_number() || !(a.num > 0) || a.num > 100) throw error(what + ": \"anchors.aspect_ratios\" holds a ratio that is not in (0, 100]");
        p.aspect_ratios.push_back(a.num);
    }
    p.interpolated_scale_aspect_ratio = num(an, "anchors", "interpolated_scale_aspect_ratio", -100, 100);
    p.reduce_boxes_in_lowest_layer = boolean(an, "anchors", "reduce_boxes_in_lowest_layer");
    p.fixed_anchor_size = boolean(an, "anchors", "fixed_anchor_size");

    const json::value& de = section("decode");
    p.num_boxes = integer(de, "decode", "num_boxes", 1, 1 << 20);
    p.num_coords = integer(de, "decode", "num_coords", 4, 1024);
    p.box_coord_offset = integer(de, "decode", "box_coord_offset", 0, 1024);
    p.keypoint_coord_offset = integer(de, "decode", "keypoint_coord_offset", 0, 1024);
    p.num_keypoints = integer(de, "decode", "num_keypoints", 0, 256);
    p.values_per_keypoint = integer(de, "decode", "num_values_per_keypoint", 2, 2);
    if (p.num_keypoints != 7) throw error(what + ": \"decode.num_keypoints\" is " + std::to_string(p.num_keypoints) + "; a palm detector gives 7");
    if (p.box_coord_offset + 4 > p.num_coords || p.keypoint_coord_offset + 2 * p.num_keypoints > p.num_coords)
        throw error(what + ": the box or keypoint offsets run past \"decode.num_coords\"");
    text_is(de, "decode", "box_format", "xywh", "centre x, y, width, height");
    p.x_scale = num(de, "decode", "x_scale", 1e-6, 1e9);
    p.y_scale = num(de, "decode", "y_scale", 1e-6, 1e9);
    p.w_scale = num(de, "decode", "w_scale", 1e-6, 1e9);
    p.h_scale = num(de, "decode", "h_scale", 1e-6, 1e9);
    p.exponential_box_size = boolean(de, "decode", "apply_exponential_on_box_size");
    p.sigmoid_score = boolean(de, "decode", "sigmoid_score");
    p.score_clipping = num(de, "decode", "score_clipping_thresh", 0, 1e9);
    p.min_score = num(de, "decode", "min_score_thresh", -1e9, 1e9);

    const json::value& nms = section("nms");
    text_is(nms, "nms", "algorithm", "WEIGHTED", "MediaPipe's weighted non-maximum suppression");
    text_is(nms, "nms", "overlap_type", "INTERSECTION_OVER_UNION", "intersection over union");
    p.suppression_threshold = num(nms, "nms", "min_suppression_threshold", 0, 1);

    const json::value& hr = section("hand_region");
    p.rotation_start = integer(hr, "hand_region", "rotation_start_keypoint", 0, p.num_keypoints - 1);
    p.rotation_end = integer(hr, "hand_region", "rotation_end_keypoint", 0, p.num_keypoints - 1);
    p.target_angle_deg = num(hr, "hand_region", "target_angle_degrees", -360, 360);
    p.region_scale_x = num(hr, "hand_region", "scale_x", 1e-3, 100);
    p.region_scale_y = num(hr, "hand_region", "scale_y", 1e-3, 100);
    p.region_shift_x = num(hr, "hand_region", "shift_x", -100, 100);
    p.region_shift_y = num(hr, "hand_region", "shift_y", -100, 100);
    p.square_long = boolean(hr, "hand_region", "square_long");
    if (!p.square_long) throw error(what + ": \"hand_region.square_long\" is false; the hand network's crop is square on the long side");
    return p;
}

// SsdAnchorsCalculator: (x_center, y_center, w, h) in [0, 1] of the input, in the order the
// model's boxes come: per group of consecutive layers with the same stride, the grid rows,
// columns, then the anchors of each cell (per layer one per aspect ratio, and one at the
// interpolated scale sqrt(scale_i * scale_i+1), 1 after the last layer; the lowest layer's
// three fixed ones with reduce_boxes_in_lowest_layer). Layer i's scale is
// min + (max - min) * i / (num_layers - 1) ((min + max) / 2 for one layer).
inline std::vector<std::array<double, 4>> generate_anchors(const palm_settings& p) {
    const int n = p.num_layers;
    auto scale = [&](int i) { return n == 1 ? (p.min_scale + p.max_scale) * 0.5 : p.min_scale + (p.max_scale - p.min_scale) * i / (n - 1.0); };
    std::vector<std::array<double, 4>> out;
    int layer = 0;
    while (layer < n) {
        std::vector<std::array<double, 2>> sizes;  // (scale, aspect ratio)
        int last = layer;
        while (last < n && p.strides[std::size_t(last)] == p.strides[std::size_t(layer)]) {
            const double s = scale(last);
            if (last == 0 && p.reduce_boxes_in_lowest_layer) {
                sizes.push_back({0.1, 1.0});
                sizes.push_back({s, 2.0});
                sizes.push_back({s, 0.5});
            } else {
                for (double ar : p.aspect_ratios) sizes.push_back({s, ar});
                if (p.interpolated_scale_aspect_ratio > 0) {
                    const double next = last == n - 1 ? 1.0 : scale(last + 1);
                    sizes.push_back({std::sqrt(s * next), p.interpolated_scale_aspect_ratio});
                }
            }
            ++last;
        }
        const int stride = p.strides[std::size_t(layer)];
        const int fh = int(std::ceil(double(p.anchor_input_h) / stride)), fw = int(std::ceil(double(p.anchor_input_w) / stride));
        for (int y = 0; y < fh; ++y)
            for (int x = 0; x < fw; ++x)
                for (const auto& sz : sizes) {
                    const double w = p.fixed_anchor_size ? 1.0 : sz[0] * std::sqrt(sz[1]);
                    const double h = p.fixed_anchor_size ? 1.0 : sz[0] / std::sqrt(sz[1]);
                    out.push_back({(x + p.offset_x) / fw, (y + p.offset_y) / fh, w, h});
                }
        layer = last;
    }
    return out;
}

// The letterboxed detector input: input_height x input_width x 3 floats (rows, columns, R,
// G, B), value * (hi - lo) / 255 + lo in float32 as MediaPipe's range mapping (and the
// reference: float32(1 / 255) * value), zeros around the image; `padding` is left, top,
// right, bottom as fractions of the input (for DetectionLetterboxRemovalCalculator).
struct letterbox_input {
    std::vector<float> tensor;
    std::array<double, 4> padding{};
    int width = 0, height = 0;  // of the resized image inside the input
};

inline letterbox_input make_letterbox(const image_view& image, const palm_settings& p) {
    image.check("image");
    letterbox_input out;
    const int W = p.input_width, H = p.input_height;
    // The scale that fits the long side (for a square input: 192 / max(w, h)); the sizes
    // rounded half to even (Python's round, as the reference), at least 1 pixel.
    const double s = std::min(double(W) / image.width, double(H) / image.height);
    const int nw = std::max(1, std::min(W, int(std::nearbyint(image.width * s)))), nh = std::max(1, std::min(H, int(std::nearbyint(image.height * s))));
    const int left = (W - nw) / 2, top = (H - nh) / 2;
    std::vector<std::uint8_t> bgr(std::size_t(nw) * nh * 3);
    crop_resize_bgr(image, 0, 0, image.width, image.height, nw, nh, bgr.data());
    const float scale = float((double(p.range_hi) - double(p.range_lo)) / 255.0), lo = p.range_lo;
    out.tensor.assign(std::size_t(W) * H * 3, 0.0f * scale + lo);  // the zero border, mapped like a pixel of value 0
    for (int y = 0; y < nh; ++y)
        for (int x = 0; x < nw; ++x) {
            const std::uint8_t* src = bgr.data() + (std::size_t(y) * nw + x) * 3;
            float* dst = out.tensor.data() + (std::size_t(y + top) * W + (x + left)) * 3;
            dst[0] = float(src[2]) * scale + lo;  // R
            dst[1] = float(src[1]) * scale + lo;  // G
            dst[2] = float(src[0]) * scale + lo;  // B
        }
    out.padding = {double(left) / W, double(top) / H, double(W - nw - left) / W, double(H - nh - top) / H};
    out.width = nw;
    out.height = nh;
    return out;
}

// One detection, relative to the detector's input (before letterbox removal) or to the
// image (after): the box (xmin, ymin, w, h) and the keypoints (x, y).
struct palm_candidate {
    int anchor = -1;
    double score = 0;
    std::array<double, 4> box{};
    std::vector<double> keypoints;  // 2 * num_keypoints
    int merged = 1;                 // detections merged into it by the weighted NMS
};

// Sigmoid with clipping (TensorsToDetectionsCalculator): clamp to [-c, c], 1 / (1 + e^-x).
inline double palm_score(double logit, const palm_settings& p) {
    if (!p.sigmoid_score) return logit;
    double x = logit;
    if (p.score_clipping > 0) x = x < -p.score_clipping ? -p.score_clipping : x > p.score_clipping ? p.score_clipping : x;
    return 1.0 / (1.0 + std::exp(-x));
}

// TensorsToDetectionsCalculator (DecodeBoxes, ConvertToDetections): the boxes whose score
// is at least min_score and whose width and height are >= 0, in anchor order.
inline std::vector<palm_candidate> decode_palms(const float* regressors, const float* logits, const std::vector<std::array<float, 4>>& anchors,
                                                const palm_settings& p) {
    std::vector<palm_candidate> out;
    for (int i = 0; i < p.num_boxes; ++i) {
        const double score = palm_score(double(logits[i]), p);
        if (!(score >= p.min_score)) continue;
        const float* r = regressors + std::size_t(i) * std::size_t(p.num_coords);
        const auto& a = anchors[std::size_t(i)];
        const double ax = a[0], ay = a[1], aw = a[2], ah = a[3];
        const int o = p.box_coord_offset;
        const double xc = r[o] / p.x_scale * aw + ax, yc = r[o + 1] / p.y_scale * ah + ay;
        const double w = p.exponential_box_size ? std::exp(r[o + 2] / p.w_scale) * aw : r[o + 2] / p.w_scale * aw;
        const double h = p.exponential_box_size ? std::exp(r[o + 3] / p.h_scale) * ah : r[o + 3] / p.h_scale * ah;
        if (!(w >= 0 && h >= 0)) continue;  // negative or NaN sizes are dropped, as MediaPipe does
        palm_candidate c;
        c.anchor = i;
        c.score = score;
        c.box = {xc - w / 2, yc - h / 2, w, h};
        c.keypoints.resize(std::size_t(2 * p.num_keypoints));
        for (int k = 0; k < p.num_keypoints; ++k) {
            const float* kp = r + p.keypoint_coord_offset + 2 * k;
            c.keypoints[std::size_t(2 * k)] = kp[0] / p.x_scale * aw + ax;
            c.keypoints[std::size_t(2 * k + 1)] = kp[1] / p.y_scale * ah + ay;
        }
        out.push_back(std::move(c));
    }
    return out;
}

// OverlapSimilarity, INTERSECTION_OVER_UNION, of two (xmin, ymin, w, h) boxes: 0 when they
// do not touch (Rectangle::Intersects) or the union has no area.
inline double palm_iou(const std::array<double, 4>& a, const std::array<double, 4>& b) {
    const double ax1 = a[0], ay1 = a[1], ax2 = a[0] + a[2], ay2 = a[1] + a[3];
    const double bx1 = b[0], by1 = b[1], bx2 = b[0] + b[2], by2 = b[1] + b[3];
    if (bx1 > ax2 || bx2 < ax1 || by1 > ay2 || by2 < ay1) return 0.0;
    const double iw = std::min(ax2, bx2) - std::max(ax1, bx1), ih = std::min(ay2, by2) - std::max(ay1, by1);
    const double inter = std::max(iw, 0.0) * std::max(ih, 0.0);
    const double norm = a[2] * a[3] + b[2] * b[3] - inter;
    return norm > 0 ? inter / norm : 0.0;
}

// NonMaxSuppressionCalculator, WEIGHTED: by decreasing score (ties: the lower anchor first;
// MediaPipe's sort leaves them unspecified), the best remaining detection and every
// remaining one whose IoU with it exceeds the threshold (itself included) become one: box
// corners and keypoints averaged with the scores as weights, the best one's score. Stops
// when a round removes nothing. All detections are kept (the caller takes the first N).
inline std::vector<palm_candidate> weighted_nms(std::vector<palm_candidate> dets, const palm_settings& p) {
    std::stable_sort(dets.begin(), dets.end(), [](const palm_candidate& a, const palm_candidate& b) {
        return a.score > b.score || (a.score == b.score && a.anchor < b.anchor);
    });
    std::vector<palm_candidate> out, rest;
    while (!dets.empty()) {
        const palm_candidate& best = dets.front();
        std::vector<const palm_candidate*> cand;
        rest.clear();
        for (const palm_candidate& d : dets) {
            if (palm_iou(d.box, best.box) > p.suppression_threshold) cand.push_back(&d);
            else rest.push_back(d);
        }
        palm_candidate merged = best;
        merged.merged = int(cand.size());
        if (!cand.empty()) {
            double total = 0, c[4] = {0, 0, 0, 0};
            std::vector<double> kp(best.keypoints.size(), 0.0);
            for (const palm_candidate* d : cand) {
                total += d->score;
                c[0] += d->box[0] * d->score;
                c[1] += d->box[1] * d->score;
                c[2] += (d->box[0] + d->box[2]) * d->score;
                c[3] += (d->box[1] + d->box[3]) * d->score;
                for (std::size_t k = 0; k < kp.size(); ++k) kp[k] += d->keypoints[k] * d->score;
            }
            merged.box = {c[0] / total, c[1] / total, (c[2] - c[0]) / total, (c[3] - c[1]) / total};
            for (std::size_t k = 0; k < kp.size(); ++k) merged.keypoints[k] = kp[k] / total;
        }
        out.push_back(std::move(merged));
        if (rest.size() == dets.size()) break;
        dets.swap(rest);
    }
    return out;
}

// DetectionLetterboxRemovalCalculator: input-relative -> image-relative coordinates.
inline palm_candidate remove_letterbox(palm_candidate d, const std::array<double, 4>& padding) {
    const double left = padding[0], top = padding[1], sx = 1.0 - padding[0] - padding[2], sy = 1.0 - padding[1] - padding[3];
    d.box = {(d.box[0] - left) / sx, (d.box[1] - top) / sy, d.box[2] / sx, d.box[3] / sy};
    for (std::size_t k = 0; k + 1 < d.keypoints.size(); k += 2) {
        d.keypoints[k] = (d.keypoints[k] - left) / sx;
        d.keypoints[k + 1] = (d.keypoints[k + 1] - top) / sy;
    }
    return d;
}

// The hand region in image pixels: centre, side (a square), rotation (radians), and the
// axis-aligned square of the same side about the same centre (x, y, side).
struct hand_region {
    double cx = 0, cy = 0, side = 0, rotation = 0;
    std::array<double, 3> box{};
};

inline double normalize_radians(double a) { return a - 2 * palm_pi * std::floor((a + palm_pi) / (2 * palm_pi)); }

// DetectionsToRectsCalculator (rect = the box's centre and size, rotation from the two
// keypoints in pixels) then RectTransformationCalculator (shift along the rotated axes,
// square on the long side in pixels, scale), for an image-relative detection.
inline hand_region palm_hand_region(const palm_candidate& d, int width, int height, const palm_settings& p) {
    const double W = width, H = height;
    double xc = d.box[0] + d.box[2] / 2, yc = d.box[1] + d.box[3] / 2, w = d.box[2], h = d.box[3];
    const double x0 = d.keypoints[std::size_t(2 * p.rotation_start)] * W, y0 = d.keypoints[std::size_t(2 * p.rotation_start + 1)] * H;
    const double x1 = d.keypoints[std::size_t(2 * p.rotation_end)] * W, y1 = d.keypoints[std::size_t(2 * p.rotation_end + 1)] * H;
    const double r = normalize_radians(p.target_angle_deg * palm_pi / 180.0 - std::atan2(-(y1 - y0), x1 - x0));
    if (r == 0.0) {
        xc += w * p.region_shift_x;
        yc += h * p.region_shift_y;
    } else {
        xc += (W * w * p.region_shift_x * std::cos(r) - H * h * p.region_shift_y * std::sin(r)) / W;
        yc += (W * w * p.region_shift_x * std::sin(r) + H * h * p.region_shift_y * std::cos(r)) / H;
    }
    const double long_side = std::max(w * W, h * H);  // square_long
    w = long_side / W * p.region_scale_x;
    h = long_side / H * p.region_scale_y;
    hand_region g;
    g.cx = xc * W;
    g.cy = yc * H;
    g.side = w * W;  // == h * H when scale_x == scale_y (the models': 2.6 and 2.6), as the reference takes it
    g.rotation = r;
    g.box = {g.cx - g.side / 2, g.cy - g.side / 2, g.side};
    return g;
}

}  // namespace detail
}  // namespace handgraph

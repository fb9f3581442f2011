// tracking.hpp: hand_track's tracking and smoothing, without any input or output (so the
// tests can drive it alone): boxes and their overlap, the box of the next frame from this
// frame's 2D joints, the One Euro filter (Casiez, Roussel, Vogel, CHI 2012), and the tracker
// that decides when the palm detector runs and which hand is which.
// Not part of the installed library. Depends on handgraph/detector.hpp and the standard library.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "handgraph/detector.hpp"

namespace tracking {

using box4 = std::array<float, 4>;  // x, y, w, h, image pixels
using joints2 = std::array<std::array<float, 2>, handgraph::num_joints>;

inline double area(const box4& b) { return double(std::max(0.0f, b[2])) * double(std::max(0.0f, b[3])); }

// Intersection over union of two boxes (0 when either has no area).
inline double iou(const box4& a, const box4& b) {
    const double x0 = std::max(double(a[0]), double(b[0])), y0 = std::max(double(a[1]), double(b[1]));
    const double x1 = std::min(double(a[0]) + a[2], double(b[0]) + b[2]), y1 = std::min(double(a[1]) + a[3], double(b[1]) + b[3]);
    const double inter = std::max(0.0, x1 - x0) * std::max(0.0, y1 - y0);
    const double uni = area(a) + area(b) - inter;
    return uni > 0 ? inter / uni : 0.0;
}

// The fraction of a box's area inside a width x height image.
inline double fraction_inside(const box4& b, int width, int height) {
    const double a = area(b);
    if (!(a > 0)) return 0;
    const double w = std::min(double(b[0]) + b[2], double(width)) - std::max(double(b[0]), 0.0);
    const double h = std::min(double(b[1]) + b[3], double(height)) - std::max(double(b[1]), 0.0);
    return std::max(0.0, w) * std::max(0.0, h) / a;
}

// MediaPipe's step from landmarks to the next frame's region, for the 21 joints: the square
// about the centre of the joints' bounding box, of side `enlarge` times its longer side.
// The release's real-world crops are 1.27-1.45 times (median 1.32) their ground-truth
// joints' box (README, "Video"), hence the default 1.3.
inline box4 box_from_joints(const joints2& uv, float enlarge) {
    float u0 = uv[0][0], u1 = uv[0][0], v0 = uv[0][1], v1 = uv[0][1];
    for (const auto& p : uv) u0 = std::min(u0, p[0]), u1 = std::max(u1, p[0]), v0 = std::min(v0, p[1]), v1 = std::max(v1, p[1]);
    const float side = std::max(1.0f, enlarge * std::max(u1 - u0, v1 - v0));
    const float cx = (u0 + u1) / 2, cy = (v0 + v1) / 2;
    return {cx - side / 2, cy - side / 2, side, side};
}

// ---- The One Euro filter (Casiez et al. 2012), written from the paper's definition.
// For each sample x_i at time t_i (seconds), Te = t_i - t_{i-1}:
//   alpha(fc) = 1 / (1 + tau / Te),  tau = 1 / (2 pi fc)
//   dx_i     = (x_i - xhat_{i-1}) / Te
//   dxhat_i  = alpha(d_cutoff) dx_i + (1 - alpha(d_cutoff)) dxhat_{i-1}
//   fc       = min_cutoff + beta |dxhat_i|
//   xhat_i   = alpha(fc) x_i + (1 - alpha(fc)) xhat_{i-1}
// The first sample passes unchanged (xhat_0 = x_0, dxhat_0 = 0).
struct one_euro_params {
    double min_cutoff = 1.0;  // Hz: the cut-off at rest (lower: less jitter, more lag)
    double beta = 0.05;       // per unit of speed (value units / s): how fast the cut-off rises with speed (higher: less lag)
    double d_cutoff = 1.0;    // Hz: the cut-off of the speed estimate
};

inline double one_euro_alpha(double cutoff, double te) {
    const double tau = 1.0 / (2.0 * 3.14159265358979323846 * cutoff);
    return 1.0 / (1.0 + tau / te);
}

// Filters n values together (each its own filter), in place.
class one_euro {
public:
    explicit one_euro(one_euro_params p = {}) : p_(p) {}
    void filter(float* x, std::size_t n, double t) {
        if (xhat_.size() != n) {  // first sample (or a new size): passes unchanged
            xhat_.assign(x, x + n);
            dxhat_.assign(n, 0.0);
            t_ = t;
            return;
        }
        const double te = t - t_;
        if (!(te > 0)) {  // the same time again: the last output
            for (std::size_t i = 0; i < n; ++i) x[i] = float(xhat_[i]);
            return;
        }
        t_ = t;
        const double ad = one_euro_alpha(p_.d_cutoff, te);
        for (std::size_t i = 0; i < n; ++i) {
            const double dx = (double(x[i]) - xhat_[i]) / te;
            dxhat_[i] = ad * dx + (1 - ad) * dxhat_[i];
            const double a = one_euro_alpha(p_.min_cutoff + p_.beta * std::abs(dxhat_[i]), te);
            xhat_[i] = a * double(x[i]) + (1 - a) * xhat_[i];
            x[i] = float(xhat_[i]);
        }
    }

private:
    one_euro_params p_;
    std::vector<double> xhat_, dxhat_;
    double t_ = 0;
};

// A hand's three smoothed outputs: the 2D joints (image pixels), the 3D joints and the mesh
// (cm, camera space). The crop-pixel joints (uv, whole pixels) stay as the network gave them.
struct hand_smoother {
    one_euro uv, pose, mesh;
    explicit hand_smoother(one_euro_params p = {}) : uv(p), pose(p), mesh(p) {}
    void apply(handgraph::hand_result& r, double t) {
        uv.filter(r.uv_image[0].data(), r.uv_image.size() * 2, t);
        pose.filter(r.estimate.pose_cm[0].data(), r.estimate.pose_cm.size() * 3, t);
        mesh.filter(r.estimate.mesh_cm[0].data(), r.estimate.mesh_cm.size() * 3, t);
    }
};

// ---- The tracker.
struct tracker_options {
    int max_hands = 2;
    int detect_every = 10;        // the detector runs at least every N frames (0: never, boxes from the joints only)
    double agree_iou = 0.6;       // the joints' box agrees with the box used at this IoU or more (a box 1.3 times the last one, as joints spread over the whole crop give, has 0.59)
    double match_iou = 0.3;       // a detection continues a hand when it overlaps its box at least this much
    double min_inside = 0.25;     // a box with less of its area in the frame: the hand has left
    float enlarge = 1.3f;         // box_from_joints
    int max_misses = 1;           // detector runs in a row without a detection that drop a hand (whose joints agreed)
    int id_memory = 15;           // frames a lost hand's id is kept: a new detection on its last box (IoU >= match_iou) takes it again
};

struct track {
    int id = 0;
    box4 box{};                                  // the box this frame's crop is made from
    std::string source = "given";                // given, detected or tracked (from the last frame's joints)
    std::optional<handgraph::palm_detection> palm;  // the detection the box came from this frame
    bool agreed = true;                          // the last joints' box agreed with the box used
    int misses = 0;
    int first_frame = 0;
};

class tracker {
public:
    explicit tracker(tracker_options o) : o_(o) {}

    // Hands given on the first frame (--hand-box).
    void add_given(const box4& b, int frame) {
        track t;
        t.id = next_id_++;
        t.box = b;
        t.source = "given";
        t.first_frame = frame;
        tracks_.push_back(t);
        last_detect_ = frame;
    }

    // Whether the detector runs on this frame: never with detect_every 0; else with no hand
    // tracked, when a hand's joints disagreed with its box, or detect_every frames after the
    // last run. A frame of another size than the last drops every hand first.
    bool wants_detection(int frame, int width, int height) {
        if (width != width_ || height != height_) {
            if (width_ != 0) tracks_.clear(), lost_.clear();
            width_ = width, height_ = height;
        }
        for (track& t : tracks_) t.palm.reset();
        if (o_.detect_every == 0) return false;
        if (tracks_.empty() || last_detect_ < 0) return true;
        for (const track& t : tracks_)
            if (!t.agreed) return true;
        return frame - last_detect_ >= o_.detect_every;
    }

    // The detector's hands on this frame (best first): each continues the hand whose box it
    // overlaps most (IoU >= match_iou, one to one, the best pairs first), which takes the
    // detection's box for this frame (the fresh measurement). A hand no detection continues
    // is dropped when its joints disagreed with its box, or after max_misses runs without a
    // detection. A detection that continues no hand starts one (a new id) while fewer than
    // max_hands are followed and it overlaps no followed hand's box by match_iou.
    void apply_detections(const std::vector<handgraph::palm_detection>& found, int frame) {
        last_detect_ = frame;
        struct pair {
            double v;
            std::size_t t, d;
        };
        std::vector<pair> pairs;
        for (std::size_t t = 0; t < tracks_.size(); ++t)
            for (std::size_t d = 0; d < found.size(); ++d) {
                const double v = iou(tracks_[t].box, found[d].hand_box);
                if (v >= o_.match_iou) pairs.push_back({v, t, d});
            }
        std::stable_sort(pairs.begin(), pairs.end(), [](const pair& a, const pair& b) { return a.v > b.v; });
        std::vector<int> det_of(tracks_.size(), -1), track_of(found.size(), -1);
        for (const pair& p : pairs)
            if (det_of[p.t] < 0 && track_of[p.d] < 0) det_of[p.t] = int(p.d), track_of[p.d] = int(p.t);
        std::vector<track> kept;
        for (std::size_t t = 0; t < tracks_.size(); ++t) {
            track tr = tracks_[t];
            if (det_of[t] >= 0) {
                const handgraph::palm_detection& d = found[std::size_t(det_of[t])];
                tr.box = d.hand_box;
                tr.source = "detected";
                tr.palm = d;
                tr.misses = 0;
                tr.agreed = true;
                kept.push_back(tr);
            } else if (tr.agreed && ++tr.misses < o_.max_misses) {
                kept.push_back(tr);
            } else {
                lose(tr, frame);
            }
        }
        for (std::size_t d = 0; d < found.size() && int(kept.size()) < o_.max_hands; ++d) {
            if (track_of[d] >= 0) continue;
            bool overlaps = false;
            for (const track& k : kept) overlaps = overlaps || iou(k.box, found[d].hand_box) >= o_.match_iou;
            if (overlaps) continue;
            track tr;
            tr.id = reuse_id(found[d].hand_box, frame);
            tr.box = found[d].hand_box;
            tr.source = "detected";
            tr.palm = found[d];
            tr.first_frame = frame;
            kept.push_back(tr);
        }
        tracks_ = std::move(kept);
    }

    // After hand i of this frame was estimated, with its 2D joints (image pixels): the next
    // frame's box is the joints' box; it "agrees" when it overlaps the box used by
    // agree_iou. A hand that disagrees keeps its box and has the detector run on the next
    // frame (with detect_every 0, nothing checks: the joints' box is taken). A box mostly
    // out of the frame: the hand has left, dropped.
    void update_from_joints(std::size_t i, const joints2& uv) {
        track& t = tracks_[i];
        const box4 next = box_from_joints(uv, o_.enlarge);
        t.agreed = iou(next, t.box) >= o_.agree_iou;
        if (t.agreed || o_.detect_every == 0) {
            t.box = next;
            t.agreed = true;
        }
        t.source = "tracked";
    }
    // Drops the hands whose boxes have left the frame (after update_from_joints).
    void drop_lost(int frame) {
        std::vector<track> kept;
        for (const track& t : tracks_) {
            if (fraction_inside(t.box, width_, height_) < o_.min_inside) lose(t, frame);
            else kept.push_back(t);
        }
        tracks_ = std::move(kept);
    }

    std::vector<track>& tracks() { return tracks_; }
    int ids_given() const { return next_id_; }

private:
    struct lost_hand {
        int id, frame;
        box4 box;
    };
    void lose(const track& t, int frame) { lost_.push_back({t.id, frame, t.box}); }
    // The id of the hand lost within id_memory frames whose last box the new box overlaps
    // most (IoU >= match_iou), taken out of the lost list; else a new id.
    int reuse_id(const box4& b, int frame) {
        lost_.erase(std::remove_if(lost_.begin(), lost_.end(), [&](const lost_hand& l) { return frame - l.frame > o_.id_memory; }), lost_.end());
        std::size_t best = lost_.size();
        double best_v = o_.match_iou;
        for (std::size_t i = 0; i < lost_.size(); ++i) {
            const double v = iou(lost_[i].box, b);
            if (v >= best_v) best = i, best_v = v;
        }
        if (best == lost_.size()) return next_id_++;
        const int id = lost_[best].id;
        lost_.erase(lost_.begin() + std::ptrdiff_t(best));
        return id;
    }

    tracker_options o_;
    std::vector<lost_hand> lost_;
    std::vector<track> tracks_;
    int next_id_ = 0;
    int last_detect_ = -1;
    int width_ = 0, height_ = 0;
};

}  // namespace tracking

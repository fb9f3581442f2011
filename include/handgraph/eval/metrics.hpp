// handgraph/eval/metrics.hpp: 3D pose errors as the release and the literature report
// them. Inputs are poses in cm (as the data sets and the pipeline give them); every
// error is in mm.
//
// - Per frame: the mean Euclidean error over the 21 joints (root included).
// - mean_error_mm: the mean over frames of the per-frame error: the release's metric
//   (spec section 5; GT root and scale given).
// - joint_error_mm: per joint, the mean over frames.
// - root_relative_error_mm: both poses translated so that joint 0 is at the origin,
//   then the mean over frames and joints 1..20 (joint 0 would add zeros).
// - 3D PCK: the fraction of all (frame, joint) errors <= a threshold, at the thresholds
//   20, 21, ..., 50 mm by default (31 values, 1 mm apart), and its normalised area: the
//   trapezoid rule over the thresholds divided by their range (30 mm), in [0, 1]. With
//   every joint present in every frame this equals the mean over joints of per-joint
//   PCK (Zimmermann and Brox's definition, with <=).
// Non-finite inputs are refused, naming the frame. Depends on eval/pose.hpp, error.hpp.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "../error.hpp"
#include "pose.hpp"

namespace handgraph {

// 20, 21, ..., 50 mm.
inline std::vector<double> default_pck_thresholds_mm() {
    std::vector<double> t;
    for (int mm = 20; mm <= 50; ++mm) t.push_back(mm);
    return t;
}

// Euclidean distance of two joints given in cm, in mm.
inline double joint_error_mm(const std::array<double, 3>& est_cm, const std::array<double, 3>& gt_cm) {
    double dx = est_cm[0] - gt_cm[0], dy = est_cm[1] - gt_cm[1], dz = est_cm[2] - gt_cm[2];
    return std::sqrt(dx * dx + dy * dy + dz * dz) * 10.0;
}

// Mean over the 21 joints of one frame, in mm.
inline double mean_joint_error_mm(const pose21& est_cm, const pose21& gt_cm) {
    double s = 0;
    for (std::size_t j = 0; j < pose_joint_count; ++j) s += joint_error_mm(est_cm[j], gt_cm[j]);
    return s / double(pose_joint_count);
}

// PCK values at `thresholds_mm` (ascending) for a list of errors; their normalised AUC.
struct pck_curve {
    std::vector<double> thresholds_mm;
    std::vector<double> pck;
    double auc = 0;
};

inline pck_curve compute_pck(const std::vector<double>& errors_mm, const std::vector<double>& thresholds_mm) {
    if (thresholds_mm.size() < 2) throw error("PCK: needs at least two thresholds");
    for (std::size_t i = 1; i < thresholds_mm.size(); ++i)
        if (!(thresholds_mm[i] > thresholds_mm[i - 1])) throw error("PCK: thresholds must increase");
    if (errors_mm.empty()) throw error("PCK: no errors to evaluate");
    pck_curve c;
    c.thresholds_mm = thresholds_mm;
    for (double t : thresholds_mm) {
        std::size_t hit = 0;
        for (double e : errors_mm) hit += e <= t;
        c.pck.push_back(double(hit) / double(errors_mm.size()));
    }
    double area = 0;
    for (std::size_t i = 1; i < thresholds_mm.size(); ++i)
        area += (c.pck[i] + c.pck[i - 1]) * 0.5 * (thresholds_mm[i] - thresholds_mm[i - 1]);
    c.auc = area / (thresholds_mm.back() - thresholds_mm.front());
    return c;
}

struct pose_metrics {
    std::size_t frames = 0;
    std::vector<double> frame_error_mm;             // per frame, mean over the 21 joints
    double mean_error_mm = 0;                       // mean of frame_error_mm: the release's metric
    std::array<double, pose_joint_count> joint_error_mm{};  // per joint, mean over frames
    double root_relative_error_mm = 0;              // joints 1..20 after moving joint 0 to the origin
    pck_curve pck;                                  // over all (frame, joint) errors
};

// Evaluates estimated poses against ground truth, frame by frame (both in cm).
inline pose_metrics evaluate_poses(const std::vector<pose21>& est_cm, const std::vector<pose21>& gt_cm,
                                   const std::vector<double>& thresholds_mm = default_pck_thresholds_mm()) {
    if (est_cm.size() != gt_cm.size())
        throw error("evaluate_poses: " + std::to_string(est_cm.size()) + " estimates for " + std::to_string(gt_cm.size()) +
                    " ground-truth poses");
    if (est_cm.empty()) throw error("evaluate_poses: no frames");
    pose_metrics m;
    m.frames = est_cm.size();
    std::vector<double> all;
    all.reserve(m.frames * pose_joint_count);
    double rel_sum = 0;
    for (std::size_t f = 0; f < m.frames; ++f) {
        for (std::size_t j = 0; j < pose_joint_count; ++j)
            for (int k = 0; k < 3; ++k)
                if (!std::isfinite(est_cm[f][j][k]) || !std::isfinite(gt_cm[f][j][k]))
                    throw error("evaluate_poses: frame " + std::to_string(f) + ", joint " + joint_names()[j] +
                                ": value is not finite");
        double s = 0;
        for (std::size_t j = 0; j < pose_joint_count; ++j) {
            double e = joint_error_mm(est_cm[f][j], gt_cm[f][j]);
            all.push_back(e);
            m.joint_error_mm[j] += e;
            s += e;
            if (j > 0) {
                std::array<double, 3> a, b;
                for (int k = 0; k < 3; ++k) {
                    a[k] = est_cm[f][j][k] - est_cm[f][0][k];
                    b[k] = gt_cm[f][j][k] - gt_cm[f][0][k];
                }
                rel_sum += joint_error_mm(a, b);
            }
        }
        m.frame_error_mm.push_back(s / double(pose_joint_count));
    }
    double total = 0;
    for (double e : m.frame_error_mm) total += e;
    m.mean_error_mm = total / double(m.frames);
    for (auto& e : m.joint_error_mm) e /= double(m.frames);
    m.root_relative_error_mm = rel_sum / double(m.frames * (pose_joint_count - 1));
    m.pck = compute_pck(all, thresholds_mm);
    return m;
}

}  // namespace handgraph

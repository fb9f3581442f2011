// handgraph/eval/datasets.hpp: the two evaluation sets of spec section 5, frame by frame,
// as the network wants them: a 256x256 BGR crop, the camera, the crop's box, the root
// joint and scale, and the ground-truth pose (cm, joint order of eval/pose.hpp).
//
//   handgraph::real_world_testset rw("data/real_world_testset");
//   handgraph::stb_dataset stb("STB", "data/STB_eval_bboxes.mat");
//   for (std::size_t i = 0; i < stb.size(); ++i) { handgraph::sample s = stb.load(i); ... }
//
// Labels are read and checked when the set is opened; images are read by load(), which
// is const and safe to call from several threads. Missing or malformed files throw
// handgraph::error naming the path (and variable or frame).
// Depends on image.hpp, mat.hpp, eval/pose.hpp.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "../error.hpp"
#include "../image.hpp"
#include "../mat.hpp"
#include "pose.hpp"

namespace handgraph {

// One frame of an evaluation set.
struct sample {
    std::size_t index = 0;           // position in the set
    std::string image_id;            // e.g. "images/00000.jpg", "B1Counting/SK_color_0.png"
    image crop;                      // 256 x 256 BGR; empty when loaded without images
    std::array<double, 4> cam{};     // fx, fy, u0, v0 (pixels)
    std::array<int, 4> bbox{};       // x, y, w, h of the crop in the original image (pixels)
    std::array<double, 3> root_cm{};  // joint 0 in camera space
    double scale_cm = 0;             // |middle_2 - middle_1|
    pose21 gt_pose_cm{};             // ground truth, camera space
};

class dataset {
public:
    virtual ~dataset() = default;
    virtual std::string name() const = 0;
    virtual std::size_t size() const = 0;
    // Frame i (0-based). with_image = false skips reading the image (crop stays empty).
    virtual sample load(std::size_t i, bool with_image = true) const = 0;
};

// Frames an evaluation over `ds` with `limit` covers: the first `limit` (0: all).
inline std::size_t evaluation_frames(const dataset& ds, std::size_t limit) {
    return limit ? std::min(limit, ds.size()) : ds.size();
}

namespace detail {

inline void require_finite(const std::vector<double>& v, const mat_array& a) {
    for (std::size_t i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i])) throw error(a.where() + ": value " + std::to_string(i) + " is not finite");
}

// x truncated toward zero as int (Python's int(), numpy's astype(int)), range-checked.
inline int truncate_to_int(double x, const std::string& where) {
    if (!(x > -2147483649.0 && x < 2147483648.0)) throw error(where + ": value " + std::to_string(x) + " is not a valid pixel coordinate");
    return int(std::trunc(x));
}

// One N x K numeric variable as row-major doubles, checked for dims and finiteness.
inline std::vector<double> rows_of(const mat_array& a, std::size_t n, std::size_t k) {
    a.require_numeric();
    a.require_dims({n, k});
    auto v = a.as_double_row_major();
    require_finite(v, a);
    return v;
}

}  // namespace detail

// The release's 583-image real-world test set: `root` holds params.mat, pose_gt.mat
// and images/ (already 256x256 crops).
class real_world_testset : public dataset {
public:
    explicit real_world_testset(const std::filesystem::path& root) : dir_(root) {
        auto params = read_mat(root / "params.mat");
        auto gt = read_mat(root / "pose_gt.mat");
        paths_ = params.get("image_path").strings();
        for (auto& p : paths_)
            while (!p.empty() && (p.back() == ' ' || p.back() == '\0')) p.pop_back();  // char-matrix padding
        std::size_t n = paths_.size();
        if (n == 0) throw error("MAT file '" + params.path + "', variable 'image_path': no images");
        cam_ = detail::rows_of(params.get("cam_param"), n, 4);
        bbox_ = detail::rows_of(params.get("bbox"), n, 4);
        root_cm_ = detail::rows_of(params.get("pose_root"), n, 3);
        const auto& scale = params.get("pose_scale");
        scale.require_numeric();
        if (scale.numel() != n || scale.ndims() != 2)
            throw error(scale.where() + ": has dims " + detail::mat_dims_text(scale.dims()) + ", expected " +
                        std::to_string(n) + " values");
        scale_ = scale.as_double();
        detail::require_finite(scale_, scale);
        const auto& pose = gt.get("pose_gt");
        pose.require_numeric();
        pose.require_dims({n, pose_joint_count, 3});
        pose_ = pose.as_double_row_major();
        detail::require_finite(pose_, pose);
        for (std::size_t i = 0; i < n; ++i) {
            std::string where = "MAT file '" + params.path + "', frame " + std::to_string(i);
            if (!(cam_[i * 4] > 0 && cam_[i * 4 + 1] > 0)) throw error(where + ": focal lengths must be positive");
            for (int k = 0; k < 4; ++k) detail::truncate_to_int(bbox_[i * 4 + k], where);
            if (bbox_[i * 4 + 2] <= 0 || bbox_[i * 4 + 3] <= 0) throw error(where + ": box width and height must be positive");
            if (!(scale_[i] > 0)) throw error(where + ": pose_scale must be positive");
            if (paths_[i].empty()) throw error(where + ": empty image_path");
        }
    }
    std::string name() const override { return "real_world_testset"; }
    std::size_t size() const override { return paths_.size(); }
    sample load(std::size_t i, bool with_image = true) const override {
        if (i >= size()) throw error("real_world_testset: frame " + std::to_string(i) + " out of range (" + std::to_string(size()) + " frames)");
        sample s;
        s.index = i;
        s.image_id = paths_[i];
        for (int k = 0; k < 4; ++k) s.cam[k] = cam_[i * 4 + k];
        for (int k = 0; k < 4; ++k) s.bbox[k] = int(bbox_[i * 4 + k]);
        for (int k = 0; k < 3; ++k) s.root_cm[k] = root_cm_[i * 3 + k];
        s.scale_cm = scale_[i];
        for (std::size_t j = 0; j < pose_joint_count; ++j)
            for (int k = 0; k < 3; ++k) s.gt_pose_cm[j][k] = pose_[(i * pose_joint_count + j) * 3 + k];
        if (with_image) {
            s.crop = load_image(dir_ / paths_[i]);
            if (s.crop.width != 256 || s.crop.height != 256)
                throw error("image '" + (dir_ / paths_[i]).string() + "': is " + std::to_string(s.crop.width) + "x" +
                            std::to_string(s.crop.height) + ", expected a 256x256 crop");
        }
        return s;
    }

private:
    std::filesystem::path dir_;
    std::vector<std::string> paths_;
    std::vector<double> cam_, bbox_, root_cm_, scale_, pose_;
};

// ---- STB (Zhang et al. 2016), as the release evaluates it ----

// The fixed colour camera: fx, fy, u0, v0.
inline std::array<double, 4> stb_color_camera() { return {607.92271, 607.88192, 314.78337, 236.42484}; }

// STB's joint order, by name: palm, little 1-4, ring 1-4, middle 1-4, index 1-4, thumb 1-4.
inline const std::array<const char*, pose_joint_count>& stb_joint_names() {
    static const std::array<const char*, pose_joint_count> names = {
        "palm",
        "little_1", "little_2", "little_3", "little_4",
        "ring_1", "ring_2", "ring_3", "ring_4",
        "middle_1", "middle_2", "middle_3", "middle_4",
        "index_1", "index_2", "index_3", "index_4",
        "thumb_1", "thumb_2", "thumb_3", "thumb_4"};
    return names;
}

// For each joint of eval/pose.hpp's order, its index in STB's order (matched by name;
// STB's palm centre takes the wrist's place and is turned into a wrist by stb_labels).
inline const std::array<std::size_t, pose_joint_count>& stb_to_pose_order() {
    static const std::array<std::size_t, pose_joint_count> order = [] {
        std::array<std::size_t, pose_joint_count> o{};
        const auto& stb = stb_joint_names();
        for (std::size_t s = 0; s < pose_joint_count; ++s) {
            std::size_t j = std::string(stb[s]) == "palm" ? 0 : joint_index(stb[s]);
            if (j >= pose_joint_count) throw error("STB joint name without a match: " + std::string(stb[s]));
            o[j] = s;
        }
        return o;
    }();
    return order;
}

// The rotation R of xyz_c = (xyz_d - T) @ R (depth to colour camera), from the rotation
// vector r = [0.00531, -0.01196, 0.00301] as spec section 5 writes it.
inline std::array<std::array<double, 3>, 3> stb_depth_to_color_rotation() {
    const double r[3] = {0.00531, -0.01196, 0.00301};
    double theta = std::sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
    double s = std::sin(theta / 2);
    double a = std::cos(theta / 2), b = -r[0] / theta * s, c = -r[1] / theta * s, d = -r[2] / theta * s;
    return {{{a * a + b * b - c * c - d * d, 2 * (b * c + a * d), 2 * (b * d - a * c)},
             {2 * (b * c - a * d), a * a + c * c - b * b - d * d, 2 * (c * d + a * b)},
             {2 * (b * d + a * c), 2 * (c * d - a * b), a * a + d * d - b * b - c * c}}};
}
inline std::array<double, 3> stb_depth_to_color_translation_mm() { return {-24.0381, -0.4563, -1.2326}; }

// One STB label turned into what the network's evaluation uses.
struct stb_frame_labels {
    pose21 pose_cm{};                 // colour camera, cm, eval/pose.hpp's order, joint 0 a wrist
    std::array<double, 3> root_cm{};  // = pose_cm[0]
    double scale_cm = 0;              // |middle_2 - middle_1|
};

// label_mm: 21 joints in STB's order, depth camera, mm. Depth -> colour camera, mm -> cm,
// reorder by name, palm -> wrist (root = ring_1 + 2 * (palm - ring_1)), scale.
inline stb_frame_labels stb_labels(const pose21& label_mm) {
    auto R = stb_depth_to_color_rotation();
    auto T = stb_depth_to_color_translation_mm();
    pose21 color_cm{};
    for (std::size_t j = 0; j < pose_joint_count; ++j) {
        double q[3] = {label_mm[j][0] - T[0], label_mm[j][1] - T[1], label_mm[j][2] - T[2]};
        for (int k = 0; k < 3; ++k) color_cm[j][k] = (q[0] * R[0][k] + q[1] * R[1][k] + q[2] * R[2][k]) / 10.0;
    }
    stb_frame_labels out;
    const auto& order = stb_to_pose_order();
    for (std::size_t j = 0; j < pose_joint_count; ++j) out.pose_cm[j] = color_cm[order[j]];
    const std::size_t ring_1 = joint_index("ring_1"), middle_1 = joint_index("middle_1"), middle_2 = joint_index("middle_2");
    for (int k = 0; k < 3; ++k) {
        double palm = out.pose_cm[0][k];
        out.pose_cm[0][k] = out.pose_cm[ring_1][k] + 2.0 * (palm - out.pose_cm[ring_1][k]);
    }
    out.root_cm = out.pose_cm[0];
    double dx = out.pose_cm[middle_2][0] - out.pose_cm[middle_1][0], dy = out.pose_cm[middle_2][1] - out.pose_cm[middle_1][1],
           dz = out.pose_cm[middle_2][2] - out.pose_cm[middle_1][2];
    out.scale_cm = std::sqrt(dx * dx + dy * dy + dz * dz);
    return out;
}

// STB's evaluation frames: `stb_root` holds B1Counting/ and B1Random/ (SK_color_<i>.png)
// and labels/<seq>_SK.mat (handPara, 3 x 21 x frames, mm, depth camera); `bboxes_mat`
// is the release's STB_eval_bboxes.mat (bboxes, frames x 4, [x, y, w, h], truncated to
// int). Sequences are evaluated in the order of `sequences` (the release's order).
class stb_dataset : public dataset {
public:
    static const std::vector<std::string>& default_sequences() {
        static const std::vector<std::string> s = {"B1Counting", "B1Random"};
        return s;
    }

    stb_dataset(const std::filesystem::path& stb_root, const std::filesystem::path& bboxes_mat,
                const std::vector<std::string>& sequences = default_sequences())
        : root_(stb_root) {
        if (sequences.empty()) throw error("stb_dataset: no sequences");
        for (const auto& seq : sequences) {
            auto labels_path = stb_root / "labels" / (seq + "_SK.mat");
            auto labels = read_mat(labels_path);
            const auto& hp = labels.get("handPara");
            hp.require_numeric();
            if (hp.ndims() != 3 || hp.dims()[0] != 3 || hp.dims()[1] != pose_joint_count || hp.dims()[2] == 0)
                throw error(hp.where() + ": has dims " + detail::mat_dims_text(hp.dims()) + ", expected 3x21xframes");
            auto v = hp.as_double();  // column-major: (coordinate, joint, frame)
            detail::require_finite(v, hp);
            std::size_t frames = hp.dims()[2];
            for (std::size_t f = 0; f < frames; ++f) {
                pose21 mm{};
                for (std::size_t j = 0; j < pose_joint_count; ++j)
                    for (std::size_t k = 0; k < 3; ++k) mm[j][k] = v[k + 3 * (j + pose_joint_count * f)];
                labels_.push_back(stb_labels(mm));
                frames_.push_back({seq, f});
            }
        }
        auto boxes_file = read_mat(bboxes_mat);
        const auto& boxes = boxes_file.get("bboxes");
        auto b = detail::rows_of(boxes, frames_.size(), 4);
        for (std::size_t i = 0; i < frames_.size(); ++i) {
            std::string where = boxes.where() + ", frame " + std::to_string(i);
            std::array<int, 4> box{};
            for (int k = 0; k < 4; ++k) box[k] = detail::truncate_to_int(b[i * 4 + k], where);
            if (box[2] <= 0 || box[3] <= 0 || std::int64_t(box[2]) * box[3] > (std::int64_t(1) << 26))
                throw error(where + ": box size " + std::to_string(box[2]) + "x" + std::to_string(box[3]) + " is not usable");
            boxes_.push_back(box);
        }
    }
    std::string name() const override { return "stb"; }
    std::size_t size() const override { return frames_.size(); }
    sample load(std::size_t i, bool with_image = true) const override {
        if (i >= size()) throw error("stb_dataset: frame " + std::to_string(i) + " out of range (" + std::to_string(size()) + " frames)");
        const auto& fr = frames_[i];
        sample s;
        s.index = i;
        s.image_id = fr.sequence + "/SK_color_" + std::to_string(fr.frame) + ".png";
        s.cam = stb_color_camera();
        s.bbox = boxes_[i];
        s.root_cm = labels_[i].root_cm;
        s.scale_cm = labels_[i].scale_cm;
        s.gt_pose_cm = labels_[i].pose_cm;
        if (with_image) {
            image full = load_image(root_ / s.image_id);
            // A box partly outside the image is zero-padded (as the release crops); one
            // that misses the image entirely would feed the network a black crop.
            const auto& b = s.bbox;
            if (std::int64_t(b[0]) + b[2] <= 0 || std::int64_t(b[1]) + b[3] <= 0 || b[0] >= full.width || b[1] >= full.height)
                throw error("stb: frame " + std::to_string(i) + " (" + s.image_id + "): box [" + std::to_string(b[0]) + ", " +
                            std::to_string(b[1]) + ", " + std::to_string(b[2]) + ", " + std::to_string(b[3]) +
                            "] lies wholly outside the " + std::to_string(full.width) + "x" + std::to_string(full.height) + " image");
            s.crop = crop_and_resize(full, s.bbox[0], s.bbox[1], s.bbox[2], s.bbox[3], 256, 256);
        }
        return s;
    }

private:
    struct frame_ref {
        std::string sequence;
        std::size_t frame;
    };
    std::filesystem::path root_;
    std::vector<frame_ref> frames_;
    std::vector<stb_frame_labels> labels_;
    std::vector<std::array<int, 4>> boxes_;
};

}  // namespace handgraph

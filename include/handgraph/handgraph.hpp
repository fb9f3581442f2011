// handgraph/handgraph.hpp: the inference API. Load a model, make a context, estimate.
//
//   #include <handgraph/handgraph.hpp>
//   auto model = handgraph::model::load("weights/hand_graph_stb.safetensors");
//   handgraph::context ctx(2);                       // 2 threads, and the scratch memory
//   handgraph::image_view crop(bgr, 256, 256);       // 256 x 256, B, G, R bytes
//   handgraph::hand_estimate e = model.estimate(ctx, crop, params);   // params: optional
//   // e.uv_px (21 x 2, crop pixels), e.pose_uvd / e.mesh_uvd (normalised), and with
//   // params e.pose_cm (21 x 3) and e.mesh_cm (954 x 3), camera space in cm.
//
// - A model is immutable data (its prepared weights, the hand graph): share it between
//   threads freely. A context owns what a call needs besides the model: its helper threads
//   and all of its scratch memory. One call at a time per context (calls on one context
//   wait for each other); a server makes one context per request thread, and N contexts
//   cost N times a context's memory (README). Destroying a context joins its threads and
//   frees its memory. model.estimate(crop) without a context uses default_context(): one
//   thread, shared by the whole process, one call at a time.
// - Errors are handgraph::error exceptions whose message names the file, tensor, key or
//   argument at fault.
// - This header is light (the standard library only): it declares the API. Its
//   implementation is compiled once per program: in exactly one translation unit,
//       #define HANDGRAPH_IMPLEMENTATION
//       #include <handgraph/handgraph.hpp>
//   (as with stb's single-file libraries). That translation unit needs xsimd and Eigen, and
//   gets the kernels for its own compiler flags (-march=native for AVX-512/AVX2).
//   handgraph's own executables link tools/runtime instead, which carries the kernels of
//   every instruction set and picks one at run time.
// - Inference only: image files, MAT files and the evaluation live in handgraph/eval.hpp.
// Depends on error.hpp and the standard library.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "error.hpp"

namespace handgraph {

constexpr int num_joints = 21;     // spec section 4's order: wrist, thumb 1-4, index 1-4, middle, ring, little
constexpr int num_vertices = 954;  // mesh vertices: the template mesh less its arm
constexpr int crop_size = 256;     // the network's input is a crop_size x crop_size image

// Channel order of 8-bit pixels.
enum class pixel_format { bgr, rgb, bgra, rgba, gray };

inline int channel_count(pixel_format f) {
    switch (f) {
        case pixel_format::bgr:
        case pixel_format::rgb: return 3;
        case pixel_format::bgra:
        case pixel_format::rgba: return 4;
        case pixel_format::gray: return 1;
    }
    return 0;
}

// An 8-bit image in memory that handgraph reads and never owns: rows top to bottom,
// `row_stride` bytes apart (0: packed, width x channels), pixels in `format`'s order.
struct image_view {
    const std::uint8_t* data = nullptr;
    int width = 0, height = 0;
    std::ptrdiff_t row_stride = 0;
    pixel_format format = pixel_format::bgr;

    image_view() = default;
    image_view(const std::uint8_t* pixels, int w, int h, pixel_format f = pixel_format::bgr, std::ptrdiff_t stride = 0)
        : data(pixels), width(w), height(h), row_stride(stride), format(f) {}

    std::ptrdiff_t stride() const { return row_stride ? row_stride : std::ptrdiff_t(width) * channel_count(format); }
    // Throws handgraph::error naming `what` when the view cannot be read: no data, a size
    // that is not positive, an unknown format, or rows shorter than width x channels.
    void check(const std::string& what = "image") const {
        if (channel_count(format) == 0) throw error(what + ": unknown pixel format");
        if (width <= 0 || height <= 0)
            throw error(what + ": size " + std::to_string(width) + "x" + std::to_string(height) + " is not positive");
        if (!data) throw error(what + ": no pixel data (null pointer)");
        if (row_stride != 0 && row_stride < std::ptrdiff_t(width) * channel_count(format))
            throw error(what + ": row stride " + std::to_string(row_stride) + " bytes is shorter than a row (" + std::to_string(width) + " x " +
                        std::to_string(channel_count(format)) + " bytes)");
    }
};

// Where a crop came from (both evaluation protocols give all four): without them, the
// 3D outputs are normalised only.
struct crop_params {
    std::array<float, 4> cam{};      // fx, fy, u0, v0 (pixels)
    std::array<float, 4> bbox{};     // x, y, w, h of the crop in the original image (pixels)
    std::array<float, 3> root_cm{};  // root joint (wrist) in camera space, cm
    float scale_cm = 1.0f;           // length of the middle finger's first bone (joints 9-10), cm
};

using point2i = std::array<int, 2>;
using point3f = std::array<float, 3>;

// One hand's result. Joints in spec section 4's order, vertices in the template's order.
struct hand_estimate {
    // Heat-map maxima (u, v): crop pixel columns and rows, 0..255.
    std::array<point2i, num_joints> uv_px{};
    // Normalised: u / 256, v / 256 and depth relative to the root joint in units of the
    // scale (the root joint's depth is 0). What the network gives, without crop_params.
    std::array<point3f, num_joints> pose_uvd{};
    std::array<point3f, num_vertices> mesh_uvd{};
    // With crop_params (metric == true): camera space, cm (spec section 4's uvd-to-xyz; the
    // root joint is crop_params::root_cm). Zero otherwise.
    bool metric = false;
    std::array<point3f, num_joints> pose_cm{};
    std::array<point3f, num_vertices> mesh_cm{};
};

// estimate() plus what the networks computed on the way (model::trace).
struct hand_trace {
    hand_estimate estimate;
    std::vector<float> heatmaps;    // 2 x 21 x 64 x 64 (stack, joint, y, x)
    std::vector<float> enc0, enc1;  // 256 x 64 x 64 each (C, H, W)
    std::vector<float> features;    // 4096 (256 x 4 x 4, C, H, W)
    std::vector<float> mesh_nodes;  // 1280 x 3: the graph CNN's output in the network's node order (normalised u, v, depth)
    std::vector<float> depths;      // 20: relative depths of joints 1..20
};

struct estimate_options {
    // Direct convolution everywhere instead of Winograd F(4x4,3x3) on the 3x3 layers of the
    // larger maps: slower, and closer to a float64 evaluation on most arrays; both modes stay
    // within 1e-5 of it (tests/test_pipeline.cpp, benchmarks/NOTES.md).
    bool exact = false;
};

struct load_options {
    // The instruction set of the kernels: "" for the best this CPU runs, or the name of a
    // compiled one (available_kernels()) to use it, or the best below it.
    std::string kernels;
};

// Wall time of one estimate() call per stage, in milliseconds.
struct stage_times {
    double net_hm_ms = 0, feat_mesh_ms = 0, mesh_pose_ms = 0, post_ms = 0;
};

// ---- A hand in any image (a photo, a video frame): the crop, the camera and the root
// joint are worked out when they are not given.

enum class hand_side { right, left };
// Where a hand's crop box came from: given (a hand box), the whole image (a 256 x 256 image
// used as it is), a crop of a larger frame (the image is the crop, cut at crop_box), or
// detected (the hand finder).
enum class box_source { given, whole_image, frame_crop, detected };
// How the root joint was found: given, or solved (root.hpp): in closed form, or by one of
// its two documented fallbacks when the closed form has no usable root.
enum class root_method { given, closed_form, closest_approach, box_size };

struct photo_options {
    // The hand's box in the image (x, y, w, h, pixels). The crop is the square centred on it
    // of side max(w, h) x margin (rounded to whole pixels), zero-padded where it leaves the
    // image, resized to 256 x 256. Without it (and without crop_box) the image must be 256 x 256
    // and is the crop.
    std::optional<std::array<float, 4>> hand_box;
    float margin = 1.0f;
    // Or: the 256 x 256 image is itself a crop, cut from a larger frame at this box (the
    // evaluation protocols' bbox); `camera` is then that frame's camera and must be given.
    std::optional<std::array<float, 4>> crop_box;
    // fx, fy, u0, v0 in pixels. Without it: assumed, fx = fy = max(W, H) and the principal
    // point at the image's centre ((W - 1) / 2, (H - 1) / 2 in pixel-index coordinates).
    std::optional<std::array<float, 4>> camera;
    // The hand's scale: the length of the middle finger's first bone (joints 9 to 10), cm.
    // 5 cm by default (the real-world test set's value).
    float scale_cm = 5.0f;
    // The root joint (wrist) in camera space, cm, when known (the evaluation protocols);
    // otherwise solved from the 2D joints, the relative depths and the scale (root.hpp).
    std::optional<std::array<float, 3>> root_cm;
    // A left hand: its crop is mirrored for the network (trained on right hands) and every
    // output mirrored back into the image's frame.
    hand_side side = hand_side::right;
    bool exact = false;  // estimate_options::exact
};

struct hand_result {
    hand_side side = hand_side::right;
    box_source box_from = box_source::given;
    std::array<float, 4> box{};  // the crop box in image pixels (x, y, w, h): square unless crop_box gave it
    // In camera space (cm): estimate.pose_cm, estimate.mesh_cm (metric is true); the 2D joints
    // in crop pixels (estimate.uv_px) and in image pixels (uv_image), in the image's frame
    // (mirrored back for a left hand).
    hand_estimate estimate;
    std::array<std::array<float, 2>, num_joints> uv_image{};
    std::array<float, 4> camera{};  // fx, fy, u0, v0 used
    bool camera_assumed = false;
    float scale_cm = 5.0f;
    root_method root = root_method::given;
};

namespace detail {
class context_state;
class hand_model;
}  // namespace detail

// The helper threads and scratch memory of the calls made with it (see the top).
class context {
public:
    static constexpr int max_threads = 1024;

    // threads: 1..max_threads (the calling thread is one of them). Helper threads start on
    // the first call that uses them. Throws handgraph::error outside that range.
    explicit context(int threads = 1);
    ~context();
    context(context&&) noexcept;
    context& operator=(context&&) noexcept;

    int threads() const;
    // Per-stage times of the last estimate() or trace() made with this context.
    stage_times last_stage_times() const;
    // Scratch memory held now (activations kept for the next call, working buffers), bytes.
    std::size_t memory_bytes() const;
    // Frees the scratch memory kept between calls (the next call allocates it again).
    void release_memory();

    detail::context_state& state();  // internal
    struct impl;                     // internal

private:
    friend class model;
    std::unique_ptr<impl> impl_;
};

// The process-wide context behind the calls without one: 1 thread; its calls are serialised.
context& default_context();

// Writes `out`, a prepared weight file made from the converted weight file `weights`: the
// layers' weights packed as the kernels use them (BatchNorm folded in), the rest copied,
// and the hand graph's Laplacian scales. model::load maps such a file instead of reading
// and packing the weights (several times faster to load; README, Speed), with results
// bit-identical to loading `weights` itself. The packing does not depend on the
// instruction set, except that CPUs without FMA (the sse2 kernels) run every layer in
// double: a file prepared on one kind is refused by the other, with a message saying so.
// `options.kernels` as for model::load. Written atomically (write_file_atomic); `out`
// must not be `weights`.
void prepare_weights(const std::string& weights, const std::string& out, const load_options& options = {});

class model {
public:
    // Reads, validates and prepares a weight file (tools/convert_weights.py output), or maps
    // a prepared one (prepare_weights), whose packed weights are then used where the file
    // maps them: the file must then stay in place while the model lives (replacing it by
    // a rename, as prepare_weights does, is safe; truncating it in place is not).
    static model load(const std::string& path, const load_options& options = {});
    // A deterministic random-weight model of the real shapes, for demos, benchmarks and
    // tests without the released weights (outputs meaningless, cost real). The template mesh
    // (vertices n x 3, faces m x 3, raw, the arm included) is given.
    static model random(std::uint64_t seed, const std::vector<float>& template_vertices, const std::vector<std::int32_t>& template_faces,
                        const load_options& options = {});

    model(model&&) noexcept;
    model& operator=(model&&) noexcept;
    model(const model&);  // cheap: the prepared model is shared, immutable
    model& operator=(const model&);
    ~model();

    // One 256 x 256 crop. `params`: where it came from; without them the outputs are
    // normalised only (hand_estimate).
    hand_estimate estimate(context& ctx, const image_view& crop, const std::optional<crop_params>& params = std::nullopt,
                           const estimate_options& options = {}) const;
    // The same with default_context().
    hand_estimate estimate(const image_view& crop, const std::optional<crop_params>& params = std::nullopt,
                           const estimate_options& options = {}) const;
    // Several crops; `params` empty (normalised outputs) or one per crop. With at least as
    // many crops as the context has threads, the crops run side by side, one thread each;
    // otherwise one after the other on all threads. Results do not depend on either.
    std::vector<hand_estimate> estimate_batch(context& ctx, const std::vector<image_view>& crops,
                                              const std::vector<crop_params>& params = {}, const estimate_options& options = {}) const;
    // A hand in an image of any size (within the pixel budget of whoever decoded it): see
    // photo_options. Refused (handgraph::error): a hand box without area or wholly outside
    // the image, both hand_box and crop_box, a camera with a focal length that is not
    // positive, a scale or margin that is not positive, an image that is not 256 x 256
    // without a hand box.
    hand_result estimate_hand(context& ctx, const image_view& image, const photo_options& options = {}) const;
    // estimate() and the intermediate arrays (heat-maps, encodings, features, raw outputs).
    hand_trace trace(context& ctx, const image_view& crop, const std::optional<crop_params>& params = std::nullopt,
                     const estimate_options& options = {}) const;

    // The mesh's triangles (m x 3 indices into the 954 vertices; 1892 for the release's
    // template), wound so that normals point outward; for a left hand (a mirrored mesh) each
    // triangle's order is reversed to keep them outward.
    const std::vector<std::int32_t>& faces(hand_side side = hand_side::right) const;
    // The weight file's path, or a description of the random weights.
    const std::string& source() const;
    // The instruction set the kernels run with ("avx512bw", "fma3+avx2", "sse2", ...).
    const char* kernels() const;
    // Bytes of prepared weights (packed in the model's arena, or the mapped prepared file).
    std::size_t weight_bytes() const;

    const detail::hand_model& impl() const;  // internal (tests, evaluation)

private:
    explicit model(std::shared_ptr<const detail::hand_model> m);
    std::shared_ptr<const detail::hand_model> impl_;
};

// Names of the kernels' instruction sets compiled in that this CPU runs, best first.
std::vector<std::string> available_kernels();

// The root joint of an estimate solved from its 2D joints and relative depths (root.hpp),
// for a crop cut at bbox from a frame with camera `cam` and a hand of scale_cm: the
// crop_params that give it (root_cm filled in), and how it was found in *method.
crop_params solve_root(const hand_estimate& e, const std::array<float, 4>& cam, const std::array<float, 4>& bbox, float scale_cm,
                       root_method* method = nullptr);
// Fills e.pose_cm and e.mesh_cm from e.pose_uvd and e.mesh_uvd with p (spec section 4's
// uvd-to-xyz, as estimate() does) and sets e.metric.
void to_camera_space(hand_estimate& e, const crop_params& p);

inline const char* to_string(hand_side s) { return s == hand_side::left ? "left" : "right"; }
inline const char* to_string(box_source b) {
    switch (b) {
        case box_source::given: return "given";
        case box_source::whole_image: return "whole image";
        case box_source::frame_crop: return "frame crop";
        case box_source::detected: return "detected";
    }
    return "?";
}
inline const char* to_string(root_method m) {
    switch (m) {
        case root_method::given: return "given";
        case root_method::closed_form: return "estimated";
        case root_method::closest_approach: return "estimated (fallback: no real root, closest approach)";
        case root_method::box_size: return "estimated (fallback: depth from the crop's size)";
    }
    return "?";
}

}  // namespace handgraph

// Finding the hands in a picture (palm_detector, estimate_hands): its own light header.
#include "detector.hpp"

#if defined(HANDGRAPH_IMPLEMENTATION)
#include "implementation.hpp"
#endif

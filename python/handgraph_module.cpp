// python/handgraph_module.cpp: the `handgraph` Python module (pybind11), numpy in and out.
//
//   import cv2, handgraph
//   model = handgraph.Model("weights/hand_graph_stb.safetensors")
//   r = model.estimate(cv2.imread("photo.jpg"), hand_box=(412, 220, 180, 210))
//   r.pose_xyz, r.mesh_xyz, model.faces          # (21, 3), (954, 3) float32 cm; (1892, 3) int32
//
// A thin layer over the public C++ API (include/handgraph/handgraph.hpp), linked against
// handgraph_runtime (the implementation and the per-ISA kernels, chosen at run time):
// - images are numpy arrays read in place (no copy): H x W x 3 uint8, B, G, R (cv2.imread's
//   layout); rows may lie apart (a rectangle cut out of a larger array) but pixels and channels
//   must be packed; anything else is refused, never converted;
// - every engine call runs without the GIL;
// - threads: a handgraph.Context owns threads and scratch memory (handgraph::context); a Model
//   lends each call without an explicit context one context of its own pool (context_pool
//   below): an idle one, or a new one while fewer than max_contexts exist, else the call waits.
//   Nothing is thread-local: which thread calls does not matter, only how many call at once.
// - handgraph::error (and our own argument checks) raise handgraph.Error (a RuntimeError).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <handgraph/demo.hpp>
#include <handgraph/handgraph.hpp>
#include <handgraph/image.hpp>

namespace py = pybind11;
namespace hg = handgraph;
using namespace pybind11::literals;

namespace {

// ------------------------------------------------------------------ arguments

std::string repr_of(py::handle h) { return py::repr(h).cast<std::string>(); }

std::string type_name_of(py::handle h) { return py::str(py::type::handle_of(h).attr("__name__")).cast<std::string>(); }

std::string shape_text(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string strides_text(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.strides(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// An image argument: the array (kept alive by the caller while the view is used) and the view.
struct image_arg {
    py::array array;
    hg::image_view view;
};

// `obj` as an image view, checked: a numpy.ndarray of dtype uint8, shape (H, W, 3), pixels of
// 3 packed bytes, rows at a positive stride of at least W x 3 bytes (numpy guarantees every
// pixel the shape and strides address lies inside the array's memory). Refused otherwise.
image_arg image_of(py::handle obj, const std::string& what) {
    const std::string expected = "an H x W x 3 numpy.ndarray of dtype uint8 (B, G, R, as cv2.imread gives it)";
    if (!py::isinstance<py::array>(obj)) throw hg::error(what + ": expected " + expected + ", got " + type_name_of(obj));
    image_arg out{py::reinterpret_borrow<py::array>(obj), {}};
    const py::array& a = out.array;
    const py::dtype dt = a.dtype();
    if (dt.kind() != 'u' || dt.itemsize() != 1)
        throw hg::error(what + ": expected dtype uint8 (8-bit B, G, R), got " + py::str(py::handle(dt)).cast<std::string>() +
                        ": convert it yourself if that is what you mean (nothing is converted silently)");
    if (a.ndim() != 3 || a.shape(2) != 3)
        throw hg::error(what + ": expected shape (H, W, 3) (B, G, R), got " + shape_text(a) +
                        (a.ndim() == 2 ? ": a grey image? cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)"
                         : a.ndim() == 3 && a.shape(2) == 4 ? ": with alpha? cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)"
                                                             : ""));
    const py::ssize_t h = a.shape(0), w = a.shape(1);
    if (h <= 0 || w <= 0) throw hg::error(what + ": the image is empty, shape " + shape_text(a));
    if (h > std::numeric_limits<int>::max() / 4 || w > std::numeric_limits<int>::max() / 4)
        throw hg::error(what + ": shape " + shape_text(a) + " is too large");
    // Strides of dimensions of size 1 are meaningless in numpy (any value may be stored).
    const bool packed = a.strides(2) == 1 && (w == 1 || a.strides(1) == 3);
    const py::ssize_t row = h == 1 ? 3 * w : a.strides(0);
    if (!packed || row < 3 * w)
        throw hg::error(what + ": the array's layout (strides " + strides_text(a) + " for shape " + shape_text(a) +
                        ") is not packed pixels of 3 bytes in rows of at least W x 3 bytes (a step or a reversal in x or "
                        "in the channels, a flip in y, or Fortran order): pass numpy.ascontiguousarray(image)");
    out.view = hg::image_view(static_cast<const std::uint8_t*>(a.data()), int(w), int(h), hg::pixel_format::bgr, row);
    return out;
}

// None, or `n` finite numbers (any sequence or array numpy reads as n floats).
template <std::size_t N>
std::optional<std::array<float, N>> floats_of(py::handle obj, const std::string& what, const char* meaning) {
    if (obj.is_none()) return std::nullopt;
    const std::string expected = std::to_string(N) + " numbers (" + meaning + ")";
    py::array_t<double> a;
    try {
        a = py::module_::import("numpy").attr("asarray")(obj, "dtype"_a = "float64");
    } catch (py::error_already_set&) {
        throw hg::error(what + ": expected " + expected + ", got " + repr_of(obj));
    }
    if (a.ndim() != 1 || a.shape(0) != py::ssize_t(N))
        throw hg::error(what + ": expected " + expected + ", got shape " + shape_text(a) + ": " + repr_of(obj));
    std::array<float, N> v{};
    for (std::size_t i = 0; i < N; ++i) {
        const double x = a.at(py::ssize_t(i));
        if (!std::isfinite(x) || std::fabs(x) > double(std::numeric_limits<float>::max()))
            throw hg::error(what + ": value " + std::to_string(i) + " is not a finite number: " + repr_of(obj));
        v[i] = float(x);
    }
    return v;
}

std::optional<float> float_of(py::handle obj, const std::string& what) {
    if (obj.is_none()) return std::nullopt;
    double x = 0;
    try {
        x = py::float_(py::reinterpret_borrow<py::object>(obj)).cast<double>();
    } catch (py::error_already_set&) {
        throw hg::error(what + ": expected a number, got " + repr_of(obj));
    }
    if (!std::isfinite(x) || std::fabs(x) > double(std::numeric_limits<float>::max()))
        throw hg::error(what + ": " + repr_of(obj) + " is not a finite number");
    return float(x);
}

hg::hand_side side_of(const std::string& s) {
    if (s == "right") return hg::hand_side::right;
    if (s == "left") return hg::hand_side::left;
    throw hg::error("side: \"" + s + "\" is not \"left\" or \"right\"");
}

std::string path_of(py::handle obj, const std::string& what) {
    try {
        return py::str(py::module_::import("os").attr("fspath")(obj)).cast<std::string>();
    } catch (py::error_already_set&) {
        throw hg::error(what + ": expected a path (str or os.PathLike), got " + repr_of(obj));
    }
}

// ------------------------------------------------------------------ numpy results

template <typename T>
py::array_t<T> new_array(std::vector<py::ssize_t> shape, const T* data) {
    py::array_t<T> a(shape);
    std::memcpy(a.mutable_data(), data, std::size_t(a.size()) * sizeof(T));
    return a;
}

template <typename T, std::size_t C, std::size_t R>
py::array_t<T> rows_array(const std::array<std::array<T, C>, R>& rows) {
    return new_array<T>({py::ssize_t(R), py::ssize_t(C)}, rows[0].data());
}

template <typename T, std::size_t N>
py::array_t<T> vector_array(const std::array<T, N>& v) {
    return new_array<T>({py::ssize_t(N)}, v.data());
}

py::array read_only(py::array a) {
    a.attr("flags").attr("writeable") = false;
    return a;
}

// ------------------------------------------------------------------ contexts

// handgraph.Context. `busy` is held by every call made with it and by memory_bytes:
// context::memory_bytes() reads the context's memory without waiting for a call running on it.
struct py_context {
    std::shared_ptr<hg::context> ctx;
    std::shared_ptr<std::mutex> busy = std::make_shared<std::mutex>();
};

// The contexts a Model lends to calls made without one (see the top of this file). A lease is
// taken without the GIL (a caller may wait for another call to end, and that call needs the GIL
// to return) and given back when the call ends, whichever thread made it.
class context_pool : public std::enable_shared_from_this<context_pool> {
public:
    context_pool(int threads, int max_contexts) : threads_(threads), max_(max_contexts) {
        idle_.push_back(std::make_unique<hg::context>(threads));  // checks `threads` (1..1024) at once
        created_ = 1;
    }

    class lease {
    public:
        lease(std::shared_ptr<context_pool> pool, std::unique_ptr<hg::context> ctx) : pool_(std::move(pool)), ctx_(std::move(ctx)) {}
        lease(lease&&) = default;
        ~lease() {
            if (ctx_) pool_->give_back(std::move(ctx_));
        }
        hg::context& context() { return *ctx_; }

    private:
        std::shared_ptr<context_pool> pool_;
        std::unique_ptr<hg::context> ctx_;
    };

    lease take() {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return !idle_.empty() || created_ < max_; });
        std::unique_ptr<hg::context> c;
        if (!idle_.empty()) {
            c = std::move(idle_.back());
            idle_.pop_back();
        } else {
            ++created_;
            lock.unlock();
            try {
                c = std::make_unique<hg::context>(threads_);
            } catch (...) {
                lock.lock();
                --created_;
                cv_.notify_one();
                throw;
            }
        }
        return lease(shared_from_this(), std::move(c));
    }

    int threads() const { return threads_; }
    int max_contexts() const { return max_; }
    int contexts() {
        std::lock_guard<std::mutex> lock(m_);
        return created_;
    }
    std::size_t idle_memory_bytes() {
        std::lock_guard<std::mutex> lock(m_);
        std::size_t n = 0;
        for (auto& c : idle_) n += c->memory_bytes();
        return n;
    }
    // Destroys the idle contexts (their threads and memory); calls make new ones as needed.
    void release() {
        std::vector<std::unique_ptr<hg::context>> gone;
        {
            std::lock_guard<std::mutex> lock(m_);
            gone.swap(idle_);
            created_ -= int(gone.size());
        }
        cv_.notify_all();
    }

private:
    void give_back(std::unique_ptr<hg::context> c) {
        {
            std::lock_guard<std::mutex> lock(m_);
            idle_.push_back(std::move(c));
        }
        cv_.notify_one();
    }

    const int threads_, max_;
    std::mutex m_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<hg::context>> idle_;
    int created_ = 0;
};

// The context of a call: the one given, or one lent by the pool (taken without the GIL).
class call_context {
public:
    call_context(const std::shared_ptr<context_pool>& pool, py::handle given) {
        if (!given.is_none()) {
            if (!py::isinstance<py_context>(given))
                throw hg::error("context: expected a handgraph.Context or None, got " + type_name_of(given));
            const py_context& c = given.cast<py_context&>();
            given_ = c.ctx;
            busy_ = c.busy;
            py::gil_scoped_release nogil;
            lock_ = std::unique_lock<std::mutex>(*busy_);
        } else {
            py::gil_scoped_release nogil;
            lease_.emplace(pool->take());
        }
    }
    hg::context& get() { return given_ ? *given_ : lease_->context(); }
    // Gives a lent context back early (the caller converts results with the GIL held).
    void done() {
        lease_.reset();
        if (lock_.owns_lock()) lock_.unlock();
    }

private:
    std::shared_ptr<hg::context> given_;
    std::shared_ptr<std::mutex> busy_;
    std::unique_lock<std::mutex> lock_;  // declared after busy_: unlocked before busy_ goes
    std::optional<context_pool::lease> lease_;
};

// ------------------------------------------------------------------ results

struct py_result {
    py::object detection = py::none();  // the PalmDetection it came from (Model.estimate_hands)
    std::string side, box_source, units, root, root_method;
    py::array box, uv, uv_image, pose_xyz, mesh_xyz, pose_uvd, mesh_uvd, root_xyz, camera, faces;
    bool camera_assumed = false;
    float scale_cm = 0;
};

struct py_model {
    hg::model model;
    std::shared_ptr<context_pool> pool;
    py::array faces_right, faces_left;  // read-only, shared by the results
};

py::array faces_array(const hg::model& m, hg::hand_side side) {
    const std::vector<std::int32_t>& f = m.faces(side);
    return read_only(new_array<std::int32_t>({py::ssize_t(f.size() / 3), 3}, f.data()));
}

py_result result_of(const py_model& pm, const hg::hand_result& r) {
    py_result o;
    o.side = hg::to_string(r.side);
    o.box_source = hg::to_string(r.box_from);
    o.units = "cm";
    o.root = r.root == hg::root_method::given ? "given" : "estimated";
    o.root_method = hg::to_string(r.root);
    o.box = vector_array(r.box);
    o.uv = rows_array(r.estimate.uv_px);
    o.uv_image = rows_array(r.uv_image);
    o.pose_xyz = rows_array(r.estimate.pose_cm);
    o.mesh_xyz = rows_array(r.estimate.mesh_cm);
    o.pose_uvd = rows_array(r.estimate.pose_uvd);
    o.mesh_uvd = rows_array(r.estimate.mesh_uvd);
    o.root_xyz = vector_array(r.estimate.pose_cm[0]);
    o.camera = vector_array(r.camera);
    o.camera_assumed = r.camera_assumed;
    o.scale_cm = r.scale_cm;
    o.faces = r.side == hg::hand_side::left ? pm.faces_left : pm.faces_right;
    return o;
}

std::string result_repr(const py_result& r) {
    auto f4 = [](const py::array& a) {
        auto v = a.unchecked<float, 1>();
        std::string s = "[";
        for (py::ssize_t i = 0; i < 4; ++i) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%s%.6g", i ? ", " : "", double(v(i)));
            s += buf;
        }
        return s + "]";
    };
    return "<handgraph.HandResult " + r.side + " hand, box " + f4(r.box) + " (" + r.box_source + "), camera " + f4(r.camera) +
           (r.camera_assumed ? " (assumed)" : " (given)") + ", root " + r.root_method + ", scale " + std::to_string(r.scale_cm) + " cm>";
}

// ------------------------------------------------------------------ the hand finder

struct py_detection {
    float score = 0;
    py::array palm_box, keypoints, region_center, hand_box;
    float region_side = 0, region_rotation = 0;
    int anchor = -1, merged = 1;
};

py_detection detection_of(const hg::palm_detection& d) {
    py_detection o;
    o.score = d.score;
    o.palm_box = vector_array(d.palm_box);
    o.keypoints = rows_array(d.keypoints);
    o.region_center = vector_array(d.region_center);
    o.region_side = d.region_side;
    o.region_rotation = d.region_rotation;
    o.hand_box = vector_array(d.hand_box);
    o.anchor = d.anchor;
    o.merged = d.merged;
    return o;
}

struct py_detector {
    hg::palm_detector detector;
    std::shared_ptr<context_pool> pool;
};

int max_hands_of(long n) {
    if (n < 1 || n > 2016) throw hg::error("max_hands: " + std::to_string(n) + " is not in 1..2016");
    return int(n);
}

int pool_size_of(py::handle max_contexts, int threads) {
    if (max_contexts.is_none()) {
        const int hw = int(std::max(1u, std::thread::hardware_concurrency()));
        return std::max(1, hw / std::max(1, threads));
    }
    if (!py::isinstance<py::int_>(max_contexts) || py::isinstance<py::bool_>(max_contexts))
        throw hg::error("max_contexts: expected None or a whole number, got " + repr_of(max_contexts));
    const long v = max_contexts.cast<long>();
    if (v < 1 || v > 4096) throw hg::error("max_contexts: " + std::to_string(v) + " is not in 1..4096");
    return int(v);
}

py::list find_hands(py_detector& self, py::handle image, long max_hands, py::handle context) {
    const image_arg img = image_of(image, "image");
    const int n = max_hands_of(max_hands);
    call_context ctx(self.pool, context);
    std::vector<hg::palm_detection> found;
    {
        py::gil_scoped_release nogil;
        found = self.detector.find_hands(ctx.get(), img.view, n);
    }
    ctx.done();
    py::list out;
    for (const auto& d : found) out.append(py::cast(detection_of(d)));
    return out;
}

// ------------------------------------------------------------------ estimates

// The checks model::estimate_hand makes on its options, for the batch path that calls
// model::estimate_batch instead (same messages).
void check_options(const hg::photo_options& o, const std::string& where) {
    if (!(o.scale_cm > 0)) throw hg::error(where + "scale (cm) must be a positive number, got " + std::to_string(o.scale_cm));
    if (o.camera && (!((*o.camera)[0] > 0) || !((*o.camera)[1] > 0)))
        throw hg::error(where + "camera: focal lengths must be positive, got fx " + std::to_string((*o.camera)[0]) + ", fy " +
                        std::to_string((*o.camera)[1]));
    if (o.crop_box) {
        const auto& b = *o.crop_box;
        if (!(b[2] > 0) || !(b[3] > 0))
            throw hg::error(where + "crop box [" + std::to_string(b[0]) + ", " + std::to_string(b[1]) + ", " + std::to_string(b[2]) + ", " +
                            std::to_string(b[3]) + "] has no area (width and height must be positive)");
        if (!o.camera) throw hg::error(where + "a crop box places the crop in a larger frame: give that frame's camera");
    }
}

hg::photo_options options_of(py::handle hand_box, py::handle crop_box, py::handle camera, py::handle root, py::handle scale,
                             const std::string& side, double margin, bool exact) {
    hg::photo_options o;
    o.hand_box = floats_of<4>(hand_box, "hand_box", "x, y, w, h in image pixels");
    o.crop_box = floats_of<4>(crop_box, "crop_box", "x, y, w, h of the crop in its frame, pixels");
    o.camera = floats_of<4>(camera, "camera", "fx, fy, u0, v0 in pixels");
    o.root_cm = floats_of<3>(root, "root", "x, y, z of the root joint in camera space, cm");
    if (auto s = float_of(scale, "scale")) o.scale_cm = *s;
    o.side = side_of(side);
    if (!std::isfinite(margin) || !(margin > 0) || margin > 100) throw hg::error("margin: " + std::to_string(margin) + " is not a factor in (0, 100]");
    o.margin = float(margin);
    o.exact = exact;
    return o;
}

py_result estimate(py_model& self, py::handle image, py::handle hand_box, py::handle crop_box, py::handle camera, py::handle root,
                   py::handle scale, const std::string& side, double margin, bool exact, py::handle context) {
    const image_arg img = image_of(image, "image");
    const hg::photo_options o = options_of(hand_box, crop_box, camera, root, scale, side, margin, exact);
    call_context ctx(self.pool, context);
    hg::hand_result r;
    {
        py::gil_scoped_release nogil;
        r = self.model.estimate_hand(ctx.get(), img.view, o);
    }
    ctx.done();
    return result_of(self, r);
}

py::list estimate_hands(py_model& self, py_detector& detector, py::handle image, py::handle camera, py::handle scale,
                        const std::string& side, double margin, bool exact, long max_hands, py::handle context) {
    const image_arg img = image_of(image, "image");
    const hg::photo_options o = options_of(py::none(), py::none(), camera, py::none(), scale, side, margin, exact);
    const int n = max_hands_of(max_hands);
    call_context ctx(self.pool, context);
    std::vector<hg::detected_hand> found;
    {
        py::gil_scoped_release nogil;
        found = hg::estimate_hands(self.model, detector.detector, ctx.get(), img.view, o, n);
    }
    ctx.done();
    py::list out;
    for (const auto& h : found) {
        py_result r = result_of(self, h.hand);
        r.detection = py::cast(detection_of(h.palm));
        out.append(py::cast(std::move(r)));
    }
    return out;
}

// One batch argument: None, one value for every image (shape (N_VALUES,)), or one per image
// (shape (n, N_VALUES)); scale: None, a number, or n numbers.
template <std::size_t K>
std::vector<std::optional<std::array<float, K>>> per_image(py::handle obj, std::size_t n, const std::string& what, const char* meaning) {
    std::vector<std::optional<std::array<float, K>>> out(n);
    if (obj.is_none()) return out;
    py::array a;
    try {
        a = py::module_::import("numpy").attr("asarray")(obj, "dtype"_a = "float64");
    } catch (py::error_already_set&) {
        throw hg::error(what + ": expected " + std::to_string(K) + " numbers (" + meaning + ") or one row of them per image, got " + repr_of(obj));
    }
    if (a.ndim() == 1) {
        auto v = floats_of<K>(a, what, meaning);
        std::fill(out.begin(), out.end(), v);
        return out;
    }
    if (a.ndim() != 2 || a.shape(0) != py::ssize_t(n) || a.shape(1) != py::ssize_t(K))
        throw hg::error(what + ": expected " + std::to_string(K) + " numbers (" + meaning + ") or an array of shape (" + std::to_string(n) +
                        ", " + std::to_string(K) + "), one row per image, got shape " + shape_text(a));
    for (std::size_t i = 0; i < n; ++i) out[i] = floats_of<K>(a[py::int_(i)], what + "[" + std::to_string(i) + "]", meaning);
    return out;
}

std::vector<float> scales_of(py::handle obj, std::size_t n) {
    std::vector<float> out(n, 5.0f);
    if (obj.is_none()) return out;
    py::array a;
    try {
        a = py::module_::import("numpy").attr("asarray")(obj, "dtype"_a = "float64");
    } catch (py::error_already_set&) {
        throw hg::error("scale: expected a number or one per image, got " + repr_of(obj));
    }
    if (a.ndim() == 0) {
        std::fill(out.begin(), out.end(), *float_of(obj, "scale"));
        return out;
    }
    if (a.ndim() != 1 || a.shape(0) != py::ssize_t(n))
        throw hg::error("scale: expected a number or " + std::to_string(n) + " numbers (one per image), got shape " + shape_text(a));
    for (std::size_t i = 0; i < n; ++i) out[i] = *float_of(a[py::int_(i)], "scale[" + std::to_string(i) + "]");
    return out;
}

py::list estimate_batch(py_model& self, py::handle images, py::handle crop_box, py::handle camera, py::handle root, py::handle scale,
                        bool exact, py::handle context) {
    std::vector<image_arg> imgs;
    if (py::isinstance<py::array>(images)) {
        py::array a = py::reinterpret_borrow<py::array>(images);
        if (a.ndim() != 4)
            throw hg::error("images: expected an N x 256 x 256 x 3 uint8 array or a list of 256 x 256 x 3 uint8 arrays, got an array of shape " +
                            shape_text(a));
        for (py::ssize_t i = 0; i < a.shape(0); ++i) imgs.push_back(image_of(a[py::int_(i)], "images[" + std::to_string(i) + "]"));
    } else if (py::isinstance<py::list>(images) || py::isinstance<py::tuple>(images)) {
        py::sequence s = py::reinterpret_borrow<py::sequence>(images);
        for (std::size_t i = 0; i < s.size(); ++i) imgs.push_back(image_of(s[i], "images[" + std::to_string(i) + "]"));
    } else {
        throw hg::error("images: expected an N x 256 x 256 x 3 uint8 array or a list of 256 x 256 x 3 uint8 arrays, got " + type_name_of(images));
    }
    const std::size_t n = imgs.size();
    for (std::size_t i = 0; i < n; ++i)
        if (imgs[i].view.width != hg::crop_size || imgs[i].view.height != hg::crop_size)
            throw hg::error("images[" + std::to_string(i) + "]: is " + std::to_string(imgs[i].view.width) + "x" + std::to_string(imgs[i].view.height) +
                            ", estimate_batch takes 256x256 crops (Model.estimate takes any size with a hand_box)");
    const auto boxes = per_image<4>(crop_box, n, "crop_box", "x, y, w, h of the crop in its frame, pixels");
    const auto cams = per_image<4>(camera, n, "camera", "fx, fy, u0, v0 in pixels");
    const auto roots = per_image<3>(root, n, "root", "x, y, z of the root joint in camera space, cm");
    const auto scales = scales_of(scale, n);
    std::vector<hg::photo_options> opts(n);
    bool protocol = n > 0;  // every image with crop box, camera and root: the evaluation protocol
    for (std::size_t i = 0; i < n; ++i) {
        opts[i].crop_box = boxes[i];
        opts[i].camera = cams[i];
        opts[i].root_cm = roots[i];
        opts[i].scale_cm = scales[i];
        opts[i].exact = exact;
        check_options(opts[i], "image " + std::to_string(i) + ": ");
        protocol = protocol && boxes[i] && cams[i] && roots[i];
    }
    std::vector<hg::hand_result> results(n);
    if (n > 0) {
        call_context ctx(self.pool, context);
        py::gil_scoped_release nogil;
        if (protocol) {
            // model::estimate_batch with crop_params (hand_eval's call), then what estimate_hand
            // adds around it for a right hand in a frame crop (pipeline.hpp).
            std::vector<hg::image_view> views;
            std::vector<hg::crop_params> params(n);
            for (std::size_t i = 0; i < n; ++i) {
                views.push_back(imgs[i].view);
                params[i].cam = *cams[i];
                params[i].bbox = *boxes[i];
                params[i].root_cm = *roots[i];
                params[i].scale_cm = scales[i];
            }
            hg::estimate_options eo;
            eo.exact = exact;
            std::vector<hg::hand_estimate> est = self.model.estimate_batch(ctx.get(), views, params, eo);
            for (std::size_t i = 0; i < n; ++i) {
                hg::hand_result& r = results[i];
                const hg::crop_params& p = params[i];
                r.side = hg::hand_side::right;
                r.box_from = hg::box_source::frame_crop;
                r.box = p.bbox;
                r.camera = p.cam;
                r.camera_assumed = false;
                r.scale_cm = p.scale_cm;
                r.root = hg::root_method::given;
                r.estimate = est[i];
                for (int j = 0; j < hg::num_joints; ++j) {
                    const hg::point3f& q = r.estimate.pose_uvd[std::size_t(j)];
                    r.uv_image[std::size_t(j)] = {float(double(q[0]) * p.bbox[2] + p.bbox[0]), float(double(q[1]) * p.bbox[3] + p.bbox[1])};
                }
            }
        } else {
            // Otherwise each crop as estimate() takes it, one after the other on the context.
            for (std::size_t i = 0; i < n; ++i) {
                try {
                    results[i] = self.model.estimate_hand(ctx.get(), imgs[i].view, opts[i]);
                } catch (const hg::error& e) {
                    throw hg::error("image " + std::to_string(i) + ": " + e.what());
                }
            }
        }
    }
    py::list out;
    for (const auto& r : results) out.append(py::cast(result_of(self, r)));
    return out;
}

py_model make_model(hg::model m, int threads, py::handle max_contexts) {
    const int cap = pool_size_of(max_contexts, threads);
    py_model pm{std::move(m), std::make_shared<context_pool>(threads, cap), {}, {}};
    pm.faces_right = faces_array(pm.model, hg::hand_side::right);
    pm.faces_left = faces_array(pm.model, hg::hand_side::left);
    return pm;
}

// ------------------------------------------------------------------ docstrings

const char* module_doc = R"doc(handgraph: 3D hand shape and pose from one RGB image (Ge et al., CVPR 2019) on the CPU.

    import cv2, handgraph
    model = handgraph.Model("weights/hand_graph_stb.safetensors")
    image = cv2.imread("photo.jpg")                     # H x W x 3 uint8, B, G, R
    r = model.estimate(image, hand_box=(412, 220, 180, 210))
    r.uv_image, r.pose_xyz, r.mesh_xyz, model.faces     # (21, 2) px, (21, 3) cm, (954, 3) cm, (1892, 3)

The evaluation protocol (a 256 x 256 crop cut from a frame, with its camera, root joint and
scale): model.estimate(crop, crop_box=bbox, camera=cam, root=root, scale=s), or many at once
with model.estimate_batch. Errors raise handgraph.Error (a RuntimeError) with the engine's
message. Every engine call releases the GIL; see Model and Context for threads.)doc";

const char* model_doc = R"doc(A hand network: weights prepared once, immutable, shared by any number of threads.

Model(path, threads=1, max_contexts=None, kernels="")

    path          a weight file made by tools/convert_weights.py (.safetensors)
    threads       threads of each call (1..1024; the calling thread is one of them)
    max_contexts  how many calls may run at once without an explicit context (default:
                  the CPU's hardware threads // threads, at least 1); see below
    kernels       cap the instruction set ("avx512bw", "fma3+avx2", "sse2"; "" = the best)

Threads and memory belong to contexts (handgraph.Context). A call given context=ctx runs
on ctx (one call at a time per context: calls on one context wait for each other). A call
without one borrows a context from the model's own pool for its duration: an idle one, or
a new one (threads threads, ~23 MiB of scratch once used) while fewer than max_contexts
exist; otherwise it waits for one to be given back. So several Python threads calling one
model run in parallel (the GIL is released while the engine computes), up to max_contexts
at a time, and the pool never holds more contexts than the most calls that ran at once.
Nothing is kept per thread. release_memory() frees the idle contexts.

Loading raises handgraph.Error for a missing, damaged or foreign file.)doc";

const char* estimate_doc = R"doc(estimate(image, hand_box=None, crop_box=None, camera=None, root=None, scale=None,
         side="right", margin=1.0, exact=False, context=None) -> HandResult

One hand in an image of any size.

    image     H x W x 3 numpy uint8 array, B, G, R (as cv2.imread gives it); read in place.
              Rows may be a slice of a larger array (img[y0:y1, x0:x1] is fine); other
              layouts (a step or reversal in x or in the channels, a flip in y, Fortran
              order) and other dtypes or shapes are refused: nothing is converted silently.
    hand_box  (x, y, w, h), pixels: where the hand is. The crop is the square centred on
              it of side max(w, h) * margin (whole pixels), zero-padded where it leaves the
              image, resized to 256 x 256 (cv2.resize-exact bilinear); that square is
              result.box. hand_demo's --hand-box.
    crop_box  (x, y, w, h): the 256 x 256 image is itself a crop cut from a larger frame at
              this box (the evaluation protocols' bbox); camera is then that frame's and
              must be given. hand_demo's --bbox.
              Without either, the image must be 256 x 256 and is the crop.
    camera    (fx, fy, u0, v0), pixels. Default: assumed, f = max(W, H), principal point
              at ((W - 1) / 2, (H - 1) / 2); result.camera_assumed says so.
    root      (x, y, z) of the root joint (wrist), camera space, cm. Default: solved in
              closed form from the 2D joints, the relative depths and the scale.
    scale     the middle finger's first bone (joints 9-10), cm; default 5.
    side      "right" or "left" (a left hand's crop is mirrored for the network and every
              output mirrored back).
    margin    factor on the hand box's side (default 1).
    exact     direct convolution everywhere instead of Winograd (slower).
    context   a handgraph.Context to run on; default: one of the model's pool.

With crop_box, camera, root and scale all given this is the evaluation protocol, equal to
the C++ model::estimate with crop_params bit for bit.)doc";

const char* estimate_batch_doc = R"doc(estimate_batch(images, crop_box=None, camera=None, root=None, scale=None,
               exact=False, context=None) -> list of HandResult

Several 256 x 256 crops of right hands: an N x 256 x 256 x 3 uint8 array or a list of
256 x 256 x 3 uint8 arrays (B, G, R). crop_box, camera: (4,) for every image or (N, 4),
one row per image; root: (3,) or (N, 3); scale: a number or N numbers. Each result equals
estimate(images[i], crop_box=..., camera=..., root=..., scale=...) with that image's values.
With crop_box, camera and root given for every image (the evaluation protocol) the crops
run side by side on the context's threads (C++ model::estimate_batch); otherwise one after
the other, each on all of them. For other sizes, hand boxes or left hands call estimate().)doc";

const char* result_doc = R"doc(One hand's result (Model.estimate, Model.estimate_batch). Arrays are numpy, joints in
the order wrist, thumb 1-4, index 1-4, middle 1-4, ring 1-4, little 1-4.

    uv             (21, 2) int32    2D joints in crop pixels (heat-map maxima, 0..255)
    uv_image       (21, 2) float32  2D joints in image pixels
    pose_xyz       (21, 3) float32  3D joints, camera space, cm (units)
    mesh_xyz       (954, 3) float32 mesh vertices, camera space, cm
    pose_uvd       (21, 3) float32  normalised: u / 256, v / 256, depth relative to the root
                                    in units of the scale (what the network gives)
    mesh_uvd       (954, 3) float32 the same for the mesh
    faces          (M, 3) int32     the mesh's triangles for this side (read-only; 1892 for
                                    the release's template), normals outward
    units          "cm"
    root           "given" or "estimated"; root_method: how (hand_demo's root_method)
    root_xyz       (3,) float32     the root joint used, cm
    box            (4,) float32     the crop box in image pixels (x, y, w, h)
    box_source     "given" (hand_box), "whole image", "frame crop" (crop_box), "detected"
    detection      the PalmDetection the hand box came from (estimate_hands), else None
    camera         (4,) float32     fx, fy, u0, v0 used; camera_assumed: True unless given
    side           "right" or "left"
    scale_cm       the scale used, cm)doc";

const char* detector_doc = R"doc(The hand finder: MediaPipe's palm detector (Apache-2.0) run by handgraph's kernels.

PalmDetector(path, threads=1, max_contexts=None, kernels="")

    path   a converted palm detector (tools/convert_palm.py; tools/get_palm_detector.sh
           fetches and converts palm_detection_full and _lite into weights/)

find_hands(image, max_hands=2, context=None) -> list of PalmDetection, best first: palms
with a score >= 0.5 after MediaPipe's weighted non-maximum suppression; each .hand_box is
the square Model.estimate takes as hand_box (Model.estimate_hands does both). The detector
does not tell left hands from right. Threads and contexts as for Model (its own pool).)doc";

const char* detection_doc = R"doc(One palm found (PalmDetector.find_hands), image pixels (x from the left edge, y from the top).

    score            the sigmoid score (MediaPipe's threshold 0.5)
    palm_box         (4,) float32   x, y, w, h of the palm
    keypoints        (7, 2) float32 wrist, index / middle / ring / little finger MCP,
                                    thumb base, thumb MCP
    region_center    (2,) float32   MediaPipe's hand region: a square of side region_side,
    region_side, region_rotation    rotated by region_rotation (radians, clockwise)
    hand_box         (4,) float32   the axis-aligned square of that side about that centre:
                                    what Model.estimate gets as hand_box
    anchor, merged   the best anchor (0..2015) and how many raw detections were merged)doc";

const char* estimate_hands_doc = R"doc(estimate_hands(detector, image, camera=None, scale=None, side="right", margin=1.0,
               exact=False, max_hands=2, context=None) -> list of HandResult

Finds the hands in `image` with `detector` (a PalmDetector) and estimates each as
estimate(image, hand_box=detection.hand_box, ...) does: box_source "detected", and
result.detection the PalmDetection. camera, scale, side (for every hand: the detector does
not tell left from right), margin and exact as for estimate. No hand found: [].)doc";

const char* context_doc = R"doc(Context(threads=1): threads and scratch memory for the calls made with it.

A context runs one call at a time (calls on one context wait for each other); give each
Python thread its own to run them in parallel, or let the Model's pool lend them (Model).
The helper threads start on the first call that uses them; the memory (~23 MiB for the
hand network) stays for the next call until release_memory() or the context's end.)doc";

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = module_doc;
    // The docstrings give the signatures in Python's terms (pybind11's name py::handle types).
    py::options options;
    options.disable_function_signatures();
    py::register_exception<hg::error>(m, "Error", PyExc_RuntimeError)
        .attr("__doc__") = "An error of handgraph (a RuntimeError): a file, tensor, argument or image it refuses; str() is the message.";
    m.attr("num_joints") = hg::num_joints;
    m.attr("num_vertices") = hg::num_vertices;
    m.attr("crop_size") = hg::crop_size;

    m.def(
        "available_kernels",
        [] {
            py::list out;
            for (const std::string& k : hg::available_kernels()) out.append(k);
            return out;
        },
          "available_kernels() -> list of str\n\nNames of the instruction sets compiled in that this CPU runs, best first (Model's kernels=).");

    m.def(
        "prepare_weights",
        [](py::handle weights, py::handle out, const std::string& kernels) {
            const std::string w = path_of(weights, "prepare_weights"), o = path_of(out, "prepare_weights");
            hg::load_options lo;
            lo.kernels = kernels;
            py::gil_scoped_release nogil;
            hg::prepare_weights(w, o, lo);
        },
        "weights"_a, "out"_a, "kernels"_a = "",
        "prepare_weights(weights, out, kernels=\"\") -> None\n\n"
        "Writes `out`, a prepared weight file made from the converted weight file `weights` (as the\n"
        "hand_prepare binary does): the layers' weights packed as the kernels use them. Model(out)\n"
        "maps it instead of reading and packing the weights (several times faster), with the same\n"
        "results bit for bit. Keep it in place while a Model uses it (replace it only by writing a new\n"
        "file). A CPU without FMA (kernels \"sse2\") needs a file prepared with those kernels.");

    m.def(
        "read_image",
        [](py::handle path) {
            const std::string p = path_of(path, "read_image");
            hg::image img;
            {
                py::gil_scoped_release nogil;
                img = hg::load_image(p);
            }
            return new_array<std::uint8_t>({img.height, img.width, 3}, img.pixels.data());
        },
        "path"_a,
        "read_image(path) -> H x W x 3 uint8 array, B, G, R\n\n"
        "An image file decoded as hand_demo and hand_eval decode it (stb_image: PNG, JPEG, BMP, ...,\n"
        "with their pixel budget). cv2.imread gives the same layout; its JPEG decoder (libjpeg)\n"
        "may differ from stb_image's by a few grey levels.");

    py::class_<py_context>(m, "Context", context_doc)
        .def(py::init([](int threads) { return py_context{std::make_shared<hg::context>(threads)}; }), "threads"_a = 1,
             "Context(threads=1)\n\nthreads: 1..1024 (the calling thread is one of them); others raise handgraph.Error.")
        .def_property_readonly("threads", [](const py_context& c) { return c.ctx->threads(); }, "Threads of each call (1..1024).")
        .def_property_readonly(
            "memory_bytes",
            [](const py_context& c) {
                py::gil_scoped_release nogil;
                std::lock_guard<std::mutex> lock(*c.busy);
                return c.ctx->memory_bytes();
            },
            "Scratch memory held now, bytes (waits for a call running on it).")
        .def(
            "release_memory",
            [](py_context& c) {
                py::gil_scoped_release nogil;
                std::lock_guard<std::mutex> lock(*c.busy);
                c.ctx->release_memory();
            },
            "release_memory()\n\nFrees the scratch memory kept between calls (waits for a call running on it).")
        .def("__repr__", [](const py_context& c) { return "<handgraph.Context threads=" + std::to_string(c.ctx->threads()) + ">"; });

    py::class_<py_result>(m, "HandResult", result_doc)
        .def_readonly("side", &py_result::side)
        .def_readonly("box", &py_result::box)
        .def_readonly("box_source", &py_result::box_source)
        .def_readonly("uv", &py_result::uv)
        .def_readonly("uv_image", &py_result::uv_image)
        .def_readonly("pose_xyz", &py_result::pose_xyz)
        .def_readonly("mesh_xyz", &py_result::mesh_xyz)
        .def_readonly("pose_uvd", &py_result::pose_uvd)
        .def_readonly("mesh_uvd", &py_result::mesh_uvd)
        .def_readonly("faces", &py_result::faces)
        .def_readonly("units", &py_result::units)
        .def_readonly("root", &py_result::root)
        .def_readonly("root_method", &py_result::root_method)
        .def_readonly("root_xyz", &py_result::root_xyz)
        .def_readonly("camera", &py_result::camera)
        .def_readonly("camera_assumed", &py_result::camera_assumed)
        .def_readonly("scale_cm", &py_result::scale_cm)
        .def_readonly("detection", &py_result::detection)
        .def("__repr__", &result_repr);

    py::class_<py_detection>(m, "PalmDetection", detection_doc)
        .def_readonly("score", &py_detection::score)
        .def_readonly("palm_box", &py_detection::palm_box)
        .def_readonly("keypoints", &py_detection::keypoints)
        .def_readonly("region_center", &py_detection::region_center)
        .def_readonly("region_side", &py_detection::region_side)
        .def_readonly("region_rotation", &py_detection::region_rotation)
        .def_readonly("hand_box", &py_detection::hand_box)
        .def_readonly("anchor", &py_detection::anchor)
        .def_readonly("merged", &py_detection::merged)
        .def("__repr__", [](const py_detection& d) {
            auto b = d.hand_box.unchecked<float, 1>();
            char buf[160];
            std::snprintf(buf, sizeof buf, "<handgraph.PalmDetection score %.3f, hand_box [%.6g, %.6g, %.6g, %.6g]>", double(d.score),
                          double(b(0)), double(b(1)), double(b(2)), double(b(3)));
            return std::string(buf);
        });

    py::class_<py_detector>(m, "PalmDetector", detector_doc)
        .def(py::init([](py::handle path, int threads, py::handle max_contexts, const std::string& kernels) {
                 const std::string p = path_of(path, "PalmDetector");
                 const int cap = pool_size_of(max_contexts, threads);
                 hg::load_options lo;
                 lo.kernels = kernels;
                 std::optional<hg::palm_detector> loaded;
                 {
                     py::gil_scoped_release nogil;
                     loaded.emplace(hg::palm_detector::load(p, lo));
                 }
                 return py_detector{std::move(*loaded), std::make_shared<context_pool>(threads, cap)};
             }),
             "path"_a, "threads"_a = 1, "max_contexts"_a = py::none(), "kernels"_a = "",
             "PalmDetector(path, threads=1, max_contexts=None, kernels=\"\")\n\nLoads, checks and prepares a converted palm detector.")
        .def("find_hands", &find_hands, "image"_a, "max_hands"_a = 2, "context"_a = py::none(),
             "find_hands(image, max_hands=2, context=None) -> list of PalmDetection\n\n"
             "The hands in `image` (H x W x 3 uint8, B, G, R, any size; as Model.estimate takes it), best first, at most\n"
             "max_hands (1..2016).")
        .def_property_readonly(
            "model_name", [](const py_detector& d) { return d.detector.model_name(); },
            "\"palm_detection_full\", \"palm_detection_lite\" or \"unrecognised\".")
        .def_property_readonly(
            "source", [](const py_detector& d) { return d.detector.source(); }, "The file's path.")
        .def_property_readonly(
            "kernels", [](const py_detector& d) { return std::string(d.detector.kernels()); }, "The instruction set the kernels run with.")
        .def("__repr__", [](const py_detector& d) {
            return "<handgraph.PalmDetector " + d.detector.model_name() + " (" + d.detector.source() + "), kernels " + d.detector.kernels() + ">";
        });

    py::class_<py_model>(m, "Model", model_doc)
        .def(py::init([](py::handle path, int threads, py::handle max_contexts, const std::string& kernels) {
                 const std::string p = path_of(path, "Model");
                 hg::load_options lo;
                 lo.kernels = kernels;
                 std::optional<hg::model> loaded;
                 {
                     py::gil_scoped_release nogil;
                     loaded.emplace(hg::model::load(p, lo));
                 }
                 return make_model(std::move(*loaded), threads, max_contexts);
             }),
             "path"_a, "threads"_a = 1, "max_contexts"_a = py::none(), "kernels"_a = "",
             "Model(path, threads=1, max_contexts=None, kernels=\"\")\n\nLoads, checks and prepares a weight file (see help(handgraph.Model)).")
        .def_static(
            "random",
            [](std::uint64_t seed, py::handle template_path, int threads, py::handle max_contexts, const std::string& kernels) {
                const std::string t = template_path.is_none() ? std::string() : path_of(template_path, "template");
                hg::load_options lo;
                lo.kernels = kernels;
                std::optional<hg::model> made;
                {
                    py::gil_scoped_release nogil;
                    std::string desc;
                    hg::template_mesh mesh = hg::demo_template(t, &desc);
                    made.emplace(hg::random_model(seed, mesh, lo));
                }
                return make_model(std::move(*made), threads, max_contexts);
            },
            "seed"_a, "template"_a = py::none(), "threads"_a = 1, "max_contexts"_a = py::none(), "kernels"_a = "",
            "random(seed, template=None, threads=1, max_contexts=None, kernels=\"\") -> Model\n\n"
            "The embedded default: deterministic random weights of the real shapes (outputs\n"
            "meaningless, cost real), as hand_demo runs without --weights (seed 1). The template\n"
            "mesh: `template` (an OBJ path), else the release's 0214_lowP_vn_g.0001.obj in\n"
            "$HANDGRAPH_SHARED_DATA or ../shared/data/hand-graph-cnn, else the synthetic template.")
        .def("estimate", &estimate, "image"_a, "hand_box"_a = py::none(), "crop_box"_a = py::none(), "camera"_a = py::none(),
             "root"_a = py::none(), "scale"_a = py::none(), "side"_a = "right", "margin"_a = 1.0, "exact"_a = false,
             "context"_a = py::none(), estimate_doc)
        .def("estimate_hands", &estimate_hands, "detector"_a, "image"_a, "camera"_a = py::none(), "scale"_a = py::none(),
             "side"_a = "right", "margin"_a = 1.0, "exact"_a = false, "max_hands"_a = 2, "context"_a = py::none(), estimate_hands_doc)
        .def("estimate_batch", &estimate_batch, "images"_a, "crop_box"_a = py::none(), "camera"_a = py::none(), "root"_a = py::none(),
             "scale"_a = py::none(), "exact"_a = false, "context"_a = py::none(), estimate_batch_doc)
        .def_property_readonly(
            "faces", [](const py_model& pm) { return pm.faces_right; },
            "(M, 3) int32, read-only: the mesh's triangles (1892 for the release's template), normals outward.")
        .def(
            "faces_for", [](const py_model& pm, const std::string& side) { return side_of(side) == hg::hand_side::left ? pm.faces_left : pm.faces_right; },
            "side"_a, "faces_for(side) -> (M, 3) int32\n\nThe triangles for \"right\" (= faces) or \"left\" (each reversed).")
        .def_property_readonly(
            "source", [](const py_model& pm) { return pm.model.source(); }, "The weight file's path, or a description of the random weights.")
        .def_property_readonly(
            "kernels", [](const py_model& pm) { return std::string(pm.model.kernels()); }, "The instruction set the kernels run with.")
        .def_property_readonly(
            "weight_bytes", [](const py_model& pm) { return pm.model.weight_bytes(); }, "Bytes of prepared weights.")
        .def_property_readonly(
            "threads", [](const py_model& pm) { return pm.pool->threads(); }, "Threads of each call on the model's own contexts.")
        .def_property_readonly(
            "max_contexts", [](const py_model& pm) { return pm.pool->max_contexts(); }, "Calls that may run at once without an explicit context.")
        .def_property_readonly(
            "contexts", [](const py_model& pm) { return pm.pool->contexts(); }, "Contexts the model's pool holds now (idle or lent).")
        .def_property_readonly(
            "memory_bytes", [](const py_model& pm) { return pm.pool->idle_memory_bytes(); },
            "Scratch memory held by the pool's idle contexts, bytes.")
        .def(
            "release_memory",
            [](py_model& pm) {
                py::gil_scoped_release nogil;
                pm.pool->release();
            },
            "release_memory()\n\nDestroys the pool's idle contexts (threads and memory); calls make new ones as needed.")
        .def("__repr__", [](const py_model& pm) {
            return "<handgraph.Model " + pm.model.source() + ", kernels " + pm.model.kernels() + ", threads " + std::to_string(pm.pool->threads()) +
                   ", max_contexts " + std::to_string(pm.pool->max_contexts()) + ">";
        });
}

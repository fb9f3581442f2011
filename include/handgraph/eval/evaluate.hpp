// handgraph/eval/evaluate.hpp: the evaluation loop of examples/hand_eval as a library,
// and the files it writes.
//
//   handgraph::real_world_testset ds("data/real_world_testset");
//   auto model = handgraph::model::load("weights/stb.safetensors");
//   handgraph::context ctx(2);
//   handgraph::evaluation_options o;  o.limit = 20;
//   handgraph::evaluation_run run = handgraph::run_evaluation(ds, model, ctx, o);
//   handgraph::pose_metrics m = handgraph::evaluate_run(run);
//
// - run_evaluation: frames 0..N-1 in order, in chunks of `batch` crops through
//   model::estimate_batch with the caller's context (whose threads also read the chunk's
//   images side by side); the estimates do not depend on threads or batch. With a
//   checkpoint path, the estimates done so far are written there (atomically) after every
//   chunk, and `resume` continues from it: a run killed at any point and resumed gives
//   the same estimates as one that was never interrupted.
// - Outputs (write_evaluation_outputs): pose_estimations.mat (image_ids, image_paths,
//   gt_pose_xyz, est_pose_xyz: N x 21 x 3, cm; est_uv: N x 21 x 2, crop pixels),
//   summary.json, per_frame.csv, pck.png, and with vis > 0, vis/<frame>.png (crop with the 2D skeleton | crop with the predicted
//   mesh, shaded) and vis/<frame>.obj. Every file is written to a temporary name and
//   renamed; summary.json comes last.
// The pictures come from eval/font.hpp, eval/pck_image.hpp, eval/mesh_render.hpp and
// eval/render.hpp; the checkpoint format and run fingerprint from eval/checkpoint.hpp.
//
// Depends on handgraph.hpp, context.hpp (the context's worker pool), io.hpp, json.hpp, mat.hpp, image.hpp, eval/datasets.hpp,
// eval/metrics.hpp, eval/checkpoint.hpp and the picture headers above.
#pragma once
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "../error.hpp"
#include "../image.hpp"
#include "../io.hpp"
#include "../json.hpp"
#include "../mat.hpp"
#include "../context.hpp"
#include "../handgraph.hpp"
#include "checkpoint.hpp"
#include "datasets.hpp"
#include "font.hpp"
#include "mesh_render.hpp"
#include "metrics.hpp"
#include "pck_image.hpp"
#include "pose.hpp"
#include "render.hpp"

namespace handgraph {

// ---------------------------------------------------------------- the evaluation loop

struct evaluation_options {
    std::size_t limit = 0;  // first `limit` frames; 0: all
    int batch = 0;          // crops per estimate_batch call; 0: 2 x the context's threads
    std::size_t vis = 0;    // keep the mesh of the first `vis` frames (for the overlays)
    // false: the release's protocol, the ground-truth root joint given. true: the root is
    // solved from the estimate (root.hpp) with the ground-truth camera and scale only.
    bool estimate_root = false;
    // One shard of a run spread over several processes: the frames k with
    // k % shard_count == shard_index (merge_shards joins the shards' outputs).
    std::size_t shard_index = 0, shard_count = 1;
    // Checkpoint file (empty: none), written after every chunk; with resume, a checkpoint
    // found there is continued. `fingerprint` identifies the run (evaluation_fingerprint):
    // a checkpoint of another run is refused.
    std::filesystem::path checkpoint;
    bool resume = false;
    std::string fingerprint;
    // Called after every chunk: frames done (resumed ones included), frames in the run.
    std::function<void(std::size_t done, std::size_t total)> progress;
};

struct evaluation_run {
    std::string dataset;                  // dataset::name()
    std::size_t frames_in_dataset = 0;
    std::vector<sample> frames;           // labels of the run's frames (no images)
    std::vector<std::size_t> frame_index; // the data set's index of each (0..N-1; a shard's every N-th)
    std::size_t vis = 0;                  // frames with a data set index below this keep their mesh
    std::size_t shard_index = 0, shard_count = 1;
    std::vector<frame_estimate> estimates;
    std::size_t resumed = 0;              // frames taken from the checkpoint
    double wall_s = 0;                    // time this run spent on the frames it estimated
    int threads = 1, batch = 1;
    bool estimate_root = false;           // evaluation_options::estimate_root
    std::size_t root_fallbacks = 0;       // frames this run estimated whose root came from a fallback (not resumed ones)
};

// The pipeline's parameters for a frame: where its crop came from.
inline crop_params crop_params_of(const sample& s) {
    crop_params p;
    for (int k = 0; k < 4; ++k) p.cam[std::size_t(k)] = float(s.cam[std::size_t(k)]);
    for (int k = 0; k < 4; ++k) p.bbox[std::size_t(k)] = float(s.bbox[std::size_t(k)]);
    for (int k = 0; k < 3; ++k) p.root_cm[std::size_t(k)] = float(s.root_cm[std::size_t(k)]);
    p.scale_cm = float(s.scale_cm);
    return p;
}

inline pose21 estimated_pose(const frame_estimate& e) {
    pose21 p{};
    for (std::size_t j = 0; j < pose_joint_count; ++j)
        for (std::size_t k = 0; k < 3; ++k) p[j][k] = double(e.pose_xyz[j * 3 + k]);
    return p;
}

inline std::string ds_unknown_error(const dataset& ds, std::size_t frame) {
    return ds.name() + ", frame " + std::to_string(frame) + ": unknown error while reading it";
}

// Runs the model over frames 0..N-1 of ds with the context's threads (see the top of this file).
inline evaluation_run run_evaluation(const dataset& ds, const model& m, context& ctx, const evaluation_options& o) {
    evaluation_run run;
    run.dataset = ds.name();
    run.frames_in_dataset = ds.size();
    const std::size_t n = evaluation_frames(ds, o.limit);
    if (n == 0) throw error(ds.name() + ": no frames to evaluate");
    run.threads = ctx.threads();
    run.estimate_root = o.estimate_root;
    run.batch = o.batch > 0 ? o.batch : 2 * run.threads;
    if (o.shard_count < 1 || o.shard_index >= o.shard_count)
        throw error("shard " + std::to_string(o.shard_index) + "/" + std::to_string(o.shard_count) + ": K must be in 0..N-1");
    run.shard_index = o.shard_index;
    run.shard_count = o.shard_count;
    run.vis = std::min(o.vis, n);
    for (std::size_t k = o.shard_index; k < n; k += o.shard_count) run.frame_index.push_back(k);
    if (run.frame_index.empty()) throw error(ds.name() + ": shard " + std::to_string(o.shard_index) + "/" + std::to_string(o.shard_count) + " has no frames (" + std::to_string(n) + " frames)");
    for (std::size_t k : run.frame_index) run.frames.push_back(ds.load(k, false));
    const std::size_t total = run.frame_index.size();
    // The run's first `vis` positions are its frames with a data set index below vis.
    std::size_t vis = 0;
    while (vis < total && run.frame_index[vis] < run.vis) ++vis;

    evaluation_checkpoint ck;
    ck.fingerprint = o.fingerprint;
    ck.frames = total;
    ck.vis = vis;
    const std::string ck_where = "checkpoint '" + o.checkpoint.string() + "'";
    std::error_code ec;
    if (o.resume && !o.checkpoint.empty() && std::filesystem::exists(o.checkpoint, ec)) {
        std::ifstream in(o.checkpoint, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!in && !in.eof()) throw error(ck_where + ": cannot read");
        evaluation_checkpoint got = parse_checkpoint(bytes, ck_where);
        if (got.fingerprint != o.fingerprint || got.frames != total || got.vis != vis)
            throw error(ck_where + " belongs to another run (" + got.fingerprint + ", frames " + std::to_string(got.frames) +
                        ", vis " + std::to_string(got.vis) + "; this run: " + o.fingerprint +
                        "): delete it or run without --resume to start over");
        ck = std::move(got);
        run.resumed = ck.done.size();
    }
    run.estimates = ck.done;
    if (o.progress) o.progress(run.estimates.size(), total);

    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    for (std::size_t start = run.estimates.size(); start < total; start += std::size_t(run.batch)) {
        const std::size_t end = std::min(total, start + std::size_t(run.batch));
        // The chunk's images, read side by side on the context's threads (a frame's image is
        // decoded and cropped by one thread; which thread does not change the pixels).
        struct load_job {
            const dataset* ds;
            const std::size_t* index;  // data set index of each of the chunk's frames
            std::vector<sample> chunk;
            std::vector<std::string> errors;
        } job{&ds, run.frame_index.data() + start, std::vector<sample>(end - start), std::vector<std::string>(end - start)};
        ctx.state().pool().run(ctx.threads(), int(end - start),
                               [](void* c, int i, int) {
                                   load_job& j = *static_cast<load_job*>(c);
                                   try {
                                       j.chunk[std::size_t(i)] = j.ds->load(j.index[i], true);
                                   } catch (const std::exception& e) {
                                       j.errors[std::size_t(i)] = e.what();
                                   } catch (...) {
                                       j.errors[std::size_t(i)] = ds_unknown_error(*j.ds, j.index[i]);
                                   }
                               },
                               &job);
        for (const auto& e : job.errors)
            if (!e.empty()) throw error(e);
        const std::vector<sample>& chunk = job.chunk;
        std::vector<image_view> crops;
        std::vector<crop_params> params;
        for (std::size_t i = 0; i < chunk.size(); ++i) {
            const sample& s = chunk[i];
            if (s.crop.width != crop_size || s.crop.height != crop_size)
                throw error(ds.name() + ", frame " + std::to_string(run.frame_index[start + i]) + " (" + s.image_id + "): crop is not 256x256");
            crops.emplace_back(s.crop.pixels.data(), s.crop.width, s.crop.height, pixel_format::bgr);
            params.push_back(crop_params_of(s));
        }
        std::vector<hand_estimate> est;
        try {
            if (o.estimate_root) {
                // The estimates in the network's normalised form, then the root solved with the
                // ground-truth camera and scale (not its root) and the 3D computed from it.
                est = m.estimate_batch(ctx, crops);
                for (std::size_t i = 0; i < est.size(); ++i) {
                    root_method how = root_method::closed_form;
                    const crop_params p = solve_root(est[i], params[i].cam, params[i].bbox, params[i].scale_cm, &how);
                    if (how != root_method::closed_form) ++run.root_fallbacks;
                    to_camera_space(est[i], p);
                }
            } else {
                est = m.estimate_batch(ctx, crops, params);
            }
        } catch (const std::exception& e) {
            throw error(ds.name() + ", frames " + std::to_string(run.frame_index[start]) + ".." + std::to_string(run.frame_index[end - 1]) + ": " + e.what());
        }
        for (std::size_t i = 0; i < est.size(); ++i) {
            frame_estimate f;
            for (std::size_t j = 0; j < pose_joint_count; ++j) {
                for (std::size_t k = 0; k < 3; ++k) f.pose_xyz[j * 3 + k] = est[i].pose_cm[j][k];
                for (std::size_t k = 0; k < 2; ++k) f.uv[j * 2 + k] = est[i].uv_px[j][k];
            }
            if (start + i < vis)
                for (const point3f& v : est[i].mesh_cm) f.mesh_xyz.insert(f.mesh_xyz.end(), v.begin(), v.end());
            run.estimates.push_back(std::move(f));
        }
        if (!o.checkpoint.empty()) {
            ck.done = run.estimates;  // copies; the checkpoint is small (0.4 KB a frame)
            if (vis) ck.mesh_floats = run.estimates.front().mesh_xyz.size();
            write_file_atomic(o.checkpoint.string(), serialize_checkpoint(ck));
        }
        if (o.progress) o.progress(run.estimates.size(), total);
    }
    run.wall_s = std::chrono::duration<double>(clock::now() - t0).count();
    return run;
}

// The metrics of a run (eval/metrics.hpp), from the estimates as stored (float cm).
inline pose_metrics evaluate_run(const evaluation_run& run) {
    std::vector<pose21> est, gt;
    for (std::size_t i = 0; i < run.estimates.size(); ++i) {
        est.push_back(estimated_pose(run.estimates[i]));
        gt.push_back(run.frames[i].gt_pose_cm);
    }
    return evaluate_poses(est, gt);
}

// Per frame: mean over joints 1..20 of the error after moving joint 0 to the origin (mm).
inline double root_relative_frame_error_mm(const pose21& est_cm, const pose21& gt_cm) {
    double s = 0;
    for (std::size_t j = 1; j < pose_joint_count; ++j) {
        std::array<double, 3> a, b;
        for (int k = 0; k < 3; ++k) {
            a[std::size_t(k)] = est_cm[j][std::size_t(k)] - est_cm[0][std::size_t(k)];
            b[std::size_t(k)] = gt_cm[j][std::size_t(k)] - gt_cm[0][std::size_t(k)];
        }
        s += joint_error_mm(a, b);
    }
    return s / double(pose_joint_count - 1);
}

// ---------------------------------------------------------------- outputs

// Run-level facts for summary.json.
struct evaluation_info {
    std::string data, weights, kernels;
    double load_s = 0;  // model load
};

inline std::string summary_json(const evaluation_run& run, const pose_metrics& m, const evaluation_info& info) {
    namespace js = json;
    auto num = [](double v) { return js::number(v, 17); };
    const std::size_t computed = run.estimates.size() - run.resumed;
    std::string s = "{\n";
    s += "  \"dataset\": " + js::quote(run.dataset) + ",\n";
    s += "  \"data\": " + js::quote(info.data) + ",\n";
    s += "  \"weights\": " + js::quote(info.weights) + ",\n";
    s += "  \"frames\": " + std::to_string(m.frames) + ",\n";
    s += "  \"frames_in_dataset\": " + std::to_string(run.frames_in_dataset) + ",\n";
    s += "  \"units\": \"mm; poses in pose_estimations.mat are in cm\",\n";
    s += "  \"mean_error_mm\": " + num(m.mean_error_mm) + ",\n";
    s += "  \"root_relative_error_mm\": " + num(m.root_relative_error_mm) + ",\n";
    s += "  \"root\": " + js::quote(run.estimate_root ? "estimated" : "given") + ",\n";
    if (run.shard_count > 1) s += "  \"shard\": " + js::quote(std::to_string(run.shard_index) + "/" + std::to_string(run.shard_count)) + ",\n";
    if (run.estimate_root) {
        double sum = 0;
        for (std::size_t i = 0; i < run.estimates.size(); ++i) {
            double d2 = 0;
            for (std::size_t k = 0; k < 3; ++k) {
                const double d = double(run.estimates[i].pose_xyz[k]) - run.frames[i].gt_pose_cm[0][k];
                d2 += d * d;
            }
            sum += 10.0 * std::sqrt(d2);
        }
        s += "  \"root_error_mm\": " + num(run.estimates.empty() ? 0.0 : sum / double(run.estimates.size())) + ",\n";
    }
    s += "  \"joint_error_mm\": {";
    for (std::size_t j = 0; j < pose_joint_count; ++j)
        s += std::string(j ? ", " : "") + js::quote(joint_names()[j]) + ": " + num(m.joint_error_mm[j]);
    s += "},\n";
    s += "  \"pck_thresholds_mm\": [";
    for (std::size_t i = 0; i < m.pck.thresholds_mm.size(); ++i) s += (i ? ", " : "") + num(m.pck.thresholds_mm[i]);
    s += "],\n  \"pck\": [";
    for (std::size_t i = 0; i < m.pck.pck.size(); ++i) s += (i ? ", " : "") + num(m.pck.pck[i]);
    s += "],\n";
    s += "  \"auc_20_50\": " + num(m.pck.auc) + ",\n";
    s += "  \"wall_time_s\": " + js::number(run.wall_s, 6) + ",\n";
    s += "  \"images_per_s\": " + js::number(run.wall_s > 0 ? double(computed) / run.wall_s : 0.0, 6) + ",\n";
    s += "  \"frames_estimated\": " + std::to_string(computed) + ",\n";
    s += "  \"frames_resumed\": " + std::to_string(run.resumed) + ",\n";
    s += "  \"load_time_s\": " + js::number(info.load_s, 6) + ",\n";
    s += "  \"threads\": " + std::to_string(run.threads) + ",\n";
    s += "  \"batch\": " + std::to_string(run.batch) + ",\n";
    s += "  \"kernels\": " + js::quote(info.kernels) + "\n";
    s += "}\n";
    return s;
}

namespace detail {
inline std::string csv_field(const std::string& f) {
    if (f.find_first_of(",\"\n\r") == std::string::npos) return f;
    std::string q = "\"";
    for (char c : f) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}
}  // namespace detail

inline std::string per_frame_csv(const evaluation_run& run, const pose_metrics& m) {
    std::string s = "index,image_id,mean_error_mm,root_relative_error_mm\n";
    char b[64];
    for (std::size_t i = 0; i < run.estimates.size(); ++i) {
        double rel = root_relative_frame_error_mm(estimated_pose(run.estimates[i]), run.frames[i].gt_pose_cm);
        s += std::to_string(run.frame_index[i]) + "," + detail::csv_field(run.frames[i].image_id);
        std::snprintf(b, sizeof b, ",%.9g,%.9g\n", m.frame_error_mm[i], rel);
        s += b;
    }
    return s;
}

// pose_estimations.mat's variables: image_ids (1 x N int32, 0-based frame indices, as the
// release stores them), image_paths (N rows of char), gt_pose_xyz and est_pose_xyz
// (N x 21 x 3 double, cm; the estimates are the pipeline's float32 values), and est_uv
// (N x 21 x 2 int32: the 2D joints in crop pixels, 0..255).
inline std::vector<mat_array> pose_estimation_variables(const evaluation_run& run) {
    const std::size_t n = run.estimates.size();
    std::vector<std::int32_t> ids(n);
    std::vector<std::string> paths(n);
    std::vector<double> gt(n * pose_joint_count * 3), est(n * pose_joint_count * 3);
    std::vector<std::int32_t> uv(n * pose_joint_count * 2);
    for (std::size_t i = 0; i < n; ++i) {
        ids[i] = std::int32_t(run.frame_index[i]);
        paths[i] = run.frames[i].image_id;
        for (std::size_t j = 0; j < pose_joint_count; ++j)
            for (std::size_t k = 0; k < 3; ++k) {
                gt[(i * pose_joint_count + j) * 3 + k] = run.frames[i].gt_pose_cm[j][k];
                est[(i * pose_joint_count + j) * 3 + k] = double(run.estimates[i].pose_xyz[j * 3 + k]);
            }
        std::copy(run.estimates[i].uv.begin(), run.estimates[i].uv.end(), uv.begin() + std::ptrdiff_t(i * pose_joint_count * 2));
    }
    return {mat_array::from_row_major("image_ids", {1, n}, ids), mat_array::char_rows("image_paths", paths),
            mat_array::from_row_major("gt_pose_xyz", {n, pose_joint_count, 3}, gt),
            mat_array::from_row_major("est_pose_xyz", {n, pose_joint_count, 3}, est),
            mat_array::from_row_major("est_uv", {n, pose_joint_count, 2}, uv)};
}

// The overlay of one frame: left the crop with the ground-truth skeleton (thin, grey)
// and the estimated 2D joints; right the crop with the estimated mesh, shaded. 512 x 256.
inline image overlay_image(const sample& s, const frame_estimate& e, const std::vector<std::int32_t>& faces) {
    if (s.crop.width != crop_size || s.crop.height != crop_size) throw error("overlay_image: frame " + s.image_id + " has no 256x256 crop");
    image left = s.crop, right = s.crop;
    uv21 gt = project_to_crop(s.gt_pose_cm, s.cam, s.bbox, crop_size);
    for (const auto& bone : hand_bones())
        draw_line(left, gt[bone[0]][0], gt[bone[0]][1], gt[bone[1]][0], gt[bone[1]][1], bgr{200, 200, 200}, 1);
    uv21 uv{};
    for (std::size_t j = 0; j < pose_joint_count; ++j) uv[j] = {double(e.uv[2 * j]), double(e.uv[2 * j + 1])};
    draw_skeleton(left, uv, 2);
    render_mesh(right, e.mesh_xyz, faces, s.cam, s.bbox);
    image out(2 * crop_size, crop_size);
    for (int y = 0; y < crop_size; ++y) {
        std::memcpy(out.row(y), left.row(y), std::size_t(crop_size) * 3);
        std::memcpy(out.row(y) + std::size_t(crop_size) * 3, right.row(y), std::size_t(crop_size) * 3);
    }
    for (int y = 0; y < crop_size; ++y) detail::put_pixel(out, crop_size, y, bgr{255, 255, 255});
    draw_text(out, 5, 5, "2D joints (grey: truth)", bgr{0, 0, 0});
    draw_text(out, 4, 4, "2D joints (grey: truth)", bgr{255, 255, 255});
    draw_text(out, crop_size + 5, 5, "mesh", bgr{0, 0, 0});
    draw_text(out, crop_size + 4, 4, "mesh", bgr{255, 255, 255});
    return out;
}

// The picture files of a run's frame with data set index k (without extension).
inline std::string vis_stem(std::size_t k) {
    char b[32];
    std::snprintf(b, sizeof b, "vis/%05zu", k);
    return b;
}

// Names of the files write_evaluation_outputs writes into the output folder for a run whose
// frames are `frame_index` and pictures go to those below `vis`.
inline std::vector<std::string> evaluation_output_names(const std::vector<std::size_t>& frame_index, std::size_t vis) {
    std::vector<std::string> n = {"pose_estimations.mat", "per_frame.csv", "pck.png", "summary.json"};
    for (std::size_t k : frame_index)
        if (k < vis) {
            n.push_back(vis_stem(k) + ".png");
            n.push_back(vis_stem(k) + ".obj");
        }
    return n;
}
// The same for a whole run over frames 0..frames-1.
inline std::vector<std::string> evaluation_output_names(std::size_t vis) {
    std::vector<std::size_t> all(vis);
    for (std::size_t i = 0; i < vis; ++i) all[i] = i;
    return evaluation_output_names(all, vis);
}

// Writes every output of a run into `out` (which must exist); vis frames are reloaded
// from ds for their crops. Each file is written atomically; summary.json last.
inline void write_evaluation_outputs(const std::filesystem::path& out, const dataset& ds, const model& m, const evaluation_run& run,
                                     std::size_t vis, const evaluation_info& info) {
    pose_metrics metrics = evaluate_run(run);
    bool any = false;
    for (std::size_t i = 0; i < run.estimates.size(); ++i) {
        const std::size_t k = run.frame_index[i];
        if (k >= vis) continue;
        if (!any) std::filesystem::create_directories(out / "vis");
        any = true;
        const frame_estimate& e = run.estimates[i];
        if (e.mesh_xyz.empty()) throw error("write_evaluation_outputs: frame " + std::to_string(k) + " has no mesh");
        sample s = ds.load(k, true);
        write_png(out / (vis_stem(k) + ".png"), overlay_image(s, e, m.faces()));
        write_file_atomic((out / (vis_stem(k) + ".obj")).string(),
                          obj_text(e.mesh_xyz, m.faces(), "handgraph mesh, cm, camera space; " + run.dataset + " frame " + std::to_string(k) +
                                                              " (" + s.image_id + ")"));
    }
    write_mat(out / "pose_estimations.mat", pose_estimation_variables(run), "handgraph hand_eval pose estimations");
    write_file_atomic((out / "per_frame.csv").string(), per_frame_csv(run, metrics));
    char title[160];
    std::snprintf(title, sizeof title, "3D PCK: %s, %zu frames", run.dataset.c_str(), metrics.frames);
    write_png(out / "pck.png", pck_plot_image(metrics.pck, title));
    write_file_atomic((out / "summary.json").string(), summary_json(run, metrics, info));
}

// ---------------------------------------------------------------- shards

// A shard run writes, beside its outputs, shard.bin: its estimates in the checkpoint format
// (eval/checkpoint.hpp), under the fingerprint of the whole run followed by "; shard K/N".
constexpr const char* shard_record_name = "shard.bin";

inline std::string shard_fingerprint(const std::string& run_fingerprint, std::size_t k, std::size_t n) {
    return run_fingerprint + "; shard " + std::to_string(k) + "/" + std::to_string(n);
}

inline void write_shard_record(const std::filesystem::path& out, const evaluation_run& run, const std::string& fingerprint) {
    evaluation_checkpoint c;
    c.fingerprint = fingerprint;
    c.frames = run.estimates.size();
    while (c.vis < run.frame_index.size() && run.frame_index[c.vis] < run.vis) ++c.vis;
    c.mesh_floats = c.vis ? run.estimates.front().mesh_xyz.size() : 0;
    c.done = run.estimates;
    write_file_atomic((out / shard_record_name).string(), serialize_checkpoint(c));
}

// What the shards' summaries say about how they ran (for the merged summary.json).
struct shard_totals {
    double wall_s = 0, load_s = 0;
    std::size_t resumed = 0;
    int threads = 0, batch = 0;
    std::string kernels;
};

// Joins the outputs of shards 0..N-1 of one run (each folder holding shard.bin and
// summary.json) into the run one process would have made over frames 0..n-1 of ds:
// `run_fingerprint` is that run's (evaluation_fingerprint with the same data set, limit,
// vis, weights and root mode), which every shard must carry. Refused, naming the folder:
// a missing or damaged record, another run's, a shard given twice, missing shards.
inline evaluation_run merge_shards(const dataset& ds, const std::vector<std::filesystem::path>& dirs, const std::string& run_fingerprint,
                                   std::size_t limit, std::size_t vis, bool estimate_root, shard_totals* totals) {
    const std::size_t n = evaluation_frames(ds, limit);
    if (dirs.empty()) throw error("merge: no shard folders given");
    std::size_t count = 0;
    std::vector<evaluation_checkpoint> shards;
    std::vector<bool> seen;
    shard_totals t;
    for (const auto& d : dirs) {
        const std::filesystem::path rec = d / shard_record_name;
        const std::string where = "shard record '" + rec.string() + "'";
        std::ifstream in(rec, std::ios::binary);
        if (!in) throw error(where + " not found (was the folder written by hand_eval --shard?)");
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        evaluation_checkpoint c = parse_checkpoint(bytes, where);
        const std::string prefix = run_fingerprint + "; shard ";
        if (c.fingerprint.compare(0, prefix.size(), prefix) != 0)
            throw error(where + " belongs to another run (" + c.fingerprint + "; this merge: " + run_fingerprint + ")");
        std::size_t k = 0, of = 0;
        char slash = 0;
        std::istringstream kn(c.fingerprint.substr(prefix.size()));
        if (!(kn >> k >> slash >> of) || slash != '/' || of < 2 || k >= of) throw error(where + ": no shard number in its fingerprint");
        if (count == 0) {
            count = of;
            shards.resize(of);
            seen.assign(of, false);
        } else if (of != count) {
            throw error(where + " is shard " + std::to_string(k) + "/" + std::to_string(of) + ", the others are of " + std::to_string(count));
        }
        if (seen[k]) throw error(where + ": shard " + std::to_string(k) + "/" + std::to_string(of) + " is given twice");
        std::size_t expect = 0;
        for (std::size_t f = k; f < n; f += count) ++expect;
        if (c.frames != expect || c.done.size() != expect)
            throw error(where + ": " + std::to_string(c.done.size()) + " frames, shard " + std::to_string(k) + "/" + std::to_string(of) + " of " +
                        std::to_string(n) + " frames has " + std::to_string(expect) + " (an unfinished shard?)");
        seen[k] = true;
        shards[k] = std::move(c);
        // how it ran
        std::ifstream sj(d / "summary.json", std::ios::binary);
        if (!sj) throw error("shard folder '" + d.string() + "': summary.json not found");
        const std::string text((std::istreambuf_iterator<char>(sj)), std::istreambuf_iterator<char>());
        const json::value v = json::parse(text, (d / "summary.json").string());
        auto number = [&](const char* key) {
            const json::value* x = v.find(key);
            if (!x || !x->is_number()) throw error((d / "summary.json").string() + ": no number \"" + key + "\"");
            return x->num;
        };
        t.wall_s += number("wall_time_s");
        t.load_s += number("load_time_s");
        t.resumed += std::size_t(number("frames_resumed"));
        const int th = int(number("threads")), ba = int(number("batch"));
        const json::value* ke = v.find("kernels");
        const std::string kernels = ke && ke->is_string() ? ke->str : "";
        if (t.threads == 0) t.threads = th, t.batch = ba, t.kernels = kernels;
        if (th != t.threads) t.threads = -1;  // they differ: the merged summary says 0
        if (ba != t.batch) t.batch = -1;
        if (kernels != t.kernels) t.kernels = "mixed";
    }
    for (std::size_t k = 0; k < count; ++k)
        if (!seen[k]) throw error("merge: shard " + std::to_string(k) + "/" + std::to_string(count) + " is missing");
    evaluation_run run;
    run.dataset = ds.name();
    run.frames_in_dataset = ds.size();
    run.estimate_root = estimate_root;
    run.vis = std::min(vis, n);
    run.resumed = t.resumed;
    run.wall_s = t.wall_s;
    run.threads = t.threads < 0 ? 0 : t.threads;
    run.batch = t.batch < 0 ? 0 : t.batch;
    for (std::size_t f = 0; f < n; ++f) {
        run.frame_index.push_back(f);
        run.frames.push_back(ds.load(f, false));
        run.estimates.push_back(shards[f % count].done[f / count]);
        if (f < run.vis && run.estimates.back().mesh_xyz.empty()) throw error("merge: frame " + std::to_string(f) + " has no mesh (were the shards run with the same --vis?)");
    }
    if (totals) *totals = t;
    return run;
}

// Removes what an interrupted earlier run may have left in `out`: temporary files of our
// outputs (<name>.tmp*) and of the checkpoint.
inline void remove_stale_temporaries(const std::filesystem::path& out, const std::vector<std::string>& names) {
    std::error_code ec;
    for (const auto& dir : {out, out / "vis"}) {
        if (!std::filesystem::is_directory(dir, ec)) continue;
        std::vector<std::filesystem::path> doomed;
        for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
            std::string f = entry.path().filename().string();
            for (const auto& n : names) {
                std::string base = std::filesystem::path(n).filename().string() + ".tmp";
                if (f.size() > base.size() && f.compare(0, base.size(), base) == 0 && entry.is_regular_file(ec)) doomed.push_back(entry.path());
            }
        }
        for (const auto& p : doomed) std::filesystem::remove(p, ec);
    }
}

}  // namespace handgraph


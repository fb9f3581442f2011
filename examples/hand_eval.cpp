// hand_eval: evaluates a model on STB or the release's real-world test set (spec section 5)
// and writes the estimates, the metrics and pictures.
//
//   hand_eval --dataset realworld|stb --data DIR --weights W --out DIR [--bboxes FILE]
//             [--limit N] [--threads N] [--batch N] [--vis N] [--root given|estimated] [--resume]
//             [--shard K/N]
//   hand_eval --merge DIR... --dataset ... --data DIR --weights W --out DIR [--limit N] [--vis N] [--root ...]
//
// The loop and the outputs are include/handgraph/eval/evaluate.hpp (included through
// handgraph/eval.hpp); this file parses the command line, refuses bad input before
// anything is written, and shows progress.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "cli.hpp"
#include "handgraph/eval.hpp"
#include "handgraph/handgraph.hpp"

namespace fs = std::filesystem;

namespace {

const char* usage =
    "usage: hand_eval --dataset realworld|stb --data DIR --weights W.safetensors --out DIR\n"
    "                 [--bboxes FILE] [--limit N] [--threads N] [--batch N] [--vis N]\n"
    "                 [--root given|estimated] [--resume] [--shard K/N]\n"
    "       hand_eval --merge DIR... (with the shards' --dataset --data --weights --limit --vis --root) --out DIR\n"
    "\n"
    "Evaluates the hand shape and pose network (Ge et al., CVPR 2019) as the release does:\n"
    "ground-truth root joint and scale given, error = mean over frames of the mean distance\n"
    "of the 21 joints (mm).\n"
    "  --dataset   realworld: the release's real-world test set (583 crops);\n"
    "              stb: STB sequences B1Counting then B1Random (3000 frames)\n"
    "  --data      realworld: the real_world_testset folder (params.mat, pose_gt.mat, images/);\n"
    "              stb: the STB root (<seq>/SK_color_<i>.png, labels/<seq>_SK.mat)\n"
    "  --bboxes    stb only: the release's STB_eval_bboxes.mat\n"
    "              (default: DATA/../STB_eval_bboxes.mat)\n"
    "  --weights   weight file made by tools/convert_weights.py\n"
    "  --out       output folder (created if missing); receives pose_estimations.mat\n"
    "              (image_ids, image_paths, gt_pose_xyz, est_pose_xyz: N x 21 x 3, cm;\n"
    "              est_uv: N x 21 x 2, crop pixels),\n"
    "              summary.json, per_frame.csv, pck.png and, with --vis, vis/<frame>.png\n"
    "              (2D skeleton | shaded mesh over the crop) and vis/<frame>.obj\n"
    "  --limit     evaluate the first N frames only (default: all)\n"
    "  --threads   threads (default 1); --batch: crops per batch (default 2 x threads).\n"
    "              Results do not depend on either.\n"
    "  --vis       write overlays and meshes of the first N frames (default 0)\n"
    "  --root      given (default: the release's protocol, ground-truth root joint) or\n"
    "              estimated (solved from the 2D joints and depths with the ground-truth\n"
    "              camera and scale only); summary.json says which, and the root error\n"
    "  --shard K/N evaluate every N-th frame from K (0 <= K < N) and write this shard's\n"
    "              outputs and OUT/shard.bin: one of N jobs of a job array\n"
    "  --merge     join the outputs of shards 0..N-1 (their --out folders) into the files one\n"
    "              run would have written (summary.json's times are the shards' sums)\n"
    "  --resume    continue from the checkpoint (OUT/progress.partial.bin) that every run\n"
    "              keeps while it works; gives the same outputs as an uninterrupted run\n"
    "Progress goes to stderr: a bar on a terminal, a line every 5% otherwise.\n";

std::string duration_text(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    long t = std::lround(s);
    char b[32];
    if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60) std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
    else std::snprintf(b, sizeof b, "%lds", t);
    return b;
}

// Progress on stderr: a redrawn bar on a terminal, a line per 5% otherwise.
class progress_display {
public:
    explicit progress_display(bool tty) : tty_(tty), t0_(clock::now()) {}
    void operator()(std::size_t done, std::size_t total) {
        if (first_) {
            first_ = false;
            start_done_ = done;
            t0_ = clock::now();
        }
        double elapsed = std::chrono::duration<double>(clock::now() - t0_).count();
        std::size_t run = done - start_done_;
        double rate = elapsed > 0 && run > 0 ? double(run) / elapsed : 0.0;
        double eta = rate > 0 ? double(total - done) / rate : -1.0;
        int pct = total ? int(100.0 * double(done) / double(total)) : 100;
        char b[160];
        if (tty_) {
            const int width = 30;
            int fill = total ? int(double(width) * double(done) / double(total)) : width;
            std::string bar(std::size_t(fill), '#');
            bar.resize(width, '.');
            std::snprintf(b, sizeof b, "\r[%s] %zu/%zu %3d%%  %.2f img/s  ETA %s   ", bar.c_str(), done, total, pct, rate,
                          done == total ? "0s" : duration_text(eta).c_str());
            std::cerr << b << (done == total ? "\n" : "") << std::flush;
        } else if (done == total || pct >= next_pct_) {
            while (next_pct_ <= pct) next_pct_ += 5;
            std::snprintf(b, sizeof b, "hand_eval: %zu/%zu frames (%d%%), %.2f img/s, ETA %s\n", done, total, pct, rate,
                          done == total ? "0s" : duration_text(eta).c_str());
            std::cerr << b << std::flush;
        }
    }

private:
    using clock = std::chrono::steady_clock;
    bool tty_, first_ = true;
    int next_pct_ = 0;
    std::size_t start_done_ = 0;
    clock::time_point t0_;
};

int run(int argc, char** argv) {
    std::string dataset_kind, data, weights, out, bboxes;
    long limit = 0, threads = 1, batch = 0, vis = 0;
    bool resume = false;
    std::string root_mode = "given";
    std::size_t shard_k = 0, shard_n = 1;
    std::vector<std::string> merge_dirs;
    if (argc == 1) {
        std::cerr << usage;
        return 1;
    }
    for (cli::arguments args(argc, argv); args.next();) {
        const std::string& a = args.flag();
        if (a == "--help" || a == "-h") {
            std::cout << usage;
            return 0;
        }
        if (a == "--dataset") dataset_kind = args.value();
        else if (a == "--data") data = args.value();
        else if (a == "--weights") weights = args.value();
        else if (a == "--out") out = args.value();
        else if (a == "--bboxes") bboxes = args.value();
        else if (a == "--limit") limit = cli::parse_integer(a, args.value(), 1, 1L << 30);
        else if (a == "--threads") threads = cli::parse_integer(a, args.value(), 1, handgraph::context::max_threads);
        else if (a == "--batch") batch = cli::parse_integer(a, args.value(), 1, 4096);
        else if (a == "--vis") vis = cli::parse_integer(a, args.value(), 0, 1L << 30);
        else if (a == "--resume") resume = true;
        else if (a == "--root") root_mode = args.value();
        else if (a == "--merge") merge_dirs = args.values();
        else if (a == "--shard") {
            const std::string v = args.value();
            const std::size_t slash = v.find('/');
            if (slash == std::string::npos) throw handgraph::error("--shard: \"" + v + "\" is not K/N (e.g. 0/3)");
            shard_n = std::size_t(cli::parse_integer("--shard", v.substr(slash + 1), 1, 1L << 20));
            shard_k = std::size_t(cli::parse_integer("--shard", v.substr(0, slash), 0, long(shard_n) - 1));
        }
        else throw args.unknown();
    }
    if (dataset_kind.empty()) throw handgraph::error("--dataset is required (realworld or stb; see --help)");
    if (root_mode != "given" && root_mode != "estimated") throw handgraph::error("--root: \"" + root_mode + "\" is not given or estimated");
    if (dataset_kind != "realworld" && dataset_kind != "stb")
        throw handgraph::error("--dataset: \"" + dataset_kind + "\" is not one of realworld, stb");
    for (auto [flag, v] : {std::pair{"--data", &data}, std::pair{"--weights", &weights}, std::pair{"--out", &out}})
        if (v->empty()) throw handgraph::error(std::string(flag) + " is required (see --help)");
    if (!bboxes.empty() && dataset_kind != "stb") throw handgraph::error("--bboxes applies to --dataset stb only");
    const bool merging = !merge_dirs.empty();
    if (merging && shard_n > 1) throw handgraph::error("--merge and --shard do not go together");
    if (merging && resume) throw handgraph::error("--merge and --resume do not go together");

    // 1. The data set: labels read and checked, every image of the run present.
    std::error_code ec;
    if (!fs::is_directory(data, ec)) throw handgraph::error("--data: folder '" + data + "' not found");
    std::unique_ptr<handgraph::dataset> ds;
    if (dataset_kind == "realworld") {
        ds = std::make_unique<handgraph::real_world_testset>(data);
    } else {
        if (bboxes.empty()) {
            bboxes = (fs::path(data) / ".." / "STB_eval_bboxes.mat").lexically_normal().string();
            if (!fs::is_regular_file(bboxes, ec))
                throw handgraph::error("STB boxes file '" + bboxes + "' not found (the release's STB_eval_bboxes.mat; pass --bboxes FILE)");
        } else if (!fs::is_regular_file(bboxes, ec)) {
            throw handgraph::error("--bboxes: file '" + bboxes + "' not found");
        }
        ds = std::make_unique<handgraph::stb_dataset>(data, bboxes);
    }
    const std::size_t n = handgraph::evaluation_frames(*ds, std::size_t(limit));
    if (shard_k >= n) throw handgraph::error("--shard " + std::to_string(shard_k) + "/" + std::to_string(shard_n) + ": the run has " + std::to_string(n) + " frames");
    for (const auto& d : merge_dirs)
        if (!fs::is_directory(d, ec)) throw handgraph::error("--merge: folder '" + d + "' not found");
    for (std::size_t i = shard_k; i < n; i += shard_n) {
        if (merging && i >= std::size_t(vis)) break;  // a merge reads only the pictured frames' images
        std::string id = ds->load(i, false).image_id;
        if (!fs::is_regular_file(fs::path(data) / id, ec))
            throw handgraph::error(ds->name() + ", frame " + std::to_string(i) + ": image '" + (fs::path(data) / id).string() + "' not found");
    }

    // 2. The model.
    if (!fs::is_regular_file(weights, ec)) throw handgraph::error("--weights: file '" + weights + "' not found");
    auto t0 = std::chrono::steady_clock::now();
    handgraph::model model = handgraph::model::load(weights);
    double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    // 3. The output folder: created, and shown to be writable.
    fs::path out_dir(out);
    if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec)) throw handgraph::error("--out: '" + out + "' exists and is not a folder");
    fs::create_directories(out_dir, ec);
    if (ec) throw handgraph::error("--out: cannot create folder '" + out + "' (" + ec.message() + ")");
    if (!cli::can_create_in(out_dir, ".hand_eval-write-test-" + std::to_string(::getpid())))
        throw handgraph::error("--out: folder '" + out + "' is not writable");

    // 4. The run.
    const bool tty = ::isatty(STDERR_FILENO) == 1;
    handgraph::evaluation_options opt;
    opt.limit = std::size_t(limit);
    opt.batch = int(batch);
    opt.vis = std::size_t(vis);
    opt.checkpoint = out_dir / "progress.partial.bin";
    opt.resume = resume;
    opt.estimate_root = root_mode == "estimated";
    const std::string run_fingerprint = handgraph::evaluation_fingerprint(*ds, opt.limit, opt.vis, weights, opt.estimate_root);
    opt.shard_index = shard_k;
    opt.shard_count = shard_n;
    opt.fingerprint = shard_n > 1 ? handgraph::shard_fingerprint(run_fingerprint, shard_k, shard_n) : run_fingerprint;
    handgraph::evaluation_info info;
    info.data = data;
    info.weights = weights;
    info.kernels = model.kernels();
    info.load_s = load_s;
    handgraph::evaluation_run result;
    if (merging) {
        std::vector<fs::path> dirs(merge_dirs.begin(), merge_dirs.end());
        handgraph::shard_totals totals;
        result = handgraph::merge_shards(*ds, dirs, run_fingerprint, opt.limit, opt.vis, opt.estimate_root, &totals);
        info.kernels = totals.kernels;
        info.load_s = totals.load_s;
        std::cerr << "hand_eval: merged " << dirs.size() << " shards: " << result.estimates.size() << " frames\n";
    } else {
        if (resume && !fs::exists(opt.checkpoint, ec))
            std::cerr << "hand_eval: --resume: no checkpoint in " << out_dir.string() << ", starting from the first frame\n";
        progress_display show(tty);
        opt.progress = [&](std::size_t done, std::size_t total) { show(done, total); };
        std::cerr << "hand_eval: " << ds->name() << ", " << n << " of " << ds->size() << " frames"
                  << (shard_n > 1 ? ", shard " + std::to_string(shard_k) + "/" + std::to_string(shard_n) : std::string()) << ", weights " << weights
                  << ", kernels " << model.kernels() << ", threads " << threads << ", root " << root_mode << "\n";
        handgraph::context ctx{int(threads)};
        result = handgraph::run_evaluation(*ds, model, ctx, opt);
        if (result.resumed) std::cerr << "hand_eval: resumed " << result.resumed << " frames from " << opt.checkpoint.string() << "\n";
    }

    // 5. Outputs (a shard's record first, summary.json last), then the checkpoint goes.
    if (shard_n > 1) handgraph::write_shard_record(out_dir, result, opt.fingerprint);
    handgraph::write_evaluation_outputs(out_dir, *ds, model, result, opt.vis, info);
    fs::remove(opt.checkpoint, ec);
    auto names = handgraph::evaluation_output_names(result.frame_index, opt.vis);
    names.push_back("progress.partial.bin");
    names.push_back(handgraph::shard_record_name);
    handgraph::remove_stale_temporaries(out_dir, names);

    handgraph::pose_metrics m = handgraph::evaluate_run(result);
    char b[256];
    std::snprintf(b, sizeof b, "hand_eval: %zu frames: mean error %.3f mm, root-relative %.3f mm, AUC(20-50 mm) %.4f; %.2f img/s\n",
                  m.frames, m.mean_error_mm, m.root_relative_error_mm, m.pck.auc,
                  result.wall_s > 0 ? double(result.estimates.size() - result.resumed) / result.wall_s : 0.0);
    if (result.estimate_root)
        std::cerr << "hand_eval: root estimated (ground-truth camera and scale); " << result.root_fallbacks << " of the "
                  << result.estimates.size() - result.resumed << " frames estimated by this run took a fallback root (summary.json: root_error_mm)\n";
    std::cerr << b << "hand_eval: wrote " << out_dir.string() << "/{pose_estimations.mat, summary.json, per_frame.csv, pck.png"
              << (opt.vis ? ", vis/" : "") << "}\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main(run, argc, argv); }

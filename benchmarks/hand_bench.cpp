// hand_bench: latency and throughput of the whole pipeline (crop in, joints and mesh
// out), per stage, with load time and peak memory; several callers at once; a soak run.
//
//   hand_bench [--weights W] [--threads N] [--batch N] [--iters N] [--warmup N]
//              [--callers N] [--soak N] [--detector D] [--json]
//
// Without --weights it runs a deterministic random-weight model of the real shapes
// (same cost as the released one). With --json the last stdout line is one JSON object.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../examples/cli.hpp"
#include "handgraph/demo.hpp"
#include "handgraph/detector.hpp"
#include "handgraph/handgraph.hpp"
#include "handgraph/json.hpp"
#include "handgraph/model.hpp"

namespace {

const char* usage =
    "usage: hand_bench [--weights W.safetensors] [--threads N] [--batch N] [--iters N] [--warmup N]\n"
    "                  [--callers N] [--soak N] [--detector D.safetensors] [--json]\n"
    "Times the whole pipeline on the demo crop: median and spread of the single-image\n"
    "latency, per stage (net_hm, feature+mesh net, pose net, post-processing), GFLOP/s,\n"
    "batch throughput (images/s at --batch, default 8), model load time and peak RSS.\n"
    "  --threads N   threads of each context (default 1)\n"
    "  --callers N   N threads at once, each with its own context of --threads threads,\n"
    "                each running --warmup + --iters estimates on the one shared model;\n"
    "                reports peak RSS against the bound prepared weights + 32 MB per caller\n"
    "  --soak N      N estimates in one process on one context; reports the resident\n"
    "                memory after call 100 and after call N (they should agree within 2 MB)\n"
    "  --detector D  also time the palm detector (tools/convert_palm.py output) on a\n"
    "                640x480 frame holding the demo crop, once after each timed estimate\n"
    "                (interleaved, same context and threads): median ms per frame and its\n"
    "                share of the hand network's single-image time\n"
    "Without --weights: random weights of the real shapes (identical cost).\n"
    "--json: the last stdout line is a JSON object (ms_per_image, threads, callers, peak_rss_mb, ...).\n";

struct stats {
    double median, min, max, p10, p90;
};
stats summarize(std::vector<double> v) {
    if (v.empty()) return {0, 0, 0, 0, 0};
    std::sort(v.begin(), v.end());
    auto q = [&](double f) { return v[std::min(v.size() - 1, std::size_t(f * double(v.size() - 1) + 0.5))]; };
    return {q(0.5), v.front(), v.back(), q(0.1), q(0.9)};
}

// A line of /proc/self/status in MiB ("VmHWM:" peak resident, "VmRSS:" resident now).
// This process's own figures: getrusage's ru_maxrss is kept across fork and exec on Linux,
// so a hand_bench started by a big process (the compare script's Python with PyTorch
// loaded) would report its parent's size.
double status_mb(const char* key) {
    std::ifstream st("/proc/self/status");
    const std::string k(key);
    for (std::string line; std::getline(st, line);)
        if (line.compare(0, k.size(), k) == 0) return std::stod(line.substr(k.size())) / 1024.0;  // kB
    return 0.0;
}

constexpr double mib = 1024.0 * 1024.0;

int run(int argc, char** argv) {
    std::string weights, detector_path;
    int threads = 1, batch = 8, iters = 20, warmup = 3, callers = 1;
    long soak = 0;
    bool json = false;
    for (cli::arguments args(argc, argv); args.next();) {
        const std::string& a = args.flag();
        auto integer = [&](long lo, long hi) { return int(cli::parse_integer(a, args.value(), lo, hi, cli::integer_in)); };
        if (a == "--help" || a == "-h") { std::cout << usage; return 0; }
        else if (a == "--weights") weights = args.value();
        else if (a == "--threads") threads = integer(1, handgraph::context::max_threads);
        else if (a == "--batch") batch = integer(0, 4096);
        else if (a == "--iters") iters = integer(1, 100000);
        else if (a == "--warmup") warmup = integer(0, 100000);
        else if (a == "--callers") callers = integer(1, 256);
        else if (a == "--soak") soak = cli::parse_integer(a, args.value(), 101, 100000000, cli::integer_in);
        else if (a == "--json") json = true;
        else if (a == "--detector") detector_path = args.value();
        else throw args.unknown();
    }
    using clock = std::chrono::steady_clock;
    auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };

    std::string source;
    handgraph::template_mesh t;
    if (weights.empty()) t = handgraph::demo_template("", &source);
    auto t0 = clock::now();
    handgraph::model model = weights.empty() ? handgraph::random_model(1, t) : handgraph::model::load(weights);
    const double load_ms = ms(t0, clock::now());
    const double weights_mb = double(model.weight_bytes()) / mib;
    std::string model_desc = weights.empty() ? "random weights of the real shapes (generated, so load time is not file loading)" : weights;

    const std::vector<unsigned char> crop_bytes = handgraph::demo_crop();
    const handgraph::image_view crop(crop_bytes.data(), handgraph::crop_size, handgraph::crop_size);
    const handgraph::crop_params params = handgraph::demo_params();
    namespace js = handgraph::json;

    // The detector and its frame: the demo crop pasted at (200, 120) into a 640x480 grey frame.
    std::optional<handgraph::palm_detector> detector;
    std::vector<unsigned char> frame_bytes;
    if (!detector_path.empty()) {
        if (callers != 1 || soak > 0) throw handgraph::error("--detector times the detector beside single-caller runs: no --callers or --soak");
        detector = handgraph::palm_detector::load(detector_path);
        frame_bytes.assign(std::size_t(640) * 480 * 3, 110);
        for (int y = 0; y < handgraph::crop_size; ++y)
            std::copy(crop_bytes.begin() + std::ptrdiff_t(y) * handgraph::crop_size * 3, crop_bytes.begin() + std::ptrdiff_t(y + 1) * handgraph::crop_size * 3,
                      frame_bytes.begin() + (std::ptrdiff_t(y + 120) * 640 + 200) * 3);
    }
    const handgraph::image_view frame(frame_bytes.data(), 640, 480);
    std::vector<double> detector_times;
    std::size_t detector_found = 0;

    std::printf("model        %s\n", model_desc.c_str());
    std::printf("kernels      %s, threads %d%s\n", model.kernels(), threads, callers > 1 ? (", callers " + std::to_string(callers)).c_str() : "");
    std::printf("load         %.1f ms (prepared weights %.1f MB)\n", load_ms, weights_mb);

    if (soak > 0) {
        // One context, `soak` estimates: does the process's memory stay flat?
        handgraph::context ctx(threads);
        double rss_100 = 0, rss_last = 0;
        std::vector<double> times;
        const long step = std::max(1L, soak / 10);
        auto start = clock::now();
        for (long i = 1; i <= soak; ++i) {
            auto a = clock::now();
            model.estimate(ctx, crop, params);
            times.push_back(ms(a, clock::now()));
            if (i == 100) rss_100 = status_mb("VmRSS:");
            if (i % step == 0 || i == soak)
                std::fprintf(stderr, "hand_bench: soak %ld/%ld calls, %.1f s, RSS %.1f MB\n", i, soak,
                             std::chrono::duration<double>(clock::now() - start).count(), status_mb("VmRSS:"));
        }
        rss_last = status_mb("VmRSS:");
        const stats s = summarize(times);
        std::printf("soak         %ld calls: RSS after call 100 %.2f MB, after call %ld %.2f MB (difference %+.2f MB); median %.2f ms\n", soak, rss_100,
                    soak, rss_last, rss_last - rss_100, s.median);
        std::printf("peak RSS     %.1f MB\n", status_mb("VmHWM:"));
        if (json)
            std::cout << "{\"soak_calls\":" << soak << ",\"threads\":" << threads << ",\"rss_after_100_mb\":" << js::number(rss_100, 6)
                      << ",\"rss_after_last_mb\":" << js::number(rss_last, 6) << ",\"rss_growth_mb\":" << js::number(rss_last - rss_100, 6)
                      << ",\"ms_per_image\":" << js::number(s.median, 6) << ",\"peak_rss_mb\":" << js::number(status_mb("VmHWM:"), 6)
                      << ",\"weights_mb\":" << js::number(weights_mb, 6) << ",\"arch\":" << js::quote(model.kernels())
                      << ",\"random_weights\":" << (weights.empty() ? "true" : "false") << "}" << std::endl;
        return 0;
    }

    // `callers` threads, each with its own context, estimating at once on the shared model.
    const std::size_t ncallers = std::size_t(callers);
    std::vector<std::vector<double>> total(ncallers), hm(ncallers), fm(ncallers), mp(ncallers), post(ncallers);
    std::vector<std::string> failures(ncallers);
    std::atomic<int> ready{0};
    auto caller = [&](int c) {
        try {
            handgraph::context ctx(threads);
            ready.fetch_add(1);
            while (ready.load() < callers) std::this_thread::yield();  // start together
            for (int i = 0; i < warmup; ++i) {
                model.estimate(ctx, crop, params);
                if (detector) detector->find_hands(ctx, frame);
            }
            for (int i = 0; i < iters; ++i) {
                auto a = clock::now();
                model.estimate(ctx, crop, params);
                total[std::size_t(c)].push_back(ms(a, clock::now()));
                if (detector) {  // interleaved, so both see the same load on a shared machine
                    auto d = clock::now();
                    detector_found = detector->find_hands(ctx, frame).size();
                    detector_times.push_back(ms(d, clock::now()));
                }
                const handgraph::stage_times st = ctx.last_stage_times();
                hm[std::size_t(c)].push_back(st.net_hm_ms);
                fm[std::size_t(c)].push_back(st.feat_mesh_ms);
                mp[std::size_t(c)].push_back(st.mesh_pose_ms);
                post[std::size_t(c)].push_back(st.post_ms);
            }
        } catch (const std::exception& e) {
            failures[std::size_t(c)] = e.what();
            ready.fetch_add(callers);  // release the others
        }
    };
    auto w0 = clock::now();
    if (callers == 1) {
        caller(0);
    } else {
        std::vector<std::thread> pool;
        for (int c = 0; c < callers; ++c) pool.emplace_back(caller, c);
        for (auto& th : pool) th.join();
    }
    const double wall_s = ms(w0, clock::now()) / 1000.0;
    for (const auto& f : failures)
        if (!f.empty()) throw handgraph::error(f);
    auto all = [](const std::vector<std::vector<double>>& v) {
        std::vector<double> out;
        for (const auto& x : v) out.insert(out.end(), x.begin(), x.end());
        return out;
    };
    const stats s = summarize(all(total));
    const double peak_mb = status_mb("VmHWM:");  // load + single-image inference (all callers), before any batch run
    const double bound_mb = weights_mb + 32.0 * callers;
    const double gflop = handgraph::network_flops() / 1e9;
    const double images_per_s = double(callers) * iters / wall_s;

    double batch_ips = 0;
    if (batch > 0 && callers == 1) {
        handgraph::context ctx(threads);
        std::vector<handgraph::image_view> crops(std::size_t(batch), crop);
        std::vector<handgraph::crop_params> ps(std::size_t(batch), params);
        model.estimate_batch(ctx, crops, ps);  // warm-up
        std::vector<double> bt;
        for (int i = 0; i < std::max(3, iters / 4); ++i) {
            auto a = clock::now();
            model.estimate_batch(ctx, crops, ps);
            bt.push_back(ms(a, clock::now()));
        }
        batch_ips = double(batch) / (summarize(bt).median / 1000.0);
    }
    const double peak_batch_mb = status_mb("VmHWM:");

    std::printf("latency      median %.2f ms  (min %.2f, p10 %.2f, p90 %.2f, max %.2f; %d runs after %d warm-up%s)\n", s.median, s.min, s.p10, s.p90,
                s.max, iters, warmup, callers > 1 ? (", each of " + std::to_string(callers) + " callers").c_str() : "");
    std::printf("  net_hm     %.2f ms\n  feat+mesh  %.2f ms\n  mesh_pose  %.2f ms\n  post       %.2f ms\n", summarize(all(hm)).median,
                summarize(all(fm)).median, summarize(all(mp)).median, summarize(all(post)).median);
    std::printf("compute      %.1f GFLOP/image, %.1f GFLOP/s per caller\n", gflop, gflop / (s.median / 1000.0));
    const stats ds = summarize(detector_times);
    if (detector)
        std::printf("detector     %s: median %.2f ms per 640x480 frame (min %.2f, p10 %.2f, p90 %.2f; %zu hand(s) found), %.2f%% of the hand "
                    "network's %.2f ms; %.2f GMAC/frame, %.1f GFLOP/s\n",
                    detector->model_name().c_str(), ds.median, ds.min, ds.p10, ds.p90, detector_found, 100.0 * ds.median / s.median, s.median,
                    detector->multiply_adds() / 1e9, 2 * detector->multiply_adds() / 1e9 / (ds.median / 1000.0));
    if (callers > 1) std::printf("throughput   %.2f images/s (%d callers together)\n", images_per_s, callers);
    if (batch > 0 && callers == 1) std::printf("batch %-5d  %.2f images/s\n", batch, batch_ips);
    std::printf("peak RSS     %.1f MB (load + single images; bound: prepared weights %.1f + 32 x %d callers = %.1f MB: %s)%s\n", peak_mb,
                weights_mb, callers, bound_mb, peak_mb <= bound_mb ? "within" : "EXCEEDED",
                batch > 0 && callers == 1 ? (", " + std::to_string(int(peak_batch_mb + 0.5)) + " MB after the batch runs").c_str() : "");
    if (json) {
        std::cout << "{\"ms_per_image\":" << js::number(s.median, 6) << ",\"threads\":" << threads << ",\"callers\":" << callers
                  << ",\"min_ms\":" << js::number(s.min, 6) << ",\"p10_ms\":" << js::number(s.p10, 6) << ",\"p90_ms\":" << js::number(s.p90, 6)
                  << ",\"max_ms\":" << js::number(s.max, 6) << ",\"net_hm_ms\":" << js::number(summarize(all(hm)).median, 6)
                  << ",\"feat_mesh_ms\":" << js::number(summarize(all(fm)).median, 6) << ",\"mesh_pose_ms\":" << js::number(summarize(all(mp)).median, 6)
                  << ",\"post_ms\":" << js::number(summarize(all(post)).median, 6) << ",\"gflops\":" << js::number(gflop / (s.median / 1000.0), 6)
                  << ",\"images_per_s\":" << js::number(images_per_s, 6) << ",\"batch\":" << (callers == 1 ? batch : 0)
                  << ",\"batch_images_per_s\":" << js::number(batch_ips, 6) << ",\"load_ms\":" << js::number(load_ms, 6)
                  << ",\"weights_mb\":" << js::number(weights_mb, 6) << ",\"peak_rss_mb\":" << js::number(peak_mb, 6)
                  << ",\"peak_rss_bound_mb\":" << js::number(bound_mb, 6) << ",\"peak_rss_batch_mb\":" << js::number(peak_batch_mb, 6)
                  << ",\"arch\":" << js::quote(model.kernels()) << ",\"random_weights\":" << (weights.empty() ? "true" : "false");
        if (detector)
            std::cout << ",\"detector\":" << js::quote(detector->model_name()) << ",\"detector_ms\":" << js::number(ds.median, 6)
                      << ",\"detector_min_ms\":" << js::number(ds.min, 6) << ",\"detector_p90_ms\":" << js::number(ds.p90, 6)
                      << ",\"detector_share\":" << js::number(ds.median / s.median, 6);
        std::cout << "}" << std::endl;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main(run, argc, argv); }

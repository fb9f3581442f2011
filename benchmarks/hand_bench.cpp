// hand_bench: latency and throughput of the whole pipeline (crop in, joints and mesh
// out), per stage, with load time and peak memory.
//
//   hand_bench [--weights W] [--threads N] [--batch N] [--iters N] [--warmup N] [--json]
//
// Without --weights it runs a deterministic random-weight model of the real shapes
// (same cost as the released one). With --json the last stdout line is one JSON object.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "../examples/cli.hpp"
#include "handgraph/demo.hpp"
#include "handgraph/json.hpp"
#include "handgraph/kernels/dispatch.hpp"
#include "handgraph/pipeline.hpp"

namespace {

const char* usage =
    "usage: hand_bench [--weights W.safetensors] [--threads N] [--batch N] [--iters N] [--warmup N] [--json]\n"
    "Times the whole pipeline on the demo crop: median and spread of the single-image\n"
    "latency, per stage (net_hm, feature+mesh net, pose net, post-processing), GFLOP/s,\n"
    "batch throughput (images/s at --batch, default 8), model load time and peak RSS.\n"
    "Without --weights: random weights of the real shapes (identical cost).\n"
    "--json: the last stdout line is a JSON object (ms_per_image, threads, ...).\n";

struct stats {
    double median, min, max, p10, p90;
};
stats summarize(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    auto q = [&](double f) { return v[std::min(v.size() - 1, std::size_t(f * double(v.size() - 1) + 0.5))]; };
    return {q(0.5), v.front(), v.back(), q(0.1), q(0.9)};
}

int run(int argc, char** argv) {
    std::string weights;
    int threads = 1, batch = 8, iters = 20, warmup = 3;
    bool json = false;
    for (cli::arguments args(argc, argv); args.next();) {
        const std::string& a = args.flag();
        auto integer = [&](long lo, long hi) { return int(cli::parse_integer(a, args.value(), lo, hi, cli::integer_in)); };
        if (a == "--help" || a == "-h") { std::cout << usage; return 0; }
        else if (a == "--weights") weights = args.value();
        else if (a == "--threads") threads = integer(1, 256);
        else if (a == "--batch") batch = integer(0, 4096);
        else if (a == "--iters") iters = integer(1, 100000);
        else if (a == "--warmup") warmup = integer(0, 100000);
        else if (a == "--json") json = true;
        else throw args.unknown();
    }
    using clock = std::chrono::steady_clock;
    auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };

    std::string source;
    handgraph::template_mesh t;
    if (weights.empty()) t = handgraph::demo_template("", &source);
    auto t0 = clock::now();
    handgraph::model model = weights.empty() ? handgraph::random_model(1, t) : handgraph::model::load(weights);
    double load_ms = ms(t0, clock::now());
    std::string model_desc = weights.empty() ? "random weights of the real shapes (generated, so load time is not file loading)" : weights;

    auto crop = handgraph::demo_crop();
    auto params = handgraph::demo_params();
    handgraph::estimate_options opt;
    opt.threads = threads;
    for (int i = 0; i < warmup; ++i) model.estimate(crop.data(), &params, opt);
    std::vector<double> total, hm, fm, mp, post;
    for (int i = 0; i < iters; ++i) {
        handgraph::stage_times st;
        auto a = clock::now();
        model.estimate(crop.data(), &params, opt, &st);
        total.push_back(ms(a, clock::now()));
        hm.push_back(st.net_hm);
        fm.push_back(st.feat_mesh);
        mp.push_back(st.mesh_pose);
        post.push_back(st.post);
    }
    stats s = summarize(total);
    // This process's own peak: VmHWM of /proc/self/status. getrusage's ru_maxrss is kept
    // across fork and exec on Linux, so a hand_bench started by a big process (the compare
    // script's Python with PyTorch loaded) would report its parent's size.
    auto peak_rss_mb = [] {
        std::ifstream st("/proc/self/status");
        for (std::string line; std::getline(st, line);)
            if (line.compare(0, 6, "VmHWM:") == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        return double(ru.ru_maxrss) / 1024.0;  // kB on Linux
    };
    const double peak_mb = peak_rss_mb();  // load + single-image inference, before any batch run
    const double gflop = handgraph::network_flops() / 1e9;

    double batch_ips = 0;
    if (batch > 0) {
        std::vector<const unsigned char*> crops(std::size_t(batch), crop.data());
        std::vector<handgraph::crop_params> ps(std::size_t(batch), params);
        model.estimate_batch(crops, ps, opt);  // warm-up
        std::vector<double> bt;
        for (int i = 0; i < std::max(3, iters / 4); ++i) {
            auto a = clock::now();
            model.estimate_batch(crops, ps, opt);
            bt.push_back(ms(a, clock::now()));
        }
        batch_ips = double(batch) / (summarize(bt).median / 1000.0);
    }
    const double peak_batch_mb = peak_rss_mb();

    std::printf("model        %s\n", model_desc.c_str());
    std::printf("kernels      %s, threads %d\n", handgraph::kernels::active_arch_name(), threads);
    std::printf("load         %.1f ms\n", load_ms);
    std::printf("latency      median %.2f ms  (min %.2f, p10 %.2f, p90 %.2f, max %.2f; %d runs after %d warm-up)\n", s.median, s.min, s.p10, s.p90, s.max, iters, warmup);
    std::printf("  net_hm     %.2f ms\n  feat+mesh  %.2f ms\n  mesh_pose  %.2f ms\n  post       %.2f ms\n", summarize(hm).median, summarize(fm).median,
                summarize(mp).median, summarize(post).median);
    std::printf("compute      %.1f GFLOP/image, %.1f GFLOP/s\n", gflop, gflop / (s.median / 1000.0));
    if (batch > 0) std::printf("batch %-5d  %.2f images/s\n", batch, batch_ips);
    std::printf("peak RSS     %.1f MB (load + single image)%s\n", peak_mb,
                batch > 0 ? (", " + std::to_string(int(peak_batch_mb + 0.5)) + " MB after the batch runs").c_str() : "");
    if (json) {
        namespace js = handgraph::json;
        std::cout << "{\"ms_per_image\":" << js::number(s.median, 6) << ",\"threads\":" << threads << ",\"min_ms\":" << js::number(s.min, 6)
                  << ",\"p10_ms\":" << js::number(s.p10, 6) << ",\"p90_ms\":" << js::number(s.p90, 6) << ",\"max_ms\":" << js::number(s.max, 6)
                  << ",\"net_hm_ms\":" << js::number(summarize(hm).median, 6) << ",\"feat_mesh_ms\":" << js::number(summarize(fm).median, 6)
                  << ",\"mesh_pose_ms\":" << js::number(summarize(mp).median, 6) << ",\"post_ms\":" << js::number(summarize(post).median, 6)
                  << ",\"gflops\":" << js::number(gflop / (s.median / 1000.0), 6) << ",\"batch\":" << batch << ",\"batch_images_per_s\":" << js::number(batch_ips, 6)
                  << ",\"load_ms\":" << js::number(load_ms, 6) << ",\"peak_rss_mb\":" << js::number(peak_mb, 6) << ",\"peak_rss_batch_mb\":" << js::number(peak_batch_mb, 6) << ",\"arch\":" << js::quote(handgraph::kernels::active_arch_name())
                  << ",\"random_weights\":" << (weights.empty() ? "true" : "false") << "}" << std::endl;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return cli::guarded_main(run, argc, argv); }

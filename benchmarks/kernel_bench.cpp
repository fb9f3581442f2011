// benchmarks/kernel_bench.cpp: GFLOP/s of the convolution and linear kernels on every layer
// shape of the networks (random weights), median of many runs, and the convolution time of
// one image estimated from the per-shape times and the number of layers of each shape.
// Winograd GFLOP/s are "effective": direct-convolution flops / time; "F4" is F(4x4, 3x3),
// "F2" F(2x2, 3x3).
// Usage: kernel_bench [threads=1] [min_seconds_per_shape=0.2] [filter substring] [arch]
#include <handgraph/context.hpp>
#include <handgraph/kernels/kernels.hpp>
#include <handgraph/model.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <time.h>

using namespace handgraph;
using namespace handgraph::kernels;

namespace {

struct shape {
    const char* name;
    int cin, cout, k, stride, pad, h, w;  // input size
    int count;                            // layers of this shape in net_hm + net_feat_mesh
    bool early = false;                   // before the first hourglass (conv_algorithm_for)
};

// Residual(256,256): 10 at 64x64, 14 at 32, 16 and 8, 12 at 4 (hourglasses, stacks, feat_net).
const shape shapes[] = {
    {"conv1 7x7/2 3->64 @256", 3, 64, 7, 2, 3, 256, 256, 1},
    {"1x1 64->64 @128", 64, 64, 1, 1, 0, 128, 128, 1},
    {"3x3 64->64 @128 (r1)", 64, 64, 3, 1, 1, 128, 128, 1, true},
    {"1x1 64->128 @128", 64, 128, 1, 1, 0, 128, 128, 2},
    {"1x1 128->64 @64", 128, 64, 1, 1, 0, 64, 64, 1},
    {"3x3 64->64 @64 (r4)", 64, 64, 3, 1, 1, 64, 64, 1, true},
    {"1x1 64->128 @64", 64, 128, 1, 1, 0, 64, 64, 1},
    {"1x1 128->128 @64", 128, 128, 1, 1, 0, 64, 64, 1},
    {"1x1 128->256 @64", 128, 256, 1, 1, 0, 64, 64, 12},
    {"1x1 256->128 @64", 256, 128, 1, 1, 0, 64, 64, 10},
    {"3x3 128->128 @64 (r5)", 128, 128, 3, 1, 1, 64, 64, 1, true},
    {"3x3 128->128 @64", 128, 128, 3, 1, 1, 64, 64, 10},
    {"1x1 256->256 @64", 256, 256, 1, 1, 0, 64, 64, 4},
    {"1x1 256->21 @64", 256, 21, 1, 1, 0, 64, 64, 2},
    {"1x1 21->256 @64", 21, 256, 1, 1, 0, 64, 64, 2},
    {"1x1 256->128 @32", 256, 128, 1, 1, 0, 32, 32, 14},
    {"3x3 128->128 @32", 128, 128, 3, 1, 1, 32, 32, 14},
    {"1x1 128->256 @32", 128, 256, 1, 1, 0, 32, 32, 14},
    {"1x1 256->128 @16", 256, 128, 1, 1, 0, 16, 16, 14},
    {"3x3 128->128 @16", 128, 128, 3, 1, 1, 16, 16, 14},
    {"1x1 128->256 @16", 128, 256, 1, 1, 0, 16, 16, 14},
    {"1x1 256->128 @8", 256, 128, 1, 1, 0, 8, 8, 14},
    {"3x3 128->128 @8", 128, 128, 3, 1, 1, 8, 8, 14},
    {"1x1 128->256 @8", 128, 256, 1, 1, 0, 8, 8, 14},
    {"1x1 256->128 @4", 256, 128, 1, 1, 0, 4, 4, 12},
    {"3x3 128->128 @4", 128, 128, 3, 1, 1, 4, 4, 12},
    {"1x1 128->256 @4", 128, 256, 1, 1, 0, 4, 4, 12},
};

// This thread's CPU time (excludes time the scheduler gave to other processes; with one
// thread the kernels run on the calling thread).
double thread_seconds() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Median (or, with HANDGRAPH_BENCH_MIN set, minimum) of repeated runs lasting at least
// min_total seconds in all, by the steady clock; with HANDGRAPH_BENCH_CPUTIME set (one
// thread only), by the thread's CPU time: both help when other processes share the cores.
template <class F>
double median_seconds(F&& f, double min_total) {
    static const bool cpu = std::getenv("HANDGRAPH_BENCH_CPUTIME") != nullptr;
    f();  // warm up
    std::vector<double> t;
    double total = 0;
    while (total < min_total || t.size() < 5) {
        auto t0 = std::chrono::steady_clock::now();
        const double c0 = cpu ? thread_seconds() : 0;
        f();
        double s = cpu ? thread_seconds() - c0
                       : std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        t.push_back(s);
        total += s;
    }
    std::sort(t.begin(), t.end());
    static const bool use_min = std::getenv("HANDGRAPH_BENCH_MIN") != nullptr;
    return use_min ? t.front() : t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
    const double min_total = argc > 2 ? std::atof(argv[2]) : 0.2;
    const std::string filter = argc > 3 ? argv[3] : "";
    if (threads < 1 || threads > handgraph::context::max_threads) {
        std::fprintf(stderr, "error: threads: %d is outside 1..%d\n", threads, handgraph::context::max_threads);
        return 1;
    }
    const kernel_table& k = select_kernels(argc > 4 ? argv[4] : nullptr);
    const layer_setup setup{&k, nullptr};
    handgraph::detail::context_state ctx(threads);
    const exec ex = ctx.exec();
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> d(-0.1f, 0.1f);
    std::printf("arch %s, threads %d\n", k.name, threads);
    std::printf("%-26s %8s %9s %8s %8s %8s %8s %8s %9s %6s\n", "layer", "MFLOP", "direct ms", "GFLOP/s", "F4 ms",
                "GFLOP/s", "F2 ms", "GFLOP/s", "run() ms", "count");
    double net_ms = 0, net_flop = 0;
    for (const shape& s : shapes) {
        if (!filter.empty() && std::string(s.name).find(filter) == std::string::npos) continue;
        std::vector<float> w(std::size_t(s.cout) * s.cin * s.k * s.k), b(s.cout);
        for (float& x : w) x = d(rng);
        for (float& x : b) x = d(rng);
        const int oh = (s.h + 2 * s.pad - s.k) / s.stride + 1, ow = (s.w + 2 * s.pad - s.k) / s.stride + 1;
        // The algorithm the network uses for this layer (model.hpp's conv_algorithm_for).
        const conv_algorithm algo = handgraph::detail::conv_algorithm_for(s.k, s.stride, s.pad, oh, s.cin, s.early, k);
        conv2d conv = conv2d::prepare(w.data(), b.data(), s.cout, s.cin, s.k, s.stride, s.pad, nullptr, nullptr, algo, setup);
        feature_map in(s.h, s.w, s.cin, s.pad);
        for (int y = 0; y < s.h; ++y)
            for (int x = 0; x < s.w; ++x)
                for (int c = 0; c < s.cin; ++c) in.pixel(y, x)[c] = d(rng);
        feature_map out(oh, ow, s.cout, 1);
        const double flop = 2.0 * oh * ow * s.cout * s.cin * s.k * s.k;
        const double td = median_seconds([&] { conv.run_direct(in, out, true, nullptr, ex); }, min_total);
        const int side = winograd_tile_side(conv.algorithm());
        const bool uses_double = conv.algorithm() == conv_algorithm::direct_double;  // run_direct runs it in double
        const bool wino = s.k == 3 && s.stride == 1 && s.pad == 1 && !uses_double;  // a direct_double layer has no Winograd
        const double t4 = wino ? median_seconds([&] { conv.run_winograd(in, out, true, nullptr, ex, 4); }, min_total) : 0;
        const double t2 = wino ? median_seconds([&] { conv.run_winograd(in, out, true, nullptr, ex, 2); }, min_total) : 0;
        const double tr = side == 4 ? t4 : side == 2 ? t2 : td;
        if (wino)
            std::printf("%-26s %8.1f %9.3f %8.1f %8.3f %8.1f %8.3f %8.1f %9.3f %6d%s\n", s.name, flop / 1e6, td * 1e3,
                        flop / td / 1e9, t4 * 1e3, flop / t4 / 1e9, t2 * 1e3, flop / t2 / 1e9, tr * 1e3, s.count,
                        side == 4 ? " (F4)" : side == 2 ? " (F2)" : "");
        else
            std::printf("%-26s %8.1f %9.3f %8.1f %8s %8s %8s %8s %9.3f %6d%s\n", s.name, flop / 1e6, td * 1e3, flop / td / 1e9,
                        "-", "-", "-", "-", tr * 1e3, s.count, uses_double ? " (double)" : "");
        net_ms += s.count * tr * 1e3;
        net_flop += s.count * flop;
    }
    std::printf("convolutions of one image (shapes x counts): %.1f ms for %.2f GFLOP = %.1f GFLOP/s effective\n",
                net_ms, net_flop / 1e9, net_flop / (net_ms * 1e-3) / 1e9);

    if (filter.empty() || filter == "elementwise") {
        feature_map a(64, 64, 256, 1), b(64, 64, 256, 0), o(64, 64, 256, 1), p(32, 32, 256, 0), l(32, 32, 256, 0);
        std::vector<float> sc(256, 0.9f), sh(256, 0.1f);
        const double mb = 64.0 * 64 * 256 * 4 / 1e6;
        double t = median_seconds([&] { scale_shift_relu(k, a, sc.data(), sh.data(), o, ex); }, min_total);
        std::printf("scale_shift_relu 64x64x256 %8.3f ms %7.1f GB/s\n", t * 1e3, 2 * mb / t / 1e3);
        t = median_seconds([&] { add(k, a, b, o, ex); }, min_total);
        std::printf("add 64x64x256              %8.3f ms %7.1f GB/s\n", t * 1e3, 3 * mb / t / 1e3);
        t = median_seconds([&] { maxpool2x2(k, a, p, ex); }, min_total);
        std::printf("maxpool2x2 64x64x256       %8.3f ms %7.1f GB/s\n", t * 1e3, 1.25 * mb / t / 1e3);
        t = median_seconds([&] { upsample2x_add(k, l, o, o, ex); }, min_total);
        std::printf("upsample2x_add 32->64 x256 %8.3f ms %7.1f GB/s\n", t * 1e3, 2.25 * mb / t / 1e3);
    }
    const int fc[][2] = {{4096, 512}, {512, 5120}, {5120, 512}, {512, 20}};
    for (const auto& f : fc) {
        if (!filter.empty() && std::string("linear").find(filter) == std::string::npos) continue;
        const int in = f[0], out = f[1];
        std::vector<float> w(std::size_t(in) * out), b(out), x(in), y(out);
        for (float& v : w) v = d(rng);
        for (float& v : x) v = d(rng);
        linear l = linear::prepare(w.data(), b.data(), out, in, setup);
        const double t = median_seconds([&] { l.run(x.data(), y.data(), false, ex); }, min_total);
        std::printf("linear %5d->%-5d %8.3f ms %7.1f GB/s of weights\n", in, out, t * 1e3,
                    double(in) * out * 4 / t / 1e9);
    }
    return 0;
}

// Concurrent use of one loaded model (issue 6): pipeline.hpp promises that a model is
// immutable after load and that estimate() may be called from several threads at once.
// Four std::threads share one model and call estimate() repeatedly on several crops;
// every result must equal, bit for bit, the result of sequential calls. Each call uses 2
// threads (the caller and a helper of its own worker pool, kernels/parallel.hpp).
// estimate_batch (crops side by side on OpenMP threads) must equal them too.
// tools/run_sanitizers.sh also runs this test under ThreadSanitizer, with OpenMP off
// (libgomp is not instrumented): the calls still use their worker pools (std::thread),
// and the batch part is sequential. The damaged-input tests of the binaries are in test_robustness.py.
// Also here: STB crop boxes outside the image (zero-padded where they overlap it,
// refused, naming the frame, where they miss it).
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "handgraph/demo.hpp"
#include "handgraph/eval/datasets.hpp"
#include "handgraph/image.hpp"
#include "handgraph/mat.hpp"
#include "handgraph/pipeline.hpp"
#include "test_support.hpp"

using namespace handgraph;
namespace fs = std::filesystem;

#if defined(__SANITIZE_THREAD__)
#define HANDGRAPH_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HANDGRAPH_TEST_TSAN 1
#endif
#endif
#ifndef HANDGRAPH_TEST_TSAN
#define HANDGRAPH_TEST_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HANDGRAPH_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HANDGRAPH_TEST_ASAN 1
#endif
#endif
#ifndef HANDGRAPH_TEST_ASAN
#define HANDGRAPH_TEST_ASAN 0
#endif

namespace {

// Threads per estimate() call inside each std::thread (each caller's own worker pool).
constexpr int call_threads = 2;
constexpr int rounds = HANDGRAPH_TEST_TSAN || HANDGRAPH_TEST_ASAN ? 1 : 2;  // sanitizers: slower, one round
constexpr int num_threads = 4;

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

bool same(const hand_estimate& a, const hand_estimate& b) {
    return a.uv == b.uv && a.metric == b.metric && same_bits(a.pose_xyz, b.pose_xyz) && same_bits(a.mesh_xyz, b.mesh_xyz) &&
           same_bits(a.depths, b.depths) && same_bits(a.mesh_raw, b.mesh_raw);
}

// The fixture's converted weights when present, else the random-weight model.
model test_model(std::string* what) {
    fs::path w = handgraph_test::testdata() / "seed1" / "weights.safetensors";
    if (fs::exists(w)) {
        *what = w.string();
        return model::load(w.string());
    }
    *what = "random weights (seed 3; fixture not found)";
    return random_model(3, demo_template("", nullptr));
}

// Three different crops: the fixture's PNGs when present, the generated demo crop and
// its mirror image.
std::vector<std::vector<unsigned char>> test_crops() {
    std::vector<std::vector<unsigned char>> crops;
    for (const char* name : {"synthetic_0.png", "real_00000.png"}) {
        fs::path p = handgraph_test::testdata() / "images" / name;
        if (fs::exists(p)) crops.push_back(load_image(p).pixels);
    }
    std::vector<unsigned char> demo = demo_crop(), mirror(demo.size());
    for (int y = 0; y < input_size; ++y)
        for (int x = 0; x < input_size; ++x)
            for (int c = 0; c < 3; ++c)
                mirror[(std::size_t(y) * input_size + std::size_t(x)) * 3 + std::size_t(c)] =
                    demo[(std::size_t(y) * input_size + std::size_t(input_size - 1 - x)) * 3 + std::size_t(c)];
    crops.push_back(std::move(demo));
    crops.push_back(std::move(mirror));
    crops.resize(3);
    for (auto& c : crops) REQUIRE(c.size() == std::size_t(input_size) * input_size * 3);
    return crops;
}

}  // namespace

TEST_CASE("one model used from 4 threads at once gives the results of sequential use") {
    std::string what;
    const model m = test_model(&what);
    const auto crops = test_crops();
    const crop_params params = demo_params();
    auto params_of = [&](std::size_t i) { return i == 0 ? &params : nullptr; };  // metric and normalised
    MESSAGE("model: " << what << "; " << num_threads << " threads x " << rounds << " rounds x " << crops.size()
                      << " crops, " << call_threads << " thread(s) per call" << std::string(HANDGRAPH_TEST_TSAN ? " (ThreadSanitizer)" : ""));

    estimate_options opt;
    opt.threads = call_threads;
    std::vector<hand_estimate> sequential;
    for (std::size_t i = 0; i < crops.size(); ++i) sequential.push_back(m.estimate(crops[i].data(), params_of(i), opt));
    // The crops differ, so a result handed to the wrong caller would show.
    CHECK_FALSE(same(sequential[1], sequential[2]));

    std::vector<std::vector<hand_estimate>> results(num_threads);
    std::vector<std::string> errors(num_threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < num_threads; ++t)
        pool.emplace_back([&, t] {
            try {
                for (int r = 0; r < rounds; ++r)
                    for (std::size_t k = 0; k < crops.size(); ++k) {
                        const std::size_t i = (k + std::size_t(t)) % crops.size();  // each thread its own order
                        results[std::size_t(t)].push_back(m.estimate(crops[i].data(), params_of(i), opt));
                    }
            } catch (const std::exception& e) {
                errors[std::size_t(t)] = e.what();
            }
        });
    for (auto& th : pool) th.join();

    for (int t = 0; t < num_threads; ++t) {
        INFO("thread " << t);
        CHECK(errors[std::size_t(t)] == "");
        REQUIRE(results[std::size_t(t)].size() == std::size_t(rounds) * crops.size());
        for (std::size_t n = 0; n < results[std::size_t(t)].size(); ++n) {
            const std::size_t i = (n % crops.size() + std::size_t(t)) % crops.size();
            INFO("call " << n << ", crop " << i);
            CHECK(same(results[std::size_t(t)][n], sequential[i]));
        }
    }
}

TEST_CASE("estimate_batch on several threads equals sequential calls") {
    std::string what;
    const model m = test_model(&what);
    const auto crops = test_crops();
    std::vector<const unsigned char*> batch;
    for (int k = 0; k < 2; ++k)
        for (auto& c : crops) batch.push_back(c.data());
    estimate_options one;
    std::vector<hand_estimate> sequential;
    for (auto& c : crops) sequential.push_back(m.estimate(c.data(), nullptr, one));
    estimate_options opt;
    opt.threads = HANDGRAPH_TEST_TSAN ? 1 : num_threads;
    const auto out = m.estimate_batch(batch, {}, opt);
    REQUIRE(out.size() == batch.size());
    for (std::size_t n = 0; n < out.size(); ++n) {
        INFO("crop " << n);
        CHECK(same(out[n], sequential[n % crops.size()]));
    }
}

TEST_CASE("STB boxes outside the image: overlapping ones are zero-padded, ones that miss it are refused") {
    fs::path dir = fs::temp_directory_path() / ("handgraph_robust_stb_" + std::to_string(std::random_device{}()));
    struct cleanup {
        fs::path p;
        ~cleanup() {
            std::error_code ec;
            fs::remove_all(p, ec);
        }
    } guard{dir};
    fs::create_directories(dir / "labels");
    std::vector<double> hand(3 * 21);
    for (std::size_t k = 0; k < hand.size(); ++k) hand[k] = (k % 3 == 2 ? 500.0 : 0.0) + double((k * 37) % 61);
    image frame(640, 480);
    for (std::size_t k = 0; k < frame.pixels.size(); ++k) frame.pixels[k] = std::uint8_t(40 + k % 200);
    for (const char* seq : {"B1Counting", "B1Random"}) {
        write_mat(dir / "labels" / (std::string(seq) + "_SK.mat"), {mat_array::numeric<double>("handPara", {3, 21, 1}, hand)});
        fs::create_directories(dir / seq);
        write_png(dir / seq / "SK_color_0.png", frame);
    }
    auto with_boxes = [&](std::array<int, 4> a, std::array<int, 4> b) {  // frame 0, frame 1
        write_mat(dir / "bboxes.mat", {mat_array::numeric<std::int32_t>("bboxes", {2, 4}, {a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3]})});
        return stb_dataset(dir, dir / "bboxes.mat");
    };
    // Partly outside (bottom right, top left): zero padding, as the release crops.
    auto ds = with_boxes({600, 440, 100, 100}, {-50, -60, 120, 100});
    for (std::size_t i = 0; i < 2; ++i) {
        sample s = ds.load(i);
        CHECK(s.crop.width == 256);
        CHECK(s.crop.height == 256);
        const int out = i == 0 ? 255 : 0, in = 255 - out;  // frame 0: bottom right outside; frame 1: top left
        CHECK(int(s.crop.at(out, out, 0)) == 0);             // padding in the corner beyond the image
        CHECK(int(s.crop.at(in, in, 0)) != 0);               // the image in the other
    }
    // Wholly outside, on each side, and touching an edge from outside: refused, named.
    for (std::array<int, 4> box : {std::array<int, 4>{640, 10, 50, 50}, std::array<int, 4>{10, 480, 50, 50},
                                   std::array<int, 4>{-50, 10, 50, 50}, std::array<int, 4>{10, -90, 50, 90},
                                   std::array<int, 4>{100000, 100000, 20, 20}}) {
        auto bad = with_boxes({100, 100, 200, 200}, box);
        CHECK(bad.load(0).crop.width == 256);
        INFO("box " << box[0] << "," << box[1] << "," << box[2] << "," << box[3]);
        CHECK_THROWS_WITH_AS(bad.load(1), doctest::Contains("frame 1 (B1Random/SK_color_0.png): box"), handgraph::error);
        CHECK_THROWS_WITH_AS(bad.load(1), doctest::Contains("wholly outside the 640x480 image"), handgraph::error);
        CHECK(bad.load(1, false).bbox == box);  // labels alone still load
    }
}

// Concurrent use of one loaded model: a model is immutable data, and every call runs with a
// context (handgraph.hpp) that owns its threads and scratch. Four std::threads share one
// model, each with its own context of 2 threads, and call estimate() repeatedly on several
// crops; every result must equal, bit for bit, the result of sequential calls. Also: one
// context shared by several threads (its calls are serialised), estimate_batch with crops
// side by side on a context's own threads, and thread counts far above the core count.
// tools/run_sanitizers.sh runs this test under ThreadSanitizer too: every thread here is a
// std::thread of the test or of a context's pool, so the races it looks for are real ones.
// The damaged-input tests of the binaries are in test_robustness.py.
// Also here: STB crop boxes outside the image (zero-padded where they overlap it,
// refused, naming the frame, where they miss it).
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "handgraph/demo.hpp"
#include "handgraph/eval/datasets.hpp"
#include "handgraph/handgraph.hpp"
#include "handgraph/image.hpp"
#include "handgraph/mat.hpp"
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

// Threads of each caller's context.
constexpr int call_threads = 2;
constexpr int rounds = HANDGRAPH_TEST_TSAN || HANDGRAPH_TEST_ASAN ? 1 : 2;  // sanitizers: slower, one round
constexpr int num_threads = 4;

template <class T>
bool same_bits(const T& a, const T& b) {
    return std::memcmp(&a, &b, sizeof(T)) == 0;
}

bool same(const hand_estimate& a, const hand_estimate& b) {
    return same_bits(a.uv_px, b.uv_px) && a.metric == b.metric && same_bits(a.pose_uvd, b.pose_uvd) && same_bits(a.mesh_uvd, b.mesh_uvd) &&
           same_bits(a.pose_cm, b.pose_cm) && same_bits(a.mesh_cm, b.mesh_cm);
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
    for (int y = 0; y < crop_size; ++y)
        for (int x = 0; x < crop_size; ++x)
            for (int c = 0; c < 3; ++c)
                mirror[(std::size_t(y) * crop_size + std::size_t(x)) * 3 + std::size_t(c)] =
                    demo[(std::size_t(y) * crop_size + std::size_t(crop_size - 1 - x)) * 3 + std::size_t(c)];
    crops.push_back(std::move(demo));
    crops.push_back(std::move(mirror));
    crops.resize(3);
    for (auto& c : crops) REQUIRE(c.size() == std::size_t(crop_size) * crop_size * 3);
    return crops;
}

image_view view(const std::vector<unsigned char>& c) { return image_view(c.data(), crop_size, crop_size); }

}  // namespace

TEST_CASE("one model used from 4 threads at once, each with its own context, gives the results of sequential use") {
    std::string what;
    const model m = test_model(&what);
    const auto crops = test_crops();
    const crop_params params = demo_params();
    auto params_of = [&](std::size_t i) { return i == 0 ? std::optional<crop_params>(params) : std::nullopt; };  // metric and normalised
    MESSAGE("model: " << what << "; " << num_threads << " threads x " << rounds << " rounds x " << crops.size() << " crops, contexts of "
                      << call_threads << " thread(s)" << std::string(HANDGRAPH_TEST_TSAN ? " (ThreadSanitizer)" : ""));

    context seq(1);
    std::vector<hand_estimate> sequential;
    for (std::size_t i = 0; i < crops.size(); ++i) sequential.push_back(m.estimate(seq, view(crops[i]), params_of(i)));
    // The crops differ, so a result handed to the wrong caller would show.
    CHECK_FALSE(same(sequential[1], sequential[2]));

    std::vector<std::vector<hand_estimate>> results(num_threads);
    std::vector<std::string> errors(num_threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < num_threads; ++t)
        pool.emplace_back([&, t] {
            try {
                context ctx(call_threads);
                for (int r = 0; r < rounds; ++r)
                    for (std::size_t k = 0; k < crops.size(); ++k) {
                        const std::size_t i = (k + std::size_t(t)) % crops.size();  // each thread its own order
                        results[std::size_t(t)].push_back(m.estimate(ctx, view(crops[i]), params_of(i)));
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

TEST_CASE("one context shared by 3 threads: calls wait for each other and give the sequential results") {
    std::string what;
    const model m = test_model(&what);
    const auto crops = test_crops();
    context seq(1);
    std::vector<hand_estimate> sequential;
    for (auto& c : crops) sequential.push_back(m.estimate(seq, view(c)));
    context shared(2);
    std::vector<std::vector<hand_estimate>> results(3);
    std::vector<std::thread> pool;
    for (int t = 0; t < 3; ++t)
        pool.emplace_back([&, t] {
            for (auto& c : crops) results[std::size_t(t)].push_back(m.estimate(shared, view(c)));
        });
    for (auto& th : pool) th.join();
    for (int t = 0; t < 3; ++t)
        for (std::size_t i = 0; i < crops.size(); ++i) CHECK(same(results[std::size_t(t)][i], sequential[i]));
    // and the default context, from several threads
    std::vector<hand_estimate> by_default(3);
    pool.clear();
    for (int t = 0; t < 3; ++t) pool.emplace_back([&, t] { by_default[std::size_t(t)] = m.estimate(view(crops[std::size_t(t)])); });
    for (auto& th : pool) th.join();
    for (std::size_t i = 0; i < crops.size(); ++i) CHECK(same(by_default[i], sequential[i]));
}

TEST_CASE("estimate_batch with crops side by side on a context's threads equals sequential calls") {
    std::string what;
    const model m = test_model(&what);
    const auto crops = test_crops();
    std::vector<image_view> batch;
    for (int k = 0; k < 2; ++k)
        for (auto& c : crops) batch.push_back(view(c));
    context seq(1);
    std::vector<hand_estimate> sequential;
    for (auto& c : crops) sequential.push_back(m.estimate(seq, view(c)));
    // 3 threads, 6 crops: side by side; 8 threads, 6 crops: one after the other on all 8.
    for (int threads : {3, 8}) {
        CAPTURE(threads);
        context ctx(threads);
        const auto out = m.estimate_batch(ctx, batch);
        REQUIRE(out.size() == batch.size());
        for (std::size_t n = 0; n < out.size(); ++n) {
            INFO("crop " << n);
            CHECK(same(out[n], sequential[n % crops.size()]));
        }
    }
    // wrong inputs are refused, naming the crop
    context ctx(2);
    std::vector<image_view> bad = batch;
    bad[4] = image_view(crops[0].data(), 255, 256);
    CHECK_THROWS_WITH_AS(m.estimate_batch(ctx, bad), doctest::Contains("crop 4"), handgraph::error);
    CHECK_THROWS_WITH_AS(m.estimate_batch(ctx, batch, std::vector<crop_params>(2)), doctest::Contains("2 crop_params for 6 crops"), handgraph::error);
}

// Thread counts far above this machine's cores work and give the same bits (or are refused).
TEST_CASE("contexts of 1, 7, 64 and 1024 threads give identical results; 0 and 1025 are refused") {
    std::string what;
    const model m = test_model(&what);
    const auto crops = test_crops();
    context one(1);
    const hand_estimate ref = m.estimate(one, view(crops[0]), demo_params());
    for (int threads : {7, 64, HANDGRAPH_TEST_TSAN ? 128 : 1024}) {
        CAPTURE(threads);
        context ctx(threads);
        CHECK(ctx.threads() == threads);
        CHECK(same(m.estimate(ctx, view(crops[0]), demo_params()), ref));
    }
    CHECK_THROWS_AS(context(0), handgraph::error);
    CHECK_THROWS_AS(context(-1), handgraph::error);
    CHECK_THROWS_WITH_AS(context(1025), doctest::Contains("1..1024"), handgraph::error);
}

TEST_CASE("a context's memory: kept between calls, released on request, the same results after") {
    std::string what;
    const model m = test_model(&what);
    const auto crops = test_crops();
    context ctx(2);
    CHECK(ctx.memory_bytes() == 0);
    const hand_estimate a = m.estimate(ctx, view(crops[0]));
    const std::size_t held = ctx.memory_bytes();
    CHECK(held > 0);
    MESSAGE("context of 2 threads holds " << double(held) / (1 << 20) << " MiB after one call");
    const hand_estimate b = m.estimate(ctx, view(crops[0]));
    CHECK(ctx.memory_bytes() == held);  // nothing new taken for the second call
    ctx.release_memory();
    CHECK(ctx.memory_bytes() == 0);
    CHECK(same(m.estimate(ctx, view(crops[0])), a));
    CHECK(same(a, b));
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

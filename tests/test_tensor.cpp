// Tests for handgraph/tensor.hpp: feature-map layout and the per-thread block cache.
#include <doctest/doctest.h>

#include <thread>

#include "handgraph/tensor.hpp"

using handgraph::feature_map;

// Destroyed at program exit, after the main thread's block cache: must not touch it
// (the sanitizer build of the suite reports a use-after-free if it does).
static feature_map outlives_the_cache(8, 8, 16, 1);

TEST_CASE("feature maps are zeroed, padded to 16 channels, with a zero border") {
    feature_map a(5, 7, 21, 2);
    CHECK(a.cpad == 32);
    CHECK(a.row_stride() == std::size_t(7 + 4) * 32);
    a.pixel(0, 0)[0] = 3.0f;
    CHECK(a.at(0, 0, 0) == 3.0f);
    CHECK(a.pixel(-2, -2) == a.buf.data());
    a.reset(5, 7, 21, 2);  // same size: contents zeroed again
    CHECK(a.at(0, 0, 0) == 0.0f);
}

TEST_CASE("freed blocks are reused by the next allocation of the same size, zeroed") {
    const float* first;
    {
        feature_map a(16, 16, 64, 0);
        a.pixel(3, 3)[5] = 7.0f;
        first = a.buf.data();
    }
    feature_map b(16, 16, 64, 0);
    CHECK(b.buf.data() == first);
    CHECK(b.at(5, 3, 3) == 0.0f);
}

TEST_CASE("buffers freed on other threads and after thread exit are safe") {
    feature_map moved;
    std::thread t([&] {
        feature_map inner(4, 4, 16, 0);
        inner.pixel(1, 1)[1] = 2.0f;
        moved = std::move(inner);  // freed later by the main thread
        feature_map scratch(9, 9, 16, 0);  // freed into this thread's cache, which then dies
    });
    t.join();
    CHECK(moved.at(1, 1, 1) == 2.0f);
    outlives_the_cache.pixel(0, 0)[0] = 1.0f;
}

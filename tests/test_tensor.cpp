// Tests for handgraph/tensor.hpp: feature-map layout, the block pool of a workspace (a
// context's activation memory) and the workspace's scratch areas.
#include <doctest/doctest.h>

#include <cstdint>
#include <thread>

#include "handgraph/tensor.hpp"

using handgraph::aligned_buffer;
using handgraph::feature_map;
using handgraph::detail::block_pool;
using handgraph::detail::workspace;

// Without a source, buffers live on the heap: nothing to outlive at program exit.
static feature_map heap_map(8, 8, 16, 1);

TEST_CASE("feature maps are zeroed, padded to 16 channels, with a zero border") {
    feature_map a(5, 7, 21, 2);
    CHECK(a.cpad == 32);
    CHECK(a.row_stride() == std::size_t(7 + 4) * 32);
    a.pixel(0, 0)[0] = 3.0f;
    CHECK(a.at(0, 0, 0) == 3.0f);
    CHECK(a.pixel(-2, -2) == a.buf.data());
    a.reset(5, 7, 21, 2);  // same size: contents zeroed again
    CHECK(a.at(0, 0, 0) == 0.0f);
    heap_map.pixel(0, 0)[0] = 1.0f;
}

TEST_CASE("a block pool reuses freed blocks of the same size, zeroed for the new owner") {
    block_pool pool;
    const float* first;
    {
        feature_map a(&pool, 16, 16, 64, 0);
        a.pixel(3, 3)[5] = 7.0f;
        first = a.buf.data();
        CHECK(pool.bytes_in_use() == a.buf.size() * sizeof(float));
        CHECK(pool.bytes_cached() == 0);
    }
    CHECK(pool.bytes_in_use() == 0);
    CHECK(pool.bytes_cached() == 16 * 16 * 64 * sizeof(float));
    feature_map b(&pool, 16, 16, 64, 0);
    CHECK(b.buf.data() == first);
    CHECK(b.at(5, 3, 3) == 0.0f);
    CHECK(pool.bytes_cached() == 0);
    // another size: a new block
    feature_map c(&pool, 4, 4, 16, 0);
    CHECK(c.buf.data() != first);
    CHECK(pool.peak_bytes() >= (16 * 16 * 64 + 4 * 4 * 16) * sizeof(float));
    // the map keeps its source through reset and move
    c.reset(16, 16, 64, 1);
    CHECK(c.buf.source() == &pool);
    feature_map d = std::move(c);
    CHECK(d.buf.source() == &pool);
}

TEST_CASE("release_cached frees the cached blocks and keeps those in use") {
    block_pool pool;
    aligned_buffer keep(1 << 20, &pool);
    { aligned_buffer a(1 << 18, &pool), b(100, &pool); }
    CHECK(pool.bytes_cached() > 0);
    pool.release_cached();
    CHECK(pool.bytes_cached() == 0);
    CHECK(pool.bytes_in_use() == (std::size_t(1) << 20) * sizeof(float));
    keep[12345] = 1.0f;
    CHECK(keep[12345] == 1.0f);
}

TEST_CASE("buffers made on one thread may be freed on another (one pool, one thread at a time)") {
    block_pool pool;
    feature_map moved;
    std::thread t([&] {
        feature_map inner(&pool, 4, 4, 16, 0);
        inner.pixel(1, 1)[1] = 2.0f;
        moved = std::move(inner);  // freed later by the main thread, into the same pool
    });
    t.join();
    CHECK(moved.at(1, 1, 1) == 2.0f);
    moved = feature_map();
    CHECK(pool.bytes_in_use() == 0);
    CHECK(pool.bytes_cached() == 4 * 4 * 16 * sizeof(float));
}

TEST_CASE("workspace scratch: grown to the largest request, 64-byte aligned, freed") {
    workspace w;
    float* a = w.scratch(1000);
    CHECK(reinterpret_cast<std::uintptr_t>(a) % 64 == 0);
    a[999] = 1.0f;
    CHECK(w.scratch(500) == a);  // smaller: the same buffer
    CHECK(w.scratch(500)[999] == 1.0f);
    CHECK(w.bytes_held() >= 1000 * sizeof(float));
    float* big = w.scratch(1 << 20);
    big[(1 << 20) - 1] = 2.0f;
    CHECK(w.scratch_bytes() >= (std::size_t(1) << 20) * sizeof(float));
    { aligned_buffer b(1 << 16, &w.blocks); }
    CHECK(w.bytes_held() >= w.scratch_bytes() + (std::size_t(1) << 16) * sizeof(float));
    w.release_cached();
    CHECK(w.bytes_held() == 0);
}

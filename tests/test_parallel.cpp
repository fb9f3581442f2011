// Tests for handgraph/kernels/parallel.hpp (the kernels' worker pool) and the weight arena
// of handgraph/tensor.hpp. Run under ThreadSanitizer by tools/run_sanitizers.sh.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "handgraph/kernels/parallel.hpp"
#include "handgraph/tensor.hpp"

using handgraph::kernels::detail::parallel_for;
using handgraph::kernels::detail::pool_run;
using handgraph::kernels::detail::worker_pool;

namespace {

// Runs a loop of n items on `threads` threads, `grain` at a time; returns how often each
// item ran and checks the worker ids.
std::vector<int> run_counts(int threads, int n, int grain, std::vector<int>* workers_seen = nullptr) {
    std::vector<std::atomic<int>> hits(std::size_t(n > 0 ? n : 0));
    std::vector<std::atomic<int>> by_worker(std::size_t(threads > 0 ? threads : 1));
    std::atomic<int> bad_worker{0};
    parallel_for(&pool_run, threads, true, n, grain, [&](int i, int w) {
        hits[std::size_t(i)].fetch_add(1);
        if (w < 0 || w >= (threads > 0 ? threads : 1)) bad_worker.fetch_add(1);
        else by_worker[std::size_t(w)].fetch_add(1);
    });
    CHECK(bad_worker.load() == 0);
    if (workers_seen)
        for (auto& b : by_worker) workers_seen->push_back(b.load());
    std::vector<int> out;
    for (auto& h : hits) out.push_back(h.load());
    return out;
}

}  // namespace

TEST_CASE("parallel_for runs every item exactly once, with worker ids below the thread count") {
    for (int threads : {1, 2, 3, 5})
        for (int n : {0, 1, 2, 7, 64, 1000})
            for (int grain : {1, 3, 16}) {
                CAPTURE(threads);
                CAPTURE(n);
                CAPTURE(grain);
                const std::vector<int> c = run_counts(threads, n, grain);
                int wrong = 0;
                for (int v : c) wrong += v != 1;
                CHECK(wrong == 0);
            }
}

TEST_CASE("parallel_for: serial when told so, on the calling thread") {
    const auto me = std::this_thread::get_id();
    std::atomic<int> elsewhere{0}, runs{0};
    parallel_for(&pool_run, 4, false, 100, 1, [&](int, int w) {
        runs.fetch_add(1);
        if (std::this_thread::get_id() != me || w != 0) elsewhere.fetch_add(1);
    });
    parallel_for(nullptr, 4, true, 100, 1, [&](int, int w) {
        runs.fetch_add(1);
        if (std::this_thread::get_id() != me || w != 0) elsewhere.fetch_add(1);
    });
    CHECK(runs.load() == 200);
    CHECK(elsewhere.load() == 0);
}

TEST_CASE("the helpers take part: with slow items, more than one thread runs them") {
    std::vector<std::atomic<int>> hits(64);
    std::vector<std::atomic<int>> by_worker(2);
    parallel_for(&pool_run, 2, true, 64, 1, [&](int i, int w) {
        hits[std::size_t(i)].fetch_add(1);
        by_worker[std::size_t(w)].fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    CHECK(by_worker[0].load() + by_worker[1].load() == 64);
    CHECK(by_worker[1].load() > 0);
}

TEST_CASE("the caller does not wait for a helper that is busy elsewhere: it runs the items itself") {
    // Many short loops back to back (as the network's layers are), some with fewer threads
    // than the pool has: every item once per loop, every time.
    int wrong = 0;
    for (int rep = 0; rep < 2000; ++rep) {
        const int threads = 1 + rep % 3, n = 1 + (rep * 7) % 50;
        const std::vector<int> c = run_counts(threads, n, 1 + rep % 2);
        for (int v : c) wrong += v != 1;
    }
    CHECK(wrong == 0);
}

TEST_CASE("several calling threads, each with its own pool, at once") {
    std::atomic<int> wrong{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 4; ++t)
        callers.emplace_back([&, t] {
            for (int rep = 0; rep < 300; ++rep) {
                const int n = 10 + (rep + t) % 40;
                const std::size_t nn = std::size_t(n);
                std::vector<std::atomic<int>> hits(nn);
                parallel_for(&pool_run, 2, true, n, 1, [&](int i, int w) {
                    hits[std::size_t(i)].fetch_add(1);
                    if (w > 1) wrong.fetch_add(1);
                });
                for (auto& h : hits) wrong += h.load() != 1;
            }
        });
    for (auto& c : callers) c.join();
    CHECK(wrong.load() == 0);
}

TEST_CASE("a loop over 2^24 items or more is refused, not run wrongly") {
    CHECK_THROWS_AS(worker_pool::local().run(2, 1 << 24, [](void*, int, int) {}, nullptr), handgraph::error);
}

TEST_CASE("aligned buffers made inside an arena_scope come from the arena: zeroed, aligned, kept") {
    handgraph::detail::weight_arena arena;
    std::vector<handgraph::aligned_buffer> bufs;
    {
        handgraph::detail::arena_scope scope(arena);
        for (std::size_t n : {std::size_t(5), std::size_t(1000), std::size_t(3) << 20, std::size_t(70000)}) {
            handgraph::aligned_buffer b(n);
            CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 64 == 0);
            bool zero = true;
            for (std::size_t i = 0; i < n; ++i) zero = zero && b[i] == 0.0f;
            CHECK(zero);
            b[n - 1] = float(n);
            bufs.push_back(std::move(b));
        }
        // Nested scopes restore the outer one.
        handgraph::detail::weight_arena inner;
        {
            handgraph::detail::arena_scope s2(inner);
            CHECK(handgraph::detail::weight_arena::current() == &inner);
        }
        CHECK(handgraph::detail::weight_arena::current() == &arena);
    }
    CHECK(handgraph::detail::weight_arena::current() == nullptr);
    // The 12 MB buffer has chunks of its own, the small ones share one 32 MiB chunk.
    CHECK(arena.reserved() >= (std::size_t(12) << 20) + handgraph::detail::weight_arena::chunk_bytes);
    CHECK(arena.reserved() % handgraph::detail::weight_arena::huge_page == 0);
    CHECK(bufs[2][(std::size_t(3) << 20) - 1] == float(std::size_t(3) << 20));
    // Outside a scope, buffers come from the heap again (and may be freed one by one).
    handgraph::aligned_buffer heap(100);
    const std::size_t before = arena.reserved();
    heap.resize(5000);
    CHECK(arena.reserved() == before);
    bufs.clear();  // releasing arena memory is a no-op; the arena frees it when destroyed
}

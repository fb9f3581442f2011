// Tests for handgraph/kernels/parallel.hpp (the worker pool a context owns) and the memory
// sources of handgraph/tensor.hpp (the weight arena). Run under ThreadSanitizer by
// tools/run_sanitizers.sh.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "handgraph/context.hpp"
#include "handgraph/kernels/parallel.hpp"
#include "handgraph/tensor.hpp"

using handgraph::kernels::detail::loop_runner;
using handgraph::kernels::detail::parallel_for;
using handgraph::kernels::detail::runner_of;
using handgraph::kernels::detail::worker_pool;

namespace {

// Runs a loop of n items on `threads` threads of `pool`, `grain` at a time; returns how often
// each item ran and checks the slots: below min(threads, chunks + 1), one thread per slot.
std::vector<int> run_counts(worker_pool& pool, int threads, int n, int grain) {
    std::vector<std::atomic<int>> hits(std::size_t(n > 0 ? n : 0));
    const int cap = threads > 0 ? threads : 1;
    std::vector<std::atomic<std::uint64_t>> owner(static_cast<std::size_t>(cap));  // hash of the thread using each slot
    std::atomic<int> bad_slot{0}, shared_slot{0};
    parallel_for(runner_of(pool, threads), true, n, grain, [&](int i, int slot) {
        hits[std::size_t(i)].fetch_add(1);
        if (slot < 0 || slot >= cap || slot > n) {
            bad_slot.fetch_add(1);
            return;
        }
        const std::uint64_t me = std::hash<std::thread::id>()(std::this_thread::get_id()) | 1;
        std::uint64_t expected = 0;
        if (!owner[std::size_t(slot)].compare_exchange_strong(expected, me) && expected != me) shared_slot.fetch_add(1);
    });
    CHECK(bad_slot.load() == 0);
    CHECK(shared_slot.load() == 0);
    std::vector<int> out;
    for (auto& h : hits) out.push_back(h.load());
    return out;
}

int count_wrong(const std::vector<int>& c) {
    int wrong = 0;
    for (int v : c) wrong += v != 1;
    return wrong;
}

}  // namespace

TEST_CASE("parallel_for runs every item exactly once, in dense slots below the thread count") {
    for (int threads : {1, 2, 3, 5}) {
        worker_pool pool(threads);
        for (int n : {0, 1, 2, 7, 64, 1000})
            for (int grain : {1, 3, 16}) {
                CAPTURE(threads);
                CAPTURE(n);
                CAPTURE(grain);
                CHECK(count_wrong(run_counts(pool, threads, n, grain)) == 0);
            }
    }
}

TEST_CASE("parallel_for: serial when told so, on the calling thread, in slot 0") {
    const auto me = std::this_thread::get_id();
    std::atomic<int> elsewhere{0}, runs{0};
    worker_pool pool(4);
    parallel_for(runner_of(pool, 4), false, 100, 1, [&](int, int w) {
        runs.fetch_add(1);
        if (std::this_thread::get_id() != me || w != 0) elsewhere.fetch_add(1);
    });
    parallel_for(loop_runner{}, true, 100, 1, [&](int, int w) {
        runs.fetch_add(1);
        if (std::this_thread::get_id() != me || w != 0) elsewhere.fetch_add(1);
    });
    CHECK(runs.load() == 200);
    CHECK(elsewhere.load() == 0);
    CHECK(pool.helpers_started() == 0);  // nothing ran in parallel: no helper was made
}

TEST_CASE("the helpers take part: with slow items, more than one thread runs them") {
    worker_pool pool(2);
    std::vector<std::atomic<int>> by_slot(2);
    parallel_for(runner_of(pool, 2), true, 64, 1, [&](int, int w) {
        by_slot[std::size_t(w)].fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    CHECK(by_slot[0].load() + by_slot[1].load() == 64);
    CHECK(by_slot[1].load() > 0);
    CHECK(pool.helpers_started() == 1);
}

// The order each thread claims in (parallel.hpp: home ranges): the front of its own half
// upwards, then the other half from its back downwards. So the rows a thread computed in
// one layer are, bar the stolen ones, the rows it computes in the next.
TEST_CASE("home ranges: on 2 threads each thread runs its own half upwards, then steals the other half from its back") {
    worker_pool pool(2);
    const auto caller = std::this_thread::get_id();
    for (int n : {2, 7, 64}) {
        for (int rep = 0; rep < 3; ++rep) {
            std::mutex m;
            std::vector<int> mine, theirs;  // items in the order the caller and the helper ran them
            struct ctx_t {
                std::mutex* m;
                std::vector<int>*mine, *theirs;
                std::thread::id caller;
            } c{&m, &mine, &theirs, caller};
            pool.run(2, n,
                     [](void* p, int item, int) {
                         auto& x = *static_cast<ctx_t*>(p);
                         {
                             std::lock_guard<std::mutex> lock(*x.m);
                             (std::this_thread::get_id() == x.caller ? x.mine : x.theirs)->push_back(item);
                         }
                         std::this_thread::sleep_for(std::chrono::microseconds(300));
                     },
                     &c);
            CAPTURE(n);
            REQUIRE(int(mine.size() + theirs.size()) == n);
            // [home, home + a) upwards, then [steal_end - b, steal_end) downwards.
            auto check_order = [](const std::vector<int>& seq, int home, int home_end, int steal_end) {
                std::size_t i = 0;
                for (int next = home; i < seq.size() && seq[i] == next && next < home_end; ++i, ++next) {
                }
                for (int back = steal_end - 1; i < seq.size(); ++i, --back) CHECK(seq[i] == back);
            };
            const int half = n / 2;
            check_order(mine, 0, half, n);
            check_order(theirs, half, n, half);
            std::set<int> all(mine.begin(), mine.end());
            all.insert(theirs.begin(), theirs.end());
            CHECK(int(all.size()) == n);
        }
    }
}

TEST_CASE("the caller does not wait for a helper that is busy elsewhere: it runs the items itself") {
    // Many short loops back to back (as the network's layers are), some with fewer threads
    // than the pool has: every item once per loop, every time.
    worker_pool pool(3);
    int wrong = 0;
    for (int rep = 0; rep < 2000; ++rep) {
        const int threads = 1 + rep % 3, n = 1 + (rep * 7) % 50;
        wrong += count_wrong(run_counts(pool, threads, n, 1 + rep % 2));
    }
    CHECK(wrong == 0);
}

TEST_CASE("several calling threads, each with its own pool, at once") {
    std::atomic<int> wrong{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 4; ++t)
        callers.emplace_back([&, t] {
            worker_pool pool(2);
            for (int rep = 0; rep < 300; ++rep) {
                const int n = 10 + (rep + t) % 40;
                std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
                parallel_for(runner_of(pool, 2), true, n, 1, [&](int i, int w) {
                    hits[std::size_t(i)].fetch_add(1);
                    if (w > 1) wrong.fetch_add(1);
                });
                for (auto& h : hits) wrong += h.load() != 1;
            }
        });
    for (auto& c : callers) c.join();
    CHECK(wrong.load() == 0);
}

// The old pool packed the thread count into 8 bits: 256 threads wrapped to 0 and every loop
// hung (README: issue 10). Every count a pool accepts must run every item once, and finish.
TEST_CASE("thread counts up to 1024 work; outside 1..1024 they are refused") {
    for (int threads : {2, 255, 256, 257, 1000, 1024}) {
        CAPTURE(threads);
        worker_pool pool(threads);
        // fewer items than threads (the case hand_eval met with few frames), and more
        for (int n : {1, 3, threads - 1, threads + 5, 5000}) {
            CAPTURE(n);
            CHECK(count_wrong(run_counts(pool, threads, n, 1)) == 0);
        }
        CHECK(pool.helpers_started() <= threads - 1);
    }
    CHECK_THROWS_AS(worker_pool(0), handgraph::error);
    CHECK_THROWS_AS(worker_pool(-3), handgraph::error);
    CHECK_THROWS_AS(worker_pool(1025), handgraph::error);
    CHECK_THROWS_AS(handgraph::detail::context_state(1025), handgraph::error);
}

TEST_CASE("a loop over 2^24 items or more is refused, not run wrongly") {
    worker_pool pool(2);
    CHECK_THROWS_AS(pool.run(2, 1 << 24, [](void*, int, int) {}, nullptr), handgraph::error);
}

TEST_CASE("the weight arena: zeroed, aligned, kept until the arena goes") {
    handgraph::detail::weight_arena arena;
    std::vector<handgraph::aligned_buffer> bufs;
    for (std::size_t n : {std::size_t(5), std::size_t(1000), std::size_t(3) << 20, std::size_t(70000)}) {
        handgraph::aligned_buffer b(n, &arena);
        CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 64 == 0);
        bool zero = true;
        for (std::size_t i = 0; i < n; ++i) zero = zero && b[i] == 0.0f;
        CHECK(zero);
        b[n - 1] = float(n);
        bufs.push_back(std::move(b));
    }
    // The 12 MB buffer has chunks of its own, the small ones share one 32 MiB chunk.
    CHECK(arena.reserved() >= (std::size_t(12) << 20) + handgraph::detail::weight_arena::chunk_bytes);
    CHECK(arena.reserved() % handgraph::detail::weight_arena::huge_page == 0);
    CHECK(arena.used() >= (std::size_t(3) << 20) * 4);
    CHECK(bufs[2][(std::size_t(3) << 20) - 1] == float(std::size_t(3) << 20));
    // Buffers without a source come from the heap (and may be freed one by one).
    handgraph::aligned_buffer heap(100);
    const std::size_t before = arena.reserved();
    heap.resize(5000);
    CHECK(arena.reserved() == before);
    bufs.clear();  // releasing arena memory is a no-op; the arena frees it when destroyed
}

TEST_CASE("a context owns its threads and memory; destroying it returns them") {
    handgraph::detail::context_state ctx(3);
    CHECK(ctx.threads() == 3);
    CHECK(ctx.pool().helpers_started() == 0);
    CHECK(ctx.bytes_held() == 0);
    const handgraph::kernels::exec ex = ctx.exec();
    CHECK(ex.threads() == 3);
    {
        handgraph::feature_map m(ex.memory(), 64, 64, 64, 1);
        CHECK(ctx.bytes_held() >= m.buf.size() * sizeof(float));
    }
    const std::size_t cached = ctx.bytes_held();
    CHECK(cached > 0);  // kept for the next call of that size
    {
        handgraph::feature_map m(ex.memory(), 64, 64, 64, 1);
        CHECK(ctx.bytes_held() == cached);  // the same block again
    }
    ctx.release_cached();
    CHECK(ctx.bytes_held() == 0);
    // serial work on slot 2 uses slot 2's workspace only
    const handgraph::kernels::exec s2 = ctx.serial_exec(2);
    CHECK(s2.threads() == 1);
    CHECK(s2.memory() != ex.memory());
}

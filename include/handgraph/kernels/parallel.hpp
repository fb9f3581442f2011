// handgraph/kernels/parallel.hpp: the kernels' loop over work items on several threads.
//
// A worker_pool belongs to one context (context.hpp): the context's owner makes it with a
// thread count, and it holds that many threads less one (the caller is the first), started
// on the first loop that wants them and joined when the pool is destroyed. Nothing here is
// thread-local or global: N contexts cost N pools, whatever thread calls them.
//
// A loop of n items on t threads is cut into t home ranges of consecutive items, one per
// thread (the caller's first, then helper 1's, ...), each a word holding (t, next, end).
// A thread claims the front of its own range with one compare-and-swap on that word; when
// its range is empty it steals from the back of the others'. The map kernels' items are
// rows (or row-major tiles) in the same order in every layer, so a thread mostly reads the rows
// it wrote itself in the layer before, from its own cache (with one shared claim word the
// rows went to whichever thread came first, and on a 2-core Zen 1 the palm detector's depthwise
// layers ran no faster on 2 threads than on 1; benchmarks/NOTES.md, 2026-12-03).
// The caller never waits for a helper that has not started: it claims whatever is left
// (stealing the helper's range) and then waits only for items a helper has claimed and not
// finished. So when another process holds a core and a helper is not scheduled, a layer
// costs the single-thread time instead of a wait for the descheduled thread at every layer
// (which is what an OpenMP barrier does; benchmarks/NOTES.md).
//
// Every thread that takes part in a loop gets a *slot*: 0 for the caller, 1, 2, ... for
// helpers in the order they claim their first item of that loop. Slots are dense: a loop
// of n items on t threads uses slots below min(t, n + 1), so per-slot scratch (Winograd's)
// grows with the work actually shared, not with the thread count. A slot is used by one
// thread at a time.
//
// Results do not depend on which thread runs an item: the kernels' items write disjoint
// outputs with the same operations whoever runs them; the slot only selects scratch space.
//
// Kernels compiled per instruction set (dispatch.hpp) must not call shared inline code, so
// they reach the pool through a function pointer (loop_runner::run) filled in by generic
// code, and loop with the `parallel_for` template below, which is instantiated apart for
// each kernel.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../error.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

// body(ctx, item, slot) for item in [0, n). Bodies must not throw (the kernels' loops do
// not): an exception in a helper thread ends the program.
using parallel_body = void (*)(void* ctx, int item, int slot);

// How a kernel's loop reaches its pool: run(pool, threads, n, body, ctx) runs body for every
// item on up to `threads` threads and returns when all are done. A null `run` (or threads
// <= 1) runs loops serially on the calling thread, in slot 0.
struct loop_runner {
    void (*run)(void* pool, int threads, int n, parallel_body body, void* ctx) = nullptr;
    void* pool = nullptr;
    int threads = 1;
};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

class worker_pool {
public:
    // The largest thread count a pool (and so a context) accepts. A range word keeps the
    // loop's thread count in 16 bits, so this is a policy, not a field width.
    static constexpr int max_threads = 1024;
    // Items of one loop: a range's end and next item share its word, 24 bits each.
    static constexpr int max_items = (1 << 24) - 1;

    explicit worker_pool(int threads) : threads_(threads) {
        if (threads < 1 || threads > max_threads)
            throw error("thread count " + std::to_string(threads) + " is outside 1.." + std::to_string(max_threads));
        const unsigned hw = std::thread::hardware_concurrency();
        max_spinners_ = hw > 1 ? int(hw) - 1 : 1;
        ranges_.reset(new range_word[std::size_t(threads)]);
    }
    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;
    ~worker_pool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_.store(true);
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    int threads() const { return threads_; }
    // Helper threads started so far (at most threads() - 1).
    int helpers_started() const { return int(workers_.size()); }

    // body(ctx, item, slot) for every item in [0, n) on up to min(threads, threads()) threads;
    // returns when all are done. One loop at a time (the context serialises its calls).
    void run(int threads, int n, parallel_body body, void* ctx) {
        if (threads > threads_) threads = threads_;
        if (threads <= 1 || n <= 1) {
            for (int i = 0; i < n; ++i) body(ctx, i, 0);
            return;
        }
        if (n > max_items) throw error("kernels: parallel loop of " + std::to_string(n) + " items (at most 2^24 - 1)");
        grow(threads - 1);
        body_ = body;
        ctx_ = ctx;
        slots_.store(1, std::memory_order_relaxed);
        loop_id_.fetch_add(1, std::memory_order_relaxed);
        done_.store(0, std::memory_order_relaxed);
        // Every range of the last loop is empty (its items were all done), so a helper that
        // reads a word before it is rewritten here finds nothing to claim in it.
        for (int r = 0; r < threads; ++r)
            ranges_[std::size_t(r)].w.store(pack(threads, int(std::int64_t(n) * r / threads), int(std::int64_t(n) * (r + 1) / threads)),
                                            std::memory_order_release);
        epoch_.fetch_add(1, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            { std::lock_guard<std::mutex> lock(mutex_); }
            // Wake as many sleepers as can find work (the caller takes one item itself).
            const int want = std::min(threads - 1, n - 1);
            if (want >= int(workers_.size())) wake_.notify_all();
            else
                for (int i = 0; i < want; ++i) wake_.notify_one();
        }
        int mine = 0;
        for (int item; (item = claim(0)) >= 0; ++mine) body(ctx, item, 0);
        if (mine) done_.fetch_add(mine, std::memory_order_acq_rel);
        // Wait for the items helpers claimed: spin briefly, then yield the core (a helper
        // that was preempted mid-item may need it).
        auto spins = 0;
        while (done_.load(std::memory_order_acquire) < n) {
            if (++spins < 4096) cpu_relax();
            else std::this_thread::yield();
        }
    }

private:
    // A home range: bits 48..63 the loop's thread count, 24..47 its end, 0..23 its next item
    // (next <= end <= n < 2^24).
    struct alignas(64) range_word {
        std::atomic<std::uint64_t> w{0};
    };
    static std::uint64_t pack(int threads, int next, int end) {
        return (std::uint64_t(threads) << 48) | (std::uint64_t(end) << 24) | std::uint64_t(next);
    }

    // Claims an item for the thread with id `worker` (0 = the caller): the front of its own
    // range, else the back of another's (the next ones first); its index, or -1 when none is
    // left for it (all claimed, or the loop runs on fewer threads than worker + 1). A word's
    // thread count is read with its range, so a word rewritten for a newer loop is judged by
    // that loop's.
    int claim(int worker) {
        const int threads = int(ranges_[0].w.load(std::memory_order_acquire) >> 48);
        if (worker >= threads) return -1;
        for (int k = 0; k < threads; ++k) {
            const int item = take(ranges_[std::size_t((worker + k) % threads)].w, worker, k == 0);
            if (item != empty_range) return item;  // an item, or -1: this loop is not for `worker`
        }
        return -1;
    }

    // One item of a range: its front (`front`: the owner) or its back (a thief); -1 when the
    // word's loop runs on fewer threads than worker + 1, empty_range when nothing is left.
    static constexpr int empty_range = -2;
    static int take(std::atomic<std::uint64_t>& word, int worker, bool front) {
        std::uint64_t w = word.load(std::memory_order_acquire);
        for (;;) {
            const int t = int(w >> 48), end = int((w >> 24) & 0xffffff), next = int(w & 0xffffff);
            if (worker >= t) return -1;
            if (next >= end) return empty_range;
            const std::uint64_t claimed = front ? w + 1 : w - (std::uint64_t(1) << 24);
            if (word.compare_exchange_weak(w, claimed, std::memory_order_acq_rel, std::memory_order_acquire)) return front ? next : end - 1;
        }
    }

    void grow(int helpers) {
        while (int(workers_.size()) < helpers) {
            const int id = int(workers_.size()) + 1;
            workers_.emplace_back([this, id] { work(id); });
        }
    }

    void work(int id) {
        std::uint32_t seen = 0;
        std::uint64_t my_loop = 0;
        int slot = 0;
        for (;;) {
            // Wait for a new loop: spin ~0.2 ms (layers follow each other closely), then
            // sleep. Only as many helpers spin as there are other cores; the rest sleep at
            // once, so a pool with more threads than cores does not starve its caller.
            std::uint32_t e = epoch_.load(std::memory_order_acquire);
            if (e == seen) {
                const bool spin = spinners_.fetch_add(1, std::memory_order_relaxed) < max_spinners_;
                const auto start = std::chrono::steady_clock::now();
                for (int i = 0; spin && (e = epoch_.load(std::memory_order_acquire)) == seen && !stop_.load(std::memory_order_relaxed); ++i) {
                    cpu_relax();
                    if ((i & 255) == 255 && std::chrono::steady_clock::now() - start > std::chrono::microseconds(200)) break;
                }
                spinners_.fetch_sub(1, std::memory_order_relaxed);
                if ((e = epoch_.load(std::memory_order_acquire)) == seen) {
                    std::unique_lock<std::mutex> lock(mutex_);
                    sleepers_.fetch_add(1, std::memory_order_seq_cst);
                    wake_.wait(lock, [&] { return epoch_.load(std::memory_order_seq_cst) != seen || stop_.load(); });
                    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
                    e = epoch_.load(std::memory_order_acquire);
                }
            }
            if (stop_.load()) return;
            seen = e;
            for (int item; (item = claim(id)) >= 0;) {
                // body_, ctx_, loop_id_ and slots_ are read only after a successful claim:
                // the caller cannot start another loop (and overwrite them) before this
                // loop's claimed items are counted done. This thread may claim in several
                // loops without sleeping in between: the loop id says when a new slot is due.
                const std::uint64_t loop = loop_id_.load(std::memory_order_relaxed);
                if (loop != my_loop) {
                    my_loop = loop;
                    slot = slots_.fetch_add(1, std::memory_order_relaxed);
                }
                body_(ctx_, item, slot);
                done_.fetch_add(1, std::memory_order_acq_rel);  // at once: the next claim may be another loop's
            }
        }
    }

    std::unique_ptr<range_word[]> ranges_;  // one per thread of the pool
    alignas(64) std::atomic<int> done_{0};
    alignas(64) std::atomic<std::uint32_t> epoch_{0};
    std::atomic<std::uint64_t> loop_id_{0};
    std::atomic<int> slots_{1};
    std::atomic<int> sleepers_{0}, spinners_{0};
    std::atomic<bool> stop_{false};
    parallel_body body_ = nullptr;
    void* ctx_ = nullptr;
    std::mutex mutex_;
    std::condition_variable wake_;
    int threads_ = 1, max_spinners_ = 1;
    std::vector<std::thread> workers_;
};

// The function a loop_runner holds for a worker_pool.
inline void pool_run(void* pool, int threads, int n, parallel_body body, void* ctx) {
    static_cast<worker_pool*>(pool)->run(threads, n, body, ctx);
}

inline loop_runner runner_of(worker_pool& pool, int threads) { return loop_runner{&pool_run, &pool, threads}; }

// f(item, slot) for item in [0, n), on up to `r.threads` threads through `r.run` (serially,
// in slot 0, when run is null, threads <= 1 or !cond). Items are claimed `grain` at a time, or more:
// about 8 claims per thread (each claim is a compare-and-swap on a cache line the threads
// share; one per item cost ~3% at 2 threads).
template <class F>
void parallel_for(const loop_runner& r, bool cond, int n, int grain, const F& f) {
    const int threads = r.threads;
    if (!r.run || threads <= 1 || !cond || n <= 1) {
        for (int i = 0; i < n; ++i) f(i, 0);
        return;
    }
    if (grain < 1) grain = 1;
    if (grain < n / (threads * 8)) grain = n / (threads * 8);
    struct ctx_t {
        const F* f;
        int n, grain;
    } ctx{&f, n, grain};
    const int chunks = (n + grain - 1) / grain;
    r.run(r.pool, threads, chunks,
          [](void* c, int chunk, int slot) {
              const ctx_t& x = *static_cast<const ctx_t*>(c);
              const int end = (chunk + 1) * x.grain < x.n ? (chunk + 1) * x.grain : x.n;
              for (int i = chunk * x.grain; i < end; ++i) (*x.f)(i, slot);
          },
          &ctx);
}

}  // namespace detail
}  // namespace kernels
}  // namespace handgraph

// handgraph/kernels/parallel.hpp: the kernels' loop over work items on several threads.
//
// Each calling thread owns a small pool of helper threads (made on first use, kept until
// the calling thread ends), so one model can be used from several threads at once, each
// call with its own helpers. A loop of n items is shared out dynamically: every thread
// (the caller included) claims the next unclaimed item with one compare-and-swap on a word
// holding (threads, n, next). The caller never waits for a helper that has not started: it
// claims whatever is left itself and then waits only for items a helper has claimed and not
// finished. So when another process holds a core and a helper is not scheduled, a layer
// costs the single-thread time instead of a wait for the descheduled thread at every layer
// (which is what an OpenMP barrier does; benchmarks/NOTES.md).
//
// Results do not depend on which thread runs an item: the kernels' items write disjoint
// outputs with the same operations whoever runs them, and `worker` (0 = the caller,
// 1..threads-1 = helpers, each id used by one thread at a time) only selects scratch space.
//
// Kernels compiled per instruction set (dispatch.hpp) must not call shared inline code, so
// they reach the pool through a function pointer filled in by the generic code that builds
// their arguments (`parallel_runner`), and loop with the `parallel_for` template below, which
// is instantiated apart for each kernel.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "../error.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

// body(ctx, item, worker) for item in [0, n); worker < threads. Bodies must not throw (the
// kernels' loops do not): an exception in a helper thread ends the program.
using parallel_body = void (*)(void* ctx, int item, int worker);
// Runs body for every item in [0, n) on up to `threads` threads, returns when all are done.
using parallel_runner = void (*)(int threads, int n, parallel_body body, void* ctx);

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

class worker_pool {
public:
    static constexpr int max_threads = 256;

    worker_pool() = default;
    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;
    ~worker_pool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_.store(true);
        }
        wake_.notify_all();
        for (int i = 0; i < nworkers_; ++i) workers_[i].join();
    }

    // The calling thread's pool.
    static worker_pool& local() {
        thread_local worker_pool pool;
        return pool;
    }

    void run(int threads, int n, parallel_body body, void* ctx) {
        if (threads > max_threads) threads = max_threads;
        if (threads <= 1 || n <= 1) {
            for (int i = 0; i < n; ++i) body(ctx, i, 0);
            return;
        }
        if (n >= (1 << 24)) throw error("kernels: parallel loop of " + std::to_string(n) + " items (at most 2^24)");
        grow(threads - 1);
        body_ = body;
        ctx_ = ctx;
        done_.store(0, std::memory_order_relaxed);
        claim_.store(pack(threads, n, 0), std::memory_order_release);
        epoch_.fetch_add(1, std::memory_order_seq_cst);
        if (sleepers_.load(std::memory_order_seq_cst) > 0) {
            { std::lock_guard<std::mutex> lock(mutex_); }
            wake_.notify_all();
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
    static std::uint64_t pack(int threads, int n, int next) {
        return (std::uint64_t(threads) << 56) | (std::uint64_t(n) << 32) | std::uint32_t(next);
    }

    // Claims the next item for `worker`: its index, or -1 when none is left for it (all
    // claimed, or the current loop runs on fewer threads than worker + 1).
    int claim(int worker) {
        std::uint64_t w = claim_.load(std::memory_order_acquire);
        for (;;) {
            const int threads = int(w >> 56), n = int((w >> 32) & 0xffffff), next = int(std::uint32_t(w));
            if (worker >= threads || next >= n) return -1;
            if (claim_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) return next;
        }
    }

    void grow(int helpers) {
        while (nworkers_ < helpers) {
            const int id = nworkers_ + 1;
            workers_[nworkers_] = std::thread([this, id] { work(id); });
            ++nworkers_;
        }
    }

    void work(int id) {
        std::uint32_t seen = 0;
        for (;;) {
            // Wait for a new loop: spin ~0.2 ms (layers follow each other closely), then sleep.
            std::uint32_t e = epoch_.load(std::memory_order_acquire);
            if (e == seen) {
                const auto start = std::chrono::steady_clock::now();
                for (int i = 0; (e = epoch_.load(std::memory_order_acquire)) == seen && !stop_.load(std::memory_order_relaxed); ++i) {
                    cpu_relax();
                    if ((i & 255) == 255 && std::chrono::steady_clock::now() - start > std::chrono::microseconds(200)) {
                        std::unique_lock<std::mutex> lock(mutex_);
                        sleepers_.fetch_add(1, std::memory_order_seq_cst);
                        wake_.wait(lock, [&] { return epoch_.load(std::memory_order_seq_cst) != seen || stop_.load(); });
                        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
                    }
                }
            }
            if (stop_.load()) return;
            seen = e;
            int mine = 0;
            for (int item; (item = claim(id)) >= 0; ++mine) body_(ctx_, item, id);
            // body_/ctx_ are read only after a successful claim: the caller cannot start another
            // loop (and overwrite them) before this loop's claimed items are counted done.
            if (mine) done_.fetch_add(mine, std::memory_order_acq_rel);
        }
    }

    alignas(64) std::atomic<std::uint64_t> claim_{0};
    alignas(64) std::atomic<int> done_{0};
    alignas(64) std::atomic<std::uint32_t> epoch_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
    parallel_body body_ = nullptr;
    void* ctx_ = nullptr;
    std::mutex mutex_;
    std::condition_variable wake_;
    int nworkers_ = 0;
    std::thread workers_[max_threads - 1];
};

// The runner the generic code hands to the kernels.
inline void pool_run(int threads, int n, parallel_body body, void* ctx) { worker_pool::local().run(threads, n, body, ctx); }

// f(item, worker) for item in [0, n), on up to `threads` threads through `run` (serially
// when run is null, threads <= 1 or !cond). Items are claimed `grain` at a time, or more:
// about 8 claims per thread (each claim is a compare-and-swap on a cache line the threads
// share; one per item cost ~3% at 2 threads).
template <class F>
void parallel_for(parallel_runner run, int threads, bool cond, int n, int grain, const F& f) {
    if (!run || threads <= 1 || !cond || n <= 1) {
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
    run(threads, chunks,
        [](void* c, int chunk, int worker) {
            const ctx_t& x = *static_cast<const ctx_t*>(c);
            const int end = (chunk + 1) * x.grain < x.n ? (chunk + 1) * x.grain : x.n;
            for (int i = chunk * x.grain; i < end; ++i) (*x.f)(i, worker);
        },
        &ctx);
}

}  // namespace detail
}  // namespace kernels
}  // namespace handgraph

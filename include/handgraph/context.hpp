// handgraph/context.hpp: what a context owns (internal; handgraph::context in handgraph.hpp
// is the public face of it).
//
// A context is the only owner of helper threads and scratch memory: a worker pool of
// `threads` threads (the caller and threads - 1 helpers, started on first use) and one
// workspace per pool slot (activation blocks kept between calls, Winograd scratch). A model
// is immutable data; every call runs with one context, and one call at a time per context.
// The cost of N concurrent callers is N contexts; destroying a context joins its threads and
// returns all of its memory. Nothing is thread-local or global.
// Depends on tensor.hpp, kernels/parallel.hpp, kernels/dispatch.hpp.
#pragma once
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/dispatch.hpp"
#include "kernels/parallel.hpp"
#include "tensor.hpp"

namespace handgraph {
namespace detail {

class context_state {
public:
    static constexpr int max_threads = kernels::detail::worker_pool::max_threads;

    // Throws handgraph::error for a thread count outside 1..max_threads.
    explicit context_state(int threads) : pool_(threads) {
        owned_.reserve(std::size_t(threads));
        for (int i = 0; i < threads; ++i) owned_.push_back(std::make_unique<workspace>());
        for (auto& w : owned_) table_.push_back(w.get());
    }
    context_state(const context_state&) = delete;
    context_state& operator=(const context_state&) = delete;

    int threads() const { return pool_.threads(); }

    // For a call on all of the context's threads: kernels' loops on the pool, slot s's
    // scratch in workspace s, activations in workspace 0's pool.
    kernels::exec exec(bool exact = false) {
        kernels::exec e;
        e.loop = kernels::detail::runner_of(pool_, pool_.threads());
        e.spaces = table_.data();
        e.exact = exact;
        return e;
    }
    // For work that runs serially on pool slot `slot` (one crop of a batch): its own
    // workspace, no further threads.
    kernels::exec serial_exec(int slot, bool exact = false) {
        kernels::exec e;
        e.spaces = table_.data() + slot;
        e.exact = exact;
        return e;
    }
    kernels::detail::worker_pool& pool() { return pool_; }
    kernels::detail::loop_runner runner() { return kernels::detail::runner_of(pool_, pool_.threads()); }

    // Held by every call made with this context (one call at a time).
    std::mutex& call_mutex() { return mutex_; }

    // Memory held now (activation blocks in use and cached, scratch), and the most held at
    // once by the activation pools.
    std::size_t bytes_held() const {
        std::size_t n = 0;
        for (const auto& w : owned_) n += w->bytes_held();
        return n;
    }
    std::size_t peak_block_bytes() const {
        std::size_t n = 0;
        for (const auto& w : owned_) n += w->blocks.peak_bytes();
        return n;
    }
    // Frees the cached blocks and scratch of every slot (the next call allocates afresh).
    void release_cached() {
        for (auto& w : owned_) w->release_cached();
    }

private:
    kernels::detail::worker_pool pool_;
    std::vector<std::unique_ptr<workspace>> owned_;
    std::vector<workspace*> table_;
    std::mutex mutex_;
};

}  // namespace detail
}  // namespace handgraph

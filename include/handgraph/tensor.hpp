// handgraph/tensor.hpp: aligned buffers and the feature-map layout used by every kernel.
//
// A FeatureMap holds one image's activations in HWC order (channels innermost), with
// the channel count padded to a multiple of 16 (padding channels hold zeros) and a zero
// border of `border` pixels on every side, so 3x3 kernels need no edge tests.
// Depends on nothing but the standard library (and mmap/madvise on Linux).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace handgraph {

constexpr int channel_block = 16;
inline int round_up(int n, int m) { return (n + m - 1) / m * m; }

namespace detail {

// A per-thread cache of freed aligned blocks, keyed by byte size. A forward pass
// allocates the same activation sizes every time; reusing blocks avoids a page fault
// (and the kernel's page clearing) on every first touch, which costs more than the
// convolutions on some virtual machines. Blocks beyond `capacity` bytes are freed.
class block_cache {
public:
    static constexpr std::size_t capacity = std::size_t(256) << 20;
    // This thread's cache. After the thread's cache has been destroyed (thread exit, or
    // objects with static storage freed at program exit), a stand-in that keeps nothing.
    static block_cache& local() {
        static thread_local block_cache cache;
        if (destroyed()) {
            static thread_local block_cache passthrough(false);
            return passthrough;
        }
        return cache;
    }
    void* take(std::size_t bytes) {
        if (!keeps_) return nullptr;
        auto it = blocks_.find(bytes);
        if (it == blocks_.end()) return nullptr;
        void* p = it->second;
        blocks_.erase(it);
        held_ -= bytes;
        return p;
    }
    void give(void* p, std::size_t bytes) {
        if (!keeps_ || held_ + bytes > capacity) {
            std::free(p);
            return;
        }
        blocks_.emplace(bytes, p);
        held_ += bytes;
    }
    explicit block_cache(bool keeps = true) : keeps_(keeps) {}
    ~block_cache() {
        for (auto& b : blocks_) std::free(b.second);
        blocks_.clear();
        held_ = 0;
        if (keeps_) destroyed() = true;
    }

private:
    static bool& destroyed() {
        static thread_local bool flag = false;  // trivially destructible: valid until the thread ends
        return flag;
    }
    bool keeps_ = true;
    std::multimap<std::size_t, void*> blocks_;
    std::size_t held_ = 0;
};

// Memory for a model's prepared weights (~87 MB): chunks of 32 MiB, handed out front to
// back and freed all together with the arena (so a destroyed model gives its memory back to
// the system rather than to a thread's block cache). aligned_buffer allocations made on a
// thread while an arena_scope is alive there come from that arena.
// Transparent huge pages (madvise) were measured and left out: on this project's VMs they
// made a load 5x faster when the host still backed the memory (88 MB touched in 8 ms) and
// 3x slower when it had taken it back (110-165 ms against 36-49 ms with 4 KiB pages), which
// is the usual state for a process that loads a model once (benchmarks/NOTES.md).
class weight_arena {
public:
    static constexpr std::size_t huge_page = std::size_t(2) << 20;  // chunk alignment
    static constexpr std::size_t chunk_bytes = std::size_t(32) << 20;

    weight_arena() = default;
    weight_arena(const weight_arena&) = delete;
    weight_arena& operator=(const weight_arena&) = delete;
    ~weight_arena() {
        for (const auto& c : chunks_) unmap(c.first, c.second);
    }

    // `bytes` (a multiple of 64) of zeroed memory, 64-byte aligned.
    void* allocate(std::size_t bytes) {
        if (bytes > chunk_bytes / 4) {  // a big buffer gets chunks of its own
            return map((bytes + huge_page - 1) / huge_page * huge_page);
        }
        if (!cur_ || used_ + bytes > chunk_bytes) {
            cur_ = static_cast<unsigned char*>(map(chunk_bytes));
            used_ = 0;
        }
        void* p = cur_ + used_;
        used_ += bytes;
        return p;
    }
    // Bytes of address space reserved (resident memory is what was touched).
    std::size_t reserved() const {
        std::size_t n = 0;
        for (const auto& c : chunks_) n += c.second;
        return n;
    }

    // The arena aligned_buffer allocations of this thread come from, or null.
    static weight_arena*& current() {
        static thread_local weight_arena* a = nullptr;
        return a;
    }

private:
    void* map(std::size_t bytes) {
        void* p = nullptr;
#if defined(__linux__)
        // Over-map by 2 MiB and trim, so the chunk starts on a 2 MiB boundary.
        void* q = ::mmap(nullptr, bytes + huge_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED) throw std::bad_alloc();
        const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(q);
        const std::uintptr_t b = (a + huge_page - 1) / huge_page * huge_page;
        if (b > a) ::munmap(q, b - a);
        ::munmap(reinterpret_cast<void*>(b + bytes), a + huge_page - b);  // b < a + 2 MiB: a tail is always left
        p = reinterpret_cast<void*>(b);
#else
        p = std::aligned_alloc(huge_page, bytes);
        if (!p) throw std::bad_alloc();
        std::memset(p, 0, bytes);
#endif
        chunks_.emplace_back(p, bytes);
        return p;
    }
    static void unmap(void* p, std::size_t bytes) {
#if defined(__linux__)
        ::munmap(p, bytes);
#else
        (void)bytes;
        std::free(p);
#endif
    }
    std::vector<std::pair<void*, std::size_t>> chunks_;
    unsigned char* cur_ = nullptr;
    std::size_t used_ = 0;
};

// While alive, aligned_buffer allocations on this thread come from `arena` (nested scopes
// restore the previous one).
class arena_scope {
public:
    explicit arena_scope(weight_arena& arena) : prev_(weight_arena::current()) { weight_arena::current() = &arena; }
    ~arena_scope() { weight_arena::current() = prev_; }
    arena_scope(const arena_scope&) = delete;
    arena_scope& operator=(const arena_scope&) = delete;

private:
    weight_arena* prev_;
};

}  // namespace detail

// A 64-byte-aligned float array. Zero-initialised on allocation. Freed blocks go to a
// per-thread cache and are reused by later allocations of the same size. Allocated inside
// a detail::arena_scope, the memory belongs to that arena instead (freed with it; the
// buffer must not outlive it).
class aligned_buffer {
public:
    aligned_buffer() = default;
    explicit aligned_buffer(std::size_t n) { resize(n); }
    aligned_buffer(aligned_buffer&& o) noexcept : data_(o.data_), size_(o.size_), bytes_(o.bytes_), arena_(o.arena_) {
        o.data_ = nullptr;
        o.size_ = o.bytes_ = 0;
    }
    aligned_buffer& operator=(aligned_buffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = o.data_;
            size_ = o.size_;
            bytes_ = o.bytes_;
            arena_ = o.arena_;
            o.data_ = nullptr;
            o.size_ = o.bytes_ = 0;
        }
        return *this;
    }
    aligned_buffer(const aligned_buffer&) = delete;
    aligned_buffer& operator=(const aligned_buffer&) = delete;
    ~aligned_buffer() { release(); }

    void resize(std::size_t n) {
        if (n == size_) return;
        release();
        if (n == 0) return;
        allocate(n);
        if (!arena_) std::memset(data_, 0, bytes_);  // arena memory is fresh, hence zero
    }
    // Like resize, but the contents are unspecified (no zero fill): for buffers written in
    // full before they are read.
    void resize_uninitialized(std::size_t n) {
        if (n == size_) return;
        release();
        if (n == 0) return;
        allocate(n);
    }
    void zero() { if (size_) std::memset(data_, 0, size_ * sizeof(float)); }
    float* data() { return data_; }
    const float* data() const { return data_; }
    std::size_t size() const { return size_; }
    float& operator[](std::size_t i) { return data_[i]; }
    const float& operator[](std::size_t i) const { return data_[i]; }

private:
    void allocate(std::size_t n) {
        const std::size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
        void* p = nullptr;
        if (detail::weight_arena* a = detail::weight_arena::current()) {
            p = a->allocate(bytes);
            arena_ = true;
        } else {
            p = detail::block_cache::local().take(bytes);
            if (!p) p = std::aligned_alloc(64, bytes);
            if (!p) throw std::bad_alloc();
            arena_ = false;
        }
        data_ = static_cast<float*>(p);
        size_ = n;
        bytes_ = bytes;
    }
    void release() {
        if (data_ && !arena_) detail::block_cache::local().give(data_, bytes_);
        data_ = nullptr;
        size_ = bytes_ = 0;
        arena_ = false;
    }
    float* data_ = nullptr;
    std::size_t size_ = 0, bytes_ = 0;
    bool arena_ = false;
};

// One image's activations: HWC, channels padded to a multiple of 16, zero border.
struct feature_map {
    int height = 0, width = 0;
    int channels = 0;  // logical channel count
    int cpad = 0;      // stored channel count: round_up(channels, 16)
    int border = 0;    // zero pixels on each side
    aligned_buffer buf;

    feature_map() = default;
    feature_map(int h, int w, int c, int b = 0) { reset(h, w, c, b); }
    // (Re)shape; contents become zero (border and padding channels included).
    void reset(int h, int w, int c, int b = 0) {
        height = h; width = w; channels = c; cpad = round_up(c, channel_block); border = b;
        std::size_t n = std::size_t(h + 2 * b) * std::size_t(w + 2 * b) * std::size_t(cpad);
        if (buf.size() != n) buf.resize(n); else buf.zero();
    }
    // (Re)shape as the output of a kernel: only the border is zeroed, the interior is left
    // unspecified. Every handgraph::kernels function writes all interior values of its output
    // (padding channels included, as zeros), so this skips reset()'s full zero fill.
    void reset_output(int h, int w, int c, int b = 0) {
        height = h; width = w; channels = c; cpad = round_up(c, channel_block); border = b;
        std::size_t n = std::size_t(h + 2 * b) * std::size_t(w + 2 * b) * std::size_t(cpad);
        buf.resize_uninitialized(n);
        zero_border();
    }
    // Sets the border pixels (all channels) to zero.
    void zero_border() {
        if (border == 0 || buf.size() == 0) return;
        const std::size_t rs = row_stride(), side = std::size_t(border) * cpad * sizeof(float);
        float* d = buf.data();
        std::memset(d, 0, std::size_t(border) * rs * sizeof(float));
        std::memset(d + std::size_t(border + height) * rs, 0, std::size_t(border) * rs * sizeof(float));
        for (int y = 0; y < height; ++y) {
            float* r = d + std::size_t(y + border) * rs;
            std::memset(r, 0, side);
            std::memset(r + std::size_t(border + width) * cpad, 0, side);
        }
    }
    std::size_t row_stride() const { return std::size_t(width + 2 * border) * cpad; }  // floats
    // Pointer to pixel (y, x); y, x may range over [-border, size + border).
    float* pixel(int y, int x) { return buf.data() + (std::size_t(y + border) * (width + 2 * border) + (x + border)) * cpad; }
    const float* pixel(int y, int x) const { return const_cast<feature_map*>(this)->pixel(y, x); }
    float at(int c, int y, int x) const { return pixel(y, x)[c]; }
};

}  // namespace handgraph

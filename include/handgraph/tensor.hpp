// handgraph/tensor.hpp: aligned buffers and the feature-map layout used by every kernel.
//
// A FeatureMap holds one image's activations in HWC order (channels innermost), with
// the channel count padded to a multiple of 16 (padding channels hold zeros) and a zero
// border of `border` pixels on every side, so 3x3 kernels need no edge tests.
// Depends on nothing but the standard library.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>

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

}  // namespace detail

// A 64-byte-aligned float array. Zero-initialised on allocation. Freed blocks go to a
// per-thread cache and are reused by later allocations of the same size.
class aligned_buffer {
public:
    aligned_buffer() = default;
    explicit aligned_buffer(std::size_t n) { resize(n); }
    aligned_buffer(aligned_buffer&& o) noexcept : data_(o.data_), size_(o.size_), bytes_(o.bytes_) {
        o.data_ = nullptr;
        o.size_ = o.bytes_ = 0;
    }
    aligned_buffer& operator=(aligned_buffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = o.data_;
            size_ = o.size_;
            bytes_ = o.bytes_;
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
        std::size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
        void* p = detail::block_cache::local().take(bytes);
        if (!p) p = std::aligned_alloc(64, bytes);
        if (!p) throw std::bad_alloc();
        std::memset(p, 0, bytes);
        data_ = static_cast<float*>(p);
        size_ = n;
        bytes_ = bytes;
    }
    // Like resize, but the contents are unspecified (no zero fill): for buffers written in
    // full before they are read.
    void resize_uninitialized(std::size_t n) {
        if (n == size_) return;
        release();
        if (n == 0) return;
        std::size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
        void* p = detail::block_cache::local().take(bytes);
        if (!p) p = std::aligned_alloc(64, bytes);
        if (!p) throw std::bad_alloc();
        data_ = static_cast<float*>(p);
        size_ = n;
        bytes_ = bytes;
    }
    void zero() { if (size_) std::memset(data_, 0, size_ * sizeof(float)); }
    float* data() { return data_; }
    const float* data() const { return data_; }
    std::size_t size() const { return size_; }
    float& operator[](std::size_t i) { return data_[i]; }
    const float& operator[](std::size_t i) const { return data_[i]; }

private:
    void release() {
        if (data_) detail::block_cache::local().give(data_, bytes_);
        data_ = nullptr;
        size_ = bytes_ = 0;
    }
    float* data_ = nullptr;
    std::size_t size_ = 0, bytes_ = 0;
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

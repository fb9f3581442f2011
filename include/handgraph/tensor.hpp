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
#include <memory>
#include <new>

namespace handgraph {

constexpr int channel_block = 16;
inline int round_up(int n, int m) { return (n + m - 1) / m * m; }

// A 64-byte-aligned float array. Zero-initialised on allocation.
class aligned_buffer {
public:
    aligned_buffer() = default;
    explicit aligned_buffer(std::size_t n) { resize(n); }
    void resize(std::size_t n) {
        if (n == size_) return;
        data_.reset();
        size_ = 0;
        if (n == 0) return;
        std::size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
        void* p = std::aligned_alloc(64, bytes);
        if (!p) throw std::bad_alloc();
        std::memset(p, 0, bytes);
        data_.reset(static_cast<float*>(p));
        size_ = n;
    }
    void zero() { if (size_) std::memset(data_.get(), 0, size_ * sizeof(float)); }
    float* data() { return data_.get(); }
    const float* data() const { return data_.get(); }
    std::size_t size() const { return size_; }
    float& operator[](std::size_t i) { return data_.get()[i]; }
    const float& operator[](std::size_t i) const { return data_.get()[i]; }

private:
    struct free_deleter { void operator()(float* p) const { std::free(p); } };
    std::unique_ptr<float, free_deleter> data_;
    std::size_t size_ = 0;
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
    std::size_t row_stride() const { return std::size_t(width + 2 * border) * cpad; }  // floats
    // Pointer to pixel (y, x); y, x may range over [-border, size + border).
    float* pixel(int y, int x) { return buf.data() + (std::size_t(y + border) * (width + 2 * border) + (x + border)) * cpad; }
    const float* pixel(int y, int x) const { return const_cast<feature_map*>(this)->pixel(y, x); }
    float at(int c, int y, int x) const { return pixel(y, x)[c]; }
};

}  // namespace handgraph

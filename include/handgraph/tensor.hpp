// handgraph/tensor.hpp: aligned buffers and the feature-map layout used by every kernel.
//
// A feature_map holds one image's activations in HWC order (channels innermost), with
// the channel count padded to a multiple of 16 (padding channels hold zeros) and a zero
// border of `border` pixels on every side, so 3x3 kernels need no edge tests.
// Depends on nothing but the standard library (and mmap/madvise on Linux).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#ifdef HANDGRAPH_BLOCK_LOG
#include <cstdio>
#endif
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

// Where an aligned_buffer's memory comes from and goes back to: a model's weight arena, a
// context's block pool, or (no source) the C heap.
class buffer_source {
public:
    // `bytes` (a multiple of 64) of 64-byte aligned memory; `zeroed` says whether it is known
    // to hold zeros.
    virtual void* take(std::size_t bytes, bool& zeroed) = 0;
    // Gives back what take() returned, with the same size.
    virtual void give(void* p, std::size_t bytes) noexcept = 0;

protected:
    ~buffer_source() = default;
};

// Blocks of this size or more are mapped pages (returned to the system when freed); smaller
// ones come from the C heap.
constexpr std::size_t mapped_block_min = std::size_t(64) << 10;

inline void* map_zeroed_pages(std::size_t bytes, std::size_t align = 64) {
#if defined(__linux__)
    if (align <= 4096) {
        void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        return p;
    }
    // Over-map by `align` and trim, so the block starts on an `align` boundary.
    void* q = ::mmap(nullptr, bytes + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) throw std::bad_alloc();
    const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(q);
    const std::uintptr_t b = (a + align - 1) / align * align;
    if (b > a) ::munmap(q, b - a);
    if (a + align > b) ::munmap(reinterpret_cast<void*>(b + bytes), a + align - b);
    return reinterpret_cast<void*>(b);
#else
    void* p = std::aligned_alloc(align, bytes);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, bytes);
    return p;
#endif
}

inline void unmap_pages(void* p, std::size_t bytes) noexcept {
#if defined(__linux__)
    ::munmap(p, bytes);
#else
    (void)bytes;
    std::free(p);
#endif
}

// The activation memory of one workspace of a context (context.hpp). Blocks are carved,
// first fit, out of one region of address space reserved on first use (reserved_bytes, not
// backed until touched) and coalesced when freed, so the memory a forward pass touches is
// close to its peak of live activations (23 MiB for the network, first-fit 26 MiB, where
// keeping freed blocks by exact size would hold 54 MiB: benchmarks/NOTES.md). Touched
// memory stays for the next call (fresh pages cost page faults and the kernel's clearing,
// more than the convolutions on some virtual machines) until release_cached() or the
// destructor returns it to the system. Requests the region cannot hold get mapped pages of
// their own. Buffers must not outlive their pool.
class block_pool final : public buffer_source {
public:
    static constexpr std::size_t reserved_bytes = std::size_t(1) << 30;  // address space, per pool
    static constexpr std::size_t commit_step = std::size_t(2) << 20;    // the region is made writable in steps of this

    block_pool() = default;
    block_pool(const block_pool&) = delete;
    block_pool& operator=(const block_pool&) = delete;
    ~block_pool() {
        release_cached();
        if (base_) unreserve(base_, reserved_bytes);
    }

    void* take(std::size_t bytes, bool& zeroed) override {
        void* p = carve(bytes, zeroed);
        if (!p) {  // outside the region: mapped pages of its own
            p = map_zeroed_pages(bytes);
            zeroed = true;
            ++outside_;
            outside_bytes_ += bytes;
        }
        in_use_ += bytes;
        if (held() > peak_) peak_ = held();
#ifdef HANDGRAPH_BLOCK_LOG
        std::fprintf(stderr, "T %zu %p\n", bytes, p);
#endif
        return p;
    }
    void give(void* p, std::size_t bytes) noexcept override {
#ifdef HANDGRAPH_BLOCK_LOG
        std::fprintf(stderr, "G %zu %p\n", bytes, p);
#endif
        in_use_ -= bytes;
        auto* c = static_cast<unsigned char*>(p);
        if (!base_ || c < base_ || c >= base_ + reserved_bytes) {
            unmap_pages(p, bytes);
            --outside_;
            outside_bytes_ -= bytes;
            return;
        }
        free_block(std::size_t(c - base_), bytes);
    }
    // Returns the touched memory of the region to the system (blocks in use stay).
    void release_cached() noexcept {
        if (!base_ || committed_ == 0) return;
        if (in_use_ == 0 && outside_ == 0) {
            decommit(0, committed_);
            free_.clear();
            top_ = committed_ = touched_ = 0;
            return;
        }
        // Blocks are in use: keep the region up to the end of the last of them.
        const std::size_t keep = (top_ + commit_step - 1) / commit_step * commit_step;
        if (committed_ > keep) decommit(keep, committed_ - keep);
        committed_ = keep;
        if (touched_ > keep) touched_ = keep;
    }
    std::size_t bytes_in_use() const { return in_use_; }
    // Memory held for reuse: the region touched so far less what is in use.
    std::size_t bytes_cached() const { return held() - in_use_; }
    // Most memory held at once (touched region, and blocks outside it) since construction.
    std::size_t peak_bytes() const { return peak_; }

private:
    // Resident: the region's touched prefix, and the blocks outside it.
    std::size_t held() const { return touched_ + outside_bytes_; }

    // A block of `bytes` from the region, or null when it cannot hold one.
    void* carve(std::size_t bytes, bool& zeroed) {
        if (!base_) {
            base_ = reserve(reserved_bytes);
            if (!base_) return nullptr;
        }
        std::size_t off = std::size_t(-1);
        for (auto it = free_.begin(); it != free_.end(); ++it)
            if (it->second >= bytes) {  // first fit
                off = it->first;
                const std::size_t rest = it->second - bytes;
                free_.erase(it);
                if (rest) free_.emplace(off + bytes, rest);
                break;
            }
        if (off == std::size_t(-1)) {
            if (reserved_bytes - top_ < bytes) return nullptr;
            off = top_;
            top_ += bytes;
            if (top_ > committed_) {
                const std::size_t want = (top_ + commit_step - 1) / commit_step * commit_step;
                if (!commit(committed_, want - committed_)) {
                    top_ = off;
                    return nullptr;
                }
                committed_ = want;
            }
        }
        zeroed = off >= touched_;  // never handed out before: fresh zero pages
        if (off + bytes > touched_) touched_ = off + bytes;
        return base_ + off;
    }
    void free_block(std::size_t off, std::size_t bytes) noexcept {
        try {
            auto next = free_.lower_bound(off);
            if (next != free_.begin()) {
                auto prev = std::prev(next);
                if (prev->first + prev->second == off) {  // merge with the block before
                    off = prev->first;
                    bytes += prev->second;
                    free_.erase(prev);
                }
            }
            if (next != free_.end() && off + bytes == next->first) {  // and the one after
                bytes += next->second;
                free_.erase(next);
            }
            if (off + bytes == top_) top_ = off;  // the end of the region's used part moves back
            else free_.emplace(off, bytes);
        } catch (...) {
            // No memory for a list node: the block is lost to reuse until release_cached().
        }
    }

    static unsigned char* reserve(std::size_t bytes) {
#if defined(__linux__)
        void* p = ::mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        return p == MAP_FAILED ? nullptr : static_cast<unsigned char*>(p);
#else
        (void)bytes;
        return nullptr;  // elsewhere: every block mapped (allocated) on its own
#endif
    }
    static void unreserve(void* p, std::size_t bytes) noexcept {
#if defined(__linux__)
        ::munmap(p, bytes);
#else
        (void)p;
        (void)bytes;
#endif
    }
    bool commit(std::size_t off, std::size_t bytes) {
#if defined(__linux__)
        return ::mprotect(base_ + off, bytes, PROT_READ | PROT_WRITE) == 0;
#else
        (void)off;
        (void)bytes;
        return false;
#endif
    }
    void decommit(std::size_t off, std::size_t bytes) noexcept {
#if defined(__linux__)
        // Fresh zero pages on the next touch, and back to no access.
        ::mmap(base_ + off, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
#else
        (void)off;
        (void)bytes;
#endif
    }

    unsigned char* base_ = nullptr;
    std::map<std::size_t, std::size_t> free_;  // offset -> bytes, below top_
    std::size_t top_ = 0;        // end of the part of the region in use or on the free list
    std::size_t committed_ = 0;  // writable prefix of the region
    std::size_t touched_ = 0;    // prefix handed out at least once since the last release
    std::size_t in_use_ = 0, peak_ = 0;
    int outside_ = 0;               // blocks mapped outside the region (all in use)
    std::size_t outside_bytes_ = 0;
};

// Memory for a model's prepared weights (~87 MB): chunks of 32 MiB, handed out front to
// back and freed all together with the arena (a destroyed model gives its memory back to
// the system). The networks' layers take their packed weights from it explicitly (the
// `weights` source of layer_setup, kernels/dispatch.hpp).
// Transparent huge pages (madvise) were measured and left out: on this project's VMs they
// made a load 5x faster when the host still backed the memory (88 MB touched in 8 ms) and
// 3x slower when it had taken it back (110-165 ms against 36-49 ms with 4 KiB pages), which
// is the usual state for a process that loads a model once (benchmarks/NOTES.md).
class weight_arena final : public buffer_source {
public:
    static constexpr std::size_t huge_page = std::size_t(2) << 20;  // chunk alignment
    static constexpr std::size_t chunk_bytes = std::size_t(32) << 20;

    weight_arena() = default;
    weight_arena(const weight_arena&) = delete;
    weight_arena& operator=(const weight_arena&) = delete;
    ~weight_arena() {
        for (const auto& c : chunks_) unmap_pages(c.first, c.second);
    }

    // `bytes` (a multiple of 64) of zeroed memory, 64-byte aligned.
    void* allocate(std::size_t bytes) {
        used_total_ += bytes;
        if (bytes > chunk_bytes / 4) return map((bytes + huge_page - 1) / huge_page * huge_page);  // a chunk of its own
        if (!cur_ || used_ + bytes > chunk_bytes) {
            cur_ = static_cast<unsigned char*>(map(chunk_bytes));
            used_ = 0;
        }
        void* p = cur_ + used_;
        used_ += bytes;
        return p;
    }
    void* take(std::size_t bytes, bool& zeroed) override {
        zeroed = true;
        return allocate(bytes);
    }
    void give(void*, std::size_t) noexcept override {}  // freed with the arena
    // Bytes of address space reserved (resident memory is what was touched).
    std::size_t reserved() const {
        std::size_t n = 0;
        for (const auto& c : chunks_) n += c.second;
        return n;
    }
    // Bytes handed out (the prepared weights).
    std::size_t used() const { return used_total_; }

private:
    void* map(std::size_t bytes) {
        void* p = map_zeroed_pages(bytes, huge_page);
        chunks_.emplace_back(p, bytes);
        return p;
    }
    std::vector<std::pair<void*, std::size_t>> chunks_;
    unsigned char* cur_ = nullptr;
    std::size_t used_ = 0, used_total_ = 0;
};

// The scratch memory of one slot of a context (context.hpp; a slot is one thread taking
// part in a call): the block pool of the activations (and of per-call buffers such as
// Winograd's transformed weights), and one growable buffer of per-thread working space for
// the kernels (Winograd's transformed tiles, the pre-activated rows of conv_direct_preact).
// Kept between calls; freed by release_cached() and by the destructor.
class workspace {
public:
    workspace() = default;
    workspace(const workspace&) = delete;
    workspace& operator=(const workspace&) = delete;
    ~workspace() { release_cached(); }

    block_pool blocks;

    // At least `floats` floats, 64-byte aligned, contents unspecified; valid until the next
    // scratch() call. Grows to the largest request and stays there.
    float* scratch(std::size_t floats) {
        const std::size_t bytes = (floats * sizeof(float) + 4095) / 4096 * 4096;
        if (bytes > scratch_bytes_) {
            release_scratch();
            scratch_ = map_zeroed_pages(bytes);
            scratch_bytes_ = bytes;
        }
        return static_cast<float*>(scratch_);
    }
    std::size_t scratch_bytes() const { return scratch_bytes_; }
    // Memory held now: blocks in use and cached, and the scratch buffer.
    std::size_t bytes_held() const { return blocks.bytes_in_use() + blocks.bytes_cached() + scratch_bytes_; }
    void release_cached() noexcept {
        blocks.release_cached();
        release_scratch();
    }

private:
    void release_scratch() noexcept {
        if (scratch_) unmap_pages(scratch_, scratch_bytes_);
        scratch_ = nullptr;
        scratch_bytes_ = 0;
    }
    void* scratch_ = nullptr;
    std::size_t scratch_bytes_ = 0;
};

// Scratch of slot `slot` of a workspace table (workspace* const*, as kernels::exec holds it):
// what the Arch-templated kernels call, through a pointer, for per-thread working space.
inline float* slot_scratch(void* spaces, int slot, std::size_t floats) {
    return static_cast<workspace* const*>(spaces)[slot]->scratch(floats);
}

}  // namespace detail

// A 64-byte-aligned float array, zero-initialised on allocation. Its memory comes from a
// buffer_source given at construction (a context's block pool, a model's weight arena) and
// goes back there, or from the C heap when none is given. The buffer must not outlive its
// source.
class aligned_buffer {
public:
    aligned_buffer() = default;
    explicit aligned_buffer(detail::buffer_source* source) : source_(source) {}
    explicit aligned_buffer(std::size_t n, detail::buffer_source* source = nullptr) : source_(source) { resize(n); }
    aligned_buffer(aligned_buffer&& o) noexcept : data_(o.data_), size_(o.size_), bytes_(o.bytes_), source_(o.source_), borrowed_(o.borrowed_) {
        o.data_ = nullptr;
        o.size_ = o.bytes_ = 0;
        o.borrowed_ = false;
    }
    aligned_buffer& operator=(aligned_buffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = o.data_;
            size_ = o.size_;
            bytes_ = o.bytes_;
            source_ = o.source_;
            borrowed_ = o.borrowed_;
            o.data_ = nullptr;
            o.size_ = o.bytes_ = 0;
            o.borrowed_ = false;
        }
        return *this;
    }
    // A view of `n` floats that live elsewhere (a prepared weight file's mapping, read-only:
    // nothing may write through it), which the caller has checked to be 64-byte aligned;
    // never freed by the buffer, so the memory must outlive it. Resizing drops the view.
    static aligned_buffer borrowed(const float* data, std::size_t n) {
        aligned_buffer b;
        b.data_ = const_cast<float*>(data);
        b.size_ = n;
        b.borrowed_ = true;
        return b;
    }
    bool is_borrowed() const { return borrowed_; }
    aligned_buffer(const aligned_buffer&) = delete;
    aligned_buffer& operator=(const aligned_buffer&) = delete;
    ~aligned_buffer() { release(); }

    void resize(std::size_t n) {
        if (n == size_) return;
        release();
        if (n == 0) return;
        if (!allocate(n)) std::memset(data_, 0, bytes_);
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
    detail::buffer_source* source() const { return source_; }

private:
    // Returns whether the memory is known to be zero.
    bool allocate(std::size_t n) {
        const std::size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
        bool zeroed = false;
        void* p = nullptr;
        if (source_) {
            p = source_->take(bytes, zeroed);
        } else {
            p = std::aligned_alloc(64, bytes);
            if (!p) throw std::bad_alloc();
        }
        data_ = static_cast<float*>(p);
        size_ = n;
        bytes_ = bytes;
        return zeroed;
    }
    void release() noexcept {
        if (data_ && !borrowed_) {
            if (source_) source_->give(data_, bytes_);
            else std::free(data_);
        }
        data_ = nullptr;
        size_ = bytes_ = 0;
        borrowed_ = false;
    }
    float* data_ = nullptr;
    std::size_t size_ = 0, bytes_ = 0;
    detail::buffer_source* source_ = nullptr;
    bool borrowed_ = false;
};

// One image's activations: HWC, channels padded to a multiple of 16, zero border.
struct feature_map {
    int height = 0, width = 0;
    int channels = 0;  // logical channel count
    int cpad = 0;      // stored channel count: round_up(channels, 16)
    int border = 0;    // zero pixels on each side
    aligned_buffer buf;

    feature_map() = default;
    // Memory from `source` (see aligned_buffer); null: the C heap.
    explicit feature_map(detail::buffer_source* source) : buf(source) {}
    feature_map(int h, int w, int c, int b = 0) { reset(h, w, c, b); }
    feature_map(detail::buffer_source* source, int h, int w, int c, int b = 0) : buf(source) { reset(h, w, c, b); }
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

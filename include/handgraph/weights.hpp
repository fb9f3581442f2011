// handgraph/weights.hpp: reading safetensors files, and the handgraph weight file.
//
// safetensors: 8-byte little-endian header length N, N bytes of JSON header
// ({name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}), raw
// little-endian data. `safetensors_file` reads the whole file and validates the
// container before anything is used: header length within the file, JSON well-formed,
// known dtypes, sane shapes, byte counts matching shapes, offsets inside the data and
// non-overlapping, unique names. Every error names the file (and tensor). It never
// reads out of bounds, whatever the bytes.
// `weight_source` is what the networks bind their tensors from (model.hpp): a tensor is
// requested by name with its expected shape. Two sources: `weight_file`, the handgraph
// weight file, strictly (format checks on the metadata; missing, wrong-dtype, wrong-shape
// and non-finite tensors refused by name; `check_all_used` refuses tensors nobody asked
// for), and `random_weights`, deterministic random tensors of the asked shapes for demos,
// benchmarks and tests without the released weights.
// Depends on error.hpp, json.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "error.hpp"
#include "json.hpp"
#include "tensor.hpp"

#if defined(__linux__)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace handgraph {

enum class dtype { f32, f64, i32, i64, u8 };

inline const char* dtype_name(dtype t) {
    switch (t) {
        case dtype::f32: return "F32";
        case dtype::f64: return "F64";
        case dtype::i32: return "I32";
        case dtype::i64: return "I64";
        case dtype::u8: return "U8";
    }
    return "?";
}
inline std::size_t dtype_size(dtype t) {
    switch (t) {
        case dtype::f32: case dtype::i32: return 4;
        case dtype::f64: case dtype::i64: return 8;
        case dtype::u8: return 1;
    }
    return 0;
}

inline std::string shape_string(const std::vector<std::int64_t>& s) {
    std::string out = "(";
    for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + (s.size() == 1 ? ",)" : ")");
}

struct tensor_info {
    std::string name;
    dtype type = dtype::f32;
    std::vector<std::int64_t> shape;
    std::size_t begin = 0, end = 0;  // byte offsets into the data section
    std::size_t numel() const {
        std::size_t n = 1;
        for (auto d : shape) n *= std::size_t(d);
        return n;
    }
};

// A whole file, read-only in memory: mapped (Linux: mmap, so its pages are the page
// cache's, shared and never copied), elsewhere read into a 64-byte-aligned heap copy. The
// mapping stays valid while the object lives even if the file is replaced by a rename (the
// old file lives on); truncating the file in place under a live mapping is not survivable
// (SIGBUS on the next access), so files the library maps are only ever replaced by rename
// (write_file_atomic). Throws handgraph::error naming the file.
class mapped_file {
public:
    static std::shared_ptr<const mapped_file> open(const std::string& path) {
        auto m = std::shared_ptr<mapped_file>(new mapped_file());
#if defined(__linux__)
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw error(path + ": cannot open file");
        struct stat st;
        if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            ::close(fd);
            throw error(path + ": not a regular file");
        }
        m->size_ = std::size_t(st.st_size);
        if (m->size_ > 0) {
            void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                ::close(fd);
                throw error(path + ": cannot map the file into memory");
            }
            m->data_ = static_cast<const unsigned char*>(p);
            m->mapped_ = true;
        }
        ::close(fd);
#else
        std::ifstream in(path, std::ios::binary);
        if (!in) throw error(path + ": cannot open file");
        in.seekg(0, std::ios::end);
        const std::streamoff size = in.tellg();
        if (size < 0) throw error(path + ": cannot read file size");
        in.seekg(0, std::ios::beg);
        m->size_ = std::size_t(size);
        if (m->size_ > 0) {
            void* p = std::aligned_alloc(64, (m->size_ + 63) / 64 * 64);
            if (!p) throw std::bad_alloc();
            m->data_ = static_cast<const unsigned char*>(p);
            if (!in.read(static_cast<char*>(p), std::streamsize(m->size_))) throw error(path + ": read failed");
        }
#endif
        return m;
    }
    mapped_file(const mapped_file&) = delete;
    mapped_file& operator=(const mapped_file&) = delete;
    ~mapped_file() {
        if (!data_) return;
#if defined(__linux__)
        if (mapped_) ::munmap(const_cast<unsigned char*>(data_), size_);
#else
        std::free(const_cast<unsigned char*>(data_));
#endif
    }
    const unsigned char* data() const { return data_; }
    std::size_t size() const { return size_; }

private:
    mapped_file() = default;
    const unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
    bool mapped_ = false;
};

class safetensors_file {
public:
    static constexpr std::uint64_t max_header_bytes = 100u << 20;

    // Open `path`, read and validate its header. Tensor data stay in the file and are
    // read on request (read_into / values), so loading never holds a second copy of
    // the weights. Throws handgraph::error naming the file.
    static safetensors_file read(const std::string& path) {
        auto in = std::make_shared<std::ifstream>(path, std::ios::binary);
        if (!*in) throw error(path + ": cannot open file");
        in->seekg(0, std::ios::end);
        std::streamoff size = in->tellg();
        if (size < 0) throw error(path + ": cannot read file size");
        in->seekg(0, std::ios::beg);
        unsigned char len[8] = {};
        std::size_t file_size = static_cast<std::size_t>(size);
        if (file_size < 8 || !in->read(reinterpret_cast<char*>(len), 8))
            throw error(path + ": not a safetensors file (shorter than its 8-byte header length)");
        std::uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
        check_header_length(n, file_size, path);
        std::string text(static_cast<std::size_t>(n), '\0');
        if (n > 0 && !in->read(&text[0], std::streamsize(n))) throw error(path + ": read failed in the header");
        safetensors_file f = parse_header(text, file_size, path);
        f.stream_ = std::move(in);
        return f;
    }

    // Validate a file image held in memory; `path` is used in messages.
    static safetensors_file from_bytes(std::vector<unsigned char> bytes, const std::string& path) {
        if (bytes.size() < 8) throw error(path + ": not a safetensors file (shorter than its 8-byte header length)");
        std::uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[std::size_t(i)];
        check_header_length(n, bytes.size(), path);
        safetensors_file f = parse_header(std::string_view(reinterpret_cast<const char*>(bytes.data()) + 8, std::size_t(n)), bytes.size(), path);
        f.bytes_ = std::move(bytes);
        return f;
    }

    // Map `path` (mapped_file) and validate its header; tensors are then read where the
    // mapping holds them (mapped()).
    static safetensors_file map(const std::string& path) {
        std::shared_ptr<const mapped_file> m = mapped_file::open(path);
        if (m->size() < 8) throw error(path + ": not a safetensors file (shorter than its 8-byte header length)");
        std::uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | m->data()[i];
        check_header_length(n, m->size(), path);
        safetensors_file f = parse_header(std::string_view(reinterpret_cast<const char*>(m->data()) + 8, std::size_t(n)), m->size(), path);
        f.mapping_ = std::move(m);
        return f;
    }

private:
    static void check_header_length(std::uint64_t n, std::size_t file_size, const std::string& path) {
        if (n > max_header_bytes) throw error(path + ": header length " + std::to_string(n) + " is absurd (over 100 MiB): not a safetensors file or damaged");
        if (n > file_size - 8) throw error(path + ": header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(file_size) + " bytes): truncated or damaged");
    }

    static safetensors_file parse_header(std::string_view text, std::size_t file_size, const std::string& path) {
        safetensors_file f;
        f.path_ = path;
        json::value header = json::parse(text, path + " (header)");
        if (!header.is_object()) throw error(path + ": header is not a JSON object");
        f.data_offset_ = 8 + text.size();
        std::size_t data_size = file_size - f.data_offset_;

        std::set<std::string> seen;
        for (auto& [name, v] : header.members) {
            if (name == "__metadata__") {
                if (!v.is_object()) throw error(path + ": __metadata__ is not an object");
                for (auto& [k, mv] : v.members) {
                    if (!mv.is_string()) throw error(path + ": metadata \"" + k + "\" is not a string");
                    f.metadata_[k] = mv.str;
                }
                continue;
            }
            const std::string what = path + ": tensor \"" + name + "\"";
            if (name.empty()) throw error(path + ": a tensor has an empty name");
            if (!seen.insert(name).second) throw error(what + " appears twice");
            if (!v.is_object()) throw error(what + ": entry is not an object");
            const json::value* dt = v.find("dtype");
            const json::value* sh = v.find("shape");
            const json::value* off = v.find("data_offsets");
            if (!dt || !dt->is_string()) throw error(what + ": missing or bad \"dtype\"");
            if (!sh || !sh->is_array()) throw error(what + ": missing or bad \"shape\"");
            if (!off || !off->is_array() || off->items.size() != 2) throw error(what + ": missing or bad \"data_offsets\"");
            tensor_info t;
            t.name = name;
            if (dt->str == "F32") t.type = dtype::f32;
            else if (dt->str == "F64") t.type = dtype::f64;
            else if (dt->str == "I32") t.type = dtype::i32;
            else if (dt->str == "I64") t.type = dtype::i64;
            else if (dt->str == "U8") t.type = dtype::u8;
            else throw error(what + ": unsupported dtype \"" + dt->str + "\"");
            if (sh->items.size() > 8) throw error(what + ": more than 8 dimensions");
            std::uint64_t numel = 1;
            for (auto& d : sh->items) {
                if (!d.is_number() || !d.is_integer || d.integer < 0) throw error(what + ": shape entries must be non-negative integers");
                if (d.integer > (std::int64_t(1) << 40)) throw error(what + ": dimension " + std::to_string(d.integer) + " is absurd");
                t.shape.push_back(d.integer);
                if (d.integer != 0 && numel > (std::uint64_t(1) << 42) / std::uint64_t(d.integer))
                    throw error(what + ": element count overflows");
                numel *= std::uint64_t(d.integer);
            }
            for (auto& o : off->items)
                if (!o.is_number() || !o.is_integer || o.integer < 0) throw error(what + ": data_offsets must be non-negative integers");
            std::uint64_t b = std::uint64_t(off->items[0].integer), e = std::uint64_t(off->items[1].integer);
            if (b > e) throw error(what + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] are reversed");
            if (e > data_size) throw error(what + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] run past the end of the data (" + std::to_string(data_size) + " bytes): truncated or damaged");
            if (e - b != numel * dtype_size(t.type))
                throw error(what + ": " + std::to_string(e - b) + " bytes do not hold shape " + shape_string(t.shape) + " of " + dt->str);
            t.begin = std::size_t(b);
            t.end = std::size_t(e);
            f.tensors_.push_back(std::move(t));
        }
        // Offsets must not overlap.
        std::vector<const tensor_info*> order;
        for (auto& t : f.tensors_) order.push_back(&t);
        std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin < b->begin || (a->begin == b->begin && a->end < b->end); });
        for (std::size_t i = 1; i < order.size(); ++i)
            if (order[i]->begin < order[i - 1]->end)
                throw error(path + ": tensors \"" + order[i - 1]->name + "\" and \"" + order[i]->name + "\" overlap");
        for (std::size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
        return f;
    }

public:

    const std::string& path() const { return path_; }
    const std::vector<tensor_info>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const tensor_info* find(const std::string& name) const {
        auto it = index_.find(name);
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }
    // Copy a tensor's raw little-endian bytes (t.end - t.begin of them) to dst.
    // Not thread-safe for file-backed objects (one read position).
    void read_into(const tensor_info& t, void* dst) const {
        const std::size_t n = t.end - t.begin;
        if (n == 0) return;
        if (mapping_) {
            std::memcpy(dst, mapping_->data() + data_offset_ + t.begin, n);
            return;
        }
        if (!stream_) {
            std::memcpy(dst, bytes_.data() + data_offset_ + t.begin, n);
            return;
        }
        stream_->clear();
        stream_->seekg(std::streamoff(data_offset_ + t.begin), std::ios::beg);
        if (!stream_->read(static_cast<char*>(dst), std::streamsize(n)))
            throw error(path_ + ": tensor \"" + t.name + "\": read failed (file changed or truncated while loading?)");
    }

    // A tensor's values as T (the dtype's size must match).
    template <class T>
    std::vector<T> values(const std::string& name) const {
        const tensor_info* t = find(name);
        if (!t) throw error(path_ + ": tensor \"" + name + "\" is missing");
        if (dtype_size(t->type) != sizeof(T)) throw error(path_ + ": tensor \"" + name + "\" has dtype " + dtype_name(t->type));
        std::vector<T> out(t->numel());
        read_into(*t, out.data());
        return out;
    }

    // Where a mapped file (map()) holds the tensor's bytes; null for the other backings.
    const unsigned char* mapped(const tensor_info& t) const { return mapping_ ? mapping_->data() + data_offset_ + t.begin : nullptr; }
    // The mapping (map()), null otherwise.
    const std::shared_ptr<const mapped_file>& mapping() const { return mapping_; }

private:
    std::string path_;
    std::vector<unsigned char> bytes_;       // in-memory file image (from_bytes), or
    std::shared_ptr<std::ifstream> stream_;  // the open file (read), or
    std::shared_ptr<const mapped_file> mapping_;  // the mapped file (map)
    std::size_t data_offset_ = 0;
    std::vector<tensor_info> tensors_;
    std::map<std::string, std::size_t> index_;
    std::map<std::string, std::string> metadata_;
};

namespace detail {

// Mapped staging blocks are whole size classes: class i is mapped_block_min << i bytes, the
// request rounded up to a power of two (address space only: the pages a block's user never
// touches are never backed), so a block's size follows from the request alone and a freed
// block can serve the next request of its class.
inline std::size_t staging_class(std::size_t bytes) {
    std::size_t i = 0;
    while ((mapped_block_min << i) < bytes) ++i;
    return i;
}

// While a staging_scope lives on a thread (a model being built from its weights), the
// mapped blocks of up to 4 MiB freed on that thread are kept, one per size class (at most
// 8 MiB in all, so a load's peak memory grows by little), and handed out again: the
// convolutions' tensors then reuse a few blocks instead of mapping, faulting in and
// unmapping fresh pages one tensor after another. The scope unmaps what it kept, so a
// finished load still leaves nothing behind.
class staging_scope {
public:
    staging_scope() : previous_(current()) { current() = this; }
    staging_scope(const staging_scope&) = delete;
    staging_scope& operator=(const staging_scope&) = delete;
    ~staging_scope() {
        for (std::size_t i = 0; i < classes; ++i)
            if (kept_[i]) unmap_pages(kept_[i], mapped_block_min << i);
        current() = previous_;
    }
    static staging_scope*& current() {
        thread_local staging_scope* s = nullptr;
        return s;
    }
    // A kept block of size class `i`, or null.
    void* take(std::size_t i) {
        if (i >= classes || !kept_[i]) return nullptr;
        void* p = kept_[i];
        kept_[i] = nullptr;
        return p;
    }
    // Keeps a freed block of class `i` (false: the class is taken, the caller unmaps it).
    bool keep(void* p, std::size_t i) {
        if (i >= classes || kept_[i]) return false;
        kept_[i] = p;
        return true;
    }

private:
    static constexpr std::size_t classes = 7;  // 64 KiB .. 4 MiB
    void* kept_[classes] = {};
    staging_scope* previous_;
};

// Allocator for the tensors a source hands out (staging for the networks' packing): arrays of
// 64 KiB or more are mapped pages, returned to the system when freed (or to the thread's
// staging_scope, which returns them when it ends), so a model load leaves nothing behind
// in the C heap (whose allocator keeps freed memory of that size: 11 MB after a load,
// benchmarks/NOTES.md).
template <class T>
struct page_allocator {
    using value_type = T;
    page_allocator() = default;
    template <class U>
    page_allocator(const page_allocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        if (n > std::size_t(-1) / sizeof(T) / 2) throw std::bad_alloc();
        const std::size_t bytes = n * sizeof(T);
        if (bytes < mapped_block_min) return static_cast<T*>(::operator new(bytes));
        const std::size_t i = staging_class(bytes);
        if (staging_scope* s = staging_scope::current())
            if (void* p = s->take(i)) return static_cast<T*>(p);  // a vector value-initialises it
        return static_cast<T*>(map_zeroed_pages(mapped_block_min << i));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        const std::size_t bytes = n * sizeof(T);
        if (bytes < mapped_block_min) return ::operator delete(p);
        const std::size_t i = staging_class(bytes);
        staging_scope* s = staging_scope::current();
        if (!s || !s->keep(p, i)) unmap_pages(p, mapped_block_min << i);
    }
    template <class U>
    bool operator==(const page_allocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const page_allocator<U>&) const noexcept { return false; }
};

}  // namespace detail

// A float32 tensor's values as a weight_source hands them out.
using float_values = std::vector<float, detail::page_allocator<float>>;

// Where the networks' tensors come from. Every request names the tensor and its expected
// shape; a source refuses what it cannot give with an error naming the tensor.
class weight_source {
public:
    virtual ~weight_source() = default;
    // Names the source in messages (a file path, or a description).
    virtual const std::string& path() const = 0;
    virtual std::string metadata(const std::string& key, const std::string& fallback = "") const = 0;
    // A float32 tensor of exactly `shape`, every value finite.
    virtual float_values f32(const std::string& name, const std::vector<std::int64_t>& shape) const = 0;
    virtual std::vector<std::int32_t> i32(const std::string& name, const std::vector<std::int64_t>& shape) const = 0;
    // The shape of a tensor whose size is data-dependent (the template mesh).
    virtual std::vector<std::int64_t> shape_of(const std::string& name) const = 0;
    // Marks a tensor as deliberately unused (present in the checkpoints, not in the forward pass).
    virtual void ignore(const std::string& name) const = 0;
    // Refuses tensors that no layer asked for (a file of another model, a stray key).
    virtual void check_all_used() const = 0;

    // A prepared weight file (prepare_weights, handgraph.hpp) holds the layers' weights as
    // the kernels use them (packed, BatchNorm folded): the networks then take them where
    // the file is mapped instead of preparing them.
    virtual bool prepared() const { return false; }
    virtual bool has(const std::string& name) const = 0;
    // A prepared file's packed tensor: 1-D of exactly `count` values, every one finite,
    // 64-byte aligned where the file is mapped; valid while keep_alive() is held.
    virtual const float* packed_f32(const std::string& name, std::size_t count) const {
        (void)count;
        throw error(path() + ": tensor \"" + name + "\": packed tensors are only in prepared weight files");
    }
    virtual const double* packed_f64(const std::string& name, std::size_t count) const {
        (void)count;
        throw error(path() + ": tensor \"" + name + "\": packed tensors are only in prepared weight files");
    }
    // What keeps packed tensors valid (the mapping), for the model to hold.
    virtual std::shared_ptr<const mapped_file> keep_alive() const { return nullptr; }
};

namespace detail {

// The index of the first NaN or Inf among v[0..n), or n. All exponent bits set: NaN or
// Inf. A branch-free pass in blocks of 64 (a fixed trip count, which compilers vectorise
// at -O2 too; the weights are 87 MB), then the index only when something was found.
inline std::size_t first_non_finite(const float* v, std::size_t n) {
    std::uint32_t bad = 0;
    const std::size_t n64 = n / 64 * 64;
    for (std::size_t i = 0; i < n64; i += 64) {
        std::uint32_t b[64];
        std::memcpy(b, v + i, sizeof b);
        for (int j = 0; j < 64; ++j) bad |= std::uint32_t((b[j] & 0x7f800000u) == 0x7f800000u);
    }
    for (std::size_t i = n64; i < n; ++i) {
        std::uint32_t b;
        std::memcpy(&b, v + i, 4);
        bad |= std::uint32_t((b & 0x7f800000u) == 0x7f800000u);
    }
    if (bad)
        for (std::size_t i = 0; i < n; ++i)
            if (!std::isfinite(v[i])) return i;
    return n;
}

inline std::size_t first_non_finite(const double* v, std::size_t n) {
    std::uint64_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::uint64_t b;
        std::memcpy(&b, v + i, 8);
        bad |= std::uint64_t((b & 0x7ff0000000000000ull) == 0x7ff0000000000000ull);
    }
    if (bad)
        for (std::size_t i = 0; i < n; ++i)
            if (!std::isfinite(v[i])) return i;
    return n;
}

}  // namespace detail

// The handgraph weight file: a safetensors file written by tools/convert_weights.py, bound
// strictly.
class weight_file final : public weight_source {
public:
    static constexpr const char* format_name = "handgraph-weights";
    static constexpr int format_version = 1;

    // A prepared weight file (prepare_weights): the converted file's tensors with the layers'
    // weights replaced by their packed form, read where the file is mapped.
    static constexpr const char* prepared_format_name = "handgraph-prepared";
    static constexpr int prepared_format_version = 1;

    // Reads a converted weight file, or maps a prepared one (its format says which).
    static weight_file read(const std::string& path) {
        safetensors_file f = safetensors_file::read(path);
        auto it = f.metadata().find("format");
        if (it != f.metadata().end() && it->second == prepared_format_name) return weight_file(safetensors_file::map(path));
        return weight_file(std::move(f));
    }

    explicit weight_file(safetensors_file file) : file_(std::move(file)) {
        const auto& md = file_.metadata();
        auto get = [&](const char* k) -> std::string {
            auto it = md.find(k);
            return it == md.end() ? std::string() : it->second;
        };
        if (get("format") == "handgraph-palm-detector")
            throw error(file_.path() + ": this is a palm detector (tools/convert_palm.py, format \"handgraph-palm-detector\"), not the hand network's "
                                       "weight file: give it as the detector (hand_demo --detector), and the weights made by tools/convert_weights.py as the model");
        if (get("format") == prepared_format_name) {
            if (get("format_version") != std::to_string(prepared_format_version))
                throw error(file_.path() + ": prepared weight file format version \"" + get("format_version") + "\" is not supported (this build reads version " +
                            std::to_string(prepared_format_version) + "); prepare it again from the converted weights with this version's hand_prepare");
            prepared_ = true;
            return;
        }
        if (get("format") != format_name)
            throw error(file_.path() + ": not a handgraph weight file (metadata \"format\" is \"" + get("format") +
                        "\", expected \"" + format_name + "\"); convert the .pth files with tools/convert_weights.py");
        if (get("format_version") != std::to_string(format_version))
            throw error(file_.path() + ": weight file format version \"" + get("format_version") + "\" is not supported (this build reads version " +
                        std::to_string(format_version) + "); re-convert with this version's tools/convert_weights.py");
    }

    const safetensors_file& file() const { return file_; }
    const std::string& path() const override { return file_.path(); }
    std::string metadata(const std::string& key, const std::string& fallback = "") const override {
        auto it = file_.metadata().find(key);
        return it == file_.metadata().end() ? fallback : it->second;
    }

    float_values f32(const std::string& name, const std::vector<std::int64_t>& shape) const override {
        const tensor_info& t = require(name, dtype::f32, shape);
        float_values v(t.numel());
        file_.read_into(t, v.data());
        check_finite(name, v.data(), v.size());
        return v;
    }
    bool prepared() const override { return prepared_; }
    bool has(const std::string& name) const override { return file_.find(name) != nullptr; }
    const float* packed_f32(const std::string& name, std::size_t count) const override {
        const float* p = reinterpret_cast<const float*>(require_packed(name, dtype::f32, count));
        check_finite(name, p, count);
        return p;
    }
    const double* packed_f64(const std::string& name, std::size_t count) const override {
        const double* p = reinterpret_cast<const double*>(require_packed(name, dtype::f64, count));
        check_finite(name, p, count);
        return p;
    }
    std::shared_ptr<const mapped_file> keep_alive() const override { return file_.mapping(); }
    std::vector<std::int32_t> i32(const std::string& name, const std::vector<std::int64_t>& shape) const override {
        require(name, dtype::i32, shape);
        return file_.values<std::int32_t>(name);
    }
    std::vector<std::int64_t> shape_of(const std::string& name) const override { return info(name).shape; }
    const tensor_info& info(const std::string& name) const {
        const tensor_info* t = file_.find(name);
        if (!t) throw error(path() + ": tensor \"" + name + "\" is missing");
        used_.insert(name);
        return *t;
    }
    void ignore(const std::string& name) const override { info(name); }
    void check_all_used() const override {
        std::string extra;
        int count = 0;
        for (auto& t : file_.tensors())
            if (!used_.count(t.name)) {
                if (count < 5) extra += (count ? ", " : "") + t.name;
                ++count;
            }
        if (count) throw error(path() + ": " + std::to_string(count) + " unexpected tensor(s): " + extra + (count > 5 ? ", ..." : ""));
    }

private:
    template <class T>
    void check_finite(const std::string& name, const T* v, std::size_t n) const {
        const std::size_t i = detail::first_non_finite(v, n);
        if (i != n) throw error(path() + ": tensor \"" + name + "\" holds a non-finite value (NaN or Inf) at flat index " + std::to_string(i));
    }
    const unsigned char* require_packed(const std::string& name, dtype type, std::size_t count) const {
        if (!prepared_) throw error(path() + ": tensor \"" + name + "\": packed tensors are only in prepared weight files");
        const tensor_info& t = require(name, type, {std::int64_t(count)});
        const unsigned char* p = file_.mapped(t);
        if (!p) throw error(path() + ": tensor \"" + name + "\": a prepared file must be mapped (weight_file::map)");
        if (reinterpret_cast<std::uintptr_t>(p) % 64)
            throw error(path() + ": tensor \"" + name + "\" does not start on a 64-byte boundary of the file (damaged, or not written by handgraph::prepare_weights)");
        return p;
    }
    const tensor_info& require(const std::string& name, dtype type, const std::vector<std::int64_t>& shape) const {
        const tensor_info& t = info(name);
        if (t.type != type)
            throw error(path() + ": tensor \"" + name + "\" has dtype " + dtype_name(t.type) + ", expected " + dtype_name(type));
        if (t.shape != shape)
            throw error(path() + ": tensor \"" + name + "\" has shape " + shape_string(t.shape) + ", expected " + shape_string(shape));
        return t;
    }

    safetensors_file file_;
    bool prepared_ = false;
    mutable std::set<std::string> used_;
};

// A deterministic random-weight model of the real shapes (demos, benchmarks and tests that
// run without the released weights; the cost of a forward pass is the real one). A tensor
// is made when a layer asks for it, from the seed and the tensor's name: conv/linear
// weights uniform with variance 1/fan_in, biases and BN shifts small, BN scales near 1,
// running variances in [0.5, 1.5]. The template mesh is given (vertices n x 3, raw faces
// m x 3); it is the only tensor with a stored value.
class random_weights final : public weight_source {
public:
    random_weights(std::uint64_t seed, std::vector<float> vertices, std::vector<std::int32_t> faces)
        : seed_(seed), vertices_(std::move(vertices)), faces_(std::move(faces)), path_("<random weights, seed " + std::to_string(seed) + ">") {
        if (vertices_.size() % 3 || faces_.size() % 3) throw error(path_ + ": template vertices and faces must be n x 3");
    }
    const std::string& path() const override { return path_; }
    std::string metadata(const std::string& key, const std::string& fallback = "") const override {
        if (key == "source") return "random seed " + std::to_string(seed_);
        return fallback;
    }
    float_values f32(const std::string& name, const std::vector<std::int64_t>& shape) const override {
        if (name == "template.vertices") {
            check_shape(name, shape, shape_of(name));
            return float_values(vertices_.begin(), vertices_.end());
        }
        std::uint64_t h = 1469598103934665603ull ^ seed_;  // FNV-1a of the name, mixed with the seed
        for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
        auto next = [&h]() {  // splitmix64 -> uniform in [0, 1)
            h += 0x9E3779B97F4A7C15ull;
            std::uint64_t z = h;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            return double((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
        };
        std::size_t n = 1, fan_in = 1;
        for (std::size_t i = 0; i < shape.size(); ++i) {
            if (shape[i] < 0) throw error(path_ + ": tensor \"" + name + "\" asked with a negative dimension");
            n *= std::size_t(shape[i]);
            if (i > 0) fan_in *= std::size_t(shape[i]);
        }
        auto ends = [&](const char* suffix) {
            std::string s(suffix);
            return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
        };
        float_values v(n);
        for (auto& x : v) {
            double u = next();
            if (ends(".running_var")) x = float(0.5 + u);
            else if (ends(".running_mean") || ends(".bias")) x = float(0.2 * (u - 0.5));
            else if (shape.size() == 1) x = float(0.8 + 0.4 * u);                  // BN scale
            else x = float((2 * u - 1) * std::sqrt(3.0 / double(fan_in)));        // conv / linear weight
        }
        return v;
    }
    std::vector<std::int32_t> i32(const std::string& name, const std::vector<std::int64_t>& shape) const override {
        if (name != "template.faces") throw error(path_ + ": no int32 tensor \"" + name + "\"");
        check_shape(name, shape, shape_of(name));
        return faces_;
    }
    std::vector<std::int64_t> shape_of(const std::string& name) const override {
        if (name == "template.vertices") return {std::int64_t(vertices_.size() / 3), 3};
        if (name == "template.faces") return {std::int64_t(faces_.size() / 3), 3};
        throw error(path_ + ": tensor \"" + name + "\" has no stored shape (random tensors are made at the size asked)");
    }
    void ignore(const std::string&) const override {}
    void check_all_used() const override {}
    bool has(const std::string&) const override { return true; }  // any tensor is made when asked

private:
    void check_shape(const std::string& name, const std::vector<std::int64_t>& want, const std::vector<std::int64_t>& have) const {
        if (want != have) throw error(path_ + ": tensor \"" + name + "\" has shape " + shape_string(have) + ", expected " + shape_string(want));
    }
    std::uint64_t seed_;
    std::vector<float> vertices_;
    std::vector<std::int32_t> faces_;
    std::string path_;
};

}  // namespace handgraph

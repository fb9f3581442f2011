// handgraph/mat.hpp: MAT v5 files (MATLAB -v5/-v6/-v7, scipy.io.savemat), read and write.
//
// Reading covers what the release's data needs and what MATLAB and scipy write for it:
// plain and zlib-compressed (miCOMPRESSED) elements, little- and big-endian files, the
// small data element format, numeric classes double/single/int8..uint64 stored with any
// storage type (MATLAB stores a double array of small integers as miUINT8: the values
// are converted to the array's class), char arrays (miUTF8, miUTF16, miUINT16, miUINT8)
// and cell arrays. Struct, object, sparse, complex and function arrays are listed but
// unusable (accessing them throws). Every byte sequence either parses or throws
// handgraph::error naming the file and, once known, the variable; sizes are checked
// before anything is allocated, and `mat_read_options::max_bytes` bounds what the
// reader allocates (decompression included). MAT v4 and v7.3 (HDF5) files are refused.
//
// Writing: uncompressed MAT v5 (what scipy.io.loadmat and MATLAB read) with numeric
// arrays of any class above, char arrays and cell arrays, written atomically.
//
// Arrays are column-major (MATLAB order); `as_double_row_major()` gives numpy's C order.
// Depends on error.hpp, io.hpp (the atomic writer) and stb_image.h (zlib decoder; the
// implementation is compiled elsewhere, e.g. tools/runtime/stb_impl.cpp).
#pragma once
#include <stb_image.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "error.hpp"
#include "io.hpp"

namespace handgraph {

// MATLAB array classes (mxCLASS ids of the MAT v5 format).
enum class mat_class : std::uint8_t {
    cell = 1, structure = 2, object = 3, character = 4, sparse = 5,
    float64 = 6, float32 = 7, int8 = 8, uint8 = 9, int16 = 10, uint16 = 11,
    int32 = 12, uint32 = 13, int64 = 14, uint64 = 15, function = 16, opaque = 17,
};

// MATLAB's name of a class: "double", "single", "char", "cell", "int32", ...
inline const char* mat_class_name(mat_class c) {
    switch (c) {
        case mat_class::cell: return "cell";
        case mat_class::structure: return "struct";
        case mat_class::object: return "object";
        case mat_class::character: return "char";
        case mat_class::sparse: return "sparse";
        case mat_class::float64: return "double";
        case mat_class::float32: return "single";
        case mat_class::int8: return "int8";
        case mat_class::uint8: return "uint8";
        case mat_class::int16: return "int16";
        case mat_class::uint16: return "uint16";
        case mat_class::int32: return "int32";
        case mat_class::uint32: return "uint32";
        case mat_class::int64: return "int64";
        case mat_class::uint64: return "uint64";
        case mat_class::function: return "function_handle";
        case mat_class::opaque: return "opaque";
    }
    return "unknown";
}

namespace detail {

using mat_values = std::variant<std::vector<double>, std::vector<float>, std::vector<std::int8_t>,
                                std::vector<std::uint8_t>, std::vector<std::int16_t>, std::vector<std::uint16_t>,
                                std::vector<std::int32_t>, std::vector<std::uint32_t>, std::vector<std::int64_t>,
                                std::vector<std::uint64_t>>;

template <class T> struct mat_class_of;
template <> struct mat_class_of<double> { static constexpr mat_class value = mat_class::float64; };
template <> struct mat_class_of<float> { static constexpr mat_class value = mat_class::float32; };
template <> struct mat_class_of<std::int8_t> { static constexpr mat_class value = mat_class::int8; };
template <> struct mat_class_of<std::uint8_t> { static constexpr mat_class value = mat_class::uint8; };
template <> struct mat_class_of<std::int16_t> { static constexpr mat_class value = mat_class::int16; };
template <> struct mat_class_of<std::uint16_t> { static constexpr mat_class value = mat_class::uint16; };
template <> struct mat_class_of<std::int32_t> { static constexpr mat_class value = mat_class::int32; };
template <> struct mat_class_of<std::uint32_t> { static constexpr mat_class value = mat_class::uint32; };
template <> struct mat_class_of<std::int64_t> { static constexpr mat_class value = mat_class::int64; };
template <> struct mat_class_of<std::uint64_t> { static constexpr mat_class value = mat_class::uint64; };

inline bool mat_is_numeric(mat_class c) { return c >= mat_class::float64 && c <= mat_class::uint64; }

// Product of dims; throws when the product of the nonzero dims overflows size_t (so no
// partial product of a valid array's dims can overflow either).
inline std::size_t mat_numel(const std::vector<std::size_t>& dims, const std::string& where) {
    std::size_t nonzero = 1;
    bool empty = false;
    for (std::size_t d : dims) {
        if (d == 0) {
            empty = true;
            continue;
        }
        if (nonzero > std::numeric_limits<std::size_t>::max() / d) throw error(where + ": dimensions overflow");
        nonzero *= d;
    }
    return empty ? 0 : nonzero;
}

inline std::string mat_dims_text(const std::vector<std::size_t>& dims) {
    std::string s;
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
    return s;
}

inline void mat_append_utf8(std::string& out, char32_t c) {
    if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;  // lone surrogate
    if (c < 0x80) {
        out += char(c);
    } else if (c < 0x800) {
        out += char(0xC0 | (c >> 6));
        out += char(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += char(0xE0 | (c >> 12));
        out += char(0x80 | ((c >> 6) & 0x3F));
        out += char(0x80 | (c & 0x3F));
    } else if (c < 0x110000) {
        out += char(0xF0 | (c >> 18));
        out += char(0x80 | ((c >> 12) & 0x3F));
        out += char(0x80 | ((c >> 6) & 0x3F));
        out += char(0x80 | (c & 0x3F));
    } else {
        mat_append_utf8(out, 0xFFFD);
    }
}

// Strict UTF-8 decoding into code points; false on malformed input.
inline bool mat_decode_utf8(const unsigned char* p, std::size_t n, std::u32string& out) {
    std::size_t i = 0;
    while (i < n) {
        unsigned char b = p[i];
        char32_t c;
        std::size_t len;
        if (b < 0x80) { c = b; len = 1; }
        else if ((b & 0xE0) == 0xC0) { c = b & 0x1F; len = 2; }
        else if ((b & 0xF0) == 0xE0) { c = b & 0x0F; len = 3; }
        else if ((b & 0xF8) == 0xF0) { c = b & 0x07; len = 4; }
        else return false;
        if (len > n - i) return false;
        for (std::size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            c = (c << 6) | (p[i + k] & 0x3F);
        }
        static const char32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (c < min_for_len[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
        out.push_back(c);
        i += len;
    }
    return true;
}

// UTF-8 text of MATLAB chars (UTF-16 code units or code points), pairing surrogates.
inline std::string mat_chars_to_utf8(const char32_t* c, std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        char32_t u = c[i];
        if (u >= 0xD800 && u <= 0xDBFF && i + 1 < n && c[i + 1] >= 0xDC00 && c[i + 1] <= 0xDFFF) {
            u = 0x10000 + ((u - 0xD800) << 10) + (c[i + 1] - 0xDC00);
            ++i;
        }
        mat_append_utf8(s, u);
    }
    return s;
}

}  // namespace detail

namespace detail {
struct mat_access;  // the reader and writer
}  // namespace detail

// One MATLAB array: a numeric, char or cell array (or an unsupported one, kept so that
// the file's variable list is complete; using it throws).
class mat_array {
public:
    mat_array() = default;

    // ---- construction, for writing ----
    // A numeric array from column-major values; dims must multiply to values.size().
    template <class T>
    static mat_array numeric(std::string name, std::vector<std::size_t> dims, std::vector<T> column_major) {
        static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "numeric element type");
        mat_array a;
        a.name_ = std::move(name);
        a.class_ = detail::mat_class_of<T>::value;
        a.dims_ = normal_dims(std::move(dims));
        if (detail::mat_numel(a.dims_, a.where()) != column_major.size())
            throw error(a.where() + ": " + std::to_string(column_major.size()) + " values do not fill dims " +
                        detail::mat_dims_text(a.dims_));
        a.values_ = std::move(column_major);
        return a;
    }
    // A numeric array from values in C (numpy) order, e.g. an (N, 21, 3) pose array.
    template <class T>
    static mat_array from_row_major(std::string name, std::vector<std::size_t> dims, const std::vector<T>& row_major) {
        mat_array a = numeric<T>(std::move(name), dims, std::vector<T>(row_major.size()));
        auto& out = std::get<std::vector<T>>(a.values_);
        a.for_each_row_major([&](std::size_t r, std::size_t c) { out[c] = row_major[r]; });
        return a;
    }
    // A char matrix, one row per string (UTF-8), padded with spaces to the longest row
    // like MATLAB's char(). No strings (or only empty ones) give a 0x0 char array.
    static mat_array char_rows(std::string name, const std::vector<std::string>& rows) {
        mat_array a;
        a.name_ = std::move(name);
        a.class_ = mat_class::character;
        std::vector<std::u32string> decoded;
        std::size_t width = 0;
        for (const auto& r : rows) {
            std::u32string u;
            if (!detail::mat_decode_utf8(reinterpret_cast<const unsigned char*>(r.data()), r.size(), u))
                throw error(a.where() + ": string is not valid UTF-8");
            width = std::max(width, u.size());
            decoded.push_back(std::move(u));
        }
        if (width == 0) {
            a.dims_ = {0, 0};
            return a;
        }
        a.dims_ = {rows.size(), width};
        a.chars_.assign(rows.size() * width, U' ');
        for (std::size_t i = 0; i < decoded.size(); ++i)
            for (std::size_t j = 0; j < decoded[i].size(); ++j) a.chars_[i + rows.size() * j] = decoded[i][j];
        return a;
    }
    // A 1xN char array.
    static mat_array text(std::string name, const std::string& s) { return char_rows(std::move(name), {s}); }
    // A cell array (column-major elements; their names are ignored).
    static mat_array cell(std::string name, std::vector<std::size_t> dims, std::vector<mat_array> items) {
        mat_array a;
        a.name_ = std::move(name);
        a.class_ = mat_class::cell;
        a.dims_ = normal_dims(std::move(dims));
        if (detail::mat_numel(a.dims_, a.where()) != items.size())
            throw error(a.where() + ": " + std::to_string(items.size()) + " cells do not fill dims " +
                        detail::mat_dims_text(a.dims_));
        for (auto& it : items) it.name_.clear();
        a.cells_ = std::move(items);
        return a;
    }
    // A 1xN cell of 1xM char arrays (what scipy writes for a list of strings as objects).
    static mat_array cell_of_strings(std::string name, const std::vector<std::string>& items) {
        std::vector<mat_array> cells;
        for (const auto& s : items) cells.push_back(text("", s));
        return cell(std::move(name), {1, items.size()}, std::move(cells));
    }

    // ---- what it is ----
    const std::string& name() const { return name_; }
    const std::string& file() const { return file_; }
    mat_class class_id() const { return class_; }
    const char* class_name() const { return mat_class_name(class_); }
    bool is_logical() const { return logical_; }
    bool is_supported() const { return unsupported_.empty(); }
    const std::string& unsupported_reason() const { return unsupported_; }
    bool is_numeric() const { return is_supported() && detail::mat_is_numeric(class_); }
    bool is_char() const { return is_supported() && class_ == mat_class::character; }
    bool is_cell() const { return is_supported() && class_ == mat_class::cell; }
    const std::vector<std::size_t>& dims() const { return dims_; }
    std::size_t ndims() const { return dims_.size(); }
    std::size_t numel() const { return detail::mat_numel(dims_, where()); }
    // "MAT file 'a.mat', variable 'x'" (or the parts that are known), for messages.
    std::string where() const {
        std::string s = file_.empty() ? std::string("MAT array") : "MAT file '" + file_ + "'";
        return s + (name_.empty() ? std::string() : ", variable '" + name_ + "'");
    }

    // ---- numeric values ----
    // The values in their own type; T must be the array's class (throws otherwise).
    template <class T>
    const std::vector<T>& values() const {
        require_supported();
        const auto* v = std::get_if<std::vector<T>>(&values_);
        if (!v || !detail::mat_is_numeric(class_))
            throw error(where() + ": is " + class_name() + ", not " + mat_class_name(detail::mat_class_of<T>::value));
        return *v;
    }
    // Converted, column-major. Any numeric class.
    std::vector<double> as_double() const { return converted<double>(); }
    std::vector<float> as_float() const { return converted<float>(); }
    // Converted, in C (numpy) order of the same dims: (N, 21, 3) gives [n][joint][xyz].
    std::vector<double> as_double_row_major() const { return to_row_major(converted<double>()); }
    std::vector<float> as_float_row_major() const { return to_row_major(converted<float>()); }
    // Column-major linear index of (i, j, k), bounds-checked; k runs over all dims past
    // the second (MATLAB linear indexing of trailing dims).
    std::size_t index(std::size_t i, std::size_t j = 0, std::size_t k = 0) const {
        std::size_t d0 = dims_.size() > 0 ? dims_[0] : 1, d1 = dims_.size() > 1 ? dims_[1] : 1;
        std::size_t d2 = 1;
        for (std::size_t t = 2; t < dims_.size(); ++t) d2 *= dims_[t];
        if (i >= d0 || j >= d1 || k >= d2)
            throw error(where() + ": index (" + std::to_string(i) + ", " + std::to_string(j) + ", " + std::to_string(k) +
                        ") outside dims " + detail::mat_dims_text(dims_));
        return i + d0 * (j + d1 * k);
    }
    // One value as double, (i, j, k) 0-based as in index().
    double at(std::size_t i, std::size_t j = 0, std::size_t k = 0) const {
        require_numeric();
        std::size_t n = index(i, j, k);
        return std::visit([n](const auto& v) { return double(v.at(n)); }, values_);
    }

    // ---- text ----
    // Code points (UTF-16 units for miUTF16/miUINT16 data), column-major.
    const std::u32string& chars() const {
        require_supported();
        if (class_ != mat_class::character) throw error(where() + ": is " + class_name() + ", not char");
        return chars_;
    }
    // The rows of a 2-D char array, or the strings of a cell array of char rows
    // (column-major cell order), as UTF-8. Rows keep MATLAB's space padding; an empty
    // char array gives no strings, empty cell elements ([] or '') give "".
    std::vector<std::string> strings() const {
        require_supported();
        std::vector<std::string> out;
        if (class_ == mat_class::cell) {
            for (const auto& c : cells_) {
                if (c.is_supported() && c.numel() == 0) {  // [] or '' (MATLAB's empty cells)
                    out.emplace_back();
                    continue;
                }
                if (!c.is_char()) throw error(where() + ": cell holds a " + c.class_name() + " array, not a string");
                auto rows = c.strings();
                if (rows.size() > 1) throw error(where() + ": cell holds a char matrix of " + std::to_string(rows.size()) + " rows, not one string");
                out.push_back(rows.empty() ? std::string() : rows[0]);
            }
            return out;
        }
        if (class_ != mat_class::character) throw error(where() + ": is " + class_name() + ", not char or cell");
        if (dims_.size() != 2) throw error(where() + ": char array of dims " + detail::mat_dims_text(dims_) + " is not 2-D");
        if (chars_.empty()) return out;  // 0xN or Nx0: no strings
        std::size_t r = dims_[0], c = dims_[1];
        std::u32string row(c, U' ');
        for (std::size_t i = 0; i < r; ++i) {
            for (std::size_t j = 0; j < c; ++j) row[j] = chars_[i + r * j];
            out.push_back(detail::mat_chars_to_utf8(row.data(), row.size()));
        }
        return out;
    }
    // The one string of a 1xN char array (or "" for an empty one).
    std::string string() const {
        auto s = strings();
        if (s.size() > 1 || class_ != mat_class::character) throw error(where() + ": is not a single string");
        return s.empty() ? std::string() : s[0];
    }
    // The elements of a cell array, column-major.
    const std::vector<mat_array>& cells() const {
        require_supported();
        if (class_ != mat_class::cell) throw error(where() + ": is " + std::string(class_name()) + ", not cell");
        return cells_;
    }

    // ---- checks for loaders ----
    void require_numeric() const {
        require_supported();
        if (!detail::mat_is_numeric(class_)) throw error(where() + ": is " + class_name() + ", not numeric");
    }
    // Throws unless dims equal `expected` (e.g. {583, 21, 3}).
    void require_dims(const std::vector<std::size_t>& expected) const {
        if (dims_ != expected)
            throw error(where() + ": has dims " + detail::mat_dims_text(dims_) + ", expected " + detail::mat_dims_text(expected));
    }

private:
    friend struct detail::mat_access;

    static std::vector<std::size_t> normal_dims(std::vector<std::size_t> dims) {
        if (dims.empty()) return {1, 1};
        if (dims.size() == 1) return {1, dims[0]};  // like scipy's default oned_as='row'
        return dims;
    }
    void require_supported() const {
        if (!unsupported_.empty()) throw error(where() + ": " + unsupported_);
    }
    template <class T>
    std::vector<T> converted() const {
        require_numeric();
        return std::visit([](const auto& v) {
            std::vector<T> out(v.size());
            for (std::size_t i = 0; i < v.size(); ++i) out[i] = static_cast<T>(v[i]);
            return out;
        }, values_);
    }
    // Calls f(row_major_index, column_major_index) for every element.
    template <class F>
    void for_each_row_major(F&& f) const {
        std::size_t n = detail::mat_numel(dims_, where());
        if (n == 0) return;
        std::size_t nd = dims_.size();
        std::vector<std::size_t> idx(nd, 0), stride(nd, 1);
        for (std::size_t d = 1; d < nd; ++d) stride[d] = stride[d - 1] * dims_[d - 1];
        std::size_t col = 0;
        for (std::size_t r = 0; r < n; ++r) {
            f(r, col);
            for (std::size_t d = nd; d-- > 0;) {  // last index runs fastest in C order
                if (++idx[d] < dims_[d]) { col += stride[d]; break; }
                col -= stride[d] * (dims_[d] - 1);
                idx[d] = 0;
            }
        }
    }
    template <class T>
    std::vector<T> to_row_major(const std::vector<T>& col) const {
        std::vector<T> out(col.size());
        for_each_row_major([&](std::size_t r, std::size_t c) { out[r] = col[c]; });
        return out;
    }

    std::string name_, file_;
    mat_class class_ = mat_class::float64;
    bool logical_ = false;
    std::vector<std::size_t> dims_{0, 0};
    detail::mat_values values_;
    std::u32string chars_;
    std::vector<mat_array> cells_;
    std::string unsupported_;  // why it cannot be used; empty when it can
};

// A MAT file's variables in file order.
struct mat_file {
    std::string path;         // as given, for messages
    std::string header_text;  // the 116-byte description, trailing spaces/NULs removed
    bool big_endian = false;
    std::vector<mat_array> variables;

    bool has(const std::string& name) const {
        for (const auto& v : variables)
            if (v.name() == name) return true;
        return false;
    }
    // The variable, or throws naming the file and listing what it holds.
    const mat_array& get(const std::string& name) const {
        for (const auto& v : variables)
            if (v.name() == name) return v;
        std::string have;
        for (const auto& v : variables) have += (have.empty() ? "" : ", ") + v.name();
        throw error("MAT file '" + path + "': no variable '" + name + "' (it holds: " + (have.empty() ? "nothing" : have) + ")");
    }
};

struct mat_read_options {
    // Upper bound on the bytes the reader allocates (file, decompressed elements, values).
    std::uint64_t max_bytes = std::uint64_t(1) << 30;
    // Deepest nesting of cell arrays.
    int max_depth = 16;
};

// Element data types of the format.
namespace detail {
enum mat_type : std::uint32_t {
    mi_int8 = 1, mi_uint8 = 2, mi_int16 = 3, mi_uint16 = 4, mi_int32 = 5, mi_uint32 = 6, mi_single = 7,
    mi_double = 9, mi_int64 = 12, mi_uint64 = 13, mi_matrix = 14, mi_compressed = 15, mi_utf8 = 16,
    mi_utf16 = 17, mi_utf32 = 18,
};

inline std::size_t mat_type_size(std::uint32_t t) {
    switch (t) {
        case mi_int8: case mi_uint8: case mi_utf8: return 1;
        case mi_int16: case mi_uint16: case mi_utf16: return 2;
        case mi_int32: case mi_uint32: case mi_single: case mi_utf32: return 4;
        case mi_double: case mi_int64: case mi_uint64: return 8;
        default: return 0;
    }
}
inline bool mat_type_is_numeric(std::uint32_t t) {
    return t == mi_int8 || t == mi_uint8 || t == mi_int16 || t == mi_uint16 || t == mi_int32 || t == mi_uint32 ||
           t == mi_single || t == mi_double || t == mi_int64 || t == mi_uint64;
}

struct mat_tag {
    std::uint32_t type = 0;
    std::uint32_t nbytes = 0;
    std::size_t data = 0;  // offset of the data
    std::size_t next = 0;  // offset of the next element (padding skipped)
};

}  // namespace detail

namespace detail {

// Reads and writes MAT internals; a struct so that it can be a friend of mat_array.
struct mat_access {
    struct reader {
        bool swap = false;
        std::string file;
        std::uint64_t budget = 0;  // bytes still allowed
        int max_depth = 16;

        std::uint16_t u16(const unsigned char* p) const {
            std::uint16_t v;
            std::memcpy(&v, p, 2);
            return swap ? std::uint16_t((v >> 8) | (v << 8)) : v;
        }
        std::uint32_t u32(const unsigned char* p) const {
            std::uint32_t v;
            std::memcpy(&v, p, 4);
            if (swap) v = (v >> 24) | ((v >> 8) & 0xFF00u) | ((v << 8) & 0xFF0000u) | (v << 24);
            return v;
        }
        std::uint64_t u64(const unsigned char* p) const {
            std::uint64_t v;
            std::memcpy(&v, p, 8);
            if (swap) {
                std::uint64_t r = 0;
                for (int i = 0; i < 8; ++i) r = (r << 8) | ((v >> (8 * i)) & 0xFF);
                v = r;
            }
            return v;
        }
        void charge(std::uint64_t bytes, const std::string& where) {
            if (bytes > budget)
                throw error(where + ": needs more memory than the reader's limit (mat_read_options::max_bytes)");
            budget -= bytes;
        }

        // The tag at p[off], inside [0, end). `top` elements are not padded (scipy/MATLAB
        // skip exactly nbytes at the top level); sub-elements are padded to 8 bytes.
        detail::mat_tag tag(const unsigned char* p, std::size_t off, std::size_t end, bool top, const std::string& where) const {
            if (off > end || end - off < 8)
                throw error(where + ": truncated (element tag at byte " + std::to_string(off) + " needs 8 bytes, " +
                            std::to_string(end > off ? end - off : 0) + " left)");
            detail::mat_tag t;
            std::uint32_t w0 = u32(p + off);
            if ((w0 >> 16) != 0) {  // small data element: size and type packed in 4 bytes
                t.type = w0 & 0xFFFF;
                t.nbytes = w0 >> 16;
                if (t.nbytes > 4)
                    throw error(where + ": bad small data element at byte " + std::to_string(off) + " (" +
                                std::to_string(t.nbytes) + " bytes > 4)");
                t.data = off + 4;
                t.next = off + 8;
                return t;
            }
            t.type = w0;
            t.nbytes = u32(p + off + 4);
            t.data = off + 8;
            if (t.nbytes > end - t.data)
                throw error(where + ": truncated (element at byte " + std::to_string(off) + " declares " +
                            std::to_string(t.nbytes) + " bytes, " + std::to_string(end - t.data) + " left)");
            std::size_t padded = top ? t.nbytes : (std::size_t(t.nbytes) + 7) / 8 * 8;
            t.next = std::min(end, t.data + padded);
            return t;
        }

        // A miMATRIX element's contents p[begin, end).
        mat_array matrix(const unsigned char* p, std::size_t begin, std::size_t end, int depth, const std::string& context) {
            mat_array a;
            a.file_ = file;
            if (depth > max_depth) throw error(context + ": cell arrays nested deeper than " + std::to_string(max_depth));
            if (begin == end) {  // empty matrix element (empty cell contents)
                a.dims_ = {0, 0};
                a.values_ = std::vector<double>();
                return a;
            }
            // array flags
            auto tf = tag(p, begin, end, false, context);
            if (tf.type != detail::mi_uint32 || tf.nbytes != 8)
                throw error(context + ": array flags element has type " + std::to_string(tf.type) + " and " +
                            std::to_string(tf.nbytes) + " bytes (expected miUINT32, 8)");
            std::uint32_t flags = u32(p + tf.data);
            std::uint32_t cls = flags & 0xFF;
            bool complex = (flags & 0x800) != 0;
            a.logical_ = (flags & 0x200) != 0;
            if (cls < 1 || cls > 17) throw error(context + ": invalid array class " + std::to_string(cls));
            a.class_ = mat_class(cls);
            // dimensions
            auto td = tag(p, tf.next, end, false, context);
            if (td.type != detail::mi_int32 || td.nbytes % 4 != 0 || td.nbytes < 8)
                throw error(context + ": dimensions element has type " + std::to_string(td.type) + " and " +
                            std::to_string(td.nbytes) + " bytes (expected miINT32, at least 2 dims)");
            a.dims_.clear();
            for (std::size_t i = 0; i < td.nbytes / 4; ++i) {
                auto d = std::int32_t(u32(p + td.data + 4 * i));
                if (d < 0) throw error(context + ": negative dimension " + std::to_string(d));
                a.dims_.push_back(std::size_t(d));
            }
            // name
            auto tn = tag(p, td.next, end, false, context);
            if (tn.type != detail::mi_int8 && tn.type != detail::mi_uint8 && tn.type != detail::mi_utf8)
                throw error(context + ": array name element has type " + std::to_string(tn.type) + " (expected miINT8)");
            a.name_.assign(reinterpret_cast<const char*>(p + tn.data), tn.nbytes);
            while (!a.name_.empty() && a.name_.back() == '\0') a.name_.pop_back();
            for (char c : a.name_)
                if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) throw error(context + ": array name holds control characters");
            std::string where = a.name_.empty() ? context : "MAT file '" + file + "', variable '" + a.name_ + "'";
            if (!a.name_.empty() && depth > 0) where = context + " (named '" + a.name_ + "')";
            std::size_t numel = detail::mat_numel(a.dims_, where);
            std::size_t off = tn.next;

            if (complex && a.class_ != mat_class::sparse) {
                a.unsupported_ = std::string("complex ") + a.class_name() + " arrays are not supported";
                return a;
            }
            switch (a.class_) {
                case mat_class::structure: case mat_class::object: case mat_class::sparse:
                case mat_class::function: case mat_class::opaque:
                    a.unsupported_ = std::string(a.class_name()) + " arrays are not supported";
                    return a;
                case mat_class::cell: {
                    // Every cell takes at least an 8-byte tag: bound numel before reserving.
                    if (numel > (end - off) / 8)
                        throw error(where + ": cell array of " + std::to_string(numel) + " elements does not fit in " +
                                    std::to_string(end - off) + " bytes");
                    charge(std::uint64_t(numel) * sizeof(mat_array), where);
                    a.cells_.reserve(numel);
                    for (std::size_t i = 0; i < numel; ++i) {
                        std::string ctx = where + ", cell " + std::to_string(i + 1);
                        auto tc = tag(p, off, end, false, ctx);
                        if (tc.type != detail::mi_matrix)
                            throw error(ctx + ": element type " + std::to_string(tc.type) + " (expected miMATRIX)");
                        a.cells_.push_back(matrix(p, tc.data, tc.data + tc.nbytes, depth + 1, ctx));
                        a.cells_.back().name_.clear();
                        off = tc.next;
                    }
                    return a;
                }
                case mat_class::character: {
                    if (numel == 0 && off >= end) return a;  // some writers omit the empty data element
                    auto tc = tag(p, off, end, false, where);
                    chars(p, tc, numel, a, where);
                    return a;
                }
                default: {
                    if (numel == 0 && off >= end) {  // empty array without a data element
                        numeric_empty(a);
                        return a;
                    }
                    auto tr = tag(p, off, end, false, where);
                    numeric(p, tr, numel, a, where);
                    return a;
                }
            }
        }

        void chars(const unsigned char* p, const detail::mat_tag& t, std::size_t numel, mat_array& a, const std::string& where) {
            std::size_t sz = detail::mat_type_size(t.type);
            if (sz == 0 || t.nbytes % sz != 0)
                throw error(where + ": char data of type " + std::to_string(t.type) + " and " + std::to_string(t.nbytes) + " bytes");
            if (t.nbytes / sz < numel && t.type != detail::mi_utf8)
                throw error(where + ": char data holds " + std::to_string(t.nbytes / sz) + " characters, dims " +
                            detail::mat_dims_text(a.dims_) + " need " + std::to_string(numel));
            charge(std::uint64_t(t.nbytes / sz) * sizeof(char32_t), where);
            const unsigned char* d = p + t.data;
            std::u32string& c = a.chars_;
            switch (t.type) {
                case detail::mi_utf8:
                    if (!detail::mat_decode_utf8(d, t.nbytes, c)) throw error(where + ": char data is not valid UTF-8");
                    break;
                case detail::mi_int8: case detail::mi_uint8:  // Latin-1
                    for (std::size_t i = 0; i < t.nbytes; ++i) c.push_back(d[i]);
                    break;
                case detail::mi_utf16: case detail::mi_uint16: case detail::mi_int16:  // UTF-16 code units
                    for (std::size_t i = 0; i < t.nbytes / 2; ++i) c.push_back(u16(d + 2 * i));
                    break;
                case detail::mi_utf32: case detail::mi_uint32: case detail::mi_int32:
                    for (std::size_t i = 0; i < t.nbytes / 4; ++i) {
                        std::uint32_t v = u32(d + 4 * i);
                        if (v > 0x10FFFF) throw error(where + ": char data holds an invalid code point");
                        c.push_back(char32_t(v));
                    }
                    break;
                default:
                    throw error(where + ": char data stored as unsupported type " + std::to_string(t.type));
            }
            if (c.size() != numel)
                throw error(where + ": char data holds " + std::to_string(c.size()) + " characters, dims " +
                            detail::mat_dims_text(a.dims_) + " need " + std::to_string(numel));
        }

        // Storage value `i` of type `type` as T, range-checked (never UB).
        template <class T>
        T stored_as(const unsigned char* d, std::uint32_t type, std::size_t i, const std::string& where) const {
            switch (type) {
                case detail::mi_int8: return from_int<T>(static_cast<std::int8_t>(d[i]), where);
                case detail::mi_uint8: return from_int<T>(d[i], where);
                case detail::mi_int16: return from_int<T>(static_cast<std::int16_t>(u16(d + 2 * i)), where);
                case detail::mi_uint16: return from_int<T>(u16(d + 2 * i), where);
                case detail::mi_int32: return from_int<T>(static_cast<std::int32_t>(u32(d + 4 * i)), where);
                case detail::mi_uint32: return from_int<T>(u32(d + 4 * i), where);
                case detail::mi_int64: return from_int<T>(static_cast<std::int64_t>(u64(d + 8 * i)), where);
                case detail::mi_uint64: {
                    std::uint64_t v = u64(d + 8 * i);
                    if constexpr (std::is_floating_point_v<T>) return T(v);
                    else if constexpr (std::is_same_v<T, std::uint64_t>) return v;
                    else {
                        if (v > std::uint64_t(std::numeric_limits<T>::max())) throw out_of_range<T>(double(v), where);
                        return T(v);
                    }
                }
                case detail::mi_single: {
                    std::uint32_t b = u32(d + 4 * i);
                    float f;
                    std::memcpy(&f, &b, 4);
                    return from_float<T>(double(f), where);
                }
                case detail::mi_double: {
                    std::uint64_t b = u64(d + 8 * i);
                    double f;
                    std::memcpy(&f, &b, 8);
                    return from_float<T>(f, where);
                }
            }
            throw error(where + ": numeric data stored as unsupported type " + std::to_string(type));
        }
        template <class T>
        static error out_of_range(double v, const std::string& where) {
            return error(where + ": stored value " + std::to_string(v) + " is not a valid " +
                         mat_class_name(detail::mat_class_of<T>::value));
        }
        template <class T>
        static T from_int(std::int64_t v, const std::string& where) {
            if constexpr (std::is_floating_point_v<T>) {
                return T(v);
            } else if constexpr (std::is_same_v<T, std::uint64_t>) {
                if (v < 0) throw out_of_range<T>(double(v), where);
                return T(v);
            } else {
                if (v < std::int64_t(std::numeric_limits<T>::min()) || v > std::int64_t(std::numeric_limits<T>::max()))
                    throw out_of_range<T>(double(v), where);
                return T(v);
            }
        }
        template <class T>
        static T from_float(double f, const std::string& where) {
            if constexpr (std::is_floating_point_v<T>) {
                return T(f);
            } else {
                // Integer classes stored as floats: only exact, in-range integers.
                double lo = double(std::numeric_limits<T>::min());
                double hi = std::ldexp(1.0, std::numeric_limits<T>::digits);  // max + 1, exact
                if (!(f >= lo && f < hi) || f != std::floor(f)) throw out_of_range<T>(f, where);
                return T(f);
            }
        }

        static void numeric_empty(mat_array& a) {
            switch (a.class_) {
                case mat_class::float32: a.values_ = std::vector<float>(); break;
                case mat_class::int8: a.values_ = std::vector<std::int8_t>(); break;
                case mat_class::uint8: a.values_ = std::vector<std::uint8_t>(); break;
                case mat_class::int16: a.values_ = std::vector<std::int16_t>(); break;
                case mat_class::uint16: a.values_ = std::vector<std::uint16_t>(); break;
                case mat_class::int32: a.values_ = std::vector<std::int32_t>(); break;
                case mat_class::uint32: a.values_ = std::vector<std::uint32_t>(); break;
                case mat_class::int64: a.values_ = std::vector<std::int64_t>(); break;
                case mat_class::uint64: a.values_ = std::vector<std::uint64_t>(); break;
                default: a.values_ = std::vector<double>(); break;
            }
        }
        void numeric(const unsigned char* p, const detail::mat_tag& t, std::size_t numel, mat_array& a, const std::string& where) {
            if (!detail::mat_type_is_numeric(t.type))
                throw error(where + ": " + a.class_name() + " data stored as unsupported type " + std::to_string(t.type));
            std::size_t sz = detail::mat_type_size(t.type);
            if (t.nbytes % sz != 0 || t.nbytes / sz != numel)
                throw error(where + ": data holds " + std::to_string(t.nbytes) + " bytes of type " + std::to_string(t.type) +
                            ", dims " + detail::mat_dims_text(a.dims_) + " need " + std::to_string(numel) + " values");
            auto fill = [&](auto tag_value) {
                using T = decltype(tag_value);
                charge(std::uint64_t(numel) * sizeof(T), where);
                std::vector<T> v(numel);
                for (std::size_t i = 0; i < numel; ++i) v[i] = stored_as<T>(p + t.data, t.type, i, where);
                a.values_ = std::move(v);
            };
            switch (a.class_) {
                case mat_class::float64: fill(double()); break;
                case mat_class::float32: fill(float()); break;
                case mat_class::int8: fill(std::int8_t()); break;
                case mat_class::uint8: fill(std::uint8_t()); break;
                case mat_class::int16: fill(std::int16_t()); break;
                case mat_class::uint16: fill(std::uint16_t()); break;
                case mat_class::int32: fill(std::int32_t()); break;
                case mat_class::uint32: fill(std::uint32_t()); break;
                case mat_class::int64: fill(std::int64_t()); break;
                case mat_class::uint64: fill(std::uint64_t()); break;
                default: throw error(where + ": not a numeric class");
            }
        }

        // zlib stream p[0, n) -> bytes. Output is bounded: when the worst case (deflate's
        // 1032:1) exceeds the budget, the inner tag's declared size is read first and
        // the stream is decoded into a buffer of exactly that size.
        std::vector<unsigned char> inflate(const unsigned char* p, std::size_t n, const std::string& where) {
            if (n > std::size_t(std::numeric_limits<int>::max() / 2)) throw error(where + ": compressed element too large");
            std::uint64_t worst = std::uint64_t(n) * 1032 + 1024;
            if (worst <= budget) {
                int out_len = 0;
                int guess = int(std::min<std::uint64_t>(worst, std::max<std::uint64_t>(4 * std::uint64_t(n), 4096)));
                char* out = stbi_zlib_decode_malloc_guesssize_headerflag(reinterpret_cast<const char*>(p), int(n), guess, &out_len, 1);
                if (!out) throw error(where + ": corrupt compressed element (zlib: " + failure() + ")");
                std::vector<unsigned char> v(reinterpret_cast<unsigned char*>(out), reinterpret_cast<unsigned char*>(out) + out_len);
                stbi_image_free(out);
                charge(v.size(), where);
                return v;
            }
            // Peek at the inner tag. On overflow stb leaves what it wrote; bytes before
            // the failing write are real, and the 0xFF fill can never read as miMATRIX.
            unsigned char peek[1024];
            std::memset(peek, 0xFF, sizeof peek);
            int got = stbi_zlib_decode_buffer(reinterpret_cast<char*>(peek), int(sizeof peek), reinterpret_cast<const char*>(p), int(n));
            if (got >= 0) {
                std::vector<unsigned char> v(peek, peek + got);
                charge(v.size(), where);
                return v;
            }
            if (u32(peek) != detail::mi_matrix)
                throw error(where + ": corrupt compressed element, or one too large to bound before decoding");
            std::uint64_t declared = std::uint64_t(u32(peek + 4)) + 8;
            charge(declared, where);
            if (declared + 8 > std::uint64_t(std::numeric_limits<int>::max())) throw error(where + ": compressed element too large");
            std::vector<unsigned char> v(std::size_t(declared + 8));  // slack for trailing padding
            got = stbi_zlib_decode_buffer(reinterpret_cast<char*>(v.data()), int(v.size()), reinterpret_cast<const char*>(p), int(n));
            if (got < 0) throw error(where + ": corrupt compressed element, or longer than the " + std::to_string(declared) + " bytes it declares");
            v.resize(std::size_t(got));
            return v;
        }
        static std::string failure() {
            const char* r = stbi_failure_reason();
            return r ? r : "unknown error";
        }
    };

    static mat_file parse(const unsigned char* data, std::size_t size, const std::string& path, const mat_read_options& opt) {
        mat_file f;
        f.path = path;
        std::string where = "MAT file '" + path + "'";
        if (size < 128) throw error(where + ": too short for a MAT v5 header (" + std::to_string(size) + " bytes)");
        std::string text(reinterpret_cast<const char*>(data), 116);
        while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
        f.header_text = text;
        if (data[126] == 'I' && data[127] == 'M') f.big_endian = false;
        else if (data[126] == 'M' && data[127] == 'I') f.big_endian = true;
        else
            throw error(where + ": not a MAT v5 file (no 'IM'/'MI' endian indicator at byte 126; MAT v4 and other formats are not supported)");
        reader r;
        std::uint16_t indicator;
        std::memcpy(&indicator, data + 126, 2);
        r.swap = indicator != 0x4D49;  // 'M' << 8 | 'I' reads natively when the file's order is the host's
        r.file = path;
        r.max_depth = opt.max_depth;
        r.budget = opt.max_bytes;
        std::uint16_t version = r.u16(data + 124);
        if (version == 0x0200 || text.rfind("MATLAB 7.3", 0) == 0)
            throw error(where + ": is a MATLAB 7.3 (HDF5) file; save it with -v7 or -v6, or with scipy.io.savemat");
        if (version != 0x0100) throw error(where + ": unknown MAT version " + std::to_string(version >> 8) + "." + std::to_string(version & 0xFF));

        std::size_t off = 128;
        int index = 0;
        while (off < size) {
            ++index;
            std::string ctx = where + ", element " + std::to_string(index);
            auto t = r.tag(data, off, size, true, ctx);
            mat_array a;
            if (t.type == detail::mi_compressed) {
                auto inner = r.inflate(data + t.data, t.nbytes, ctx);
                auto ti = r.tag(inner.data(), 0, inner.size(), true, ctx + " (decompressed)");
                if (ti.type != detail::mi_matrix)
                    throw error(ctx + ": compressed element holds type " + std::to_string(ti.type) + " (expected miMATRIX)");
                a = r.matrix(inner.data(), ti.data, ti.data + ti.nbytes, 0, ctx);
            } else if (t.type == detail::mi_matrix) {
                a = r.matrix(data, t.data, t.data + t.nbytes, 0, ctx);
            } else {
                throw error(ctx + ": unexpected top-level element type " + std::to_string(t.type));
            }
            if (a.name().empty()) throw error(ctx + ": variable without a name");
            if (f.has(a.name())) throw error(where + ": variable '" + a.name() + "' appears twice");
            f.variables.push_back(std::move(a));
            off = t.next;
        }
        return f;
    }

    // ---- writing ----
    static void put32(std::string& o, std::uint32_t v) { o.append(reinterpret_cast<const char*>(&v), 4); }
    static void pad8(std::string& o) { o.append((8 - o.size() % 8) % 8, '\0'); }
    static void element(std::string& o, std::uint32_t type, const void* data, std::size_t n, const std::string& where) {
        if (n > 0xFFFFFFF0u) throw error(where + ": array too large for a MAT v5 element (4 GiB)");
        if (n <= 4 && n > 0) {  // small data element
            put32(o, (std::uint32_t(n) << 16) | type);
            std::string d(4, '\0');
            std::memcpy(&d[0], data, n);
            o += d;
            return;
        }
        put32(o, type);
        put32(o, std::uint32_t(n));
        if (n) o.append(static_cast<const char*>(data), n);
        pad8(o);
    }
    static bool valid_name(const std::string& s) {
        if (s.empty() || s.size() > 63 || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
        for (char c : s)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
        return true;
    }
    // One miMATRIX element (tag included) appended to o.
    static void matrix(std::string& o, const mat_array& a, const std::string& where) {
        if (!a.unsupported_.empty()) throw error(where + ": cannot write: " + a.unsupported_);
        std::size_t tag_at = o.size();
        put32(o, detail::mi_matrix);
        put32(o, 0);
        std::uint32_t flags[2] = {std::uint32_t(a.class_) | (a.logical_ ? 0x200u : 0u), 0};
        element(o, detail::mi_uint32, flags, 8, where);
        std::vector<std::int32_t> dims;
        for (std::size_t d : a.dims_) {
            if (d > std::size_t(std::numeric_limits<std::int32_t>::max())) throw error(where + ": dimension too large for MAT v5");
            dims.push_back(std::int32_t(d));
        }
        if (dims.size() < 2) throw error(where + ": needs at least 2 dims");
        element(o, detail::mi_int32, dims.data(), 4 * dims.size(), where);
        element(o, detail::mi_int8, a.name_.data(), a.name_.size(), where);
        if (a.class_ == mat_class::cell) {
            for (std::size_t i = 0; i < a.cells_.size(); ++i) matrix(o, a.cells_[i], where + ", cell " + std::to_string(i + 1));
        } else if (a.class_ == mat_class::character) {
            std::string utf8;
            for (char32_t c : a.chars_) detail::mat_append_utf8(utf8, c);
            element(o, detail::mi_utf8, utf8.data(), utf8.size(), where);
        } else if (detail::mat_is_numeric(a.class_)) {
            static const std::uint32_t storage[] = {0, 0, 0, 0, 0, 0, detail::mi_double, detail::mi_single, detail::mi_int8,
                                                    detail::mi_uint8, detail::mi_int16, detail::mi_uint16, detail::mi_int32,
                                                    detail::mi_uint32, detail::mi_int64, detail::mi_uint64};
            std::visit([&](const auto& v) {
                element(o, storage[std::size_t(a.class_)], v.data(), v.size() * sizeof(v[0]), where);
            }, a.values_);
        } else {
            throw error(where + ": cannot write " + a.class_name() + " arrays");
        }
        std::size_t n = o.size() - tag_at - 8;
        if (n > 0xFFFFFFF0u) throw error(where + ": array too large for a MAT v5 element (4 GiB)");
        std::uint32_t n32 = std::uint32_t(n);
        std::memcpy(&o[tag_at + 4], &n32, 4);
    }
};

inline std::vector<unsigned char> read_file_bytes(const std::filesystem::path& path, std::uint64_t max_bytes, const std::string& what) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw error(what + " '" + path.string() + "': file not found");
    auto size = std::filesystem::file_size(path, ec);
    if (ec) throw error(what + " '" + path.string() + "': cannot read its size");
    if (size > max_bytes) throw error(what + " '" + path.string() + "': " + std::to_string(size) + " bytes, more than the limit");
    std::FILE* f = std::fopen(path.string().c_str(), "rb");
    if (!f) throw error(what + " '" + path.string() + "': cannot open");
    std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
    std::size_t got = bytes.empty() ? 0 : std::fread(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
    if (got != bytes.size()) throw error(what + " '" + path.string() + "': read failed");
    return bytes;
}

}  // namespace detail

// Parses a MAT file held in memory; `origin` names it in messages.
inline mat_file parse_mat(const void* data, std::size_t size, const std::string& origin, const mat_read_options& options = {}) {
    return detail::mat_access::parse(static_cast<const unsigned char*>(data), size, origin, options);
}

// Reads a MAT v5 file. Throws handgraph::error naming the file (and variable).
inline mat_file read_mat(const std::filesystem::path& path, const mat_read_options& options = {}) {
    auto bytes = detail::read_file_bytes(path, options.max_bytes, "MAT file");
    mat_read_options rest = options;
    rest.max_bytes -= bytes.size();
    return parse_mat(bytes.data(), bytes.size(), path.string(), rest);
}

// The bytes of an uncompressed little-endian MAT v5 file holding `variables`.
inline std::string serialize_mat(const std::vector<mat_array>& variables, const std::string& description = "") {
    std::string o;
    std::string text = description;
    if (text.empty()) {
        char date[64] = "";
        std::time_t now = std::time(nullptr);
        std::strftime(date, sizeof date, "%a %b %d %H:%M:%S %Y", std::gmtime(&now));
        text = std::string("MATLAB 5.0 MAT-file, Platform: handgraph, Created on: ") + date;
    }
    text.resize(116, ' ');
    o += text;
    o.append(8, '\0');  // subsystem data offset: none
    // Version and endian indicator in the host's byte order, like all data that follows.
    std::uint16_t header[2] = {0x0100, 0x4D49};
    o.append(reinterpret_cast<const char*>(header), 4);
    std::vector<std::string> seen;
    for (const auto& v : variables) {
        std::string where = "MAT output, variable '" + v.name() + "'";
        if (!detail::mat_access::valid_name(v.name()))
            throw error(where + ": not a valid MATLAB name (a letter, then letters, digits or _; at most 63)");
        if (std::find(seen.begin(), seen.end(), v.name()) != seen.end()) throw error(where + ": appears twice");
        seen.push_back(v.name());
        detail::mat_access::matrix(o, v, where);
    }
    return o;
}

// Writes an uncompressed MAT v5 file atomically (temporary file, then rename).
inline void write_mat(const std::filesystem::path& path, const std::vector<mat_array>& variables, const std::string& description = "") {
    std::string bytes;
    try {
        bytes = serialize_mat(variables, description);
    } catch (const error& e) {
        throw error("MAT file '" + path.string() + "': " + e.what());
    }
    write_file_atomic(path, bytes, "MAT file");
}

}  // namespace handgraph

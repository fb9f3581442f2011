// handgraph/image.hpp: 8-bit BGR images: loading (stb_image), PNG writing
// (stb_image_write), zero-padded crops and the bilinear resize of OpenCV's cv2.resize.
//
// Loading follows cv2.imread(path, IMREAD_COLOR), which the release used: every image
// becomes 3-channel 8-bit BGR. Grey is replicated to B, G and R; an alpha channel is
// dropped (not blended); 16-bit PNGs keep the high byte of each sample (v >> 8, as
// OpenCV's libpng reader does). HDR images are refused. The pixel count is checked
// from the header (stbi_info) before anything is decoded. JPEG decoding is stb's, which
// differs from libjpeg by a few grey levels at most (spec section 5).
//
// resize_linear() and crop_and_resize() reproduce cv2.resize(INTER_LINEAR) on 8-bit images
// bit for bit (checked against OpenCV 4.6): crop.hpp's crop_resize_bgr, which the
// inference API uses too.
//
// Depends on error.hpp, handgraph.hpp (image_view), crop.hpp (the resize), io.hpp (the atomic writer) and the stb_image / stb_image_write
// declarations (the implementation is compiled elsewhere, e.g. tools/runtime/stb_impl.cpp).
#pragma once
#include <stb_image.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "crop.hpp"
#include "error.hpp"
#include "handgraph.hpp"
#include "io.hpp"

namespace handgraph {

// An 8-bit, 3-channel image, rows top to bottom, pixels B, G, R (OpenCV's order).
struct image {
    int width = 0, height = 0;
    std::vector<std::uint8_t> pixels;  // height * width * 3

    image() = default;
    image(int w, int h) : width(w), height(h), pixels(std::size_t(w) * std::size_t(h) * 3, 0) {
        if (w < 0 || h < 0) throw error("image: negative size");
    }
    bool empty() const { return width == 0 || height == 0; }
    std::uint8_t* row(int y) { return pixels.data() + std::size_t(y) * std::size_t(width) * 3; }
    const std::uint8_t* row(int y) const { return pixels.data() + std::size_t(y) * std::size_t(width) * 3; }
    // Bounds-checked access to channel c (0 = B, 1 = G, 2 = R) of pixel (x, y).
    std::uint8_t at(int x, int y, int c) const {
        if (x < 0 || y < 0 || c < 0 || x >= width || y >= height || c >= 3)
            throw error("image: pixel (" + std::to_string(x) + ", " + std::to_string(y) + ") outside " +
                        std::to_string(width) + "x" + std::to_string(height));
        return row(y)[std::size_t(x) * 3 + std::size_t(c)];
    }
};

struct image_load_options {
    // Largest width * height accepted, checked from the header before decoding.
    std::int64_t max_pixels = std::int64_t(1) << 26;  // 67 M pixels
};

namespace detail {

inline std::string stb_reason() {
    const char* r = stbi_failure_reason();
    return r ? r : "unknown error";
}

inline std::vector<unsigned char> image_file_bytes(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw error("image '" + path.string() + "': file not found");
    std::FILE* f = std::fopen(path.string().c_str(), "rb");
    if (!f) throw error("image '" + path.string() + "': cannot open");
    std::vector<unsigned char> bytes;
    unsigned char buf[1 << 16];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        bytes.insert(bytes.end(), buf, buf + n);
        if (bytes.size() > std::size_t(std::numeric_limits<int>::max())) {
            std::fclose(f);
            throw error("image '" + path.string() + "': file larger than 2 GiB");
        }
    }
    bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) throw error("image '" + path.string() + "': read failed");
    return bytes;
}

// stb_image 2.27 (Debian 12) trusts a JPEG Huffman table's 16 code-length counts: a
// table of more than 256 codes writes past the decoder's arrays (fixed in stb 2.28; found
// by tests/fuzz/fuzz_image). It also decodes a scan with a Huffman table that no DHT
// segment has defined yet (uninitialised tables: reads far out of bounds; found by
// tests/fuzz/fuzz_image). Walk the markers as stb does and refuse both before stb sees
// the data. The tables a scan needs are those stb decodes with: baseline, the DC and AC
// table of each component; progressive, the DC table in a first DC scan (Ss = 0, Ah = 0),
// the AC table in an AC scan (Ss > 0); a DC refinement scan reads no table.
// Returns an empty string when the tables are fine (or the data is not a JPEG).
inline std::string jpeg_table_problem(const unsigned char* p, std::size_t n) {
    std::size_t i = 0;  // stb takes any run of 0xFF before the SOI marker
    while (i < n && p[i] == 0xFF) ++i;
    if (i == 0 || i >= n || p[i] != 0xD8) return {};
    ++i;
    bool progressive = false, seen_frame = false;
    bool defined[2][4] = {};  // [DC, AC][table id]
    auto byte = [&](std::size_t k) -> unsigned { return k < n ? p[k] : 0u; };  // stb reads 0 past the end
    while (i + 1 < n) {
        if (p[i] != 0xFF) {  // entropy-coded data (or garbage stb skips)
            ++i;
            continue;
        }
        const unsigned m = p[i + 1];
        if (m == 0xFF) {  // fill byte
            ++i;
            continue;
        }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD9)) {  // stuffed 0xFF, TEM, RSTn, SOI, EOI: no length
            i += 2;
            continue;
        }
        if (i + 4 > n) break;
        const std::size_t len = (std::size_t(p[i + 2]) << 8) | p[i + 3];
        if (m == 0xC4) {  // DHT: tables are read while the segment has bytes left, as stb reads them
            std::size_t pos = i + 4;
            long left = long(len) - 2;
            while (left > 0 && pos < n) {
                std::size_t codes = 0;  // stb reads 0 past the end of the data
                for (std::size_t k = 1; k <= 16 && pos + k < n; ++k) codes += p[pos + k];
                if (codes > 256) return "JPEG Huffman table with " + std::to_string(codes) + " codes (at most 256)";
                if ((p[pos] >> 4) <= 1 && (p[pos] & 15) <= 3) defined[p[pos] >> 4][p[pos] & 15] = true;  // else stb refuses
                pos += 17 + codes;
                left -= long(17 + codes);
            }
        } else if ((m == 0xC0 || m == 0xC1 || m == 0xC2) && !seen_frame) {  // SOF: stb refuses a second one
            seen_frame = true;
            progressive = m == 0xC2;
        } else if (m == 0xDA) {  // SOS: components (id, DC table << 4 | AC table), then Ss, Se, Ah << 4 | Al
            const std::size_t ns = byte(i + 4);
            const unsigned ss = byte(i + 5 + 2 * ns), ah = byte(i + 7 + 2 * ns) >> 4;
            const bool need_dc = !progressive || (ss == 0 && ah == 0), need_ac = !progressive || ss != 0;
            for (std::size_t c = 0; c < ns && c < 4; ++c) {  // stb refuses more than 4
                const unsigned q = byte(i + 6 + 2 * c), td = q >> 4, ta = q & 15;
                if (need_dc && td <= 3 && !defined[0][td])
                    return "JPEG scan uses DC Huffman table " + std::to_string(td) + " before any DHT defines it";
                if (need_ac && ta <= 3 && !defined[1][ta])
                    return "JPEG scan uses AC Huffman table " + std::to_string(ta) + " before any DHT defines it";
            }
        }
        i += 2 + len;
    }
    return {};
}

// stb_image 2.27 parses the width, height and maximum of a binary PGM/PPM header into an
// int without an overflow check (signed overflow: undefined behaviour; found by
// tests/fuzz/fuzz_image with UBSan). Read the header as stb does and refuse a number over
// INT_MAX first. Returns an empty string when the header is fine (or not PNM).
inline std::string pnm_header_problem(const unsigned char* p, std::size_t n) {
    if (n < 2 || p[0] != 'P' || (p[1] != '5' && p[1] != '6')) return {};
    std::size_t i = 2;  // the next byte stb reads; it reads 0 past the end
    auto get = [&]() { return i < n ? static_cast<char>(p[i++]) : '\0'; };
    auto at_end = [&]() { return i >= n; };
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
    char c = get();
    for (int field = 0; field < 3; ++field) {  // width, height, maximum value
        for (;;) {  // whitespace, then comments to the end of their line
            while (!at_end() && space(c)) c = get();
            if (at_end() || c != '#') break;
            while (!at_end() && c != '\n' && c != '\r') c = get();
        }
        std::int64_t value = 0;
        while (!at_end() && c >= '0' && c <= '9') {
            value = value * 10 + (c - '0');
            if (value > std::numeric_limits<int>::max()) return "PNM header number over 2^31";
            c = get();
        }
    }
    return {};
}

}  // namespace detail

// Decodes an image held in memory into BGR; `origin` names it in messages.
inline image decode_image(const void* data, std::size_t size, const std::string& origin, const image_load_options& options = {}) {
    std::string where = "image '" + origin + "'";
    if (size == 0) throw error(where + ": empty file");
    if (size > std::size_t(std::numeric_limits<int>::max())) throw error(where + ": larger than 2 GiB");
    const auto* bytes = static_cast<const stbi_uc*>(data);
    int len = int(size), w = 0, h = 0, comp = 0;
    // Guards for flaws of stb 2.27, before stbi_info (whose header pass already hits them).
    if (std::string bad = detail::jpeg_table_problem(bytes, size); !bad.empty()) throw error(where + ": damaged JPEG (" + bad + ")");
    if (std::string bad = detail::pnm_header_problem(bytes, size); !bad.empty()) throw error(where + ": damaged PNM (" + bad + ")");
    if (!stbi_info_from_memory(bytes, len, &w, &h, &comp))
        throw error(where + ": not an image stb_image can read (" + detail::stb_reason() + ")");
    if (w <= 0 || h <= 0) throw error(where + ": invalid size " + std::to_string(w) + "x" + std::to_string(h));
    if (std::int64_t(w) * std::int64_t(h) > options.max_pixels)
        throw error(where + ": " + std::to_string(w) + "x" + std::to_string(h) + " pixels exceed the budget of " +
                    std::to_string(options.max_pixels) + " (image_load_options::max_pixels)");
    if (stbi_is_hdr_from_memory(bytes, len)) throw error(where + ": HDR images are not supported");
    int dw = 0, dh = 0, n = 0;
    image out;
    auto convert = [&](const auto* px, int shift) {
        if (dw != w || dh != h || n < 1 || n > 4) throw error(where + ": decoder returned an unexpected layout");
        out = image(w, h);
        std::size_t count = std::size_t(w) * std::size_t(h);
        std::uint8_t* o = out.pixels.data();
        for (std::size_t i = 0; i < count; ++i, o += 3) {
            const auto* p = px + i * std::size_t(n);
            if (n <= 2) {  // grey (+ alpha)
                o[0] = o[1] = o[2] = std::uint8_t(p[0] >> shift);
            } else {  // RGB (+ alpha)
                o[0] = std::uint8_t(p[2] >> shift);
                o[1] = std::uint8_t(p[1] >> shift);
                o[2] = std::uint8_t(p[0] >> shift);
            }
        }
    };
    if (stbi_is_16_bit_from_memory(bytes, len)) {
        stbi_us* px = stbi_load_16_from_memory(bytes, len, &dw, &dh, &n, 0);
        if (!px) throw error(where + ": cannot decode (" + detail::stb_reason() + ")");
        try {
            convert(px, 8);
        } catch (...) {
            stbi_image_free(px);
            throw;
        }
        stbi_image_free(px);
    } else {
        stbi_uc* px = stbi_load_from_memory(bytes, len, &dw, &dh, &n, 0);
        if (!px) throw error(where + ": cannot decode (" + detail::stb_reason() + ")");
        try {
            convert(px, 0);
        } catch (...) {
            stbi_image_free(px);
            throw;
        }
        stbi_image_free(px);
    }
    return out;
}

// Loads an image file (JPEG, PNG, BMP, TGA, ...) as BGR, like cv2.imread(IMREAD_COLOR).
inline image load_image(const std::filesystem::path& path, const image_load_options& options = {}) {
    auto bytes = detail::image_file_bytes(path);
    return decode_image(bytes.data(), bytes.size(), path.string(), options);
}

// Writes a PNG (RGB, 8-bit) atomically (io.hpp's write_file_atomic).
inline void write_png(const std::filesystem::path& path, const image& img) {
    std::string where = "PNG '" + path.string() + "'";
    if (img.empty()) throw error(where + ": cannot write an empty image");
    if (img.pixels.size() != std::size_t(img.width) * std::size_t(img.height) * 3) throw error(where + ": pixel buffer size does not match");
    if (img.width > std::numeric_limits<int>::max() / 3) throw error(where + ": image too wide");
    std::vector<std::uint8_t> rgb(img.pixels.size());
    for (std::size_t i = 0; i < rgb.size(); i += 3) {
        rgb[i] = img.pixels[i + 2];
        rgb[i + 1] = img.pixels[i + 1];
        rgb[i + 2] = img.pixels[i];
    }
    std::vector<unsigned char> encoded;
    auto sink = [](void* ctx, void* data, int size) {
        auto* v = static_cast<std::vector<unsigned char>*>(ctx);
        v->insert(v->end(), static_cast<unsigned char*>(data), static_cast<unsigned char*>(data) + size);
    };
    if (!stbi_write_png_to_func(sink, &encoded, img.width, img.height, 3, rgb.data(), img.width * 3))
        throw error(where + ": encoding failed");
    write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(encoded.data()), encoded.size()), "PNG");
}

// The w x h box at (x, y) of `src`; pixels outside src are 0 (black). The box may lie
// partly or wholly outside the image.
inline image crop_zero_padded(const image& src, int x, int y, int w, int h) {
    if (w <= 0 || h <= 0 || std::int64_t(w) * std::int64_t(h) > (std::int64_t(1) << 28))
        throw error("crop: invalid box size " + std::to_string(w) + "x" + std::to_string(h));
    image out(w, h);
    std::int64_t x0 = std::max<std::int64_t>(x, 0), x1 = std::min<std::int64_t>(std::int64_t(x) + w, src.width);
    std::int64_t y0 = std::max<std::int64_t>(y, 0), y1 = std::min<std::int64_t>(std::int64_t(y) + h, src.height);
    for (std::int64_t sy = y0; sy < y1; ++sy)
        if (x1 > x0)
            std::copy(src.row(int(sy)) + x0 * 3, src.row(int(sy)) + x1 * 3, out.row(int(sy - y)) + (x0 - x) * 3);
    return out;
}

// The image as a view (no copy): for the inference API and crop.hpp.
inline image_view view_of(const image& img) { return image_view(img.pixels.data(), img.width, img.height, pixel_format::bgr); }

// cv2.resize(src, (width, height)) with the default INTER_LINEAR, bit-exact (crop.hpp).
inline image resize_linear(const image& src, int width, int height) {
    if (src.empty()) throw error("resize: empty source image");
    if (width <= 0 || height <= 0 || std::int64_t(width) * std::int64_t(height) > (std::int64_t(1) << 28))
        throw error("resize: invalid size " + std::to_string(width) + "x" + std::to_string(height));
    image out(width, height);
    crop_resize_bgr(view_of(src), 0, 0, src.width, src.height, width, height, out.pixels.data());
    return out;
}

// The release's crop: the box with zero padding, resized to width x height (256 x 256).
inline image crop_and_resize(const image& src, int x, int y, int w, int h, int width = 256, int height = 256) {
    if (src.empty()) throw error("resize: empty source image");
    if (w <= 0 || h <= 0 || std::int64_t(w) * std::int64_t(h) > (std::int64_t(1) << 28))
        throw error("crop: invalid box size " + std::to_string(w) + "x" + std::to_string(h));
    if (width <= 0 || height <= 0 || std::int64_t(width) * std::int64_t(height) > (std::int64_t(1) << 28))
        throw error("resize: invalid size " + std::to_string(width) + "x" + std::to_string(height));
    image out(width, height);
    crop_resize_bgr(view_of(src), x, y, w, h, width, height, out.pixels.data());
    return out;
}

}  // namespace handgraph

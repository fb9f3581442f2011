// handgraph/json.hpp: a small, strict JSON reader (for safetensors headers) and writer
// helpers (for the outputs of the examples). Depends on error.hpp only.
// The reader never reads outside the given text, limits nesting depth, and throws
// handgraph::error with the byte offset of the problem.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"

namespace handgraph::json {

struct value {
    enum class kind { null, boolean, number, string, array, object };
    kind type = kind::null;
    bool b = false;
    double num = 0;
    bool is_integer = false;  // number written without fraction or exponent
    std::int64_t integer = 0;  // valid when is_integer and it fits
    std::string str;
    std::vector<value> items;                           // array
    std::vector<std::pair<std::string, value>> members;  // object, in file order

    bool is_object() const { return type == kind::object; }
    bool is_array() const { return type == kind::array; }
    bool is_string() const { return type == kind::string; }
    bool is_number() const { return type == kind::number; }
    const value* find(std::string_view key) const {
        for (auto& m : members)
            if (m.first == key) return &m.second;
        return nullptr;
    }
};

namespace detail {

class parser {
public:
    parser(std::string_view text, std::string what) : s_(text), what_(std::move(what)) {}

    value parse_document() {
        skip_ws();
        value v = parse_value(0);
        skip_ws();
        if (pos_ != s_.size()) fail("unexpected text after the JSON value");
        return v;
    }

private:
    static constexpr int max_depth = 64;
    std::string_view s_;
    std::string what_;
    std::size_t pos_ = 0;

    [[noreturn]] void fail(const std::string& msg) const {
        throw error(what_ + ": invalid JSON at byte " + std::to_string(pos_) + ": " + msg);
    }
    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
    }
    char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
    void expect(char c) {
        if (pos_ >= s_.size() || s_[pos_] != c) fail(std::string("expected '") + c + "'");
        ++pos_;
    }
    void literal(std::string_view word) {
        if (s_.substr(pos_, word.size()) != word) fail("unknown literal");
        pos_ += word.size();
    }

    value parse_value(int depth) {
        if (depth > max_depth) fail("nesting deeper than 64");
        value v;
        char c = peek();
        if (c == '{') {
            v.type = value::kind::object;
            ++pos_;
            skip_ws();
            if (peek() == '}') { ++pos_; return v; }
            for (;;) {
                skip_ws();
                if (peek() != '"') fail("expected a string key");
                std::string key = parse_string();
                skip_ws();
                expect(':');
                skip_ws();
                for (auto& m : v.members)
                    if (m.first == key) fail("duplicate key \"" + key + "\"");
                v.members.emplace_back(std::move(key), parse_value(depth + 1));
                skip_ws();
                if (peek() == ',') { ++pos_; continue; }
                expect('}');
                return v;
            }
        }
        if (c == '[') {
            v.type = value::kind::array;
            ++pos_;
            skip_ws();
            if (peek() == ']') { ++pos_; return v; }
            for (;;) {
                skip_ws();
                v.items.push_back(parse_value(depth + 1));
                skip_ws();
                if (peek() == ',') { ++pos_; continue; }
                expect(']');
                return v;
            }
        }
        if (c == '"') { v.type = value::kind::string; v.str = parse_string(); return v; }
        if (c == 't') { literal("true"); v.type = value::kind::boolean; v.b = true; return v; }
        if (c == 'f') { literal("false"); v.type = value::kind::boolean; return v; }
        if (c == 'n') { literal("null"); return v; }
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
        fail(pos_ >= s_.size() ? "unexpected end" : "unexpected character");
    }

    value parse_number() {
        std::size_t start = pos_;
        if (peek() == '-') ++pos_;
        if (!(peek() >= '0' && peek() <= '9')) fail("bad number");
        if (peek() == '0') ++pos_;
        else while (peek() >= '0' && peek() <= '9') ++pos_;
        bool integer = true;
        if (peek() == '.') {
            integer = false; ++pos_;
            if (!(peek() >= '0' && peek() <= '9')) fail("bad number");
            while (peek() >= '0' && peek() <= '9') ++pos_;
        }
        if (peek() == 'e' || peek() == 'E') {
            integer = false; ++pos_;
            if (peek() == '+' || peek() == '-') ++pos_;
            if (!(peek() >= '0' && peek() <= '9')) fail("bad number");
            while (peek() >= '0' && peek() <= '9') ++pos_;
        }
        std::string text(s_.substr(start, pos_ - start));
        value v;
        v.type = value::kind::number;
        v.num = std::strtod(text.c_str(), nullptr);
        if (integer) {
            // exact int64 parse with overflow detection
            bool neg = text[0] == '-';
            std::uint64_t acc = 0;
            bool overflow = false;
            for (std::size_t i = neg ? 1 : 0; i < text.size(); ++i) {
                std::uint64_t d = std::uint64_t(text[i] - '0');
                if (acc > (UINT64_MAX - d) / 10) { overflow = true; break; }
                acc = acc * 10 + d;
            }
            std::uint64_t limit = neg ? std::uint64_t(INT64_MAX) + 1 : std::uint64_t(INT64_MAX);
            if (!overflow && acc <= limit) {
                v.is_integer = true;
                v.integer = neg ? (acc == std::uint64_t(INT64_MAX) + 1 ? INT64_MIN : -std::int64_t(acc)) : std::int64_t(acc);
            }
        }
        return v;
    }

    static void put_utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) out += char(cp);
        else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) { out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F)); }
        else { out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F)); }
    }
    std::uint32_t hex4() {
        if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            char c = s_[pos_++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= std::uint32_t(c - '0');
            else if (c >= 'a' && c <= 'f') v |= std::uint32_t(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= std::uint32_t(c - 'A' + 10);
            else fail("bad \\u escape");
        }
        return v;
    }
    std::string parse_string() {
        expect('"');
        std::string out;
        for (;;) {
            if (pos_ >= s_.size()) fail("unterminated string");
            char c = s_[pos_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') { out += c; continue; }
            if (pos_ >= s_.size()) fail("unterminated escape");
            char e = s_[pos_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    std::uint32_t cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00) {
                        if (pos_ + 2 > s_.size() || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') fail("lone surrogate");
                        pos_ += 2;
                        std::uint32_t lo = hex4();
                        if (lo < 0xDC00 || lo >= 0xE000) fail("bad surrogate pair");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else if (cp >= 0xDC00 && cp < 0xE000) {
                        fail("lone surrogate");
                    }
                    put_utf8(out, cp);
                    break;
                }
                default: fail("bad escape");
            }
        }
    }
};

}  // namespace detail

// Parse a complete JSON document; `what` names the source in error messages.
inline value parse(std::string_view text, const std::string& what = "JSON") {
    return detail::parser(text, what).parse_document();
}

// Writer helpers.
inline std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}
// A finite number with enough digits to round-trip a float32/double; NaN/Inf become null.
inline std::string number(double v, int digits = 9) {
    if (!std::isfinite(v)) return "null";
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    return buf;
}
// A row-major rows x cols matrix as nested arrays.
template <class T>
std::string matrix(const T* data, std::size_t rows, std::size_t cols, int digits = 9) {
    std::string out = "[";
    for (std::size_t r = 0; r < rows; ++r) {
        out += r ? ",[" : "[";
        for (std::size_t c = 0; c < cols; ++c) {
            if (c) out += ",";
            out += number(double(data[r * cols + c]), digits);
        }
        out += "]";
    }
    return out + "]";
}
// Rows of fixed-size points (hand_estimate's joints and vertices) as nested arrays.
template <class T, std::size_t C, std::size_t R>
std::string matrix(const std::array<std::array<T, C>, R>& rows, int digits = 9) {
    std::string out = "[";
    for (std::size_t r = 0; r < R; ++r) {
        out += r ? ",[" : "[";
        for (std::size_t c = 0; c < C; ++c) {
            if (c) out += ",";
            out += number(double(rows[r][c]), digits);
        }
        out += "]";
    }
    return out + "]";
}

}  // namespace handgraph::json

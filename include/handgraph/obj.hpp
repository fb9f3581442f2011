// handgraph/obj.hpp: the template mesh and its Wavefront OBJ reader.
// The hand graph (graph.hpp) is built from the release's template
// `0214_lowP_vn_g.0001.obj`: its `v x y z` lines (float) and the first index of each
// `a/b/c` token of its `f` lines, minus 1 (spec 3.1). The weight file carries the same
// data as `template.vertices` / `template.faces`; make_template_mesh validates those.
// Every malformed input gives a handgraph::error naming the file (or source) and line.
// Depends on error.hpp and the standard library only.
#pragma once
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "error.hpp"

namespace handgraph {

// A triangle mesh as the release stores it: vertices in file order, faces raw (the arm's
// faces included; graph.hpp removes them).
struct template_mesh {
    std::vector<float> vertices;  // num_vertices() x 3
    std::vector<std::int32_t> faces;  // num_faces() x 3, 0-based vertex indices
    std::size_t num_vertices() const { return vertices.size() / 3; }
    std::size_t num_faces() const { return faces.size() / 3; }
};

namespace detail {

inline bool obj_is_space(char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'; }

// Splits a line into whitespace-separated tokens (views into the line).
inline std::vector<std::string_view> obj_tokens(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && obj_is_space(line[i])) ++i;
        std::size_t b = i;
        while (i < line.size() && !obj_is_space(line[i])) ++i;
        if (i > b) out.push_back(line.substr(b, i - b));
    }
    return out;
}

// Printable excerpt of a token for error messages (garbage stays readable).
inline std::string obj_quote(std::string_view s) {
    std::string out = "'";
    for (std::size_t i = 0; i < s.size() && i < 40; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 32 && c < 127) {
            out += static_cast<char>(c);
        } else {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    if (s.size() > 40) out += "...";
    return out + "'";
}

inline bool obj_parse_double(std::string_view s, double& value) {
    // from_chars does not take a leading '+', which OBJ writers may emit.
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    if (s.empty() || s[0] == '+') return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    return ec == std::errc() && end == s.data() + s.size();
}

inline bool obj_parse_int(std::string_view s, std::int64_t& value) {
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    if (s.empty() || s[0] == '+') return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    return ec == std::errc() && end == s.data() + s.size();
}

[[noreturn]] inline void obj_fail(const std::string& source, std::size_t line, const std::string& what) {
    throw error(source + ":" + std::to_string(line) + ": " + what);
}

}  // namespace detail

// Checks sizes, finiteness and index ranges; `source` names the data in messages
// (e.g. the weight file). Faces must index [0, num_vertices).
inline template_mesh make_template_mesh(std::vector<float> vertices, std::vector<std::int32_t> faces,
                                        const std::string& source = "template mesh") {
    if (vertices.empty() || vertices.size() % 3 != 0)
        throw error(source + ": vertices must be a non-empty n x 3 array, got " +
                    std::to_string(vertices.size()) + " values");
    if (faces.empty() || faces.size() % 3 != 0)
        throw error(source + ": faces must be a non-empty m x 3 array (triangles), got " +
                    std::to_string(faces.size()) + " values");
    if (vertices.size() / 3 > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw error(source + ": too many vertices");
    for (std::size_t i = 0; i < vertices.size(); ++i)
        if (!std::isfinite(vertices[i]))
            throw error(source + ": vertex " + std::to_string(i / 3) + " has a non-finite coordinate");
    const auto n = static_cast<std::int64_t>(vertices.size() / 3);
    for (std::size_t i = 0; i < faces.size(); ++i)
        if (faces[i] < 0 || faces[i] >= n)
            throw error(source + ": face " + std::to_string(i / 3) + " has vertex index " +
                        std::to_string(faces[i]) + ", outside [0, " + std::to_string(n) + ")");
    template_mesh mesh;
    mesh.vertices = std::move(vertices);
    mesh.faces = std::move(faces);
    return mesh;
}

// Parses OBJ text. `v` lines take 3 coordinates (up to 4 more numbers, w or a colour,
// are accepted and ignored); coordinates are parsed as double and rounded to float, as
// numpy does. `f` lines must be triangles; the first index of each token is used, 1-based
// (negative indices count back from the last vertex read so far, as OBJ allows).
// Other statements (vn, vt, g, s, usemtl, comments, ...) are ignored.
inline template_mesh parse_obj(std::string_view text, const std::string& source = "<memory>") {
    using detail::obj_fail;
    using detail::obj_quote;
    std::vector<float> vertices;
    std::vector<std::int32_t> faces;
    std::vector<std::size_t> face_lines;  // for range errors found at the end
    std::vector<std::int64_t> face_raw;   // the index as written, for messages
    std::size_t line_no = 0, pos = 0;
    while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        std::string_view line = text.substr(pos, eol - pos);
        pos = eol + 1;
        ++line_no;
        if (line.find('\0') != std::string_view::npos) obj_fail(source, line_no, "binary data (NUL byte): not an OBJ file");
        auto tok = detail::obj_tokens(line);
        if (tok.empty() || tok[0][0] == '#') continue;
        if (tok[0] == "v") {
            if (tok.size() < 4 || tok.size() > 8)
                obj_fail(source, line_no, "vertex needs 3 coordinates, got " + std::to_string(tok.size() - 1) + " values");
            for (std::size_t k = 1; k < tok.size(); ++k) {
                double value = 0;
                if (!detail::obj_parse_double(tok[k], value))
                    obj_fail(source, line_no, "vertex coordinate " + obj_quote(tok[k]) + " is not a number");
                if (k <= 3) {
                    if (!std::isfinite(value) || std::fabs(value) > std::numeric_limits<float>::max())
                        obj_fail(source, line_no, "vertex coordinate " + obj_quote(tok[k]) + " is not a finite float");
                    vertices.push_back(static_cast<float>(value));
                }
            }
            if (vertices.size() / 3 > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
                obj_fail(source, line_no, "too many vertices");
        } else if (tok[0] == "f") {
            if (tok.size() != 4)
                obj_fail(source, line_no, "face with " + std::to_string(tok.size() - 1) +
                                              " vertices: only triangles are supported");
            for (std::size_t k = 1; k < 4; ++k) {
                std::string_view t = tok[k];
                std::size_t slash = t.find('/');
                std::string_view first = t.substr(0, slash);
                std::int64_t index = 0;
                if (!detail::obj_parse_int(first, index))
                    obj_fail(source, line_no, "face vertex " + obj_quote(t) + " does not start with an integer index");
                if (slash != std::string_view::npos) {
                    std::string_view rest = t.substr(slash + 1);
                    std::size_t slashes = 0;
                    for (char c : rest) {
                        if (c == '/') ++slashes;
                        else if (!(c >= '0' && c <= '9') && c != '-' && c != '+')
                            obj_fail(source, line_no, "face vertex " + obj_quote(t) + " is malformed");
                    }
                    if (slashes > 1) obj_fail(source, line_no, "face vertex " + obj_quote(t) + " is malformed");
                }
                const auto count = static_cast<std::int64_t>(vertices.size() / 3);
                std::int64_t zero_based = 0;
                if (index > 0) {
                    zero_based = index - 1;  // checked against the final count below
                } else if (index < 0) {
                    zero_based = count + index;
                    if (zero_based < 0)
                        obj_fail(source, line_no, "face vertex index " + std::to_string(index) + " refers before the first vertex (" +
                                                      std::to_string(count) + " read so far)");
                } else {
                    obj_fail(source, line_no, "face vertex index 0 (OBJ indices start at 1)");
                }
                if (zero_based > std::numeric_limits<std::int32_t>::max())
                    obj_fail(source, line_no, "face vertex index " + std::to_string(index) + " is out of range");
                faces.push_back(static_cast<std::int32_t>(zero_based));
                face_lines.push_back(line_no);
                face_raw.push_back(index);
            }
        }
    }
    const auto n = static_cast<std::int64_t>(vertices.size() / 3);
    for (std::size_t i = 0; i < faces.size(); ++i)
        if (faces[i] >= n)
            obj_fail(source, face_lines[i], "face vertex index " + std::to_string(face_raw[i]) +
                                                " is out of range: the file has " + std::to_string(n) + " vertices");
    if (vertices.empty()) throw error(source + ": no vertices ('v' lines): not a mesh");
    if (faces.empty()) throw error(source + ": no faces ('f' lines): not a mesh");
    return make_template_mesh(std::move(vertices), std::move(faces), source);
}

// Reads and parses an OBJ file; errors name the path (and line).
inline template_mesh read_obj(const std::filesystem::path& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw error(path.string() + ": is a directory, not an OBJ file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error(path.string() + ": cannot open OBJ file");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) throw error(path.string() + ": cannot read OBJ file");
    return parse_obj(buffer.str(), path.string());
}

}  // namespace handgraph

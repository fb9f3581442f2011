// handgraph/io.hpp: small output helpers: the one atomic file writer that every output
// of handgraph goes through (write_png and write_mat too), and mesh export (Wavefront OBJ,
// ASCII PLY). Depends on error.hpp.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"

namespace handgraph {

// Writes `bytes` to `path` atomically: into a new temporary file in the same folder
// (<path>.tmp<random>, so the rename stays on one file system), flushed and closed, then
// renamed over `path`. A failed write leaves nothing half-written: the temporary is
// removed and `path` is untouched. Errors name the file, as "<what> '<path>': ..." or,
// without `what`, "<path>: ...".
inline void write_file_atomic(const std::filesystem::path& path, std::string_view bytes, const std::string& what = "") {
    namespace fs = std::filesystem;
    const std::string where = what.empty() ? path.string() : what + " '" + path.string() + "'";
    std::random_device rd;
    fs::path tmp = path;
    tmp += ".tmp" + std::to_string(rd()) + std::to_string(rd());
    std::FILE* f = std::fopen(tmp.string().c_str(), "wbx");  // x: never an existing file
    if (!f) throw error(where + ": cannot write (does the folder exist and is it writable?)");
    bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    ok = (std::fflush(f) == 0) && ok;
    ok = (std::fclose(f) == 0) && ok;
    std::error_code ec;
    if (!ok) {
        fs::remove(tmp, ec);
        throw error(where + ": write failed (disk full?)");
    }
    fs::rename(tmp, path, ec);
    if (ec) {
        fs::remove(tmp, ec);
        throw error(where + ": cannot move the finished file into place");
    }
}

// A mesh as OBJ text: vertices n x 3, triangles m x 3 (0-based indices).
inline std::string obj_text(const std::vector<float>& vertices, const std::vector<std::int32_t>& faces, const std::string& comment = "") {
    std::ostringstream o;
    if (!comment.empty()) o << "# " << comment << "\n";
    char buf[96];
    for (std::size_t i = 0; i + 2 < vertices.size(); i += 3) {
        std::snprintf(buf, sizeof buf, "v %.6f %.6f %.6f\n", vertices[i], vertices[i + 1], vertices[i + 2]);
        o << buf;
    }
    for (std::size_t i = 0; i + 2 < faces.size(); i += 3) o << "f " << faces[i] + 1 << ' ' << faces[i + 1] + 1 << ' ' << faces[i + 2] + 1 << "\n";
    return o.str();
}

// The same mesh as ASCII PLY (Stanford format 1.0: float x y z, uchar-counted int faces),
// which MeshLab, Blender and Open3D read.
inline std::string ply_text(const std::vector<float>& vertices, const std::vector<std::int32_t>& faces, const std::string& comment = "") {
    std::ostringstream o;
    o << "ply\nformat ascii 1.0\n";
    if (!comment.empty()) o << "comment " << comment << "\n";
    o << "element vertex " << vertices.size() / 3 << "\nproperty float x\nproperty float y\nproperty float z\n";
    o << "element face " << faces.size() / 3 << "\nproperty list uchar int vertex_indices\nend_header\n";
    char buf[96];
    for (std::size_t i = 0; i + 2 < vertices.size(); i += 3) {
        std::snprintf(buf, sizeof buf, "%.6f %.6f %.6f\n", vertices[i], vertices[i + 1], vertices[i + 2]);
        o << buf;
    }
    for (std::size_t i = 0; i + 2 < faces.size(); i += 3) o << "3 " << faces[i] << ' ' << faces[i + 1] << ' ' << faces[i + 2] << "\n";
    return o.str();
}

}  // namespace handgraph

// handgraph/io.hpp: small output helpers shared by the examples: atomic file writes
// (temporary file in the same folder, then rename: a failed run leaves nothing
// half-written) and Wavefront OBJ export of a mesh. Depends on error.hpp.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "error.hpp"

namespace handgraph {

inline void write_file_atomic(const std::string& path, const std::string& contents) {
    namespace fs = std::filesystem;
    fs::path target(path);
    fs::path tmp = target;
    tmp += ".tmp-" + std::to_string(std::uintptr_t(&contents) ^ std::uintptr_t(std::rand()));
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw error(path + ": cannot write (does the folder exist and is it writable?)");
        out.write(contents.data(), std::streamsize(contents.size()));
        out.flush();
        if (!out) {
            std::error_code ec;
            fs::remove(tmp, ec);
            throw error(path + ": write failed (disk full?)");
        }
    }
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) {
        fs::remove(tmp, ec);
        throw error(path + ": cannot move the finished file into place");
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

}  // namespace handgraph

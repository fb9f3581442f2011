// tests/test_eval_support.hpp: helpers shared by the data-side tests (test_mat, test_image,
// test_eval_*): running the Python reference scripts, scratch folders, and the text dump
// format written by tests/reference/eval_mat_dump.py and friends.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace handgraph_test {

inline std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// Whether HANDGRAPH_PYTHON imports numpy, scipy and cv2 (checked once).
inline bool have_reference_python() {
    static int ok = -1;
    if (ok < 0) {
        std::string cmd = shell_quote(python()) + " -c 'import numpy, scipy.io, cv2' >/dev/null 2>&1";
        ok = std::system(cmd.c_str()) == 0 ? 1 : 0;
    }
    return ok == 1;
}

// Runs tests/reference/<script> with the given arguments; true when it exits with 0.
inline bool run_reference(const std::string& script, const std::vector<std::string>& args) {
    std::string cmd = shell_quote(python()) + " " + shell_quote((source_dir() / "tests" / "reference" / script).string());
    for (const auto& a : args) cmd += " " + shell_quote(a);
    return std::system(cmd.c_str()) == 0;
}

// A scratch folder, removed when the object goes out of scope.
struct scratch_dir {
    std::filesystem::path path;
    explicit scratch_dir(const std::string& tag) {
        std::random_device rd;
        path = std::filesystem::temp_directory_path() / ("handgraph_" + tag + "_" + std::to_string(rd()));
        std::filesystem::create_directories(path);
    }
    ~scratch_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// One variable of an eval_mat_dump.py file.
struct dumped_var {
    std::string name, cls;
    std::vector<std::size_t> dims;
    bool unsupported = false;
    std::vector<double> numbers;        // C order
    std::vector<std::string> numbers_text;
    std::vector<std::string> strings;   // UTF-8
};

inline std::string unhex(const std::string& h) {
    if (h == "-") return "";
    std::string s;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) s += char(std::stoi(h.substr(i, 2), nullptr, 16));
    return s;
}

inline std::vector<dumped_var> read_dump(const std::string& path) {
    std::ifstream in(path);
    std::vector<dumped_var> out;
    std::string word;
    while (in >> word) {
        if (word == "var") {
            dumped_var v;
            std::size_t nd;
            in >> v.name >> v.cls >> nd;
            v.dims.resize(nd);
            for (auto& d : v.dims) in >> d;
            out.push_back(v);
        } else if (word == "num") {
            std::size_t n;
            in >> n;
            for (std::size_t i = 0; i < n; ++i) {
                std::string t;
                in >> t;
                out.back().numbers_text.push_back(t);
                out.back().numbers.push_back(std::strtod(t.c_str(), nullptr));
            }
        } else if (word == "str") {
            std::size_t n;
            in >> n;
            for (std::size_t i = 0; i < n; ++i) {
                std::string t;
                in >> t;
                out.back().strings.push_back(unhex(t));
            }
        } else if (word == "unsupported") {
            out.back().unsupported = true;
        }
    }
    return out;
}

inline std::vector<unsigned char> file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<unsigned char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Raw arrays written by the Python scripts: "<name> <dtype> <ndims> <dims...>" lines in
// an index file, data in <name>.bin (little-endian, C order).
inline std::vector<double> read_raw_f64(const std::filesystem::path& path) {
    auto b = file_bytes(path.string());
    std::vector<double> v(b.size() / 8);
    if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * 8);
    return v;
}

}  // namespace handgraph_test

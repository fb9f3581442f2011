// handgraph/demo.hpp: the embedded default that lets the demo and the benchmarks run
// without user data: a generated 256x256 BGR crop of a hand-like shape, and a model of
// the real shapes with deterministic random weights (clearly not the released ones:
// its outputs are meaningless, its timings are real). The template mesh comes from the
// release's data when it can be found, else from the synthetic template.
// Depends on handgraph.hpp, obj.hpp, synthetic_template.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "obj.hpp"
#include "synthetic_template.hpp"
#include "handgraph.hpp"

namespace handgraph {

// A 256x256 BGR picture: a skin-toned palm and five fingers on a textured background.
inline std::vector<unsigned char> demo_crop() {
    constexpr int n = crop_size;
    std::vector<unsigned char> img(std::size_t(n) * n * 3);
    auto capsule = [](float px, float py, float ax, float ay, float bx, float by, float r) {
        float dx = bx - ax, dy = by - ay;
        float t = std::clamp(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0f, 1.0f);
        float ex = px - (ax + t * dx), ey = py - (ay + t * dy);
        return std::sqrt(ex * ex + ey * ey) - r;
    };
    const float fingers[5][4] = {{96, 150, 52, 112}, {112, 120, 100, 40}, {130, 116, 132, 30}, {148, 120, 162, 42}, {162, 132, 192, 70}};
    for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) {
            float fx = float(x), fy = float(y);
            float d = std::hypot((fx - 132) / 44, (fy - 160) / 52) - 1.0f;  // palm ellipse
            d *= 44;
            for (auto& f : fingers) d = std::min(d, capsule(fx, fy, f[0], f[1], f[2], f[3], 11));
            d = std::min(d, capsule(fx, fy, 132, 200, 132, 260, 34));  // wrist
            float skin = std::clamp(0.5f - d / 3.0f, 0.0f, 1.0f);
            float shade = 0.85f + 0.15f * std::sin(fx * 0.05f) * std::cos(fy * 0.04f);
            float bg = 60 + 25 * std::sin(fx * 0.11f + fy * 0.07f);
            unsigned char* p = &img[(std::size_t(y) * n + std::size_t(x)) * 3];
            const float skin_bgr[3] = {120, 150, 205};
            const float bg_bgr[3] = {bg + 30, bg + 10, bg};
            for (int c = 0; c < 3; ++c) p[c] = static_cast<unsigned char>(std::clamp(skin * skin_bgr[c] * shade + (1 - skin) * bg_bgr[c], 0.0f, 255.0f));
        }
    return img;
}

// Plausible crop parameters for the demo crop (the real-world test set's camera).
inline crop_params demo_params() {
    crop_params p;
    p.cam = {612.1f, 612.1f, 320.0f, 240.0f};
    p.bbox = {192.0f, 112.0f, 256.0f, 256.0f};
    p.root_cm = {-3.2f, 11.0f, 42.4f};
    p.scale_cm = 5.0f;
    return p;
}

// The template for random-weight models: `path` if given, else the release's OBJ in
// HANDGRAPH_SHARED_DATA or ../shared/data/hand-graph-cnn, else the synthetic template.
// `source` receives a description of what was used.
inline template_mesh demo_template(const std::string& path, std::string* source) {
    namespace fs = std::filesystem;
    std::vector<fs::path> candidates;
    if (!path.empty()) {
        if (source) *source = path;
        return read_obj(path);
    }
    if (const char* env = std::getenv("HANDGRAPH_SHARED_DATA")) candidates.emplace_back(fs::path(env) / "0214_lowP_vn_g.0001.obj");
    candidates.emplace_back("../shared/data/hand-graph-cnn/0214_lowP_vn_g.0001.obj");
    for (auto& c : candidates)
        if (fs::exists(c)) {
            if (source) *source = c.string();
            return read_obj(c);
        }
    if (source) *source = "synthetic template (the release's 0214_lowP_vn_g.0001.obj was not found)";
    return synthetic_template();
}

inline model random_model(std::uint64_t seed, const template_mesh& t, const load_options& options = {}) {
    return model::random(seed, t.vertices, t.faces, options);
}

}  // namespace handgraph

// handgraph/synthetic_template.hpp: a generated stand-in for the release's template mesh.
// The release's `0214_lowP_vn_g.0001.obj` is licensed data that the project never ships;
// this mesh has the same layout where the hand graph cares (1010 vertices, the arm at
// vertices 473..528, 954 hand vertices) and coarsens to exactly 80 nodes (graph levels of
// 1280, 640, 320, 160, 80 nodes), so demos and tests run the network without the release's
// data. A flat hand on an integer lattice (palm, four fingers, thumb, arm below the palm),
// each lattice square split along a diagonal chosen by splitmix64 from a seed found by
// search. The twin of tests/reference/synthetic_template.py; the two must stay identical.
// Depends on obj.hpp (template_mesh) and the standard library.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "obj.hpp"

namespace handgraph {

// The seed that gives 80 coarsest nodes (seeds give 77..86).
constexpr std::uint64_t synthetic_template_seed = 6;

namespace detail {

struct lattice_rect {
    int x0, x1, y0, y1;  // half-open
    bool contains(int x, int y) const { return x >= x0 && x < x1 && y >= y0 && y < y1; }
};

inline std::uint64_t splitmix64(std::uint64_t& state) {
    state += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace detail

// The synthetic template: vertices (1010 x 3, cm, exact in float32) and raw faces (arm
// included, as in the release's OBJ). Other seeds give other meshes of the same shape,
// most of which do not coarsen to 80 nodes.
inline template_mesh synthetic_template(std::uint64_t seed = synthetic_template_seed) {
    using detail::lattice_rect;
    const lattice_rect hand[] = {
        {0, 19, 0, 18},                                                         // palm
        {-31, 0, 3, 7},                                                         // thumb
        {0, 4, 18, 48}, {5, 9, 18, 52}, {10, 14, 18, 50}, {15, 19, 18, 44}};  // fingers
    const lattice_rect arm = {5, 13, -7, 0};
    constexpr std::size_t arm_index = 473;  // = arm_begin of graph.hpp

    int xmin = arm.x0, xmax = arm.x1 - 1, ymin = arm.y0, ymax = arm.y1 - 1;
    for (const lattice_rect& r : hand) {
        xmin = std::min(xmin, r.x0);
        xmax = std::max(xmax, r.x1 - 1);
        ymin = std::min(ymin, r.y0);
        ymax = std::max(ymax, r.y1 - 1);
    }
    const int width = xmax - xmin + 1, height = ymax - ymin + 1;
    auto in_hand = [&](int x, int y) {
        return std::any_of(std::begin(hand), std::end(hand), [&](const lattice_rect& r) { return r.contains(x, y); });
    };
    // points in row-major (y, x) order; the arm's block goes in at arm_index
    std::vector<std::pair<int, int>> hand_points, arm_points;
    for (int y = ymin; y <= ymax; ++y)
        for (int x = xmin; x <= xmax; ++x) {
            if (in_hand(x, y)) hand_points.push_back({x, y});
            else if (arm.contains(x, y)) arm_points.push_back({x, y});
        }
    std::vector<std::pair<int, int>> ordered(hand_points.begin(), hand_points.begin() + static_cast<std::ptrdiff_t>(arm_index));
    ordered.insert(ordered.end(), arm_points.begin(), arm_points.end());
    ordered.insert(ordered.end(), hand_points.begin() + static_cast<std::ptrdiff_t>(arm_index), hand_points.end());

    std::vector<std::int32_t> index(static_cast<std::size_t>(width) * static_cast<std::size_t>(height), -1);
    auto at = [&](int x, int y) -> std::int32_t& {
        return index[static_cast<std::size_t>(y - ymin) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x - xmin)];
    };
    template_mesh mesh;
    for (std::size_t i = 0; i < ordered.size(); ++i) {
        const auto [x, y] = ordered[i];
        at(x, y) = static_cast<std::int32_t>(i);
        mesh.vertices.push_back(static_cast<float>(0.5 * x));
        mesh.vertices.push_back(static_cast<float>(0.375 * y));
        mesh.vertices.push_back(static_cast<float>(-static_cast<double>((x - 9) * (x - 9)) / 64.0));
    }
    std::uint64_t state = seed;
    for (int y = ymin; y < ymax; ++y)
        for (int x = xmin; x < xmax; ++x) {
            const std::int32_t a = at(x, y), b = at(x + 1, y), c = at(x, y + 1), d = at(x + 1, y + 1);
            if (a < 0 || b < 0 || c < 0 || d < 0) continue;
            if (detail::splitmix64(state) >> 63) {
                mesh.faces.insert(mesh.faces.end(), {a, b, d, a, d, c});
            } else {
                mesh.faces.insert(mesh.faces.end(), {a, b, c, b, d, c});
            }
        }
    return mesh;
}

}  // namespace handgraph

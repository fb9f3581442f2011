// The pipeline's heat-map argmax (pipeline.hpp: bilinear 64 -> 256, first maximum, with
// rows that cannot hold the maximum skipped) against the plain full evaluation, on random
// maps, maps full of exact ties, and maps whose maximum sits on the border.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "handgraph/pipeline.hpp"

namespace {

int brute_force_argmax(const handgraph::feature_map& hm, int j) {
    auto src = [](int d, int& i0, int& i1, float& l0, float& l1) {
        float s = std::max(0.25f * (float(d) + 0.5f) - 0.5f, 0.0f);
        i0 = int(s);
        i1 = i0 + (i0 < 63 ? 1 : 0);
        l1 = s - float(i0);
        l0 = 1.0f - l1;
    };
    int best = 0;
    float best_v = -INFINITY;
    for (int v = 0; v < 256; ++v)
        for (int u = 0; u < 256; ++u) {
            int y0, y1, a, b;
            float ly0, ly1, la, lb;
            src(v, y0, y1, ly0, ly1);
            src(u, a, b, la, lb);
            float val = ly0 * (la * hm.at(j, y0, a) + lb * hm.at(j, y0, b)) + ly1 * (la * hm.at(j, y1, a) + lb * hm.at(j, y1, b));
            if (val > best_v) {
                best_v = val;
                best = v * 256 + u;
            }
        }
    return best;
}

}  // namespace

TEST_CASE("heat-map argmax equals the full evaluation, ties included") {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    int compared = 0;
    for (int it = 0; it < 60; ++it) {
        handgraph::feature_map hm(64, 64, 21, 0);
        const int mode = it % 4;
        for (int y = 0; y < 64; ++y)
            for (int x = 0; x < 64; ++x)
                for (int c = 0; c < 21; ++c) {
                    float v = d(rng);
                    if (mode == 1) v = std::round(v * 2);                       // few distinct values: ties
                    if (mode == 2 && (x == 0 || y == 63)) v = 0.9f;              // maximum on the border
                    if (mode == 3) v = -1e-3f * float((x - 20) * (x - 20) + (y - 40) * (y - 40));  // smooth, negative
                    hm.pixel(y, x)[c] = v;
                }
        for (int j = 0; j < 21; ++j, ++compared) {
            CAPTURE(it);
            CAPTURE(j);
            CHECK(handgraph::detail::upsampled_argmax(hm, j) == brute_force_argmax(hm, j));
        }
    }
    CHECK(compared == 60 * 21);
}

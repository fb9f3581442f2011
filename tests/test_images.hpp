// tests/test_images.hpp: the fixture's crops (PNG, RGB) as the engine takes them: 256 x 256
// B, G, R bytes. For doctest test files (fails the test case when the file is unusable).
#pragma once
#include <cstddef>
#include <filesystem>
#include <vector>

#include <doctest/doctest.h>
#include <stb_image.h>

namespace handgraph_test {

inline std::vector<unsigned char> read_png_bgr(const std::filesystem::path& p) {
    int w, h, c;
    unsigned char* rgb = stbi_load(p.string().c_str(), &w, &h, &c, 3);
    REQUIRE_MESSAGE(rgb, p.string());
    REQUIRE(w == 256);
    REQUIRE(h == 256);
    std::vector<unsigned char> bgr(std::size_t(w) * h * 3);
    for (std::size_t i = 0; i < bgr.size(); i += 3) {
        bgr[i] = rgb[i + 2];
        bgr[i + 1] = rgb[i + 1];
        bgr[i + 2] = rgb[i];
    }
    stbi_image_free(rgb);
    return bgr;
}

}  // namespace handgraph_test

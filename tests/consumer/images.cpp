// Built against the *installed* handgraph package with handgraph::images (stb found by
// handgraphConfig.cmake on this machine): writes a PNG and reads it back through
// image.hpp. stb's implementation is compiled in stb_impl.cpp.
#include <handgraph/image.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
    const std::filesystem::path path = argc > 1 ? argv[1] : "consumer_images.png";
    handgraph::image a(5, 3);
    for (std::size_t i = 0; i < a.pixels.size(); ++i) a.pixels[i] = static_cast<std::uint8_t>(i * 7);
    handgraph::write_png(path, a);
    handgraph::image b = handgraph::load_image(path);
    const bool ok = b.width == 5 && b.height == 3 && b.pixels == a.pixels;
    std::cout << "handgraph consumer (images): " << b.width << "x" << b.height << " PNG read back"
              << (ok ? "" : ": WRONG") << "\n";
    return ok ? 0 : 1;
}

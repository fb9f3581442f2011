// libFuzzer target: the image-loading path (include/handgraph/image.hpp): stb_image's
// header probe, the pixel budget checked before decoding, decoding of every format stb
// reads (PNG incl. 16-bit, JPEG, BMP, GIF, TGA, PSD, PNM, ...), the BGR conversion,
// then the release's crop (zero-padded box, cv2.resize) on a box taken from the input.
// Anything but an image or a handgraph::error is a finding. Built by tests/fuzz/build.sh.
#include <handgraph/image.hpp>

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    handgraph::image_load_options options;
    options.max_pixels = std::int64_t(1) << 22;  // 4 M pixels: a bomb must be refused from its header
    try {
        handgraph::image img = handgraph::decode_image(data, size, "fuzz", options);
        if (img.pixels.size() != std::size_t(img.width) * std::size_t(img.height) * 3) __builtin_trap();
        // A box partly outside the image, from the first bytes of the input.
        int x = size > 0 ? int(data[0]) - 128 : 0, y = size > 1 ? int(data[1]) - 128 : 0;
        int w = 1 + (size > 2 ? data[2] : 0) * 2, h = 1 + (size > 3 ? data[3] : 0) * 2;
        handgraph::image crop = handgraph::crop_and_resize(img, x, y, w, h);
        if (crop.width != 256 || crop.height != 256) __builtin_trap();
    } catch (const handgraph::error&) {
    }
    return 0;
}

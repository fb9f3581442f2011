// Images (include/handgraph/image.hpp): loading, PNG writing, crop and cv2.resize parity.
#include <doctest/doctest.h>

#include <handgraph/image.hpp>

#include <cstring>
#include <fstream>
#include <random>

#include "test_eval_support.hpp"

using namespace handgraph;
using namespace handgraph_test;

namespace {

image random_image(std::mt19937& rng, int w, int h, bool smooth) {
    image img(w, h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c)
                img.row(y)[x * 3 + c] = smooth ? std::uint8_t((x * (c + 1) + y * 3 + int(rng() % 16)) & 255)
                                               : std::uint8_t(rng());
    return img;
}

struct diff_stats {
    std::size_t total = 0, same = 0;
    int max_diff = 0;
    double sum = 0;
    void add(const image& a, const image& b) {
        REQUIRE(a.width == b.width);
        REQUIRE(a.height == b.height);
        for (std::size_t i = 0; i < a.pixels.size(); ++i) {
            int d = std::abs(int(a.pixels[i]) - int(b.pixels[i]));
            max_diff = std::max(max_diff, d);
            same += d == 0;
            sum += d;
            ++total;
        }
    }
    double identical() const { return total ? double(same) / double(total) : 1.0; }
};

std::string cv2_version(scratch_dir& tmp) {
    std::ofstream(tmp / "v.txt") << "version " << (tmp / "version.txt") << "\n";
    REQUIRE(run_reference("eval_image_ref.py", {tmp / "v.txt"}));
    std::ifstream in(tmp / "version.txt");
    std::string v;
    in >> v;
    return v;
}

}  // namespace

TEST_CASE("image: PNG write and load round trip; BGR order kept") {
    scratch_dir tmp("image_png");
    std::mt19937 rng(5);
    image img = random_image(rng, 37, 23, false);
    img.row(0)[0] = 10;  // B
    img.row(0)[1] = 20;  // G
    img.row(0)[2] = 30;  // R
    write_png(tmp / "a.png", img);
    image back = load_image(tmp / "a.png");
    CHECK(back.width == 37);
    CHECK(back.height == 23);
    CHECK(back.pixels == img.pixels);
    CHECK(back.at(0, 0, 0) == 10);
    CHECK(back.at(0, 0, 2) == 30);
    CHECK_THROWS_AS(back.at(37, 0, 0), handgraph::error);
    CHECK_THROWS_WITH_AS(write_png(tmp.path / "nodir" / "a.png", img), doctest::Contains("nodir"), handgraph::error);
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(tmp.path)) (void)e, ++files;
    CHECK(files == 1);
}

TEST_CASE("image: refusals name the file; the pixel budget is checked before decoding") {
    scratch_dir tmp("image_refuse");
    CHECK_THROWS_WITH_AS(load_image(tmp / "missing.png"), doctest::Contains("missing.png"), handgraph::error);
    std::ofstream(tmp / "empty.png", std::ios::binary).close();
    CHECK_THROWS_WITH_AS(load_image(tmp / "empty.png"), doctest::Contains("empty.png"), handgraph::error);
    std::ofstream(tmp / "text.png", std::ios::binary) << "this is not an image at all";
    CHECK_THROWS_WITH_AS(load_image(tmp / "text.png"), doctest::Contains("text.png"), handgraph::error);

    std::mt19937 rng(6);
    image img = random_image(rng, 20, 20, false);
    write_png(tmp / "small.png", img);
    image_load_options tiny;
    tiny.max_pixels = 399;
    CHECK_THROWS_WITH_AS(load_image(tmp / "small.png", tiny), doctest::Contains("budget"), handgraph::error);
    tiny.max_pixels = 400;
    CHECK(load_image(tmp / "small.png", tiny).width == 20);

    // A PNG header announcing 15000 x 15000 pixels and no data: refused by the budget,
    // not by a failed (or attempted) decode.
    const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    std::vector<unsigned char> png(sig, sig + 8);
    auto be32 = [&](std::uint32_t v) {
        for (int s = 24; s >= 0; s -= 8) png.push_back(static_cast<unsigned char>(v >> s));
    };
    be32(13);
    for (char c : std::string("IHDR")) png.push_back(static_cast<unsigned char>(c));
    be32(15000);
    be32(15000);
    png.insert(png.end(), {8, 2, 0, 0, 0});
    be32(0);  // CRC (not checked by stb)
    CHECK_THROWS_WITH_AS(decode_image(png.data(), png.size(), "huge.png"), doctest::Contains("budget"), handgraph::error);

    // Truncated PNGs never crash.
    auto bytes = file_bytes(tmp / "small.png");
    for (std::size_t n = 1; n < bytes.size(); n += 3) {
        try {
            decode_image(bytes.data(), n, "cut.png");
        } catch (const handgraph::error& e) {
            CHECK(std::string(e.what()).find("cut.png") != std::string::npos);
        }
    }
    CHECK_THROWS_AS(crop_zero_padded(img, 0, 0, 0, 5), handgraph::error);
    CHECK_THROWS_AS(resize_linear(img, 0, 5), handgraph::error);
    CHECK_THROWS_AS(resize_linear(image(), 5, 5), handgraph::error);
}

TEST_CASE("image: grey, alpha and 16-bit images load as cv2.imread(IMREAD_COLOR) does") {
    HANDGRAPH_SKIP_IF(!have_reference_python(), "no Python with numpy, scipy and cv2 (HANDGRAPH_PYTHON)");
    scratch_dir tmp("image_formats");
    std::mt19937 rng(7);
    std::ofstream list(tmp / "ops.txt");
    std::vector<std::string> pngs;
    // 8-bit grey, grey+alpha, RGB, RGBA written by stb_image_write
    for (int comp = 1; comp <= 4; ++comp) {
        int w = 17 + comp, h = 11;
        std::vector<unsigned char> px(std::size_t(w) * h * comp);
        for (auto& p : px) p = static_cast<unsigned char>(rng());
        std::string name = tmp / ("c" + std::to_string(comp) + ".png");
        REQUIRE(stbi_write_png(name.c_str(), w, h, comp, px.data(), w * comp));
        pngs.push_back(name);
    }
    for (const char* kind : {"grey", "bgr", "bgra"}) {
        std::string name = tmp / (std::string("s16_") + kind + ".png");
        list << "make16 " << name << " " << kind << " 19 13 " << rng() % 1000 << "\n";
        pngs.push_back(name);
    }
    for (const auto& p : pngs) list << "imread " << p << " " << p << ".ref.png\n";
    std::vector<std::string> jpgs;
    for (int grey = 0; grey <= 1; ++grey) {
        std::string name = tmp / ("j" + std::to_string(grey) + ".jpg");
        list << "makejpg " << name << " 203 151 " << 40 + grey << " " << grey << "\n";
        list << "imread " << name << " " << name << ".ref.png\n";
        jpgs.push_back(name);
    }
    list.close();
    REQUIRE(run_reference("eval_image_ref.py", {tmp / "ops.txt"}));
    for (const auto& p : pngs) {
        INFO(p);
        image mine = load_image(p), ref = load_image(p + ".ref.png");
        diff_stats d;
        d.add(mine, ref);
        CHECK(d.max_diff == 0);
    }
    for (const auto& p : jpgs) {
        INFO(p);
        image mine = load_image(p), ref = load_image(p + ".ref.png");
        diff_stats d;
        d.add(mine, ref);
        // stb's JPEG decoder is not libjpeg (spec section 5: up to 3 grey levels).
        CHECK(d.max_diff <= 4);
        CHECK(d.sum / double(d.total) < 0.5);
        MESSAGE("JPEG stb vs libjpeg: max " << d.max_diff << ", mean " << d.sum / double(d.total));
    }
}

TEST_CASE("image: resize_linear and crop_and_resize match cv2.resize") {
    HANDGRAPH_SKIP_IF(!have_reference_python(), "no Python with numpy, scipy and cv2 (HANDGRAPH_PYTHON)");
    scratch_dir tmp("image_resize");
    std::mt19937 rng(8);
    struct job {
        std::string out;
        image mine;
        bool downscale;
    };
    std::vector<job> jobs;
    std::ofstream list(tmp / "ops.txt");
    auto add_resize = [&](const image& src, int W, int H, const std::string& tag) {
        std::string in = tmp / (tag + ".png"), out = tmp / (tag + ".ref.png");
        write_png(in, src);
        list << "resize " << in << " " << W << " " << H << " " << out << "\n";
        jobs.push_back({out, resize_linear(src, W, H), W <= src.width && H <= src.height});
    };
    std::uniform_int_distribution<int> size(1, 300);
    for (int k = 0; k < 40; ++k) {
        int w = size(rng), h = size(rng), W = size(rng), H = size(rng);
        add_resize(random_image(rng, w, h, k % 2 == 0), W, H, "r" + std::to_string(k));
    }
    // Fixed cases: 2x (OpenCV switches to INTER_AREA), identity, 1-pixel sources, the STB shape.
    int fixed[][4] = {{256, 256, 128, 128}, {200, 100, 100, 50}, {64, 64, 64, 64}, {1, 1, 256, 256},
                      {1, 9, 5, 3}, {640, 480, 256, 256}, {245, 245, 256, 256}, {300, 300, 100, 100}, {3, 3, 7, 7}};
    int f = 0;
    for (auto& c : fixed) add_resize(random_image(rng, c[0], c[1], true), c[2], c[3], "f" + std::to_string(f++));
    // Crops with zero padding: inside, across every border, wholly outside.
    image frame = random_image(rng, 640, 480, true);
    std::string frame_path = tmp / "frame.png";
    write_png(frame_path, frame);
    int boxes[][4] = {{100, 50, 245, 245}, {-60, -30, 200, 210}, {500, 380, 245, 245}, {-10, 200, 700, 90},
                      {700, 10, 50, 50}, {0, 0, 640, 480}, {320, -100, 1, 1}};
    int b = 0;
    for (auto& bx : boxes) {
        std::string out = tmp / ("crop" + std::to_string(b++) + ".ref.png");
        list << "crop " << frame_path << " " << bx[0] << " " << bx[1] << " " << bx[2] << " " << bx[3] << " 256 256 " << out << "\n";
        jobs.push_back({out, crop_and_resize(frame, bx[0], bx[1], bx[2], bx[3]), bx[2] >= 256 && bx[3] >= 256});
    }
    list.close();
    REQUIRE(run_reference("eval_image_ref.py", {tmp / "ops.txt"}));
    std::string version = cv2_version(tmp);

    diff_stats all, down;
    for (const auto& j : jobs) {
        INFO(j.out);
        diff_stats d;
        d.add(j.mine, load_image(j.out));
        all.add(j.mine, load_image(j.out));
        if (j.downscale) {
            down.add(j.mine, load_image(j.out));
            CHECK(d.max_diff == 0);
        }
        CHECK(d.max_diff <= 1);
    }
    MESSAGE("cv2 " << version << ": " << all.identical() * 100 << "% of " << all.total << " values identical, max diff " << all.max_diff);
    CHECK(all.identical() >= 0.997);
    CHECK(down.max_diff == 0);
    if (version.rfind("4.6.", 0) == 0) CHECK(all.max_diff == 0);  // bit-exact with the version the spec measured

    // Crop padding by itself.
    image c = crop_zero_padded(frame, -3, -2, 10, 10);
    CHECK(c.at(0, 0, 0) == 0);
    CHECK(c.at(2, 1, 2) == 0);
    CHECK(c.at(3, 2, 1) == frame.at(0, 0, 1));
    CHECK(c.at(9, 9, 0) == frame.at(6, 7, 0));
    image outside = crop_zero_padded(frame, 10000, 10000, 4, 4);
    CHECK(std::all_of(outside.pixels.begin(), outside.pixels.end(), [](std::uint8_t v) { return v == 0; }));
}

TEST_CASE("image: the real-world test set's JPEG crops decode close to OpenCV") {
    HANDGRAPH_SKIP_IF(!have_shared_data(), "the release's data is absent (HANDGRAPH_SHARED_DATA=" << shared_data() << ")");
    HANDGRAPH_SKIP_IF(!have_reference_python(), "no Python with numpy, scipy and cv2 (HANDGRAPH_PYTHON)");
    scratch_dir tmp("image_real");
    std::ofstream list(tmp / "ops.txt");
    std::vector<std::string> names;
    for (int i : {0, 1, 100, 582}) {
        char n[32];
        std::snprintf(n, sizeof n, "%05d.jpg", i);
        names.push_back((shared_data() / "real_world_testset" / "images" / n).string());
        list << "imread " << names.back() << " " << (tmp / (std::string(n) + ".png")) << "\n";
    }
    list.close();
    REQUIRE(run_reference("eval_image_ref.py", {tmp / "ops.txt"}));
    diff_stats all;
    for (const auto& n : names) {
        image mine = load_image(n);
        CHECK(mine.width == 256);
        CHECK(mine.height == 256);
        all.add(mine, load_image(tmp / (std::filesystem::path(n).filename().string() + ".png")));
    }
    MESSAGE("real-world JPEGs, stb vs libjpeg: max " << all.max_diff << ", mean " << all.sum / double(all.total));
    CHECK(all.max_diff <= 4);
    CHECK(all.sum / double(all.total) < 0.2);
}

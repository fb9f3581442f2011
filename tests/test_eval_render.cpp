// Pictures: projection into the crop and skeleton drawing (eval/render.hpp), the bitmap
// font (eval/font.hpp), the PCK curve as a raster picture (eval/pck_image.hpp) and as SVG
// (eval/pck_svg.hpp), the z-buffered mesh rasteriser (eval/mesh_render.hpp).
#include <doctest/doctest.h>

#include <handgraph/eval/font.hpp>
#include <handgraph/eval/mesh_render.hpp>
#include <handgraph/eval/pck_image.hpp>
#include <handgraph/eval/pck_svg.hpp>
#include <handgraph/eval/render.hpp>

#include <cmath>
#include <set>

using namespace handgraph;

namespace {

std::size_t count_color(const image& img, bgr c, int x0 = 0, int y0 = 0, int x1 = -1, int y1 = -1) {
    if (x1 < 0) x1 = img.width - 1;
    if (y1 < 0) y1 = img.height - 1;
    std::size_t n = 0;
    for (int y = y0; y <= y1; ++y)
        for (int x = x0; x <= x1; ++x) n += img.at(x, y, 0) == c.b && img.at(x, y, 1) == c.g && img.at(x, y, 2) == c.r;
    return n;
}

}  // namespace

TEST_CASE("render: bones, projection inverse to spec section 4, drawing is clipped") {
    std::set<std::size_t> children;
    for (const auto& b : hand_bones()) {
        CHECK(b[0] < b[1]);
        children.insert(b[1]);
    }
    CHECK(children.size() == 20);
    CHECK(hand_bones()[0] == std::array<std::size_t, 2>{0, 1});
    CHECK(hand_bones()[4] == std::array<std::size_t, 2>{0, 5});

    // uvd -> xyz as the pipeline does it, then back.
    std::array<double, 4> cam{600, 610, 320, 240};
    std::array<int, 4> bbox{200, 100, 180, 170};
    pose21 xyz{};
    for (std::size_t j = 0; j < 21; ++j) {
        double un = 0.05 * double(j), vn = 1.0 - 0.04 * double(j), z = 40.0 + double(j);
        double u = un * bbox[2] + bbox[0], v = vn * bbox[3] + bbox[1];
        xyz[j] = {(u - cam[2]) / cam[0] * z, (v - cam[3]) / cam[1] * z, z};
    }
    uv21 uv = project_to_crop(xyz, cam, bbox);
    for (std::size_t j = 0; j < 21; ++j) {
        CHECK(uv[j][0] == doctest::Approx(0.05 * double(j) * 256).epsilon(1e-12));
        CHECK(uv[j][1] == doctest::Approx((1.0 - 0.04 * double(j)) * 256).epsilon(1e-12));
    }
    xyz[3][2] = -1;
    CHECK(std::isnan(project_to_crop(xyz, cam, bbox)[3][0]));

    image img(256, 256);
    draw_skeleton(img, uv, 2);
    std::size_t lit = 0;
    for (auto p : img.pixels) lit += p != 0;
    CHECK(lit > 1000);
    CHECK(img.at(int(std::lround(uv[10][0])), int(std::lround(uv[10][1])), 1) == 200);  // middle finger: green
    // Far-off, infinite and NaN points cost nothing and draw nothing outside.
    image blank(64, 64);
    draw_line(blank, -1e12, -1e12, -1e12 + 1, 1e12, bgr{255, 255, 255}, 3);
    draw_line(blank, 0, 0, INFINITY, 5, bgr{255, 255, 255});
    draw_disc(blank, std::nan(""), 3, 5, bgr{255, 255, 255});
    for (auto p : blank.pixels) CHECK(p == 0);
    draw_line(blank, -100, 32, 200, 32, bgr{1, 2, 3}, 1);
    CHECK(blank.at(0, 32, 2) == 3);
    CHECK(blank.at(63, 32, 0) == 1);
}

TEST_CASE("pck svg: PCK curves as SVG") {
    std::vector<double> errors;
    for (int i = 0; i < 100; ++i) errors.push_back(i * 0.6);
    auto a = compute_pck(errors, default_pck_thresholds_mm());
    auto b = compute_pck(std::vector<double>(10, 1.0), default_pck_thresholds_mm());
    std::string svg = pck_curve_svg({{"ours <cpu>", a}, {"release", b}}, "STB");
    CHECK(svg.rfind("<svg", 0) == 0);
    CHECK(svg.find("ours &lt;cpu&gt;") != std::string::npos);
    CHECK(svg.find("AUC 1.000") != std::string::npos);
    std::size_t lines = 0;
    for (std::size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++lines;
    CHECK(lines == 2);
    CHECK_THROWS_AS(pck_curve_svg({}), handgraph::error);
    pck_curve other = a;
    other.thresholds_mm.back() = 60;
    CHECK_THROWS_AS(pck_curve_svg({{"a", a}, {"b", other}}), handgraph::error);
}

TEST_CASE("font: glyphs, width, descenders, clipping, unknown characters") {
    image img(40, 12);
    draw_text(img, 0, 0, "1", bgr{255, 255, 255});
    // '1' = "..#.." ".##.." "..#.." x4 ".###."
    CHECK(img.at(2, 0, 0) == 255);
    CHECK(img.at(0, 0, 0) == 0);
    CHECK(img.at(1, 1, 0) == 255);
    CHECK(img.at(1, 6, 0) == 255);
    CHECK(img.at(3, 6, 0) == 255);
    CHECK(img.at(0, 6, 0) == 0);
    CHECK(text_width("1", 1) == 5);
    CHECK(text_width("12", 2) == 22);
    CHECK(text_width("", 3) == 0);
    // Unknown characters draw as '?'; descenders go below the baseline; clipping.
    image a(12, 12), b(12, 12);
    draw_text(a, 0, 0, "\x7f", bgr{9, 9, 9});
    draw_text(b, 0, 0, "?", bgr{9, 9, 9});
    CHECK(a.pixels == b.pixels);
    image g(8, 12);
    draw_text(g, 0, 0, "g", bgr{1, 1, 1});
    CHECK(count_color(g, bgr{1, 1, 1}, 0, 7, 7, 8) > 0);
    image tiny(3, 3);
    draw_text(tiny, -20, -20, "hello, world 0123456789 %()", bgr{1, 2, 3}, 3);
    draw_text(tiny, 1, 1, "W", bgr{1, 2, 3}, 4, true);
    CHECK(count_color(tiny, bgr{1, 2, 3}) > 0);
    // Every glyph has ink (but the space).
    for (char c = 32; c < 127; ++c) {
        image t(8, 12);
        draw_text(t, 0, 0, std::string(1, c), bgr{7, 7, 7});
        if (c != ' ') CHECK_MESSAGE(count_color(t, bgr{7, 7, 7}) > 0, "glyph " << c);
    }
}

TEST_CASE("pck image: the PCK curve as a raster picture") {
    std::vector<double> errors;
    for (int i = 0; i < 200; ++i) errors.push_back(i * 0.3);
    pck_curve c = compute_pck(errors, default_pck_thresholds_mm());
    image img = pck_plot_image(c, "3D PCK: test, 200 frames");
    CHECK(img.width == 640);
    CHECK(img.height == 480);
    const bgr curve{40, 40, 214};
    CHECK(count_color(img, curve) > 500);
    // The curve starts at (20 mm, PCK(20)) and ends at (50 mm, 1.0): left and right edges of the axes.
    // Axes span x 78..616, y 48 (PCK 1) .. 414 (PCK 0).
    int y_end = int(std::lround(414 + c.pck.back() * (48 - 414)));
    CHECK(img.at(616, y_end, 2) == 214);
    int y_start = int(std::lround(414 + c.pck[0] * (48 - 414)));
    CHECK(img.at(78, y_start, 2) == 214);
    CHECK(count_color(img, bgr{0, 0, 0}) > 1000);  // frame, ticks, title
    // Legend text includes the AUC; the legend box avoids the curve: a curve high at the
    // right puts it bottom right, one low everywhere elsewhere (still a valid picture).
    pck_curve low = compute_pck(std::vector<double>(50, 100.0), default_pck_thresholds_mm());
    CHECK(low.auc == 0);
    image img2 = pck_plot_image(low, "all wrong");
    CHECK(count_color(img2, curve) > 500);
    CHECK_THROWS_AS(pck_plot_image(pck_curve{}, "x"), error);
}

TEST_CASE("mesh render: projection, coverage, z-buffer, Lambert, alpha") {
    // Camera looking down +z; box = the whole 256x256 "original image", so crop = image.
    std::array<double, 4> cam{100, 100, 128, 128};
    std::array<int, 4> box{0, 0, 256, 256};
    // A triangle facing the camera at z = 10: projects to (128,128), (228,128), (128,228).
    std::vector<float> v = {0, 0, 10, 10, 0, 10, 0, 10, 10};
    std::vector<std::int32_t> f = {0, 1, 2};
    mesh_render_style st;
    st.alpha = 1.0;
    st.ambient = 0.0;
    st.color = {100, 200, 250};
    image img(256, 256);
    std::size_t covered = render_mesh(img, v, f, cam, box, st);
    // Pixels with x, y >= 128 and (x - 128) + (y - 128) <= 100: 101 * 102 / 2.
    CHECK(covered == 5151);
    CHECK(img.at(130, 130, 0) > 0);
    CHECK(img.at(127, 130, 0) == 0);
    CHECK(img.at(200, 200, 0) == 0);
    // Lambert with a head light: brightness = |cos| between the normal (0, 0, 1) and the
    // direction to the centroid (10/3, 10/3, 10).
    double cosang = 10.0 / std::sqrt(100.0 / 9 * 2 + 100);
    CHECK(int(img.at(130, 130, 2)) == int(std::lround(250 * cosang)));
    // A second triangle in front (z = 5), tilted: the nearer one wins where they overlap.
    std::vector<float> v2 = {0, 0, 10, 10, 0, 10, 0, 10, 10, -1, -1, 5, 2, -1, 5, -1, 2, 7};
    std::vector<std::int32_t> f2 = {0, 1, 2, 3, 4, 5};
    image both(256, 256);
    render_mesh(both, v2, f2, cam, box, st);
    image front(256, 256);
    render_mesh(front, v2, {3, 4, 5}, cam, box, st);
    CHECK(both.at(135, 135, 2) == front.at(135, 135, 2));
    CHECK(both.at(135, 135, 2) != img.at(135, 135, 2));
    // Order of faces does not matter.
    image rev(256, 256);
    render_mesh(rev, v2, {3, 4, 5, 0, 1, 2}, cam, box, st);
    CHECK(rev.pixels == both.pixels);
    // Alpha blending over a grey picture; behind the camera / NaN: nothing drawn.
    image grey(256, 256);
    std::fill(grey.pixels.begin(), grey.pixels.end(), std::uint8_t(100));
    st.alpha = 0.5;
    render_mesh(grey, v, f, cam, box, st);
    CHECK(int(grey.at(130, 130, 2)) == int(std::lround(0.5 * 100 + 0.5 * 250 * cosang)));
    CHECK(grey.at(10, 10, 2) == 100);
    image none(256, 256);
    std::vector<float> behind = {0, 0, -10, 10, 0, -10, 0, 10, -10}, nan = {0, 0, NAN, 10, 0, 10, 0, 10, 10};
    CHECK(render_mesh(none, behind, f, cam, box, st) == 0);
    CHECK(render_mesh(none, nan, f, cam, box, st) == 0);
    CHECK(render_mesh(none, v, {0, 1, 7}, cam, box, st) == 0);  // index out of range: skipped
    for (auto p : none.pixels) CHECK(p == 0);
    // Huge triangles are clipped to the picture.
    std::vector<float> huge = {-1e6f, -1e6f, 10, 1e6f, -1e6f, 10, 0, 1e6f, 10};
    image all(64, 64);
    CHECK(render_mesh(all, huge, f, {100, 100, 32, 32}, {0, 0, 64, 64}, st) == 64 * 64);
}

// Pictures (eval/render.hpp, eval/plot.hpp): projection into the crop, skeleton drawing, PCK SVG.
#include <doctest/doctest.h>

#include <handgraph/eval/plot.hpp>
#include <handgraph/eval/render.hpp>

#include <cmath>
#include <set>

using namespace handgraph;

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

TEST_CASE("plot: PCK curves as SVG") {
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

// handgraph/eval/mesh_render.hpp: a triangle mesh in camera space drawn over a crop:
// projection, z-buffer, flat Lambert shading with a head light, alpha blending
// (render_mesh and its style). Used for hand_eval's overlays. Depends on image.hpp and
// eval/render.hpp (bgr).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../image.hpp"
#include "render.hpp"

namespace handgraph {

struct mesh_render_style {
    bgr color{150, 190, 235};  // BGR: a light skin tone
    double alpha = 0.75;       // opacity of the mesh over the picture
    double ambient = 0.3;      // light that every face gets
};

// Renders a triangle mesh given in camera space (cm; vertices n x 3, faces m x 3) into
// img: each vertex is projected with cam = fx, fy, u0, v0 and the crop box [x, y, w, h]
// mapped onto the image (as eval/render.hpp's project_to_crop), pixel (px, py) sampled at
// its integer coordinates (the pipeline's uv convention). Hidden surfaces by a z-buffer
// (1/z interpolated linearly in the image: perspective-correct); each face flat-shaded by
// Lambert's law with a light at the camera, two-sided, then alpha-blended over img.
// Faces with a vertex at z <= 0 or not finite are skipped. Returns the pixels covered.
inline std::size_t render_mesh(image& img, const std::vector<float>& vertices, const std::vector<std::int32_t>& faces,
                               const std::array<double, 4>& cam, const std::array<int, 4>& bbox, const mesh_render_style& style = {}) {
    if (img.empty() || bbox[2] <= 0 || bbox[3] <= 0) return 0;
    const std::size_t nv = vertices.size() / 3;
    std::vector<double> sx(nv), sy(nv), iz(nv);
    std::vector<char> ok(nv, 0);
    for (std::size_t v = 0; v < nv; ++v) {
        double X = vertices[3 * v], Y = vertices[3 * v + 1], Z = vertices[3 * v + 2];
        if (!(Z > 0) || !std::isfinite(X) || !std::isfinite(Y) || !std::isfinite(Z)) continue;
        double u = X / Z * cam[0] + cam[2], w = Y / Z * cam[1] + cam[3];
        sx[v] = (u - bbox[0]) / bbox[2] * img.width;
        sy[v] = (w - bbox[1]) / bbox[3] * img.height;
        iz[v] = 1.0 / Z;
        ok[v] = std::isfinite(sx[v]) && std::isfinite(sy[v]) && std::abs(sx[v]) < 1e9 && std::abs(sy[v]) < 1e9;
    }
    const std::size_t npx = std::size_t(img.width) * std::size_t(img.height);
    std::vector<double> zbuf(npx, 0.0);   // 1/z of the nearest face so far (0: none)
    std::vector<float> shade(npx, -1.f);  // its brightness
    for (std::size_t f = 0; f + 2 < faces.size(); f += 3) {
        std::size_t a = std::size_t(faces[f]), b = std::size_t(faces[f + 1]), c = std::size_t(faces[f + 2]);
        if (a >= nv || b >= nv || c >= nv || !ok[a] || !ok[b] || !ok[c]) continue;
        // Lambert with a head light: |n . direction to the camera|.
        double e1[3], e2[3], n[3], cen[3];
        for (int k = 0; k < 3; ++k) {
            e1[k] = double(vertices[3 * b + k]) - vertices[3 * a + k];
            e2[k] = double(vertices[3 * c + k]) - vertices[3 * a + k];
            cen[k] = (double(vertices[3 * a + k]) + vertices[3 * b + k] + vertices[3 * c + k]) / 3.0;
        }
        n[0] = e1[1] * e2[2] - e1[2] * e2[1];
        n[1] = e1[2] * e2[0] - e1[0] * e2[2];
        n[2] = e1[0] * e2[1] - e1[1] * e2[0];
        double nl = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
        double cl = std::sqrt(cen[0] * cen[0] + cen[1] * cen[1] + cen[2] * cen[2]);
        if (!(nl > 0) || !(cl > 0)) continue;
        double lambert = std::abs(n[0] * cen[0] + n[1] * cen[1] + n[2] * cen[2]) / (nl * cl);
        float bright = float(style.ambient + (1.0 - style.ambient) * lambert);
        // Edge functions over the clipped bounding box.
        double area = (sx[b] - sx[a]) * (sy[c] - sy[a]) - (sy[b] - sy[a]) * (sx[c] - sx[a]);
        if (!(std::abs(area) > 1e-12)) continue;
        int bx0 = std::max(0, int(std::ceil(std::min({sx[a], sx[b], sx[c]}))));
        int bx1 = std::min(img.width - 1, int(std::floor(std::max({sx[a], sx[b], sx[c]}))));
        int by0 = std::max(0, int(std::ceil(std::min({sy[a], sy[b], sy[c]}))));
        int by1 = std::min(img.height - 1, int(std::floor(std::max({sy[a], sy[b], sy[c]}))));
        for (int py = by0; py <= by1; ++py)
            for (int px = bx0; px <= bx1; ++px) {
                // Each weight from its own edge function: exact on integer coordinates,
                // so pixels on a shared edge belong to both triangles (no cracks).
                double w0 = ((sx[b] - px) * (sy[c] - py) - (sy[b] - py) * (sx[c] - px)) / area;
                double w1 = ((sx[c] - px) * (sy[a] - py) - (sy[c] - py) * (sx[a] - px)) / area;
                double w2 = ((sx[a] - px) * (sy[b] - py) - (sy[a] - py) * (sx[b] - px)) / area;
                if (w0 < 0 || w1 < 0 || w2 < 0) continue;
                double z = w0 * iz[a] + w1 * iz[b] + w2 * iz[c];
                std::size_t i = std::size_t(py) * std::size_t(img.width) + std::size_t(px);
                if (z > zbuf[i]) {
                    zbuf[i] = z;
                    shade[i] = bright;
                }
            }
    }
    std::size_t covered = 0;
    const double al = std::clamp(style.alpha, 0.0, 1.0);
    const double col[3] = {double(style.color.b), double(style.color.g), double(style.color.r)};
    for (std::size_t i = 0; i < npx; ++i) {
        if (shade[i] < 0) continue;
        ++covered;
        std::uint8_t* p = img.pixels.data() + i * 3;
        for (int k = 0; k < 3; ++k)
            p[k] = std::uint8_t(std::clamp(std::lround((1.0 - al) * p[k] + al * col[k] * double(shade[i])), 0L, 255L));
    }
    return covered;
}

}  // namespace handgraph

// Built against the *installed* handgraph package with handgraph::handgraph only, on a
// configuration where stb cannot be found: inference needs neither stb nor handgraph's
// runtime library (implementation.cpp compiles the implementation and the kernels).
// A random-weight model of the real shapes on the synthetic template, one estimate with
// crop parameters on a context of 2 threads.
#include <handgraph/demo.hpp>
#include <handgraph/handgraph.hpp>

#include <cmath>
#include <iostream>

#if defined(HANDGRAPH_CONSUMER_CHECK_NO_STB) && __has_include(<stb_image.h>)
#error "stb_image.h is on the include path of a target that links only handgraph::handgraph"
#endif

int main() {
    const handgraph::model m = handgraph::random_model(7, handgraph::synthetic_template());
    const std::vector<unsigned char> crop = handgraph::demo_crop();
    handgraph::context ctx(2);
    const handgraph::hand_estimate e =
        m.estimate(ctx, handgraph::image_view(crop.data(), handgraph::crop_size, handgraph::crop_size), handgraph::demo_params());
    bool ok = e.metric;
    for (const auto& p : e.pose_cm)
        for (float v : p) ok = ok && std::isfinite(v);
    for (const auto& p : e.mesh_cm)
        for (float v : p) ok = ok && std::isfinite(v);
    for (const auto& uv : e.uv_px) ok = ok && uv[0] >= 0 && uv[0] < handgraph::crop_size && uv[1] >= 0 && uv[1] < handgraph::crop_size;
    std::cout << "handgraph consumer (inference): " << e.pose_cm.size() << " joints, " << e.mesh_cm.size()
              << " vertices, metric " << (e.metric ? "yes" : "no") << (ok ? "" : ": WRONG") << "\n";
    return ok ? 0 : 1;
}

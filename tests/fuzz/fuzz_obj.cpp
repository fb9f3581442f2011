// libFuzzer target: the Wavefront OBJ template reader (include/handgraph/obj.hpp) and the
// hand graph built from what it reads (graph.hpp: arm removal, HEM coarsening, Laplacians,
// Lanczos). Anything but a result or a handgraph::error is a finding.
// Built by tests/fuzz/build.sh.
#include <handgraph/graph.hpp>
#include <handgraph/obj.hpp>

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        handgraph::template_mesh mesh =
            handgraph::parse_obj(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.obj");
        // model::load refuses templates over 1280 + 56 (arm) vertices before building the graph.
        if (mesh.num_vertices() <= 1336) (void)handgraph::build_hand_graph(mesh);
    } catch (const handgraph::error&) {
    }
    return 0;
}

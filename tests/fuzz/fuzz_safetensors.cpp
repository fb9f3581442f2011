// libFuzzer target: the safetensors reader and the handgraph weight file
// (include/handgraph/weights.hpp), then the template mesh it carries (obj.hpp's
// make_template_mesh), as model::load reads them. The hand graph built from a template
// is fuzzed through fuzz_obj (same build_hand_graph, cheaper inputs).
// Every input must parse or throw handgraph::error; anything else (a crash, a sanitizer
// report, another exception type) is a finding. Built by tests/fuzz/build.sh.
#include <handgraph/obj.hpp>
#include <handgraph/weights.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

// Everything model::load asks of a weight file: values of every tensor (finiteness for
// F32) and the template mesh.
void exercise(const handgraph::safetensors_file& file) {
    for (const auto& t : file.tensors()) {
        if (handgraph::dtype_size(t.type) == 4) (void)file.values<std::uint32_t>(t.name);
        else if (handgraph::dtype_size(t.type) == 8) (void)file.values<std::uint64_t>(t.name);
        else (void)file.values<std::uint8_t>(t.name);
    }
    handgraph::weight_file w(file);
    for (const auto& t : file.tensors()) {
        if (t.type == handgraph::dtype::f32) (void)w.f32(t.name, t.shape);
        else if (t.type == handgraph::dtype::i32) (void)w.i32(t.name, t.shape);
    }
    const auto* vi = file.find("template.vertices");
    const auto* fi = file.find("template.faces");
    if (vi && fi && vi->shape.size() == 2 && fi->shape.size() == 2 && vi->shape[1] == 3 && fi->shape[1] == 3) {
        {
            const handgraph::float_values v = w.f32("template.vertices", vi->shape);
            (void)handgraph::make_template_mesh(std::vector<float>(v.begin(), v.end()), w.i32("template.faces", fi->shape));
        }
    }
    w.check_all_used();
}

// The file the read() path is fed through; removed when the fuzzer exits.
struct scratch_file {
    std::string path = "/tmp/handgraph_fuzz_safetensors_" + std::to_string(::getpid()) + ".bin";
    ~scratch_file() { std::remove(path.c_str()); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // In memory (from_bytes), as the tests use it.
    try {
        exercise(handgraph::safetensors_file::from_bytes(std::vector<unsigned char>(data, data + size), "fuzz"));
    } catch (const handgraph::error&) {
    }
    // From a file (read): its own length checks and the streamed tensor reads.
    static const scratch_file scratch;
    const std::string& path = scratch.path;
    if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
        bool ok = std::fwrite(data, 1, size, f) == size;
        ok = std::fclose(f) == 0 && ok;
        if (ok) {
            try {
                exercise(handgraph::safetensors_file::read(path));
            } catch (const handgraph::error&) {
            }
        }
    }
    return 0;
}

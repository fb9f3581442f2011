// libFuzzer target: the MAT v5 reader (include/handgraph/mat.hpp): plain and compressed
// elements, both endians, numeric, char and cell arrays. Every accessor a data-set loader
// uses is called on what parses. Anything but a parse or a handgraph::error is a finding.
// Built by tests/fuzz/build.sh.
#include <handgraph/mat.hpp>

#include <cstdint>

namespace {

void touch(const handgraph::mat_array& a, int depth) {
    (void)a.name();
    (void)a.class_name();
    (void)a.where();
    if (!a.is_supported()) {
        try {
            (void)a.as_double();  // must refuse, naming why
        } catch (const handgraph::error&) {
        }
        return;
    }
    if (a.is_numeric()) {
        auto rm = a.as_double_row_major();
        auto f = a.as_float();
        if (a.numel() > 0 && a.ndims() <= 3) {
            const auto& d = a.dims();
            (void)a.at(d[0] - 1, d.size() > 1 ? d[1] - 1 : 0, d.size() > 2 ? d[2] - 1 : 0);
        }
        (void)rm;
        (void)f;
    } else if (a.is_char()) {
        (void)a.chars();
        (void)a.strings();
        try {
            (void)a.string();  // refuses several rows
        } catch (const handgraph::error&) {
        }
    } else if (a.is_cell() && depth < 32) {
        for (const auto& c : a.cells()) touch(c, depth + 1);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    handgraph::mat_read_options options;
    options.max_bytes = std::uint64_t(64) << 20;  // bombs must stop here, not at the RSS limit
    try {
        handgraph::mat_file f = handgraph::parse_mat(data, size, "fuzz", options);
        for (const auto& v : f.variables) {
            try {
                touch(v, 0);
            } catch (const handgraph::error&) {
            }
        }
        if (!f.variables.empty()) (void)f.get(f.variables.front().name());
        try {
            (void)f.get("no such variable");
        } catch (const handgraph::error&) {
        }
    } catch (const handgraph::error&) {
    }
    return 0;
}

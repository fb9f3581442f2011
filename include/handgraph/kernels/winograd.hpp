// handgraph/kernels/winograd.hpp: Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions (stub).
#pragma once
#include "../tensor.hpp"
#include "dispatch.hpp"

namespace handgraph {
namespace kernels {

#define HANDGRAPH_WINOGRAD_INSTANTIATE(arch)

class winograd_f4x4_3x3 {
public:
    static winograd_f4x4_3x3 prepare(const float*, const float*, int, int) { return {}; }
    bool ready() const { return false; }
    bool worth_it(int, int) const { return false; }
    void run(const feature_map&, feature_map&, bool, const feature_map*, int) const {}
};

}  // namespace kernels
}  // namespace handgraph

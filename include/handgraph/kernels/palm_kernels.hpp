// handgraph/kernels/palm_kernels.hpp: every kernel of the palm detector (include this one),
// and the definition of the table of one instruction set's instantiations of them.
//  detector_dispatch.hpp  detector_kernel_table, select_detector_kernels(), detector_setup
//  depthwise.hpp          depthwise_conv2d (any kernel, stride, dilation; TFLite padding)
//  palm_elementwise.hpp   prelu_slopes (PReLU, PReLU + residual), add_clamped, clamp,
//                         max_pool (TFLite padding; fused channel padding), resize_bilinear
//  palm_layout.hpp        reshape (map <-> dense), concatenation, pad, shifted copy
//  palm_reference.hpp     the scalar twins the tests compare with
// The detector's convolutions (1x1, the 5x5 stride-2 stem) are conv.hpp's conv2d.
#pragma once
#include "conv.hpp"
#include "depthwise.hpp"
#include "detector_dispatch.hpp"
#include "palm_elementwise.hpp"
#include "palm_layout.hpp"
#include "palm_reference.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

// Arch's detector kernels. Instantiated in the translation unit compiled for Arch (one per
// instruction set for handgraph's own executables: tools/runtime/kernels_isa.cpp.in), which
// the others know only through detector_dispatch.hpp's `extern template` declarations;
// otherwise, for xsimd::default_arch, where the implementation is compiled.
template <class Arch>
const detector_kernel_table& detector_kernel_table_for() {
    static const detector_kernel_table table{Arch::name(), Arch::version(), &depthwise_conv<Arch>, &pointwise<Arch>, &max_pool<Arch>,
                                             &resize_bilinear<Arch>};
    return table;
}

}  // namespace detail
}  // namespace kernels
}  // namespace handgraph

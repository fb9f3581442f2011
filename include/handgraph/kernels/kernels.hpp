// handgraph/kernels/kernels.hpp: every kernel of the networks (include this one), and the
// table that holds one instruction set's instantiations of them.
//  conv.hpp        conv2d (direct, or Winograd F(4x4,3x3) or F(2x2,3x3) as prepared), conv_algorithm
//  conv_tile.hpp   the register-tile micro-kernel (direct conv and Winograd GEMMs)
//  winograd.hpp    Winograd F(4x4,3x3) and F(2x2,3x3) weights transforms and kernel
//  elementwise.hpp scale_shift_relu, add, maxpool2x2, upsample2x_add
//  linear.hpp      linear (fully connected, one vector)
//  graph_conv.hpp  Chebyshev graph convolution (its dense part a SIMD kernel), graph up-sampling and pooling
//  reference.hpp   the scalar *_reference twins the tests compare with
//  dispatch.hpp    kernel_table, select_kernels(), exec, layer_setup
//  parallel.hpp    worker_pool, loop_runner, parallel_for
#pragma once
#include "conv.hpp"
#include "conv_tile.hpp"
#include "dispatch.hpp"
#include "elementwise.hpp"
#include "graph_conv.hpp"
#include "linear.hpp"
#include "reference.hpp"
#include "winograd.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

// Arch's kernels. Instantiated in the translation unit compiled for Arch: for handgraph's
// own executables one per instruction set (cmake/runtime.cmake, tools/runtime/kernels_isa.cpp.in),
// which the other translation units know only through the `extern template` declarations
// of dispatch.hpp; otherwise, for xsimd::default_arch, where the implementation is compiled.
template <class Arch>
const kernel_table& kernel_table_for() {
    static const kernel_table table{Arch::name(), Arch::version(), arch_has_fma<Arch>(), int(xsimd::batch<float, Arch>::size),
                                    &conv_direct<Arch>, &conv_direct_preact<Arch>, &conv_direct_double<Arch>,
                                    &winograd<Arch>,
                                    &winograd_weights<Arch>, &eltwise<Arch>, &linear_kernel<Arch>, &cheb_dense<Arch>};
    return table;
}

}  // namespace detail
}  // namespace kernels
}  // namespace handgraph

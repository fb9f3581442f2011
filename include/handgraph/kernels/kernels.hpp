// handgraph/kernels/kernels.hpp: every kernel of the networks (include this one).
//  conv.hpp        conv2d (direct; Winograd F(4x4,3x3) for 3x3 stride 1 where it pays)
//  conv_tile.hpp   the register-tile micro-kernel (direct conv and Winograd GEMMs)
//  winograd.hpp    Winograd F(4x4,3x3) weights and kernel
//  elementwise.hpp scale_shift_relu, add, maxpool2x2, upsample2x_add
//  linear.hpp      linear (fully connected, one vector)
//  reference.hpp   the scalar *_reference twins the tests compare with
//  dispatch.hpp    exec, active_arch_name(), per-ISA instantiation machinery
#pragma once
#include "conv.hpp"
#include "conv_tile.hpp"
#include "dispatch.hpp"
#include "elementwise.hpp"
#include "linear.hpp"
#include "reference.hpp"
#include "winograd.hpp"

// Explicit instantiation of every kernel for one instruction set; used once per arch by
// tools/runtime/kernels_<isa>.cpp (compiled with that ISA's flags).
#define HANDGRAPH_KERNELS_INSTANTIATE(arch)                                                    \
    namespace handgraph {                                                                      \
    namespace kernels {                                                                        \
    namespace detail {                                                                         \
    HANDGRAPH_KERNEL_INSTANTIATE_ONE(conv_direct_fn, conv_args, arch)                          \
    HANDGRAPH_KERNEL_INSTANTIATE_ONE(eltwise_fn, eltwise_args, arch)                           \
    HANDGRAPH_KERNEL_INSTANTIATE_ONE(linear_fn, linear_args, arch)                             \
    HANDGRAPH_WINOGRAD_INSTANTIATE(arch)                                                       \
    }                                                                                          \
    }                                                                                          \
    }

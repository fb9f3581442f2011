// handgraph/kernels/detector_dispatch.hpp: the palm detector's kernel table (the ops the hand
// network does not have: depthwise convolution, PReLU and the other per-pixel ops, max-pool
// with TFLite's padding, bilinear resize), chosen per instruction set like the hand
// network's (dispatch.hpp): a second table struct, instantiated in the same per-ISA
// translation units (tools/runtime/kernels_isa.cpp.in) from the same ISA list
// (cmake/runtime.cmake's HANDGRAPH_ISAS), or for xsimd::default_arch where the implementation
// is compiled. A detector layer is prepared with a detector_setup (its table and where its
// packed weights live) and calls through the table ever after; the detector's convolutions
// (1x1 and the 5x5 stem) are conv2d layers of the hand network's table of the same
// instruction set (select_detector_kernels gives the pair).
// Depends on dispatch.hpp.
#pragma once
#include "dispatch.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

struct depthwise_args;
struct pointwise_args;
struct pool_args;
struct resize_args;

// One instruction set's detector kernels.
struct detector_kernel_table {
    const char* name;  // xsimd's name, as kernel_table's
    unsigned version;
    void (*depthwise)(const depthwise_args&);
    void (*pointwise)(const pointwise_args&);
    void (*max_pool)(const pool_args&);
    void (*resize_bilinear)(const resize_args&);
};

// The table of Arch's instantiations (defined in palm_kernels.hpp).
template <class Arch>
const detector_kernel_table& detector_kernel_table_for();

}  // namespace detail
}  // namespace kernels
}  // namespace handgraph

#if HANDGRAPH_KERNELS_DISPATCH
#define HANDGRAPH_DECLARE_DETECTOR_TABLE(arch) \
    extern template const handgraph::kernels::detail::detector_kernel_table& handgraph::kernels::detail::detector_kernel_table_for<arch>();
HANDGRAPH_RUNTIME_FOR_EACH_ARCH(HANDGRAPH_DECLARE_DETECTOR_TABLE)
#undef HANDGRAPH_DECLARE_DETECTOR_TABLE
#endif

namespace handgraph {
namespace kernels {
namespace detail {

template <class Arch>
inline const detector_kernel_table& detector_table_upto(xsimd::arch_list<Arch>, unsigned) {
    return detector_kernel_table_for<Arch>();
}
template <class Arch, class Next, class... Rest>
inline const detector_kernel_table& detector_table_upto(xsimd::arch_list<Arch, Next, Rest...>, unsigned best) {
    if (Arch::version() <= best) return detector_kernel_table_for<Arch>();
    return detector_table_upto(xsimd::arch_list<Next, Rest...>{}, best);
}

}  // namespace detail

using detector_kernel_table = detail::detector_kernel_table;

// The detector kernels of the instruction set of `like` (a table select_kernels gave).
inline const detector_kernel_table& select_detector_kernels(const kernel_table& like) {
    return detail::detector_table_upto(detail::kernel_archs{}, like.version);
}

// How a detector layer is prepared: its kernels (null: those of select_kernels()) and where
// its packed weights live (null: the C heap).
struct detector_setup {
    const detector_kernel_table* kernels = nullptr;
    handgraph::detail::buffer_source* weights = nullptr;

    const detector_kernel_table& table() const { return kernels ? *kernels : select_detector_kernels(select_kernels()); }
};

}  // namespace kernels
}  // namespace handgraph

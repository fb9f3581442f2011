// handgraph/kernels/dispatch.hpp: how a kernel call reaches the code for the CPU it runs on.
//
// Every SIMD kernel is a functor with `template <class Arch> void operator()(Arch, const
// args&) const`, defined (not inline) in its header. Two ways to get the instantiations:
//  - our own executables link `handgraph_runtime`, which defines HANDGRAPH_RUNTIME_DISPATCH=1
//    and compiles tools/runtime/kernels_<isa>.cpp with that instruction set's flags; the
//    headers then only declare the instantiations (`extern template`) and `xsimd::dispatch`
//    picks the best one the CPU supports, once per call (detection itself is cached);
//  - a library user who only includes the headers gets `xsimd::default_arch`, i.e. whatever
//    their own compiler flags allow, instantiated in their translation unit.
// Arch-templated code takes raw pointers and integers only and calls nothing that is not
// itself templated on Arch, so no AVX-512 code can leak out of kernels_avx512.cpp through an
// inline function the linker happens to pick from that object.
// Depends on xsimd (8.x) and OpenMP when enabled.
#pragma once
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstddef>
#include <string>

#include "../error.hpp"

namespace handgraph {
namespace kernels {

// Execution options of one kernel call. `threads` goes to OpenMP `num_threads` clauses;
// the kernels never touch global OpenMP state, so a model can be shared between threads.
// Results do not depend on `threads` (bit-identical).
struct exec {
    int threads = 1;
};

namespace detail {

#if defined(HANDGRAPH_RUNTIME_DISPATCH) && HANDGRAPH_RUNTIME_DISPATCH && \
    (defined(__x86_64__) || defined(_M_X64))
#define HANDGRAPH_KERNELS_DISPATCH 1
// Sorted by version, best first (xsimd's requirement). sse2 is the x86-64 baseline.
using kernel_archs = xsimd::arch_list<xsimd::avx512f, xsimd::fma3<xsimd::avx2>, xsimd::sse2>;
#else
#define HANDGRAPH_KERNELS_DISPATCH 0
using kernel_archs = xsimd::arch_list<xsimd::default_arch>;
#endif

// Calls f(Arch{}, args) for the best Arch of kernel_archs that this CPU supports.
template <class F, class Args>
inline void dispatch_call(const F& f, const Args& args) {
    xsimd::dispatch<kernel_archs>(f)(args);
}

struct arch_name_fn {
    template <class Arch>
    const char* operator()(Arch) const noexcept { return Arch::name(); }
};

inline int thread_count(const exec& ex) { return ex.threads < 1 ? 1 : ex.threads; }

// Declares (HANDGRAPH_KERNELS_DISPATCH) the per-ISA instantiations of a kernel functor, or
// instantiates one (in tools/runtime/kernels_<isa>.cpp).
#define HANDGRAPH_KERNEL_DECLARE_ONE(fn, args, arch) \
    extern template void fn::operator()<arch>(arch, const args&) const;
#define HANDGRAPH_KERNEL_INSTANTIATE_ONE(fn, args, arch) \
    template void fn::operator()<arch>(arch, const args&) const;
#if HANDGRAPH_KERNELS_DISPATCH
#define HANDGRAPH_KERNEL_DECLARE(fn, args)                               \
    HANDGRAPH_KERNEL_DECLARE_ONE(fn, args, xsimd::avx512f)               \
    HANDGRAPH_KERNEL_DECLARE_ONE(fn, args, xsimd::fma3<xsimd::avx2>)     \
    HANDGRAPH_KERNEL_DECLARE_ONE(fn, args, xsimd::sse2)
#else
#define HANDGRAPH_KERNEL_DECLARE(fn, args)
#endif

}  // namespace detail

// Name of the instruction set the kernels run with on this CPU, e.g. "avx512f",
// "fma3+avx2", "sse2".
inline const char* active_arch_name() {
    return xsimd::dispatch<detail::kernel_archs>(detail::arch_name_fn{})();
}

}  // namespace kernels
}  // namespace handgraph

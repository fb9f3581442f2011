// Kernel instantiations for xsimd::fma3<xsimd::avx2>, chosen at run time by xsimd::dispatch
// (include/handgraph/kernels/dispatch.hpp). Compiler flags: AVX2 + FMA (cmake/runtime.cmake).
// Only Arch-templated code is instantiated here, so nothing compiled with these flags is
// shared with other translation units.
#include <handgraph/kernels/kernels.hpp>

#if HANDGRAPH_KERNELS_DISPATCH
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels_avx2.cpp must be compiled with the flags of its instruction set (cmake/runtime.cmake)"
#endif
HANDGRAPH_KERNELS_INSTANTIATE(xsimd::fma3<xsimd::avx2>)
#endif

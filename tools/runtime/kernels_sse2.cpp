// Kernel instantiations for xsimd::sse2, chosen at run time by xsimd::dispatch
// (include/handgraph/kernels/dispatch.hpp). Compiler flags: none beyond the x86-64 baseline (SSE2) (cmake/runtime.cmake).
// Only Arch-templated code is instantiated here, so nothing compiled with these flags is
// shared with other translation units.
#include <handgraph/kernels/kernels.hpp>

#if HANDGRAPH_KERNELS_DISPATCH
#if !defined(__SSE2__)
#error "kernels_sse2.cpp must be compiled with the flags of its instruction set (cmake/runtime.cmake)"
#endif
HANDGRAPH_KERNELS_INSTANTIATE(xsimd::sse2)
#endif

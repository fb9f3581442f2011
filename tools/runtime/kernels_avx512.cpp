// Kernel instantiations for xsimd::avx512bw (AVX-512 F/CD/BW/DQ/VL), chosen at run time
// by the dispatch of include/handgraph/kernels/dispatch.hpp. Compiler flags: AVX-512 F/CD/BW/DQ/VL + AVX2 + FMA (cmake/runtime.cmake).
// Only Arch-templated code is instantiated here, so nothing compiled with these flags is
// shared with other translation units.
#include <handgraph/kernels/kernels.hpp>

#if HANDGRAPH_KERNELS_DISPATCH
#if !defined(__AVX512BW__)
#error "kernels_avx512.cpp must be compiled with the flags of its instruction set (cmake/runtime.cmake)"
#endif
HANDGRAPH_KERNELS_INSTANTIATE(xsimd::avx512bw)
#endif

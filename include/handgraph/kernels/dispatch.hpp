// handgraph/kernels/dispatch.hpp: how a kernel call reaches the code for the CPU it runs on.
//
// Every SIMD kernel is a functor with `template <class Arch> void operator()(Arch, const
// args&) const`, defined (not inline) in its header. Two ways to get the instantiations:
//  - our own executables link `handgraph_runtime`, which defines HANDGRAPH_RUNTIME_DISPATCH=1
//    and compiles tools/runtime/kernels_<isa>.cpp with that instruction set's flags; the
//    headers then only declare the instantiations (`extern template`) and each call picks
//    the best one the CPU supports, walking the arch list as `xsimd::dispatch` does (plus an
//    optional cap, exec::arch, so tests can run every compiled instruction set);
//  - a library user who only includes the headers gets `xsimd::default_arch`, i.e. whatever
//    their own compiler flags allow, instantiated in their translation unit.
// Arch-templated code takes raw pointers and integers only and calls nothing that is not
// itself templated on Arch, so no AVX-512 code can leak out of kernels_avx512.cpp through an
// inline function the linker happens to pick from that object.
// Depends on xsimd (8.x).
#pragma once
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "../error.hpp"
#include "parallel.hpp"

namespace handgraph {
namespace kernels {

// Execution options of one kernel call. `threads`: how many threads a kernel's loop may use
// (the calling thread and its own helpers, parallel.hpp), so a model can be shared between
// threads.
// Results do not depend on `threads` (bit-identical).
// `arch` (tests, benchmarks): null for the best instruction set of this CPU, or the name of
// one (see available_arch_names()) to use it or the best one below it.
// `exact`: convolutions use the direct kernel only (no Winograd): the most accurate mode
// (see conv.hpp for the measured errors of both).
struct exec {
    int threads = 1;
    const char* arch = nullptr;
    bool exact = false;
};

namespace detail {

#if defined(HANDGRAPH_RUNTIME_DISPATCH) && HANDGRAPH_RUNTIME_DISPATCH && \
    (defined(__x86_64__) || defined(_M_X64))
#define HANDGRAPH_KERNELS_DISPATCH 1
// Sorted by version, best first (xsimd's requirement). sse2 is the x86-64 baseline.
// AVX-512 is dispatched as avx512bw (xsimd reports it only with F, CD, DQ and BW present),
// since kernels_avx512.cpp is compiled with -mavx512{f,cd,bw,dq,vl}.
using kernel_archs = xsimd::arch_list<xsimd::avx512bw, xsimd::fma3<xsimd::avx2>, xsimd::sse2>;
#else
#define HANDGRAPH_KERNELS_DISPATCH 0
using kernel_archs = xsimd::arch_list<xsimd::default_arch>;
#endif

// The version (xsimd's numbering) of the arch named `name` in kernel_archs; 0 if none.
template <class... Archs>
inline unsigned arch_version_of(xsimd::arch_list<Archs...>, const char* name) {
    unsigned v = 0;
    ((v = std::strcmp(Archs::name(), name) == 0 ? Archs::version() : v), ...);
    return v;
}

// The best version the call may use: the CPU's best, capped by ex.arch.
inline unsigned best_version(const exec& ex) {
    unsigned best = xsimd::available_architectures().best;
    if (ex.arch) {
        const unsigned v = arch_version_of(kernel_archs{}, ex.arch);
        if (v == 0) throw error(std::string("kernels: no instruction set named '") + ex.arch + "' compiled in");
        best = std::min(best, v);
    }
    return best;
}

// Walks kernel_archs (best first) like xsimd::dispatch, stopping at the first arch whose
// version is at most `best`; the last arch is the fallback.
template <class F, class Args, class Arch>
inline auto walk_archs(xsimd::arch_list<Arch>, unsigned, const F& f, const Args& args) {
    return f(Arch{}, args);
}
template <class F, class Args, class Arch, class Next, class... Rest>
inline auto walk_archs(xsimd::arch_list<Arch, Next, Rest...>, unsigned best, const F& f, const Args& args) {
    if (Arch::version() <= best) return f(Arch{}, args);
    return walk_archs(xsimd::arch_list<Next, Rest...>{}, best, f, args);
}

// Calls f(Arch{}, args) for the best Arch of kernel_archs that this CPU supports (and that
// ex.arch allows).
template <class F, class Args>
inline void dispatch_call(const F& f, const Args& args, const exec& ex) {
    walk_archs(kernel_archs{}, best_version(ex), f, args);
}

struct arch_name_fn {
    template <class Arch>
    const char* operator()(Arch, int) const noexcept { return Arch::name(); }
};

template <class... Archs>
inline std::vector<std::string> arch_names_available(xsimd::arch_list<Archs...>) {
    std::vector<std::string> names;
    const unsigned best = xsimd::available_architectures().best;
    ((Archs::version() <= best ? names.push_back(Archs::name()) : void()), ...);
    if (names.empty()) names.push_back(walk_archs(kernel_archs{}, 0, arch_name_fn{}, 0));
    return names;
}

inline int thread_count(const exec& ex) { return ex.threads < 1 ? 1 : ex.threads; }

// Declares (HANDGRAPH_KERNELS_DISPATCH) the per-ISA instantiations of a kernel functor, or
// instantiates one (in tools/runtime/kernels_<isa>.cpp).
#define HANDGRAPH_KERNEL_DECLARE_ONE(fn, args, arch) \
    extern template void fn::operator()<arch>(arch, const args&) const;
#define HANDGRAPH_KERNEL_INSTANTIATE_ONE(fn, args, arch) \
    template void fn::operator()<arch>(arch, const args&) const;
#if HANDGRAPH_KERNELS_DISPATCH
#define HANDGRAPH_KERNEL_DECLARE(fn, args)                               \
    HANDGRAPH_KERNEL_DECLARE_ONE(fn, args, xsimd::avx512bw)              \
    HANDGRAPH_KERNEL_DECLARE_ONE(fn, args, xsimd::fma3<xsimd::avx2>)     \
    HANDGRAPH_KERNEL_DECLARE_ONE(fn, args, xsimd::sse2)
#else
#define HANDGRAPH_KERNEL_DECLARE(fn, args)
#endif

}  // namespace detail

// Name of the instruction set the kernels run with on this CPU (for calls with `ex`), e.g.
// "avx512bw", "fma3+avx2", "sse2".
inline const char* active_arch_name(const exec& ex = exec{}) {
    return detail::walk_archs(detail::kernel_archs{}, detail::best_version(ex), detail::arch_name_fn{}, 0);
}

// Names of the compiled instruction sets this CPU can run, best first.
inline std::vector<std::string> available_arch_names() {
    return detail::arch_names_available(detail::kernel_archs{});
}

}  // namespace kernels
}  // namespace handgraph

// handgraph/kernels/dispatch.hpp: which instruction set a layer's kernels run with, and what
// a kernel call runs with (threads, scratch).
//
// Every SIMD kernel is a function template `template <class Arch> void name(const args&)`
// defined in its header. A kernel_table holds one instruction set's instantiations
// (kernels.hpp fills it); a layer picks its table once, when it is prepared
// (select_kernels), and calls through it ever after. Two ways to get the tables:
//  - handgraph's own executables link `handgraph_runtime` (cmake/runtime.cmake), which
//    defines HANDGRAPH_RUNTIME_DISPATCH=1 and compiles one translation unit per instruction
//    set with that set's flags. The list of instruction sets is cmake/runtime.cmake's
//    HANDGRAPH_ISAS, the one place it is written: it generates <handgraph_runtime_archs.hpp>,
//    which names them (best first) for the walk below and declares their tables `extern`;
//  - a program that compiles handgraph's implementation itself (HANDGRAPH_IMPLEMENTATION,
//    handgraph.hpp) gets xsimd::default_arch, whatever its own compiler flags allow.
// Arch-templated code takes raw pointers and integers only and calls nothing that is not
// itself templated on Arch (loops go through loop_runner's function pointer, scratch through
// exec's), so no AVX-512 code can leak out of the AVX-512 translation unit through an inline
// function the linker happens to pick from it.
// Depends on xsimd (8.x), parallel.hpp, tensor.hpp.
#pragma once
#include <xsimd/xsimd.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "../error.hpp"
#include "../tensor.hpp"
#include "parallel.hpp"

namespace handgraph {
namespace kernels {
namespace detail {

struct conv_args;
struct winograd_args;
struct winograd_weights_args;
struct eltwise_args;
struct linear_args;
struct cheb_dense_args;

// One instruction set's kernels.
struct kernel_table {
    const char* name;  // xsimd's name: "avx512bw", "fma3+avx2", "sse2", ...
    unsigned version;  // xsimd's ordering: larger is better
    bool fma;          // fused multiply-add (one rounding); without it (sse2) xsimd::fma is a multiply and an add
    int lanes;         // floats per SIMD register (16: AVX-512, 8: AVX2, 4: SSE2)
    void (*conv_direct)(const conv_args&);
    void (*conv_direct_preact)(const conv_args&);
    void (*conv_direct_double)(const conv_args&);
    void (*winograd)(const winograd_args&);
    void (*winograd_weights)(const winograd_weights_args&);
    void (*eltwise)(const eltwise_args&);
    void (*linear)(const linear_args&);
    void (*cheb_dense)(const cheb_dense_args&);
};

// Arch has fused multiply-add instructions.
template <class Arch>
constexpr bool arch_has_fma() {
    return std::is_base_of<xsimd::fma3<xsimd::sse4_2>, Arch>::value || std::is_base_of<xsimd::fma3<xsimd::avx>, Arch>::value ||
           std::is_base_of<xsimd::fma3<xsimd::avx2>, Arch>::value || std::is_base_of<xsimd::avx512f, Arch>::value;
}

// The table of Arch's instantiations (defined in kernels.hpp).
template <class Arch>
const kernel_table& kernel_table_for();

}  // namespace detail
}  // namespace kernels
}  // namespace handgraph

#if defined(HANDGRAPH_RUNTIME_DISPATCH) && HANDGRAPH_RUNTIME_DISPATCH
#include <handgraph_runtime_archs.hpp>  // generated: HANDGRAPH_RUNTIME_ARCHS, HANDGRAPH_RUNTIME_FOR_EACH_ARCH
#define HANDGRAPH_KERNELS_DISPATCH 1
#define HANDGRAPH_DECLARE_TABLE(arch) \
    extern template const handgraph::kernels::detail::kernel_table& handgraph::kernels::detail::kernel_table_for<arch>();
HANDGRAPH_RUNTIME_FOR_EACH_ARCH(HANDGRAPH_DECLARE_TABLE)
#undef HANDGRAPH_DECLARE_TABLE
#else
#define HANDGRAPH_KERNELS_DISPATCH 0
#define HANDGRAPH_RUNTIME_ARCHS xsimd::default_arch
#endif

namespace handgraph {
namespace kernels {
namespace detail {

// The instruction sets compiled in, best first.
using kernel_archs = xsimd::arch_list<HANDGRAPH_RUNTIME_ARCHS>;

// Names of the archs in kernel_archs whose version is at most `best`, best first.
template <class... Archs>
inline std::vector<const char*> arch_names_upto(xsimd::arch_list<Archs...>, unsigned best) {
    std::vector<const char*> names;
    ((Archs::version() <= best ? names.push_back(Archs::name()) : void()), ...);
    return names;
}

template <class... Archs>
inline unsigned arch_version_of(xsimd::arch_list<Archs...>, const char* name) {
    unsigned v = 0;
    ((v = std::strcmp(Archs::name(), name) == 0 ? Archs::version() : v), ...);
    return v;
}

// The first arch of the list (best first) whose version is at most `best`; the last one
// (the baseline) when none is.
template <class Arch>
inline const kernel_table& table_upto(xsimd::arch_list<Arch>, unsigned) {
    return kernel_table_for<Arch>();
}
template <class Arch, class Next, class... Rest>
inline const kernel_table& table_upto(xsimd::arch_list<Arch, Next, Rest...>, unsigned best) {
    if (Arch::version() <= best) return kernel_table_for<Arch>();
    return table_upto(xsimd::arch_list<Next, Rest...>{}, best);
}

}  // namespace detail

using kernel_table = detail::kernel_table;

// Names of the compiled instruction sets this CPU can run, best first (at least the baseline).
inline std::vector<std::string> available_arch_names() {
    std::vector<std::string> out;
    for (const char* n : detail::arch_names_upto(detail::kernel_archs{}, xsimd::available_architectures().best)) out.push_back(n);
    if (out.empty()) out.push_back(detail::arch_names_upto(detail::kernel_archs{}, ~0u).back());
    return out;
}

// The kernels for this CPU: the best compiled instruction set it supports, or, with `cap`
// (the name of a compiled set, as available_arch_names() gives them), the best one at or
// below that set. Throws for an unknown name.
inline const detail::kernel_table& select_kernels(const char* cap = nullptr) {
    unsigned best = xsimd::available_architectures().best;
    if (cap && *cap) {
        const unsigned v = detail::arch_version_of(detail::kernel_archs{}, cap);
        if (v == 0) {
            std::string names;
            for (const char* n : detail::arch_names_upto(detail::kernel_archs{}, ~0u)) names += std::string(names.empty() ? "" : ", ") + n;
            throw error(std::string("kernels: no instruction set named '") + cap + "' is compiled in (compiled: " + names + ")");
        }
        if (v < best) best = v;
    }
    return detail::table_upto(detail::kernel_archs{}, best);
}

// What one kernel call runs with. `loop`: the threads its loops may use (a context's
// pool; serial by default). `spaces`: the scratch of each loop slot (spaces[0] is the
// calling thread's; context.hpp), or null: kernels then take scratch from the C heap for
// the call. `exact`: convolutions use the direct kernel only, never Winograd (conv.hpp).
// Results do not depend on the thread count (bit-identical).
struct exec {
    detail::loop_runner loop;
    handgraph::detail::workspace* const* spaces = nullptr;
    bool exact = false;

    int threads() const { return loop.threads < 1 ? 1 : loop.threads; }
    // Where the call's activations come from: slot 0's block pool, or the heap.
    handgraph::detail::buffer_source* memory() const { return spaces ? &spaces[0]->blocks : nullptr; }
};

namespace detail {

// The per-slot workspaces of one kernel call: the context's (exec::spaces), or, for a call
// without a context (the kernels' own tests), workspaces made for this call alone.
class call_spaces {
public:
    explicit call_spaces(const exec& ex) : spaces_(ex.spaces) {
        if (spaces_) return;
        for (int i = 0; i < ex.threads(); ++i) {
            own_.push_back(std::make_unique<handgraph::detail::workspace>());
            table_.push_back(own_.back().get());
        }
        spaces_ = table_.data();
    }
    handgraph::detail::workspace* const* get() const { return spaces_; }
    // As the kernels' args hold it (handed to handgraph::detail::slot_scratch).
    void* opaque() const { return const_cast<handgraph::detail::workspace**>(spaces_); }

private:
    handgraph::detail::workspace* const* spaces_;
    std::vector<std::unique_ptr<handgraph::detail::workspace>> own_;
    std::vector<handgraph::detail::workspace*> table_;
};

}  // namespace detail

// How a layer is prepared: the instruction set its kernels use (select_kernels), and where
// its packed weights live (a model's weight arena; null: the C heap).
struct layer_setup {
    const detail::kernel_table* kernels = nullptr;  // null: select_kernels()
    handgraph::detail::buffer_source* weights = nullptr;

    const detail::kernel_table& table() const { return kernels ? *kernels : select_kernels(); }
};

}  // namespace kernels
}  // namespace handgraph

// The one translation unit of the program that compiles handgraph's implementation (and the
// kernels, for this program's compiler flags): handgraph.hpp's instructions.
#define HANDGRAPH_IMPLEMENTATION
#include <handgraph/handgraph.hpp>

// The implementation of handgraph's public API (include/handgraph/handgraph.hpp), compiled
// once for handgraph's own executables. A program of yours does the same in one of its
// translation units.
#define HANDGRAPH_IMPLEMENTATION
#include <handgraph/handgraph.hpp>

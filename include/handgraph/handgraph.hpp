// handgraph/handgraph.hpp: the public API in one include.
// Reading (weights, OBJ) -> graph -> kernels -> model -> pipeline.
#pragma once
#include "error.hpp"
#include "graph.hpp"
#include "io.hpp"
#include "json.hpp"
#include "kernels/conv.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/linear.hpp"
#include "kernels/graph_conv.hpp"
#include "model.hpp"
#include "obj.hpp"
#include "pipeline.hpp"
#include "tensor.hpp"
#include "weights.hpp"

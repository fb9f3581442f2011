// handgraph/handgraph.hpp: the public API in one include.
// Reading (weights, OBJ, images, MAT) -> graph -> kernels -> model -> pipeline -> eval.
// image.hpp and mat.hpp use stb_image's declarations: compile stb_image and
// stb_image_write in one translation unit of yours (#define STB_IMAGE_IMPLEMENTATION and
// STB_IMAGE_WRITE_IMPLEMENTATION before including <stb_image.h>, <stb_image_write.h>), a
// file of its own that does not include handgraph (see tests/consumer/stb_impl.cpp).
#pragma once
#include "error.hpp"
#include "eval/datasets.hpp"
#include "eval/metrics.hpp"
#include "graph.hpp"
#include "image.hpp"
#include "io.hpp"
#include "json.hpp"
#include "kernels/conv.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/graph_conv.hpp"
#include "kernels/linear.hpp"
#include "mat.hpp"
#include "model.hpp"
#include "obj.hpp"
#include "pipeline.hpp"
#include "tensor.hpp"
#include "weights.hpp"

// handgraph/eval.hpp: the evaluation API in one include, beside the inference API of
// handgraph/handgraph.hpp. Data sets (the release's real-world test set, STB), pose
// metrics (mean error, PCK, AUC), the evaluation loop with its checkpoint and outputs,
// and the pictures (skeletons, mesh overlays, bitmap text, PCK curves as image and SVG);
// with them the readers and writers they need: images (PNG/JPEG), MAT v5 files, atomic
// file writes and OBJ export.
//
// image.hpp and mat.hpp use stb_image's declarations: compile stb_image and
// stb_image_write in one translation unit of yours (#define STB_IMAGE_IMPLEMENTATION and
// STB_IMAGE_WRITE_IMPLEMENTATION before including <stb_image.h>, <stb_image_write.h>), a
// file of its own that does not include handgraph (see tests/consumer/stb_impl.cpp).
//
// Depends on handgraph.hpp (the model it evaluates), context.hpp and everything it lists below.
#pragma once
#include "image.hpp"
#include "io.hpp"
#include "mat.hpp"
#include "handgraph.hpp"

#include "eval/pose.hpp"
#include "eval/datasets.hpp"
#include "eval/metrics.hpp"
#include "eval/render.hpp"
#include "eval/font.hpp"
#include "eval/mesh_render.hpp"
#include "eval/pck_image.hpp"
#include "eval/pck_svg.hpp"
#include "eval/checkpoint.hpp"
#include "eval/evaluate.hpp"

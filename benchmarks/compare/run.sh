#!/usr/bin/env bash
# handgraph vs PyTorch vs ONNX Runtime, one command (see README.md):
#
#   bash benchmarks/compare/run.sh [compare.py options, e.g. --rounds 7 --no-batch
#                                   --checkpoints DIR --template OBJ]
#
# Builds hand_bench, compare_dump and hand_prepare into build-compare/ (incremental), installs
# onnxruntime-node from package-lock.json into benchmarks/compare/node_modules when it is
# missing, then runs compare.py, which prints the tables and writes
# benchmarks/compare/last_run.json and last_run.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="${HANDGRAPH_COMPARE_BUILD:-$ROOT/build-compare}"
PY=/usr/bin/python3

need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 not found: $2" >&2; exit 1; }; }
need cmake "bash tools/install_deps.sh installs the build tools"
need node "install Node.js >= 18 (Debian: apt-get install nodejs npm)"
need npm "install npm (Debian: apt-get install npm)"
"$PY" -c "import torch, numpy, scipy" 2>/dev/null ||
  { echo "error: $PY cannot import torch/numpy/scipy: bash tools/install_deps.sh --tests installs them" >&2; exit 1; }

# Configured every time (quick when nothing changed): a target added since the last run
# would otherwise be unknown to the old build files.
cmake -S "$HERE" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
echo "building hand_bench, compare_dump and hand_prepare in $BUILD ..."
cmake --build "$BUILD" --target hand_bench compare_dump hand_prepare -j"$(nproc)" >/dev/null

if [ ! -f "$HERE/node_modules/onnxruntime-node/package.json" ]; then
  echo "installing onnxruntime-node (npm ci --ignore-scripts) ..."
  (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
fi

export HANDGRAPH_COMPARE_COMMAND="bash benchmarks/compare/run.sh${*:+ $*}"
exec "$PY" "$HERE/compare.py" --build "$BUILD" "$@"

#!/usr/bin/env bash
# The test command: install dependencies, build everything (Release), run the suite.
# Usage: bash tools/run_tests.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh --tests
build="${1:-build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build" && ctest --output-on-failure -j "$(nproc)"

#!/usr/bin/env bash
# The test command: install dependencies, build everything (Release), run the suite, then
# print how many tests passed, were skipped (each with its reason) and failed.
# Usage: bash tools/run_tests.sh [build-dir]
# Every doctest test case and every unittest class (or method that skips on its own) is
# one CTest test (tests/CMakeLists.txt); a test that skips exits 77 and CTest shows it as
# "Skipped". Tests needing the release's data skip when HANDGRAPH_SHARED_DATA (default
# ../shared/data/hand-graph-cnn; -DHANDGRAPH_SHARED_DATA=... at configure) lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh --tests
build="${1:-build}"
jobs="$(nproc)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$jobs"
junit="$(cd "$build" && pwd)/ctest-junit.xml"
rm -f "$junit"
rc=0
# --test-output-size-passed: keep all of a skipped test's output (its reason comes last).
(cd "$build" && ctest --output-on-failure -j "$jobs" --output-junit "$junit" \
  --test-output-size-passed 1048576) || rc=$?
python3 tools/ctest_summary.py "$junit" --label run_tests
exit "$rc"

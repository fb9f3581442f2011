#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (gcc), then the
# concurrency tests under ThreadSanitizer.
# Usage: bash tools/run_sanitizers.sh [--quick] [build-dir]   (default: build-asan)
#
#  --quick (what .ci/run uses): the C++ test programs (all but the two long numerical
#     runs below), the Python tests that drive hand_demo with bad input
#     (py_test_robustness, py_test_photo_cli, py_test_detector_cli) and the Python
#     module's API and detector tests under ASan+UBSan; under TSan test_parallel,
#     test_kernels and test_robustness (with its kernels uninstrumented: section 2).
#     Why: on a 2-core AMD EPYC family 23 (Zen 1, AVX2, 2026-12-02) the plain suite alone
#     takes 26 min (inference 0.93 s per image there, 4.5x the Intel Xeon's), and the full
#     sanitizer run below, 27 min on the Xeon, scaled by that 4.5x (an estimate, not run
#     there), would take CI past its 90 minutes. Measured there, 2026-12-02 16:58-17:59
#     UTC, .ci/run in a fresh clone at 7235eaa (tests beside it for 8 of those minutes):
#     61 min in all, run_tests.sh 23 min, --quick ASan build and 114 tests 26 min, TSan
#     13 min (build and the two test programs). With TSan as in section 2, .ci/run in a
#     fresh clone at b042b70 there (2026-12-02 20:49-21:21 UTC, a faster phase of that VM):
#     32.4 min, run_tests.sh 12, --quick ASan 16.7, TSan 3.6. On a 2-core Zen 5 (AVX-512,
#     2026-12-04, fresh clone at d614469, UBSan's per-access checks off in the kernel files
#     as below): .ci/run 12.2 min, --quick ASan 305 s, TSan 99 s. Without --quick, the full set:
#
#  1. ASan+UBSan: every C++ test, hand_demo and the Python tests that drive it, and the
#     Python module (linked with the sanitizers: CMAKE_MODULE_LINKER_FLAGS; its test,
#     tests/test_python_module.py, restarts the interpreter with the ASan runtime in
#     LD_PRELOAD and detect_leaks=0, from <build>/python/asan_preload.txt), built
#     RelWithDebInfo with -fsanitize=address,undefined -fno-omit-frame-pointer
#     -fno-sanitize-recover=all (UB fails the test, it is not just printed).
#     Left out (ctest -E; a file's name stands for all of its CTest tests), with the reason:
#       install_consumer       installs and builds a consumer project: no code of ours
#                              runs that the other tests do not run
#       py_test_convert, py_test_hand_graph, py_test_reference
#                              pure Python (converter, Python reference): nothing
#                              compiled runs, the plain build's suite already ran them
#       test_pipeline, py_test_hand_eval_parity
#                              numerical parity over many crops/frames (2.5 and 4.5 min
#                              under the sanitizers): the same network, pipeline and
#                              evaluation code runs sanitized in test_robustness,
#                              py_test_robustness, py_test_hand_eval and test_eval_*
#       test_detector's 583-crop case
#                              detection rate over the real-world set (2 min sanitized):
#                              the same detector code runs sanitized in test_detector's
#                              parity case and py_test_detector_cli
#       test_prepared's bit-for-bit case
#                              the whole network on every instruction set from both
#                              files: the prepared file's loading runs sanitized in
#                              test_prepared's other cases, the network in the rest
#     and with --quick also
#       test_robustness's "one context shared by 3 threads"
#                              (113 s sanitized on the Zen 1): TSan runs it (section 2),
#                              and the same calls run sanitized one at a time elsewhere
#     Measured 2026-12-02 (.ci/run in a fresh clone, 2-core Intel Xeon, a benchmark running
#     beside it): ASan build and suite 20 min (tests 14 min), TSan 7 min; with
#     tools/run_tests.sh first, .ci/run took 36 min.
#     The CTest fixture (tests/reference/make_testdata.py) is reused from a finished
#     build (HANDGRAPH_FIXTURE_FROM, default build-ci then build) when one exists:
#     its stamp makes the rerun return at once.
#  2. TSan: test_parallel (the kernels' worker pool: loops on several threads, several
#     calling threads with their own pools), test_kernels (each kernel on 2 threads) and
#     test_robustness (one model used from 4 std::threads at once, one context shared,
#     results equal to sequential use), built with -fsanitize=thread (nothing uses OpenMP,
#     whose libgomp TSan does not see into); test_robustness in a second build whose
#     kernel translation units are not instrumented (why: the TSan section below), and
#     without --quick also in the instrumented one.
# Exit status: non-zero when a build or a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh --tests
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
build="${1:-build-asan}"
jobs="$(nproc)"
t0=$(date +%s)

san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
# The SIMD kernels (the kernels_<isa>.cpp tables cmake/runtime.cmake generates) keep their
# register tiles in local arrays that lambdas capture: ASan's stack instrumentation puts
# every accumulator in memory behind a shadow check (inference 24 s instead of 0.4 s, 5x
# the compile time). There, and only there, stack instrumentation is off
# (HANDGRAPH_KERNEL_COMPILE_OPTIONS=--param=asan-stack=0, CMakeLists.txt); their heap and
# global accesses (activations, weights) stay checked, as does every other file.
# In the same files UBSan's per-access checks are off too (pointer-overflow, alignment,
# bounds, object-size, null, signed-integer-overflow): the kernels' inner loops are pointer
# arithmetic on SIMD loads, and the checks together cost more than ASan itself. Measured
# (hand_demo on one crop, 1 thread, ASan+UBSan build, Zen 1, 2026-12-03): 5.0-5.4 s as
# before, 1.81 s without these six, 3.66 s without pointer-overflow and alignment only, and
# 4.9-5.2 s without null or signed-integer-overflow alone. UBSan's other checks (shifts,
# division, float casts, bool and enum values, unreachable, return, vla-bound) stay on
# there, and every check stays on in every other file.
kernel_opts="--param=asan-stack=0;-fno-sanitize=pointer-overflow,alignment,bounds,object-size,null,signed-integer-overflow"
mkdir -p "$build"
build_abs="$(cd "$build" && pwd)"
cat > "$build_abs/sanitize_stb.cmake" <<'CMAKE'
# Debian's stb_image 2.27 shifts by 32 in its JPEG bit reader on damaged data (fixed in
# 2.28; harmless on x86, the file is refused): shift checks are off in stb's TU only
# (tests/fuzz/build.sh). GCC 12 ignores -fno-sanitize=shift-exponent after
# -fsanitize=undefined -fno-sanitize-recover=all; -fno-sanitize=shift takes effect.
set_source_files_properties(${CMAKE_SOURCE_DIR}/tools/runtime/stb_impl.cpp PROPERTIES COMPILE_FLAGS "-fno-sanitize=shift")
CMAKE
# RelWithDebInfo at -O2 with line tables only (-g1: enough for the reports' file:line)
# and without NDEBUG (asserts stay on).
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1" \
  -DCMAKE_CXX_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="$san" -DCMAKE_MODULE_LINKER_FLAGS="$san" \
  -DCMAKE_PROJECT_INCLUDE="$build_abs/sanitize_stb.cmake" \
  -DHANDGRAPH_KERNEL_COMPILE_OPTIONS="$kernel_opts" -DHANDGRAPH_TEST_TIMEOUT=1500 \
  -DHANDGRAPH_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j "$jobs"

for from in ${HANDGRAPH_FIXTURE_FROM:-build-ci build}; do
  if [ ! -e "$build/tests/testdata/stamp" ] && [ -f "$from/tests/testdata/stamp" ]; then
    rm -rf "$build/tests/testdata"
    cp -al "$from/tests/testdata" "$build/tests/testdata" 2>/dev/null || cp -a "$from/tests/testdata" "$build/tests/testdata"
    echo "run_sanitizers: fixture reused from $from/tests/testdata"
    break
  fi
done

# detect_leaks: leaks fail the test; halt_on_error: the first report ends the process.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Sanitized binaries run several times slower: the robustness test's hang limit follows.
export HANDGRAPH_ROBUSTNESS_TIMEOUT=900 HANDGRAPH_ROBUSTNESS_QUICK=1
# CTest names: "test_<header>: <test case>", "py_test_<name>: <Class>[.<method>]".
junit="$build_abs/ctest-junit.xml"
rm -f "$junit"
rc=0
exclude='^(install_consumer|(py_test_convert|py_test_hand_graph|py_test_reference|test_pipeline|py_test_hand_eval_parity)(: .*)?|test_detector: palm detector on the 583 real-world crops.*|test_prepared: a prepared file gives the converted file.s results bit for bit.*)$'
include='.'
if [ "$quick" -eq 1 ]; then
  include='^(test_[a-z_]+: .*|py_test_(robustness|photo_cli|detector_cli)(: .*)?|py_test_python_module: (Api|Detector))$'
  exclude="${exclude%)\$}|test_robustness: one context shared by 3 threads.*)\$"
fi
(cd "$build" && ctest --output-on-failure -j "$jobs" --output-junit "$junit" \
  --test-output-size-passed 1048576 -R "$include" -E "$exclude") || rc=$?
python3 tools/ctest_summary.py "$junit" --label run_sanitizers
[ "$rc" -eq 0 ] || exit "$rc"
t1=$(date +%s)
echo "run_sanitizers: ASan+UBSan $([ "$quick" -eq 1 ] && echo "quick set" || echo suite) passed in $((t1 - t0)) s"

# ThreadSanitizer, two small builds. Instrumented everywhere: test_parallel (the worker
# pool) and test_kernels (every kernel on 1 and 2 threads: races inside a kernel, e.g. two
# loop slots sharing scratch or writing the same output). With the kernel translation
# units uninstrumented (HANDGRAPH_KERNEL_COMPILE_OPTIONS=-fno-sanitize=thread: their loads
# and stores are invisible to TSan, their loops still synchronise through the pool, which
# is instrumented): test_robustness, whole networks shared between threads, where
# instrumented kernels made two of its cases take 520 s on a Zen 1 and uninstrumented ones
# all six 61 s (2026-12-02). Without --quick, test_robustness also runs fully instrumented.
tsan="$build-tsan"
tsan_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer"
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DHANDGRAPH_BUILD_BENCHMARKS=OFF -DHANDGRAPH_BUILD_EXAMPLES=OFF)
cmake -S . -B "$tsan" "${tsan_flags[@]}" >/dev/null
if [ "$quick" -eq 1 ]; then
  cmake --build "$tsan" -j "$jobs" --target test_parallel test_kernels
else
  cmake --build "$tsan" -j "$jobs" --target test_parallel test_kernels test_robustness
fi
cmake -S . -B "$tsan-net" "${tsan_flags[@]}" -DHANDGRAPH_KERNEL_COMPILE_OPTIONS=-fno-sanitize=thread >/dev/null
cmake --build "$tsan-net" -j "$jobs" --target test_robustness
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
# Each executable runs all of its test cases here: exit 77 means every one was skipped.
tsan_run() {
  local rc=0
  "$@" || rc=$?
  if [ "$rc" -eq 77 ]; then
    echo "run_sanitizers: $1: every test case SKIPPED (reasons above)"
  elif [ "$rc" -ne 0 ]; then
    exit "$rc"
  fi
}
tsan_run "$tsan/tests/test_parallel"
tsan_run "$tsan/tests/test_kernels"
HANDGRAPH_TESTDATA="$(cd "$build/tests/testdata" && pwd)"
export HANDGRAPH_TESTDATA HANDGRAPH_SOURCE_DIR="$PWD"
HANDGRAPH_BINARY_DIR="$(cd "$tsan-net" && pwd)" tsan_run "$tsan-net/tests/test_robustness"
if [ "$quick" -eq 0 ]; then
  HANDGRAPH_BINARY_DIR="$(cd "$tsan" && pwd)" tsan_run "$tsan/tests/test_robustness"
fi
t2=$(date +%s)
echo "run_sanitizers: ThreadSanitizer concurrency tests passed in $((t2 - t1)) s (total $((t2 - t0)) s)"

#!/usr/bin/env bash
# Runs each libFuzzer target of tests/fuzz for a fixed time and prints, per target, the
# executions, the corpus size and the findings (crashes, sanitizer reports, leaks,
# timeouts, out-of-memory: libFuzzer stops a target at its first one). Inputs slower than
# 10 s (libFuzzer's slow-unit-* files) are counted apart: not failures, worth a look.
# Usage: bash tests/fuzz/run_fuzz.sh [seconds-per-target] [target ...]
#   default 60 s; targets: safetensors mat obj image (default: all four)
# Builds with tests/fuzz/build.sh (clang 14, -fsanitize=fuzzer,address,undefined) into
# $HANDGRAPH_FUZZ_DIR (default build-fuzz); seeds come from tests/fuzz/make_seeds.py, the
# growing corpus stays in build-fuzz/corpus/<target>, findings go to build-fuzz/findings/<target>
# (reproduce one with: build-fuzz/fuzz_<target> FILE). Exit status 1 when anything was found.
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors mat obj image)
dir="${HANDGRAPH_FUZZ_DIR:-$src/build-fuzz}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
bash "$src/tests/fuzz/build.sh" "$dir" >/dev/null
python="${HANDGRAPH_PYTHON:-/usr/bin/python3}"
rm -rf "$dir/seeds"
"$python" "$src/tests/fuzz/make_seeds.py" --out "$dir/seeds" >/dev/null

status=0
printf '%-12s %8s %12s %10s %8s %6s  %s\n' target seconds executions exec/s corpus slow findings
for t in "${targets[@]}"; do
  bin="$dir/fuzz_$t"
  [ -x "$bin" ] || { echo "no fuzz target '$t' (have: safetensors mat obj image)" >&2; exit 2; }
  corpus="$dir/corpus/$t" findings="$dir/findings/$t" log="$dir/fuzz_$t.log"
  mkdir -p "$corpus" "$findings"
  rm -f "$findings"/*
  # -timeout: one input running longer is a hang (a finding); -rss_limit_mb: a finding too.
  # The targets bound their own allocations (pixel budget, max_bytes) well below it.
  set +e
  "$bin" "$corpus" "$dir/seeds/$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$findings/" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  files=$(find "$corpus" -type f | wc -l)
  found=$(find "$findings" -type f ! -name 'slow-unit-*' | wc -l)
  slow=$(find "$findings" -type f -name 'slow-unit-*' | wc -l)
  what="none"
  if [ "$found" -gt 0 ] || [ "$rc" -ne 0 ]; then
    status=1
    what="$found file(s) in $findings (exit $rc): $(grep -m1 -E 'ERROR: |runtime error|SUMMARY' "$log" || echo "see $log")"
  fi
  printf '%-12s %8s %12s %10s %8s %6s  %s\n' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "$files" "$slow" "$what"
done
exit $status

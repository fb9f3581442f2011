#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with Debian's clang 14:
#   -fsanitize=fuzzer,address,undefined, UBSan reports fatal (a finding, not a warning).
# Usage: bash tests/fuzz/build.sh [build-dir]      (default: build-fuzz)
# Installs clang-14 and libclang-rt-14-dev with apt-get when they are missing.
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$src/build-fuzz}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

pkgs=(clang-14 libclang-rt-14-dev libeigen3-dev libstb-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

CXX="${CXX_FUZZ:-clang++-14}"
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -I"$src/include" -I/usr/include/stb -I/usr/include/eigen3)
# The stb implementation (decoders, zlib) is instrumented too: it is part of what we fuzz.
# One check is off there, and only there: shift-exponent. Debian 12's stb_image 2.27 shifts
# a 32-bit code buffer by 32 in its JPEG bit reader on damaged entropy data (stb_image.h
# line 2065; 2.28 added the missing bit-count checks); x86 masks the count, stb then
# refuses the file, and ASan sees no bad access (the reproducer is a test case:
# tests/data/stb227_shift32.jpg in test_robustness.py). Everything else stays fatal.
obj="$out/stb_impl.o"
if [ ! -f "$obj" ] || [ "$src/tools/runtime/stb_impl.cpp" -nt "$obj" ] || [ "$0" -nt "$obj" ]; then
  "$CXX" "${flags[@]/-fsanitize=fuzzer,address,undefined/-fsanitize=fuzzer-no-link,address,undefined}" \
    -fno-sanitize=shift-exponent -c "$src/tools/runtime/stb_impl.cpp" -o "$obj"
fi
for target in fuzz_safetensors fuzz_mat fuzz_obj fuzz_image; do
  bin="$out/$target"
  if [ -f "$bin" ] && [ "$bin" -nt "$src/tests/fuzz/$target.cpp" ] && [ "$bin" -nt "$0" ] &&
     [ -z "$(find "$src/include/handgraph" -newer "$bin" -name '*.hpp' -print -quit)" ]; then
    continue
  fi
  echo "building $target" >&2
  "$CXX" "${flags[@]}" "$src/tests/fuzz/$target.cpp" "$obj" -o "$bin"
done
echo "$out"

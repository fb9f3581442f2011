#!/usr/bin/env bash
# Install what handgraph needs from Debian's packages (only what is missing).
# Used by tools/run_demo.sh and tools/run_tests.sh; safe to run again.
set -euo pipefail
pkgs=(g++ cmake make libeigen3-dev libxsimd-dev doctest-dev libstb-dev)
if [ "${1:-}" = "--tests" ]; then
  pkgs+=(python3-torch python3-numpy python3-scipy python3-opencv pybind11-dev python3-dev ffmpeg)
fi
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

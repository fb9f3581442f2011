#!/usr/bin/env bash
# The main job: build and run hand_demo. With no arguments it runs on the embedded
# default (a generated crop and a deterministic random-weight model of the real
# shapes), writing demo outputs to out/demo/. Arguments are passed to hand_demo
# (see `hand_demo --help`), e.g. --weights weights/stb.safetensors --image crop.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target hand_demo
if [ $# -eq 0 ]; then
  mkdir -p out/demo
  exec build/examples/hand_demo --json out/demo/demo.json --obj out/demo/demo.obj
fi
exec build/examples/hand_demo "$@"

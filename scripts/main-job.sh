#!/usr/bin/env bash
# The main job on the embedded default dataset (Fashion-MNIST from the Debian package
# dataset-fashion-mnist): set-up, build, convert to .apd, and describe the result.
# Output goes to out/ (override with APD_OUT=DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" >/dev/null
out=${APD_OUT:-out}
mkdir -p "$out"
if [ -x build/apd-convert ]; then
  build/apd-convert --input fashion-mnist --split train --method quantize --quantizer median-cut \
    --colors 16 -o "$out/fashion-mnist-k16.apd" --force
  build/apd-info "$out/fashion-mnist-k16.apd"
  # A look at the result: one row per class, 10 images each.
  build/apd-export "$out/fashion-mnist-k16.apd" --sheet "$out/fashion-mnist-k16-sheet.png" --per-class 10
else
  echo "main-job: apd-convert is not built yet" >&2
  exit 1
fi

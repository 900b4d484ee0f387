#!/usr/bin/env bash
# The main job on the embedded default dataset (Fashion-MNIST from the Debian package
# dataset-fashion-mnist): set-up, build, distil Fashion-MNIST with AutoPalette at a CPU-sized
# schedule, describe the file, draw a contact sheet, and measure what the stored images are
# worth (apd-eval on the real test set). Output goes to out/ (override with APD_OUT=DIR).
#
# Setting: IPC 10 at K = 16 grey levels under the bits budget (19 images per class, 408 bytes
# each, within the 7840 bytes of 10 full images per class); 200 DM iterations with real
# batches of 32 (reference: 20000 x 256); AutoPalette's default: per-image palettes refitted
# at every iteration with the DM loss on the stored images, the image step scaled to the
# image count, the class-aware term (a ConvNet trained for 300 SGD steps before the loop),
# random real init (docs/distill.md; the published palette network is
# --palette network). apd-eval: 1 ConvNetD3 trained 30 epochs with DSA (reference: 1000
# epochs x 5). A few minutes on 2 idle cores (overrides: APD_ITERS, APD_EVAL_EPOCHS,
# APD_EVAL_RUNS).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" >/dev/null
out=${APD_OUT:-out}
mkdir -p "$out"
if [ ! -x build/apd-convert ]; then
  echo "main-job: apd-convert is not built" >&2
  exit 1
fi
f="$out/fashion-mnist-autopalette-ipc10-k16.apd"
t0=$(date +%s)
build/apd-convert --input fashion-mnist --split train --method autopalette --ipc 10 --colors 16 \
  --budget bits --iters "${APD_ITERS:-200}" --batch-real 32 \
  --threads 2 --seed 0 -o "$f" --force
build/apd-info "$f"
# A look at the result: one row per class.
build/apd-export "$f" --sheet "$out/fashion-mnist-autopalette-ipc10-k16-sheet.png" --per-class 19
build/apd-eval "$f" --test fashion-mnist --epochs "${APD_EVAL_EPOCHS:-30}" --runs "${APD_EVAL_RUNS:-1}" --threads 2
echo "main-job: distillation + evaluation took $(( $(date +%s) - t0 )) s"

#!/usr/bin/env bash
# bench/distill/bf16_accuracy.sh: does the bf16 real-image forward change what DM distils?
# The same DM run (CIFAR-10, IPC 10, seed 0) with the conv GEMMs in float32 (APD_NN_BF16=0)
# and with the bf16 real-image forward, each file evaluated by apd-eval (fresh ConvNetD3s,
# mean +- std over RUNS networks). Shorter than the published schedule so that it fits a
# shared 2-core machine; the schedule is printed with the results.
#
#   bench/distill/bf16_accuracy.sh CIFAR_DIR [OUT_DIR]
#   Environment: APD_BIN (build), ITERS (60), BATCH_REAL (64), EPOCHS (100), RUNS (3), THREADS (2)
set -euo pipefail
CIFAR=${1:?usage: bf16_accuracy.sh CIFAR_DIR [OUT_DIR]}
OUT=${2:-bf16-accuracy}
BIN=${APD_BIN:-build}
ITERS=${ITERS:-60}
BATCH_REAL=${BATCH_REAL:-64}
EPOCHS=${EPOCHS:-100}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
mkdir -p "$OUT"
echo "schedule: DM IPC 10, iters $ITERS, batch-real $BATCH_REAL, seed 0; apd-eval epochs $EPOCHS, runs $RUNS"
for mode in fp32 bf16; do
  if [ "$mode" = fp32 ]; then export APD_NN_BF16=0; else unset APD_NN_BF16; fi
  t0=$(date +%s)
  "$BIN/apd-convert" --input "cifar10:$CIFAR" --split train --method dm --ipc 10 --colors 64 \
    --iters "$ITERS" --batch-real "$BATCH_REAL" --seed 0 --threads "$THREADS" -o "$OUT/dm-$mode.apd" --force \
    > "$OUT/dm-$mode.log" 2>&1
  t1=$(date +%s)
  unset APD_NN_BF16
  "$BIN/apd-eval" "$OUT/dm-$mode.apd" --test "cifar10:$CIFAR" --epochs "$EPOCHS" --runs "$RUNS" \
    --threads "$THREADS" --json > "$OUT/dm-$mode.eval.json" 2> "$OUT/dm-$mode.eval.log"
  echo "$mode: distill $((t1 - t0)) s; $(grep -o '"accuracy_mean": [0-9.]*, "accuracy_std": [0-9.]*' "$OUT/dm-$mode.eval.json")"
done

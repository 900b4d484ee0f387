#!/usr/bin/env bash
# results/run.sh: the experiments behind results/RESULTS.md (issue 5), at CPU-sized schedules.
#
# Every row: apd-convert writes an .apd (what is stored is what is evaluated), then apd-eval
# trains fresh ConvNetD3s on the decoded file with DSA and tests on the real test set
# (mean +- std over RUNS networks). Results land in $OUT (one .apd, .log and .eval.json per
# row); results/make_md.py turns them into results/RESULTS.md. Rows already evaluated are
# skipped, so the script can be re-run to fill in what a time limit cut off.
#
#   results/run.sh [GROUP...]      GROUP: fmnist10 cifar10 fmnist1 cifar1 remedy remedy-fmnist remedy-cifar
#                                  ablation ablation-cifar folder long-eval long-distill budget-bytes
#                                  ksweep-cifar10 ksweep-cifar1 ksweep-fmnist10 ksweep-fmnist1 ksweep-why
#                                  ksweep-long-eval ksweep-fmnist10-e300 pixel-range pnorm-cifar1 pool-cifar1 folder64
#                                  seeds-fmnist seeds-cifar1 seeds-cifar10 seeds-long loss-anneal
#                                  seeds-e300 herding herding-e300 ce ce-e300 ce-sweep ce-sweep-e300
#                                  (default: all)
#   Several invocations may share one OUT (rows are locked), e.g. one per core.
#
# Environment (defaults = the schedule RESULTS.md states):
#   APD_BIN (build)   OUT (results/out)   ITERS (60)   BATCH_REAL (32)   EPOCHS (30)   RUNS (3)
#   SELECT_EPOCHS (1) SELECT_LIMIT (300)  THREADS (2)
#   DATA: folder of the CIFAR data (not in the repository), needed by the CIFAR and folder groups:
#   CIFAR ($DATA/cifar10-dev: train.bin + test.bin, CIFAR binary layout, or a CIFAR-10 download)
#   FOLDER ($DATA/cifar10-folder: train/<class>/*.jpg, test/<class>/*.jpg)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${APD_BIN:-build}
OUT=${OUT:-results/out}
ITERS=${ITERS:-60}
BATCH_REAL=${BATCH_REAL:-32}
EPOCHS=${EPOCHS:-30}
RUNS=${RUNS:-3}
SELECT_EPOCHS=${SELECT_EPOCHS:-1}
SELECT_LIMIT=${SELECT_LIMIT:-300}
THREADS=${THREADS:-2}
DATA=${DATA:-}
CIFAR=${CIFAR:-${DATA:+$DATA/cifar10-dev}}
FOLDER=${FOLDER:-${DATA:+$DATA/cifar10-folder}}
mkdir -p "$OUT"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600}

# DM options (dm, autopalette) and graph-cut selection options (the graphcut init only):
# apd-convert refuses an option that does not apply to the method
DM="--iters $ITERS --batch-real $BATCH_REAL"
GC="--select-epochs $SELECT_EPOCHS --select-limit $SELECT_LIMIT"
DIST="$DM $GC"

# row NAME INPUT TEST CONVERT-ARGS...
row() {
  local name=$1 input=$2 test=$3; shift 3
  local f="$OUT/$name.apd"
  if [ -s "$OUT/$name.eval.json" ]; then echo "== $name: done"; return; fi
  # several run.sh may work on one OUT in parallel: a row belongs to whoever locks it first
  if ! mkdir "$OUT/$name.lock" 2>/dev/null; then echo "== $name: taken by another run"; return; fi
  trap "rmdir '$OUT/$name.lock' 2>/dev/null; trap - RETURN" RETURN
  echo "== $name: apd-convert $*"
  if ! "$BIN/apd-convert" --input "$input" --split train --threads "$THREADS" --seed "${SEED:-0}" "$@" \
        -o "$f" --force > "$OUT/$name.log" 2>&1; then
    echo "   convert failed (see $OUT/$name.log)"; return; fi
  "$BIN/apd-eval" "$f" --test "$test" --epochs "$EPOCHS" --runs "$RUNS" --threads "$THREADS" --json \
    > "$OUT/$name.eval.json.tmp" 2> "$OUT/$name.eval.log" && mv "$OUT/$name.eval.json.tmp" "$OUT/$name.eval.json" \
    || echo "   eval failed (see $OUT/$name.eval.log)"
  echo "   $(grep -o '"accuracy_mean": [0-9.]*, "accuracy_std": [0-9.]*' "$OUT/$name.eval.json" 2>/dev/null)"
}

# headline rows for one dataset and IPC: random real, median-cut random real (bits budget),
# DM, DM + AutoPalette (graph-cut init, bits budget), DM + median cut (bits budget)
headline() {
  local tag=$1 input=$2 test=$3 ipc=$4 k=$5
  row "$tag-ipc$ipc-random" "$input" "$test" --method random --ipc "$ipc" --colors "$k"
  row "$tag-ipc$ipc-mc-random" "$input" "$test" --method random --ipc "$ipc" --colors "$k" --budget bits --quantizer median-cut
  row "$tag-ipc$ipc-dm" "$input" "$test" --method dm --ipc "$ipc" --colors "$k" $DM
  row "$tag-ipc$ipc-autopalette" "$input" "$test" --method autopalette --palette network --ipc "$ipc" --colors "$k" --budget bits --init graphcut $DIST
  # attribution: DM on as many images as the budget gives palette images, then median cut
  row "$tag-ipc$ipc-dm-mc" "$input" "$test" --method dm --ipc "$ipc" --colors "$k" --budget bits --quantizer median-cut $DM
}

# ablation rows at IPC 10 with 10 images per class (budget images)
ablation() {
  local tag=$1 input=$2 k=$3
  ab() { row "$tag-ab-$1" "$input" "$input" --ipc 10 --colors "$k" --budget images $DM "${@:2}"; }
  ab ap --method autopalette --palette network --init graphcut $GC
  ab no-lm --method autopalette --palette network --init graphcut --w-max 0 $GC
  ab no-lb --method autopalette --palette network --init graphcut --w-balance 0 $GC
  ab no-la --method autopalette --palette network --init graphcut --w-align 0 $GC
  ab init-random --method autopalette --palette network --init random
  ab dm-median-cut --method dm --quantizer median-cut
  ab dm-octree --method dm --quantizer octree
}

# erow NAME TEST: the file of row NAME (already written) evaluated with 300 epochs into
# NAME-e300.eval.json
erow() {
  local f="$OUT/$1.apd" e="$OUT/$1-e300.eval.json"
  if [ -s "$e" ]; then echo "== $1 (300 epochs): done"; return; fi
  if [ ! -s "$f" ]; then echo "== $1: $f missing (run its seeds group first)"; return; fi
  if ! mkdir "$OUT/$1-e300.lock" 2>/dev/null; then echo "== $1 (300 epochs): taken by another run"; return; fi
  echo "== $1: apd-eval --epochs 300"
  "$BIN/apd-eval" "$f" --test "$2" --epochs 300 --runs "$RUNS" --threads "$THREADS" --json \
    > "$e.tmp" 2> "$OUT/$1-e300.eval.log" && mv "$e.tmp" "$e" || echo "   eval failed (see $OUT/$1-e300.eval.log)"
  rmdir "$OUT/$1-e300.lock"
  echo "   $(grep -o '"accuracy_mean": [0-9.]*, "accuracy_std": [0-9.]*' "$e" 2>/dev/null)"
}

groups=${*:-"cifar10 fmnist10 cifar1 fmnist1 remedy remedy-fmnist remedy-cifar ablation-cifar ablation folder long-eval long-distill budget-bytes ksweep-cifar10 ksweep-why ksweep-cifar1 ksweep-fmnist10 ksweep-fmnist1 ksweep-long-eval ksweep-fmnist10-e300 pixel-range pnorm-cifar1 pool-cifar1 folder64 seeds-fmnist seeds-cifar1 seeds-cifar10 seeds-long loss-anneal seeds-e300 herding herding-e300 ce ce-e300 ce-sweep ce-sweep-e300"}
# need VAR DIR GROUP: stop before any work if a group's data folder is missing
need() {
  if [ -z "$2" ] || [ ! -d "$2" ]; then
    echo "results/run.sh: group $3 needs $1 (='$2'); set DATA=DIR (DIR/cifar10-dev, DIR/cifar10-folder) or $1=DIR" >&2
    exit 2
  fi
}
for g in $groups; do
  case $g in
    cifar10|cifar1|remedy-cifar|ablation-cifar|long-eval|long-distill|budget-bytes|ksweep-cifar*|ksweep-why|ksweep-long-eval|pixel-range|pnorm-cifar1|pool-cifar1|seeds-cifar1|seeds-cifar10|seeds-long|loss-anneal|seeds-e300|herding|herding-e300|ce|ce-e300|ce-sweep|ce-sweep-e300) need CIFAR "$CIFAR" "$g" ;;
    folder|folder64) need FOLDER "$FOLDER" "$g" ;;
  esac
done
for g in $groups; do
  case $g in
    fmnist10) headline fmnist fashion-mnist fashion-mnist 10 16 ;;
    fmnist1) headline fmnist fashion-mnist fashion-mnist 1 16 ;;
    cifar10) headline cifar "cifar10:$CIFAR" "cifar10:$CIFAR" 10 64 ;;
    cifar1) headline cifar "cifar10:$CIFAR" "cifar10:$CIFAR" 1 64 ;;
    remedy)
      # AutoPalette as published (no remedy) vs the default remedy: what is stored and how it trains
      row fmnist-ipc10-ap-remedy-none fashion-mnist fashion-mnist --method autopalette --palette network --ipc 10 --colors 16 \
        --budget bits --init graphcut --palette-remedy none $DIST ;;
    remedy-fmnist)
      # the remedy table: Fashion-MNIST IPC 10 (bits budget, 19 images per class), K 16, random
      # init, 25 iterations with real batches of 16; one log per remedy in results/remedy/
      rf() {
        local name=$1; shift
        if [ -s "results/remedy/$name.log" ]; then echo "== remedy $name: done"; return; fi
        echo "== remedy $name: --palette-remedy $*"
        "$BIN/apd-convert" --input fashion-mnist --split train --threads "$THREADS" --seed 0 --method autopalette --palette network \
          --ipc 10 --colors 16 --budget bits --init random --iters 25 --batch-real 16 --log-every 1 \
          --palette-remedy "$@" -o "$OUT/fmnist-remedy-$name.apd" --force > "results/remedy/$name.log.tmp" 2>&1 \
          && mv "results/remedy/$name.log.tmp" "results/remedy/$name.log"
      }
      rf 01-none-as-published none
      rf 02-warmup-20 warmup --warmup-steps 20
      rf 03-straight-through straight-through
      rf 04-temperature-10-to-1 temperature --temp-start 10 --temp-end 1
      rf 05-task-scale-1e-2 task-scale --task-scale 1e-2
      rf 06-task-scale-1e-3 task-scale --task-scale 1e-3
      rf 07-task-scale-1e-4 task-scale --task-scale 1e-4
      rf 08-task-scale-0 task-scale --task-scale 0
      rf 09-warmup-20+task-scale-1e-3 warmup+task-scale --warmup-steps 20 --task-scale 1e-3
      rf 10-warmup-20+task-scale-1e-4 warmup+task-scale --warmup-steps 20 --task-scale 1e-4
      rf 11-warmup-50+task-scale-1e-3 warmup+task-scale --warmup-steps 50 --task-scale 1e-3
      rf 12-kmeans-init kmeans-init
      rf 13-kmeans-init+task-scale-1e-3-DEFAULT kmeans-init+task-scale --task-scale 1e-3 ;;
    remedy-cifar)
      # the collapse remedies on CIFAR at K 64 (headline setting; the default is cifar-ipc10-autopalette)
      rc() { row "cifar-ipc10-rem-$1" "cifar10:$CIFAR" "cifar10:$CIFAR" --method autopalette --palette network --ipc 10 --colors 64 \
               --budget bits --init graphcut $DIST --palette-remedy "$2" "${@:3}"; }
      rc none none
      rc warmup-task-scale warmup+task-scale
      rc kmeans-init kmeans-init
      rc kmeans-init-task-scale-1e-1 kmeans-init+task-scale --task-scale 1e-1
      rc kmeans-init-task-scale-1e-2 kmeans-init+task-scale --task-scale 1e-2
      rc kmeans-init-warmup-task-scale kmeans-init+warmup+task-scale ;;
    long-eval)
      # the IPC 10 rows again with a 10x longer evaluation (300 epochs): at 30 epochs and batch
      # 256 a network trained on <= 256 images takes only 31 SGD steps, whatever their number
      le() { ( EPOCHS=300; RUNS=$1; shift; row "$@" ); }
      le 3 fmnist-ipc10-dm-e300 fashion-mnist fashion-mnist --method dm --ipc 10 --colors 16 $DM
      le 3 fmnist-ipc10-autopalette-e300 fashion-mnist fashion-mnist --method autopalette --palette network --ipc 10 --colors 16 \
        --budget bits --init graphcut $DIST
      le 3 fmnist-ipc10-mc-random-e300 fashion-mnist fashion-mnist --method random --ipc 10 --colors 16 \
        --budget bits --quantizer median-cut
      le 2 cifar-ipc10-dm-e300 "cifar10:$CIFAR" "cifar10:$CIFAR" --method dm --ipc 10 --colors 64 $DM
      le 2 cifar-ipc10-autopalette-e300 "cifar10:$CIFAR" "cifar10:$CIFAR" --method autopalette --palette network --ipc 10 --colors 64 \
        --budget bits --init graphcut $DIST ;;
    long-distill)
      # CIFAR IPC 10 with 5x the DM iterations (300): does the gap over DM hold?
      LD="--iters 300 --batch-real $BATCH_REAL"
      row cifar-ipc10-dm-i300 "cifar10:$CIFAR" "cifar10:$CIFAR" --method dm --ipc 10 --colors 64 $LD
      row cifar-ipc10-autopalette-i300 "cifar10:$CIFAR" "cifar10:$CIFAR" --method autopalette --palette network --ipc 10 --colors 64 \
        --budget bits --init graphcut $LD $GC
      row cifar-ipc10-dm-mc-i300 "cifar10:$CIFAR" "cifar10:$CIFAR" --method dm --ipc 10 --colors 64 --budget bits \
        --quantizer median-cut $LD ;;
    budget-bytes)
      # --budget bytes against --budget bits at the same budget (IPC 10), K and DM schedule: DM,
      # then median cut; bytes counts the records as stored (format 1.1 coded index maps)
      for k in 64 16; do
        for rule in bits bytes; do
          row "cifar-ipc10-dm-mc-k$k-$rule" "cifar10:$CIFAR" "cifar10:$CIFAR" --method dm --ipc 10 --colors $k \
            --budget $rule --quantizer median-cut $DM
          # what the file really stores (records, index model), for the table
          f="$OUT/cifar-ipc10-dm-mc-k$k-$rule"
          [ -s "$f.apd" ] && [ ! -s "$f.info.json" ] && "$BIN/apd-info" --json "$f.apd" > "$f.info.json"
        done
      done ;;
    ksweep-cifar10|ksweep-cifar1|ksweep-fmnist10|ksweep-fmnist1)
      # the K sweep at equal storage (bits budget, same DM schedule): DM on as many images as
      # the budget gives, then median cut; AutoPalette with the palette network (published +
      # the collapse remedy); AutoPalette with per-image palettes and the loss on the stored
      # images (--palette stored). DM full colour is the headline row of the same IPC.
      case $g in
        ksweep-cifar*) ds=cifar; in="cifar10:$CIFAR"; ks="4 8 16 64" ;;
        *) ds=fmnist; in=fashion-mnist; ks="2 4 16" ;;
      esac
      ipc=${g##*[a-z]}
      for k in $ks; do
        row "$ds-ipc$ipc-k$k-dm-mc" "$in" "$in" --method dm --ipc "$ipc" --colors "$k" --budget bits \
          --quantizer median-cut $DM
        row "$ds-ipc$ipc-k$k-ap-stored" "$in" "$in" --method autopalette --ipc "$ipc" --colors "$k" \
          --budget bits $DM
        # the previous default: the loss sees a pixel beyond the 8-bit range at its clipped value
        row "$ds-ipc$ipc-k$k-ap-stored-lr-stored" "$in" "$in" --method autopalette --ipc "$ipc" --colors "$k" \
          --budget bits --loss-range stored $DM
        row "$ds-ipc$ipc-k$k-ap-net" "$in" "$in" --method autopalette --palette network --ipc "$ipc" \
          --colors "$k" --budget bits --init graphcut $DIST
      done ;;
    ksweep-why)
      # CIFAR IPC 10: where the gain of stored palettes comes from. The image step scaled to
      # the image count without the loss on the stored images (DM, then median cut), and the
      # loss on the stored images without the scaled step; then the best K with 200 iterations.
      in="cifar10:$CIFAR"
      row cifar-ipc10-k4-dm-mc-lr-count "$in" "$in" --method dm --ipc 10 --colors 4 --budget bits \
        --quantizer median-cut --lr-img-rule count $DM
      row cifar-ipc10-k8-ap-stored-lr-fixed "$in" "$in" --method autopalette --ipc 10 --colors 8 --budget bits \
        --loss-range stored \
        --lr-img-rule fixed $DM
      LD="--iters 200 --batch-real $BATCH_REAL"
      row cifar-ipc10-k4-dm-mc-i200 "$in" "$in" --method dm --ipc 10 --colors 4 --budget bits --quantizer median-cut $LD
      row cifar-ipc10-k4-ap-stored-i200 "$in" "$in" --method autopalette --ipc 10 --colors 4 --budget bits $LD
      row cifar-ipc10-k4-ap-stored-lr-stored-i200 "$in" "$in" --method autopalette --ipc 10 --colors 4 --budget bits \
        --loss-range stored $LD ;;
    pixel-range)
      # stored palettes with the pixels projected onto the 8-bit range after each step
      # (--pixel-range clamp) against the sweep's rows (free), at IPC 1
      for k in 2 4 16; do
        row "fmnist-ipc1-k$k-ap-stored-clamp" fashion-mnist fashion-mnist --method autopalette --ipc 1 --colors "$k" \
          --budget bits --pixel-range clamp $DM
      done
      row fmnist-ipc1-k2-ap-stored-lr-fixed fashion-mnist fashion-mnist --method autopalette --ipc 1 --colors 2 \
        --loss-range stored \
        --budget bits --lr-img-rule fixed $DM
      for k in 4 8 16 64; do
        row "cifar-ipc1-k$k-ap-stored-clamp" "cifar10:$CIFAR" "cifar10:$CIFAR" --method autopalette --ipc 1 \
          --colors "$k" --budget bits --pixel-range clamp $DM
      done ;;
    ksweep-long-eval)
      # the best K of the CIFAR IPC 10 sweep (K 4, 200 DM iterations: the ksweep-why files)
      # with 300 evaluation epochs
      in="cifar10:$CIFAR"
      LD="--iters 200 --batch-real $BATCH_REAL"
      ( EPOCHS=300; row cifar-ipc10-k4-ap-stored-i200-e300 "$in" "$in" --method autopalette --ipc 10 --colors 4 \
          --budget bits $LD )
      ( EPOCHS=300; row cifar-ipc10-k4-ap-stored-lr-stored-i200-e300 "$in" "$in" --method autopalette --ipc 10 \
          --colors 4 --budget bits --loss-range stored $LD )
      ( EPOCHS=300; row cifar-ipc10-k4-dm-mc-i200-e300 "$in" "$in" --method dm --ipc 10 --colors 4 --budget bits \
          --quantizer median-cut $LD )
      # DM in full colour, same schedule
      ( EPOCHS=300; row cifar-ipc10-dm-i200-e300 "$in" "$in" --method dm --ipc 10 --colors 64 $LD ) ;;
    ksweep-fmnist10-e300)
      # the best K of the Fashion-MNIST IPC 10 sweep (K 2 and K 4, the sweep's files: seed 0,
      # 60 iterations) with 300 evaluation epochs, every method of the sweep, and DM in full
      # colour on the same schedule
      for k in 2 4; do
        ( EPOCHS=300; row "fmnist-ipc10-k$k-dm-mc-e300" fashion-mnist fashion-mnist --method dm --ipc 10 --colors "$k" \
            --budget bits --quantizer median-cut $DM )
        ( EPOCHS=300; row "fmnist-ipc10-k$k-ap-stored-e300" fashion-mnist fashion-mnist --method autopalette --ipc 10 \
            --colors "$k" --budget bits $DM )
        ( EPOCHS=300; row "fmnist-ipc10-k$k-ap-net-e300" fashion-mnist fashion-mnist --method autopalette --palette network \
            --ipc 10 --colors "$k" --budget bits --init graphcut $DIST )
      done
      ( EPOCHS=300; row fmnist-ipc10-dm-e300 fashion-mnist fashion-mnist --method dm --ipc 10 --colors 16 $DM ) ;;
    pnorm-cifar1)
      # the palette network with the per-image normalised input: the ksweep-cifar1 rows
      # cifar-ipc1-k$k-ap-net with --palette-input image-norm added; at K 4 the published
      # palette learning rate destabilises it, so also with a 10x smaller one
      in="cifar10:$CIFAR"
      for k in 4 16 64; do
        row "cifar-ipc1-k$k-ap-net-inorm" "$in" "$in" --method autopalette --palette network --ipc 1 \
          --colors "$k" --budget bits --init graphcut $DIST --palette-input image-norm
      done
      row cifar-ipc1-k4-ap-net-inorm-lrp005 "$in" "$in" --method autopalette --palette network --ipc 1 \
        --colors 4 --budget bits --init graphcut $DIST --palette-input image-norm --lr-palette 0.005 ;;
    pool-cifar1)
      # IDM-style model sampling (--net-pool): the K sweep's CIFAR IPC 1 rows (stored palettes,
      # DM then median cut) with the DM loss on networks drawn from a queue of 5 partly trained
      # ones (a fresh one every 10 iterations, 4 SGD steps of 64 real images per iteration);
      # compare with cifar-ipc1-k{4,8}-ap-stored and -dm-mc
      in="cifar10:$CIFAR"
      POOL="--net-pool 5 --net-pool-every 10 --net-pool-steps 4 --net-pool-batch 64"
      for k in 4 8; do
        row "cifar-ipc1-k$k-ap-stored-pool" "$in" "$in" --method autopalette --ipc 1 --colors "$k" --budget bits \
          --loss-range stored $DM $POOL
        row "cifar-ipc1-k$k-dm-mc-pool" "$in" "$in" --method dm --ipc 1 --colors "$k" --budget bits \
          --quantizer median-cut $DM $POOL
      done ;;
    seeds-fmnist)
      # Fashion-MNIST at IPC 1 over 5 distillation seeds (rows NAME-sSEED): one seed's rows
      # differ by up to 4.7 points, more than the methods do. The K sweep's methods, the
      # previous default (--loss-range stored) and the directions measured against it; IPC 10
      # at K 16 (the sweep's tie) over 3 seeds.
      for s in 0 1 2 3 4; do
        for k in 2 4 16; do
          ( SEED=$s
            row "fmnist-ipc1-k$k-dm-mc-s$s" fashion-mnist fashion-mnist --method dm --ipc 1 --colors "$k" --budget bits \
              --quantizer median-cut $DM
            row "fmnist-ipc1-k$k-ap-stored-s$s" fashion-mnist fashion-mnist --method autopalette --ipc 1 --colors "$k" \
              --budget bits $DM
            row "fmnist-ipc1-k$k-ap-stored-lr-stored-s$s" fashion-mnist fashion-mnist --method autopalette --ipc 1 \
              --colors "$k" --budget bits --loss-range stored $DM
            if [ "$k" != 4 ]; then
              row "fmnist-ipc1-k$k-ap-stored-anneal-s$s" fashion-mnist fashion-mnist --method autopalette --ipc 1 \
                --colors "$k" --budget bits --loss-range stored --anneal 1 $DM
            fi
            if [ "$k" = 2 ]; then
              row "fmnist-ipc1-k2-ap-stored-anneal-fixed-s$s" fashion-mnist fashion-mnist --method autopalette --ipc 1 \
                --colors 2 --budget bits --loss-range stored --anneal 1 --lr-img-rule fixed $DM
            fi
            if [ "$k" = 16 ] && [ "$s" -lt 3 ]; then
              row "fmnist-ipc1-k16-ap-stored-clamp-s$s" fashion-mnist fashion-mnist --method autopalette --ipc 1 \
                --colors 16 --budget bits --pixel-range clamp $DM
            fi )
        done
        if [ "$s" -lt 3 ]; then
          ( SEED=$s
            row "fmnist-ipc10-k16-dm-mc-s$s" fashion-mnist fashion-mnist --method dm --ipc 10 --colors 16 --budget bits \
              --quantizer median-cut $DM
            row "fmnist-ipc10-k16-ap-stored-s$s" fashion-mnist fashion-mnist --method autopalette --ipc 10 --colors 16 \
              --budget bits $DM
            row "fmnist-ipc10-k16-ap-stored-lr-stored-s$s" fashion-mnist fashion-mnist --method autopalette --ipc 10 \
              --colors 16 --budget bits --loss-range stored $DM )
        fi
      done ;;
    seeds-cifar1)
      # CIFAR-10 dev IPC 1 at K 4, 16, 64 over 3 distillation seeds (rows NAME-sSEED)
      in="cifar10:$CIFAR"
      for s in 0 1 2; do
        for k in 4 16 64; do
          ( SEED=$s
            row "cifar-ipc1-k$k-dm-mc-s$s" "$in" "$in" --method dm --ipc 1 --colors "$k" --budget bits \
              --quantizer median-cut $DM
            row "cifar-ipc1-k$k-ap-stored-s$s" "$in" "$in" --method autopalette --ipc 1 --colors "$k" --budget bits $DM
            row "cifar-ipc1-k$k-ap-stored-lr-stored-s$s" "$in" "$in" --method autopalette --ipc 1 --colors "$k" \
              --budget bits --loss-range stored $DM )
        done
      done ;;
    seeds-cifar10)
      # CIFAR-10 dev IPC 10, the K sweep's two contenders over distillation seeds 1 and 2 (seed 0
      # is the sweep's row): DM then median cut, and the default
      in="cifar10:$CIFAR"
      for s in 1 2; do
        for k in 16 64 8 4; do
          ( SEED=$s
            row "cifar-ipc10-k$k-dm-mc-s$s" "$in" "$in" --method dm --ipc 10 --colors "$k" --budget bits \
              --quantizer median-cut $DM
            row "cifar-ipc10-k$k-ap-stored-s$s" "$in" "$in" --method autopalette --ipc 10 --colors "$k" --budget bits $DM )
        done
      done ;;
    seeds-long)
      # the ties of the 60-iteration sweep (Fashion-MNIST IPC 1 K 4 and 16, CIFAR-10 IPC 1 K 64,
      # Fashion-MNIST IPC 10 K 16) and then the rest of the IPC 1 sweep at 200 DM iterations, both
      # contenders on the same schedule, over the same seeds as the 60-iteration rows
      L="--iters 200 --batch-real $BATCH_REAL"
      in="cifar10:$CIFAR"
      lrow() {  # lrow TAG INPUT IPC K SEED
        ( SEED=$5
          row "$1-ipc$3-k$4-dm-mc-i200-s$5" "$2" "$2" --method dm --ipc "$3" --colors "$4" --budget bits \
            --quantizer median-cut $L
          row "$1-ipc$3-k$4-ap-stored-i200-s$5" "$2" "$2" --method autopalette --ipc "$3" --colors "$4" \
            --budget bits $L )
      }
      for s in 0 1 2 3 4; do lrow fmnist fashion-mnist 1 4 $s; lrow fmnist fashion-mnist 1 16 $s; done
      for s in 0 1 2; do lrow cifar "$in" 1 64 $s; done
      for s in 0 1 2; do lrow fmnist fashion-mnist 10 16 $s; done
      for s in 0 1 2 3 4; do lrow fmnist fashion-mnist 1 2 $s; done
      for k in 4 16 8; do for s in 0 1 2; do lrow cifar "$in" 1 $k $s; done; done ;;
    loss-anneal)
      # --loss-range anneal (the loss moves from the float value of a pixel beyond the 8-bit range
      # to its stored value over the run) on the seeds rows, ties of the sweep first
      in="cifar10:$CIFAR"
      arow() {  # arow TAG INPUT IPC K SEED
        ( SEED=$5
          row "$1-ipc$3-k$4-ap-stored-lr-anneal-s$5" "$2" "$2" --method autopalette --ipc "$3" --colors "$4" \
            --budget bits --loss-range anneal $DM )
      }
      for s in 0 1 2 3 4; do arow fmnist fashion-mnist 1 4 $s; arow fmnist fashion-mnist 1 16 $s; done
      for s in 0 1 2; do arow cifar "$in" 1 64 $s; done
      for s in 0 1 2; do arow fmnist fashion-mnist 10 16 $s; done
      for s in 0 1 2 3 4; do arow fmnist fashion-mnist 1 2 $s; done
      for k in 4 16; do for s in 0 1 2; do arow cifar "$in" 1 $k $s; done; done
      for k in 4 8 16 64; do arow cifar "$in" 10 $k 0; done ;;
    herding)
      # --init herding (colour-guided herding: the real subset whose median-cut images have the
      # lowest DM loss over 4 random networks) for stored palettes, on the sweep's IPC 1 ties
      # first, over the seeds rows' seeds; compare with NAME-ap-stored-sSEED and -dm-mc-sSEED
      in="cifar10:$CIFAR"
      hrow() {  # hrow TAG INPUT IPC K SEED
        ( SEED=$5
          row "$1-ipc$3-k$4-ap-stored-herd-s$5" "$2" "$2" --method autopalette --ipc "$3" --colors "$4" \
            --budget bits --init herding $DM )
      }
      for s in 0 1 2 3 4; do hrow fmnist fashion-mnist 1 4 $s; hrow fmnist fashion-mnist 1 16 $s; done
      for s in 0 1 2; do hrow cifar "$in" 1 64 $s; done
      for s in 0 1 2 3 4; do hrow fmnist fashion-mnist 1 2 $s; done
      for k in 4 16; do for s in 0 1 2; do hrow cifar "$in" 1 $k $s; done; done
      for s in 0 1 2; do hrow fmnist fashion-mnist 10 16 $s; done
      for k in 4 8 16 64; do hrow cifar "$in" 10 $k 0; done ;;
    ce)
      # --ce-weight 10 (the class-aware term: a ConvNet trained for 300 SGD steps of 64 real
      # images before the loop; 10 x the cross-entropy of each class's synthetic images under
      # it) for stored palettes, the sweep's IPC 1 ties first, then the rest of the sweep, over
      # the seeds rows' seeds; the weight was chosen from 1, 10, 100 on Fashion-MNIST IPC 1 K 4
      # seeds 0-2. Also "DM with the term, then median cut" on the ties, to see where a win
      # comes from. Compare with NAME-ap-stored-sSEED and -dm-mc-sSEED.
      in="cifar10:$CIFAR"
      crow() {  # crow TAG INPUT IPC K SEED [dm]
        ( SEED=$5
          if [ "${6:-}" = dm ]; then
            row "$1-ipc$3-k$4-dm-mc-ce10-s$5" "$2" "$2" --method dm --ipc "$3" --colors "$4" --budget bits \
              --quantizer median-cut --ce-weight 10 $DM
          else
            row "$1-ipc$3-k$4-ap-stored-ce10-s$5" "$2" "$2" --method autopalette --ipc "$3" --colors "$4" \
              --budget bits --ce-weight 10 $DM
          fi )
      }
      for s in 0 1 2; do crow fmnist fashion-mnist 1 4 $s; crow fmnist fashion-mnist 1 16 $s; crow cifar "$in" 1 64 $s; done
      for s in 3 4; do crow fmnist fashion-mnist 1 4 $s; crow fmnist fashion-mnist 1 16 $s; done
      for s in 0 1 2; do crow fmnist fashion-mnist 1 4 $s dm; crow fmnist fashion-mnist 1 16 $s dm; crow cifar "$in" 1 64 $s dm; done
      for s in 0 1 2 3 4; do crow fmnist fashion-mnist 1 2 $s; done
      for k in 4 16; do for s in 0 1 2; do crow cifar "$in" 1 $k $s; done; done
      for s in 0 1 2; do crow fmnist fashion-mnist 10 16 $s; done
      for k in 4 8 16 64; do crow cifar "$in" 10 $k 0; done ;;
    ce-sweep)
      # --ce-weight 10 over the rest of the K sweep (seed 0, then more seeds at the best K), and
      # the best K's rows evaluated with 300 epochs. cifar-ipc10-k4-dm-mc-s0 and -ap-stored-s0 are
      # the sweep's rows cifar-ipc10-k4-dm-mc and -ap-stored written again (same seed and options,
      # same bytes; --ce-weight 0 is the sweep's default then) for their 300-epoch evaluation;
      # -dm-mc-ce10-s0 is DM with the term, then median cut, to see where a win comes from.
      in="cifar10:$CIFAR"
      crow() {  # crow TAG INPUT IPC K SEED
        ( SEED=$5
          row "$1-ipc$3-k$4-ap-stored-ce10-s$5" "$2" "$2" --method autopalette --ipc "$3" --colors "$4" \
            --budget bits --ce-weight 10 $DM )
      }
      crow cifar "$in" 10 4 0; crow fmnist fashion-mnist 10 4 0
      crow cifar "$in" 10 8 0; crow fmnist fashion-mnist 10 2 0; crow fmnist fashion-mnist 10 16 0
      for k in 4 8 16; do crow cifar "$in" 1 $k 0; done
      ( SEED=0; row cifar-ipc10-k4-dm-mc-s0 "$in" "$in" --method dm --ipc 10 --colors 4 --budget bits \
          --quantizer median-cut $DM
        row cifar-ipc10-k4-dm-mc-ce10-s0 "$in" "$in" --method dm --ipc 10 --colors 4 --budget bits \
          --quantizer median-cut --ce-weight 10 $DM
        row cifar-ipc10-k4-ap-stored-s0 "$in" "$in" --method autopalette --ipc 10 --colors 4 --budget bits \
          --ce-weight 0 $DM )
      for s in 1 2; do crow cifar "$in" 10 4 $s; crow fmnist fashion-mnist 10 4 $s; done
      ( SEED=1; row fmnist-ipc10-k4-dm-mc-s1 fashion-mnist fashion-mnist --method dm --ipc 10 --colors 4 --budget bits \
          --quantizer median-cut $DM )
      for s in 1 2; do crow fmnist fashion-mnist 10 16 $s; done
      for s in 1 2; do for k in 4 8 16; do crow cifar "$in" 1 $k $s; done; done
      for s in 1 2; do crow cifar "$in" 10 8 $s; done ;;
    ce-sweep-e300)
      # the best K's rows of ce-sweep evaluated with 300 epochs (run ce-sweep first); compare
      # with fmnist-ipc10-k4-dm-mc-e300, fmnist-ipc10-k4-ap-stored-e300
      in="cifar10:$CIFAR"
      erow fmnist-ipc10-k4-ap-stored-ce10-s0 fashion-mnist
      erow cifar-ipc10-k4-ap-stored-ce10-s0 "$in"
      erow cifar-ipc10-k4-dm-mc-s0 "$in"
      erow cifar-ipc10-k4-dm-mc-ce10-s0 "$in"
      erow cifar-ipc10-k4-ap-stored-s0 "$in"
      erow cifar-ipc1-k4-ap-stored-ce10-s0 "$in"  # compare with cifar-ipc1-k4-dm-mc-s0-e300 (seeds-e300)
      erow fmnist-ipc10-k4-dm-mc-s1 fashion-mnist
      for s in 1 2; do erow "fmnist-ipc10-k4-ap-stored-ce10-s$s" fashion-mnist; erow "cifar-ipc10-k4-ap-stored-ce10-s$s" "$in"; done ;;
    ce-e300)
      # the ce rows of the sweep's IPC 1 ties evaluated with 300 epochs (run ce first)
      in="cifar10:$CIFAR"
      for s in 0 1 2 3 4; do for k in 4 16; do erow "fmnist-ipc1-k$k-ap-stored-ce10-s$s" fashion-mnist; done; done
      for s in 0 1 2; do erow "cifar-ipc1-k64-ap-stored-ce10-s$s" "$in"; done ;;
    herding-e300)
      # the herding rows of the sweep's IPC 1 ties evaluated with 300 epochs (run herding first);
      # compare with the seeds-e300 rows
      in="cifar10:$CIFAR"
      for k in 4 16; do for s in 0 1 2 3 4; do erow "fmnist-ipc1-k$k-ap-stored-herd-s$s" fashion-mnist; done; done
      for s in 0 1 2; do erow "cifar-ipc1-k64-ap-stored-herd-s$s" "$in"; done
      for s in 0 1 2 3 4; do erow "fmnist-ipc1-k2-ap-stored-herd-s$s" fashion-mnist; done
      for k in 4 16; do for s in 0 1 2; do erow "cifar-ipc1-k$k-ap-stored-herd-s$s" "$in"; done; done ;;
    seeds-e300)
      # the seeds rows of the two contenders evaluated at 300 epochs (item 1's schedule for the
      # rows that decide): the 60-iteration sweep's ties first. Reads $OUT/NAME.apd as written
      # by seeds-fmnist / seeds-cifar1 (run those first); writes NAME-e300.eval.json
      in="cifar10:$CIFAR"
      for k in 4 16; do for s in 0 1 2 3 4; do for m in dm-mc ap-stored; do
        erow "fmnist-ipc1-k$k-$m-s$s" fashion-mnist; done; done; done
      for s in 0 1 2; do for m in dm-mc ap-stored; do erow "cifar-ipc1-k64-$m-s$s" "$in"; done; done
      for s in 0 1 2; do for m in dm-mc ap-stored; do erow "fmnist-ipc10-k16-$m-s$s" fashion-mnist; done; done
      for s in 0 1 2 3 4; do for m in dm-mc ap-stored; do erow "fmnist-ipc1-k2-$m-s$s" fashion-mnist; done; done
      for k in 4 16; do for s in 0 1 2; do for m in dm-mc ap-stored; do erow "cifar-ipc1-k$k-$m-s$s" "$in"; done; done; done ;;
    ablation) ablation fmnist fashion-mnist 16 ;;
    ablation-cifar) ablation cifar "cifar10:$CIFAR" 64 ;;
    folder)
      # an ImageNet-style folder of JPEG files (50 per class): AutoPalette and DM at IPC 10, K 64
      row folder-ipc10-autopalette "folder:$FOLDER" "folder:$FOLDER" --method autopalette --palette network --ipc 10 --colors 64 \
        --budget bits --init graphcut $DIST
      row folder-ipc10-dm "folder:$FOLDER" "folder:$FOLDER" --method dm --ipc 10 --colors 64 $DM
      row folder-ipc10-random "folder:$FOLDER" "folder:$FOLDER" --method random --ipc 10 --colors 64 ;;
    folder64)
      # the same folder at 64 px (the importer resizes with --size 64; the files are 32 px
      # CIFAR JPEGs, so this exercises the 64 px pipeline, ConvNetD4, not 64 px detail): the
      # test split converted once at 64 px and read back as apd:
      t64="$OUT/folder64-test.apd"
      [ -s "$t64" ] || "$BIN/apd-convert" --input "folder:$FOLDER" --split test --size 64 --method direct -o "$t64" --force --quiet
      row folder64-ipc10-ap-stored "folder:$FOLDER" "apd:$t64" --method autopalette --ipc 10 --colors 64 --budget bits \
        --size 64 --loss-range stored $DM
      row folder64-ipc10-dm "folder:$FOLDER" "apd:$t64" --method dm --ipc 10 --colors 64 --size 64 $DM ;;
    *) echo "unknown group $g" >&2; exit 2 ;;
  esac
done
if command -v python3 >/dev/null; then python3 results/make_md.py "$OUT" > results/RESULTS.md.new && mv results/RESULTS.md.new results/RESULTS.md; fi

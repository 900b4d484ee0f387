#!/bin/bash
# bench/distill/mpi_scaling.sh BIN_DIR [DATA_DIR]: class-parallel scaling of one distillation
# iteration, 1 vs 2 MPI processes with 1 thread each (apd-convert under mpirun on this host).
#
# Per-iteration time = (wall(I2 iterations) - wall(I1 iterations)) / (I2 - I1), so import,
# initialisation, the evaluation losses and writing cancel out. The same difference of the
# CPU time (user + sys of all processes, divided by their number) is printed too: on a
# machine shared with other jobs the wall time measures the contention, while the CPU time
# per process is what one iteration costs on a core of its own. Data: CIFAR-10
# (DATA_DIR/cifar10-dev/train.bin, the layout of APD_EXTRA_DATA), else Debian's Fashion-MNIST.
# Settings as bench_distill: batch-real 256, IPC 10 (DM: 10 images a class; AutoPalette at
# K 64: 40), random init (the graph-cut selection is not part of an iteration).
#   MODES="dm autopalette" I1=1 I2=4 NP="1 2" bash bench/distill/mpi_scaling.sh build /work/shared/data
# Prints one line per (mode, processes) and the speed-up; also checks that the 2-process file
# equals the 1-process one (cmp).
set -u
B=$(cd "${1:?bin dir}" && pwd)
DATA=${2:-}
MODES=${MODES:-"dm autopalette"}
I1=${I1:-1}
I2=${I2:-4}
NP=${NP:-"1 2"}
export SOURCE_DATE_EPOCH=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MR=(mpirun)
if mpirun --version 2>&1 | grep -qiE "open ?mpi|openrte"; then
    MR+=(--oversubscribe --allow-run-as-root --mca btl self,vader --mca btl_vader_single_copy_mechanism none
         --mca mpi_yield_when_idle 1)
fi
if [ -n "$DATA" ] && [ -f "$DATA/cifar10-dev/train.bin" ]; then
    INPUT="cifar10:$DATA/cifar10-dev"
else
    INPUT=fashion-mnist
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/apd-mpi-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
now() { date +%s.%N; }
# run MODE NP ITERS -> "wall_seconds cpu_seconds_per_process" on stdout
run() {
    local mode=$1 np=$2 iters=$3 d="$W/$1-$2-$3"
    local a=(--input "$INPUT" --method "$mode" --init random --ipc 10 --colors 64 --batch-real 256 --threads 1
             --seed 1 --iters "$iters" --log-every 0 --quiet -o out.apd)
    mkdir -p "$d"
    local t0 t1
    t0=$(now)
    if [ "$np" = 1 ]; then
        (cd "$d" && nice -n 10 "$B/apd-convert" "${a[@]}") > "$d.log" 2>&1 || { echo "FAILED: $(cat "$d.log")" >&2; return 1; }
    else
        (cd "$d" && nice -n 10 "${MR[@]}" -np "$np" "$B/apd-convert" "${a[@]}") > "$d.log" 2>&1 ||
            { echo "FAILED: $(cat "$d.log")" >&2; return 1; }
    fi
    t1=$(now)
    # CPU time of the children of this (command substitution) shell: the processes above
    local cpu
    times > "$d.times" # the builtin in this shell (in a pipe it would see a subshell's children)
    cpu=$(tail -1 "$d.times" | awk '{u = $1; s = $2; sub(/s$/, "", u); sub(/s$/, "", s); split(u, a, "m");
          split(s, b, "m"); printf "%.3f", a[1] * 60 + a[2] + b[1] * 60 + b[2]}')
    echo "$t0 $t1 $cpu $np" | awk '{printf "%.3f %.3f", $2 - $1, $3 / $4}'
}
echo "mpi_scaling: $INPUT, batch-real 256, IPC 10, 1 thread per process, iterations $I1 vs $I2; $(nproc) CPUs," \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-12s %5s %10s %10s %10s %8s %14s %8s\n" mode procs "wall I1 s" "wall I2 s" "s/iter" speedup \
    "CPU s/iter/proc" speedup
for mode in $MODES; do
    base=""
    cbase=""
    for np in $NP; do
        r1=$(run "$mode" "$np" "$I1") || exit 1
        r2=$(run "$mode" "$np" "$I2") || exit 1
        read -r w1 c1 <<<"$r1"
        read -r w2 c2 <<<"$r2"
        per=$(echo "$w1 $w2 $I1 $I2" | awk '{printf "%.3f", ($2 - $1) / ($4 - $3)}')
        cper=$(echo "$c1 $c2 $I1 $I2" | awk '{printf "%.3f", ($2 - $1) / ($4 - $3)}')
        [ -z "$base" ] && base=$per && cbase=$cper
        sp=$(echo "$base $per" | awk '{printf "%.2fx", $1 / $2}')
        csp=$(echo "$cbase $cper" | awk '{printf "%.2fx", $1 / $2}')
        printf "%-12s %5s %10s %10s %10s %8s %14s %8s\n" "$mode" "$np" "$w1" "$w2" "$per" "$sp" "$cper" "$csp"
        if [ "$np" != 1 ] && ! cmp -s "$W/$mode-1-$I2/out.apd" "$W/$mode-$np-$I2/out.apd"; then
            echo "  note: $np-process file differs from the 1-process file" >&2
        fi
    done
done

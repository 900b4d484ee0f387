#!/bin/bash
# tests/mpi/mpi.sh BIN_DIR MPIEXEC: class-parallel apd-convert and apd-eval under mpirun on
# localhost. MPIEXEC empty (a build without MPI): skipped, exit 77.
#  1. dm, autopalette with the palette network (graph-cut init) and with stored palettes, 2
#     processes, 1 thread each: the file is
#     byte-identical (cmp) to the 1-process file; autopalette also with 3 (uneven blocks);
#     stored palettes also with the network queue (--net-pool)
#  2. a 2-process run stopped after iteration 2 (checkpoint), resumed by 2 processes and
#     by 1: the two files are identical, and their records are the uninterrupted run's
#  3. a 2-process run killed (SIGTERM to mpirun) after its first checkpoint, resumed by 2
#     processes: the records are the uninterrupted 1-process run's
#  4. a failure on one rank (resume from a missing checkpoint) ends every process with
#     exit 1 and the message naming the file, no hang
#  5. apd-eval --runs 2 on 2 processes: the same accuracies as on 1
# Fixtures: Debian's Fashion-MNIST (subsets); nothing else is read from outside.
set -u
B=${1:?bin dir}
MPIEXEC=${2:-}
if [ -z "$MPIEXEC" ]; then
    echo "SKIP: this build has no MPI (CMake APD_MPI, libopenmpi-dev)"
    exit 77
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/apd-mpi.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W"
fail=0
# the file records its creation time: pinned; Open MPI as root in a container
export SOURCE_DATE_EPOCH=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MR=("$MPIEXEC")
if "$MPIEXEC" --version 2>&1 | grep -qiE "open ?mpi|openrte"; then
    MR+=(--oversubscribe --allow-run-as-root --mca btl self,vader --mca btl_vader_single_copy_mechanism none
         --mca mpi_yield_when_idle 1)
fi
COMMON=(--input fashion-mnist --limit 400 --threads 1 --seed 3 --ipc 2 --colors 4 --batch-real 8
        --log-every 0 --quiet --force)
AP=(--method autopalette --palette network --iters 4 --select-epochs 1 --select-limit 30)
APS=(--method autopalette --palette stored --iters 4)
DM=(--method dm --iters 4)
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
# conv DIR NP ARGS...: apd-convert in DIR (out.apd there; the command line, stored in the
# file, is then the same in every DIR) on NP processes (0: without mpirun)
conv() {
    local d=$1 np=$2
    shift 2
    mkdir -p "$d"
    if [ "$np" = 0 ]; then
        (cd "$d" && "$B/apd-convert" "${COMMON[@]}" "$@" -o out.apd) > "$d.log" 2>&1
    else
        (cd "$d" && "${MR[@]}" -np "$np" "$B/apd-convert" "${COMMON[@]}" "$@" -o out.apd) > "$d.log" 2>&1
    fi
}
# same_records A B: the decoded records, labels and normalisation of A/out.apd and B/out.apd
same_records() {
    for d in "$1" "$2"; do
        rm -rf "$d/png"
        (cd "$d" && "$B/apd-export" out.apd --png png > /dev/null) || return 1
    done
    diff -r "$1/png" "$2/png" > /dev/null
}

# 1. byte identity
conv dm1 0 "${DM[@]}" || bad "dm, 1 process: $(cat dm1.log)"
conv dm2 2 "${DM[@]}" || bad "dm, 2 processes: $(cat dm2.log)"
cmp dm1/out.apd dm2/out.apd && ok "dm: 2 processes = 1 process (cmp)" || bad "dm: 2-process file differs"
conv ap1 0 "${AP[@]}" || bad "autopalette, 1 process: $(cat ap1.log)"
conv ap2 2 "${AP[@]}" || bad "autopalette, 2 processes: $(cat ap2.log)"
cmp ap1/out.apd ap2/out.apd && ok "autopalette: 2 processes = 1 process (cmp)" || bad "autopalette: 2-process file differs"
conv ap3 3 "${AP[@]}" || bad "autopalette, 3 processes: $(cat ap3.log)"
cmp ap1/out.apd ap3/out.apd && ok "autopalette: 3 processes = 1 process (cmp)" || bad "autopalette: 3-process file differs"
conv aps1 0 "${APS[@]}" || bad "autopalette stored palettes, 1 process: $(cat aps1.log)"
conv aps2 2 "${APS[@]}" || bad "autopalette stored palettes, 2 processes: $(cat aps2.log)"
cmp aps1/out.apd aps2/out.apd && ok "autopalette, stored palettes: 2 processes = 1 process (cmp)" ||
    bad "autopalette stored palettes: 2-process file differs"
# the network queue (--net-pool): every process keeps the same queue
POOL=(--net-pool 2 --net-pool-every 2 --net-pool-steps 1 --net-pool-batch 8)
conv apq1 0 "${APS[@]}" "${POOL[@]}" || bad "stored palettes + net pool, 1 process: $(cat apq1.log)"
conv apq2 2 "${APS[@]}" "${POOL[@]}" || bad "stored palettes + net pool, 2 processes: $(cat apq2.log)"
cmp apq1/out.apd apq2/out.apd && ok "stored palettes + network queue: 2 processes = 1 process (cmp)" ||
    bad "stored palettes + network queue: 2-process file differs"

# 2. stop after iteration 2, resume on 2 and on 1 process
conv stop 2 "${AP[@]}" --checkpoint "$W/ck" --checkpoint-every 1 --stop-after 2
grep -q "stopped after iteration 2" stop.log && [ -f "$W/ck" ] && [ ! -e stop/out.apd ] &&
    ok "stopped after iteration 2, checkpoint written, no output" || bad "stop-after: $(cat stop.log)"
conv res2 2 "${AP[@]}" --resume "$W/ck" || bad "resume on 2 processes: $(cat res2.log)"
conv res1 0 "${AP[@]}" --resume "$W/ck" || bad "resume on 1 process: $(cat res1.log)"
cmp res1/out.apd res2/out.apd && ok "resumed on 2 processes = resumed on 1 (cmp)" || bad "resumed files differ"
same_records ap1 res2 && ok "resumed records = uninterrupted records" || bad "resumed records differ from the uninterrupted run's"

# 3. killed after its first checkpoint, resumed
KDM=(--method dm --iters 60)
conv kfull 0 "${KDM[@]}" || bad "dm 60 iterations: $(cat kfull.log)"
mkdir -p kill
(cd kill && exec "${MR[@]}" -np 2 "$B/apd-convert" "${COMMON[@]}" "${KDM[@]}" --checkpoint "$W/kck" \
    --checkpoint-every 1 -o out.apd) > kill.log 2>&1 &
pid=$!
for _ in $(seq 1500); do [ -f "$W/kck" ] && break; sleep 0.2; done
kill -TERM "$pid" 2>/dev/null
wait "$pid"
krc=$?
if [ -e kill/out.apd ]; then
    bad "the run ended before it could be killed (exit $krc); make it longer"
elif [ ! -f "$W/kck" ]; then
    bad "no checkpoint before the kill: $(cat kill.log)"
else
    ok "killed (exit $krc) after a checkpoint"
    conv kres 2 "${KDM[@]}" --resume "$W/kck" || bad "resume after the kill: $(cat kres.log)"
    same_records kfull kres && ok "resumed after a kill: records = uninterrupted run's" ||
        bad "records after kill + resume differ"
fi

# 4. one rank fails: all stop, the message names the file
conv miss 2 "${AP[@]}" --resume "$W/no-such-checkpoint"
rc=$?
[ "$rc" = 1 ] && grep -q "no-such-checkpoint" miss.log && ok "missing checkpoint on 2 processes: exit 1, named" ||
    bad "missing checkpoint: exit $rc: $(cat miss.log)"

# 5. apd-eval --runs 2: a small test folder (200 Fashion-MNIST test images)
mkdir -p tset
(cd tset && "$B/apd-convert" --input fashion-mnist --split test --limit 200 --method direct --quiet -o out.apd &&
    "$B/apd-export" out.apd --png png) > tset.log 2>&1 || bad "test fixture: $(cat tset.log)"
EV=(dm1/out.apd --test "folder:$W/tset/png" --epochs 2 --runs 2 --threads 1 --json)
"$B/apd-eval" "${EV[@]}" > ev1.json 2> ev1.log || bad "apd-eval, 1 process: $(cat ev1.log)"
"${MR[@]}" -np 2 "$B/apd-eval" "${EV[@]}" > ev2.json 2> ev2.log || bad "apd-eval, 2 processes: $(cat ev2.log)"
a1=$(grep -o '"accuracies": \[[^]]*\]' ev1.json)
a2=$(grep -o '"accuracies": \[[^]]*\]' ev2.json)
echo "apd-eval 1 process: $a1; 2 processes: $a2"
[ -n "$a1" ] && [ "$a1" = "$a2" ] && [ "$(grep -c accuracies ev2.json)" = 1 ] &&
    ok "apd-eval --runs 2: 2 processes = 1 process, one report" || bad "apd-eval accuracies differ or missing"
exit $fail

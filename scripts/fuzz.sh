#!/usr/bin/env bash
# Fuzz the decoders with libFuzzer under ASan+UBSan, one target at a time, then minimise the
# grown corpus back into tests/fuzz/corpus/<target>/ (which ctest replays with plain gcc).
#   bash scripts/fuzz.sh [TARGET...]          (default: record meta icode pickle)
# Environment:
#   APD_FUZZ_TIME   seconds per target (default 1800)
#   APD_FUZZ_RUNS   executions per target (default 10000000; whichever limit comes first)
#   APD_FUZZ_DIR    build and work directory (default build-fuzz)
#   APD_FUZZ_NICE   nice level (default 10: the fuzzer is one process on a shared machine)
#   APD_FUZZ_MERGE  0 = leave tests/fuzz/corpus alone (default 1: merge the grown corpus in)
# Needs clang with the libFuzzer runtime (Debian: clang-14 + libclang-rt-14-dev).
# Per target it writes DIR/<target>.log (libFuzzer's output) and prints one summary line:
# executions, seconds, exec/s, coverage (cov) and features (ft), corpus size before and after
# the merge, and the number of crash/leak/timeout files libFuzzer left (the findings).
# Exit status: 0 iff no target left a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
dir=${APD_FUZZ_DIR:-build-fuzz}
time_s=${APD_FUZZ_TIME:-1800}
runs=${APD_FUZZ_RUNS:-10000000}
nice_n=${APD_FUZZ_NICE:-10}
merge=${APD_FUZZ_MERGE:-1}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(record meta icode pickle)

CC=${CC:-clang} cmake -S . -B "$dir" -DAPD_FUZZ=ON -DAPD_BUILD_BENCH=OFF -DAPD_BUILD_TESTS=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
for t in "${targets[@]}"; do
  cmake --build "$dir" --target "fuzz_$t" -j1 >/dev/null
done

dir=$(cd "$dir" && pwd)
status=0
for t in "${targets[@]}"; do
  work="$dir/work-$t"
  rm -rf "$work"
  mkdir -p "$work/grown" "$work/artifacts" "$work/merged"
  seeds="$src/tests/fuzz/corpus/$t"
  before=$(find "$seeds" -type f | wc -l)
  start=$(date +%s)
  # -fork is not used: one process, so the machine's other users keep their cores.
  (cd "$work" && nice -n "$nice_n" "$dir/tests/fuzz/fuzz_$t" -runs="$runs" \
    -max_total_time="$time_s" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/artifacts/" "$work/grown" "$seeds") >"$dir/$t.log" 2>&1 || true
  secs=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/$t.log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$dir/$t.log" | tail -n 1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo "?")
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo "?")
  findings=$(find "$work/artifacts" -type f | wc -l)
  after=$before
  if [ "$merge" = 1 ] && [ "$findings" = 0 ]; then
    # Keep only inputs that add coverage over the committed corpus.
    (cd "$work" && nice -n "$nice_n" "$dir/tests/fuzz/fuzz_$t" -merge=1 "$seeds" "$work/grown") \
      >"$dir/$t.merge.log" 2>&1
    after=$(find "$seeds" -type f | wc -l)
  fi
  rate="?"
  if [ "$execs" != "?" ] && [ "$secs" -gt 0 ]; then rate=$(( execs / secs )); fi
  echo "fuzz_$t: execs=$execs secs=$secs exec/s=$rate cov=$cov ft=$ft corpus=$before->$after findings=$findings"
  if [ "$findings" != 0 ]; then
    status=1
    ls "$work/artifacts"
  fi
done
exit $status

#!/usr/bin/env bash
# Long forms of the two reliability checks that ctest runs in a short form:
#  - the corruption campaign (tests/format/corrupt_campaign.c) with 8x the random cases and
#    every page pair swapped for small files: reader API, loader, tools, Python binding;
#  - apd-convert --force killed with SIGKILL at random moments (tests/format/kill_convert.c),
#    quantize and dm, APD_KILL_ROUNDS rounds (default 200).
#   bash scripts/reliability-long.sh [BUILD_DIR]        (default build/; takes tens of minutes)
# APD_CORRUPT_SEED / APD_KILL_SEED change the seeds. Exit status: 0 iff both passed.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(cd "${1:-build}" && pwd)
APD_CORRUPT_LONG=1 APD_LIBRARY="$B/libapd.so" PYTHONPATH="$PWD/python" \
  "$B/tests/format/corrupt_campaign" "$B" "$PWD/tests/format/corrupt_python.py"
"$B/tests/format/kill_convert" "$B" "${APD_KILL_ROUNDS:-200}"

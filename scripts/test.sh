#!/usr/bin/env bash
# The whole test suite from a fresh Debian machine: set-up, build (warnings are errors),
# ctest (Check tests, golden tensors, fuzz-corpus replay, install test), pytest for the
# Python binding and the spec conformance reader, then the suite again under ASan+UBSan.
# It needs no data beyond the repository's fixtures (tests/data/) and Debian's Fashion-MNIST
# (installed by scripts/setup.sh).
#   bash scripts/test.sh            # everything
#   APD_SKIP_SANITIZE=1 bash scripts/test.sh   # skip the sanitizer pass
#   APD_EXTRA_DATA=DIR bash scripts/test.sh    # also the optional full-data tests, on
#                                              # DIR/cifar10-dev/{train,test}.bin (CIFAR binary
#                                              # layout); without it they report "Skipped"
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages the Python tests need on top of the build set (torch datasets, torchvision
# transforms, PIL images, the venv + pip install test).
APD_PY_TEST_PKGS="python3-torch python3-torchvision python3-pil python3-venv"
APD_EXTRA_PKGS="${APD_EXTRA_PKGS:-} $APD_PY_TEST_PKGS" bash scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
extra=()
if [ -n "${APD_EXTRA_DATA:-}" ]; then
  extra=(-DAPD_EXTRA_DATA="$APD_EXTRA_DATA")
fi

cmake -S . -B build -DAPD_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo ${extra[@]+"${extra[@]}"} >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

if [ -d python/tests ] && ls python/tests/test_*.py >/dev/null 2>&1; then
  APD_LIBRARY="$PWD/build/libapd.so" APD_BUILD_DIR="$PWD/build" PYTHONPATH="$PWD/python" \
    /usr/bin/python3 -m pytest -q -rs python/tests
fi

if [ -z "${APD_SKIP_SANITIZE:-}" ]; then
  # Sanitizer pass: tests labelled "slow" (training runs) are skipped there.
  cmake -S . -B build-asan -DAPD_WERROR=ON -DAPD_SANITIZE=ON -DAPD_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=Debug ${extra[@]+"${extra[@]}"} >/dev/null
  cmake --build build-asan -j"$jobs"
  # APD_TEST_QUICK: sweeps over values (every K, kill rounds) keep their edges there
  # (tests/common/test_quick.h); the pass above ran them in full.
  (cd build-asan && APD_TEST_QUICK=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j"$jobs" -LE slow)
fi

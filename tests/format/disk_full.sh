#!/bin/sh
# tests/format/disk_full.sh BUILD_DIR: apd-convert on a really full file system (a 2 MiB
# tmpfs in a private mount namespace): exit 1, the message says "No space left on device"
# (LMDB reports the short write as EIO; the writer tells the full disk apart) and names the
# output, and nothing is left on the full file system: no output, no temporary.
# Needs a mount namespace (root, or unprivileged user namespaces): skipped (77) without one.
set -u
B="$1"
T=$(mktemp -d "${TMPDIR:-/tmp}/apd_disk_full.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
mkdir "$T/full"
# 3000 CIFAR records of noise: about 2.5 MiB at K = 64, more than the file system holds
/usr/bin/python3 -c '
import random, sys
r = random.Random(0)
with open(sys.argv[1], "wb") as f:
    for i in range(3000):
        f.write(bytes([i % 10]) + r.randbytes(3072))' "$T/train.bin" || exit 1
if [ "$(id -u)" = 0 ]; then ns="unshare -m"; else ns="unshare -rm"; fi
if ! $ns sh -c "mount -t tmpfs -o size=2m tmpfs '$T/full'" 2>/dev/null; then
    echo "no private mount namespace here (unshare + tmpfs): skipped"
    exit 77
fi
out=$($ns sh -c "mount -t tmpfs -o size=2m tmpfs '$T/full' &&
  '$B/apd-convert' --input cifar10:'$T/train.bin' --method quantize --colors 64 -t 1 -o '$T/full/x.apd' --quiet 2>&1;
  echo \"exit \$?\"; ls -A '$T/full'")
echo "$out"
fail=0
case "$out" in *"exit 1"*) ;; *) echo "FAIL: want exit 1"; fail=1 ;; esac
case "$out" in *"No space left on device"*) ;; *) echo "FAIL: the message does not say the disk is full"; fail=1 ;; esac
case "$out" in *"$T/full/x.apd"*) ;; *) echo "FAIL: the message does not name the output"; fail=1 ;; esac
if printf '%s\n' "$out" | grep -q -e '^x\.apd' ; then echo "FAIL: something left on the full file system"; fail=1; fi
exit $fail

#!/bin/bash
# tests/eval/class_check.sh BIN_DIR: apd-eval compares the training classes with the test
# set's (names and order). Fixtures are made here (PNG folders by python3's zlib, CIFAR
# binary files by bytes), nothing is read from outside.
#  1. train folder {a, b}, test folder {a, c, d}: exit 1 naming both lists (the class-set
#     mismatch that once ran silently); --map-classes-by-name: exit 1, 'b' is not in the test set
#  2. the same names in another order (a CIFAR-10 file named j..a, a folder a..j): exit 1;
#     --map-classes-by-name maps and trains (exit 0), accuracy reported
#  3. a CIFAR-10 file evaluated on a CIFAR-100 test set: exit 1
#  4. usage: --no-dsa with --dsa-strategy, --test-split bogus: exit 2
#  5. --test-split val on a folder with val/: runs on the val images
set -u
B=${1:?bin dir}
W=$(mktemp -d "${TMPDIR:-/tmp}/apd-class-check.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W"
fail=0
# mkpng W H FILE SEED: an 8-bit RGB PNG of noise
mkpng() {
    /usr/bin/python3 -c '
import random, struct, sys, zlib, os
w, h, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
r = random.Random(sys.argv[4])
raw = b"".join(b"\0" + bytes(r.randrange(256) for _ in range(3 * w)) for _ in range(h))
def ch(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + ch(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + ch(b"IDAT", zlib.compress(raw)) + ch(b"IEND", b""))' "$@"
}
# mkbin FILE N LABELBYTES NCLASSES: CIFAR binary records with labels i % NCLASSES
mkbin() {
    /usr/bin/python3 -c '
import random, sys
path, n, lb, nc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(1)
with open(path, "wb") as f:
    for i in range(n):
        lab = bytes([(i % nc) % 20, i % nc]) if lb == 2 else bytes([i % nc])
        f.write(lab + bytes(r.randrange(256) for _ in range(3072)))' "$@"
}
# expect CODE PATTERN CMD...: exit code and a fixed string in stdout+stderr
expect() {
    local want=$1 pat=$2; shift 2
    local out got
    out=$("$@" 2>&1); got=$?
    if [ "$got" != "$want" ]; then echo "FAIL: $* -> exit $got, want $want: $out"; fail=1; return; fi
    if [ -n "$pat" ] && ! printf '%s' "$out" | grep -qF -- "$pat"; then
        echo "FAIL: $* -> output lacks '$pat': $out"; fail=1; return; fi
    echo "ok ($got): ${*:1:3} ... -> $(printf '%s' "$out" | grep -F -- "$pat" | head -n1)"
}
EV="--epochs 1 --runs 1 --width 8 --batch 16 --threads 1"

# 1. different class sets
for i in 0 1 2 3; do
    mkpng 16 16 ds/train/a/$i.png a$i; mkpng 16 16 ds/train/b/$i.png b$i
    mkpng 16 16 ds/test/a/$i.png ta$i; mkpng 16 16 ds/test/c/$i.png tc$i; mkpng 16 16 ds/test/d/$i.png td$i
    mkpng 16 16 ds/val/a/$i.png va$i; mkpng 16 16 ds/val/b/$i.png vb$i
done
"$B/apd-convert" --input folder:ds --method quantize --colors 16 -o train.apd --quiet || { echo "convert failed"; exit 1; }
expect 1 "train.apd has 2 classes [a, b] but test set folder:ds has 3 [a, c, d]; label 1 is 'b' in one and 'c' in the other" \
    "$B/apd-eval" train.apd --test folder:ds $EV
expect 1 "train.apd: class 'b' is not in test set folder:ds [a, c, d]" \
    "$B/apd-eval" train.apd --test folder:ds --map-classes-by-name $EV
# the random-real baseline checks its --train classes the same way
expect 1 "but test set folder:ds has 3 [a, c, d]" "$B/apd-eval" --random-real 2 --train folder:ds --test folder:ds $EV

# 2. same names, other order: labels must be mapped, not trusted. The CIFAR file holds, for
# class named c (labels j..a), the very image of the test folder's class c, so the right
# mapping scores 100 % after a short training and the identity would score 0 %.
/usr/bin/python3 -c '
import random, struct, zlib, os
names = "abcdefghij"
r = random.Random(5)
imgs = {c: bytes(r.randrange(256) for _ in range(3072)) for c in names}  # CHW planes
def png(path, chw):
    raw = b"".join(b"\0" + bytes(chw[ch * 1024 + y * 32 + x] for x in range(32) for ch in range(3)) for y in range(32))
    def ch(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + ch(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0)) + ch(b"IDAT", zlib.compress(raw)) + ch(b"IEND", b""))
rev = names[::-1]
os.makedirs("c10", exist_ok=True)
with open("c10/train.bin", "wb") as f:
    for rep in range(2):
        for lab, c in enumerate(rev): f.write(bytes([lab]) + imgs[c])
open("c10/batches.meta.txt", "w").write("\n".join(rev) + "\n")
for c in names: png("f10/test/%s/0.png" % c, imgs[c])
' || { echo "fixture failed"; exit 1; }
"$B/apd-convert" --input cifar10:c10/train.bin --method direct -o c10.apd --quiet || { echo "convert failed"; exit 1; }
expect 1 "label 0 is 'j' in one and 'a' in the other" "$B/apd-eval" c10.apd --test folder:f10 $EV
expect 0 "the 10 classes of c10.apd mapped by name onto the 10 of test set folder:f10" \
    "$B/apd-eval" c10.apd --test folder:f10 --map-classes-by-name $EV
out=$("$B/apd-eval" c10.apd --test folder:f10 --map-classes-by-name --epochs 30 --runs 1 --width 8 --batch 16 \
      --threads 1 --no-dsa --json 2>/dev/null)
acc=$(printf '%s' "$out" | sed -n 's/.*"accuracy_mean": \([0-9.]*\).*/\1/p')
if /usr/bin/python3 -c "import sys; sys.exit(0 if float('${acc:-0}') >= 0.9 else 1)"; then
    echo "ok: mapped by name, accuracy $acc on the training images' own test copies"
else
    echo "FAIL: mapped by name, accuracy '${acc}' (want >= 0.9): $out"; fail=1
fi

# 3. CIFAR-10 file, CIFAR-100 test set (built-in names on both sides)
mkdir -p c100 c10b
mkbin c100/test.bin 10 2 100
mkbin c10b/train.bin 20 1 10
"$B/apd-convert" --input cifar10:c10b/train.bin --method direct -o c10b.apd --quiet || { echo "convert failed"; exit 1; }
expect 1 "but test set cifar100:c100/test.bin has 100 [apple, aquarium_fish" "$B/apd-eval" c10b.apd --test cifar100:c100/test.bin $EV

# 4. usage errors
expect 2 "do not apply with --no-dsa" "$B/apd-eval" train.apd --test folder:ds --no-dsa --dsa-strategy color $EV
expect 2 "--test-split: bad value" "$B/apd-eval" train.apd --test folder:ds --test-split dev $EV

# 5. the val split as the test set: classes {a, b} match
expect 0 "test folder:ds: 8 images" "$B/apd-eval" train.apd --test folder:ds --test-split val $EV
exit $fail

#!/usr/bin/env python3
"""Write a 100-class dataset in CIFAR-100's binary layout from CIFAR-10-style binary files.

    make_cifar100_fixture.py SRC_DIR OUT_DIR [--replicas R]

SRC_DIR holds train.bin and test.bin of CIFAR-10 records (1 label byte + 3072 pixel bytes,
R, G, B planes), e.g. the cifar10-dev development data. OUT_DIR receives train.bin and
test.bin of CIFAR-100 records (coarse label byte, fine label byte, 3072 pixel bytes) and
fine_label_names.txt / coarse_label_names.txt, the layout of cifar-100-binary/, so
`cifar100:OUT_DIR` imports it.

Classes: fine class = 10 * (CIFAR-10 class) + tint, coarse class = the CIFAR-10 class. A tint
is one of 10 fixed per-channel gains (tint 0 is the identity), so telling the fine classes
apart needs both the object and its colour: a real-image stand-in for CIFAR-100 (100 classes,
the same geometry and file format) where the real CIFAR-100 download is not at hand. Train
image j of the source appears R times (default 5), with tints (j + 2r) % 10, r < R, so R = 5
gives 50000 train records from 10000 (500 per class if the source is balanced, as CIFAR-100);
test image j appears once, with tint j % 10. Deterministic: no randomness.
"""
import argparse
import os
import sys

import numpy as np

GAINS = np.array([[1.00, 1.00, 1.00], [1.25, 0.85, 0.85], [0.85, 1.25, 0.85], [0.85, 0.85, 1.25],
                  [1.20, 1.20, 0.70], [0.70, 1.20, 1.20], [1.20, 0.70, 1.20], [0.60, 0.60, 0.60],
                  [1.30, 1.05, 0.80], [0.80, 1.05, 1.30]], dtype=np.float32)


def read_cifar10(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        sys.exit(f"{path}: size {raw.size} is not a multiple of 3073 (not CIFAR-10 binary records)")
    rec = raw.reshape(-1, 3073)
    return rec[:, 0].astype(np.int64), rec[:, 1:].reshape(-1, 3, 1024)


def tinted(pixels, tint):
    out = pixels.astype(np.float32) * GAINS[tint][:, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write(path, labels, pixels, replicas):
    n = labels.shape[0]
    with open(path, "wb") as f:
        for r in range(replicas):
            tints = (np.arange(n) + 2 * r) % 10 if replicas > 1 else np.arange(n) % 10
            rec = np.empty((n, 3074), dtype=np.uint8)
            rec[:, 0] = labels
            rec[:, 1] = labels * 10 + tints
            for t in range(10):
                sel = tints == t
                rec[sel, 2:] = tinted(pixels[sel], t).reshape(-1, 3072)
            f.write(rec.tobytes())
    return n * replicas


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--replicas", type=int, default=5)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    names10 = [f"class{i}" for i in range(10)]
    meta = os.path.join(a.src, "batches.meta.txt")
    if os.path.exists(meta):
        names10 = [s.strip() for s in open(meta) if s.strip()][:10]
    tr_l, tr_p = read_cifar10(os.path.join(a.src, "train.bin"))
    te_l, te_p = read_cifar10(os.path.join(a.src, "test.bin"))
    n_tr = write(os.path.join(a.out, "train.bin"), tr_l, tr_p, a.replicas)
    n_te = write(os.path.join(a.out, "test.bin"), te_l, te_p, 1)
    with open(os.path.join(a.out, "fine_label_names.txt"), "w") as f:
        f.writelines(f"{names10[c]}_t{t}\n" for c in range(10) for t in range(10))
    with open(os.path.join(a.out, "coarse_label_names.txt"), "w") as f:
        f.writelines(f"{n}\n" for n in names10)
    print(f"{a.out}: train.bin {n_tr} records, test.bin {n_te} records, 100 fine classes, 10 coarse")


if __name__ == "__main__":
    main()

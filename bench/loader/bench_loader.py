#!/usr/bin/env python3
"""bench_loader.py: Python-side loader throughput, apd vs the common "LMDB + pickle" loader.

    APD_LIBRARY=build/libapd.so PYTHONPATH=python /usr/bin/python3 bench/loader/bench_loader.py \
        [--apd build/bench/loader/cifar10-dev-k64.apd] [--epochs 2] [--workers 2]

Both sides hold the same 10000 CIFAR-10 images (cifar10-dev/train.bin quantized at K = 64;
the baseline stores the decoded uint8 HWC array of each, pickled with its label, one LMDB
key per image: the usual recipe) and produce the same batches: shuffled, 256 per batch,
float32 NCHW normalised with the same mean/std, int64 labels. Figures are samples/s:
  - into numpy: apd.Loader vs a loop over lmdb txn.get + pickle.loads + normalise + stack;
  - through torch.utils.data.DataLoader with 0 and N workers: apd.torch.ApdIterableDataset
    (batches from the C loader) vs a map-style LMDB Dataset with the default collate.
  - the best set-up of each: apd with 2 C decode threads in the main process vs the
    baseline's best worker count.
Ratios apd / baseline are printed (target >= 10x). Timings on a shared machine vary: the
two sides run interleaved in one process.
"""
import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python"))
import apd  # noqa: E402

try:
    import lmdb
except ImportError:  # pragma: no cover
    lmdb = None


def make_apd(path):
    build = os.environ.get("APD_BUILD_DIR", os.path.join(REPO, "build"))
    exe = os.path.join(build, "bench", "loader", "bench_loader")
    subprocess.run([exe, "--apd", path, "--make-only"], check=True)


def make_lmdb(apd_path, out):
    ds = apd.open(apd_path)
    env = lmdb.open(out, map_size=1 << 30, subdir=True, lock=True)
    with env.begin(write=True) as txn:
        for i in range(len(ds)):
            img, lab = ds[i]
            txn.put(b"%08d" % i, pickle.dumps((img, lab), protocol=pickle.HIGHEST_PROTOCOL))
        txn.put(b"__len__", str(len(ds)).encode())
    env.close()
    return len(ds)


class LmdbPickle:
    """The common baseline: map-style dataset, env opened lazily per process."""

    def __init__(self, path, n, mean, std):
        self.path, self.n = path, n
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)
        self.env = None

    def __len__(self):
        return self.n

    def get(self, i):
        if self.env is None:
            self.env = lmdb.open(self.path, readonly=True, lock=False, readahead=False,
                                 meminit=False)
        with self.env.begin() as txn:
            img, lab = pickle.loads(txn.get(b"%08d" % i))
        x = (img.transpose(2, 0, 1).astype(np.float32) / 255.0 - self.mean) / self.std
        return x, lab

    def __getitem__(self, i):
        import torch
        x, lab = self.get(i)
        return torch.from_numpy(x), lab

    def __getstate__(self):
        d = dict(self.__dict__)
        d["env"] = None
        return d


def rate(fn, n_expected):
    fn()  # warm-up: imports, page cache, worker start-up paths
    t0 = time.perf_counter()
    n = fn()
    dt = time.perf_counter() - t0
    assert n == n_expected, (n, n_expected)
    return n / dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--apd", default=os.path.join(os.environ.get("APD_BUILD_DIR", os.path.join(REPO, "build")),
                                                  "bench", "loader", "cifar10-dev-k64.apd"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    if lmdb is None:
        print("bench_loader.py: python3-lmdb missing; skipped")
        return
    if not os.path.exists(a.apd):
        make_apd(a.apd)
    B, E = a.batch, a.epochs
    tmp = tempfile.mkdtemp(prefix="apd-bench-")
    lpath = os.path.join(tmp, "pickle.lmdb")
    n = make_lmdb(a.apd, lpath)
    ds = apd.open(a.apd)
    mean, std = ds.info["mean"], ds.info["std"]
    base = LmdbPickle(lpath, n, mean, std)
    print("bench_loader.py: %d images 3x32x32 (K=64), batch %d, %d epochs per figure, "
          "float32 NCHW normalised" % (n, B, E))
    rows = []

    # ---- into numpy
    ld = apd.Loader(a.apd, batch_size=B, seed=1, layout="float", threads=1)

    def apd_numpy():
        return sum(len(y) for _ in range(E) for x, y in ld)

    def base_numpy():
        rng = np.random.default_rng(1)
        got = 0
        for _ in range(E):
            order = rng.permutation(n)
            for s in range(0, n, B):
                items = [base.get(int(i)) for i in order[s:s + B]]
                x = np.stack([t[0] for t in items])
                y = np.asarray([t[1] for t in items], np.int64)
                got += len(y)
        return got

    r_apd = rate(apd_numpy, n * E)
    r_base = rate(base_numpy, n * E)
    rows.append(("into numpy (1 process)", r_apd, r_base))

    # ---- through torch DataLoader
    try:
        import torch
        from torch.utils.data import DataLoader
        import apd.torch as at
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(1)
        best_base = 0.0
        for w in (0, a.workers):
            ctx = "fork" if w else None

            # persistent workers on both sides: start-up is paid once, not per epoch
            extra = dict(persistent_workers=True, multiprocessing_context=ctx) if w else {}
            it = at.ApdIterableDataset(a.apd, batch_size=B, seed=1, layout="float")
            dl_apd = DataLoader(it, batch_size=None, num_workers=w, **extra)
            dl_base = DataLoader(base, batch_size=B, shuffle=True, num_workers=w, **extra)

            def apd_torch():
                return sum(len(y) for _ in range(E) for x, y in dl_apd)

            def base_torch():
                return sum(len(y) for _ in range(E) for x, y in dl_base)

            r_apd = rate(apd_torch, n * E)
            r_base = rate(base_torch, n * E)
            rows.append(("torch DataLoader, %d workers" % w, r_apd, r_base))
            best_base = max(best_base, r_base)
        # apd's own threads instead of worker processes (no inter-process copies of batches)
        it2 = at.ApdIterableDataset(a.apd, batch_size=B, seed=1, layout="float", threads=2)
        dl2 = DataLoader(it2, batch_size=None, num_workers=0)
        r_apd2 = rate(lambda: sum(len(y) for _ in range(E) for x, y in dl2), n * E)
        rows.append(("best: apd 0 workers 2 threads vs", r_apd2, best_base))
    else:
        print("  (torch not installed: DataLoader figures skipped)")

    print("  %-34s %14s %18s %8s" % ("", "apd samples/s", "LMDB+pickle /s", "ratio"))
    for name, ra, rb in rows:
        print("  %-34s %14.0f %18.0f %7.1fx  (target >= 10x)" % (name, ra, rb, ra / rb))
    print("  (with worker processes torch's per-batch hand-off between processes dominates:\n"
          "   apd batches are cheap to make, so use num_workers=0 and apd's C threads)")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""train_torch.py: train a ConvNetD3 in PyTorch on an .apd file through the apd binding and
print the accuracy on a real test set.

    APD_LIBRARY=build/libapd.so PYTHONPATH=python /usr/bin/python3 examples/train_torch.py \
        train.apd --test /path/to/cifar-10-batches-bin/test_batch.bin --epochs 20

train: any .apd (palette or direct; e.g. from apd-convert). --test: an .apd (for instance
the real test split converted with `apd-convert --method direct`) or a CIFAR-10/100 binary
file (1 label byte + C*H*W bytes per record, read directly). Test images are normalised with
the training file's mean/std, as the loader does for training batches.

ConvNetD3 (the dataset-distillation standard): 3 x [conv 3x3 width 128, instance norm
(GroupNorm with one group per channel, affine), ReLU, avg-pool 2], then a linear classifier
(first conv padding 3 for 28x28 inputs, as apd-eval). SGD (momentum 0.9, weight decay 5e-4),
cross-entropy.
  --schedule simple (default): `epochs` passes, lr x0.1 after half of them.
  --schedule apd-eval: apd-eval's protocol (include/apd/train.h): epochs + 1 passes, lr x0.1
      and a fresh momentum buffer after pass epochs/2 + 1.
  --dsa: DSA augmentation of every training batch as apd-eval does it (include/apd/dsa.h):
      one op per batch drawn from color_crop_cutout_flip_scale_rotate, per-image parameters,
      written in torch ops (same ops and parameter ranges; torch's random numbers).
So `--dsa --schedule apd-eval --epochs E --runs R` is the PyTorch twin of
`apd-eval FILE --test SPEC --epochs E --runs R`.
Multi-GPU/-node: run under torchrun; ApdIterableDataset splits the batches over DDP ranks
itself (wrap the model in DistributedDataParallel).
"""
import argparse
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import apd  # noqa: E402
import apd.torch as at  # noqa: E402


class ConvNetD3(nn.Module):
    def __init__(self, channels, n_classes, size, width=128, depth=3):
        super().__init__()
        layers, c = [], channels
        pad1 = 3 if size == 28 else 1  # 28 -> 32 as in the DD literature and apd-eval
        s = size + 2 * (pad1 - 1)
        for d in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=pad1 if d == 0 else 1),
                       nn.GroupNorm(width, width, affine=True),
                       nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
            c, s = width, s // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * s * s, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


DSA_OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")


class DSA:
    """DSA on a float NCHW batch (include/apd/dsa.h, per-image mode): one op per call drawn
    uniformly from `strategy`, each image its own parameters:
      color   x + b, b = u - 0.5; then (x - mean_c) * 2u + mean_c; then
              (x - mean_chw) * (u + 0.5) + mean_chw
      crop    out(y, x) = in(y + dy, x + dx), zeros shift in, |dy|, |dx| <= int(0.125 size + 0.5)
      cutout  zero square of side int(0.5 size + 0.5) centred at o = randint(0, size + 1 - side % 2)
      flip    horizontal, probability 0.5
      scale   affine diag(sx, sy), sx, sy ~ U(1/1.2, 1.2), bilinear, zero padding
      rotate  affine rotation by U(-15, 15) degrees, bilinear, zero padding"""

    def __init__(self, seed, strategy="color_crop_cutout_flip_scale_rotate", align_corners=False):
        self.ops = [o for o in strategy.split("_") if o and o != "none"]
        bad = [o for o in self.ops if o not in DSA_OPS]
        if bad:
            raise SystemExit("unknown DSA op(s) %s (from %s)" % (bad, ", ".join(DSA_OPS)))
        self.ops = [o for o in DSA_OPS if o in self.ops]  # the library's draw order
        self.g = torch.Generator().manual_seed(seed)
        self.ac = align_corners

    def _u(self, *shape):
        return torch.rand(shape, generator=self.g)

    def _randint(self, lo, hi, n):
        return torch.randint(lo, hi, (n,), generator=self.g)

    def __call__(self, x):
        if not self.ops:
            return x
        op = self.ops[int(self._randint(0, len(self.ops), 1))]
        n, _, h, w = x.shape
        return self.apply(x, op, self.draw(op, n, h, w))

    def draw(self, op, n, h, w):
        """Per-image parameters of `op` for n images of h x w (a dict of tensors)."""
        u = self._u
        if op == "color":
            return {"b": (u(n) - 0.5) * 1.0, "s": u(n) * 2.0, "k": u(n) + 0.5}
        if op == "crop":
            sh, sw = int(0.125 * h + 0.5), int(0.125 * w + 0.5)
            return {"dy": self._randint(-sh, sh + 1, n), "dx": self._randint(-sw, sw + 1, n)}
        if op == "cutout":
            ch, cw = int(0.5 * h + 0.5), int(0.5 * w + 0.5)
            return {"oy": self._randint(0, h + 1 - ch % 2, n),
                    "ox": self._randint(0, w + 1 - cw % 2, n)}
        if op == "flip":
            return {"flip": u(n) < 0.5}
        theta = torch.zeros(n, 2, 3)
        if op == "scale":
            lo, hi = 1.0 / 1.2, 1.2
            theta[:, 0, 0] = u(n) * (hi - lo) + lo
            theta[:, 1, 1] = u(n) * (hi - lo) + lo
        else:  # rotate
            t = (u(n) - 0.5) * 2.0 * 15.0 / 180.0 * math.pi
            theta[:, 0, 0], theta[:, 0, 1] = torch.cos(t), -torch.sin(t)
            theta[:, 1, 0], theta[:, 1, 1] = torch.sin(t), torch.cos(t)
        return {"theta": theta}

    def apply(self, x, op, p):
        """x (N, C, H, W) float augmented by `op` with the parameters p of draw()."""
        n, c, h, w = x.shape
        if op == "color":
            x = x + p["b"].view(n, 1, 1, 1)
            m = x.mean(1, keepdim=True)
            x = (x - m) * p["s"].view(n, 1, 1, 1) + m
            m = x.mean((1, 2, 3), keepdim=True)
            return (x - m) * p["k"].view(n, 1, 1, 1) + m
        if op == "crop":
            sh, sw = int(0.125 * h + 0.5), int(0.125 * w + 0.5)
            xp = F.pad(x, (sw, sw, sh, sh))
            iy = torch.arange(h)[None, :] + p["dy"][:, None] + sh
            ix = torch.arange(w)[None, :] + p["dx"][:, None] + sw
            return xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                      iy[:, None, :, None], ix[:, None, None, :]]
        if op == "cutout":
            def cut(o, size):  # rows/cols [clamp(o - cs//2), clamp(o - cs//2 + cs - 1)]
                cs = int(0.5 * size + 0.5)
                lo = (o - cs // 2).clamp(0, size - 1)[:, None]
                hi = (o - cs // 2 + cs - 1).clamp(0, size - 1)[:, None]
                r = torch.arange(size)[None, :]
                return (r >= lo) & (r <= hi)
            inside = cut(p["oy"], h)[:, :, None] & cut(p["ox"], w)[:, None, :]
            return x * (~inside)[:, None].to(x.dtype)
        if op == "flip":
            return torch.where(p["flip"].view(n, 1, 1, 1), x.flip(3), x)
        grid = F.affine_grid(p["theta"].to(x.dtype), [n, c, h, w], align_corners=self.ac)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=self.ac)


def load_test(path, mean, std, c, h, w, limit=0):
    """(images float32 NCHW normalised, labels int64) from an .apd or a CIFAR binary."""
    if path.endswith(".apd"):
        ds = apd.open(path, layout="chw")
        n = len(ds) if not limit else min(limit, len(ds))
        x = np.stack([ds[i][0] for i in range(n)])
        y = np.asarray([ds[i][1] for i in range(n)], np.int64)
    else:
        rec = 1 + c * h * w
        raw = np.fromfile(path, np.uint8)
        if raw.size % rec:
            raise SystemExit("%s: not a CIFAR-10 binary of %dx%dx%d records" % (path, c, h, w))
        raw = raw.reshape(-1, rec)
        if limit:
            raw = raw[:limit]
        y = raw[:, 0].astype(np.int64)
        x = raw[:, 1:].reshape(-1, c, h, w)
    m = np.asarray(mean, np.float32).reshape(1, c, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, c, 1, 1)
    x = (x.astype(np.float32) * np.float32(1 / 255) - m) * (np.float32(1) / s)
    return torch.from_numpy(x), torch.from_numpy(y)


def train_one(a, run, info, c, h, w, ncls, xt, yt):
    """Train a fresh network (run `run`) and return its test accuracy."""
    seed = a.seed + 1000 * run
    torch.manual_seed(seed)
    train = at.ApdIterableDataset(a.train, batch_size=a.batch, shuffle=True, seed=seed,
                                  layout="float", threads=a.threads)
    dl = at.ApdDataLoader(train, num_workers=a.workers, persistent_workers=a.workers > 0)
    dsa = DSA(seed, a.dsa_strategy, a.align_corners) if a.dsa else None
    model = ConvNetD3(c, ncls, h)

    def sgd(lr):
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    if a.schedule == "apd-eval":
        passes, decay_after = a.epochs + 1, a.epochs // 2 + 1
    else:
        passes, decay_after = a.epochs, max(1, a.epochs // 2) - 1
    opt = sgd(a.lr)
    t_start = time.time()
    for epoch in range(passes):
        model.train()
        t0, seen, loss_sum = time.time(), 0, 0.0
        for x, y in dl:  # each pass over the loader is the next epoch of the file's order
            if dsa is not None:
                x = dsa(x)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
            loss_sum += float(loss) * len(y)
        if epoch == decay_after:  # lr x0.1 with a fresh momentum buffer
            opt = sgd(a.lr * 0.1)
        if a.verbose or epoch == passes - 1:
            print("run %d epoch %d: loss %.4f, %d images, %.1f s" % (
                run, epoch, loss_sum / max(1, seen), seen, time.time() - t0), flush=True)
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(yt), 500):
            correct += int((model(xt[s:s + 500]).argmax(1) == yt[s:s + 500]).sum())
    acc = correct / len(yt)
    print("run %d: test accuracy %.2f%% (%d / %d), train %.0f s" % (
        run, 100 * acc, correct, len(yt), time.time() - t_start), flush=True)
    return acc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("train", help="training .apd")
    ap.add_argument("--test", required=True, help="test .apd or CIFAR binary (real images)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--runs", type=int, default=1, help="independent networks (mean, std)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--schedule", choices=["simple", "apd-eval"], default="simple")
    ap.add_argument("--dsa", action="store_true", help="DSA augmentation (as apd-eval)")
    ap.add_argument("--dsa-strategy", default="color_crop_cutout_flip_scale_rotate")
    ap.add_argument("--align-corners", action="store_true",
                    help="affine DSA ops with align_corners=True (original DSA code)")
    ap.add_argument("--threads", type=int, default=2, help="apd decode threads")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--test-limit", type=int, default=0)
    ap.add_argument("--verbose", action="store_true", help="a line per epoch")
    a = ap.parse_args()
    if a.torch_threads:
        torch.set_num_threads(a.torch_threads)

    with apd.open(a.train) as ds:
        info, meta = ds.info, ds.meta
    c, h, w, ncls = info["c"], info["h"], info["w"], max(1, info["n_classes"])
    print("train: %s: %d images %dx%dx%d, %d classes, method %s" %
          (a.train, info["n_records"], c, h, w, ncls, meta.get("method", "?")))
    mean = info["mean"] if any(info["std"]) else [0.0] * c
    std = info["std"] if any(info["std"]) else [1.0] * c
    xt, yt = load_test(a.test, mean, std, c, h, w, a.test_limit)
    print("test: %s: %d images; schedule %s, %d epochs, DSA %s" % (
        a.test, len(yt), a.schedule, a.epochs, a.dsa_strategy if a.dsa else "off"))
    accs = [train_one(a, r, info, c, h, w, ncls, xt, yt) for r in range(a.runs)]
    m = float(np.mean(accs))
    sd = float(np.std(accs))
    print("test accuracy: %.2f%% +- %.2f over %d run(s)" % (100 * m, 100 * sd, len(accs)))


if __name__ == "__main__":
    main()

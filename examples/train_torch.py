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
(GroupNorm with one group per channel, affine), ReLU, avg-pool 2], then a linear classifier.
Training: SGD (momentum 0.9, weight decay 5e-4), lr 0.01 halved at half of the epochs,
cross-entropy. Multi-GPU/-node: run under torchrun; ApdIterableDataset splits the batches
over DDP ranks itself (wrap the model in DistributedDataParallel).
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import apd  # noqa: E402
import apd.torch as at  # noqa: E402


class ConvNetD3(nn.Module):
    def __init__(self, channels, n_classes, size, width=128, depth=3):
        super().__init__()
        layers, c, s = [], channels, size
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.GroupNorm(width, width, affine=True),
                       nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
            c, s = width, s // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * s * s, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("train", help="training .apd")
    ap.add_argument("--test", required=True, help="test .apd or CIFAR binary (real images)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="apd decode threads")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--test-limit", type=int, default=0)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    with apd.open(a.train) as ds:
        info, meta = ds.info, ds.meta
    c, h, w, ncls = info["c"], info["h"], info["w"], max(1, info["n_classes"])
    print("train: %s: %d images %dx%dx%d, %d classes, method %s" %
          (a.train, info["n_records"], c, h, w, ncls, meta.get("method", "?")))
    train = at.ApdIterableDataset(a.train, batch_size=a.batch, shuffle=True, seed=a.seed,
                                  layout="float", threads=a.threads)
    dl = DataLoader(train, batch_size=None, num_workers=a.workers,
                    persistent_workers=a.workers > 0)
    mean = info["mean"] if any(info["std"]) else [0.0] * c
    std = info["std"] if any(info["std"]) else [1.0] * c
    xt, yt = load_test(a.test, mean, std, c, h, w, a.test_limit)
    print("test: %s: %d images" % (a.test, len(yt)))

    model = ConvNetD3(c, ncls, h)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [max(1, a.epochs // 2)], 0.1)
    for epoch in range(a.epochs):
        train.set_epoch(epoch)
        model.train()
        t0, seen, loss_sum = time.time(), 0, 0.0
        for x, y in dl:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
            loss_sum += float(loss) * len(y)
        sched.step()
        print("epoch %d: loss %.4f, %d images, %.1f s" % (epoch, loss_sum / max(1, seen), seen,
                                                           time.time() - t0), flush=True)
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(yt), 500):
            correct += int((model(xt[s:s + 500]).argmax(1) == yt[s:s + 500]).sum())
    print("test accuracy: %.2f%% (%d / %d)" % (100.0 * correct / len(yt), correct, len(yt)))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""bench/eval/eval_torch.py: the apd-eval protocol in PyTorch, the baseline of bench_eval.

Reads the data file written by bench_eval (little-endian):
    magic b"APDEVB01", u32 n_train, n_test, c, h, w, n_classes, epochs, batch,
    f32 lr, f32 mean[3], f32 std[3], u64 seed,
    n_train*c*h*w u8 train pixels (CHW), n_train u32 labels,
    n_test*c*h*w u8 test pixels, n_test u32 labels
trains ConvNetD3 (GroupNorm(128,128) instance norm, ReLU, AvgPool 2x2; padding 3 for 28x28)
with DSA per-image augmentation (color_crop_cutout_flip_scale_rotate, one op per batch,
vectorised; align_corners False) and the DD evaluation protocol (SGD momentum 0.9, wd 5e-4,
epochs+1 passes, lr x0.1 and a new optimizer after pass epochs//2+1, batch 256, hard-label
cross-entropy), tests once, and prints one line:
    RESULT acc=<float> seconds=<train+test wall s> cpu=<process CPU s> loss=<last batch>
"""
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_convnet import ConvNetD3  # noqa: E402  (bench/torch_convnet.py)


def dsa(x, gen):
    """One op for the batch, per-image parameters (DSA without a seed)."""
    n, c, h, w = x.shape
    op = int(torch.randint(0, 6, (1,), generator=gen))
    r = lambda *s: torch.rand(*s, generator=gen)
    if op == 0:  # color
        x = x + (r(n, 1, 1, 1) - 0.5)
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * (r(n, 1, 1, 1) * 2.0) + m
        m = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - m) * (r(n, 1, 1, 1) + 0.5) + m
    if op == 1:  # crop
        sy, sx = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
        ty = torch.randint(-sy, sy + 1, (n, 1, 1), generator=gen)
        tx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=gen)
        gb, gy, gx = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(w), indexing="ij")
        gy = torch.clamp(gy + ty + 1, 0, h + 1)
        gx = torch.clamp(gx + tx + 1, 0, w + 1)
        xp = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
        return xp.permute(0, 2, 3, 1).contiguous()[gb, gy, gx].permute(0, 3, 1, 2)
    if op == 2:  # cutout
        ch_, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        oy = torch.randint(0, h + (1 - ch_ % 2), (n, 1, 1), generator=gen)
        ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen)
        gb, gy, gx = torch.meshgrid(torch.arange(n), torch.arange(ch_), torch.arange(cw), indexing="ij")
        gy = torch.clamp(gy + oy - ch_ // 2, min=0, max=h - 1)
        gx = torch.clamp(gx + ox - cw // 2, min=0, max=w - 1)
        mask = torch.ones(n, h, w, dtype=x.dtype)
        mask[gb, gy, gx] = 0
        return x * mask.unsqueeze(1)
    if op == 3:  # flip
        return torch.where(r(n, 1, 1, 1) < 0.5, x.flip(3), x)
    theta = torch.zeros(n, 2, 3)
    if op == 4:  # scale
        theta[:, 0, 0] = r(n) * (1.2 - 1 / 1.2) + 1 / 1.2
        theta[:, 1, 1] = r(n) * (1.2 - 1 / 1.2) + 1 / 1.2
    else:  # rotate
        t = (r(n) - 0.5) * 2 * 15 / 180 * math.pi
        theta[:, 0, 0] = torch.cos(t)
        theta[:, 0, 1] = -torch.sin(t)
        theta[:, 1, 0] = torch.sin(t)
        theta[:, 1, 1] = torch.cos(t)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def main():
    path = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(threads)
    buf = open(path, "rb").read()
    assert buf[:8] == b"APDEVB01", "bad bench data file"
    ntr, nte, c, h, w, k, epochs, batch = struct.unpack_from("<8I", buf, 8)
    off = 8 + 32
    lr, = struct.unpack_from("<f", buf, off); off += 4
    mean = struct.unpack_from("<3f", buf, off); off += 12
    std = struct.unpack_from("<3f", buf, off); off += 12
    seed, = struct.unpack_from("<Q", buf, off); off += 8
    img = c * h * w

    def take(n, dt, cnt):
        nonlocal off
        a = np.frombuffer(buf, dtype=dt, count=cnt, offset=off)
        off += a.nbytes
        return a

    xtr = take(ntr, np.uint8, ntr * img).reshape(ntr, c, h, w)
    ytr = take(ntr, "<u4", ntr).astype(np.int64)
    xte = take(nte, np.uint8, nte * img).reshape(nte, c, h, w)
    yte = take(nte, "<u4", nte).astype(np.int64)
    m = torch.tensor(mean[:c]).view(1, c, 1, 1)
    s = torch.tensor(std[:c]).view(1, c, 1, 1)
    norm = lambda a: (torch.from_numpy(a.astype(np.float32)) / 255.0 - m) / s
    xtr_t, ytr_t = norm(xtr), torch.from_numpy(ytr)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    c0 = time.process_time()
    net = ConvNetD3(c, h, k)
    net.train()
    crit = nn.CrossEntropyLoss()
    cur = lr
    opt = torch.optim.SGD(net.parameters(), lr=cur, momentum=0.9, weight_decay=0.0005)
    for ep in range(epochs + 1):
        perm = torch.randperm(ntr, generator=gen)
        for b0 in range(0, ntr, batch):
            idx = perm[b0:b0 + batch]
            x = dsa(xtr_t[idx], gen)
            loss = crit(net(x), ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if ep == epochs // 2 + 1:
            cur *= 0.1
            opt = torch.optim.SGD(net.parameters(), lr=cur, momentum=0.9, weight_decay=0.0005)
    correct = 0
    with torch.no_grad():
        for b0 in range(0, nte, 256):
            out = net(norm(xte[b0:b0 + 256]))
            correct += int((out.argmax(1) == torch.from_numpy(yte[b0:b0 + 256])).sum())
    dt = time.time() - t0
    cpu = time.process_time() - c0
    print(f"RESULT acc={correct / nte:.6f} seconds={dt:.3f} cpu={cpu:.3f} loss={float(loss):.5f}")


if __name__ == "__main__":
    main()

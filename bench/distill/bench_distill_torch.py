#!/usr/bin/python3
"""bench_distill_torch.py: the PyTorch side of bench_distill: one DM iteration and one
DM + AutoPalette iteration, written the way the reference code does them (VICO main_DM.py
and AutoPalette dm_quant.py, re-implemented from docs/method.md; not a copy).

Usage: bench_distill_torch.py MODE THREADS ITERS [IPC BATCH_REAL K CLASSES N_PER_CLASS [SIZE DEPTH]]
  MODE: dm | autopalette; SIZE: image side (32), DEPTH: conv blocks (3)
Denormals are flushed to zero (torch.set_flush_denormal), as libapd does, so that both sides
avoid the slow path a saturated softmax triggers. Prints "torch iter_first <s>", "torch iter_rest <s>", "torch peak_rss_mb <MB>",
"torch growth_mb <MB>" (peak RSS minus RSS after the data were built).

Per iteration: a fresh randomly initialised ConvNetD3 (frozen, train mode); per class a
real batch and the class's synthetic images, one Siamese DSA draw (same op and parameters)
for both, embeddings, loss = sum_c ||mean e_r - mean e_s||^2; backward; SGD on the pixels
(lr 1, momentum 0.5). AutoPalette: the synthetic images pass the palette network (1x1 conv
C->256, ReLU, 1x1 conv 256->K no bias, softmax over K, soft per-image palette) before DSA;
the colour losses Lm + Lb + 3 La (PIL median cut targets, 30% pixel sample) on 64 random
synthetic images (detached); palette SGD lr 0.05, momentum 0.5, wd 5e-4.
"""
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_convnet import ConvNetD3  # noqa: E402  (bench/torch_convnet.py)


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


# ---- Siamese DSA: one op, one parameter set for both batches -----------------------------
def dsa_draw(gen, h):
    op = int(torch.randint(0, 6, (1,), generator=gen))
    u = torch.rand(8, generator=gen)
    return op, u


def dsa_apply(x, op, u):
    n, c, h, w = x.shape
    if op == 0:  # color: brightness, saturation, contrast
        x = x + (u[0] - 0.5)
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * (u[1] * 2) + m
        m = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - m) * (u[2] + 0.5) + m
    if op == 1:  # crop: translate by up to 4 px, zeros shift in
        s = int(0.125 * h + 0.5)
        dy = int(u[0] * (2 * s + 1)) - s
        dx = int(u[1] * (2 * s + 1)) - s
        xp = F.pad(x, (s, s, s, s))
        return xp[:, :, s + dy:s + dy + h, s + dx:s + dx + w]
    if op == 2:  # cutout 16x16
        cs = int(0.5 * h + 0.5)
        oy = int(u[0] * (h + 1 - cs % 2))
        ox = int(u[1] * (w + 1 - cs % 2))
        mask = torch.ones(1, 1, h, w)
        mask[:, :, max(oy - cs // 2, 0):max(oy - cs // 2 + cs, 0), max(ox - cs // 2, 0):max(ox - cs // 2 + cs, 0)] = 0
        return x * mask
    if op == 3:  # flip
        return x.flip(3) if u[0] < 0.5 else x
    if op == 4:  # scale
        sx = 1 / 1.2 + u[0] * (1.2 - 1 / 1.2)
        sy = 1 / 1.2 + u[1] * (1.2 - 1 / 1.2)
        theta = torch.tensor([[sx, 0, 0], [0, sy, 0]], dtype=torch.float32)
    else:  # rotate
        t = (u[0] - 0.5) * 2 * 15 / 180 * math.pi
        theta = torch.tensor([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0]], dtype=torch.float32)
    grid = F.affine_grid(theta.unsqueeze(0).expand(n, 2, 3), x.shape, align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


# ---- palette network and colour losses ----------------------------------------------------
class PaletteNet(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        self.mask = nn.Sequential(nn.Conv2d(c, 256, 1), nn.ReLU(), nn.Conv2d(256, k, 1, bias=False))

    def forward(self, x):
        m = F.softmax(self.mask(x), dim=1)                       # (B, K, H, W)
        den = m.sum(dim=[2, 3]) + 1e-8                           # (B, K)
        pal = torch.einsum("bchw,bkhw->bck", x, m) / den.unsqueeze(1)
        y = torch.einsum("bkhw,bck->bchw", m, pal)
        return y, m


def median_cut_targets(x, k, mean, std):
    from PIL import Image
    out = []
    arr = ((x * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)).clamp(0, 1) * 255).round().byte()
    for img in arr:
        a = img.permute(1, 2, 0).numpy()
        q = np.asarray(Image.fromarray(a).quantize(colors=k, method=0))
        _, inv = np.unique(q, return_inverse=True)
        out.append(torch.from_numpy(inv.reshape(q.shape)))
    return torch.stack(out).long()


def color_losses(m, target, k, gen):
    b, _, h, w = m.shape
    p = h * w
    mf = m.reshape(b, k, p)
    lm = -mf.max(dim=2).values.mean()
    pbar = mf.mean(dim=2)
    lb = (pbar * torch.log(pbar + 1e-16)).sum(dim=1).mean()
    s = int(0.3 * p)
    la = 0
    onehot = F.one_hot(target.reshape(b, p), k).permute(0, 2, 1).float()
    for i in range(b):
        idx = torch.randperm(p, generator=gen)[:s]
        f = mf[i][:, idx]
        t = onehot[i][:, idx]
        a = F.normalize(f.t() @ f, dim=0)
        at = F.normalize(t.t() @ t, dim=0)
        la = la + ((a - at) ** 2).sum() / s
    la = la / b
    return lm + lb + 3.0 * la


def main():
    mode = sys.argv[1]
    threads, iters = int(sys.argv[2]), int(sys.argv[3])
    ipc, batch_real, k, classes, n_per, size, depth = (
        int(v) for v in (sys.argv[4:11] + ["40", "256", "64", "10", "300", "32", "3"][len(sys.argv[4:11]):]))
    torch.set_num_threads(threads)
    # denormals from a saturated softmax slow x86 arithmetic ~10x; ours flushes them too
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    c = h = w = None
    c, h, w = 3, size, size
    real = [torch.randn(n_per, c, h, w) for _ in range(classes)]
    syn = torch.cat([r[:ipc].clone() for r in real]).requires_grad_(True)
    opt_img = torch.optim.SGD([syn], lr=1.0, momentum=0.5)
    mean = torch.tensor([0.49, 0.48, 0.45])
    std = torch.tensor([0.25, 0.24, 0.26])
    pnet = PaletteNet(c, k) if mode == "autopalette" else None
    opt_p = torch.optim.SGD(pnet.parameters(), lr=0.05, momentum=0.5, weight_decay=5e-4) if pnet else None
    base = rss_mb()
    times = []
    for it in range(iters):
        t0 = time.perf_counter()
        net = ConvNetD3(c, h, classes, depth=depth)
        for p in net.parameters():
            p.requires_grad_(False)
        net.train()
        opt_img.zero_grad()
        if opt_p:
            opt_p.zero_grad()
        loss = 0.0
        for cls in range(classes):
            idx = torch.randperm(n_per, generator=gen)[:batch_real]
            xr = real[cls][idx]
            xs = syn[cls * ipc:(cls + 1) * ipc]
            if pnet is not None:
                xs, _ = pnet(xs)
            op, u = dsa_draw(gen, h)
            with torch.no_grad():
                er = net.embed(dsa_apply(xr, op, u)).mean(0)
            es = net.embed(dsa_apply(xs, op, u)).mean(0)
            lc = ((er - es) ** 2).sum()
            lc.backward()
            loss += float(lc)
        if pnet is not None:
            sub = torch.randperm(syn.shape[0], generator=gen)[:64]
            xsub = syn[sub].detach()
            _, msub = pnet(xsub)
            target = median_cut_targets(xsub, k, mean, std)
            cl = color_losses(msub, target, k, gen)
            opt_img.step()
            cl.backward()
            opt_p.step()
        else:
            opt_img.step()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("torch iter_first %.6f" % times[0])
    rest = times[1:] if len(times) > 1 else times
    print("torch iter_rest %.6f" % (sum(rest) / len(rest)))
    print("torch peak_rss_mb %.1f" % peak)
    print("torch growth_mb %.1f" % (peak - base))


if __name__ == "__main__":
    main()

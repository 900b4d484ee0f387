#!/usr/bin/python3
"""tests/dsa/gen_golden.py: golden tensors for the DSA ops (libapd/nn/dsa.c) from PyTorch.

Each op is implemented here from its formula (docs/method.md section 6.3) with FIXED
per-image parameters, the affine ops with F.affine_grid + F.grid_sample (bilinear, zero
padding) for both align_corners conventions. For each case it writes
tests/dsa/golden/<case>.bin (all little-endian):

    offset  size            field
    0       8               magic b"APDDSAG1"
    8       4   u32         version (1)
    12      4   u32         op (apd_dsa_op: 1 color, 2 crop, 3 cutout, 4 flip, 5 scale, 6 rotate)
    16      4   u32         align_corners (0/1)
    20      16  u32[4]      N, C, H, W
    36      4   u32         n_samples (1 = shared by the batch, else N)
    40      8   u32[2]      cut_h, cut_w
    48      56*n_samples    per sample 14 float32: brightness, saturation, contrast, dy, dx,
                            oy, ox, flip, theta[6] (integers stored exactly as floats)
    ...     4*N*C*H*W * 4   float32 tensors x (input), y (forward), g (upstream grad),
                            dx (input grad = VJP of g)

Run with Debian's torch (1.13): /usr/bin/python3 tests/dsa/gen_golden.py
The outputs are committed; CI does not need torch.
"""
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
COLOR, CROP, CUTOUT, FLIP, SCALE, ROTATE = 1, 2, 3, 4, 5, 6


def sample(**kw):
    s = dict(brightness=0.0, saturation=1.0, contrast=1.0, dy=0, dx=0, oy=0, ox=0, flip=0,
             theta=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    s.update(kw)
    return s


def per_image(samples, n):
    return samples if len(samples) == n else samples * n  # shared: broadcast


def color(x, ss):
    n = x.shape[0]
    ss = per_image(ss, n)
    b = torch.tensor([s["brightness"] for s in ss], dtype=torch.float32).view(n, 1, 1, 1)
    sat = torch.tensor([s["saturation"] for s in ss], dtype=torch.float32).view(n, 1, 1, 1)
    k = torch.tensor([s["contrast"] for s in ss], dtype=torch.float32).view(n, 1, 1, 1)
    x = x + b
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * sat + m
    m = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - m) * k + m


def crop(x, ss):
    n, c, h, w = x.shape
    ss = per_image(ss, n)
    ty = torch.tensor([s["dy"] for s in ss]).view(n, 1, 1)
    tx = torch.tensor([s["dx"] for s in ss]).view(n, 1, 1)
    gb, gy, gx = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(w), indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    xp = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return xp.permute(0, 2, 3, 1).contiguous()[gb, gy, gx].permute(0, 3, 1, 2)


def cutout(x, ss, ch, cw):
    n, c, h, w = x.shape
    ss = per_image(ss, n)
    oy = torch.tensor([s["oy"] for s in ss]).view(n, 1, 1)
    ox = torch.tensor([s["ox"] for s in ss]).view(n, 1, 1)
    gb, gy, gx = torch.meshgrid(torch.arange(n), torch.arange(ch), torch.arange(cw), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, min=0, max=h - 1)
    gx = torch.clamp(gx + ox - cw // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype)
    mask[gb, gy, gx] = 0
    return x * mask.unsqueeze(1)


def flip(x, ss):
    n = x.shape[0]
    ss = per_image(ss, n)
    f = torch.tensor([float(s["flip"]) for s in ss]).view(n, 1, 1, 1)
    return torch.where(f > 0.5, x.flip(3), x)


def affine(x, ss, ac):
    n = x.shape[0]
    ss = per_image(ss, n)
    theta = torch.tensor([s["theta"] for s in ss], dtype=torch.float32).view(n, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=bool(ac))
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=bool(ac))


def write(name, op, ac, shape, ss, ch, cw, fn, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=g) * 2.0 - 0.5).requires_grad_(True)
    y = fn(x)
    gr = torch.randn(shape, generator=g)
    y.backward(gr)
    n, c, h, w = shape
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(b"APDDSAG1")
        f.write(struct.pack("<9I", 1, op, ac, n, c, h, w, len(ss), ch))
        f.write(struct.pack("<I", cw))
        for s in ss:
            vals = [s["brightness"], s["saturation"], s["contrast"], s["dy"], s["dx"], s["oy"],
                    s["ox"], s["flip"]] + list(s["theta"])
            f.write(np.asarray(vals, dtype="<f4").tobytes())
        for t in (x.detach(), y.detach(), gr, x.grad):
            f.write(t.contiguous().numpy().astype("<f4").tobytes())
    print(f"{name}: {shape} samples={len(ss)}")


def rot(deg):
    t = deg / 180.0 * math.pi
    # float32 values, exactly what the C side reads
    c, s = float(np.float32(math.cos(t))), float(np.float32(math.sin(t)))
    return [c, -s, 0.0, s, c, 0.0]


def main():
    os.makedirs(OUT, exist_ok=True)
    N, C, H, W = 3, 3, 12, 10
    ch, cw = int(H * 0.5 + 0.5), int(W * 0.5 + 0.5)  # 6, 5
    col = [sample(brightness=0.31, saturation=1.7, contrast=0.62),
           sample(brightness=-0.45, saturation=0.2, contrast=1.44),
           sample(brightness=0.05, saturation=1.0, contrast=0.93)]
    write("color_c3", COLOR, 0, (N, C, H, W), col, ch, cw, lambda x: color(x, col), 1)
    write("color_c1", COLOR, 0, (2, 1, 11, 9), col[:2], 6, 5, lambda x: color(x, col[:2]), 2)
    cr = [sample(dy=-2, dx=3), sample(dy=4, dx=-4), sample(dy=0, dx=1)]
    write("crop", CROP, 0, (N, C, H, W), cr, ch, cw, lambda x: crop(x, cr), 3)
    cu = [sample(oy=0, ox=0), sample(oy=12, ox=9), sample(oy=5, ox=4)]
    write("cutout", CUTOUT, 0, (N, C, H, W), cu, ch, cw, lambda x: cutout(x, cu, ch, cw), 4)
    cu32 = [sample(oy=31, ox=2), sample(oy=16, ox=32)]
    write("cutout32", CUTOUT, 0, (2, 3, 32, 32), cu32, 16, 16, lambda x: cutout(x, cu32, 16, 16), 5)
    fl = [sample(flip=1), sample(flip=0), sample(flip=1)]
    write("flip", FLIP, 0, (N, C, H, W), fl, ch, cw, lambda x: flip(x, fl), 6)
    sc = [sample(theta=[1.13, 0.0, 0.0, 0.0, 0.87, 0.0]),
          sample(theta=[0.91, 0.0, 0.0, 0.0, 1.19, 0.0]),
          sample(theta=[1.0, 0.0, 0.0, 0.0, 1.05, 0.0])]
    ro = [sample(theta=rot(11.3)), sample(theta=rot(-14.2)), sample(theta=rot(3.7))]
    for ac in (0, 1):
        write(f"scale_ac{ac}", SCALE, ac, (N, C, H, W), sc, ch, cw, lambda x: affine(x, sc, ac), 7 + ac)
        write(f"rotate_ac{ac}", ROTATE, ac, (N, C, H, W), ro, ch, cw, lambda x: affine(x, ro, ac), 9 + ac)
    shared = [sample(theta=rot(-7.9))]
    write("rotate_shared", ROTATE, 0, (4, 3, 16, 16), shared, 8, 8, lambda x: affine(x, shared, 0), 11)
    shared_c = [sample(brightness=-0.2, saturation=0.4, contrast=1.3)]
    write("color_shared", COLOR, 0, (4, 3, 16, 16), shared_c, 8, 8, lambda x: color(x, shared_c), 12)
    # the resolutions of ConvNetD4 / D5 (64 and 128 px): the largest crop shift there (8 / 16 px),
    # a cutout of half the side at the border, and the interpolating ops on big grids
    cr64 = [sample(dy=-8, dx=8), sample(dy=5, dx=-7)]
    write("crop64", CROP, 0, (2, 3, 64, 64), cr64, 32, 32, lambda x: crop(x, cr64), 13)
    cu128 = [sample(oy=127, ox=3)]
    write("cutout128", CUTOUT, 0, (1, 3, 128, 128), cu128, 64, 64, lambda x: cutout(x, cu128, 64, 64), 14)
    ro128 = [sample(theta=rot(-14.6))]
    write("rotate128", ROTATE, 0, (1, 3, 128, 128), ro128, 64, 64, lambda x: affine(x, ro128, 0), 15)
    sc128 = [sample(theta=[0.84, 0.0, 0.0, 0.0, 1.17, 0.0])]
    write("scale128_ac1", SCALE, 1, (1, 3, 128, 128), sc128, 64, 64, lambda x: affine(x, sc128, 1), 16)


if __name__ == "__main__":
    main()

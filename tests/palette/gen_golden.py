#!/usr/bin/python3
"""gen_golden.py: PyTorch golden tensors for the palette-network tests (tests/palette).

Run with /usr/bin/python3 (Debian torch 1.13); CI does not run it, the generated files are
committed:  /usr/bin/python3 tests/palette/gen_golden.py tests/palette/golden

The palette network and losses are written from the formulas in docs/method.md
(sections 2.2, 2.3, 3.2), in float64, with autograd for every gradient.

File format (little-endian), one file per case:
    char magic[4] = "APDG"; u32 version = 1; u32 n_tensors;
    n_tensors x { u32 name_len; char name[name_len]; u32 dtype (0 = f32, 1 = i32);
                  u32 ndim; u32 dims[ndim]; data (prod(dims) values) }
"""
import os
import struct
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def write(path, tensors):
    with open(path, "wb") as f:
        f.write(b"APDG")
        f.write(struct.pack("<II", 1, len(tensors)))
        for name, t in tensors:
            a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
            if a.dtype.kind in "iub":
                dt, a = 1, a.astype("<i4")
            else:
                dt, a = 0, a.astype("<f4")
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<II", dt, a.ndim))
            f.write(struct.pack("<%dI" % a.ndim, *a.shape))
            f.write(np.ascontiguousarray(a).tobytes())


def forward(x, w1, b1, w2, T):
    B, C, H, W = x.shape
    K = w2.shape[0]
    P = H * W
    xf = x.reshape(B, C, P)
    h = torch.relu(torch.einsum("jc,bcp->bjp", w1, xf) + b1[None, :, None])
    z = torch.einsum("kj,bjp->bkp", w2, h)
    m = torch.softmax(z / T, dim=1)                                  # (B, K, P)
    den = m.sum(-1) + 1e-8                                            # (B, K)
    pal = torch.einsum("bcp,bkp->bck", xf, m) / den[:, None, :]       # (B, C, K)
    y = torch.einsum("bck,bkp->bcp", pal, m)                          # (B, C, P)
    return m, pal, y.reshape(B, C, H, W)


def hard(x, m):
    B, C, H, W = x.shape
    K = m.shape[1]
    xf = x.reshape(B, C, -1)
    idx = m.argmax(1)                                                 # (B, P)
    onehot = torch.nn.functional.one_hot(idx, K).transpose(1, 2).to(x.dtype)  # (B, K, P)
    cnt = onehot.sum(-1)
    s = torch.einsum("bcp,bkp->bck", xf, onehot)
    hpal = torch.where(cnt[:, None, :] > 0, s / cnt.clamp_min(1)[:, None, :], torch.zeros_like(s))
    yh = torch.gather(hpal, 2, idx[:, None, :].expand(B, C, -1))
    return idx, hpal, yh.reshape(B, C, H, W)


def loss_lm(m):
    return -m.max(-1)[0].mean()


def loss_lb(m):
    pbar = m.mean(-1)
    return (pbar * torch.log(pbar + 1e-16)).sum(-1).mean()


def loss_conf(m):
    return -(m * torch.log(m + 1e-16)).sum(1).mean()


def loss_la(m, target, sample):
    B, K, P = m.shape
    S = sample.shape[1]
    F = torch.gather(m, 2, sample[:, None, :].expand(B, K, S))        # (B, K, S)
    M = torch.nn.functional.one_hot(target, K).transpose(1, 2).to(m.dtype)
    Tt = torch.gather(M, 2, sample[:, None, :].expand(B, K, S))
    A = torch.nn.functional.normalize(F.transpose(1, 2) @ F, p=2, dim=1)
    At = torch.nn.functional.normalize(Tt.transpose(1, 2) @ Tt, p=2, dim=1)
    return ((A - At) ** 2).sum((1, 2)).mean() / S


def case(path, seed, B, C, H, W, K, hidden, T, scale):
    g = torch.Generator().manual_seed(seed)
    P = H * W
    S = int(0.3 * P)
    x = torch.randn(B, C, H, W, generator=g)
    w1 = (torch.rand(hidden, C, generator=g) * 2 - 1) / C ** 0.5
    b1 = (torch.rand(hidden, generator=g) * 2 - 1) / C ** 0.5
    w2 = (torch.rand(K, hidden, generator=g) * 2 - 1) / hidden ** 0.5 * 3  # sharper softmax
    dy = torch.randn(B, C, H, W, generator=g)
    dm = torch.randn(B, K, P, generator=g) * 0.1
    target = torch.randint(0, K, (B, P), generator=g)
    sample = torch.stack([torch.randperm(P, generator=g)[:S] for _ in range(B)])

    out = [("dims", torch.tensor([B, C, H, W, K, hidden, S], dtype=torch.int32)),
           ("scalars", torch.tensor([T, scale])),
           ("x", x), ("w1", w1), ("b1", b1), ("w2", w2), ("dy", dy), ("dm", dm),
           ("target", target.int()), ("sample", sample.int())]

    params = [t.clone().requires_grad_(True) for t in (x, w1, b1, w2)]
    xr, w1r, b1r, w2r = params
    m, pal, y = forward(xr, w1r, b1r, w2r, T)
    idx, hpal, yh = hard(x, m.detach())
    out += [("m", m), ("pal", pal), ("y", y), ("idx", idx.int()), ("hpal", hpal), ("y_hard", yh)]

    # task backward: L = sum(y * dy); params scaled by `scale`, x not
    gx, g1, gb, g2 = torch.autograd.grad((y * dy).sum(), params, retain_graph=True)
    out += [("task_dx", gx), ("task_dw1", g1 * scale), ("task_db1", gb * scale), ("task_dw2", g2 * scale)]
    # dm backward: L = sum(m * dm)
    hx, h1, hb, h2 = torch.autograd.grad((m * dm).sum(), params, retain_graph=True)
    out += [("dm_dx", hx), ("dm_dw1", h1), ("dm_db1", hb), ("dm_dw2", h2)]

    # losses: values and dL/dm
    md = m.detach().clone().requires_grad_(True)
    for name, fn in (("lm", loss_lm), ("lb", loss_lb), ("conf", loss_conf),
                     ("la", lambda mm: loss_la(mm, target, sample))):
        v = fn(md)
        (gm,) = torch.autograd.grad(v, md)
        out += [("loss_" + name, v.reshape(1)), ("grad_" + name, gm)]
    # combined colour loss through the network (weights 1, 1, 3, 0.5)
    tot = loss_lm(m) + loss_lb(m) + 3 * loss_la(m, target, sample) + 0.5 * loss_conf(m)
    c1, cb, c2 = torch.autograd.grad(tot, params[1:])
    out += [("color_total", tot.reshape(1)), ("color_dw1", c1), ("color_db1", cb), ("color_dw2", c2)]
    write(path, out)
    print("wrote", path, "(%d bytes)" % os.path.getsize(path))


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "golden")
    os.makedirs(d, exist_ok=True)
    case(os.path.join(d, "rgb.bin"), 1, B=2, C=3, H=6, W=5, K=8, hidden=256, T=1.0, scale=0.5)
    case(os.path.join(d, "grey_t.bin"), 2, B=3, C=1, H=4, W=4, K=4, hidden=256, T=0.7, scale=2.0)
    case(os.path.join(d, "rgb12.bin"), 3, B=2, C=3, H=12, W=12, K=16, hidden=256, T=1.0, scale=1.0)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""gen_golden.py: write the NN engine's golden tensors with PyTorch (Debian python3-torch 1.13).

Run from anywhere with /usr/bin/python3 (torch is not in CI; the outputs are committed):
    /usr/bin/python3 tests/nn/gen_golden.py

Every file in tests/nn/golden/ is little-endian:
    magic "APDGOLD1" (8 bytes), u32 version = 1, u32 n_tensors,
    per tensor: u32 name_len, name (ASCII, no NUL), u32 ndim, u32 dims[ndim], f32 data.
Inputs and weights are float32 values; PyTorch computes in float64 and the results are
stored as float32 (so the reference is exact to float32 rounding). Backward outputs come
from autograd with the upstream gradient stored alongside (named "dout" / "R").
ConvNet parameter names follow the C engine (conv0.weight, norm0.bias, classifier.weight...),
and the network is the DD-literature ConvNet: [conv3x3 -> GroupNorm(C, C) -> ReLU ->
AvgPool2d(2)] x depth -> flatten -> Linear.
"""
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
torch.manual_seed(20261128)
torch.set_num_threads(1)


def write(name, tensors):
    path = os.path.join(OUT, name + ".bin")
    with open(path, "wb") as f:
        f.write(b"APDGOLD1")
        f.write(struct.pack("<II", 1, len(tensors)))
        for key, t in tensors:
            t = t.detach().to(torch.float32).contiguous()
            kb = key.encode("ascii")
            f.write(struct.pack("<I", len(kb)))
            f.write(kb)
            f.write(struct.pack("<I", t.dim()))
            for d in t.shape:
                f.write(struct.pack("<I", d))
            f.write(t.numpy().astype("<f4").tobytes())
    print("wrote", path, os.path.getsize(path), "bytes")


def rnd(*shape, lo=-1.0, hi=1.0):
    """Random float32 values (exactly what the C side reads), promoted to float64 for the
    computation so the golden outputs are (nearly) exact and the C engine's float32 error is
    measured alone rather than against PyTorch's own float32 round-off."""
    t = (torch.rand(*shape) * (hi - lo) + lo).to(torch.float32)
    return t.to(torch.float64).requires_grad_(True)


def dims(*v):
    return torch.tensor(v, dtype=torch.float32)


def conv_case(name, N, Ci, H, W, Co, k, pad):
    x, w, b = rnd(N, Ci, H, W), rnd(Co, Ci, k, k), rnd(Co)
    y = F.conv2d(x, w, b, padding=pad)
    dout = (torch.rand(y.shape) * 2 - 1).to(torch.float64)
    y.backward(dout)
    write(name, [("dims", dims(N, Ci, H, W, Co, k, pad)), ("x", x), ("w", w), ("b", b), ("y", y),
                 ("dout", dout), ("dx", x.grad), ("dw", w.grad), ("db", b.grad)])


def main():
    os.makedirs(OUT, exist_ok=True)
    conv_case("conv3x3_pad1", 2, 3, 6, 7, 4, 3, 1)
    conv_case("conv3x3_pad3", 2, 1, 5, 5, 3, 3, 3)
    conv_case("conv3x3_pad0", 1, 5, 6, 6, 6, 3, 0)
    conv_case("conv1x1", 2, 4, 3, 5, 3, 1, 0)

    # instance norm = GroupNorm(C, C), eps 1e-5, biased variance
    N, C, H, W = 2, 3, 5, 4
    x = rnd(N, C, H, W, lo=-2, hi=3)
    g, bt = rnd(C, lo=0.5, hi=1.5), rnd(C)
    y = F.group_norm(x, C, g, bt, eps=1e-5)
    dout = (torch.rand(y.shape) * 2 - 1).to(torch.float64)
    y.backward(dout)
    write("instnorm", [("dims", dims(N, C, H * W)), ("x", x), ("gamma", g), ("beta", bt), ("y", y),
                       ("dout", dout), ("dx", x.grad), ("dgamma", g.grad), ("dbeta", bt.grad)])

    x = rnd(3, 4, 5)
    y = F.relu(x)
    dout = (torch.rand(y.shape) * 2 - 1).to(torch.float64)
    y.backward(dout)
    write("relu", [("x", x), ("y", y), ("dout", dout), ("dx", x.grad)])

    x = rnd(2, 3, 4, 6)
    y = F.avg_pool2d(x, 2)
    dout = (torch.rand(y.shape) * 2 - 1).to(torch.float64)
    y.backward(dout)
    write("avgpool2", [("dims", dims(6, 4, 6)), ("x", x), ("y", y), ("dout", dout), ("dx", x.grad)])

    x, w, b = rnd(4, 9), rnd(5, 9), rnd(5)
    y = F.linear(x, w, b)
    dout = (torch.rand(y.shape) * 2 - 1).to(torch.float64)
    y.backward(dout)
    write("linear", [("dims", dims(4, 9, 5)), ("x", x), ("w", w), ("b", b), ("y", y), ("dout", dout),
                     ("dx", x.grad), ("dw", w.grad), ("db", b.grad)])

    x = rnd(2, 6, 3, 4, lo=-3, hi=3)
    y = F.softmax(x, dim=1)
    dout = (torch.rand(y.shape) * 2 - 1).to(torch.float64)
    y.backward(dout)
    write("softmax", [("dims", dims(2, 6, 12)), ("x", x), ("y", y), ("dout", dout), ("dx", x.grad)])

    z = rnd(5, 7, lo=-3, hi=3)
    lab = torch.tensor([0, 6, 3, 3, 1])
    loss = F.cross_entropy(z, lab)
    loss.backward()
    write("xent", [("dims", dims(5, 7)), ("logits", z), ("labels", lab.float()), ("loss", loss),
                   ("dlogits", z.grad)])

    convnet_case("convnet_small", 3, 3, 8, 8, width=8, depth=2, norm=True, classes=4)
    convnet_case("convnet_small_nonorm", 2, 1, 8, 8, width=6, depth=2, norm=False, classes=3)
    convnet_case("convnet_d3_fmnist_w32", 2, 1, 28, 28, width=32, depth=3, norm=True, classes=10)
    convnet_case("convnetd3_cifar", 2, 3, 32, 32, width=128, depth=3, norm=True, classes=10)
    # the literature's deeper nets at their resolutions (the depth rule of apd/nn.h):
    # ConvNetD4 at 64x64 (Tiny ImageNet), ConvNetD5 at 128x128 (ImageNette / ImageWoof)
    # (ReLU kinks moved away from the pre-activations: see clear_kinks)
    convnet_case("convnetd4_64", 2, 3, 64, 64, width=128, depth=4, norm=True, classes=10, kink_margin=2e-5)
    convnet_case("convnetd5_128", 2, 3, 128, 128, width=128, depth=5, norm=True, classes=10,
                 kink_margin=2e-5)


def clear_kinks(x, P, depth, width, pad1, margin):
    """Nudge each norm bias (beta) until no pre-activation of its channel lies within `margin`
    of the ReLU kink. With millions of units (ConvNetD5 at 128 px) some land within float32
    round-off of 0; there the float32 engine and the float64 reference take different sides
    of the kink, and the gradient of that unit's whole receptive field (and, through the
    weight sums, whole rows of the weight gradients) differs by far more than round-off.
    Moving beta shifts the channel's pre-activations together, so a deterministic sequence
    of small shifts finds one with no unit near 0. Layer by layer, in float64."""
    a = x.detach()
    for l in range(depth):
        c = F.conv2d(a, P[f"conv{l}.weight"].detach(), P[f"conv{l}.bias"].detach(),
                     padding=pad1 if l == 0 else 1)
        mean = c.mean(dim=(2, 3), keepdim=True)
        xhat = (c - mean) / torch.sqrt(c.var(dim=(2, 3), unbiased=False, keepdim=True) + 1e-5)
        g, b = P[f"norm{l}.weight"], P[f"norm{l}.bias"]
        moved = 0
        with torch.no_grad():
            for ch in range(width):
                z = xhat[:, ch] * g[ch]
                for t in range(200):
                    if (z + b[ch]).abs().min().item() >= margin:
                        break
                    b[ch] += (0.001 * (t + 1)) * (1 if t % 2 == 0 else -1)
                    moved += t == 0
                else:
                    raise RuntimeError("no kink-free bias for layer %d channel %d" % (l, ch))
        print("  layer %d: %d of %d norm biases moved off a ReLU kink" % (l, moved, width))
        a = F.avg_pool2d(F.relu(xhat * g.detach().view(1, -1, 1, 1) + b.detach().view(1, -1, 1, 1)), 2)


def convnet_case(name, N, C, H, W, width, depth, norm, classes, kink_margin=0.0):
    """ConvNet forward + backward with fixed (random) weights and inputs.
    loss = cross_entropy(logits, labels) + 0.1 * sum(embed * R)."""
    pad1 = 3 if (H == 28 and W == 28) else 1
    params = []
    ci, h, w = C, H, W
    for l in range(depth):
        fan = ci * 9
        bound = 1.0 / fan ** 0.5
        params.append((f"conv{l}.weight", rnd(width, ci, 3, 3, lo=-bound, hi=bound)))
        params.append((f"conv{l}.bias", rnd(width, lo=-bound, hi=bound)))
        if norm:
            params.append((f"norm{l}.weight", rnd(width, lo=0.7, hi=1.3)))
            params.append((f"norm{l}.bias", rnd(width, lo=-0.3, hi=0.3)))
        pad = pad1 if l == 0 else 1
        h, w = (h + 2 * pad - 2) // 2, (w + 2 * pad - 2) // 2
        ci = width
    E = width * h * w
    bound = 1.0 / E ** 0.5
    params.append(("classifier.weight", rnd(classes, E, lo=-bound, hi=bound)))
    params.append(("classifier.bias", rnd(classes, lo=-bound, hi=bound)))
    P = dict(params)

    x = rnd(N, C, H, W, lo=-2, hi=2)
    lab = torch.randint(0, classes, (N,))
    R = (torch.rand(N, E) * 2 - 1).to(torch.float64)
    if kink_margin > 0:
        with torch.no_grad():
            clear_kinks(x, P, depth, width, pad1, kink_margin)
            for l in range(depth):  # the nudged biases stay float32 values, as the C side reads them
                b = P[f"norm{l}.bias"]
                b.copy_(b.to(torch.float32).to(torch.float64))
    a = x
    for l in range(depth):
        a = F.conv2d(a, P[f"conv{l}.weight"], P[f"conv{l}.bias"], padding=pad1 if l == 0 else 1)
        if norm:
            a = F.group_norm(a, width, P[f"norm{l}.weight"], P[f"norm{l}.bias"], eps=1e-5)
        a = F.relu(a)
        a = F.avg_pool2d(a, 2)
    emb = a.reshape(N, -1)
    logits = F.linear(emb, P["classifier.weight"], P["classifier.bias"])
    loss = F.cross_entropy(logits, lab) + 0.1 * (emb * R).sum()
    loss.backward()
    out = [("dims", dims(N, C, H, W, width, depth, 1 if norm else 0, classes)), ("x", x),
           ("labels", lab.float()), ("R", R), ("logits", logits), ("embed", emb), ("loss", loss),
           ("dx", x.grad)]
    out += [(k, v) for k, v in params]
    out += [("grad." + k, v.grad) for k, v in params]
    write(name, out)


if __name__ == "__main__":
    sys.exit(main())

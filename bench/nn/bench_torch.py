#!/usr/bin/python3
"""bench_torch.py: the PyTorch side of bench_nn (same network, same batch, same threads).

Usage: bench_torch.py C H W BATCH THREADS REPS
Prints one line per measurement: "torch <what> <images/s>" (wall clock, best of reps),
"torch <what>_cpu <images per CPU-second>" (user + system time of the process, less sensitive
to other load on a shared machine) and "torch peak_rss_mb <MB>".
The network is the DD-literature ConvNetD3 (conv3x3 128 -> GroupNorm(128,128) -> ReLU ->
AvgPool2d(2)) x 3 -> Linear(2048, 10); input requires grad (d loss / d input is computed,
as distillation needs), cross-entropy loss.
"""
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_convnet import ConvNetD3  # noqa: E402  (bench/torch_convnet.py)


def main():
    c, h, w, batch, threads, reps = (int(v) for v in sys.argv[1:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = ConvNetD3(c, h)
    x = torch.randn(batch, c, h, w)
    y = torch.randint(0, 10, (batch,))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def fwd():
        with torch.no_grad():
            net(x)

    def fwdbwd():
        xx = x.clone().requires_grad_(True)
        net.zero_grad(set_to_none=False)
        loss = F.cross_entropy(net(xx), y)
        loss.backward()

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    for name, fn in (("fwd", fwd), ("fwdbwd", fwdbwd)):
        fn()  # warm-up
        best, best_cpu = 0.0, 0.0
        for _ in range(reps):
            t, c = time.perf_counter(), cpu()
            fn()
            dt, dc = time.perf_counter() - t, cpu() - c
            best = max(best, batch / dt)
            best_cpu = max(best_cpu, batch / max(dc, 1e-9))
        print(f"torch {name} {best:.1f}", flush=True)
        print(f"torch {name}_cpu {best_cpu:.1f}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"torch peak_rss_mb {peak / 1024:.1f}")
    print(f"torch step_rss_mb {(peak - base_rss) / 1024:.1f}")


if __name__ == "__main__":
    main()

"""apd.torch under a real torch.distributed job: 2 ranks started by torch.multiprocessing.spawn,
gloo on 127.0.0.1, DataLoader workers 0 and 2 with the fork and spawn start methods, the
iterable dataset (rank/world size taken from the process group where the dataset is built)
and the map-style dataset with DistributedSampler. Every sample must be served exactly once
per epoch, except the documented padding of the last step, and every rank must get the same
number of batches."""
import json
import math
import socket

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as tmp  # noqa: E402

import ddp_helper  # noqa: E402

WORLD, BATCH = 2, 16
N = 203  # = 6 steps of 2 x 16 + 11: drop_last=False pads
CONFIGS = [(kind, workers, ctx) for kind in ("iterable", "map")
           for workers, ctx in ((0, "none"), (2, "fork"), (2, "spawn"))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo not available")
    d = tmp_path_factory.mktemp("ddp")
    path = str(d / "ids.apd")
    ddp_helper.make_ids_file(path, N)
    tmp.spawn(ddp_helper.rank_main, args=(WORLD, free_port(), path, str(d), CONFIGS, BATCH),
              nprocs=WORLD, join=True)
    return [json.load(open(d / ("rank%d.json" % r))) for r in range(WORLD)]


def expected_padding(kind):
    if kind == "map":  # DistributedSampler: total rounded up to a multiple of the world size
        return math.ceil(N / WORLD) * WORLD - N
    rem = N % (WORLD * BATCH)  # include/apd/loader.h: last step of ceil(rem / W) per rank
    return WORLD * math.ceil(rem / WORLD) - rem if rem else 0


@pytest.mark.parametrize("cfg", CONFIGS, ids=["%s-%d-%s" % c for c in CONFIGS])
def test_every_sample_once_per_epoch(ddp_results, cfg):
    key = "%s/%d/%s" % cfg
    per_rank = [r[key] for r in ddp_results]
    pad = expected_padding(cfg[0])
    orders = []
    for e in range(2):
        ids = [i for r in per_rank for i in r["epochs"][e]["ids"]]
        sizes = [r["epochs"][e]["sizes"] for r in per_rank]
        # DDP needs the same number of batches on every rank
        assert len({len(s) for s in sizes}) == 1, (key, e, sizes)
        assert len(sizes[0]) == per_rank[0]["len"], (key, e, "len() differs from the pass")
        served = len(ids)
        print("%s epoch %d: %d served, %d distinct, padding %d (expected %d)"
              % (key, e, served, len(set(ids)), served - N, pad))
        assert sorted(set(ids)) == list(range(N)), (key, e, "samples missing")
        assert served == N + pad, (key, e, served)
        orders.append([r["epochs"][e]["ids"] for r in per_rank])
    assert orders[0] != orders[1], (key, "set_epoch did not change the order")


def test_iterable_same_batches_for_any_worker_count(ddp_results):
    # rank r yields exactly apd.Loader(rank=r, world_size=2)'s batches, whatever the workers
    for r in range(WORLD):
        runs = [ddp_results[r]["iterable/%d/%s" % (w, c)]["epochs"]
                for w, c in ((0, "none"), (2, "fork"), (2, "spawn"))]
        assert runs[0] == runs[1] == runs[2]

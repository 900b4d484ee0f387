"""Rank processes for test_ddp.py (a module of its own so that processes started by
torch.multiprocessing.spawn import it without pytest).

Each rank joins a real gloo process group on 127.0.0.1, builds the datasets WITHOUT passing
rank/world_size (they must come from the process group), iterates every configuration for
two epochs and writes the record ids it received to OUTDIR/rank<r>.json."""
import json
import os

import numpy as np


def ids_of(x):
    """Record ids of a uint8 CHW batch made by make_ids_file: pixel (0, 0) of channels 0 and 1
    hold the id in base 256."""
    a = x.numpy()
    return (a[:, 0, 0, 0].astype(np.int64) + 256 * a[:, 1, 0, 0].astype(np.int64)).tolist()


def make_ids_file(path, n, n_classes=7):
    """n direct-colour 3x4x4 records through apd.write; record i encodes i in its first pixel
    and has label i % n_classes."""
    import apd
    x = np.random.RandomState(n).randint(0, 256, (n, 3, 4, 4)).astype(np.uint8)
    i = np.arange(n)
    x[:, 0, 0, 0], x[:, 1, 0, 0] = i % 256, i // 256
    apd.write(path, x, i % n_classes, class_names=["c%d" % j for j in range(n_classes)],
              meta={"method": "test"})
    return x


def run_configs(path, configs, batch):
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler

    import apd.torch as at
    out = {}
    for kind, workers, ctx in configs:
        key = "%s/%d/%s" % (kind, workers, ctx)
        mp_ctx = ctx if workers else None
        # spawned workers are slow to start (each imports torch): keep them for both epochs,
        # which also checks that set_epoch reaches persistent workers
        persist = ctx == "spawn"
        if kind == "iterable":
            ds = at.ApdIterableDataset(path, batch_size=batch, seed=5, layout="chw")
            assert (ds.rank, ds.world_size) == (dist.get_rank(), dist.get_world_size())
            dl = DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context=mp_ctx,
                            persistent_workers=persist)
            sampler = None
        else:
            ds = at.ApdDataset(path, layout="chw")
            sampler = DistributedSampler(ds, shuffle=True, seed=1)
            dl = DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                            multiprocessing_context=mp_ctx, persistent_workers=persist)
        epochs = []
        for epoch in range(2):
            (ds if sampler is None else sampler).set_epoch(epoch)
            got, sizes = [], []
            for x, y in dl:
                ids = ids_of(x)
                if [i % 7 for i in ids] != y.tolist():
                    raise AssertionError("%s: labels do not match records" % key)
                got += ids
                sizes.append(len(ids))
            epochs.append({"ids": got, "sizes": sizes})
        out[key] = {"epochs": epochs, "len": len(dl)}
        del dl  # stops persistent workers
    return out


def rank_main(rank, world, port, path, outdir, configs, batch):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank,
                            world_size=world)
    try:
        res = run_configs(path, [tuple(c) for c in configs], batch)
        with open(os.path.join(outdir, "rank%d.json" % rank), "w") as f:
            json.dump(res, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()

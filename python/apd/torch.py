"""apd.torch: PyTorch datasets over .apd files (needs torch; `import apd.torch`).

ApdDataset (map-style): ds[i] -> (tensor, label); use with any sampler (e.g.
DistributedSampler) and DataLoader workers.

ApdIterableDataset: yields whole batches decoded by the C loader (use
DataLoader(ds, batch_size=None, num_workers=...)). Work is split across DataLoader workers
AND DDP ranks: with R ranks and K workers per rank, worker k of rank r runs the loader as
rank r*K + k of R*K, so every sample of an epoch is served once (plus the documented
wrap-around padding when drop_last=False and the epoch does not divide evenly) and every
worker yields the same number of batches. Call set_epoch(e) before each epoch (as with
DistributedSampler); without it, each process's loader simply moves on to the next epoch,
which is also what persistent workers (persistent_workers=True) do: they keep their loader
and advance epoch by epoch (set_epoch does not reach them).

Both open the file lazily in the process that reads (LMDB environments must not cross
fork()), hold no handle when pickled, and so work with the fork and spawn start methods.
"""
import os

import numpy as np
import torch
from torch.utils.data import Dataset as _TorchDataset
from torch.utils.data import IterableDataset as _TorchIterable
from torch.utils.data import get_worker_info

import apd

__all__ = ["ApdDataset", "ApdIterableDataset"]


def _dist_rank_world():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _norm(info, mean, std):
    c = info["c"]
    m = list(mean) if mean is not None else list(info["mean"])
    s = list(std) if std is not None else list(info["std"])
    s = [x if x > 0 else 1.0 for x in s]
    return (np.asarray(m[:c], np.float32).reshape(c, 1, 1),
            (np.float32(1.0) / np.asarray(s[:c], np.float32)).reshape(c, 1, 1))


class ApdDataset(_TorchDataset):
    """Map-style dataset: ds[i] -> (image tensor, int label).

    layout "float" (default): float32 CHW, (v/255 - mean) / std with the file's mean/std
    (or mean=/std=), bit-identical to apd.Loader's float output; "chw"/"hwc": uint8."""

    def __init__(self, path, layout="float", transform=None, mean=None, std=None):
        if layout not in ("float", "chw", "hwc"):
            raise ValueError("layout must be 'float', 'chw' or 'hwc'")
        self.path = os.fspath(path)
        self.layout = layout
        self.transform = transform
        with apd.open(self.path) as ds:  # read geometry now, keep no handle
            self._n = len(ds)
            self.info = ds.info
            self.classes = list(ds.classes)
        self._mean, self._inv_std = _norm(self.info, mean, std)
        self._ds = None
        self._pid = None

    def _reader(self):
        if self._ds is None or self._pid != os.getpid():
            self._ds = apd.open(self.path, "hwc" if self.layout == "hwc" else "chw")
            self._pid = os.getpid()
        return self._ds

    def __len__(self):
        return self._n

    def __getitem__(self, i):
        img, label = self._reader()[i]
        if self.layout == "float":
            img = (img.astype(np.float32) * np.float32(1.0 / 255.0) - self._mean) * self._inv_std
        x = torch.from_numpy(img)
        if self.transform is not None:
            x = self.transform(x)
        return x, label

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_ds"] = None
        d["_pid"] = None
        return d


class ApdIterableDataset(_TorchIterable):
    """Batches from the C loader, split over DataLoader workers and DDP ranks.

    rank/world_size default to torch.distributed's (or 0/1). Yields (images, labels) tensors:
    images float32 NCHW normalised ("float"), uint8 NCHW ("chw") or NHWC ("hwc"); labels
    int64. Use DataLoader(ds, batch_size=None, num_workers=K).

    Resume: load_state_dict(state) makes the next iteration start at state (a dict from
    apd.Loader.state_dict() or from state_dict(batches_seen, num_workers) below); it works
    across world sizes and worker counts because the epoch order is global."""

    def __init__(self, path, batch_size=256, shuffle=True, seed=0, drop_last=False,
                 layout="float", threads=1, prefetch=0, rank=None, world_size=None,
                 classes=None, mean=None, std=None, skip_corrupt=False):
        self.path = os.fspath(path)
        self.kw = dict(batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                       layout=layout, threads=threads, prefetch=prefetch, classes=classes,
                       mean=mean, std=std, skip_corrupt=skip_corrupt)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._start = None
        self._gen = 0          # bumped by set_epoch / load_state_dict
        self._loader = None    # this process's loader (opened lazily, never pickled)
        self._loader_key = None
        self._loader_gen = -1
        with apd.open(self.path) as ds:  # validates the path early, keeps no handle
            self._n_records = len(ds)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)
        self._start = None
        self._gen += 1

    def load_state_dict(self, state):
        self._start = dict(state)
        self.epoch = int(state["epoch"])
        self._gen += 1

    def _world(self):
        r, w = _dist_rank_world()
        r = self.rank if self.rank is not None else r
        w = self.world_size if self.world_size is not None else w
        return r, w

    def state_dict(self, batches_seen, num_workers=0):
        """Global state after this rank's DataLoader yielded `batches_seen` batches of the
        current epoch (each rank the same number). Exact when batches_seen is a multiple of
        max(1, num_workers): workers take steps in turn, so then every worker of every rank
        has done batches_seen / num_workers steps."""
        r, w = self._world()
        nw = max(1, int(num_workers))
        per = int(self.kw["batch_size"]) * w * nw
        start = self._start["cursor"] if self._start else 0
        with apd.Loader(self.path, **dict(self.kw, layout="chw", threads=1, prefetch=0),
                        rank=0, world_size=w * nw, epoch=self.epoch) as l:
            n = l.num_samples
            if self._start:
                l.load_state_dict(self._start)
            total = l.batches_left
        steps = int(batches_seen) // nw
        cursor = n if steps >= total and total > 0 else min(start + steps * per, n)
        return {"seed": int(self.kw["seed"]), "epoch": self.epoch, "cursor": cursor, "n": n}

    def __iter__(self):
        r, w = self._world()
        wi = get_worker_info()
        nw, wid = (wi.num_workers, wi.id) if wi is not None else (1, 0)
        key = (os.getpid(), r * nw + wid, w * nw)
        loader = self._loader if self._loader_key == key else None
        if loader is None or self._gen != self._loader_gen:
            # first use in this process, or set_epoch / load_state_dict since the last epoch
            if loader is None:
                loader = apd.Loader(self.path, rank=key[1], world_size=key[2], epoch=self.epoch,
                                    **self.kw)
                self._loader, self._loader_key = loader, key
            else:
                loader.set_epoch(self.epoch)
            if self._start is not None:
                loader.load_state_dict(self._start)
            self._loader_gen = self._gen
        # else: a persistent worker (or a loop without set_epoch): the loader already stands
        # at the next epoch (or where an interrupted epoch stopped)
        shm = wi is not None  # in a worker process: decode straight into shared memory
        dtype = {np.uint8: torch.uint8, np.float32: torch.float32}[loader._dtype]
        while True:
            if shm:
                # torch sends tensors that already live in shared memory by handle, so the
                # batch is not copied again between the worker and the main process
                xt = torch.empty((loader.batch_size,) + loader.image_shape, dtype=dtype).share_memory_()
                yt = torch.empty(loader.batch_size, dtype=torch.int64).share_memory_()
                b = loader.next_batch(out=(xt.numpy(), yt.numpy()))
                if b is None:
                    return
                n = len(b[1])
                yield (xt, yt) if n == loader.batch_size else (xt[:n], yt[:n])
            else:
                b = loader.next_batch()
                if b is None:
                    return
                yield torch.from_numpy(b[0]), torch.from_numpy(b[1])

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_loader"] = None
        d["_loader_key"] = None
        return d

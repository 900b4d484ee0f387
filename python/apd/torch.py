"""apd.torch: PyTorch datasets over .apd files (needs torch; `import apd.torch`).

ApdDataset (map-style): ds[i] -> (image, label); use with any sampler (e.g.
DistributedSampler) and DataLoader workers.

ApdIterableDataset: yields whole batches decoded by the C loader. Iterate it through
ApdDataLoader(ds, num_workers=K) (a torch DataLoader that counts the batches it hands out,
so ds.state_dict() needs no bookkeeping), or a plain DataLoader(ds, batch_size=None).

Sharding: the rank and world size are fixed where the dataset is built (rank=/world_size=,
else torch.distributed's process group if it is initialized then, else at the start of the
first pass in the main process) and travel with the dataset to the DataLoader workers, which
have no process group of their own under the spawn start method. Rank r of R yields exactly
the batches of apd.Loader(rank=r, world_size=R), in the same order, whatever the number of
DataLoader workers K: worker k decodes the global steps s with s % K == k, and the DataLoader
hands batches out round-robin, so batch j of a pass is global step j. So every sample of an
epoch is served once per epoch over all ranks, except the documented padding of the last
step (drop_last=False: at most R-1 samples served twice, as DistributedSampler pads), and
every rank gets the same number of batches.

Epochs: each pass (each `for` over the DataLoader) serves one epoch. set_epoch(e) (as with
DistributedSampler) or load_state_dict(state) chooses what the next pass serves; without
them the next pass serves the next epoch. Both reach persistent workers
(persistent_workers=True) through a small shared-memory block.

Both datasets open the file lazily in the process that reads (LMDB environments must not
cross fork()), hold no handle when pickled, and so work with the fork and spawn start
methods.
"""
import os

import numpy as np
import torch
from torch.utils.data import DataLoader as _TorchDataLoader
from torch.utils.data import Dataset as _TorchDataset
from torch.utils.data import IterableDataset as _TorchIterable
from torch.utils.data import get_worker_info

import apd
from apd import _lib

__all__ = ["ApdDataset", "ApdIterableDataset", "ApdDataLoader", "LAYOUTS"]

#: sample layouts: "float" float32 CHW normalised (the fast path), "chw" uint8 CHW tensors
#: (what torchvision transforms take), "hwc" uint8 HWC tensors, "pil" PIL images (needs PIL)
LAYOUTS = ("float", "chw", "hwc", "pil")


def _dist_rank_world():
    """(rank, world size) of the initialized default process group, or None."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return None


def _norm(info, mean, std):
    c = info["c"]
    m = list(mean) if mean is not None else list(info["mean"])
    s = list(std) if std is not None else list(info["std"])
    s = [x if x > 0 else 1.0 for x in s]
    return (np.asarray(m[:c], np.float32).reshape(c, 1, 1),
            (np.float32(1.0) / np.asarray(s[:c], np.float32)).reshape(c, 1, 1))


def _pil_module():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("layout='pil' needs Pillow (Debian: python3-pil)") from None
    return Image


def _to_pil(hwc):
    img = _pil_module()
    return img.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)


class _ClassInfo:
    """torchvision-style class attributes shared by both datasets: classes (the file's class
    names, or "0", "1", ... when it has none), class_to_idx, targets (label of every record
    in file order, a list of ints as torchvision's datasets have; read on first use)."""

    def _read_class_info(self, ds):
        self.info = ds.info
        names = list(ds.classes)
        self.classes = names or [str(i) for i in range(ds.info["n_classes"])]
        self._targets = None

    @property
    def class_to_idx(self):
        return {name: i for i, name in enumerate(self.classes)}

    @property
    def targets(self):
        if self._targets is None:
            with apd.open(self.path) as ds:
                self._targets = ds.targets.tolist()
        return self._targets


class ApdDataset(_TorchDataset, _ClassInfo):
    """Map-style dataset: ds[i] -> (image, label).

    layout "float" (default): float32 CHW tensor, (v/255 - mean) / std with the file's
    mean/std (or mean=/std=), bit-identical to apd.Loader's float output; "chw": uint8 CHW
    tensor (torchvision transforms accept it); "hwc": uint8 HWC tensor; "pil": a PIL image.
    transform(image) and target_transform(label) are applied as in torchvision datasets.
    soft_labels=True: the target is a float32 tensor (n_classes,), the record's soft labels
    (format 1.1) or the one-hot vector of its label (torch's cross_entropy takes it as class
    probabilities)."""

    def __init__(self, path, layout="float", transform=None, target_transform=None, mean=None,
                 std=None, soft_labels=False):
        if layout not in LAYOUTS:
            raise ValueError("layout must be one of %s" % ", ".join(LAYOUTS))
        if layout == "pil":
            _pil_module()
        self.path = _lib.path_bytes(path)[0]
        self.layout = layout
        self.transform = transform
        self.target_transform = target_transform
        with apd.open(self.path) as ds:  # read geometry now, keep no handle
            self._n = len(ds)
            self._read_class_info(ds)
            if soft_labels and not ds.info["n_classes"]:
                raise ValueError("%s: soft_labels=True needs a file with classes" % self.path)
        self.soft_labels = bool(soft_labels)
        self._mean, self._inv_std = _norm(self.info, mean, std)
        self._ds = None
        self._pid = None

    def _reader(self):
        if self._ds is None or self._pid != os.getpid():
            self._ds = apd.open(self.path, "chw" if self.layout in ("float", "chw") else "hwc")
            self._pid = os.getpid()
        return self._ds

    def __len__(self):
        return self._n

    def __getitem__(self, i):
        img, label = self._reader()[i]
        if self.soft_labels:
            label = torch.from_numpy(self._reader().soft_label(i))
        if self.layout == "pil":
            x = _to_pil(img)
        else:
            if self.layout == "float":
                img = (img.astype(np.float32) * np.float32(1.0 / 255.0) - self._mean) * \
                    self._inv_std
            x = torch.from_numpy(img)
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return x, label

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_ds"] = None
        d["_pid"] = None
        return d


# shared control block of ApdIterableDataset (int64 slots)
_GEN, _EPOCH, _START, _TRACKED, _UNTRACKED = range(5)


class ApdIterableDataset(_TorchIterable, _ClassInfo):
    """Batches from the C loader for this DDP rank, split over DataLoader workers.

    Yields (images, labels): images float32 NCHW normalised ("float"), uint8 NCHW ("chw") or
    NHWC ("hwc"); labels int64, or with soft_labels=True float32 (n, n_classes): each row the
    record's soft labels (format 1.1) or the one-hot vector of its label. transform / target_transform are applied per sample (as in
    torchvision; the results are stacked, so transform must return tensors of one shape);
    layout="pil" hands transform PIL images. Without transforms batches are decoded straight
    into shared memory.

    rank/world_size: see the module documentation. len(ds) = batches per epoch on this rank.
    state_dict() is the position after the batches handed out so far (through ApdDataLoader,
    or a DataLoader with num_workers=0); load_state_dict(state) makes the next pass resume
    there, at any world size and worker count. States are those of apd.Loader."""

    def __init__(self, path, batch_size=256, shuffle=True, seed=0, drop_last=False,
                 layout="float", threads=1, prefetch=0, rank=None, world_size=None,
                 classes=None, mean=None, std=None, skip_corrupt=False, epoch=0,
                 transform=None, target_transform=None, soft_labels=False):
        if layout not in LAYOUTS:
            raise ValueError("layout must be one of %s" % ", ".join(LAYOUTS))
        if layout == "pil":
            _pil_module()
            if transform is None:
                raise ValueError("layout='pil' needs a transform that turns each PIL image "
                                 "into a tensor (batches are stacked)")
        self.path = _lib.path_bytes(path)[0]
        self.layout = layout
        self.transform = transform
        self.target_transform = target_transform
        self.kw = dict(batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                       layout="hwc" if layout == "pil" else layout, threads=threads,
                       prefetch=prefetch, classes=classes, mean=mean, std=std,
                       skip_corrupt=skip_corrupt, soft_labels=bool(soft_labels))
        if world_size is not None:
            world_size = _lib.u32(world_size, "world_size", 1)
        if rank is not None:
            rank = _lib.integer(rank, "rank", 0, (world_size or _lib.U32_MAX) - 1)
        self._given = (rank, world_size)
        self.rank, self.world_size = None, None
        self._resolve()
        # validates every option now (range checks, file, class subset) and reads n
        with apd.Loader(self.path, **dict(self.kw, threads=1, prefetch=0), rank=self.rank,
                        world_size=self.world_size) as ld:
            self._n = ld.num_samples
        with apd.open(self.path) as ds:
            self._read_class_info(ds)
        self.epoch = _lib.u64(epoch, "epoch")
        self._start = 0        # cursor the current / next pass starts at
        self._seen = 0         # batches handed out in the current pass (main process)
        self._explicit = True  # set_epoch / load_state_dict since the last pass began
        self._ctl = torch.zeros(8, dtype=torch.int64).share_memory_()
        self._ctl[_EPOCH] = self.epoch
        self._ctl[_TRACKED] = -1
        self._wgen = -1        # worker side: the last control generation adopted
        self._wepoch = self.epoch
        self._loader = None    # this process's loader (opened lazily, never pickled)
        self._loader_key = None

    # -- rank / world size
    def _resolve(self):
        """Fill rank/world_size from the arguments, else from the process group; stays
        tentative (0 of 1, re-checked later) while neither exists."""
        r, w = self._given
        pg = _dist_rank_world()
        if w is None:
            w = pg[1] if pg else 1
        if r is None:
            r = pg[0] if pg else 0
            if r >= w:
                raise ValueError("process-group rank %d is not below world_size %d" % (r, w))
        self.rank, self.world_size = r, w
        self._tentative = pg is None and None in self._given

    def _world(self):
        if self._tentative:
            self._resolve()
        return self.rank, self.world_size

    # -- sizes and state
    def _steps(self, cursor, rank=None):
        r, w = self._world()
        return int(_lib.L.apd_loader_partition(
            self._n, cursor, self.kw["batch_size"], w, 1 if self.kw["drop_last"] else 0,
            r if rank is None else rank, 0, None, None))

    def __len__(self):
        """Batches per epoch on this rank."""
        return self._steps(0)

    @property
    def num_samples(self):
        """Selected samples per epoch (all ranks)."""
        return self._n

    def set_epoch(self, epoch):
        """Serve epoch `epoch` from its beginning in the next pass."""
        self._set(_lib.u64(epoch, "epoch"), 0)

    def load_state_dict(self, state):
        """Make the next pass resume at state (from state_dict() or apd.Loader.state_dict(),
        saved at any world size / worker count)."""
        st = {k: _lib.u64(state[k], "state[%r]" % k) for k in ("seed", "epoch", "cursor", "n")}
        if st["n"] != self._n:
            raise ValueError("%s: state is for %d samples per epoch, this dataset has %d (other "
                             "file or class subset?)" % (self.path, st["n"], self._n))
        if st["cursor"] > st["n"]:
            raise ValueError("state cursor %d > n %d" % (st["cursor"], st["n"]))
        self.kw["seed"] = st["seed"]
        self._set(st["epoch"], st["cursor"])

    def _set(self, epoch, start):
        self.epoch, self._start, self._seen, self._explicit = epoch, start, 0, True
        c = self._ctl
        c[_EPOCH], c[_START], c[_UNTRACKED] = epoch, start, 0
        c[_GEN] += 1

    def state_dict(self, batches_seen=None, num_workers=None):
        """{"seed", "epoch", "cursor", "n"}: where the samples not yet handed out start. With no
        argument it uses the count this dataset keeps (passes through ApdDataLoader or with
        num_workers=0); batches_seen= overrides it (batches this rank handed out in the
        current pass; every rank the same). num_workers is accepted for compatibility and
        not needed: the batch sequence does not depend on it."""
        if batches_seen is None:
            if int(self._ctl[_UNTRACKED]):
                raise RuntimeError(
                    "%s: DataLoader workers served batches this dataset could not count: "
                    "iterate with apd.torch.ApdDataLoader, or pass batches_seen=" % self.path)
            seen = self._seen
        else:
            seen = _lib.u64(batches_seen, "batches_seen")
        r, w = self._world()
        seed = int(self.kw["seed"])
        if seen >= self._steps(self._start):
            return {"seed": seed, "epoch": self.epoch + 1, "cursor": 0, "n": self._n}
        cursor = self._start + seen * int(self.kw["batch_size"]) * w
        return {"seed": seed, "epoch": self.epoch, "cursor": cursor, "n": self._n}

    def _begin_pass(self, tracked):
        """Main process, before a pass: the next epoch unless set_epoch / load_state_dict
        chose one; publish it to the workers (persistent ones included)."""
        if not self._explicit:
            self.epoch, self._start = self.epoch + 1, 0
        self._explicit = False
        self._seen = 0
        self._world()
        c = self._ctl
        c[_EPOCH], c[_START] = self.epoch, self._start
        c[_GEN] += 1
        if tracked:
            c[_TRACKED] = c[_GEN]
            c[_UNTRACKED] = 0

    # -- iteration
    def _process_loader(self, r, w, prefetch):
        key = (os.getpid(), r, w, prefetch)
        if self._loader_key != key:
            self._loader = apd.Loader(self.path, rank=r, world_size=w, epoch=self.epoch,
                                      **dict(self.kw, prefetch=prefetch))
            self._loader_key = key
        return self._loader

    def __iter__(self):
        wi = get_worker_info()
        if wi is None:  # this process hands the batches out itself: it counts them
            self._begin_pass(tracked=True)
            epoch, start, nw, wid = self.epoch, self._start, 1, 0
        else:
            c = self._ctl
            gen = int(c[_GEN])
            if gen != self._wgen:  # a new pass announced by the main process
                self._wgen, epoch, start = gen, int(c[_EPOCH]), int(c[_START])
                if int(c[_TRACKED]) != gen:
                    c[_UNTRACKED] = 1
            else:  # a persistent worker of a plain DataLoader without set_epoch
                epoch, start = self._wepoch + 1, 0
                c[_UNTRACKED] = 1
            self._wepoch = epoch
            nw, wid = wi.num_workers, wi.id
            if self._tentative:  # fork workers inherit the parent's process group
                self._resolve()
        r, w = self.rank, self.world_size
        ld = self._process_loader(r, w, self.kw["prefetch"] if nw == 1 else 0)
        total = self._steps(start, r)
        per = int(self.kw["batch_size"]) * w
        st = {"seed": int(self.kw["seed"]), "epoch": epoch, "cursor": start, "n": self._n}
        ld.load_state_dict(st)
        for step in range(wid, total, nw):
            if nw > 1:  # this worker's steps are wid, wid + nw, ...: position the loader
                ld.load_state_dict(dict(st, cursor=start + step * per))
            x, y = self._batch(ld, wi is not None)
            if wi is None:
                self._seen += 1
            yield x, y

    def _batch(self, ld, shm):
        plain = self.transform is None and self.target_transform is None
        if self.kw["soft_labels"]:
            b = ld.next_batch()
            if b is None:
                return (torch.empty((0,) + ld.image_shape),
                        torch.empty((0, ld.n_classes), dtype=torch.float32))
            x, y = torch.from_numpy(b[0]), torch.from_numpy(b[2])
            if self.transform is not None:
                imgs = [_to_pil(v) for v in b[0]] if self.layout == "pil" else list(x)
                x = torch.stack([self.transform(v) for v in imgs])
            if self.target_transform is not None:
                y = torch.stack([torch.as_tensor(self.target_transform(v)) for v in y])
            return x, y
        if shm and plain:
            # torch sends tensors that already live in shared memory by handle, so the batch
            # is not copied again between the worker and the main process
            dtype = torch.uint8 if ld._dtype == np.uint8 else torch.float32
            xt = torch.empty((ld.batch_size,) + ld.image_shape, dtype=dtype).share_memory_()
            yt = torch.empty(ld.batch_size, dtype=torch.int64).share_memory_()
            b = ld.next_batch(out=(xt.numpy(), yt.numpy()))
            n = 0 if b is None else len(b[1])
            return (xt, yt) if n == ld.batch_size else (xt[:n], yt[:n])
        b = ld.next_batch()
        x, y = (torch.from_numpy(b[0]), torch.from_numpy(b[1])) if b is not None else \
            (torch.empty((0,) + ld.image_shape), torch.empty(0, dtype=torch.int64))
        if plain:
            return x, y
        if self.transform is not None:
            imgs = [_to_pil(v) for v in b[0]] if self.layout == "pil" else list(x)
            x = torch.stack([self.transform(v) for v in imgs]) if imgs else x
        if self.target_transform is not None:
            ys = [self.target_transform(int(v)) for v in b[1]]
            y = torch.utils.data.default_collate(ys) if ys else y
        return x, y

    def __getstate__(self):
        if self._tentative and get_worker_info() is None:
            self._resolve()  # pickled for spawned workers: take the parent's process group
        d = self.__dict__.copy()
        d["_loader"] = None
        d["_loader_key"] = None
        return d


class _CountingIter:
    def __init__(self, it, ds):
        self._it, self._ds = it, ds

    def __iter__(self):
        return self

    def __next__(self):
        b = next(self._it)
        self._ds._seen += 1
        return b

    def __len__(self):
        return len(self._it)


class ApdDataLoader(_TorchDataLoader):
    """A torch DataLoader for an ApdIterableDataset (batch_size=None by default) that counts
    the batches it hands out, so dl.state_dict() (= dataset.state_dict()) is exact after any
    number of batches, with any number of workers, persistent or not."""

    def __init__(self, dataset, **kw):
        if not isinstance(dataset, ApdIterableDataset):
            raise TypeError("ApdDataLoader takes an apd.torch.ApdIterableDataset")
        kw.setdefault("batch_size", None)
        if kw["batch_size"] is not None:
            raise ValueError("ApdIterableDataset yields whole batches: leave batch_size=None")
        super().__init__(dataset, **kw)

    def __iter__(self):
        if self.num_workers == 0:  # the dataset counts in this process
            return super().__iter__()
        self.dataset._begin_pass(tracked=True)
        return _CountingIter(super().__iter__(), self.dataset)

    def state_dict(self):
        return self.dataset.state_dict()

    def load_state_dict(self, state):
        self.dataset.load_state_dict(state)

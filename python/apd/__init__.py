"""apd: Python binding of libapd (ctypes over libapd.so, numpy; no compiled extension).

    import apd
    ds = apd.open("train.apd")            # random access
    img, label = ds[0]                    # uint8 HWC numpy image, int label
    print(len(ds), ds.meta["method"], ds.meta.get("source"), ds.classes)

    loader = apd.Loader("train.apd", batch_size=256, shuffle=True, seed=0,
                        rank=0, world_size=1, layout="float", threads=2)
    for x, y in loader:                   # one epoch: x float32 NCHW normalised, y int64
        ...
    state = loader.state_dict()           # {"seed", "epoch", "cursor", "n"}: resume anywhere,
    loader.load_state_dict(state)         # also with another world size (elastic)

    apd.write("syn.apd", images, labels, class_names=[...], meta={"method": "dm"})

PyTorch wrappers are in apd.torch (imported on demand: `import apd.torch`); .npz / .pt
conversion in apd.interop (`python3 -m apd import|export`).
Errors raise apd.ApdError (a subclass of Exception) with the library's message and status;
bad arguments raise ValueError / TypeError / IndexError before anything reaches C.
Handles must not cross fork(): open files in each process (apd.torch does this lazily).
"""
import json
import os

import numpy as np

from . import _lib
from ._lib import ApdError

__all__ = ["open", "Dataset", "Loader", "ApdError", "version", "LAYOUTS", "write", "Writer",
           "QUANTIZERS"]

_c = _lib._c
_L = _lib.L

#: layout name -> (apd_loader_output, numpy dtype, channel-first?)
LAYOUTS = {
    "hwc": (0, np.uint8, False), "uint8": (0, np.uint8, False),
    "chw": (1, np.uint8, True),
    "float": (2, np.float32, True), "float32": (2, np.float32, True),
}


def version():
    """The library version string."""
    return _lib.text(_L.apd_version())


_check_path = _lib.path_bytes


class Dataset:
    """Random access to an .apd file (apd_reader). Use apd.open(path).

    len(ds) records; ds[i] -> (image, label) with image a uint8 numpy array, HWC by default
    (layout="chw" for CHW); ds.meta is the metadata document (dict) including provenance;
    ds.info the geometry (dict); ds.classes the class names (list, empty when the file has
    none); ds.class_to_idx {name: index}; ds.targets the labels of all records (int64 array,
    read on first use); ds.record(i) the stored palette and index map of a palette record.
    Thread-safe reads; do not share across fork() (re-open in the child)."""

    def __init__(self, path, layout="hwc"):
        if layout not in ("hwc", "chw"):
            raise ValueError("layout must be 'hwc' or 'chw'")
        self.path, bpath = _check_path(path)
        self.layout = layout
        self._pid = os.getpid()
        h = _c.c_void_p()
        err = _lib.Err()
        st = _L.apd_reader_open(_c.byref(h), bpath, None, _c.byref(err))
        if st != 0:
            raise ApdError(st, _lib.text(err.msg) or "%s: cannot open" % self.path)
        self._h = h
        fi = _lib.FileInfo()
        st = _L.apd_reader_info(h, _c.byref(fi))
        if st != 0:
            msg = _lib.text(_L.apd_reader_errmsg(h))
            self.close()
            raise ApdError(st, msg)
        self.info = {
            "version": "%d.%d" % (fi.version_major, fi.version_minor),
            "n_records": fi.n_records, "c": fi.c, "h": fi.h, "w": fi.w,
            "kind": {1: "palette", 2: "direct"}.get(fi.kind, str(fi.kind)),
            "k": fi.k, "bits": fi.bits, "n_classes": fi.n_classes,
            "mean": [fi.mean[i] for i in range(fi.c)], "std": [fi.std[i] for i in range(fi.c)],
            "index_coded": bool(fi.has_index_model),
            "index_model_version": int(fi.has_index_model),
            "soft_labels": bool(fi.has_soft_labels),
        }
        self._n = fi.n_records
        self._shape = (fi.h, fi.w, fi.c) if layout == "hwc" else (fi.c, fi.h, fi.w)
        self._nbytes = fi.c * fi.h * fi.w
        self._meta = None
        self._targets = None
        self.classes = []
        for i in range(fi.n_classes):
            name = _L.apd_reader_class_name(h, i)
            if name is None:
                self.classes = []
                break
            self.classes.append(_lib.text(name))

    @property
    def meta(self):
        """All metadata (incl. provenance: method, seed, source, budget...) as a dict."""
        if self._meta is None:
            self._alive()
            s = _L.apd_reader_meta_json(self._h)
            self._meta = json.loads(_lib.text(s)) if s else {}
        return self._meta

    def _alive(self):
        if self._h is None:
            raise ApdError(5, "%s: dataset is closed" % self.path)
        if os.getpid() != self._pid:
            raise ApdError(5, "%s: handle opened in another process (re-open after fork)"
                           % self.path)

    def __len__(self):
        return int(self._n)

    @property
    def class_to_idx(self):
        """{class name: class index} (empty when the file has no class names)."""
        return {name: i for i, name in enumerate(self.classes)}

    @property
    def targets(self):
        """Labels of all records in file order (int64 numpy array; read once, cached)."""
        if self._targets is None:
            self._targets = np.array([self.label(i) for i in range(self._n)], np.int64)
        return self._targets

    def _index(self, i):
        j = _lib.integer(i, "record index", -float("inf"), float("inf"))  # ints only
        if j < 0:
            j += self._n
        if not 0 <= j < self._n:
            raise IndexError("%s: record %d out of range [0, %d)" % (self.path, i, self._n))
        i = j
        self._alive()
        return i

    def _fail(self, st):
        raise ApdError(st, _lib.text(_L.apd_reader_errmsg(self._h)))

    def __getitem__(self, i):
        i = self._index(i)
        out = np.empty(self._shape, np.uint8)
        lab = _c.c_uint32()
        st = _L.apd_reader_decode(self._h, i, 0 if self.layout == "hwc" else 1,
                                  out.ctypes.data, out.nbytes, _c.byref(lab))
        if st != 0:
            self._fail(st)
        return out, int(lab.value)

    def label(self, i):
        """Label of record i (reads and verifies the record)."""
        i = self._index(i)
        lab = _c.c_uint32()
        st = _L.apd_reader_label(self._h, i, _c.byref(lab))
        if st != 0:
            self._fail(st)
        return int(lab.value)

    def source_id(self, i):
        """Source id of record i (its index in the source set), or None when it has none."""
        i = self._index(i)
        v = _c.c_uint64()
        st = _L.apd_reader_source_id(self._h, i, _c.byref(v))
        if st != 0:
            self._fail(st)
        return None if v.value == _lib.U64_MAX else int(v.value)

    def soft_label(self, i):
        """Soft labels of record i: float32 (n_classes,), the stored vector (format 1.1) or
        the one-hot vector of its label when the record stores none. ApdError (status 6,
        unsupported) for a file without classes."""
        i = self._index(i)
        out = np.empty(self.info["n_classes"], np.float32)
        st = _L.apd_reader_soft_label(self._h, i, out.ctypes.data, out.size, None)
        if st != 0:
            self._fail(st)
        return out

    def soft_labels(self):
        """Soft labels of every record: float32 (N, n_classes) (see soft_label)."""
        self._alive()
        out = np.empty((self._n, self.info["n_classes"]), np.float32)
        for i in range(self._n):
            st = _L.apd_reader_soft_label(self._h, i, out[i].ctypes.data, out.shape[1], None)
            if st != 0:
                self._fail(st)
        return out

    def record(self, i):
        """The stored form of palette record i: (palette uint8 (k, c), indices uint8 (h, w),
        label). ApdError (status 6, unsupported) for a direct-colour file."""
        i = self._index(i)
        c, h, w = self.info["c"], self.info["h"], self.info["w"]
        pal = np.zeros((256, c), np.uint8)
        idx = np.empty((h, w), np.uint8)
        k, lab = _c.c_uint32(), _c.c_uint32()
        st = _L.apd_reader_record(self._h, i, pal.ctypes.data, _c.byref(k), idx.ctypes.data,
                                  _c.byref(lab))
        if st != 0:
            self._fail(st)
        return pal[:k.value].copy(), idx, int(lab.value)

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h is not None and os.getpid() == self._pid:
            _L.apd_reader_close(h)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __reduce__(self):  # picklable by path: re-opened in the receiving process
        return (Dataset, (self.path, self.layout))


def open(path, layout="hwc"):  # noqa: A001  (mirrors the builtin on purpose: apd.open)
    """Open an .apd for random access: len, .meta (dict), ds[i] -> (image, label)."""
    return Dataset(path, layout)


class Loader:
    """Batches from an .apd (apd_loader): seeded shuffle, rank sharding, threads, resume.

    Iterating yields (images, labels) numpy arrays until the end of the CURRENT epoch; the
    loader then stands at the next epoch (a new `for` loop runs it). Breaking out of a loop
    and iterating again continues where it stopped. images: float32 NCHW normalised with the
    file's mean/std (layout="float", default; pass mean=/std= to override), uint8 NHWC
    ("hwc") or uint8 NCHW ("chw"). labels: int64. With soft_labels=True it yields
    (images, labels, soft): soft float32 (n, n_classes), each row the record's stored soft
    labels (format 1.1) or the one-hot vector of its label.

    Sample order and sharding follow include/apd/loader.h: the global order of epoch e is a
    permutation seeded by (seed, e) that does not depend on world_size; each global step
    gives rank r the block [r*B, (r+1)*B) of the next world_size*B samples; the last partial
    step is dropped (drop_last=True) or padded by wrapping around (every rank gets the same
    number of batches). state_dict() saved at world size W resumes at any world size.
    """

    def __init__(self, path, batch_size=256, shuffle=True, seed=0, rank=0, world_size=1,
                 layout="float", drop_last=False, threads=1, prefetch=0, classes=None,
                 mean=None, std=None, skip_corrupt=False, epoch=0, soft_labels=False):
        if layout not in LAYOUTS:
            raise ValueError("layout must be one of %s" % sorted(LAYOUTS))
        self.path, bpath = _check_path(path)
        out, self._dtype, self._chfirst = LAYOUTS[layout]
        self.layout = layout
        self.batch_size = _lib.u32(batch_size, "batch_size", 1)
        self._pid = os.getpid()
        o = _lib.LoaderOpts()
        _L.apd_loader_opts_default(_c.byref(o))
        o.batch_size = _lib.u32(batch_size, "batch_size", 1)
        o.shuffle = 1 if shuffle else 0
        o.seed = _lib.u64(seed, "seed")
        o.epoch = _lib.u64(epoch, "epoch")
        o.drop_last = 1 if drop_last else 0
        o.world_size = _lib.u32(world_size, "world_size", 1)
        o.rank = _lib.integer(rank, "rank", 0, o.world_size - 1)
        o.threads = _lib.u32(threads, "threads")
        o.prefetch = _lib.u32(prefetch, "prefetch")
        o.output = out
        o.skip_corrupt = 1 if skip_corrupt else 0
        if mean is not None or std is not None:
            if mean is None or std is None:
                raise ValueError("give both mean and std")
            o.custom_norm = 1
            mean, std = [float(m) for m in mean], [float(v) for v in std]
            if not 1 <= len(mean) == len(std) <= 3:
                raise ValueError("mean and std need one value per channel (1 to 3)")
            for i, (m, v) in enumerate(zip(mean, std)):
                if not v > 0:
                    raise ValueError("std[%d] = %r must be > 0" % (i, v))
                o.mean[i] = m
                o.std[i] = v
        if classes is not None:
            cls = (_c.c_uint32 * len(classes))(*[_lib.u32(c, "classes[%d]" % j)
                                                 for j, c in enumerate(classes)])
            o.classes = cls
            o.n_classes_subset = len(classes)
        h = _c.c_void_p()
        err = _lib.Err()
        st = _L.apd_loader_open(_c.byref(h), bpath, _c.byref(o), _c.byref(err))
        if st != 0:
            raise ApdError(st, _lib.text(err.msg) or "%s: cannot open" % self.path)
        self._h = h
        c, hh, w = _c.c_uint32(), _c.c_uint32(), _c.c_uint32()
        _L.apd_loader_shape(h, _c.byref(c), _c.byref(hh), _c.byref(w))
        self.image_shape = (c.value, hh.value, w.value) if self._chfirst else \
            (hh.value, w.value, c.value)
        self._img_bytes = _L.apd_loader_image_bytes(h)
        self.n_classes = int(_L.apd_loader_num_classes(h))
        self.has_soft_labels = bool(_L.apd_loader_has_soft_labels(h))
        self.soft_labels = bool(soft_labels)
        if self.soft_labels and self.n_classes == 0:
            self.close()
            raise ValueError("%s: soft_labels=True needs a file with classes" % self.path)

    # -- queries
    def __len__(self):
        """Batches per epoch on this rank."""
        return int(_L.apd_loader_batches_per_epoch(self._alive()))

    @property
    def num_samples(self):
        """Selected samples per epoch (all ranks)."""
        return int(_L.apd_loader_num_samples(self._alive()))

    @property
    def batches_left(self):
        return int(_L.apd_loader_batches_left(self._alive()))

    @property
    def skipped(self):
        """Corrupt records skipped so far (skip_corrupt=True)."""
        return int(_L.apd_loader_skipped(self._alive()))

    @property
    def epoch(self):
        return self.state_dict()["epoch"]

    @property
    def norm(self):
        """(mean, std) used for layout='float'."""
        m, s = (_c.c_float * 3)(), (_c.c_float * 3)()
        _L.apd_loader_norm(self._alive(), m, s)
        n = self.image_shape[0] if self._chfirst else self.image_shape[2]
        return list(m)[:n], list(s)[:n]

    def _alive(self):
        if self._h is None:
            raise ApdError(5, "%s: loader is closed" % self.path)
        if os.getpid() != self._pid:
            raise ApdError(5, "%s: loader opened in another process (open one per process)"
                           % self.path)
        return self._h

    # -- batches
    def next_batch(self, with_indices=False, out=None):
        """The next batch (images, labels[, soft][, indices]) or None at the end of the epoch
        (soft: float32 (n, n_classes), with soft_labels=True).

        out: optional (images, labels) numpy arrays to fill (C-contiguous, shapes
        (batch_size,) + image_shape and (batch_size,), this loader's dtype); the returned
        arrays are then views of them (shorter for a short batch)."""
        h = self._alive()
        if out is not None:
            x, y = out
            if (x.dtype != self._dtype or y.dtype != np.int64 or not x.flags.c_contiguous
                    or not y.flags.c_contiguous or x.shape != (self.batch_size,) + self.image_shape
                    or y.shape != (self.batch_size,)):
                raise ValueError("out arrays must be C-contiguous %s %s and int64 %s" % (
                    np.dtype(self._dtype).name, (self.batch_size,) + self.image_shape,
                    (self.batch_size,)))
        else:
            x = np.empty((self.batch_size,) + self.image_shape, self._dtype)
            y = np.empty(self.batch_size, np.int64)
        idx = np.empty(self.batch_size, np.uint64) if with_indices else None
        soft = np.empty((self.batch_size, self.n_classes), np.float32) if self.soft_labels else None
        n = _c.c_size_t()
        st = _L.apd_loader_next_soft(h, x.ctypes.data, x.nbytes, y.ctypes.data,
                                     soft.ctypes.data if self.soft_labels else None,
                                     soft.size if self.soft_labels else 0,
                                     idx.ctypes.data if with_indices else None, _c.byref(n))
        if st != 0:
            raise ApdError(st, _lib.text(_L.apd_loader_errmsg(h)))
        n = n.value
        if n == 0:
            return None
        if n < self.batch_size:
            x, y = x[:n], y[:n]
            idx = idx[:n] if with_indices else None
            soft = soft[:n] if self.soft_labels else None
        b = (x, y) + ((soft,) if self.soft_labels else ())
        return b + (idx,) if with_indices else b

    def __iter__(self):
        while True:
            b = self.next_batch()
            if b is None:
                return
            yield b

    def indices(self):
        """Record indices (uint64 arrays) of the rest of this epoch, batch by batch (the
        pixels are decoded too; meant for inspection and tests)."""
        while True:
            b = self.next_batch(with_indices=True)
            if b is None:
                return
            yield b[-1]

    # -- state
    def state_dict(self):
        st = _lib.LoaderState()
        _L.apd_loader_get_state(self._alive(), _c.byref(st))
        return {"seed": st.seed, "epoch": st.epoch, "cursor": st.cursor, "n": st.n}

    def load_state_dict(self, d):
        st = _lib.LoaderState(*[_lib.u64(d[k], "state[%r]" % k)
                                for k in ("seed", "epoch", "cursor", "n")])
        h = self._alive()
        rc = _L.apd_loader_set_state(h, _c.byref(st))
        if rc != 0:
            raise ApdError(rc, _lib.text(_L.apd_loader_errmsg(h)))

    def set_epoch(self, epoch):
        """Start epoch `epoch` from its beginning (same seed)."""
        epoch = _lib.u64(epoch, "epoch")
        h = self._alive()
        rc = _L.apd_loader_set_epoch(h, epoch)
        if rc != 0:
            raise ApdError(rc, _lib.text(_L.apd_loader_errmsg(h)))

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h is not None and os.getpid() == self._pid:
            _L.apd_loader_close(h)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


from .writer import QUANTIZERS, Writer, write  # noqa: E402  (needs the names above)

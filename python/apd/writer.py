"""apd.writer: write .apd files from numpy arrays through libapd's writer (apd_writer_*), so
files made here have exactly the format, compression and checksums of the C tools.

    apd.write("syn.apd", images, labels)                       # uint8 NHWC/NCHW: direct colour
    apd.write("syn.apd", x, y, mean=m, std=s)                  # float images normalised by m, s
    apd.write("syn.apd", x, y, quantizer="median-cut", k=64)   # palette records, C quantizer
    apd.write("syn.apd", None, y, palette=pal, indices=idx)    # palette records as given
    apd.write(..., class_names=["cat", "dog"], meta={"method": "dm", "seed": 0})

Streaming: `with apd.Writer(path, c=3, h=32, w=32, kind="palette", k=64) as w:
w.put_palette(pal, idx, label)` (put_direct, put_quantized likewise).
"""
import json
import os

import numpy as np

from . import _lib
from ._lib import ApdError

__all__ = ["QUANTIZERS", "Writer", "write", "to_uint8_nchw", "check_labels", "split_labels"]

_c = _lib._c
_L = _lib.L

#: quantizer names accepted by put_quantized / write(quantizer=...)
QUANTIZERS = ("median-cut", "octree", "kmeans")
_COMPRESS = {"auto": 0, "off": 1, "on": 2}
_NO_SOURCE = _lib.U64_MAX


def _quantizer(name):
    q = _c.c_int()
    if not isinstance(name, str) or _L.apd_quantizer_from_name(name.encode(), _c.byref(q)) != 0:
        raise ValueError("unknown quantizer %r (one of %s)" % (name, ", ".join(QUANTIZERS)))
    return q.value


def _per_channel(v, c, what):
    a = np.asarray(v, np.float64).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, c)
    if a.size != c or not np.all(np.isfinite(a)):
        raise ValueError("%s needs %d finite value(s) (one per channel), got %r" % (what, c, v))
    return a


class Writer:
    """An .apd being written (apd_writer). kind "direct" (uint8 pixels) or "palette" (k colours
    at most per record). class_names (list of str, each at most 63 bytes of UTF-8) sets
    n_classes; otherwise n_classes bounds the labels (0 = unchecked). mean/std (per channel,
    pixels/255 scale) go to the header: the loader normalises with them. meta: dict of
    metadata keys -> JSON-serialisable values (provenance: method, seed, source, ...).
    soft_labels=True (needs n_classes >= 1) makes a format 1.1 file whose records may carry
    a soft-label vector (put_*(..., soft=...): n_classes floats, finite, >= 0, summing to 1
    within 1e-3, the label one of its largest classes).
    format: the newest .apd format the file may use, for older readers: "1.2" (default: palette
    index maps entropy-coded when that saves 10%, index model version 2), "1.1" (the same
    bytes with index model version 1), "1.0" (bit-packed index maps; no soft labels).
    close() commits; on an exception inside `with`, the partial file is removed."""

    def __init__(self, path, c, h, w, kind="direct", k=0, n_classes=0, class_names=None,
                 mean=None, std=None, dataset_name=None, meta=None, force=False,
                 compress="auto", zstd_level=3, records_per_chunk=0, soft_labels=False,
                 format="1.2"):
        self.path, bpath = _lib.path_bytes(path)
        if format not in ("1.0", "1.1", "1.2"):
            raise ValueError("format must be '1.0', '1.1' or '1.2', not %r" % (format,))
        if format == "1.0" and soft_labels:
            raise ValueError("soft labels need format 1.1 or later (format='1.0' given)")
        if kind not in ("direct", "palette"):
            raise ValueError("kind must be 'direct' or 'palette', not %r" % (kind,))
        if compress not in _COMPRESS:
            raise ValueError("compress must be one of %s" % sorted(_COMPRESS))
        o = _lib.WriterOpts()
        _L.apd_writer_opts_default(_c.byref(o))
        o.c = _lib.integer(c, "c (channels)", 1, 3)
        o.h = _lib.u32(h, "h", 1)
        o.w = _lib.u32(w, "w", 1)
        o.kind = 1 if kind == "palette" else 2
        o.k = _lib.integer(k, "k", 1, 256) if kind == "palette" else 0
        self._names = None
        if class_names is not None:
            names = [str(s).encode("utf-8") for s in class_names]
            for i, b in enumerate(names):
                if len(b) > 63 or b"\0" in b:
                    raise ValueError("class name %d %r: at most 63 bytes of UTF-8, no NUL"
                                     % (i, class_names[i]))
            if n_classes and n_classes != len(names):
                raise ValueError("n_classes = %d but %d class names" % (n_classes, len(names)))
            n_classes = len(names)
            self._names = (_c.c_char * 64 * max(1, len(names)))()
            for i, b in enumerate(names):
                self._names[i].value = b
            o.class_names = _c.cast(self._names, _c.c_void_p)
        o.n_classes = _lib.u32(n_classes, "n_classes")
        o.force = 1 if force else 0
        for what, v, arr in (("mean", mean, o.mean), ("std", std, o.std)):
            if v is not None:
                for i, x in enumerate(_per_channel(v, o.c, what)):
                    arr[i] = float(x)
        self._dsname = dataset_name.encode("utf-8") if dataset_name else None
        o.dataset_name = self._dsname
        o.compress = _COMPRESS[compress]
        o.zstd_level = _lib.integer(zstd_level, "zstd_level", 1, 22)
        o.records_per_chunk = _lib.u32(records_per_chunk, "records_per_chunk")
        o.soft_labels = 1 if soft_labels else 0
        if format == "1.0":
            o.index_coding = 1  # APD_ICODE_OFF
        o.index_model_version = 1 if format == "1.1" else 0
        self.c, self.h, self.w, self.kind, self.k = o.c, o.h, o.w, kind, o.k
        self.n_classes = o.n_classes
        self.soft_labels = bool(soft_labels)
        self._h = None
        h_ = _c.c_void_p()
        err = _lib.Err()
        st = _L.apd_writer_create(_c.byref(h_), bpath, _c.byref(o), _c.byref(err))
        if st != 0:
            raise ApdError(st, _lib.text(err.msg) or "%s: cannot create" % self.path)
        self._h = h_
        self._pid = os.getpid()
        try:
            for key, value in (meta or {}).items():
                self.set_meta(key, value)
        except BaseException:
            self._abort()
            raise

    # -- records
    def _alive(self):
        if self._h is None:
            raise ApdError(5, "%s: writer is closed" % self.path)
        if os.getpid() != self._pid:
            raise ApdError(5, "%s: writer opened in another process" % self.path)
        return self._h

    def _check(self, st):
        if st != 0:
            raise ApdError(st, "%s: record %d: %s" % (
                self.path, self.count, _lib.text(_L.apd_writer_errmsg(self._h))))

    def _label(self, label):
        return _lib.integer(label, "label", 0, (self.n_classes - 1) if self.n_classes
                            else _lib.U32_MAX)

    @staticmethod
    def _source(source_id):
        return _NO_SOURCE if source_id is None else _lib.integer(source_id, "source_id", 0,
                                                                 _lib.U64_MAX - 1)

    def _image(self, chw):
        a = np.ascontiguousarray(chw)
        if a.dtype != np.uint8 or a.shape != (self.c, self.h, self.w):
            raise ValueError("%s: image must be uint8 CHW %s, got %s %s" % (
                self.path, (self.c, self.h, self.w), a.dtype, a.shape))
        return a

    def _soft(self, soft):
        """(keep-alive array, pointer) of a soft-label vector, or (None, None)."""
        if soft is None:
            return None, None
        s = np.ascontiguousarray(_np_of(soft), np.float32)
        if s.shape != (self.n_classes,):
            raise ValueError("%s: record %d: soft labels must have shape (%d,), got %s"
                             % (self.path, self.count, self.n_classes, tuple(s.shape)))
        return s, s.ctypes.data

    def put_direct(self, chw, label, source_id=None, soft=None):
        """Append a direct-colour record: chw uint8 (c, h, w); soft: optional soft labels."""
        a = self._image(chw)
        s, sp = self._soft(soft)
        self._check(_L.apd_writer_put_direct_soft(self._alive(), a.ctypes.data, self._label(label),
                                                  self._source(source_id), sp))
        del s

    def put_palette(self, palette, indices, label, source_id=None, soft=None):
        """Append a palette record: palette uint8 (k, c) (k <= the file's k), indices (h, w)
        integers < k; soft: optional soft labels."""
        pal = np.ascontiguousarray(palette)
        if pal.dtype != np.uint8 or pal.ndim != 2 or pal.shape[1] != self.c or \
                not 1 <= pal.shape[0] <= 256:
            raise ValueError("%s: palette must be uint8 (k, %d) with 1 <= k <= 256, got %s %s"
                             % (self.path, self.c, pal.dtype, pal.shape))
        idx = np.asarray(indices)
        if idx.shape != (self.h, self.w) or idx.dtype.kind not in "ui":
            raise ValueError("%s: indices must be integers of shape %s, got %s %s"
                             % (self.path, (self.h, self.w), idx.dtype, idx.shape))
        if idx.size and (idx.min() < 0 or idx.max() >= pal.shape[0]):
            raise ValueError("%s: record %d: index %d outside the palette of %d colours"
                             % (self.path, self.count, int(idx.max() if idx.max() >= pal.shape[0]
                                                           else idx.min()), pal.shape[0]))
        idx = np.ascontiguousarray(idx, np.uint8)
        s, sp = self._soft(soft)
        self._check(_L.apd_writer_put_palette_soft(self._alive(), pal.ctypes.data, pal.shape[0],
                                                   idx.ctypes.data, self._label(label),
                                                   self._source(source_id), sp))
        del s

    def put_quantized(self, chw, label, quantizer="median-cut", seed=0, source_id=None,
                      soft=None):
        """Quantize chw (uint8 (c, h, w)) with a C quantizer (QUANTIZERS) to at most the
        file's k colours and append it as a palette record (with soft labels: the quantizer's
        palette and indices, as apd_quantize_put would store them)."""
        a = self._image(chw)
        if soft is not None:
            pal = np.zeros((256, self.c), np.uint8)
            idx = np.empty((self.h, self.w), np.uint8)
            k = _c.c_uint32()
            st = _L.apd_quantize_image(_quantizer(quantizer), a.ctypes.data, self.c, self.h,
                                       self.w, self.k, _lib.u64(seed, "seed"), pal.ctypes.data,
                                       idx.ctypes.data, _c.byref(k))
            if st != 0:
                raise ApdError(st, "%s: record %d: quantizing failed" % (self.path, self.count))
            return self.put_palette(pal[:k.value], idx, label, source_id, soft)
        self._check(_L.apd_quantize_put(self._alive(), _quantizer(quantizer), a.ctypes.data,
                                        self._label(label), self._source(source_id),
                                        _lib.u64(seed, "seed")))

    def set_meta(self, key, value):
        """Set metadata `key` to a JSON-serialisable value (keys the library maintains, such
        as n_records or class_counts, are refused)."""
        if not isinstance(key, str) or not key or "\0" in key:
            raise ValueError("metadata key must be a non-empty string without NUL: %r" % (key,))
        try:
            text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise ValueError("metadata %r: not JSON-serialisable: %s" % (key, e)) from None
        st = _L.apd_writer_set_meta(self._alive(), key.encode("utf-8"), text.encode("utf-8"))
        if st != 0:
            raise ApdError(st, "%s: %s" % (self.path, _lib.text(_L.apd_writer_errmsg(self._h))))

    @property
    def count(self):
        return int(_L.apd_writer_count(self._h)) if self._h is not None else 0

    def commit(self):
        st = _L.apd_writer_commit(self._alive())
        if st != 0:
            raise ApdError(st, "%s: %s" % (self.path, _lib.text(_L.apd_writer_errmsg(self._h))))

    def close(self):
        """Commit and close. Raises ApdError when the final commit fails."""
        h, self._h = self._h, None
        if h is None or os.getpid() != self._pid:
            return
        msg = _lib.text(_L.apd_writer_errmsg(h))
        st = _L.apd_writer_close(h)
        if st != 0:
            raise ApdError(st, "%s: close: %s" % (self.path, msg or _lib.strerror(st)))

    def _abort(self):
        try:
            self.close()
        except ApdError:
            pass
        for p in (self.path, self.path + "-lock"):
            try:
                os.unlink(p)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.close()
        else:
            self._abort()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# ---- array helpers -------------------------------------------------------------------------

def _np_of(v):
    return v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)


def split_labels(labels, n=None):
    """(hard int64 (N,), soft float32 (N, classes) or None) of labels: (N,) integers, or
    (N, classes) soft labels (format 1.1), whose hard label is the argmax (the first largest
    class, computed on the float32 values that are stored). A soft row must be finite, >= 0
    and sum to 1 within 1e-3; the writer checks it and names the record."""
    y = _np_of(labels)
    if y.ndim == 2 and y.shape[1] > 1:
        if y.dtype.kind not in "fuib":
            raise ValueError("soft labels must be numbers, got dtype %s" % y.dtype)
        s = np.ascontiguousarray(y, np.float32)
        if n is not None and len(s) != n:
            raise ValueError("%d label rows for %d images" % (len(s), n))
        bad = ~np.isfinite(s) | (s < 0)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError("soft labels of record %d, class %d: %r is %s" % (
                i, j, float(s[i, j]), "negative" if np.isfinite(s[i, j]) else "not finite"))
        sums = s.astype(np.float64).sum(1)
        off = np.abs(sums - 1.0) > 1e-3
        if off.any():
            i = int(np.argmax(off))
            raise ValueError("soft labels of record %d sum to %.6g, not 1 (tolerance 1e-3)"
                             % (i, sums[i]))
        return s.argmax(1).astype(np.int64), s
    return check_labels(y, n), None


def check_labels(labels, n=None):
    """labels as an int64 (N,) array of non-negative integers; soft labels (N, classes) are
    refused here (split_labels takes them)."""
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] > 1:
        raise ValueError(
            "labels have shape %s: soft labels (N, classes) where one class per record is "
            "expected; pass hard labels of shape (N,), e.g. labels.argmax(1), or write them "
            "with apd.write, which stores them as format 1.1 soft labels" % (tuple(y.shape),))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError("labels must have shape (N,), got %s" % (tuple(y.shape),))
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError("labels must be integers (got non-integral floats)")
    elif y.dtype.kind not in "uib":
        raise ValueError("labels must be integers, got dtype %s" % y.dtype)
    if y.size and y.min() < 0:
        raise ValueError("label %d is negative (record %d)" % (int(y.min()), int(np.argmin(y))))
    if y.size and y.max() > _lib.U32_MAX:
        raise ValueError("label %d is too large" % int(y.max()))
    y = y.astype(np.int64)
    if n is not None and len(y) != n:
        raise ValueError("%d labels for %d images" % (len(y), n))
    return y


def _layout(shape, layout):
    if len(shape) == 3:
        return "nhw"
    if len(shape) != 4:
        raise ValueError("images must be (N, C, H, W), (N, H, W, C) or (N, H, W); got shape %s"
                         % (tuple(shape),))
    if layout is not None:
        if layout not in ("nchw", "nhwc"):
            raise ValueError("layout must be 'nchw' or 'nhwc', not %r" % (layout,))
        return layout
    first, last = shape[1] in (1, 3), shape[3] in (1, 3)
    if first and not last:
        return "nchw"
    if last and not first:
        return "nhwc"
    raise ValueError("images of shape %s: cannot tell NCHW from NHWC, pass layout='nchw' or "
                     "layout='nhwc'" % (tuple(shape),))


def to_uint8_nchw(images, layout=None, mean=None, std=None):
    """images as uint8 (N, C, H, W). uint8 input is taken as is. Float input is pixels/255 in
    [0, 1], or normalised ((v/255 - mean) / std) when mean and std are given: it is mapped back
    and rounded to the nearest 8-bit value (values slightly outside the range are clipped;
    far outside raises: probably normalised data without mean/std)."""
    a = _numpy(images)
    lay = _layout(a.shape, layout)
    if lay == "nhw":
        a = a[:, None]
    elif lay == "nhwc":
        a = a.transpose(0, 3, 1, 2)
    c = a.shape[1]
    if c not in (1, 3):
        raise ValueError("images have %d channels; 1 or 3 are supported" % c)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype.kind not in "f":
        raise ValueError("images must be uint8 or float, got dtype %s" % a.dtype)
    x = a.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or infinity")
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std (or neither for images in [0, 1])")
    if mean is not None:
        m = _per_channel(mean, c, "mean").reshape(1, c, 1, 1)
        s = _per_channel(std, c, "std").reshape(1, c, 1, 1)
        if np.any(s <= 0):
            raise ValueError("std must be > 0")
        x = x * s + m
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
    if lo < -0.05 or hi > 1.05:
        raise ValueError("float images span [%.3g, %.3g] after de-normalisation, not [0, 1]: "
                         "normalised images need their mean= and std=" % (lo, hi))
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _mean_std(x):
    """Per-channel mean and population std of uint8 NCHW pixels / 255 (float64 sums)."""
    c = x.shape[1]
    v = x.transpose(1, 0, 2, 3).reshape(c, -1).astype(np.float64) / 255.0
    return v.mean(axis=1), v.std(axis=1)


def _numpy(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def _palettes(palette, n, c):
    if isinstance(palette, np.ndarray) or hasattr(palette, "detach"):
        p = _numpy(palette)
        if p.ndim == 2:
            p = np.broadcast_to(p, (n,) + p.shape)
        if p.ndim != 3 or p.shape[0] != n or p.shape[2] != c:
            raise ValueError("palette must be (N, K, C) = (%d, K, %d) or (K, C), got %s"
                             % (n, c, p.shape))
        return [p[i] for i in range(n)]
    pals = list(palette)
    if len(pals) != n:
        raise ValueError("%d palettes for %d index maps" % (len(pals), n))
    return [np.asarray(p) for p in pals]


def write(path, images, labels, *, layout=None, mean=None, std=None, palette=None,
          indices=None, quantizer=None, k=None, class_names=None, n_classes=None, meta=None,
          dataset_name=None, source_ids=None, force=False, compress="auto", seed=0, format="1.2"):
    """Write an .apd from arrays (numpy arrays or torch tensors). Returns the record count.

    images: uint8 (N, C, H, W) or (N, H, W, C) (layout= when ambiguous) or (N, H, W); or float
      in [0, 1]; or float normalised as (v/255 - mean) / std, with those mean= and std=.
      Stored as direct-colour records, or quantized to palette records with
      quantizer= ("median-cut", "octree", "kmeans") and k= colours (C quantizers, include/apd/quant.h).
    palette=, indices= instead of images: palette records as given, palette (N, K, C) uint8
      (or (K, C) shared, or a list of (k_i, C) arrays) and indices (N, H, W) < K.
    labels: (N,) integers, or (N, classes) soft labels (format 1.1, each row stored with its
      record; the hard label is the row's argmax). class_names: list of str (sets n_classes;
      else max label + 1, or the soft labels' width).
    mean/std: also stored in the header (the loader's normalisation); default: computed from
      the stored pixels. meta: dict of metadata (provenance); "method" defaults to "import".
    source_ids: (N,) record ids in the source set (optional).
    format: "1.2" (default), "1.1" or "1.0", as Writer's.
    On any error the partial file is removed."""
    if images is None:
        if palette is None or indices is None:
            raise ValueError("give images, or palette= and indices=")
        if quantizer is not None:
            raise ValueError("quantizer= applies to images, not to palette/indices")
        idx = _numpy(indices)
        if idx.ndim != 3:
            raise ValueError("indices must be (N, H, W), got shape %s" % (idx.shape,))
        n, h, w = idx.shape
        if isinstance(palette, np.ndarray) or hasattr(palette, "detach"):
            c = _numpy(palette).shape[-1]
        else:
            c = np.asarray(palette[0]).shape[-1] if len(palette) else 3
        pals = _palettes(palette, n, c)
        kind, kk = "palette", (k or max([int(p.shape[0]) for p in pals] + [1]))
        x = None
        if mean is None and n:  # pixel statistics for the header
            x = np.stack([p[i].transpose(2, 0, 1) for p, i in zip(pals, idx)
                          if i.size and int(i.max()) < len(p)] or [np.zeros((c, h, w), np.uint8)])
    else:
        if palette is not None or indices is not None:
            raise ValueError("give images or palette/indices, not both")
        x = to_uint8_nchw(images, layout, mean, std)
        n, c, h, w = x.shape
        if quantizer is not None:
            _quantizer(quantizer)
            if not k:
                raise ValueError("quantizer= needs k= (colours per image, 1..256)")
            kind, kk = "palette", k
        else:
            if k:
                raise ValueError("k= needs quantizer= (or palette=/indices=)")
            kind, kk = "direct", 0
    y, soft = split_labels(labels, n)
    if class_names is not None and len(class_names) == 0:
        class_names = None  # no names (as an export of a file without names gives)
    if class_names is not None:
        ncls = len(class_names)
    elif soft is not None:
        ncls = n_classes if n_classes is not None else soft.shape[1]
    else:
        ncls = n_classes if n_classes is not None else (int(y.max()) + 1 if n else 0)
    if soft is not None and ncls != soft.shape[1]:
        raise ValueError("soft labels have %d classes but the file has %d" % (soft.shape[1], ncls))
    if mean is None and x is not None and n:
        mean, std = _mean_std(x)
    ids = None
    if source_ids is not None:
        ids = np.asarray(source_ids)
        if ids.shape != (n,):
            raise ValueError("source_ids must have shape (%d,)" % n)
    meta = dict(meta or {})
    meta.setdefault("method", "import")
    meta.setdefault("tool_version", "apd.write (python) %s" % _lib.text(_L.apd_version()))
    if quantizer is not None:
        meta.setdefault("quantizer", quantizer)
    with Writer(path, c, h, w, kind=kind, k=kk, n_classes=ncls, class_names=class_names,
                mean=mean, std=std, dataset_name=dataset_name, meta=meta, force=force,
                compress=compress, soft_labels=soft is not None, format=format) as wr:
        for i in range(n):
            sid = None if ids is None else ids[i]
            sv = None if soft is None else soft[i]
            if images is None:
                wr.put_palette(pals[i], idx[i], y[i], sid, sv)
            elif quantizer is not None:
                wr.put_quantized(x[i], y[i], quantizer, seed, sid, sv)
            else:
                wr.put_direct(x[i], y[i], sid, sv)
        return wr.count

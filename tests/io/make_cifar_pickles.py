#!/usr/bin/python3
"""make_cifar_pickles.py OUTDIR: small CIFAR "python version" folders, pickled the way the
official files were (Python 2 cPickle, protocol 2), for tests/io/test_import_layouts.c.

    OUTDIR/cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta
    OUTDIR/cifar-100-python/train, test, meta

The official files were written by Python 2's cPickle: dict keys, label names and the raw
array bytes are Python 2 str, i.e. SHORT_BINSTRING / BINSTRING opcodes (Python 3 loads them
as bytes, or as str with encoding='latin1', as torchvision does); numpy of the time reduced
a dtype to dtype('u1', 0, 1) with state (3, '|', None, None, None, -1, -1, 0); and cPickle
numbers memo slots from 1 and files no memo mark (BINPUT) for an object nothing else holds a
reference to: the tuples and strings a __reduce__ makes on the spot, a dict's values (2.7
walks a dict with borrowed references), strings shorter than 2 bytes. Python 3's pickle
writes bytes differently at protocol 2 (through _codecs.encode), so this script uses the
pure-Python pickler with those behaviours of cPickle put back; everything else (batches of
1000 per MARK ... APPENDS / SETITEMS, numpy's own array reduction) is the pickler's and
numpy's.

The data is a formula the C test recomputes: batch b (1..5 train, 6 test; CIFAR-100: 1 train,
2 test), record r, byte j:  pixel = (b*101 + r*13 + j) & 255;  label = (b*3 + r) % 10
(CIFAR-100: fine = (b*7 + r*3) % 100, coarse = fine % 20). Class names are not in
alphabetical order and one has a latin-1 byte, to show that they are read from the meta file.

Each file is then loaded back with pickle.load(encoding='latin1') and encoding='bytes' and
compared, so the fixture is known to load as the real files do.
"""
import io
import os
import pickle
import struct
import sys

import numpy as np

C10_TRAIN = [1001, 6, 6, 5, 5]  # 1001: a batch edge of APPENDS and memo slots past 255
C10_TEST = 5
C100_TRAIN = 9
C100_TEST = 4
C10_NAMES = ["zebra", "apple", "caf\xe9", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay"]
C100_NAMES = ["fine%02d" % (99 - k) for k in range(100)]
C100_COARSE = ["coarse%02d" % k for k in range(20)]


class Py2Pickler(pickle._Pickler):
    """The pure-Python pickler, writing as Python 2 cPickle did (see the module doc)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.in_reduce = 0  # inside a __reduce__'s arguments or state
        self.values = set()  # ids of dict values

    def memoize(self, obj):
        if (self.in_reduce and isinstance(obj, (tuple, bytes, str))) or id(obj) in self.values:
            return  # referenced only by its container: no mark
        if isinstance(obj, (bytes, str)) and len(obj) < 2:
            return
        assert id(obj) not in self.memo
        idx = len(self.memo) + 1  # cPickle numbers memo slots from 1
        self.write(self.put(idx))
        self.memo[id(obj)] = idx, obj

    def save_reduce(self, *a, **k):
        self.in_reduce += 1
        try:
            super().save_reduce(*a, **k)
        finally:
            self.in_reduce -= 1

    def _batch_setitems(self, items):
        items = list(items)
        self.values.update(id(v) for _, v in items)
        super()._batch_setitems(iter(items))

    def save_py2str(self, obj):  # a Python 2 str: SHORT_BINSTRING / BINSTRING, memoized
        orig = obj
        if isinstance(obj, str):
            obj = obj.encode("latin1")
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(orig)

    dispatch[bytes] = save_py2str
    dispatch[str] = save_py2str

    def reducer_override(self, obj):  # numpy of the time reduced a dtype with ints
        if isinstance(obj, np.dtype):
            assert obj == np.uint8
            return (np.dtype, ("u1", 0, 1), (3, "|", None, None, None, -1, -1, 0))
        return NotImplemented


def dump(path, obj):
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    return data


def pixels(b, n):
    r = np.arange(n, dtype=np.int64)[:, None]
    j = np.arange(3072, dtype=np.int64)[None, :]
    return ((b * 101 + r * 13 + j) & 255).astype(np.uint8)


def check(path, want):
    """Load as torchvision does (latin1) and as bytes; compare with what was pickled."""
    with open(path, "rb") as f:
        got = pickle.load(f, encoding="latin1")
    with open(path, "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert sorted(got) == sorted(want), (path, sorted(got))
    assert all(isinstance(k, bytes) for k in raw), path
    for k, v in want.items():
        if isinstance(v, np.ndarray):
            assert got[k].dtype == np.uint8 and got[k].shape == v.shape and (got[k] == v).all(), (path, k)
        else:
            assert got[k] == v, (path, k)


def batch(b, n, label_key, labels, extra):
    d = {"data": pixels(b, n), label_key: labels}
    d.update(extra)
    return d


def main():
    out = sys.argv[1]
    d10 = os.path.join(out, "cifar-10-batches-py")
    d100 = os.path.join(out, "cifar-100-python")
    os.makedirs(d10, exist_ok=True)
    os.makedirs(d100, exist_ok=True)
    files = {}
    for b, n in enumerate(C10_TRAIN + [C10_TEST], start=1):
        test = b == 6
        name = "test_batch" if test else "data_batch_%d" % b
        labels = [(b * 3 + r) % 10 for r in range(n)]
        d = batch(b, n, "labels", labels, {
            "batch_label": "testing batch 1 of 1" if test else "training batch %d of 5" % b,
            "filenames": ["img_%d_%04d.png" % (b, r) for r in range(n)]})
        files[os.path.join(d10, name)] = d
    files[os.path.join(d10, "batches.meta")] = {
        "num_cases_per_batch": 10000, "label_names": C10_NAMES, "num_vis": 3072}
    for b, n in ((1, C100_TRAIN), (2, C100_TEST)):
        fine = [(b * 7 + r * 3) % 100 for r in range(n)]
        d = batch(b, n, "fine_labels", fine, {
            "filenames": ["f_%d_%04d.png" % (b, r) for r in range(n)],
            "batch_label": "training batch 1 of 1" if b == 1 else "testing batch 1 of 1",
            "coarse_labels": [f % 20 for f in fine]})
        files[os.path.join(d100, "train" if b == 1 else "test")] = d
    files[os.path.join(d100, "meta")] = {"fine_label_names": C100_NAMES, "coarse_label_names": C100_COARSE}
    for path, obj in files.items():
        data = dump(path, obj)
        check(path, obj)
        assert data[:2] == b"\x80\x02" and data[2:5] == b"}q\x01", path  # PROTO 2, dict, BINPUT 1
    # the array is pickled as in the real files (see the module doc)
    head = open(os.path.join(d10, "data_batch_1"), "rb").read(160)
    want = (b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04"
            b"K\x00\x85U\x01b\x87R(K\x01M\xe9\x03M\x00\x0c\x86cnumpy\ndtype\nq\x05U\x02u1K\x00K\x01\x87Rq\x06"
            b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T\x00\xec.\x00")
    assert head.startswith(want), head
    print("wrote %d pickles under %s" % (len(files), out))


if __name__ == "__main__":
    main()

"""apd.interop: distilled sets as .npz (numpy) or .pt (torch.save) files <-> .apd.

Containers hold
  images  (N, C, H, W) float32 in [0, 1]; or normalised ((v/255 - mean) / std, then the
          container's "normalized" is true or mean/std are given on import); or uint8
  labels  (N,) integers, or (N, classes) soft labels (floats: each row finite, >= 0, summing
          to 1 within 1e-3), stored as format 1.1 per-record soft labels with the row's
          argmax as hard label
and optionally class_names (N strings), mean and std (C floats), normalized (bool) and meta
(the .apd metadata as a JSON string). Exports write all of them, so an export imports back
to the same records; a file with soft labels exports labels (N, classes) float32 (one-hot
rows for records without a vector) and hard_labels (N,) int64. A .pt file is a dict with
those keys; (images, labels) pairs and the {"data": [[images, labels], ...]} layout of
dataset-distillation code are read too.

Command line: `python3 -m apd import SRC DST.apd` and `python3 -m apd export SRC.apd DST`.
"""
import json
import os

import numpy as np

from . import _lib
from .writer import split_labels, to_uint8_nchw, write

__all__ = ["load_container", "import_file", "export_file"]

IMAGE_KEYS = ("images", "image_syn", "x", "data", "X")
LABEL_KEYS = ("labels", "label_syn", "y", "targets", "Y")
# metadata not carried over from an exported document: the writer's own keys and those
# that describe the new file rather than the data
_NOT_COPIED = {"created", "library_version", "tool_version"}


def _copied(key):
    """True for user metadata keys (apd_meta_key_classify: not maintained or defaulted)."""
    b = key.encode("utf-8")
    return key not in _NOT_COPIED and _lib.L.apd_meta_key_classify(b, len(b)) == 0


def _kind(path):
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".npz":
        return "npz"
    if ext in (".pt", ".pth"):
        return "pt"
    raise ValueError("%s: unknown container (use .npz or .pt)" % (path,))


def _np(v):
    return v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)


def _pick(d, keys, given, what, path):
    if given is not None:
        if given not in d:
            raise ValueError("%s: no %r entry (has: %s)" % (path, given, ", ".join(map(str, d))))
        return d[given]
    for k in keys:
        if k in d:
            return d[k]
    raise ValueError("%s: no %s entry: looked for %s (has: %s); name it with --%s-key"
                     % (path, what, ", ".join(keys), ", ".join(map(str, d)), what))


def _load_pt(path, experiment, trusted):
    try:
        import torch
    except ImportError:
        raise ImportError("%s: reading .pt files needs torch (Debian: python3-torch)"
                          % path) from None
    import pickle
    if trusted:
        obj = torch.load(path, map_location="cpu")
    else:
        try:  # tensors, dicts, lists, strings and numbers only: no code runs while loading
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise ValueError("%s: holds more than tensors and plain containers, which are not "
                             "loaded without trust (it could run code): if you trust the "
                             "file, pass trusted=True / --trust-pickle (%s)"
                             % (path, str(e).split("WeightsUnpickler error:")[-1].strip())) from None
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        return {"images": obj[0], "labels": obj[1]}
    if not isinstance(obj, dict):
        raise ValueError("%s: expected a dict or an (images, labels) pair, got %s"
                         % (path, type(obj).__name__))
    data = obj.get("data")
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], (list, tuple)):
        if not 0 <= experiment < len(data):
            raise ValueError("%s: experiment %d of %d" % (path, experiment, len(data)))
        d = dict(obj)
        d["images"], d["labels"] = data[experiment][0], data[experiment][1]
        del d["data"]
        return d
    return obj


def load_container(path, images_key=None, labels_key=None, experiment=0, trusted=False):
    """(images ndarray, labels ndarray, extras dict) from a .npz or .pt file. A .pt file is
    read with torch.load(weights_only=True) unless trusted=True."""
    path = _lib.path_bytes(path)[0]
    if _kind(path) == "npz":
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    else:
        d = _load_pt(path, experiment, trusted)
    images = _np(_pick(d, IMAGE_KEYS, images_key, "images", path))
    labels = _np(_pick(d, LABEL_KEYS, labels_key, "labels", path))
    extras = {}
    if "class_names" in d and len(d["class_names"]):
        extras["class_names"] = [str(s) for s in _np(d["class_names"]).tolist()]
    for k in ("mean", "std"):
        if k in d:
            extras[k] = [float(v) for v in _np(d[k]).reshape(-1)]
    if "normalized" in d:
        extras["normalized"] = bool(_np(d["normalized"]))
    if "meta" in d:
        m = d["meta"]
        m = _np(m).item() if not isinstance(m, (str, dict)) else m
        extras["meta"] = json.loads(m) if isinstance(m, str) else dict(m)
    return images, labels, extras


def import_file(src, dst, images_key=None, labels_key=None, mean=None, std=None, layout=None,
                quantizer=None, k=None, class_names=None, meta=None, force=False,
                dataset_name=None, experiment=0, trusted=False):
    """Write the set in src (.npz / .pt) to the .apd dst. Float images are taken as [0, 1]
    unless mean/std are given (or the container says normalized with its mean/std).
    Returns the record count."""
    images, labels, ex = load_container(src, images_key, labels_key, experiment, trusted)
    try:
        split_labels(labels, len(images))
    except ValueError as e:
        raise ValueError("%s: %s" % (src, e)) from None
    if mean is None and std is None and ex.get("normalized"):
        if "mean" not in ex or "std" not in ex:
            raise ValueError("%s: marked normalized but has no mean/std" % (src,))
        mean, std = ex["mean"], ex["std"]
    # header statistics: those the images were normalised with, else the container's
    if mean is not None:
        header_mean, header_std = mean, std
    elif "mean" in ex and "std" in ex:
        header_mean, header_std = ex["mean"], ex["std"]
    else:
        header_mean = header_std = None  # computed from the pixels
    try:
        x = to_uint8_nchw(images, layout, mean, std)
    except ValueError as e:
        raise ValueError("%s: %s" % (src, e)) from None
    md = {k2: v for k2, v in ex.get("meta", {}).items() if _copied(k2)}
    md.setdefault("method", "import")
    md["imported_from"] = {"file": os.path.basename(os.fspath(src)), "format": _kind(src),
                           "dtype": str(images.dtype),
                           "normalized": mean is not None}
    md.update(meta or {})
    return write(dst, x, labels, mean=header_mean, std=header_std, quantizer=quantizer, k=k,
                 class_names=class_names if class_names is not None else ex.get("class_names"),
                 meta=md, force=force,
                 dataset_name=dataset_name or ex.get("meta", {}).get("dataset") or None)


def export_file(src, dst, dtype="float", normalize=False, mean=None, std=None, force=False):
    """Write the .apd src as a .npz / .pt container dst: images (N, C, H, W) float32 in
    [0, 1] (dtype="float"), normalised with the file's (or the given) mean/std
    (normalize=True), or uint8 (dtype="uint8"); labels int64 (N,), or for a
    file with soft labels (format 1.1) labels float32 (N, classes) (bit-exact; one-hot rows for
    records without a vector) and hard_labels int64 (N,); class_names, mean, std, normalized
    and meta. Returns the record count."""
    from . import open as apd_open
    kind = _kind(dst)
    if dtype not in ("float", "uint8"):
        raise ValueError("dtype must be 'float' or 'uint8'")
    if normalize and dtype != "float":
        raise ValueError("normalize needs dtype='float'")
    dst_s = _lib.path_bytes(dst)[0]
    if os.path.exists(dst_s) and not force:
        raise FileExistsError("%s exists (use force=True / --force)" % dst_s)
    with apd_open(src, layout="chw") as ds:
        n, c = len(ds), ds.info["c"]
        x = np.empty((n, c, ds.info["h"], ds.info["w"]), np.uint8)
        y = np.empty(n, np.int64)
        for i in range(n):
            x[i], y[i] = ds[i]
        soft = ds.soft_labels() if ds.info["soft_labels"] else None
        m = list(mean) if mean is not None else ds.info["mean"]
        s = list(std) if std is not None else ds.info["std"]
        names, meta = list(ds.classes), dict(ds.meta)
    if dtype == "float":
        img = x.astype(np.float32) * np.float32(1.0 / 255.0)
        if normalize:
            if not all(v > 0 for v in s):
                raise ValueError("%s has no std in its header: give mean= and std=" % (src,))
            mm = np.asarray(m, np.float32).reshape(1, c, 1, 1)
            img = (img - mm) * (np.float32(1) / np.asarray(s, np.float32).reshape(1, c, 1, 1))
    else:
        img = x
    out = {"images": img, "labels": y, "class_names": names,
           "mean": np.asarray(m, np.float32), "std": np.asarray(s, np.float32),
           "normalized": bool(normalize), "meta": json.dumps(meta)}
    if soft is not None:
        out.update(labels=soft, hard_labels=y)
    if kind == "npz":
        out["class_names"] = np.asarray(names, dtype=str)
        with open(dst_s, "wb") as f:
            np.savez(f, **out)
    else:
        import torch
        # tensors, not float lists: torch 1.13's weights_only loader refuses Python floats
        out.update(images=torch.from_numpy(img), labels=torch.from_numpy(out["labels"]),
                   mean=torch.from_numpy(out["mean"]), std=torch.from_numpy(out["std"]))
        if soft is not None:
            out["hard_labels"] = torch.from_numpy(y)
        torch.save(out, dst_s)
    return n

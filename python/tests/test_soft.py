"""Soft labels (format 1.1) through the binding: apd.write / Writer accept (N, classes)
labels, apd.open / Loader / the torch datasets return them bit-exactly (one-hot for records
without), bad vectors are refused naming record and class; and the end-to-end path of a set
made by other tools: a .pt {'images': (N,3,32,32) float, 'labels': (N,10) float} ->
python3 -m apd import -> apd-info -> apd-eval (soft cross-entropy) -> export, bit-exact."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import apd
from conftest import BUILD, REPO


def soft_rows(n, k, seed=0, labels=None):
    """float32 rows summing to 1 whose argmax is labels (or random)."""
    r = np.random.RandomState(seed)
    y = r.randint(0, k, n) if labels is None else np.asarray(labels)
    noise = r.rand(n, k).astype(np.float64)
    noise = 0.4 * noise / noise.sum(1, keepdims=True)
    s = noise * 0.999
    s[np.arange(n), y] = 0.6
    s /= s.sum(1, keepdims=True)
    return s.astype(np.float32), y.astype(np.int64)


def bits(a):
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def test_write_read_loader(tmp_path):
    r = np.random.RandomState(1)
    x = r.randint(0, 256, (50, 3, 8, 8)).astype(np.uint8)
    soft, y = soft_rows(50, 6, seed=2)
    for name, kw in (("direct", {}), ("palette", {"quantizer": "median-cut", "k": 8})):
        p = tmp_path / (name + ".apd")
        assert apd.write(p, x, soft, **kw) == 50
        with apd.open(p) as ds:
            assert ds.info["soft_labels"] and ds.info["version"] == "1.1" and ds.info["n_classes"] == 6
            assert np.array_equal(ds.targets, y)
            got = ds.soft_labels()
            assert np.array_equal(bits(got), bits(soft))
            assert np.array_equal(bits(ds.soft_label(7)), bits(soft[7]))
        ld = apd.Loader(p, batch_size=16, seed=3, threads=2, prefetch=2, soft_labels=True)
        assert ld.has_soft_labels and ld.n_classes == 6
        seen = 0
        while True:
            b = ld.next_batch(with_indices=True)
            if b is None:
                break
            xb, yb, sb, ib = b
            assert sb.shape == (len(ib), 6) and sb.dtype == np.float32
            assert np.array_equal(bits(sb), bits(soft[ib])) and np.array_equal(yb, y[ib])
            seen += len(ib)
        assert seen == 50
        print("%s: 50 records, soft labels bit-exact through apd.open and apd.Loader" % name)
    # hard-label file: version 1.0, one-hot rows
    apd.write(tmp_path / "hard.apd", x, y)
    with apd.open(tmp_path / "hard.apd") as ds:
        assert not ds.info["soft_labels"] and ds.info["version"] == "1.0"
        assert np.array_equal(ds.soft_labels(), np.eye(6, dtype=np.float32)[y])
    xb, yb, sb = apd.Loader(tmp_path / "hard.apd", batch_size=50, shuffle=False,
                            soft_labels=True).next_batch()
    assert np.array_equal(sb, np.eye(6, dtype=np.float32)[yb])


def test_writer_mixed_and_bad(tmp_path):
    p = tmp_path / "m.apd"
    img = np.zeros((1, 2, 2), np.uint8)
    with apd.Writer(p, 1, 2, 2, n_classes=3, soft_labels=True) as w:
        w.put_direct(img, 2, soft=[0.1, 0.2, 0.7])
        w.put_direct(img, 1)  # no vector: reads as one-hot
        for soft, label, what in (([np.nan, 0.5, 0.5], 1, "class 0 value nan"),
                                  ([0.5, 0.7, -0.2], 1, "class 2 value -0.2"),
                                  ([0.2, 0.2, 0.2], 0, "do not sum to 1"),
                                  ([0.6, 0.4, 0.0], 1, "class 1 value 0.4: the record's label is not")):
            with pytest.raises(apd.ApdError, match="record 2") as e:
                w.put_direct(img, label, soft=soft)
            assert what in str(e.value) and str(p) in str(e.value), str(e.value)
        with pytest.raises(ValueError, match=r"shape \(3,\)"):
            w.put_direct(img, 0, soft=[1.0, 0.0])
        assert w.count == 2
    with apd.open(p) as ds:
        assert np.array_equal(ds.soft_label(0), np.float32([0.1, 0.2, 0.7]))
        assert np.array_equal(ds.soft_label(1), np.float32([0, 1, 0]))
    with apd.Writer(tmp_path / "n.apd", 1, 2, 2, n_classes=3) as w:
        with pytest.raises(apd.ApdError, match="without soft_labels"):
            w.put_direct(img, 0, soft=[1.0, 0.0, 0.0])
        w.put_direct(img, 0)


def test_torch_datasets(tmp_path):
    torch = pytest.importorskip("torch")
    from apd.torch import ApdDataset, ApdIterableDataset
    x = np.random.RandomState(4).randint(0, 256, (20, 3, 4, 4)).astype(np.uint8)
    soft, y = soft_rows(20, 4, seed=5)
    p = tmp_path / "t.apd"
    apd.write(p, x, torch.from_numpy(soft))
    ds = ApdDataset(p, soft_labels=True)
    img, t = ds[3]
    assert t.dtype == torch.float32 and torch.equal(t, torch.from_numpy(soft[3]))
    assert ApdDataset(p)[3][1] == y[3]
    it = ApdIterableDataset(p, batch_size=8, shuffle=False, soft_labels=True)
    rows = torch.cat([yb for _, yb in it])
    assert torch.equal(rows, torch.from_numpy(soft))
    # the soft target drives torch's cross-entropy (class probabilities)
    loss = torch.nn.functional.cross_entropy(torch.zeros(20, 4), rows)
    assert abs(float(loss) - np.log(4)) < 1e-6


def cli(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
    return subprocess.run([sys.executable, "-m", "apd"] + [str(a) for a in args], env=env,
                          capture_output=True, text=True)


def tool(name):
    exe = os.path.join(BUILD, name)
    if not os.path.exists(exe):
        pytest.skip("%s not built" % exe)
    return exe


def cifar_fixture(n):
    """The first n images and labels of tests/data/cifar10/train.bin."""
    raw = np.fromfile(os.path.join(REPO, "tests", "data", "cifar10", "train.bin"), np.uint8)
    raw = raw.reshape(-1, 3073)[:n]
    return raw[:, 1:].reshape(n, 3, 32, 32), raw[:, 0].astype(np.int64)


def test_import_info_eval_export_end_to_end(tmp_path):
    torch = pytest.importorskip("torch")
    u8, y = cifar_fixture(60)
    images = torch.from_numpy(u8.astype(np.float32) / 255.0)  # another tool's float images
    soft, _ = soft_rows(60, 10, seed=6, labels=y)  # "teacher" soft labels, argmax = y
    torch.save({"images": images, "labels": torch.from_numpy(soft)}, tmp_path / "syn.pt")
    r = cli("import", tmp_path / "syn.pt", tmp_path / "syn.apd")
    assert r.returncode == 0, r.stderr

    info = subprocess.run([tool("apd-info"), tmp_path / "syn.apd"], capture_output=True, text=True)
    assert info.returncode == 0 and "soft labels (1.1)" in info.stdout
    assert "60 of 60 records store a vector of 10 float32" in info.stdout, info.stdout
    ver = subprocess.run([tool("apd-info"), "--verify", tmp_path / "syn.apd"], capture_output=True,
                         text=True)
    assert ver.returncode == 0, ver.stderr

    test = "cifar10:" + os.path.join(REPO, "tests", "data", "cifar10", "test.bin")
    args = [tool("apd-eval"), tmp_path / "syn.apd", "--test", test, "--epochs", "4", "--runs", "1",
            "--width", "8", "--depth", "1", "--batch", "32", "--threads", "1", "--no-dsa"]
    ev = subprocess.run(args, capture_output=True, text=True)
    assert ev.returncode == 0, ev.stderr
    assert "labels: soft (format 1.1): 60 of 60 records store a vector" in ev.stdout
    assert "training with soft cross-entropy" in ev.stdout
    hard = subprocess.run(args + ["--hard-labels"], capture_output=True, text=True)
    assert hard.returncode == 0 and "labels: hard (--hard-labels)" in hard.stdout
    loss = [float(re.search(r"final train loss ([0-9.]+)", o).group(1)) for o in (ev.stdout, hard.stdout)]
    print("apd-eval 4 epochs: final train loss soft %.4f, hard %.4f" % tuple(loss))
    assert loss[0] != loss[1]  # the soft targets are what the network trained on

    for ext in ("pt", "npz"):
        out = tmp_path / ("back." + ext)
        r = cli("export", tmp_path / "syn.apd", out)
        assert r.returncode == 0, r.stderr
        if ext == "pt":
            d = torch.load(out, weights_only=True)
            lab, hl, img = d["labels"].numpy(), d["hard_labels"].numpy(), d["images"].numpy()
        else:
            with np.load(out) as z:
                lab, hl, img = z["labels"], z["hard_labels"], z["images"]
        assert lab.dtype == np.float32 and np.array_equal(bits(lab), bits(soft)), ext
        assert np.array_equal(hl, y)
        assert np.array_equal(np.rint(img * 255).astype(np.uint8), u8)
        # and the export imports back to the same records
        r = cli("import", out, tmp_path / ("again-%s.apd" % ext))
        assert r.returncode == 0, r.stderr
        with apd.open(tmp_path / ("again-%s.apd" % ext)) as ds:
            assert np.array_equal(bits(ds.soft_labels()), bits(soft))
    # apd-export --png: soft-labels.csv holds the same float32 values (%.9g reads back exactly)
    png = tmp_path / "png"
    r = subprocess.run([tool("apd-export"), tmp_path / "syn.apd", "--png", png, "--limit", "20"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = np.loadtxt(png / "soft-labels.csv", delimiter=",", skiprows=1)
    assert rows.shape == (20, 12) and np.all(rows[:, 1] == 1)
    assert np.array_equal(bits(rows[:, 2:].astype(np.float32)), bits(soft[:20]))
    assert '"soft_labels": "soft-labels.csv"' in (png / "apd-export.json").read_text()
    print("import -> apd-info -> apd-eval -> export (.pt, .npz, PNG + soft-labels.csv): soft labels "
          "bit-exact, max error 0.0")

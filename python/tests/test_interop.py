"""python3 -m apd import|export: .npz and .pt distilled sets both ways (float in [0, 1],
normalised with a mean/std, uint8); bad soft labels refused with the reason (good ones:
test_soft.py)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import apd
from apd import interop
from conftest import REPO

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


def cli(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
    return subprocess.run([sys.executable, "-m", "apd"] + [str(a) for a in args], env=env,
                          capture_output=True, text=True)


def synthetic(n=30, seed=0):
    r = np.random.RandomState(seed)
    u8 = r.randint(0, 256, (n, 3, 8, 8)).astype(np.uint8)
    return u8, (np.arange(n) % 10).astype(np.int64)


def records(path):
    ds = apd.open(path, layout="chw")
    return np.stack([ds[i][0] for i in range(len(ds))]), ds.targets, ds


def test_npz_float01_both_ways(tmp_path):
    u8, y = synthetic()
    x = u8.astype(np.float32) / 255
    np.savez(tmp_path / "syn.npz", images=x, labels=y)
    r = cli("import", tmp_path / "syn.npz", tmp_path / "syn.apd", "--meta", "method=dm",
            "--meta", "seed=4", "--class-names", ",".join("c%d" % i for i in range(10)))
    assert r.returncode == 0, r.stderr
    got, t, ds = records(tmp_path / "syn.apd")
    assert np.array_equal(got, u8) and t.tolist() == y.tolist()
    assert ds.meta["method"] == "dm" and ds.meta["seed"] == 4 and ds.classes[3] == "c3"
    assert ds.meta["imported_from"]["format"] == "npz"
    r = cli("export", tmp_path / "syn.apd", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "out.npz") as z:
        assert z["images"].dtype == np.float32 and z["images"].shape == (30, 3, 8, 8)
        err = np.abs(z["images"] - x).max()
        print("npz float round trip max error %.3g" % err)
        assert err < 1e-7 and z["labels"].tolist() == y.tolist()
        assert z["class_names"].tolist()[3] == "c3" and not bool(z["normalized"])
        assert json.loads(str(z["meta"]))["method"] == "dm"


def test_npz_normalised_and_uint8(tmp_path):
    u8, y = synthetic(seed=1)
    m, s = np.reshape(MEAN, (1, 3, 1, 1)), np.reshape(STD, (1, 3, 1, 1))
    xn = ((u8 / 255.0 - m) / s).astype(np.float32)
    np.savez(tmp_path / "n.npz", x=xn, y=y)
    r = cli("import", tmp_path / "n.npz", tmp_path / "n.apd")  # normalised without mean/std
    assert r.returncode == 1 and "mean" in r.stderr and "n.npz" in r.stderr
    r = cli("import", tmp_path / "n.npz", tmp_path / "n.apd", "--mean", *MEAN, "--std", *STD)
    assert r.returncode == 0, r.stderr
    got, _, ds = records(tmp_path / "n.apd")
    assert np.array_equal(got, u8) and np.allclose(ds.info["std"], STD)
    interop.export_file(tmp_path / "n.apd", tmp_path / "n2.npz", normalize=True)
    with np.load(tmp_path / "n2.npz") as z:
        err = np.abs(z["images"] - xn).max()
        print("normalised export max error %.3g" % err)
        assert err < 1e-5 and bool(z["normalized"])
    # a normalised export imports back by itself (it carries normalized, mean and std)
    interop.import_file(tmp_path / "n2.npz", tmp_path / "n3.apd")
    assert np.array_equal(records(tmp_path / "n3.apd")[0], u8)
    # uint8, channels last
    np.savez(tmp_path / "u.npz", images=u8.transpose(0, 2, 3, 1), labels=y.astype(np.uint8))
    assert cli("import", tmp_path / "u.npz", tmp_path / "u.apd").returncode == 0
    assert cli("export", tmp_path / "u.apd", tmp_path / "u2.npz", "--dtype", "uint8").returncode == 0
    with np.load(tmp_path / "u2.npz") as z:
        assert z["images"].dtype == np.uint8 and np.array_equal(z["images"], u8)
    r = cli("export", tmp_path / "u.apd", tmp_path / "u2.npz")
    assert r.returncode == 1 and "exists" in r.stderr


def test_pt_both_ways(tmp_path):
    torch = pytest.importorskip("torch")
    u8, y = synthetic(seed=2)
    x = torch.from_numpy(u8.astype(np.float32) / 255)
    # the three .pt layouts: dict, (images, labels) pair, {"data": [[images, labels], ...]}
    torch.save({"image_syn": x, "label_syn": torch.from_numpy(y)}, tmp_path / "d.pt")
    torch.save((x, torch.from_numpy(y)), tmp_path / "p.pt")
    torch.save({"data": [[x[:5], torch.from_numpy(y[:5])], [x, torch.from_numpy(y)]],
                "accs_all_exps": {"ConvNet": [0.5]}}, tmp_path / "dc.pt")
    r = cli("import", tmp_path / "d.pt", tmp_path / "d.apd")
    assert r.returncode == 0, r.stderr
    interop.import_file(tmp_path / "p.pt", tmp_path / "p.apd")
    # Python floats are beyond torch 1.13's weights_only loader: refused unless trusted
    with pytest.raises(ValueError, match="trust"):
        interop.import_file(tmp_path / "dc.pt", tmp_path / "dc.apd", experiment=1)
    interop.import_file(tmp_path / "dc.pt", tmp_path / "dc.apd", experiment=1, trusted=True)
    for name in ("d", "p", "dc"):
        got, t, _ = records(tmp_path / (name + ".apd"))
        assert np.array_equal(got, u8) and t.tolist() == y.tolist(), name
    # palette records by a named quantizer on import
    interop.import_file(tmp_path / "d.pt", tmp_path / "q.apd", quantizer="median-cut", k=8)
    q = apd.open(tmp_path / "q.apd")
    assert q.info["kind"] == "palette" and q.info["k"] == 8 and q.meta["quantizer"] == "median-cut"
    # export .pt, normalised, and back
    r = cli("export", tmp_path / "d.apd", tmp_path / "e.pt", "--normalize", "--mean", *MEAN,
            "--std", *STD)
    assert r.returncode == 0, r.stderr
    e = torch.load(tmp_path / "e.pt")
    want = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    err = float((e["images"] - want).abs().max())
    print(".pt normalised export max error %.3g" % err)
    assert e["images"].dtype == torch.float32 and err < 1e-5
    assert e["labels"].dtype == torch.int64 and e["labels"].tolist() == y.tolist()
    assert e["normalized"] and e["mean"].tolist() == pytest.approx(MEAN)
    interop.import_file(tmp_path / "e.pt", tmp_path / "e.apd")
    got, _, ds = records(tmp_path / "e.apd")
    assert np.array_equal(got, u8) and np.allclose(ds.info["mean"], MEAN)


def test_bad_soft_labels_refused(tmp_path):
    u8, y = synthetic()
    for what, change in (("not finite", lambda s: s.__setitem__((4, 2), np.nan)),
                         ("negative", lambda s: s.__setitem__((4, 2), -0.5)),
                         ("sum to 0.5", lambda s: s.__setitem__((4, y[4]), 0.5))):
        soft = np.eye(10, dtype=np.float32)[y]
        change(soft)
        np.savez(tmp_path / "s.npz", images=u8, labels=soft)
        r = cli("import", tmp_path / "s.npz", tmp_path / "s.apd")
        assert r.returncode == 1 and "soft labels of record 4" in r.stderr and what in r.stderr, r.stderr
        assert "s.npz" in r.stderr and not os.path.exists(tmp_path / "s.apd")
    np.savez(tmp_path / "s.npz", images=u8, labels=np.eye(10, dtype=np.float32)[y][:20])
    r = cli("import", tmp_path / "s.npz", tmp_path / "s.apd")
    assert r.returncode == 1 and "20 label rows for 30 images" in r.stderr, r.stderr
    torch = pytest.importorskip("torch")
    soft = np.eye(10, dtype=np.float32)[y]
    soft[7, 1] = np.inf
    torch.save({"images": torch.from_numpy(u8), "labels": torch.from_numpy(soft)},
               tmp_path / "s.pt")
    r = cli("import", tmp_path / "s.pt", tmp_path / "s.apd")
    assert r.returncode == 1 and "record 7, class 1" in r.stderr and "s.pt" in r.stderr


def test_container_errors(tmp_path):
    u8, y = synthetic()
    np.savez(tmp_path / "k.npz", pixels=u8, y=y)
    r = cli("import", tmp_path / "k.npz", tmp_path / "k.apd")
    assert r.returncode == 1 and "images" in r.stderr and "pixels" in r.stderr
    assert cli("import", tmp_path / "k.npz", tmp_path / "k.apd", "--images-key",
               "pixels").returncode == 0
    r = cli("import", tmp_path / "k.txt", tmp_path / "k.apd")
    assert r.returncode == 1 and ".npz or .pt" in r.stderr

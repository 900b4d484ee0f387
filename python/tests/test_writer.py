"""apd.write / apd.Writer: round trips through the C writer (uint8 NHWC/NCHW/grey, float in
[0, 1] and normalised, palette arrays, named quantizers), class names and metadata, the same
records as apd-convert, the independent spec reader, and clear errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import apd
from conftest import BUILD, REPO

SPEC_READER = os.path.join(REPO, "tests", "spec_reader.py")


def rnd_images(n=24, c=3, h=6, w=5, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (n, c, h, w)).astype(np.uint8)


def read_all(path, layout="chw"):
    ds = apd.open(path, layout=layout)
    x = np.stack([ds[i][0] for i in range(len(ds))])
    return x, ds.targets, ds


def spec_check(path):
    r = subprocess.run([sys.executable, SPEC_READER, str(path)], capture_output=True, text=True)
    if r.returncode == 77:
        pytest.skip("spec reader needs python3-lmdb and python3-zstandard")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_uint8_direct_round_trip(tmp_path, layout):
    x = rnd_images()
    y = np.arange(24) % 5
    arr = x if layout == "nchw" else x.transpose(0, 2, 3, 1)
    p = tmp_path / "d.apd"
    meta = {"method": "dm", "seed": 7, "source": {"name": "toy", "n": 24},
            "hyperparameters": {"ipc": 1, "lr": 0.5}}
    n = apd.write(p, arr, y, class_names=["a", "b", "c", "d", "é"], meta=meta,
                  dataset_name="toy", source_ids=np.arange(24) * 3)
    assert n == 24
    got, t, ds = read_all(p)
    assert np.array_equal(got, x) and t.tolist() == y.tolist()
    assert ds.info["kind"] == "direct" and ds.classes == ["a", "b", "c", "d", "é"]
    assert ds.class_to_idx["é"] == 4 and ds.source_id(5) == 15
    for k, v in meta.items():
        assert ds.meta[k] == v
    assert ds.meta["dataset"] == "toy" and ds.meta["class_counts"] == [5, 5, 5, 5, 4]
    v = x.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    assert np.allclose(ds.info["mean"], v.mean(1), atol=1e-6)
    assert np.allclose(ds.info["std"], v.std(1), atol=1e-6)
    spec_check(p)


def test_grey_and_layout_errors(tmp_path):
    x = rnd_images(c=1)[:, 0]  # (N, H, W)
    apd.write(tmp_path / "g.apd", x, np.zeros(24, int))
    got, _, ds = read_all(tmp_path / "g.apd")
    assert ds.info["c"] == 1 and np.array_equal(got[:, 0], x)
    cube = np.zeros((4, 3, 5, 3), np.uint8)  # 3 channels first or last?
    with pytest.raises(ValueError, match="layout="):
        apd.write(tmp_path / "a.apd", cube, np.zeros(4, int))
    apd.write(tmp_path / "a.apd", cube, np.zeros(4, int), layout="nhwc")
    assert apd.open(tmp_path / "a.apd").info["h"] == 3
    with pytest.raises(ValueError, match="channels"):
        apd.write(tmp_path / "b.apd", np.zeros((4, 2, 5, 5), np.uint8), np.zeros(4, int),
                  layout="nchw")


def test_float_round_trips(tmp_path):
    x = rnd_images()
    y = np.arange(24) % 3
    f01 = x.astype(np.float32) / 255
    apd.write(tmp_path / "f.apd", f01, y)
    assert np.array_equal(read_all(tmp_path / "f.apd")[0], x)
    # normalised with a mean/std: stored back as the same 8-bit pixels, header keeps mean/std
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    m, s = np.reshape(mean, (1, 3, 1, 1)), np.reshape(std, (1, 3, 1, 1))
    xn = ((f01 - m) / s).astype(np.float32)
    apd.write(tmp_path / "n.apd", xn, y, mean=mean, std=std)
    got, _, ds = read_all(tmp_path / "n.apd")
    assert np.array_equal(got, x)
    assert np.allclose(ds.info["mean"], mean) and np.allclose(ds.info["std"], std)
    xl = apd.Loader(tmp_path / "n.apd", batch_size=24, shuffle=False).next_batch()[0]
    err = np.abs(xl - xn).max()
    print("normalised float round trip max error %.3g" % err)
    assert err < 1e-5
    # off-grid floats round to the nearest 8-bit value
    jitter = f01 + np.float32(0.4 / 255)
    apd.write(tmp_path / "j.apd", np.clip(jitter, 0, 1), y)
    assert np.array_equal(read_all(tmp_path / "j.apd")[0], x)
    with pytest.raises(ValueError, match="mean= and std="):
        apd.write(tmp_path / "bad.apd", xn, y)
    assert not os.path.exists(tmp_path / "bad.apd")
    nan = f01.copy()
    nan[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        apd.write(tmp_path / "bad.apd", nan, y)


def test_palette_arrays_round_trip(tmp_path):
    r = np.random.RandomState(3)
    n, k = 10, 8
    pal = r.randint(0, 256, (n, k, 3)).astype(np.uint8)
    idx = r.randint(0, k, (n, 6, 5)).astype(np.uint8)
    y = np.arange(n) % 4
    apd.write(tmp_path / "p.apd", None, y, palette=pal, indices=idx, meta={"method": "autopalette"})
    ds = apd.open(tmp_path / "p.apd", layout="hwc")
    assert ds.info["kind"] == "palette" and ds.info["k"] == k and ds.info["bits"] == 3
    for i in range(n):
        p, ix, lab = ds.record(i)
        assert np.array_equal(p, pal[i]) and np.array_equal(ix, idx[i]) and lab == y[i]
        assert np.array_equal(ds[i][0], pal[i][idx[i]])
    spec_check(tmp_path / "p.apd")
    # palettes of different sizes per record, from a list
    pals = [pal[i][: 2 + i % 5] for i in range(n)]
    idx2 = np.stack([idx[i] % len(pals[i]) for i in range(n)])
    apd.write(tmp_path / "v.apd", None, y, palette=pals, indices=idx2)
    ds = apd.open(tmp_path / "v.apd")
    assert ds.info["k"] == 6
    assert all(np.array_equal(ds.record(i)[0], pals[i]) for i in range(n))
    with pytest.raises(ValueError, match="outside the palette"):
        apd.write(tmp_path / "e.apd", None, y, palette=pals, indices=idx)


def test_quantizers_match_apd_convert(tmp_path):
    convert = os.path.join(BUILD, "apd-convert")
    if not os.path.exists(convert):
        pytest.skip("apd-convert not built")
    r = np.random.RandomState(1)
    n = 20
    x = r.randint(0, 256, (n, 3, 32, 32)).astype(np.uint8)
    x[:, :, 10:] = x[:, :, 10:] // 64 * 64  # fewer colours in part of each image
    y = np.arange(n) % 10
    cif = tmp_path / "cif.bin"
    np.concatenate([y[:, None].astype(np.uint8), x.reshape(n, -1)], 1).tofile(cif)
    for q in apd.QUANTIZERS:
        ref = tmp_path / ("ref-%s.apd" % q)
        subprocess.run([convert, "-i", "cifar10:%s" % cif, "-m", "quantize", "-q", q, "-k", "16",
                        "-o", str(ref), "--quiet"], check=True)
        mine = tmp_path / ("py-%s.apd" % q)
        apd.write(mine, x, y, quantizer=q, k=16, class_names=apd.open(ref).classes)
        a, b = apd.open(ref), apd.open(mine)
        assert a.info == b.info and b.meta["quantizer"] == q
        for i in range(n):
            ra, rb = a.record(i), b.record(i)
            assert np.array_equal(ra[0], rb[0]) and np.array_equal(ra[1], rb[1]) and ra[2] == rb[2]
        spec_check(mine)
    with pytest.raises(ValueError, match="unknown quantizer"):
        apd.write(tmp_path / "x.apd", x, y, quantizer="nope", k=4)
    with pytest.raises(ValueError, match="k="):
        apd.write(tmp_path / "x.apd", x, y, quantizer="octree")


def test_label_and_meta_errors(tmp_path):
    x = rnd_images(n=4)
    with pytest.raises(ValueError, match="soft labels of record 0 sum to 2"):
        apd.write(tmp_path / "s.apd", x, np.full((4, 10), 0.2, np.float32))
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        apd.write(tmp_path / "s.apd", x, [0, 1, 2])
    with pytest.raises(ValueError, match="negative"):
        apd.write(tmp_path / "s.apd", x, [0, 1, -2, 0])
    with pytest.raises(ValueError, match="integers"):
        apd.write(tmp_path / "s.apd", x, [0, 1, 2.5, 0])
    with pytest.raises(ValueError, match="63 bytes"):
        apd.write(tmp_path / "s.apd", x, [0, 0, 0, 0], class_names=["x" * 64])
    with pytest.raises(ValueError, match="label"):
        apd.write(tmp_path / "s.apd", x, [0, 1, 2, 3], class_names=["a", "b"])
    with pytest.raises(apd.ApdError, match="maintained by the library"):
        apd.write(tmp_path / "s.apd", x, [0, 0, 0, 0], meta={"n_records": 3})
    with pytest.raises(ValueError, match="JSON"):
        apd.write(tmp_path / "s.apd", x, [0, 0, 0, 0], meta={"when": object()})
    assert not os.path.exists(tmp_path / "s.apd")
    apd.write(tmp_path / "s.apd", x, [0, 0, 0, 0])
    with pytest.raises(apd.ApdError) as e:
        apd.write(tmp_path / "s.apd", x, [0, 0, 0, 0])
    assert e.value.status == 22  # APD_EEXIST: not overwritten without force=True
    apd.write(tmp_path / "s.apd", x[:2], [1, 1], force=True)
    assert len(apd.open(tmp_path / "s.apd")) == 2


def test_streaming_writer(tmp_path):
    x = rnd_images(n=6)
    with apd.Writer(tmp_path / "w.apd", 3, 6, 5, kind="palette", k=4, n_classes=2,
                    meta={"method": "stream"}) as w:
        for i in range(6):
            w.put_quantized(x[i], i % 2, "kmeans")
        w.commit()
        assert w.count == 6
        with pytest.raises(ValueError, match="label"):
            w.put_quantized(x[0], 2)
        with pytest.raises(ValueError, match="uint8 CHW"):
            w.put_quantized(x[0].transpose(1, 2, 0), 0)
    ds = apd.open(tmp_path / "w.apd")
    assert len(ds) == 6 and ds.meta["method"] == "stream" and ds.info["k"] == 4
    json.dumps(ds.meta)  # the document stays valid JSON
    # an exception inside `with` removes the partial file
    with pytest.raises(RuntimeError):
        with apd.Writer(tmp_path / "z.apd", 3, 6, 5) as w:
            w.put_direct(x[0], 0)
            raise RuntimeError("stop")
    assert not os.path.exists(tmp_path / "z.apd")

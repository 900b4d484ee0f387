"""apd binding without torch: random access, loader order/sharding/state, errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

import apd
from conftest import REPO


def test_open_len_meta_items(synth):
    ds = apd.open(synth)
    assert len(ds) == 600
    assert ds.meta["method"] == "synthetic"
    assert ds.meta["seed"] == 12345
    assert ds.info["c"] == 3 and ds.info["h"] == 8 and ds.info["kind"] == "palette"
    img, lab = ds[13]
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    assert lab == 3
    img2, lab2 = ds[-587]
    assert lab2 == 3 and np.array_equal(img, img2)
    with pytest.raises(IndexError):
        ds[600]
    chw, _ = apd.open(synth, layout="chw")[13]
    assert np.array_equal(chw, img.transpose(2, 0, 1))
    ds.close()


def test_loader_pixels_match_records(synth):
    ds = apd.open(synth)
    for layout in ("hwc", "chw", "float"):
        ld = apd.Loader(synth, batch_size=64, seed=1, layout=layout, threads=2)
        mean, std = ld.norm
        assert np.allclose(mean, [0.5] * 3) and np.allclose(std, [0.25] * 3)
        total = 0
        while True:
            b = ld.next_batch(with_indices=True)
            if b is None:
                break
            x, y, idx = b
            assert y.dtype == np.int64
            for j in range(len(y)):
                img, lab = ds[int(idx[j])]
                assert y[j] == lab
                if layout == "hwc":
                    assert np.array_equal(x[j], img)
                elif layout == "chw":
                    assert np.array_equal(x[j], img.transpose(2, 0, 1))
                else:
                    want = (img.transpose(2, 0, 1).astype(np.float64) / 255 - 0.5) / 0.25
                    assert x.dtype == np.float32
                    assert np.abs(x[j] - want).max() < 1e-5
            total += len(y)
        assert total == 600
        ld.close()


def epoch_indices(path, **kw):
    ld = apd.Loader(path, layout="hwc", **kw)
    out = [i for b in ld.indices() for i in b.tolist()]
    ld.close()
    return out


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_every_sample_once_across_ranks(synth, world):
    seen = []
    counts = set()
    for r in range(world):
        got = epoch_indices(synth, batch_size=25, seed=3, rank=r, world_size=world)
        counts.add(len(got))
        seen += got
    assert len(counts) == 1  # equal per rank
    assert sorted(seen) == list(range(600))


def test_shuffle_by_epoch_and_seed(synth):
    a0 = epoch_indices(synth, batch_size=50, seed=7)
    a0b = epoch_indices(synth, batch_size=50, seed=7)
    a1 = epoch_indices(synth, batch_size=50, seed=7, epoch=1)
    b0 = epoch_indices(synth, batch_size=50, seed=8)
    assert a0 == a0b
    assert a0 != a1 and sorted(a0) == sorted(a1)
    assert a0 != b0
    assert epoch_indices(synth, batch_size=50, shuffle=False) == list(range(600))
    # the loader moves to the next epoch by itself
    ld = apd.Loader(synth, batch_size=50, seed=7, layout="hwc")
    e0 = [i for b in ld.indices() for i in b.tolist()]
    e1 = [i for b in ld.indices() for i in b.tolist()]
    assert e0 == a0 and e1 == a1 and ld.epoch == 2


def test_state_dict_round_trip(synth):
    a = apd.Loader(synth, batch_size=32, seed=5, layout="float", threads=2)
    it = iter(a)
    for _ in range(4):
        next(it)
    st = a.state_dict()
    assert st["cursor"] == 128 and st["epoch"] == 0 and st["n"] == 600
    rest_a = list(a)
    b = apd.Loader(synth, batch_size=32, seed=0, layout="float", threads=1, prefetch=2)
    b.load_state_dict(st)
    rest_b = list(b)
    assert len(rest_a) == len(rest_b) == len(a) - 4
    for (xa, ya), (xb, yb) in zip(rest_a, rest_b):
        assert xa.tobytes() == xb.tobytes() and np.array_equal(ya, yb)
    bad = dict(st, n=601)
    with pytest.raises(apd.ApdError) as e:
        b.load_state_dict(bad)
    assert "601" in str(e.value)


def test_elastic_resume_2_to_3(synth):
    seen = []
    state = None
    for r in range(2):
        ld = apd.Loader(synth, batch_size=20, seed=9, rank=r, world_size=2, layout="hwc")
        for _ in range(6):  # 6 steps x 2 ranks x 20 = 240; 360 left = 6 steps of 3 x 20
            seen += ld.next_batch(with_indices=True)[2].tolist()
        s = ld.state_dict()
        assert state is None or s == state
        state = s
    assert state["cursor"] == 240
    for r in range(3):
        ld = apd.Loader(synth, batch_size=20, rank=r, world_size=3, layout="hwc")
        ld.load_state_dict(state)
        seen += [i for b in ld.indices() for i in b.tolist()]
    assert sorted(seen) == list(range(600))


def test_drop_last_and_padding(synth):
    # 600 = 3 ranks x 64 x 3 steps + 24: drop_last drops 24; padding gives b = 8 per rank.
    for drop in (True, False):
        seen, lens = [], set()
        for r in range(3):
            ld = apd.Loader(synth, batch_size=64, rank=r, world_size=3, drop_last=drop,
                            layout="hwc", seed=2)
            got = [b.tolist() for b in ld.indices()]
            lens.add(tuple(len(b) for b in got))
            seen += [i for b in got for i in b]
        assert len(lens) == 1
        if drop:
            assert lens == {(64, 64, 64)} and len(set(seen)) == len(seen) == 576
        else:
            assert lens == {(64, 64, 64, 8)} and sorted(set(seen)) == list(range(600))


def test_class_subset(synth):
    got = epoch_indices(synth, batch_size=16, classes=[1, 4])
    assert sorted(got) == [i for i in range(600) if i % 10 in (1, 4)]


def test_bad_paths_raise(tmp_path):
    with pytest.raises(apd.ApdError) as e:
        apd.open(tmp_path / "nope.apd")
    assert "nope.apd" in str(e.value) and e.value.status == 21
    with pytest.raises(apd.ApdError) as e:
        apd.Loader(tmp_path / "nope.apd")
    assert e.value.status == 21
    junk = tmp_path / "junk.apd"
    junk.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(apd.ApdError) as e:
        apd.open(junk)
    assert "junk.apd" in str(e.value)
    with pytest.raises(ValueError):
        apd.Loader(junk, rank=2, world_size=2)


def test_corrupt_record_raises_or_skips(corrupt):
    ld = apd.Loader(corrupt, batch_size=10, shuffle=False)
    with pytest.raises(apd.ApdError) as e:
        list(ld)
    assert "record 18" in str(e.value) and "checksum" in str(e.value)
    assert e.value.status == 44
    ds = apd.open(corrupt)
    with pytest.raises(apd.ApdError):
        ds[18]
    ld = apd.Loader(corrupt, batch_size=10, shuffle=False, skip_corrupt=True, threads=2)
    n = sum(len(y) for _, y in ld)
    assert n == 99 and ld.skipped == 1


def test_handle_refused_after_fork(synth):
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    ld = apd.Loader(synth, batch_size=10, layout="hwc")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            ld.next_batch()
        except apd.ApdError as e:
            code = 0 if "another process" in str(e) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert ld.next_batch() is not None


def test_library_not_found_message(tmp_path):
    import shutil
    shutil.copytree(os.path.join(REPO, "python", "apd"), tmp_path / "pkg" / "apd")
    env = dict(os.environ, APD_LIBRARY=str(tmp_path / "nolib.so"), APD_BUILD_DIR=str(tmp_path))
    env["PYTHONPATH"] = str(tmp_path / "pkg")
    code = "try:\n import apd\n print('loaded')\nexcept ImportError as e:\n print(e)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=str(tmp_path))
    # without a library anywhere the message tells how to point at one (an installed copy in
    # a system lib dir would be found instead)
    assert "APD_LIBRARY" in out.stdout or out.stdout.strip() == "loaded"


def test_next_batch_into_given_arrays(synth):
    ld = apd.Loader(synth, batch_size=32, layout="chw", shuffle=False)
    x = np.zeros((32, 3, 8, 8), np.uint8)
    y = np.zeros(32, np.int64)
    bx, by = ld.next_batch(out=(x, y))
    assert np.shares_memory(bx, x) and by.tolist() == [i % 10 for i in range(32)]
    assert np.array_equal(x[5], apd.open(synth, layout="chw")[5][0])
    with pytest.raises(ValueError):
        ld.next_batch(out=(np.zeros((32, 8, 8, 3), np.uint8), y))


def test_index_coded_file_reads_like_plain():
    """A format 1.1 file with an entropy-coded index map (tests/data/bad/coded_valid.apd)
    decodes to the same pixels as the plain 1.0 file of the same image (valid.apd)."""
    bad = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "bad")
    coded, plain = apd.open(os.path.join(bad, "coded_valid.apd")), apd.open(os.path.join(bad, "valid.apd"))
    assert coded.info["version"] == "1.1" and coded.info["index_coded"]
    assert coded.info["index_model_version"] == 1
    assert plain.info["version"] == "1.0" and not plain.info["index_coded"]
    assert plain.info["index_model_version"] == 0
    (ci, cl), (pi, pl) = coded[0], plain[0]
    assert cl == pl == 7 and np.array_equal(ci, pi)
    assert ci[0, 0].tolist() == [255, 0, 0] and ci[1, 0].tolist() == [0, 0, 255]
    coded.close()
    # format 1.2: the same record against an index model of version 2
    v2 = apd.open(os.path.join(bad, "coded_valid_v2.apd"))
    assert v2.info["version"] == "1.2" and v2.info["index_model_version"] == 2
    assert np.array_equal(v2[0][0], pi) and v2[0][1] == 7
    v2.close()
    plain.close()


def test_integers_are_range_checked(synth):
    ds = apd.open(synth)
    lab5 = ds.label(5)
    for bad in (2 ** 64 + 5, 2 ** 32 + 5, 600, -601):
        with pytest.raises(IndexError):
            ds.label(bad)
        with pytest.raises(IndexError):
            ds[bad]
    assert ds.label(-595) == lab5 and ds[np.int64(5)][1] == lab5
    with pytest.raises(TypeError):
        ds.label(5.0)
    with pytest.raises(TypeError):
        ds["5"]
    for kw in ({"world_size": 2 ** 32 + 1}, {"world_size": 0}, {"rank": -1},
               {"rank": 2 ** 32, "world_size": 2}, {"batch_size": 2 ** 32 + 4},
               {"batch_size": 0}, {"seed": -1}, {"seed": 2 ** 64}, {"epoch": 2 ** 64},
               {"threads": 2 ** 32 + 2}, {"prefetch": -1}, {"classes": [2 ** 32 + 1]},
               {"std": [0.0] * 3, "mean": [0.5] * 3}):
        with pytest.raises(ValueError) as e:
            apd.Loader(synth, **kw)
        name = next(iter(kw))
        assert name in str(e.value), (kw, str(e.value))
    with pytest.raises(TypeError):
        apd.Loader(synth, batch_size=2.5)
    ld = apd.Loader(synth, batch_size=10)
    st = ld.state_dict()
    with pytest.raises(ValueError):
        ld.load_state_dict(dict(st, cursor=2 ** 64 + 1))
    with pytest.raises(ValueError):
        ld.set_epoch(-1)
    # the largest legal values still reach C
    assert apd.Loader(synth, batch_size=10, seed=2 ** 64 - 1).state_dict()["seed"] == 2 ** 64 - 1


def test_nul_in_paths_refused(synth, tmp_path):
    for bad in (synth + "\0.bak", synth.encode() + b"\0x"):
        with pytest.raises(ValueError, match="NUL"):
            apd.open(bad)
        with pytest.raises(ValueError, match="NUL"):
            apd.Loader(bad)
    with pytest.raises(ValueError, match="NUL"):
        apd.write(str(tmp_path / "a\0b.apd"), np.zeros((1, 3, 4, 4), np.uint8), [0])
    assert not os.path.exists(tmp_path / "a")
    # bytes and PathLike paths work
    assert len(apd.open(synth.encode())) == 600
    import pathlib
    assert len(apd.open(pathlib.Path(synth))) == 600


def test_truncated_or_damaged_file_raises(synth, tmp_path):
    """A cut or damaged file is an ApdError naming it, never a crash of the interpreter (it
    was SIGBUS inside LMDB): run in a child so that a crash fails the test."""
    data = open(synth, "rb").read()
    cases = {"cut.apd": data[:-4096], "cut37.apd": data[:-37],
             "zeroed.apd": data[:-4096] + bytes(4096)}
    for name, b in cases.items():
        (tmp_path / name).write_bytes(b)
    code = ("import apd, sys\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n"
            "        apd.open(p)\n"
            "        print('opened', p)\n"
            "    except apd.ApdError as e:\n"
            "        assert p in str(e), e\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "python"),
                                                       os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", code] + [str(tmp_path / n) for n in cases],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "opened" not in r.stdout


def test_write_format_versions(tmp_path):
    """format= caps the file's format for older readers: 1.0 bit-packed, 1.1 coded with index
    model version 1, 1.2 (default) with version 2; the same pixels in each; 1.0 with soft
    labels and unknown versions are refused before anything is written."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:32, 0:32]
    base = ((yy[None] * 4 + xx[None] * 3 + rng.integers(0, 40, (200, 32, 32))) % 256).astype(np.uint8)
    imgs = np.stack([base, base[:, ::-1], base.transpose(0, 2, 1)], axis=1)  # smooth: codes well
    labels = np.arange(200) % 10
    got = {}
    for fmt, model in (("1.0", 0), ("1.1", 1), ("1.2", 2)):
        p = str(tmp_path / ("f%s.apd" % fmt))
        apd.write(p, imgs, labels, quantizer="median-cut", k=16, format=fmt)
        ds = apd.open(p)
        assert ds.info["version"] == fmt and ds.info["index_model_version"] == model
        got[fmt] = np.stack([ds[i][0] for i in range(len(ds))])
        ds.close()
    assert np.array_equal(got["1.0"], got["1.1"]) and np.array_equal(got["1.0"], got["1.2"])
    soft = np.full((200, 10), 0.1)
    with pytest.raises(ValueError, match="soft labels need format 1.1"):
        apd.write(str(tmp_path / "s.apd"), imgs, soft, quantizer="median-cut", k=16, format="1.0")
    with pytest.raises(ValueError, match="format must be"):
        apd.write(str(tmp_path / "x.apd"), imgs, labels, format="2.0")
    assert not os.path.exists(str(tmp_path / "s.apd")) and not os.path.exists(str(tmp_path / "x.apd"))

"""examples/train_torch.py's DSA in torch ops against libapd's DSA (include/apd/dsa.h): the
same parameters, drawn by the C library, give the same augmented batch for every op."""
import ctypes as C
import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from apd import _lib  # noqa: E402
from conftest import REPO  # noqa: E402

OPS = {1: "color", 2: "crop", 3: "cutout", 4: "flip", 5: "scale", 6: "rotate"}


class Cfg(C.Structure):
    _fields_ = [("strategy", C.c_uint32)] + [(f, C.c_float) for f in (
        "prob_flip", "ratio_scale", "ratio_rotate", "ratio_crop_pad", "ratio_cutout",
        "brightness", "saturation", "contrast")] + [("align_corners", C.c_int)]


class Sample(C.Structure):
    _fields_ = [("brightness", C.c_float), ("saturation", C.c_float), ("contrast", C.c_float),
                ("dy", C.c_int32), ("dx", C.c_int32), ("oy", C.c_int32), ("ox", C.c_int32),
                ("flip", C.c_int32), ("theta", C.c_float * 6)]


class Params(C.Structure):
    _fields_ = [("op", C.c_int), ("n_samples", C.c_uint32), ("h", C.c_uint32),
                ("w", C.c_uint32), ("cut_h", C.c_uint32), ("cut_w", C.c_uint32),
                ("align_corners", C.c_int), ("samples", C.POINTER(Sample))]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location(
        "train_torch", os.path.join(REPO, "examples", "train_torch.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def torch_params(op, ss, n):
    t = lambda f, dt=torch.float32: torch.tensor([getattr(ss[i], f) for i in range(n)], dtype=dt)
    if op == "color":
        return {"b": t("brightness"), "s": t("saturation"), "k": t("contrast")}
    if op == "crop":
        return {"dy": t("dy", torch.int64), "dx": t("dx", torch.int64)}
    if op == "cutout":
        return {"oy": t("oy", torch.int64), "ox": t("ox", torch.int64)}
    if op == "flip":
        return {"flip": t("flip", torch.int64) != 0}
    return {"theta": torch.tensor([list(ss[i].theta) for i in range(n)]).view(n, 2, 3)}


@pytest.mark.parametrize("size", [(32, 32), (28, 28), (9, 12)])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_torch_dsa_matches_libapd(example, size, align_corners):
    L = _lib.L
    L.apd_dsa_opts_default.argtypes = [C.POINTER(Cfg)]
    L.apd_dsa_draw_op.argtypes = [C.POINTER(Params), C.POINTER(Sample), C.c_size_t,
                                  C.POINTER(Cfg), C.c_int, C.c_int, C.c_uint64, C.c_uint64,
                                  C.c_uint32, C.c_uint32, C.c_uint32]
    L.apd_dsa_forward.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(Params), C.c_uint32,
                                  C.c_uint32, C.c_uint32, C.c_uint32]
    n, c = 8, 3
    h, w = size
    cfg = Cfg()
    L.apd_dsa_opts_default(C.byref(cfg))
    cfg.align_corners = align_corners
    x = np.random.RandomState(h * w).randn(n, c, h, w).astype(np.float32)
    dsa = example.DSA(0, align_corners=bool(align_corners))
    for opi, op in OPS.items():
        worst = 0.0
        for seed in range(4):
            ss = (Sample * n)()
            p = Params()
            assert L.apd_dsa_draw_op(C.byref(p), ss, n, C.byref(cfg), opi, 1, seed, 7, n, h,
                                     w) == 0
            want = np.empty_like(x)
            assert L.apd_dsa_forward(want.ctypes.data, x.ctypes.data, C.byref(p), n, c, h,
                                     w) == 0
            got = dsa.apply(torch.from_numpy(x), op, torch_params(op, ss, n)).numpy()
            worst = max(worst, float(np.abs(got - want).max()))
        print("%s %dx%d align_corners=%d: max error %.3g" % (op, h, w, align_corners, worst))
        assert worst < 2e-5, op


def test_torch_dsa_draws_in_range(example):
    # the torch draws stay in the documented ranges (32 px: shift 4, cutout 16)
    dsa = example.DSA(3)
    p = dsa.draw("color", 2000, 32, 32)
    assert -0.5 <= float(p["b"].min()) and float(p["b"].max()) <= 0.5
    assert 0 <= float(p["s"].min()) and float(p["s"].max()) <= 2
    assert 0.5 <= float(p["k"].min()) and float(p["k"].max()) <= 1.5
    p = dsa.draw("crop", 2000, 32, 32)
    assert sorted(set(p["dy"].tolist())) == list(range(-4, 5))
    p = dsa.draw("cutout", 2000, 32, 32)
    assert sorted(set(p["oy"].tolist())) == list(range(0, 33))
    p = dsa.draw("rotate", 2000, 32, 32)["theta"]
    ang = torch.atan2(p[:, 1, 0], p[:, 0, 0]) * 180 / np.pi
    assert float(ang.abs().max()) <= 15.0 + 1e-4 and float(ang.abs().max()) > 14
    flips = dsa.draw("flip", 4000, 32, 32)["flip"].float().mean()
    assert 0.45 < float(flips) < 0.55

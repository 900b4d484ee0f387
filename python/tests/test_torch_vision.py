"""torchvision habits: transform / target_transform on both datasets, uint8 CHW tensors and PIL
images that torchvision transforms accept, classes / class_to_idx / targets; the float path
stays bit-identical to the loader."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import apd  # noqa: E402
import apd.torch as at  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ddp_helper import make_ids_file  # noqa: E402

N = 40


@pytest.fixture(scope="module")
def ids(tmp_path_factory):
    p = str(tmp_path_factory.mktemp("tv") / "ids.apd")
    x = make_ids_file(p, N)
    return p, x


def test_class_attributes(ids, synth):
    path, _ = ids
    for ds in (at.ApdDataset(path), at.ApdIterableDataset(path, batch_size=8)):
        assert ds.classes == ["c%d" % j for j in range(7)]
        assert ds.class_to_idx == {"c%d" % j: j for j in range(7)}
        assert ds.targets == [i % 7 for i in range(N)]
    # a file without class names: torchvision-style names "0".."9"
    m = at.ApdDataset(synth)
    assert m.classes == [str(i) for i in range(10)] and m.targets[:12] == [i % 10 for i in range(12)]


def test_uint8_chw_and_pil_layouts(ids):
    path, x = ids
    chw = at.ApdDataset(path, layout="chw")
    t, y = chw[5]
    assert t.dtype == torch.uint8 and tuple(t.shape) == (3, 4, 4) and y == 5
    assert np.array_equal(t.numpy(), x[5])
    hwc = at.ApdDataset(path, layout="hwc")[5][0]
    assert np.array_equal(hwc.numpy(), x[5].transpose(1, 2, 0))
    pytest.importorskip("PIL")
    img, y = at.ApdDataset(path, layout="pil")[5]
    assert img.size == (4, 4) and img.mode == "RGB"
    assert np.array_equal(np.asarray(img), x[5].transpose(1, 2, 0))


def test_torchvision_pipeline(ids):
    T = pytest.importorskip("torchvision.transforms")
    path, x = ids
    # uint8 CHW tensors through tensor transforms
    tf = T.Compose([T.RandomHorizontalFlip(p=1.0), T.ConvertImageDtype(torch.float32),
                    T.Normalize([0.5] * 3, [0.25] * 3)])
    ds = at.ApdDataset(path, layout="chw", transform=tf, target_transform=lambda v: v * 10)
    t, y = ds[9]
    want = (x[9][:, :, ::-1].astype(np.float32) / 255 - 0.5) / 0.25
    print("tensor pipeline max error %.3g" % np.abs(t.numpy() - want).max())
    assert np.abs(t.numpy() - want).max() < 1e-5 and y == 20
    # PIL images through PIL transforms, then batched by a DataLoader
    pytest.importorskip("PIL")
    tf = T.Compose([T.RandomHorizontalFlip(p=1.0), T.ToTensor()])
    ds = at.ApdDataset(path, layout="pil", transform=tf)
    xb, yb = next(iter(DataLoader(ds, batch_size=10)))
    want = x[:10][:, :, :, ::-1].astype(np.float32) / 255
    print("PIL pipeline max error %.3g" % np.abs(xb.numpy() - want).max())
    assert np.abs(xb.numpy() - want).max() < 1e-6 and yb.tolist() == [i % 7 for i in range(10)]


def test_iterable_transforms(ids):
    path, x = ids
    flip = at.ApdIterableDataset(path, batch_size=16, shuffle=False, layout="chw",
                                 transform=lambda t: t.flip(-1),
                                 target_transform=lambda v: torch.tensor([v, -v]))
    for workers in (0, 2):
        got = list(DataLoader(flip, batch_size=None, num_workers=workers,
                              multiprocessing_context="fork" if workers else None))
        xb = torch.cat([b[0] for b in got]).numpy()
        yb = torch.cat([b[1] for b in got])
        assert np.array_equal(xb, x[:, :, :, ::-1])
        assert yb.shape == (N, 2) and yb[:, 0].tolist() == [i % 7 for i in range(N)]
        assert (yb[:, 1] == -yb[:, 0]).all()
    pytest.importorskip("PIL")
    T = pytest.importorskip("torchvision.transforms")
    pil = at.ApdIterableDataset(path, batch_size=16, shuffle=False, layout="pil",
                                transform=T.ToTensor())
    xb = torch.cat([b for b, _ in DataLoader(pil, batch_size=None)]).numpy()
    assert np.abs(xb - x.astype(np.float32) / 255).max() < 1e-6
    with pytest.raises(ValueError, match="transform"):
        at.ApdIterableDataset(path, layout="pil")


def test_float_path_still_bit_identical(ids):
    path, _ = ids
    mds = at.ApdDataset(path, layout="float")
    ids_ds = at.ApdIterableDataset(path, batch_size=N, shuffle=False, layout="float")
    xb, yb = next(iter(DataLoader(ids_ds, batch_size=None)))
    ld = apd.Loader(path, batch_size=N, shuffle=False, layout="float")
    x, y = ld.next_batch()
    assert xb.numpy().tobytes() == x.tobytes() and yb.tolist() == y.tolist()
    for i in (0, 17, N - 1):
        assert mds[i][0].numpy().tobytes() == x[i].tobytes()

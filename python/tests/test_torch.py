"""apd.torch: datasets split over DDP ranks x DataLoader workers, fork and spawn workers,
resume. Skipped when torch is not installed."""
import multiprocessing as mp

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import apd  # noqa: E402
import apd.torch as at  # noqa: E402
from torch.utils.data import DataLoader, DistributedSampler  # noqa: E402


def labels_with_index(path):
    # synth files: label = i % 10 and pixels identify the record: use the map dataset to
    # build a fingerprint -> index table
    ds = apd.open(path, layout="chw")
    return {ds[i][0].tobytes(): i for i in range(len(ds))}


@pytest.fixture(scope="module")
def fp(synth):
    return labels_with_index(synth)


@pytest.fixture(scope="module")
def fp1800(synth1800):
    return labels_with_index(synth1800)


def ids_of(x, fp):
    x = x.numpy()
    return [fp[x[j].tobytes()] for j in range(x.shape[0])]


@pytest.mark.parametrize("world", [1, 2, 4])
@pytest.mark.parametrize("workers", [0, 1, 3])
@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_iterable_every_sample_once(synth1800, fp1800, world, workers):
    synth, fp = synth1800, fp1800
    seen, counts = [], set()
    for r in range(world):
        ds = at.ApdIterableDataset(synth, batch_size=25, seed=4, rank=r, world_size=world,
                                   layout="chw")
        dl = DataLoader(ds, batch_size=None, num_workers=workers,
                        multiprocessing_context="fork" if workers else None)
        got = []
        for x, y in dl:
            assert x.dtype == torch.uint8 and y.dtype == torch.int64
            ids = ids_of(x, fp)
            assert [i % 10 for i in ids] == y.tolist()
            got += ids
        counts.add(len(got))
        seen += got
    assert len(counts) == 1
    assert sorted(seen) == list(range(1800))
    # rank r gets apd.Loader(rank=r, world_size=world)'s batches whatever the worker count
    ld = apd.Loader(synth, batch_size=25, seed=4, rank=world - 1, world_size=world, layout="chw")
    assert [i for b in ld.indices() for i in b.tolist()] == got


@pytest.mark.parametrize("world", [1, 3])
@pytest.mark.parametrize("workers", [0, 2])
def test_map_dataset_with_distributed_sampler(synth, fp, world, workers):
    seen = []
    for r in range(world):
        ds = at.ApdDataset(synth, layout="chw")
        smp = DistributedSampler(ds, num_replicas=world, rank=r, shuffle=True, seed=1)
        dl = DataLoader(ds, batch_size=32, sampler=smp, num_workers=workers,
                        multiprocessing_context="fork" if workers else None)
        for x, y in dl:
            seen += ids_of(x, fp)
    assert sorted(seen) == list(range(600))


def test_spawn_workers(synth, fp):
    ds = at.ApdIterableDataset(synth, batch_size=50, seed=1, layout="chw")
    dl = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    seen = [i for x, _ in dl for i in ids_of(x, fp)]
    assert sorted(seen) == list(range(600))
    mds = at.ApdDataset(synth, layout="float")
    dl = DataLoader(mds, batch_size=100, num_workers=2, multiprocessing_context="spawn")
    n = 0
    for x, y in dl:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8)
        n += len(y)
    assert n == 600


def test_float_matches_loader(synth):
    mds = at.ApdDataset(synth, layout="float")
    ld = apd.Loader(synth, batch_size=600, shuffle=False, layout="float")
    x, y = ld.next_batch()
    for i in (0, 17, 599):
        xi, yi = mds[i]
        assert yi == y[i]
        assert xi.numpy().tobytes() == x[i].tobytes()  # bit-identical normalisation


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_iterable_epochs_and_resume(synth, fp):
    ds = at.ApdIterableDataset(synth, batch_size=25, seed=6, layout="chw")
    e0 = [i for x, _ in DataLoader(ds, batch_size=None) for i in ids_of(x, fp)]
    ds.set_epoch(1)
    e1 = [i for x, _ in DataLoader(ds, batch_size=None) for i in ids_of(x, fp)]
    assert e0 != e1 and sorted(e0) == sorted(e1)
    # stop after 6 batches with 2 workers, resume with 3 workers: the rest exactly once
    ds.set_epoch(2)
    dl = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
    head = []
    for k, (x, _) in enumerate(dl):
        head += ids_of(x, fp)
        if k == 5:
            break
    st = ds.state_dict(batches_seen=6, num_workers=2)
    assert st["cursor"] == 150 and st["epoch"] == 2
    ds2 = at.ApdIterableDataset(synth, batch_size=25, seed=6, layout="chw")
    ds2.load_state_dict(st)
    dl2 = DataLoader(ds2, batch_size=None, num_workers=3, multiprocessing_context="fork")
    tail = [i for x, _ in dl2 for i in ids_of(x, fp)]
    assert sorted(head + tail) == list(range(600))


def test_persistent_workers_advance_epochs(synth, fp):
    ds = at.ApdIterableDataset(synth, batch_size=25, seed=8, layout="chw")
    dl = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True,
                    multiprocessing_context="fork")
    e0 = [i for x, _ in dl for i in ids_of(x, fp)]
    e1 = [i for x, _ in dl for i in ids_of(x, fp)]
    assert sorted(e0) == sorted(e1) == list(range(600))
    assert e0 != e1
    # the same epochs as a single process that runs epochs 0 and 1
    ld = apd.Loader(synth, batch_size=25, seed=8, layout="chw", rank=0, world_size=2)
    assert ids_of(torch.from_numpy(next(iter(ld))[0]), fp) == e0[:25]

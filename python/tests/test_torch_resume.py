"""apd.torch resume and epochs without caller bookkeeping: ApdDataLoader counts the batches it
hands out; state_dict() after any number of batches with any worker count resumes the rest
exactly; len() is the batch count; persistent workers serve the right epoch."""
import pytest

torch = pytest.importorskip("torch")
import apd  # noqa: E402
import apd.torch as at  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ddp_helper import ids_of, make_ids_file  # noqa: E402

N, B = 203, 16  # 12 full batches of 16 + one of 11 on one rank


@pytest.fixture(scope="module")
def ids_file(tmp_path_factory):
    p = str(tmp_path_factory.mktemp("resume") / "ids.apd")
    make_ids_file(p, N)
    return p


def loader_epoch(path, epoch, rank=0, world=1, seed=3, cursor=0):
    ld = apd.Loader(path, batch_size=B, seed=seed, rank=rank, world_size=world, epoch=epoch,
                    layout="chw")
    if cursor:
        ld.load_state_dict({"seed": seed, "epoch": epoch, "cursor": cursor, "n": N})
    return [b.tolist() for b in ld.indices()]


def dataset(path, **kw):
    return at.ApdIterableDataset(path, batch_size=B, seed=3, layout="chw", **kw)


def take(dl, n):
    out = []
    for k, (x, _) in enumerate(dl):
        out.append(ids_of(x))
        if k + 1 == n:
            break
    return out


def ctx(workers):
    return {"multiprocessing_context": "fork"} if workers else {}


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
@pytest.mark.parametrize("stop", [1, 2, 5, 13])
def test_resume_after_any_batches(ids_file, workers, stop):
    ds = dataset(ids_file)
    dl = at.ApdDataLoader(ds, num_workers=workers, **ctx(workers))
    assert len(ds) == len(dl) == 13
    head = take(dl, stop)
    st = dl.state_dict()  # no count passed: the loader kept it
    print("workers %d stop %d -> %s" % (workers, stop, st))
    if stop < 13:
        assert st == {"seed": 3, "epoch": 0, "cursor": stop * B, "n": N}
    else:
        assert st == {"seed": 3, "epoch": 1, "cursor": 0, "n": N}
    # resume in a fresh dataset with another worker count: the remaining batches, exactly
    ds2 = dataset(ids_file)
    ds2.load_state_dict(st)
    other = (workers + 2) % 4
    tail = [ids_of(x) for x, _ in at.ApdDataLoader(ds2, num_workers=other, **ctx(other))]
    want = loader_epoch(ids_file, 0)
    if stop < 13:
        assert head + tail == want
    else:  # a finished epoch resumes at the next one
        assert head == want and tail == loader_epoch(ids_file, 1)
    assert ds2.state_dict() == {"seed": 3, "epoch": st["epoch"] + 1, "cursor": 0, "n": N}


def test_resume_across_world_sizes(ids_file):
    # 2 ranks stop after 4 batches each (any worker count), resume on 3 ranks
    head, states = [], []
    for r, workers in ((0, 2), (1, 3)):
        ds = dataset(ids_file, rank=r, world_size=2)
        head += [i for b in take(at.ApdDataLoader(ds, num_workers=workers, **ctx(workers)), 4)
                 for i in b]
        states.append(ds.state_dict())
    assert states[0] == states[1] == {"seed": 3, "epoch": 0, "cursor": 4 * 2 * B, "n": N}
    tail, counts = [], set()
    for r in range(3):
        ds = dataset(ids_file, rank=r, world_size=3)
        ds.load_state_dict(states[0])
        got = [ids_of(x) for x, _ in at.ApdDataLoader(ds, num_workers=2, **ctx(2))]
        counts.add(len(got))
        tail += [i for b in got for i in b]
    rest = N - 4 * 2 * B
    pad = 3 * -(-(rest % (3 * B)) // 3) - rest % (3 * B)  # include/apd/loader.h padding
    assert len(counts) == 1
    assert sorted(set(head + tail)) == list(range(N)) and len(head + tail) == N + pad


def test_main_process_counts_too(ids_file):
    # a plain DataLoader with num_workers=0 (or iterating the dataset itself) is counted
    ds = dataset(ids_file)
    head = take(DataLoader(ds, batch_size=None), 3)
    assert ds.state_dict()["cursor"] == 3 * B
    ds2 = dataset(ids_file)
    ds2.load_state_dict(ds.state_dict())
    assert head + [ids_of(x) for x, _ in ds2] == loader_epoch(ids_file, 0)


def test_uncounted_workers_refuse_a_guess(ids_file):
    ds = dataset(ids_file)
    take(DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork"), 3)
    with pytest.raises(RuntimeError, match="ApdDataLoader"):
        ds.state_dict()
    assert ds.state_dict(batches_seen=3)["cursor"] == 3 * B  # explicit count still works


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_persistent_workers_epochs(ids_file):
    # ApdDataLoader, no set_epoch: passes serve epochs 0, 1, 2; an interrupted pass is resumed
    ds = dataset(ids_file)
    dl = at.ApdDataLoader(ds, num_workers=2, persistent_workers=True, **ctx(2))
    assert [ids_of(x) for x, _ in dl] == loader_epoch(ids_file, 0)
    assert ds.epoch == 0 and ds.state_dict()["epoch"] == 1
    assert [ids_of(x) for x, _ in dl] == loader_epoch(ids_file, 1)
    head = take(dl, 6)
    st = dl.state_dict()
    assert st["epoch"] == 2 and st["cursor"] == 6 * B
    dl.load_state_dict(st)
    tail = [ids_of(x) for x, _ in dl]
    assert head + tail == loader_epoch(ids_file, 2)
    # set_epoch reaches the persistent workers
    ds.set_epoch(7)
    assert [ids_of(x) for x, _ in dl] == loader_epoch(ids_file, 7)
    del dl


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_set_epoch_reaches_plain_persistent_workers(ids_file):
    ds = dataset(ids_file)
    dl = DataLoader(ds, batch_size=None, num_workers=3, persistent_workers=True, **ctx(3))
    for e in (4, 9):
        ds.set_epoch(e)
        assert [ids_of(x) for x, _ in dl] == loader_epoch(ids_file, e)
    # without set_epoch the persistent workers move on to the next epoch by themselves
    assert [ids_of(x) for x, _ in dl] == loader_epoch(ids_file, 10)
    del dl


def test_len_and_drop_last(ids_file):
    for world, drop, want in ((1, False, 13), (1, True, 12), (2, False, 7), (2, True, 6),
                              (4, False, 4)):
        ds = dataset(ids_file, rank=world - 1, world_size=world, drop_last=drop)
        got = [len(y) for _, y in at.ApdDataLoader(ds, num_workers=2, **ctx(2))]
        assert len(ds) == len(got) == want, (world, drop, got)


def test_state_errors(ids_file):
    ds = dataset(ids_file)
    with pytest.raises(ValueError, match="204"):
        ds.load_state_dict({"seed": 3, "epoch": 0, "cursor": 0, "n": 204})
    with pytest.raises(ValueError):
        ds.load_state_dict({"seed": 3, "epoch": 0, "cursor": N + 1, "n": N})
    with pytest.raises(ValueError):
        ds.load_state_dict({"seed": -1, "epoch": 0, "cursor": 0, "n": N})
    with pytest.raises(ValueError):
        ds.set_epoch(2 ** 64)
    with pytest.raises(ValueError):
        at.ApdIterableDataset(ids_file, rank=2, world_size=2)
    with pytest.raises(ValueError):
        at.ApdIterableDataset(ids_file, world_size=2 ** 32 + 1)
    with pytest.raises(TypeError):
        at.ApdDataLoader(at.ApdDataset(ids_file))

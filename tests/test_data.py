"""xgrad.data: loaders (order, seeding, placement), the small datasets, and the IDX/MNIST reader."""

import gzip
import hashlib
import os
import struct
import sys

import numpy as np
import pytest

import xgrad
from xgrad.data import (
    MNIST,
    DataLoader,
    Dataset,
    Digits,
    FashionMNIST,
    SeqDataLoader,
    SinCurve,
    Spiral,
    data_dir,
    read_idx,
)
from xgrad.testing import to_host


def _ds(n=10):
    data = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return Dataset(data, np.arange(n, dtype=np.int64))


def _epoch(loader):
    return [(to_host(x), to_host(t)) for x, t in loader]


# --- DataLoader --------------------------------------------------------------------------------
def test_dataloader_in_order_with_last_partial_batch():
    loader = DataLoader(_ds(10), batch_size=4)
    batches = _epoch(loader)
    assert len(loader) == 3 and [len(t) for _, t in batches] == [4, 4, 2]
    assert np.array_equal(np.concatenate([t for _, t in batches]), np.arange(10))
    x = np.concatenate([x for x, _ in batches])
    assert np.array_equal(x, np.arange(20, dtype=np.float32).reshape(10, 2))


def test_dataloader_drop_last():
    loader = DataLoader(_ds(10), batch_size=4, drop_last=True)
    batches = _epoch(loader)
    assert len(loader) == 2 and [len(t) for _, t in batches] == [4, 4]
    assert len(DataLoader(_ds(8), 4, drop_last=True)) == 2
    assert len(DataLoader(_ds(3), 4, drop_last=True)) == 0 and _epoch(
        DataLoader(_ds(3), 4, drop_last=True)) == []


def test_dataloader_shuffle_is_seeded_per_loader_and_new_each_epoch():
    def orders(seed, epochs=3):
        loader = DataLoader(_ds(50), 8, shuffle=True, seed=seed)
        return [np.concatenate([t for _, t in _epoch(loader)]) for _ in range(epochs)]

    a, b, c = orders(0), orders(0), orders(1)
    for e in range(3):
        assert np.array_equal(a[e], b[e])  # same seed, same sequence of epochs
        assert sorted(a[e].tolist()) == list(range(50))  # each epoch is a permutation
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))  # another seed, another order
    assert not np.array_equal(a[0], a[1])  # a new order every epoch
    assert not np.array_equal(a[0], np.arange(50))


def test_dataloader_shuffle_keeps_samples_with_their_labels():
    for x, t in DataLoader(_ds(20), 6, shuffle=True, seed=3):
        x, t = to_host(x), to_host(t)
        assert np.array_equal(x[:, 0], 2.0 * t) and np.array_equal(x[:, 1], 2.0 * t + 1)


def test_dataloader_batches_land_on_default_backend(backend):
    loader = DataLoader(_ds(10), 4)
    for x, t in loader:  # the backend fixture made this backend and device the default
        assert type(x) is type(backend.asarray([1.0])) and x.device == backend.device
        assert t.device == backend.device
        assert x.dtype == backend.xp.float32
        assert backend.xp.isdtype(t.dtype, "integral")
    xs = [to_host(x) for x, _ in loader]
    assert np.array_equal(np.concatenate(xs), _ds(10).data)


def test_dataloader_explicit_backend_and_device(backend):
    with xgrad.use_backend("numpy"):  # the explicit target wins over the default
        x, t = next(iter(DataLoader(_ds(5), 5, backend=backend.backend, device=backend.device)))
    assert x.device == backend.device and type(x) is type(backend.asarray([1.0]))
    assert np.array_equal(to_host(t), np.arange(5))


def test_dataloader_target_spec_and_late_default():
    pytest.importorskip("array_api_strict")
    x, _ = next(iter(DataLoader(_ds(4), 2, backend="array_api_strict:device1")))
    assert str(x.device) == str(xgrad.backends.get("array_api_strict").parse_device("device1"))
    loader = DataLoader(_ds(4), 2)  # no backend: the default when iteration starts
    with xgrad.use_backend("array_api_strict"):
        x, _ = next(iter(loader))
    assert xgrad.backends.backend_of(x).name == "array_api_strict"
    assert xgrad.backends.backend_of(next(iter(loader))[0]) is xgrad.backends.current()


def test_dataloader_transforms_and_plain_sequences():
    ds = Dataset(np.ones((5, 3), np.float32), np.arange(5), transform=lambda x: x * 2,
                 target_transform=lambda t: t + 10)
    x, t = next(iter(DataLoader(ds, 5, backend="numpy")))
    assert np.array_equal(x, np.full((5, 3), 2.0)) and np.array_equal(t, np.arange(10, 15))
    pairs = [(np.full(2, i, np.float32), i) for i in range(5)]  # any sequence of (x, t) pairs
    got = _epoch(DataLoader(pairs, 2, backend="numpy"))
    assert [b[1].tolist() for b in got] == [[0, 1], [2, 3], [4]]
    unlabelled = Dataset(np.zeros((3, 2)))
    assert next(iter(DataLoader(unlabelled, 2, backend="numpy")))[1] is None


def test_dataloader_rejects_bad_arguments():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(_ds(), bad)
    with pytest.raises(Exception, match="no_such_backend"):
        DataLoader(_ds(), 2, backend="no_such_backend")
    with pytest.raises(ValueError, match="3 samples but 2 labels"):
        Dataset(np.zeros((3, 1)), [0, 1])


# --- SeqDataLoader -----------------------------------------------------------------------------
def test_seq_dataloader_streams(backend):
    ds = Dataset(np.arange(22, dtype=np.float32)[:, None], np.arange(1, 23, dtype=np.float32)[:, None])
    loader = SeqDataLoader(ds, batch_size=4)
    assert len(loader) == 5  # 22 // 4: four streams of five steps
    batches = list(loader)
    assert len(batches) == 5
    for i, (x, t) in enumerate(batches):
        assert x.shape == (4, 1) and t.shape == (4, 1) and x.device == backend.device
        # row r continues stream r: element r * 5 + i
        assert np.array_equal(to_host(x)[:, 0], np.arange(4) * 5 + i)
        assert np.array_equal(to_host(t)[:, 0], np.arange(4) * 5 + i + 1)
    with pytest.raises(ValueError, match="streams"):
        SeqDataLoader(_ds(3), 4)


# --- datasets ----------------------------------------------------------------------------------
def test_spiral_shapes_and_determinism():
    tr = Spiral()
    assert tr.data.shape == (300, 2) and tr.data.dtype == np.float32
    assert tr.label.shape == (300,) and tr.label.dtype == np.int64
    assert np.bincount(tr.label).tolist() == [100, 100, 100]
    assert np.all(np.linalg.norm(tr.data, axis=1) < 1.0)
    again, test = Spiral(), Spiral(train=False)
    assert np.array_equal(tr.data, again.data) and np.array_equal(tr.label, again.label)
    assert not np.allclose(np.sort(tr.data, axis=0), np.sort(test.data, axis=0))
    small = Spiral(num_data=10, num_class=4, seed=5)
    assert small.data.shape == (40, 2) and set(small.label.tolist()) == {0, 1, 2, 3}
    x, t = small[0]
    assert x.shape == (2,) and int(t) in range(4)


def test_sincurve_shapes_and_determinism():
    tr = SinCurve()
    assert tr.data.shape == (999, 1) and tr.label.shape == (999, 1)
    assert tr.data.dtype == np.float32
    assert np.array_equal(tr.label[:-1], tr.data[1:])  # the label is the next value
    xs = np.linspace(0, 2 * np.pi, 1000)
    assert np.max(np.abs(tr.data[:, 0] - np.sin(xs[:-1]))) <= 0.05 + 1e-6
    assert np.array_equal(tr.data, SinCurve().data)
    assert not np.array_equal(tr.data, SinCurve(seed=1).data)
    test = SinCurve(train=False, num_data=50)
    assert np.allclose(test.data[:, 0], np.cos(np.linspace(0, 2 * np.pi, 50)[:-1]), atol=1e-6)


def test_digits_split():
    pytest.importorskip("sklearn", reason="Digits reads scikit-learn's bundled digits")
    tr, te = Digits(), Digits(train=False)
    assert len(tr) + len(te) == 1797 and len(te) == 359
    assert tr.data.shape == (1438, 64) and tr.data.dtype == np.float32
    assert tr.data.min() >= 0.0 and tr.data.max() <= 1.0 and tr.label.dtype == np.int64
    rows = {r.tobytes() for r in tr.data}
    assert sum(r.tobytes() in rows for r in te.data) < 10  # disjoint (a few images repeat)
    assert np.array_equal(Digits().data, tr.data)  # deterministic split
    assert not np.array_equal(Digits(seed=1).label, tr.label)
    assert Digits(train=False, flatten=False).data.shape == (359, 1, 8, 8)


def test_digits_without_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # the import now fails
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        Digits()


# --- IDX and MNIST -----------------------------------------------------------------------------
def _idx_bytes(a, code):
    a = np.asarray(a)
    head = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def _write(path, payload, compress):
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_gzip_and_raw(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 3, 4)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    ints = np.array([[-5, 7], [1 << 20, -1]], np.int32)
    floats = np.array([0.5, -2.25], np.float64)
    for name, a, code in (("im", images, 0x08), ("lb", labels, 0x08), ("i4", ints, 0x0C),
                          ("f8", floats, 0x0E)):
        got = read_idx(_write(tmp_path / name, _idx_bytes(a, code), compress))
        assert got.shape == a.shape and got.dtype == a.dtype and np.array_equal(got, a)


def test_read_idx_rejects_bad_files(tmp_path):
    good = _idx_bytes(np.zeros((2, 2), np.uint8), 0x08)
    with pytest.raises(ValueError, match="not an IDX file.*0x12340802"):
        read_idx(_write(tmp_path / "magic", b"\x12\x34" + good[2:], False))
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(_write(tmp_path / "code", good[:2] + b"\x07" + good[3:], True))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(_write(tmp_path / "short", good[:-1], False))
    with pytest.raises(ValueError, match="decompress"):
        read_idx(_write(tmp_path / "badgz", gzip.compress(good)[:-6], False))


NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _fake_mnist(root, n=6, compress=True):
    """IDX files like MNIST's (n train, n - 2 test images of 4x5) in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    out = {}
    for split, m in (("train", n), ("test", n - 2)):
        images = rng.integers(0, 256, (m, 4, 5)).astype(np.uint8)
        labels = rng.integers(0, 10, m).astype(np.uint8)
        img, lbl = NAMES[split]
        suffix = ".gz" if compress else ""
        _write(root / (img + suffix), _idx_bytes(images, 0x08), compress)
        _write(root / (lbl + suffix), _idx_bytes(labels, 0x08), compress)
        out[split] = images, labels
    return out


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_the_cache_directory(tmp_path, compress):
    ref = _fake_mnist(tmp_path / "m", compress=compress)
    tr = MNIST(root=tmp_path / "m", download=False)
    images, labels = ref["train"]
    assert tr.data.shape == (6, 1, 4, 5) and tr.data.dtype == np.float32
    assert np.allclose(tr.data[:, 0], images / 255.0) and tr.label.dtype == np.int64
    assert np.array_equal(tr.label, labels)
    te = MNIST(train=False, root=tmp_path / "m", download=False, flatten=True,
               normalize=(0.5, 0.25))
    images, labels = ref["test"]
    assert te.data.shape == (4, 20) and np.array_equal(te.label, labels)
    assert np.allclose(te.data, (images.reshape(4, 20) / 255.0 - 0.5) / 0.25, atol=1e-5)
    raw = MNIST(root=tmp_path / "m", download=False, normalize=False)
    assert raw.data.dtype == np.uint8 and np.array_equal(raw.data[:, 0], ref["train"][0])
    x, t = next(iter(DataLoader(tr, 4, backend="numpy")))
    assert x.shape == (4, 1, 4, 5) and t.shape == (4,)


def test_mnist_cache_locations(tmp_path, monkeypatch):
    monkeypatch.delenv("XGRAD_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir("mnist") == tmp_path / "home" / ".cache" / "xgrad" / "mnist"
    monkeypatch.setenv("XGRAD_DATA", str(tmp_path / "data"))
    assert data_dir("mnist") == tmp_path / "data" / "mnist"
    assert data_dir("mnist", tmp_path / "x") == tmp_path / "x"  # the argument wins
    _fake_mnist(tmp_path / "data" / "fashion-mnist")
    assert len(FashionMNIST(download=False)) == 6 and len(FashionMNIST.classes) == 10


def test_mnist_missing_files_and_unreachable_mirror(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ("http://127.0.0.1:9/",))  # nothing listens there
    with pytest.raises(FileNotFoundError) as e:
        MNIST(root=tmp_path / "empty", timeout=5.0)
    msg = str(e.value)
    assert str(tmp_path / "empty") in msg and "http://127.0.0.1:9/" in msg
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in msg
    assert "XGRAD_DATA" in msg
    assert not any((tmp_path / "empty").iterdir())  # no partial downloads left behind
    with pytest.raises(FileNotFoundError, match="download=False"):
        MNIST(root=tmp_path / "empty", download=False)


def test_mnist_downloads_into_the_cache(tmp_path, monkeypatch):
    _fake_mnist(tmp_path / "mirror")
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (tmp_path / "mirror").iterdir()}
    resources = {s: tuple((n + ".gz", md5[n + ".gz"]) for n in NAMES[s]) for s in NAMES}
    monkeypatch.setattr(MNIST, "resources", resources)
    monkeypatch.setattr(MNIST, "mirrors", ("http://127.0.0.1:9/", (tmp_path / "mirror").as_uri() + "/"))
    cache = tmp_path / "cache"
    ds = MNIST(train=False, root=cache)
    assert len(ds) == 4 and sorted(os.listdir(cache)) == ["t10k-images-idx3-ubyte.gz",
                                                          "t10k-labels-idx1-ubyte.gz"]
    bad = {s: tuple((n, "0" * 32) for n, _ in resources[s]) for s in resources}
    monkeypatch.setattr(MNIST, "resources", bad)
    with pytest.raises(FileNotFoundError, match="checksum mismatch"):
        MNIST(train=True, root=cache)
    assert sorted(os.listdir(cache)) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_mnist_rejects_mismatched_files(tmp_path):
    _fake_mnist(tmp_path)
    _write(tmp_path / "train-labels-idx1-ubyte.gz", _idx_bytes(np.zeros(3, np.uint8), 0x08), True)
    with pytest.raises(ValueError, match="expected"):
        MNIST(root=tmp_path, download=False)


def test_dtype_name_and_placement_are_public():
    """One dtype-name helper for every backend's dtype objects; one placement resolver for
    creation and the loaders."""
    from xgrad.creation import placement
    from xgrad.dtypes import dtype_name

    assert dtype_name(np.float32) == dtype_name(np.dtype("float32")) == "float32"
    assert dtype_name(np.bool_) == "bool" and dtype_name("int64") == "int64"
    b, dev = placement("array_api_strict", "device1")
    assert b.name == "array_api_strict" and dev == b.parse_device("device1") != b.default_device
    with xgrad.use_backend("array_api_strict"):
        assert placement()[0].name == "array_api_strict"

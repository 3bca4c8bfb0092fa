"""xgrad.io: .npz round trips across backends, no pickle, clear errors that leave the model as
it was, and atomic saves that survive being killed."""

import os
import signal
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest

import xgrad
from xgrad import Parameter, Variable, io, nn, optim
from xgrad.io import StateError
from xgrad.nn import Layer
from xgrad.testing import assert_close, to_host

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Block(Layer):
    def __init__(self, n):
        self.W = Parameter(xgrad.randn(n, 2))
        self.register_buffer("stat", xgrad.zeros(2))


class Net(Layer):
    """Parameters, a buffer, a sub-layer and a list of sub-layers (no forward needed)."""

    def __init__(self):
        self.b = Parameter(xgrad.randn(3))
        self.blocks = [Block(3), Block(2)]
        self.head = Block(4)


class LazyNet(Layer):
    def __init__(self):
        self.declare_lazy("W")
        self.register_buffer("avg", None)


def snapshot(model):
    return {k: (p, to_host(p).copy()) for k, p in model.named_params()} | \
        {k: (None, to_host(v).copy()) for k, v in model.named_buffers()}


def assert_unchanged(model, snap):
    now = dict(model.named_params())
    assert list(now) == [k for k, (p, _) in snap.items() if p is not None]
    for k, (p, value) in snap.items():
        if p is not None:
            assert now[k] is p
            np.testing.assert_array_equal(to_host(p), value, err_msg=k)
        else:
            np.testing.assert_array_equal(to_host(dict(model.named_buffers())[k]), value)


def test_round_trip_on_each_backend(backend, tmp_path):
    xgrad.manual_seed(0)
    a = Net()
    a.head.stat = backend.asarray([1.5, -2.0], dtype="float32")
    path = tmp_path / "net.npz"
    io.save(a, path)
    arrays = io.load(path)
    assert list(arrays) == ["b", "blocks.0.W", "blocks.0.stat", "blocks.1.W", "blocks.1.stat",
                            "head.W", "head.stat"]
    assert all(type(v) is np.ndarray and v.dtype == np.float32 for v in arrays.values())
    xgrad.manual_seed(1)
    b = Net()
    b_params = list(b.params())
    b.load_weights(str(path))
    assert [id(p) for p in b.params()] == [id(p) for p in b_params]  # loaded in place
    for (k, p), (_, q) in zip(a.named_params(), b.named_params()):
        assert_close(q, p, rtol=0, atol=0, err_msg=k)
        assert q.device == backend.device and q.dtype == p.dtype
    assert_close(b.head.stat, [1.5, -2.0])
    assert b.head.stat.device == backend.device


def test_saved_on_one_backend_loads_on_another(backend, tmp_path):
    """numpy -> backend and backend -> numpy (and so array_api_strict -> numpy -> back)."""
    with xgrad.use_backend("numpy"):
        xgrad.manual_seed(0)
        host = Net()
    io.save(host, tmp_path / "host.npz")
    model = Net()
    model.load_weights(str(tmp_path / "host.npz"))
    for (k, p), (_, q) in zip(host.named_params(), model.named_params()):
        assert backend.backend.owns(q.data) and q.device == backend.device
        assert_close(q, p, rtol=0, atol=0, err_msg=k)
    model.b.data = model.b.data * 2.0
    model.save_weights(str(tmp_path / "back.npz"))
    io.load_into(host, tmp_path / "back.npz")
    assert isinstance(host.b.data, np.ndarray)
    assert_close(host.b, to_host(model.b), rtol=0, atol=0)


def test_model_and_optimizer_together(backend, tmp_path):
    model = Net()
    opt = optim.Adam(lr=0.01).setup(model)
    for p in model.params():
        p.grad = Variable(xgrad.ones(p.shape))
    opt.update()
    path = tmp_path / "ckpt.npz"
    io.save({"model": model, "optim": opt, "epoch": 3}, path)
    arrays = io.load(path)
    assert "model/head.W" in arrays and "optim/head.W/m" in arrays and "optim/hyper/lr" in arrays
    assert int(arrays["epoch"]) == 3
    model2 = Net()
    opt2 = optim.Adam(lr=0.5).setup(model2)
    io.load_into({"model": model2, "optim": opt2}, path, strict=False)  # "epoch" is extra
    assert opt2.lr == 0.01
    assert_close(model2.head.W, model.head.W, rtol=0, atol=0)
    assert_close(opt2._state[model2.head.W]["v"], opt._state[model.head.W]["v"], rtol=0, atol=0)
    with pytest.raises(StateError, match="ckpt.npz.*unexpected keys.*epoch"):
        io.load_into({"model": model2, "optim": opt2}, path)


def test_dict_of_arrays(backend, tmp_path):
    x = backend.asarray([[1, 2], [3, 4]], dtype="float32")
    io.save({"x": x, "v": Variable(x), "n": 7, "nested": {"y": x}}, tmp_path / "d.npz")
    got = io.load(tmp_path / "d.npz")
    assert sorted(got) == ["n", "nested/y", "v", "x"]
    np.testing.assert_array_equal(got["x"], [[1, 2], [3, 4]])
    assert got["x"].dtype == np.float32 and got["n"] == 7


def test_lazy_parameters_are_filled_by_a_load(backend, tmp_path):
    src = LazyNet()
    src.W = Parameter(backend.asarray([[1.0, 2.0]], dtype="float32"))
    src.avg = backend.asarray([0.5], dtype="float32")
    src.save_weights(str(tmp_path / "lazy.npz"))
    dst = LazyNet()
    assert list(dst.named_params()) == []
    dst.load_weights(str(tmp_path / "lazy.npz"))
    assert isinstance(dst.W, Parameter) and dst.W.device == backend.device
    assert_close(dst.W, [[1.0, 2.0]])
    assert_close(dst.avg, [0.5])
    # a lazy layer needs all of its lazy entries at once
    io.save({"W": src.W}, tmp_path / "half.npz")
    with pytest.raises(StateError, match="avg"):
        LazyNet().load_weights(str(tmp_path / "half.npz"))


def test_mismatched_files_raise_and_leave_the_model_unchanged(backend, tmp_path):
    src = Net()
    good = {k: to_host(v) for k, v in src.state_dict().items()}
    model = Net()
    snap = snapshot(model)
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "head.W"}, r"missing keys \['head.W'\]"),
        "unexpected": ({**good, "tail.W": good["head.W"]}, r"unexpected keys \['tail.W'\]"),
        "shape": ({**good, "blocks.1.W": np.zeros((3, 2), np.float32)},
                  r"'blocks.1.W': shape \(3, 2\) in the file, \(2, 2\)"),
        "dtype": ({**good, "head.stat": good["head.stat"].astype(np.int32)},
                  "'head.stat': dtype int32 in the file, float32"),
    }
    for why, (arrays, match) in cases.items():
        path = tmp_path / f"{why}.npz"
        io.save(arrays, path)  # each bad entry follows good ones that a hasty loader would set
        with pytest.raises(StateError, match=f"{why}.npz.*{match}"):
            io.load_into(model, path)
        assert_unchanged(model, snap)
    # non-strict loading ignores missing/unexpected keys but never bad shapes
    io.save(cases["unexpected"][0], tmp_path / "extra.npz")
    io.load_into(model, tmp_path / "extra.npz", strict=False)
    assert_close(model.head.W, src.head.W, rtol=0, atol=0)


def test_corrupt_and_truncated_files(tmp_path):
    model = Net()
    snap = snapshot(model)
    path = tmp_path / "good.npz"
    io.save(model, path)
    raw = path.read_bytes()

    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "junk.npz").write_bytes(b"\x00garbage" * 50)
    (tmp_path / "empty.npz").write_bytes(b"")
    for name in ("trunc.npz", "junk.npz", "empty.npz"):
        with pytest.raises(StateError, match=name):
            io.load_into(model, tmp_path / name)
        assert_unchanged(model, snap)

    # flip bytes inside the stored data of one member: the CRC check names that key
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("head.W.npy")
    data_start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    bad = bytearray(raw)
    for i in range(data_start + info.file_size - 8, data_start + info.file_size):
        bad[i] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(bad))
    with pytest.raises(StateError, match="flipped.npz.*'head.W'"):
        io.load_into(model, tmp_path / "flipped.npz")
    assert_unchanged(model, snap)

    with zipfile.ZipFile(tmp_path / "other.npz", "w") as zf:
        zf.writestr("notes.txt", "not an array")
    with pytest.raises(StateError, match="other.npz.*'notes.txt'.*not a .npy array"):
        io.load(tmp_path / "other.npz")

    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        io.load(tmp_path / "nothere.npz")


def test_pickle_is_never_loaded(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, evil=np.array([{"a": 1}], dtype=object), ok=np.zeros(2))
    with pytest.raises(StateError, match="obj.npz.*'evil'.*pickle"):
        io.load(path)
    with pytest.raises(TypeError, match="dtype object"):
        io.save({"x": np.array([None], dtype=object)}, tmp_path / "o2.npz")
    assert not (tmp_path / "o2.npz").exists()


def test_save_rejects_bad_objects_and_leaves_no_temporary_files(tmp_path):
    for bad, match in ((object(), "cannot save"), ({"a/b": np.zeros(1)}, "without '/'"),
                       ({"x": "text"}, "str")):
        with pytest.raises(TypeError, match=match):
            io.save(bad, tmp_path / "bad.npz")
    io.save({"file": np.zeros(1), "allow_pickle": np.ones(1)}, tmp_path / "names.npz")
    assert sorted(io.load(tmp_path / "names.npz")) == ["allow_pickle", "file"]
    io.save({"x": np.arange(3)}, tmp_path / "names.npz", compress=True)  # overwrite
    assert list(io.load(tmp_path / "names.npz")) == ["x"]
    assert sorted(os.listdir(tmp_path)) == ["names.npz"]
    with pytest.raises(TypeError, match="cannot load into"):
        io.load_into([1], tmp_path / "names.npz")


_CHILD = r"""
import os, sys, time
import numpy as np
import xgrad.io as xio

path, mode = sys.argv[1], sys.argv[2]
n = 1_000_000
if mode == "block":
    # stop inside the save, after the data are written but before the rename
    real_fsync = os.fsync
    def fsync(fd):
        real_fsync(fd)
        print("in-save", flush=True)
        time.sleep(60)
    os.fsync = fsync
    xio.save({"w": np.full(n, 9.0, np.float32), "i": -1}, path)
else:
    print("ready", flush=True)
    i = 0
    while True:
        xio.save({"w": np.full(n, float(i), np.float32), "i": i}, path)
        i += 1
"""


def _run_and_kill(path, mode, delay):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), mode], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30, child.kill)
    watchdog.start()
    try:
        line = child.stdout.readline()
        assert line.strip() in ("in-save", "ready"), child.stderr.read()
        if delay:
            threading.Event().wait(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        watchdog.cancel()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_save_leaves_the_previous_file(tmp_path):
    path = tmp_path / "model.npz"
    io.save({"w": np.arange(4, dtype=np.float32), "i": -2}, path)
    _run_and_kill(path, "block", 0.0)
    got = io.load(path)
    np.testing.assert_array_equal(got["w"], np.arange(4, dtype=np.float32))
    assert int(got["i"]) == -2
    leftovers = [f for f in os.listdir(tmp_path) if f != "model.npz"]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")  # the interrupted save


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_save_killed_at_a_random_moment_leaves_a_complete_file(tmp_path):
    path = tmp_path / "model.npz"
    io.save({"w": np.arange(4, dtype=np.float32), "i": -2}, path)
    _run_and_kill(path, "loop", 0.3)
    got = io.load(path)
    i = int(got["i"])
    if i == -2:
        np.testing.assert_array_equal(got["w"], np.arange(4, dtype=np.float32))
    else:
        assert got["w"].shape == (1_000_000,) and bool(np.all(got["w"] == float(i)))


def test_layers_and_optimizers_share_the_state_protocol():
    """Layer and every optimizer are io.Stateful; the checks of loaded arrays are io's."""
    model = nn.Linear(2, in_size=3)
    opt = optim.Adam().setup(model)
    assert isinstance(model, io.Stateful) and isinstance(opt, io.Stateful)
    assert not isinstance({"a": 1}, io.Stateful)
    assert model.state_spec() == {"W": ((3, 2), "float32"), "b": ((2,), "float32")}
    assert opt.state_spec()["W/m"] == ((3, 2), "float32")
    assert io.spec_of(model.W) == ((3, 2), "float32")
    with pytest.raises(io.StateError, match=r"key 'W': shape \(2, 2\) in the file, \(3, 2\) "
                                            r"in the model"):
        io.loaded_like("W", np.zeros((2, 2), np.float32), model.W.data, "the model")
    with pytest.raises(io.StateError, match=r"key 'W': dtype float64 in the file, float32"):
        io.check_like("W", ((3, 2), "float64"), ((3, 2), "float32"), "the model")
    host = np.ones((3, 2), np.float32)
    placed = io.place_like(host, model.W.data)
    assert placed is not host and type(placed) is type(model.W.data)
    big = np.ones(3, dtype=">f4")
    assert io.native(big).dtype.isnative and (io.native(big) == 1).all()

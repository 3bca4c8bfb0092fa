"""xgrad.io under hostile files: zip bombs, corrupted zip structures, duplicate members,
invalid optimizer state, foreign byte order, temporaries of killed saves, and what save says
when it cannot write."""

import os
import signal
import struct
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest

import xgrad
from xgrad import Parameter, io, optim
from xgrad.io import StateError
from xgrad.nn import Layer
from xgrad.testing import assert_close, to_host
from xgrad.testing.plugin import BackendCase

try:
    import fcntl
except ImportError:
    fcntl = None


class Small(Layer):
    """A 2x2 weight and a bias: the target a bomb is aimed at."""

    def __init__(self, backend, seed=0):
        rng = np.random.default_rng(seed)
        self.W = Parameter(backend.asarray(rng.normal(size=(2, 2)), dtype="float32"))
        self.b = Parameter(backend.asarray(rng.normal(size=2), dtype="float32"))


class Lazy(Layer):
    def __init__(self):
        self.declare_lazy("W")


def write_npz(path, arrays):
    """``arrays`` (key -> NumPy array, keys may hold '/') as np.savez would write them."""
    with zipfile.ZipFile(path, "w") as zf:
        for k, a in arrays.items():
            with zf.open(k + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asarray(a))


def host_state(model):
    return {k: to_host(v).copy() for k, v in model.state_dict().items()}


def assert_state(model, expected):
    now = host_state(model)
    assert sorted(now) == sorted(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(now[k], v, err_msg=k)
        assert now[k].dtype == v.dtype, k


# --- zip bombs -------------------------------------------------------------------------------
GIB = 1 << 30


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """About 1 MiB of file holding one 1 GiB float32 zero array named "W" (built in chunks)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    n = GIB // 4
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("W.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": (n,)})
            zeros = bytes(1 << 22)
            for _ in range(GIB // len(zeros)):
                f.write(zeros)
    assert os.path.getsize(path) < 8 << 20
    return path


def peak_of(f):
    """Peak traced memory (bytes) while running ``f``, which must raise StateError."""
    tracemalloc.start()
    try:
        with pytest.raises(StateError) as err:
            f()
        return tracemalloc.get_traced_memory()[1], err.value
    finally:
        tracemalloc.stop()


def test_a_zip_bomb_fails_before_anything_is_inflated(backend, bomb):
    model = Small(backend)
    before = host_state(model)
    peak, err = peak_of(lambda: io.load_into(model, bomb))
    assert "'W'" in str(err) and "shape (268435456,) in the file, (2, 2)" in str(err)
    assert peak < 50e6, peak
    assert_state(model, before)
    # a layer that would take any shape: bounded by max_bytes
    lazy = Lazy()
    peak, err = peak_of(lambda: io.load_into(lazy, bomb))
    assert "max_bytes" in str(err) and peak < 50e6, peak
    assert lazy.W is None
    peak, err = peak_of(lambda: lazy.load_weights(str(bomb), max_bytes=1 << 20))
    assert "max_bytes=1048576" in str(err) and peak < 50e6, peak


def test_load_without_a_target_has_a_size_cap(bomb, tmp_path):
    peak, err = peak_of(lambda: io.load(bomb))
    assert "1073741824 bytes" in str(err) and "max_bytes" in str(err)
    assert peak < 50e6, peak
    path = tmp_path / "small.npz"
    io.save({"a": np.arange(1000, dtype=np.float32)}, path)
    with pytest.raises(StateError, match="4000 bytes.*max_bytes=3999"):
        io.load(path, max_bytes=3999)
    np.testing.assert_array_equal(io.load(path, max_bytes=4000)["a"], np.arange(1000))
    assert io.load(path, max_bytes=None)["a"].shape == (1000,)
    # load_into: the cap applies to what the target does not fix (parameters not created yet)
    io.save({"W": np.ones((2, 3), np.float32)}, path)
    lazy = Lazy()
    with pytest.raises(StateError, match="24 bytes.*max_bytes=23"):
        io.load_into(lazy, path, max_bytes=23)
    assert lazy.W is None
    lazy.load_weights(str(path), max_bytes=24)
    assert_close(lazy.W, np.ones((2, 3), np.float32))
    src, dst = Small(BackendCase("numpy"), seed=3), Small(BackendCase("numpy"), seed=4)
    io.save(src, path)  # sizes the target fixes are not capped
    io.load_into(dst, path, max_bytes=0)
    assert_state(dst, host_state(src))


def _npy(header: dict, data: bytes, version=(1, 0)) -> bytes:
    """A .npy member with ``header`` and raw ``data`` (which need not match it)."""
    text = repr(header).encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    size = struct.pack("<H", len(text)) if version == (1, 0) else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes(version) + size + text + data


def test_headers_that_lie_about_their_size(tmp_path):
    cases = {
        "huge shape": _npy({"descr": "<f4", "fortran_order": False, "shape": (1 << 40,)},
                           bytes(16)),
        "negative shape": _npy({"descr": "<f4", "fortran_order": False, "shape": (-4,)},
                               bytes(16)),
        "short data": _npy({"descr": "<f4", "fortran_order": False, "shape": (4,)}, bytes(8)),
        "long data": _npy({"descr": "<f4", "fortran_order": False, "shape": (2,)}, bytes(16)),
        "struct": _npy({"descr": [("a", "<f4")], "fortran_order": False, "shape": (2,)},
                       bytes(8)),
        "string": _npy({"descr": "|S4", "fortran_order": False, "shape": (2,)}, bytes(8)),
        "header length": b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 31) + bytes(64),
        "version 3": _npy({"descr": "<f4", "fortran_order": False, "shape": (2,)},
                          bytes(8), version=(3, 0)),
        "not a dict": b"\x93NUMPY\x01\x00" + struct.pack("<H", 10) + b"[1, 2, 3]\n",
    }
    for why, raw in cases.items():
        path = tmp_path / "lie.npz"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("W.npy", raw)
        tracemalloc.start()
        try:
            with pytest.raises(StateError, match="lie.npz.*'W'"):
                io.load(path, max_bytes=None)
            assert tracemalloc.get_traced_memory()[1] < 10e6, why
        finally:
            tracemalloc.stop()


# --- duplicate names -------------------------------------------------------------------------
def test_duplicate_member_names_are_refused(backend, tmp_path):
    model = Small(backend)
    before = host_state(model)
    for first, second in (("W.npy", "W.npy"), ("W.npy", "W")):
        path = tmp_path / "dup.npz"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
            with zipfile.ZipFile(path, "w") as zf:
                for name, value in ((first, 1.0), ("b.npy", 2.0), (second, 3.0)):
                    with zf.open(name, "w") as f:
                        np.lib.format.write_array(
                            f, np.full((2,) if name == "b.npy" else (2, 2), value, np.float32))
        with pytest.raises(StateError, match="dup.npz.*'W' twice"):
            io.load_into(model, path)
        assert_state(model, before)
        with pytest.raises(StateError, match="twice"):
            io.load(path)


# --- the zip-structure fuzz ------------------------------------------------------------------
def _records(raw: bytes):
    """Offsets of the local headers, the central directory headers and the end record."""
    local = [i for i in range(len(raw)) if raw.startswith(b"PK\x03\x04", i)]
    central = [i for i in range(len(raw)) if raw.startswith(b"PK\x01\x02", i)]
    end = raw.rindex(b"PK\x05\x06")
    return local, central, end


def _put(raw: bytes, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(raw)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def _structural_mutations(raw: bytes):
    """Named corruptions of the zip structure that no reader may accept silently."""
    local, central, _ = _records(raw)
    for n, (lo, ce) in enumerate(zip(local, central)):
        for bit in (0, 6, 13):  # encrypted, strong encryption, masked headers
            yield f"m{n} central flag bit {bit}", _put(
                raw, ce + 8, "<H", struct.unpack_from("<H", raw, ce + 8)[0] | 1 << bit)
        for method in (1, 6, 9, 12, 14, 19, 97, 98, 99, 0xFFFF):
            yield f"m{n} central method {method}", _put(raw, ce + 10, "<H", method)
            yield f"m{n} both methods {method}", _put(
                _put(raw, ce + 10, "<H", method), lo + 8, "<H", method)
        for field, off in (("central crc", ce + 16), ("local crc", lo + 14)):
            yield f"m{n} {field}", _put(raw, off, "<I",
                                        struct.unpack_from("<I", raw, off)[0] ^ 0x5A5A5A5A)
        for field, off in (("central csize", ce + 20), ("central usize", ce + 24)):
            for v in (0, 1, 7, 0x7FFFFFFF):
                yield f"m{n} {field}={v}", _put(raw, off, "<I", v)
        for v in (0, 1, 0x7FFFFFFF):
            yield f"m{n} central offset={v}", _put(raw, ce + 42, "<I", v)
        yield f"m{n} central name length+1", _put(
            raw, ce + 28, "<H", struct.unpack_from("<H", raw, ce + 28)[0] + 1)
        yield f"m{n} local name length+3", _put(
            raw, lo + 26, "<H", struct.unpack_from("<H", raw, lo + 26)[0] + 3)
    # duplicate names: every central name rewritten to the first one's (same length)
    names = [raw[c + 46: c + 46 + struct.unpack_from("<H", raw, c + 28)[0]] for c in central]
    for i, (c, name) in enumerate(zip(central, names)):
        for j, other in enumerate(names):
            if i != j and len(other) == len(name):
                b = bytearray(raw)
                b[c + 46: c + 46 + len(name)] = other
                yield f"central name {i} := {other!r}", bytes(b)


def test_zip_structure_fuzz(tmp_path):
    """Flipped flags, methods, sizes, offsets, names and bytes: every structurally corrupt
    file raises StateError and leaves the model as it was; a mutation that leaves a valid
    archive must load exactly what was saved."""
    src = Small(BackendCase("numpy"), seed=1)
    files = {}
    for compress in (False, True):
        p = tmp_path / f"src{int(compress)}.npz"
        io.save(src, p, compress=compress)
        files[compress] = p.read_bytes()
    saved = host_state(src)
    target = Small(BackendCase("numpy"), seed=2)
    before = host_state(target)
    path = tmp_path / "fuzz.npz"
    rng = np.random.default_rng(1234)
    checked = 0

    def attempt(raw, strict_error, why):
        nonlocal checked
        path.write_bytes(raw)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                io.load(path)
        except StateError:
            pass
        except Exception as e:  # noqa: BLE001 - the point: nothing else may escape
            raise AssertionError(f"{why}: load: {type(e).__name__}: {e}") from e
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                io.load_into(target, path)
        except StateError:
            assert_state(target, before)
        except Exception as e:  # noqa: BLE001 - the point: nothing else may escape
            raise AssertionError(f"{why}: {type(e).__name__}: {e}") from e
        else:
            assert not strict_error, f"{why}: a corrupt archive loaded"
            assert_state(target, saved)
            for name in ("W", "b"):  # back to the state before, for the next case
                getattr(target, name).data = np.array(before[name])
        checked += 1

    for raw in files.values():
        for why, bad in _structural_mutations(raw):
            if bad == raw:  # e.g. offset 0 of the first member: not a mutation
                continue
            # zipfile checks the central CRC only, and cuts names at a NUL byte (a longer
            # central name can still read as the same name): those may load, intact
            benign = ("crc" in why and "local" in why) or "name length" in why
            attempt(bad, not benign, why)
        local, central, end = _records(raw)
        head_bytes = [i for lo in local for i in range(lo, lo + 30)] + \
            [i for ce in central for i in range(ce, ce + 46)] + list(range(end, end + 22))
        for k in range(600):  # random single-bit and single-byte flips in the headers
            i = int(rng.choice(head_bytes))
            b = bytearray(raw)
            b[i] ^= 1 << int(rng.integers(8)) if k % 2 else int(rng.integers(1, 256))
            attempt(bytes(b), False, f"flip at {i}")
        for _ in range(300):  # flips anywhere, including the .npy headers and data
            i = int(rng.integers(len(raw)))
            b = bytearray(raw)
            b[i] ^= int(rng.integers(1, 256))
            attempt(bytes(b), False, f"flip at {i} (anywhere)")
        for cut in range(0, len(raw), max(1, len(raw) // 97)):  # truncations
            attempt(raw[:cut], True, f"truncated at {cut}")
    assert checked > 2000, checked


# --- optimizer state -------------------------------------------------------------------------
def _trained_adam(backend):
    model = Small(backend)
    opt = optim.Adam().setup(model)
    for p in model.params():
        p.grad = xgrad.Variable(backend.xp.ones_like(p.data))
    opt.update()
    return model, opt


@pytest.mark.parametrize("how", ["dict", "file"])
def test_invalid_optimizer_state_is_refused(backend, tmp_path, how):
    model, opt = _trained_adam(backend)
    good = {k: to_host(v).copy() for k, v in opt.state_dict().items()}
    before = good
    params_before = host_state(model)
    nan = np.full((2, 2), np.nan, np.float32)
    cases = {
        "negative step": ({"W/step": np.array(-1)}, "step count cannot be negative"),
        "float step": ({"W/step": np.array(1.0)}, "integer scalar"),
        "bool step": ({"W/step": np.array(True)}, "integer scalar"),
        "array step": ({"W/step": np.array([1, 2])}, r"integer scalar|shape \(2,\) in the file"),
        "NaN moment": ({"W/m": nan}, "NaN or Inf"),
        "Inf moment": ({"b/v": np.array([1.0, np.inf], np.float32)}, "NaN or Inf"),
        "negative second moment": ({"b/v": np.array([1.0, -1.0], np.float32)},
                                   "cannot be negative"),
        "wrong shape": ({"W/m": np.zeros((3, 2), np.float32)}, r"shape \(3, 2\)"),
    }
    for why, (change, match) in cases.items():
        state = {**good, **change}
        with pytest.raises(StateError, match=match):
            if how == "dict":
                opt.load_state_dict(state)
            else:
                write_npz(tmp_path / "opt.npz", state)
                io.load_into(opt, tmp_path / "opt.npz")
        now = {k: to_host(v) for k, v in opt.state_dict().items()}
        for k, v in before.items():
            np.testing.assert_array_equal(now[k], v, err_msg=f"{why}: {k}")
    # the valid state still loads, and an update after it stays finite
    opt.load_state_dict({**good, "W/step": np.array(0)})
    for p in model.params():
        p.grad = xgrad.Variable(backend.xp.ones_like(p.data))
    opt.update()
    assert all(np.isfinite(to_host(p)).all() for p in model.params())
    assert not all(np.array_equal(to_host(p), params_before[k])
                   for k, p in model.named_params())


def test_state_for_parameters_not_created_yet_is_checked_too():
    model = Lazy()
    opt = optim.Adam().setup(model)
    hyper = {f"hyper/{k}": np.array(float(getattr(opt, k))) for k in opt._hyper}
    good = {"W/m": np.zeros((2, 3), np.float32), "W/v": np.zeros((2, 3), np.float32),
            "W/step": np.array(3)}
    for change, match in (({"W/v": np.full((2, 3), np.nan, np.float32)}, "NaN"),
                          ({"W/v": np.zeros((3, 3), np.float32)}, "different shapes"),
                          ({"W/step": np.array(-3)}, "negative"),
                          ({"W/m": np.zeros((2, 3), np.int32)}, "floating dtype")):
        with pytest.raises(StateError, match=match):
            opt.load_state_dict({**hyper, **good, **change})
        assert opt._pending == {}
    opt.load_state_dict({**hyper, **good})
    assert set(opt._pending) == {"W"}


# --- byte order ------------------------------------------------------------------------------
def test_big_endian_files_load_in_native_order(backend, tmp_path):
    w = np.array([[1.5, -2.0], [0.25, 3.0]], dtype=">f4")
    b = np.array([4.0, -1.0], dtype=">f4")
    path = tmp_path / "be.npz"
    with zipfile.ZipFile(path, "w") as zf:  # as a big-endian machine's np.savez writes it
        for name, a in (("W", w), ("b", b)):
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, a)
    loaded = io.load(path)
    assert loaded["W"].dtype == np.float32 and loaded["W"].dtype.isnative
    np.testing.assert_array_equal(loaded["W"], w.astype(np.float32))

    model = Small(backend)
    io.load_into(model, path)
    assert_close(model.W, w.astype(np.float32), rtol=0, atol=0)
    assert str(model.W.dtype).endswith("float32")

    lazy = Lazy()  # adopted from the file: must be an ordinary float32 parameter
    io.load_into(lazy, path, strict=False)  # b is not a key of Lazy
    assert isinstance(lazy.W, Parameter)
    loss = (lazy.W * lazy.W).sum()
    loss.backward()
    assert_close(lazy.W.grad, 2 * w.astype(np.float32))
    assert str(lazy.W.grad.dtype).endswith("float32")

    # a big-endian array handed to load_state_dict directly, for an existing and a lazy entry
    model2, lazy2 = Small(backend), Lazy()
    model2.load_state_dict({"W": w, "b": b})
    lazy2.load_state_dict({"W": w})
    assert_close(model2.W, w.astype(np.float32), rtol=0, atol=0)
    assert str(lazy2.W.dtype).endswith("float32")
    (lazy2.W * 2.0).sum().backward()
    assert_close(lazy2.W.grad, np.full((2, 2), 2.0, np.float32))


def test_big_endian_optimizer_state(backend, tmp_path):
    model, opt = _trained_adam(backend)
    state = {k: (to_host(v).astype(to_host(v).dtype.newbyteorder(">")) if to_host(v).ndim
                 else to_host(v)) for k, v in opt.state_dict().items()}
    expect = {k: to_host(v).copy() for k, v in opt.state_dict().items()}
    path = tmp_path / "opt.npz"
    write_npz(path, state)
    model2 = Small(backend)
    opt2 = optim.Adam().setup(model2)
    io.load_into(opt2, path)
    got = {k: to_host(v) for k, v in opt2.state_dict().items()}
    for k, v in expect.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


# --- temporary files of killed saves ---------------------------------------------------------
needs_flock = pytest.mark.skipif(fcntl is None, reason="needs advisory file locks (POSIX)")


@needs_flock
def test_the_next_save_removes_stale_temporaries_only(tmp_path):
    target = tmp_path / "model.npz"
    stale = tmp_path / ".model.npz.0123456789ab.tmp"
    live = tmp_path / ".model.npz.ba9876543210.tmp"
    keep = [tmp_path / ".model.npz.xyz.tmp",            # not our pattern
            tmp_path / ".other.npz.0123456789ab.tmp",   # another target's
            tmp_path / ".model.npz.0123456789AB.tmp",   # not our hex
            tmp_path / "model.npz.0123456789ab.tmp"]    # not hidden
    for p in [stale, live, *keep]:
        p.write_bytes(b"partial")
    folder = tmp_path / ".model.npz.00000000000f.tmp"
    folder.mkdir()
    link = tmp_path / ".model.npz.0000000000aa.tmp"
    link.symlink_to(keep[0])
    with open(live, "rb") as held:  # a save in progress elsewhere holds its lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        io.save({"x": np.arange(3)}, target)
        assert live.exists()
    assert not stale.exists()
    assert all(p.exists() for p in keep) and folder.is_dir() and link.is_symlink()
    io.save({"x": np.arange(3)}, target)  # the writer is gone: now it is stale
    assert not live.exists()
    assert list(io.load(target)) == ["x"]


@needs_flock
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_killed_save_is_cleaned_up_by_the_next_one(tmp_path):
    from tests.test_io import _run_and_kill

    path = tmp_path / "model.npz"
    io.save({"w": np.arange(4, dtype=np.float32), "i": -2}, path)
    _run_and_kill(path, "block", 0.0)
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".tmp")]) == 1
    io.save({"w": np.arange(4, dtype=np.float32), "i": 5}, path)
    assert os.listdir(tmp_path) == ["model.npz"]
    assert int(io.load(path)["i"]) == 5


# --- what save says --------------------------------------------------------------------------
def test_save_errors_say_what_the_user_did(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(IsADirectoryError) as err:
        io.save({"x": np.zeros(1)}, tmp_path / "adir")
    msg = str(err.value)
    assert "adir" in msg and "is a folder" in msg and ".tmp" not in msg
    with pytest.raises(FileNotFoundError, match="no such folder .*missing"):
        io.save({"x": np.zeros(1)}, tmp_path / "missing" / "m.npz")
    (tmp_path / "afile").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="afile.*is a file, not a folder"):
        io.save({"x": np.zeros(1)}, tmp_path / "afile" / "m.npz")
    if os.path.isdir("/proc/self"):  # exists, but no file can be created in it
        with pytest.raises(OSError) as err:
            io.save({"x": np.zeros(1)}, "/proc/m.npz")
        msg = str(err.value)
        assert "no such folder" not in msg and "cannot be created in the folder '/proc'" in msg
    assert sorted(os.listdir(tmp_path)) == ["adir", "afile"]
    assert os.listdir(tmp_path / "adir") == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write anywhere")
def test_save_into_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="no permission to create files"):
            io.save({"x": np.zeros(1)}, ro / "m.npz")
    finally:
        ro.chmod(0o700)


def test_load_errors(tmp_path):
    with pytest.raises(StateError, match="not an .npz archive but a folder"):
        io.load(tmp_path)
    raw = zlib.compress(b"x")  # not a zip at all
    (tmp_path / "z.npz").write_bytes(raw)
    with pytest.raises(StateError, match="not an .npz archive"):
        io.load(tmp_path / "z.npz")

"""Saving and loading parameters and optimizer state as ``.npz`` files, never with pickle.

The API:

* ``save(obj, path)`` writes ``obj``: a Layer, an optimizer, or a mapping whose values are
  Layers, optimizers, arrays (of any backend), Variables, Python numbers or nested mappings.
  Every array is copied to the host first, so a file written from CuPy loads on a machine
  with NumPy only. Nested names are joined with ``/``: ``{"model": m, "optim": o}`` gives keys
  ``model/fc1.W`` and ``optim/fc1.W/m``. The save is atomic: the data go to a temporary file
  in the target's folder, are flushed to disk (fsync), and the file is renamed over ``path``,
  so an interrupted save never leaves a half-written file under that name. The writer holds
  an advisory lock (``flock``) on its temporary file until the rename; the next save of the
  same target removes the temporaries that killed saves left (our name pattern, lock free).
* ``load(path)`` returns a dict of host NumPy arrays in native byte order. It never unpickles:
  a downloaded weight file cannot run code.
* ``load_into(obj, path)`` loads a file into ``obj`` (what ``save`` accepted, minus plain
  arrays): every key, shape and dtype is checked, and every array placed on its parameter's
  backend and device, before anything is assigned; on any mismatch a :class:`StateError`
  names the file and the key and ``obj`` is left as it was.

What can be saved and loaded is anything :class:`Stateful`: ``state_dict()`` (what to save),
``state_spec()`` (the shape and dtype each key must have, read before any data) and
``prepare_load(state)`` (check everything, return the function that assigns). ``Layer`` and
every optimizer implement it with this module's checks of loaded arrays (:func:`native`,
:func:`spec_of`, :func:`check_like`, :func:`loaded_like`, :func:`place_like`).

Reading treats the file as hostile: the ``.npy`` header of every member is read first (no
data), duplicate names, encrypted members, compression methods other than stored/deflated and
sizes that do not fit the archive are refused, and the declared shapes and dtypes are checked
against the target (``load`` without a target: against ``max_bytes``) before a byte of data is
inflated, so a small zip bomb cannot take memory. Any corruption is a :class:`StateError`.

``Layer.save_weights(path)`` / ``Layer.load_weights(path)`` (DeZero's names) call these.
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import secrets
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so no temporary file is provably stale
    fcntl = None  # type: ignore[assignment]

from xgrad.backends import backend_of
from xgrad.core import Variable, XgradError, device_of, is_array
from xgrad.dtypes import dtype_name

__all__ = ["StateError", "Stateful", "MAX_BYTES", "save", "load", "load_into", "native",
           "spec_of", "check_like", "place_like", "loaded_like"]

MAX_BYTES = 1 << 28  # what load() inflates without a target: 256 MiB unless raised


class StateError(XgradError, ValueError):
    """A state file or state dict cannot be read, or does not match its model or optimizer."""


@runtime_checkable
class Stateful(Protocol):
    """What :func:`save` and :func:`load_into` work with (``Layer``, every optimizer)."""

    def state_dict(self) -> dict[str, Any]:
        """Every piece of state by key, as arrays (any backend) or Python numbers."""
        ...

    def state_spec(self) -> dict[str, tuple | None]:
        """What a file may hold: key -> (shape, dtype name or None: any), or None where the
        object does not fix the size yet (a parameter not created); read before any data."""
        ...

    def prepare_load(self, state: Mapping[str, Any], strict: bool = True,
                     prefix: str = "") -> Callable[[], None]:
        """Check ``state`` (errors name keys with ``prefix``) and convert its arrays, changing
        nothing; return the function that assigns them."""
        ...


def native(a: Any) -> Any:
    """Host array ``a`` in native byte order (a big-endian file read on a little-endian
    machine holds valid values that no backend computes with as they are)."""
    dt = a.dtype
    if getattr(dt, "isnative", True):
        return a
    return a.astype(dt.newbyteorder("="))


def spec_of(a: Any) -> tuple[tuple, str]:
    """(shape, dtype name) of an array or a Variable: what a loaded array must match."""
    a = a.data if isinstance(a, Variable) else a
    return tuple(a.shape), dtype_name(a.dtype)


def check_like(key: str, got: tuple, want: tuple, owner: str,
               source: str = "the file") -> None:
    """Refuse ``got`` = (shape, dtype name) read from ``source`` for ``key`` unless it is
    ``want`` (a dtype of None: any), with a :class:`StateError` naming the key and both."""
    if tuple(got[0]) != tuple(want[0]):
        raise StateError(f"key {key!r}: shape {tuple(got[0])} in {source}, {tuple(want[0])} "
                         f"in {owner}")
    if want[1] is not None and got[1] != want[1]:
        raise StateError(f"key {key!r}: dtype {got[1]} in {source}, {want[1]} in {owner}")


def place_like(a: Any, ref: Any) -> Any:
    """A fresh copy of array ``a`` (any backend, or host NumPy) on ``ref``'s backend and
    device: never ``a`` itself, so the caller's array and the state do not alias."""
    b = backend_of(ref)
    out = b.transfer(a, device_of(ref))
    return b.namespace.asarray(a, copy=True) if out is a else out


def loaded_like(key: str, a: Any, ref: Any, owner: str) -> Any:
    """Array ``a`` read for ``key``, checked against ``ref`` (same shape and dtype) and
    copied onto ``ref``'s backend and device; ``owner`` is "the model", "the parameter"."""
    a = native(a)
    check_like(key, spec_of(a), spec_of(ref), owner)
    return place_like(a, ref)


def _host(value: Any, key: str) -> np.ndarray:
    """``value`` (array of any backend, Variable, Python number) as a host NumPy array."""
    if isinstance(value, Variable):
        value = value.data
    if is_array(value):
        a = np.asarray(backend_of(value).to_host(value))
    elif isinstance(value, (bool, int, float, complex, np.generic)):
        a = np.asarray(value)
    else:
        raise TypeError(f"xgrad.io.save: {key!r} is a {type(value).__name__}; expected a "
                        f"Layer, an optimizer, an array, a Variable, a number or a mapping")
    if a.dtype.kind not in "biufc":
        raise TypeError(f"xgrad.io.save: {key!r} has dtype {a.dtype}, which .npz cannot hold "
                        f"without pickle")
    return a


def _flatten(obj: Any, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(obj, Stateful):
        for k, v in obj.state_dict().items():
            out[prefix + k] = _host(v, prefix + k)
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str) or not k or "/" in k:
                raise TypeError(f"xgrad.io.save: mapping keys must be non-empty strings without "
                                f"'/', got {prefix + str(k)!r}")
            if isinstance(v, (Mapping, Stateful)):
                _flatten(v, f"{prefix}{k}/", out)
            else:
                out[prefix + k] = _host(v, prefix + k)
    else:
        raise TypeError(f"xgrad.io.save: cannot save a {type(obj).__name__}; expected a Layer, "
                        f"an optimizer or a mapping of them / of arrays")


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _why(e: OSError, path: str, folder: str) -> str:
    """What went wrong when creating a file next to ``path``, in the user's terms."""
    if os.path.isdir(path):
        return "it is a folder; give the name of a file to write"
    if isinstance(e, FileNotFoundError):
        return f"no such folder {folder!r}" if not os.path.isdir(folder) \
            else f"files cannot be created in the folder {folder!r}"
    if isinstance(e, NotADirectoryError):
        return "a part of the path is a file, not a folder"
    if isinstance(e, PermissionError):
        return f"no permission to create files in the folder {folder!r}"
    return e.strerror or str(e)


def _lock(fd: int) -> bool:
    """Take the exclusive lock of the temporary file ``fd`` without waiting; False if a
    live writer holds it. Where files cannot be locked, nothing is provably stale."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _remove_stale(folder: str, base: str, own: str) -> None:
    """Delete temporaries that interrupted saves of ``base`` left in ``folder``: our name
    pattern, a plain file, and not locked by a live writer (every writer holds its lock
    until the rename)."""
    pattern = re.compile(r"\." + re.escape(base) + r"\.[0-9a-f]{12}\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name == own or not pattern.fullmatch(name):
            continue
        p = os.path.join(folder, name)
        try:
            fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd):
                if os.path.samestat(os.fstat(fd), os.lstat(p)):
                    os.remove(p)
        except OSError:
            pass
        finally:
            os.close(fd)


def _create_temp(path: str, folder: str) -> tuple[str, int]:
    """A new, locked temporary file beside ``path``: its name and descriptor."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # 0o666 & ~umask, like a file open() creates
        except FileExistsError:
            continue
        except OSError as e:  # name the target, not the temporary file next to it
            raise type(e)(e.errno, f"xgrad.io.save: cannot write {path!r}: "
                                   f"{_why(e, path, folder)}") from None
        if fcntl is not None and not _lock(fd):  # a cleaner holds it and will remove it
            os.close(fd)
            continue
        try:  # a cleaner may have taken it between open and lock: then take another name
            if os.path.samestat(os.fstat(fd), os.lstat(tmp)):
                return tmp, fd
        except OSError:
            pass
        os.close(fd)


def save(obj: Any, path: str | os.PathLike, *, compress: bool = False) -> None:
    """Write ``obj`` (a Layer, an optimizer, or a mapping of them / of arrays) to ``path`` as
    an ``.npz`` archive, atomically (temporary file, fsync, rename). ``path`` is used as given
    (no suffix is added). Temporary files that killed saves of ``path`` left behind are
    removed."""
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    _flatten(obj, "", arrays)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"xgrad.io.save: cannot write {path!r}: it is "
                                              f"a folder; give the name of a file to write")
    tmp, fd = _create_temp(path, folder)
    try:
        _remove_stale(folder, os.path.basename(path), os.path.basename(tmp))
        with os.fdopen(fd, "wb", closefd=False) as f:  # fd (and its lock) stays open
            method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            with zipfile.ZipFile(f, "w", compression=method, allowZip64=True) as zf:
                for k, a in arrays.items():
                    with zf.open(k + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, a, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise type(e)(e.errno, f"xgrad.io.save: cannot write {path!r}: "
                                   f"{_why(e, path, folder)}") from None
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)
    _fsync_dir(folder)


_CHUNK = 1 << 20  # bytes read from a member at a time
_HEADER_MAX = 1 << 16  # a .npy header longer than this is not one np.save wrote
_NPY_MAGIC = b"\x93NUMPY"
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, TypeError, EOFError,
                OSError, zlib.error, KeyError, IndexError, RuntimeError, NotImplementedError,
                MemoryError, OverflowError, RecursionError, SyntaxError, struct.error)


class _Member:
    """One array of an archive as its ``.npy`` header declares it (no data read yet)."""

    __slots__ = ("key", "info", "shape", "dtype", "fortran", "offset", "count")

    def __init__(self, key: str, info: zipfile.ZipInfo, shape: tuple, dtype: np.dtype,
                 fortran: bool, offset: int) -> None:
        self.key, self.info, self.shape, self.dtype = key, info, shape, dtype
        self.fortran, self.offset = fortran, offset
        self.count = math.prod(shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def _read_exact(f: Any, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError(f"the member ends inside its {what}")
    return data


def _header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> _Member:
    """Read and check the ``.npy`` header of member ``info``; reads no array data."""
    if info.flag_bits & 0x2041:  # bits 0, 6, 13: encrypted, strongly encrypted, masked header
        raise StateError("the member is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise StateError(f"compression method {info.compress_type} is not one .npz uses "
                         f"(stored or deflated)")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size \
            or info.header_offset + 30 + len(info.orig_filename) + info.compress_size \
            > getattr(zf, "start_dir", math.inf):
        raise StateError(f"the sizes in the zip directory ({info.compress_size} bytes "
                         f"stored, {info.file_size} bytes of data) do not fit the archive")
    if info.is_dir():
        raise StateError("not a .npy array (a folder entry)")
    with zf.open(info) as f:
        magic = f.read(8)
        if len(magic) != 8 or magic[:6] != _NPY_MAGIC:
            raise StateError("not a .npy array")
        version = (magic[6], magic[7])
        if version not in ((1, 0), (2, 0)):
            raise StateError(f".npy format version {version} is not supported")
        size_field = _read_exact(f, 2 if version == (1, 0) else 4, "header")
        hlen = int.from_bytes(size_field, "little")
        if hlen > _HEADER_MAX:
            raise StateError(f"the .npy header claims {hlen} bytes; refusing to read it")
        raw = _read_exact(f, hlen, "header")
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) \
            else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(io.BytesIO(size_field + raw))
    if dtype.hasobject:
        raise StateError("dtype object needs pickle, which xgrad.io never loads")
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None \
            or dtype.itemsize == 0:
        raise StateError(f"dtype {dtype.str} is not a plain numeric dtype")
    if any(d < 0 for d in shape):
        raise StateError(f"negative dimension in shape {shape}")
    m = _Member(key, info, tuple(shape), dtype, bool(fortran), 8 + len(size_field) + hlen)
    if info.file_size != m.offset + m.nbytes:
        raise StateError(f"the header declares shape {m.shape} of {dtype.name} "
                         f"({m.nbytes} bytes), but the member holds "
                         f"{info.file_size - m.offset} bytes of data")
    return m


def _scan(zf: zipfile.ZipFile, where: list) -> dict[str, _Member]:
    """Every member's header, by key (the name without ``.npy``); duplicate keys refused."""
    out: dict[str, _Member] = {}
    for info in zf.infolist():
        name = info.filename
        key = name[:-4] if name.endswith(".npy") else name
        where[0] = key
        if key in out:
            raise StateError(f"the archive holds {key!r} twice ({out[key].info.filename!r} "
                             f"and {name!r}); refusing to guess which one is meant")
        out[key] = _header(zf, info, key)
    where[0] = None
    return out


def _read(zf: zipfile.ZipFile, m: _Member) -> np.ndarray:
    """The array of member ``m`` (header already checked), in native byte order."""
    flat = np.empty(m.count, dtype=m.dtype)
    buf = memoryview(flat.view(np.uint8))
    total = m.nbytes
    with zf.open(m.info) as f:
        _read_exact(f, m.offset, "header")
        pos = 0
        while pos < total:
            chunk = f.read(min(_CHUNK, total - pos))
            if not chunk:
                raise EOFError("the member ends inside its data")
            buf[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        if f.read(1):  # also makes zipfile check the CRC of the whole member
            raise StateError("data after the end of the array")
    del buf
    if not m.dtype.isnative:  # e.g. big-endian data: swap in place, then view as native
        flat.byteswap(inplace=True)
        flat = flat.view(m.dtype.newbyteorder("="))
    return flat.reshape(m.shape[::-1]).T if m.fortran else flat.reshape(m.shape)


def _precheck(path: str, fname: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"xgrad.io.{fname}: no such file: {path!r}")
    if os.path.isdir(path):
        raise StateError(f"{path}: not an .npz archive but a folder")
    if not zipfile.is_zipfile(path):
        raise StateError(f"{path}: not an .npz archive (corrupt, truncated, or another format)")


def _wrap(path: str, where: list, e: Exception) -> StateError:
    """``e`` (raised while reading ``path``) as a StateError naming the file and key."""
    if isinstance(e, StateError) and str(e).startswith(path + ":"):
        return e
    what = f"key {where[0]!r}" if where[0] is not None else "archive"
    return StateError(f"{path}: cannot read {what}: {e}")


def _too_big(path: str, nbytes: int, max_bytes: int, what: str) -> StateError:
    return StateError(f"{path}: {what} would take {nbytes} bytes of memory, more than "
                      f"max_bytes={max_bytes}; pass a larger max_bytes (or None) if you "
                      f"trust this file")


def load(path: str | os.PathLike, *, max_bytes: int | None = MAX_BYTES
         ) -> dict[str, np.ndarray]:
    """Every array in the ``.npz`` file ``path`` as host NumPy arrays in native byte order
    (never unpickles). The headers are checked first: if the arrays would take more than
    ``max_bytes`` (default 256 MiB; None: no limit) nothing is inflated. A corrupt, truncated
    or oversized file raises :class:`StateError` naming the file (and the key)."""
    path = os.fspath(path)
    _precheck(path, "load")
    where: list = [None]
    try:
        with zipfile.ZipFile(path) as zf:
            members = _scan(zf, where)
            total = sum(m.nbytes for m in members.values())
            if max_bytes is not None and total > max_bytes:
                raise _too_big(path, total, max_bytes, f"its {len(members)} array(s)")
            out = {}
            for key, m in members.items():
                where[0] = key
                out[key] = _read(zf, m)
            return out
    except _READ_ERRORS as e:
        raise _wrap(path, where, e) from e


def _spec(obj: Any, prefix: str, out: dict[str, tuple | None]) -> None:
    """What a file may hold for ``obj``: key -> (shape, dtype name or None), or None where
    the target does not fix the size (a parameter not created yet)."""
    if isinstance(obj, Stateful):
        out.update((prefix + k, v) for k, v in obj.state_spec().items())
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _spec(v, f"{prefix}{k}/", out)
    else:
        raise TypeError(f"xgrad.io.load_into: cannot load into a {type(obj).__name__}; "
                        f"expected a Layer, an optimizer or a mapping of them")


def _check_headers(path: str, members: dict[str, _Member], spec: dict[str, tuple | None],
                   strict: bool, max_bytes: int | None) -> list[_Member]:
    """The members to read, once every header fits the target; nothing is inflated before."""
    unexpected = [k for k in members if k not in spec]
    if strict and unexpected:
        raise StateError(f"{path}: unexpected keys {unexpected[:10]}")
    wanted, unbounded = [], 0
    for key, m in members.items():
        if key not in spec:
            continue
        want = spec[key]
        if want is None:
            unbounded += m.nbytes
        else:
            try:
                check_like(key, (m.shape, m.dtype.newbyteorder("=").name), want, "the target")
            except StateError as e:
                raise StateError(f"{path}: {e}") from None
        wanted.append(m)
    if max_bytes is not None and unbounded > max_bytes:
        raise _too_big(path, unbounded, max_bytes, "the arrays of parameters not created yet")
    return wanted


def _prepare(obj: Any, state: Mapping[str, Any], strict: bool, prefix: str) -> list[Callable]:
    """Check ``state`` against ``obj`` and return the assignments to run once all passed."""
    if isinstance(obj, Stateful):
        return [obj.prepare_load(state, strict, prefix)]
    if not isinstance(obj, Mapping):
        raise TypeError(f"xgrad.io.load_into: cannot load into a {type(obj).__name__}; expected "
                        f"a Layer, an optimizer or a mapping of them")
    commits: list[Callable] = []
    claimed: set[str] = set()
    for k, v in obj.items():
        sub = {key[len(k) + 1:]: a for key, a in state.items() if key.startswith(k + "/")}
        claimed.update(k + "/" + s for s in sub)
        if not sub and strict:
            raise StateError(f"no entries for {prefix + k!r}")
        commits += _prepare(v, sub, strict, f"{prefix}{k}/")
    unexpected = sorted(set(state) - claimed)
    if strict and unexpected:
        raise StateError(f"unexpected keys {[prefix + u for u in unexpected][:10]}")
    return commits


def load_into(obj: Any, path: str | os.PathLike, *, strict: bool = True,
              max_bytes: int | None = MAX_BYTES) -> Any:
    """Load the file ``path`` into ``obj`` (a Layer, an optimizer, or a mapping of them as
    given to :func:`save`) and return ``obj``. Every header is checked against ``obj`` before
    any data are inflated, and everything is checked before anything is assigned: on a
    mismatch (``strict``: also a missing or unexpected key) ``obj`` is unchanged and
    :class:`StateError` names the file and the key. ``max_bytes`` bounds the arrays whose
    size ``obj`` does not fix (parameters not created yet; default 256 MiB, None: no limit);
    with ``strict=False`` keys ``obj`` does not know are skipped unread."""
    path = os.fspath(path)
    spec: dict[str, tuple | None] = {}
    _spec(obj, "", spec)
    _precheck(path, "load_into")
    where: list = [None]
    try:
        with zipfile.ZipFile(path) as zf:
            members = _scan(zf, where)
            arrays = {}
            for m in _check_headers(path, members, spec, strict, max_bytes):
                where[0] = m.key
                arrays[m.key] = _read(zf, m)
    except _READ_ERRORS as e:
        raise _wrap(path, where, e) from e
    try:
        commits = _prepare(obj, arrays, strict, "")
    except StateError as e:
        raise StateError(f"{path}: {e}") from None
    for commit in commits:
        commit()
    return obj

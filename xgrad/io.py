"""Saving and loading parameters and optimizer state as ``.npz`` files, never with pickle.

The API:

* ``save(obj, path)`` writes ``obj``: a Layer, an optimizer, or a mapping whose values are
  Layers, optimizers, arrays (of any backend), Variables, Python numbers or nested mappings.
  Every array is copied to the host first, so a file written from CuPy loads on a machine
  with NumPy only. Nested names are joined with ``/``: ``{"model": m, "optim": o}`` gives keys
  ``model/fc1.W`` and ``optim/fc1.W/m``. The save is atomic: the data go to a temporary file
  in the target's folder, are flushed to disk (fsync), and the file is renamed over ``path``,
  so an interrupted save never leaves a half-written file under that name.
* ``load(path)`` returns a dict of host NumPy arrays. It always reads with
  ``allow_pickle=False``: a downloaded weight file cannot run code.
* ``load_into(obj, path)`` loads a file into ``obj`` (what ``save`` accepted, minus plain
  arrays): every key, shape and dtype is checked, and every array placed on its parameter's
  backend and device, before anything is assigned; on any mismatch a :class:`StateError`
  names the file and the key and ``obj`` is left as it was.

``Layer.save_weights(path)`` / ``Layer.load_weights(path)`` (DeZero's names) call these.
"""

from __future__ import annotations

import os
import secrets
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from xgrad.backends import backend_of
from xgrad.core import Variable, XgradError, is_array

__all__ = ["StateError", "save", "load", "load_into"]


class StateError(XgradError, ValueError):
    """A state file or state dict cannot be read, or does not match its model or optimizer."""


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
    if hasattr(obj, "state_dict") and hasattr(obj, "_prepare_load"):
        for k, v in obj.state_dict().items():
            out[prefix + k] = _host(v, prefix + k)
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str) or not k or "/" in k:
                raise TypeError(f"xgrad.io.save: mapping keys must be non-empty strings without "
                                f"'/', got {prefix + str(k)!r}")
            if isinstance(v, Mapping) or hasattr(v, "_prepare_load"):
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


def save(obj: Any, path: str | os.PathLike, *, compress: bool = False) -> None:
    """Write ``obj`` (a Layer, an optimizer, or a mapping of them / of arrays) to ``path`` as
    an ``.npz`` archive, atomically (temporary file, fsync, rename). ``path`` is used as given
    (no suffix is added)."""
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    _flatten(obj, "", arrays)
    folder = os.path.dirname(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # 0o666 & ~umask, like a file open() creates
            break
        except FileExistsError:
            continue
        except OSError as e:  # name the target, not the temporary file next to it
            why = f"no such folder {folder!r}" if isinstance(e, FileNotFoundError) \
                else e.strerror
            raise type(e)(e.errno, f"xgrad.io.save: cannot write {path!r}: {why}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            with zipfile.ZipFile(f, "w", compression=method, allowZip64=True) as zf:
                for k, a in arrays.items():
                    with zf.open(k + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, a, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array in the ``.npz`` file ``path`` as host NumPy arrays (never unpickles).
    A corrupt or truncated file raises :class:`StateError` naming the file (and the key)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"xgrad.io.load: no such file: {path!r}")
    if not zipfile.is_zipfile(path):
        raise StateError(f"{path}: not an .npz archive (corrupt, truncated, or another format)")
    out: dict[str, np.ndarray] = {}
    key = None
    try:
        with np.load(path, allow_pickle=False) as f:
            for key in f.files:
                a = f[key]
                if not isinstance(a, np.ndarray):  # a zip member that is not a .npy array
                    raise ValueError("not a .npy array")
                out[key] = a
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error, KeyError) as e:
        where = f"key {key!r}" if key is not None else "archive"
        raise StateError(f"{path}: cannot read {where}: {e}") from e
    return out


def _prepare(obj: Any, state: Mapping[str, Any], strict: bool, prefix: str) -> list[Callable]:
    """Check ``state`` against ``obj`` and return the assignments to run once all passed."""
    if hasattr(obj, "_prepare_load"):
        return [obj._prepare_load(state, strict, prefix)]
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


def load_into(obj: Any, path: str | os.PathLike, *, strict: bool = True) -> Any:
    """Load the file ``path`` into ``obj`` (a Layer, an optimizer, or a mapping of them as
    given to :func:`save`) and return ``obj``. Everything is checked before anything is
    assigned: on a mismatch (``strict``: also a missing or unexpected key) ``obj`` is unchanged
    and :class:`StateError` names the file and the key."""
    path = os.fspath(path)
    arrays = load(path)
    try:
        commits = _prepare(obj, arrays, strict, "")
    except StateError as e:
        raise StateError(f"{path}: {e}") from None
    for commit in commits:
        commit()
    return obj

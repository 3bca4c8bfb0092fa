"""The Backend interface: what the array API standard lacks, supplied per array library."""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Sequence
from typing import Any

from xgrad._array import device_of, embed, gather
from xgrad.errors import XgradError


class BackendUnavailable(XgradError, RuntimeError):
    """A backend was asked for that cannot be used on this machine."""


class InvalidBackend(XgradError, TypeError):
    """A backend whose namespace is not an array-API namespace (or that is not a Backend)."""


# What xgrad needs of a namespace beyond what every array library has: a module that lacks one
# of these is the library's own module, not its array-API namespace (e.g. ``torch`` instead of
# ``array_api_compat.torch``).
_REQUIRED = ("__array_namespace_info__", "asarray", "astype", "isdtype", "zeros", "reshape",
             "permute_dims", "matmul", "sum", "where")


def check_namespace(ns: Any, owner: str) -> Any:
    """``ns`` if it has what xgrad needs of an array-API namespace, else an
    :class:`InvalidBackend` naming ``owner``, what is missing and what to use instead."""
    missing = [n for n in _REQUIRED if not hasattr(ns, n)]
    if not missing:
        return ns
    name = getattr(ns, "__name__", repr(ns))
    hint = ""
    compat = f"array_api_compat.{name}"
    try:
        if importlib.util.find_spec(compat) is not None:
            hint = f"; array-api-compat has one for it: namespace_module = {compat!r}"
    except (ImportError, ValueError):
        pass
    raise InvalidBackend(f"{owner}: module {name!r} is not an array-API namespace (it has no "
                         f"{', '.join(missing)}){hint}")


class RNG:
    """Random numbers on one backend and device. The default draws on the host with NumPy's
    PCG64 in float64 and moves and casts the result: portable to any namespace with
    ``from_host``, and to any floating dtype (float16 included)."""

    def __init__(self, backend: Backend, seed: int | None = None, device: Any = None) -> None:
        import numpy as np

        self.backend, self.device = backend, device
        self._gen = np.random.default_rng(seed)

    def _out(self, a: Any, dtype: Any) -> Any:
        x = self.backend.from_host(a, device=self.device)
        if dtype is not None and x.dtype != dtype:
            x = self.backend.namespace.astype(x, dtype)
        return x

    def normal(self, shape: tuple, dtype: Any = None, loc: float = 0.0, scale: float = 1.0) -> Any:
        """Samples of N(loc, scale^2)."""
        return self._out(self._gen.normal(loc, scale, size=shape), dtype)

    def uniform(self, shape: tuple, dtype: Any = None, low: float = 0.0,
                high: float = 1.0) -> Any:
        """Samples of U[low, high)."""
        x = self._out(self._gen.uniform(low, high, size=shape), dtype)
        if dtype is not None and low < high:  # rounding float64 draws to dtype may reach high
            x = _below(self.backend.namespace, x, low, high)
        return x

    def integers(self, low: int, high: int, shape: tuple) -> Any:
        """Integers in [low, high)."""
        return self._out(self._gen.integers(low, high, size=shape), None)

    def permutation(self, n: int) -> Any:
        """A random permutation of range(n)."""
        return self._out(self._gen.permutation(n), None)


def _below(xp: Any, x: Any, low: float, high: float) -> Any:
    """``x`` with values at or above ``high`` moved to the largest value of its dtype below it."""
    hi = xp.asarray(high, dtype=x.dtype, device=device_of(x))
    return xp.minimum(x, xp.nextafter(hi, xp.asarray(low, dtype=x.dtype, device=device_of(x))))


class Backend:
    """One array library. Subclasses set ``name``, ``module`` (the library, imported lazily),
    ``namespace_module`` where the library's own module is not an array-API namespace (its
    array-api-compat wrapper, e.g. ``"array_api_compat.dask.array"``) and ``owns``, and override
    what they can do faster than the portable defaults written here in the standard."""

    name = "?"
    module = "?"
    namespace_module: str | None = None
    install_hint = ""
    gpu = False
    checks_bounds = True  # indexing out of bounds raises (False: xgrad checks first)

    def __init__(self) -> None:
        self._namespace: Any = None

    # --- identity ---
    def is_available(self) -> bool:
        """True if the library imports (and, for GPU backends, sees a device)."""
        try:
            importlib.import_module(self.module)
        except Exception:
            return False
        return True

    def why_unavailable(self) -> str:
        """Why ``is_available()`` is False, for error messages and ``python -m xgrad info``."""
        try:
            importlib.import_module(self.module)
        except ModuleNotFoundError as e:
            return f"{e.name or self.module} is not installed"
        except Exception as e:  # installed but broken: say how
            return f"importing {self.module} failed: {type(e).__name__}: {e}"
        if self.gpu:
            return f"no GPU is visible to {self.module}"
        return f"{type(self).__name__}.is_available() is False"

    @property
    def namespace(self) -> Any:
        """The array-API namespace of this backend (checked to be one on first use)."""
        if self._namespace is None:
            self._namespace = check_namespace(self._load_namespace(),
                                              f"backend {self.name!r}")
        return self._namespace

    def _load_namespace(self) -> Any:
        return importlib.import_module(self.namespace_module or self.module)

    @property
    def version(self) -> str:
        """The version of the library's distribution (``?`` if it has none)."""
        return _version_of(self.module)

    def owns(self, array: Any) -> bool:
        """True if ``array`` belongs to this backend."""
        return False

    def owns_writable(self, array: Any) -> bool:
        """True if ``array`` is known to own writable memory that no other array views, so a
        leaf's ``.grad`` may keep it without a copy. The portable default cannot tell and says
        False (the engine then copies: ``asarray(x, copy=True)``)."""
        return False

    def lacks_dtype(self, name: str) -> str:
        """Why arrays of this backend cannot hold the dtype called ``name`` ("float64"), or ""."""
        return ""

    def devices(self) -> list:
        """The devices arrays of this backend can live on."""
        info = self.namespace.__array_namespace_info__()
        return list(info.devices())

    @property
    def default_device(self) -> Any:
        return self.namespace.__array_namespace_info__().default_device()

    def parse_device(self, spec: Any) -> Any:
        """A device object from ``spec`` (None: the default, a device, or its name)."""
        if spec is None:
            return self.default_device
        for d in self.devices():
            if d == spec or str(d) == str(spec) or getattr(d, "_device", None) == spec:
                return d
        raise ValueError(f"backend {self.name!r} has no device {spec!r}; its devices are "
                         f"{self.devices()}")

    def device_spec(self, device: Any) -> str:
        """The string that ``Variable.to()`` accepts for ``device`` of this backend."""
        return f"{self.name}:{getattr(device, '_device', device)}"

    def describe_devices(self) -> list[str]:
        """Human-readable device descriptions for ``python -m xgrad info``."""
        return [str(d) for d in self.devices()]

    def __repr__(self) -> str:
        return f"<xgrad backend {self.name!r}>"

    # --- what the standard lacks ---
    def rng(self, seed: int | None = None, device: Any = None) -> RNG:
        """A random generator whose arrays land on ``device`` (the default device if None)."""
        return RNG(self, seed, device)

    def materialize(self, arrays: Sequence[Any]) -> list:
        """``arrays`` (parameters and optimizer state after an update) as concrete data.

        A lazy library (dask) returns them computed, so that each training step starts from
        data instead of a graph of every step so far; eager libraries return them unchanged."""
        return list(arrays)

    def to_host(self, x: Any) -> Any:
        """A NumPy array with the data of ``x``."""
        import numpy as np

        return np.asarray(x)

    def from_host(self, a: Any, device: Any = None) -> Any:
        """An array of this backend from host data ``a`` (a NumPy array or nested lists)."""
        return self.namespace.asarray(a, device=device)

    def scalar(self, value: Any, dtype: Any, device: Any) -> Any:
        """A 0-d array holding a Python scalar (the hot path of ``x * 2``)."""
        return self.namespace.asarray(value, dtype=dtype, device=device)

    def transfer(self, x: Any, device: Any = None) -> Any:
        """``x`` (from any backend) as an array of this backend on ``device``."""
        from xgrad.backends import backend_of  # lazy: the registry imports this module

        if self.owns(x):
            if device is None or device_of(x) == device:
                return x
            return self.namespace.asarray(x, device=device, copy=True) \
                if not hasattr(x, "to_device") else x.to_device(device)
        return self.from_host(backend_of(x).to_host(x), device=device)

    def masked(self, x: Any, mask: Any) -> Any:
        """``x`` times the boolean array ``mask`` (0 where it is False), in ``x``'s dtype: how
        gradients pass a ReLU or a pooling window. Portable version: the standard does not mix
        bool with floats in arithmetic, so the mask is cast first (one more array); libraries
        that multiply by a bool array in their kernels skip the cast."""
        return x * self.namespace.astype(mask, x.dtype)

    def add_at(self, x: Any, key: tuple, values: Any) -> Any:
        """``x`` with ``values`` added at the basic index ``key`` (ints, slices, ``...``; each
        element at most once): a functional update. ``x`` may be reused, so callers pass an
        array of their own. Portable version: no item assignment (immutable arrays have none):
        ``values`` is spread to ``x``'s shape with one ``take`` per sliced axis and a mask."""
        return x + embed(values, key, tuple(x.shape))

    def scatter_add(self, shape: tuple, key: Any, values: Any) -> Any:
        """zeros(shape) with ``values`` added at ``key``; repeated indices accumulate.

        Portable version, written in the standard only: find where each value goes (rows of
        the table for ``x[ids]`` / ``x[:, ids]``, flat positions otherwise), sort by
        destination, sum each run of equal destinations, and gather the sums back by
        ``searchsorted``. Memory O(size(values) + prod(shape)), time O(n log n)."""
        xp = self.namespace
        dev = device_of(values)
        shape = tuple(shape)
        axis = _single_index_axis(key)
        if axis is not None:
            # the common embedding case: a table row per id; sum whole rows at once
            ids = key[axis]
            v = shape[axis]
            a = math.prod(shape[:axis])
            b = math.prod(shape[axis + 1:])
            m = math.prod(ids.shape)
            ids = xp.reshape(ids, (-1,))
            ids = xp.where(ids < 0, ids + v, ids)
            rows = xp.reshape(values, (a, m, b))
            if a != 1:
                rows = xp.permute_dims(rows, (1, 0, 2))
            out = _sum_by_destination(xp, ids, xp.reshape(rows, (m, a * b)), v, dev)
            out = xp.reshape(out, (v, a, b))
            if a != 1:
                out = xp.permute_dims(out, (1, 0, 2))
            return xp.reshape(out, shape)
        n = math.prod(shape)
        pos = gather(xp.reshape(xp.arange(n, device=dev), shape), key)
        vals = xp.reshape(xp.broadcast_to(values, pos.shape), (-1, 1))
        out = _sum_by_destination(xp, xp.reshape(pos, (-1,)), vals, n, dev)
        return xp.reshape(out, shape)


def _single_index_axis(key: tuple) -> int | None:
    """The axis of ``key``'s only integer array when everything before it is a full slice
    and everything after a full slice or Ellipsis (``x[ids]``, ``x[:, ids]``); else None."""
    arrays = [i for i, k in enumerate(key) if hasattr(k, "dtype")]
    if len(arrays) != 1 or "int" not in str(key[arrays[0]].dtype):
        return None
    i = arrays[0]
    full = slice(None)
    if all(isinstance(k, slice) and k == full for k in key[:i]) and \
            all((isinstance(k, slice) and k == full) or k is Ellipsis for k in key[i + 1:]):
        return i
    return None


def _sum_by_destination(xp: Any, dest: Any, rows: Any, n: int, device: Any) -> Any:
    """(n, D) zeros plus each row of ``rows`` (m, D) added at row ``dest`` (m,) of it.

    Sort the rows by destination; a segmented inclusive scan (log2(longest run) doubling
    steps, each adding the partial sum ``d`` rows back if it has the same destination) leaves
    every run's total on its last row; ``searchsorted`` finds, for each of the n destination
    rows, the end of its run (or none). Unlike a global cumulative sum with differences at the
    run bounds, no run's sum passes through the large running total of the runs before it,
    so small gradients next to large ones keep their precision."""
    order = xp.argsort(dest, stable=True)
    dest = xp.take(dest, order)
    s = xp.take(rows, order, axis=0)
    m = dest.shape[0]
    zero = xp.zeros((1, s.shape[1]), dtype=s.dtype, device=device)
    d = 1
    while d < m:
        same = dest[d:] == dest[:-d]
        if not bool(xp.any(same)):  # every run is at most d long: the scan is complete
            break
        s = xp.concat([s[:d, :], s[d:, :] + xp.where(xp.expand_dims(same, axis=1),
                                                     s[:-d, :], zero)], axis=0)
        d *= 2
    q = xp.arange(n, dtype=dest.dtype, device=device)
    end = xp.searchsorted(dest, q, side="right")
    has = end > xp.searchsorted(dest, q, side="left")
    # row 0 of the padded table is zero: destinations no value went to
    return xp.take(xp.concat([zero, s], axis=0), xp.where(has, end, 0), axis=0)


_VERSIONS: dict[str, str] = {}


def _version_of(module: str) -> str:
    """The version of the distribution that installs ``module``'s top-level package, else its
    ``__version__``, else ``?``."""
    top = module.split(".")[0]
    v = _VERSIONS.get(top)
    if v is None:
        from importlib import metadata

        v = "?"
        for dist in metadata.packages_distributions().get(top, []):
            try:
                v = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        if v == "?":
            v = str(getattr(importlib.import_module(top), "__version__", "?"))
        _VERSIONS[top] = v
    return v

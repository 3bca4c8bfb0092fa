"""The Backend interface: what the array API standard lacks, supplied per array library."""

from __future__ import annotations

import importlib
from typing import Any


class BackendUnavailable(RuntimeError):
    """A backend was asked for that cannot be used on this machine."""


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
    hi = xp.asarray(high, dtype=x.dtype, device=x.device)
    return xp.minimum(x, xp.nextafter(hi, xp.asarray(low, dtype=x.dtype, device=x.device)))


class Backend:
    """One array library. Subclasses set ``name``, ``module`` (imported lazily) and override
    what they can do faster than the portable defaults written here in the standard."""

    name = "?"
    module = "?"
    install_hint = ""
    gpu = False

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

    @property
    def namespace(self) -> Any:
        """The array-API namespace of this backend."""
        if self._namespace is None:
            self._namespace = self._load_namespace()
        return self._namespace

    def _load_namespace(self) -> Any:
        return importlib.import_module(self.module)

    @property
    def version(self) -> str:
        return getattr(importlib.import_module(self.module), "__version__", "?")

    def owns(self, array: Any) -> bool:
        """True if ``array`` belongs to this backend."""
        return False

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
        from xgrad.backends import backend_of

        if self.owns(x):
            if device is None or x.device == device:
                return x
            return self.namespace.asarray(x, device=device, copy=True) \
                if not hasattr(x, "to_device") else x.to_device(device)
        return self.from_host(backend_of(x).to_host(x), device=device)

    def scatter_add(self, shape: tuple, key: Any, values: Any) -> Any:
        """zeros(shape) with ``values`` added at ``key``; repeated indices accumulate.

        Portable version: index a grid of flat positions with ``key`` to learn where each value
        goes, then sum with a one-hot matrix product (memory: size(values) x prod(shape))."""
        xp = self.namespace
        n = 1
        for s in shape:
            n *= s
        dev = values.device
        from xgrad.functions._util import gather

        pos = gather(xp.reshape(xp.arange(n, device=dev), shape), key)
        pos = xp.reshape(pos, (-1,))
        vals = xp.reshape(values, (-1, 1)) if values.ndim else xp.reshape(values, (1, 1))
        vals = xp.broadcast_to(vals, (pos.shape[0], 1)) if vals.shape[0] != pos.shape[0] else vals
        onehot = xp.astype(pos[:, None] == xp.arange(n, device=dev)[None, :], values.dtype)
        out = xp.matmul(xp.matrix_transpose(onehot), vals)
        return xp.reshape(out, shape)

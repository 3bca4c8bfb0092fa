"""Making arrays on a chosen backend and device, and the per-backend random generators."""

from __future__ import annotations

from typing import Any

from xgrad import backends
from xgrad.backends import Backend
from xgrad.core import Variable, is_array
from xgrad.dtypes import bool_, dtype_name, float32, float64, int32, int64

__all__ = ["float32", "float64", "int32", "int64", "bool_", "resolve_dtype",
           "placement", "asarray", "zeros", "ones", "manual_seed", "get_rng", "randn", "rand"]


def resolve_dtype(dtype: Any, backend: Backend) -> Any:
    """The dtype object of ``backend`` for ``dtype`` (a name, or another backend's dtype)."""
    if dtype is None:
        return None
    name = dtype_name(dtype)
    try:
        dt = getattr(backend.namespace, name)
    except AttributeError:
        raise TypeError(f"backend {backend.name!r} has no dtype {dtype!r}") from None
    why = backend.lacks_dtype(name)
    if why:  # e.g. JAX with 64-bit types off: refuse rather than silently downcast
        raise TypeError(f"backend {backend.name!r} has no dtype {name} here: {why}")
    return dt


def placement(backend: Any = None, device: Any = None) -> tuple[Backend, Any]:
    """(Backend, device) for a ``backend`` (a name, ``"name:device"``, a Backend) and a
    ``device``; either left None is the current default's (``xgrad.use_backend``) as of now."""
    if backend is None:
        b, dev = backends.current_target()
    else:
        b, dev = backends.resolve_target(backend)
    return b, (b.parse_device(device) if device is not None else dev)


def asarray(obj: Any, dtype: Any = None, backend: Any = None, device: Any = None) -> Any:
    """An array of ``backend`` (default: the current one) on ``device`` from lists, scalars,
    host arrays or another backend's array."""
    if isinstance(obj, Variable):
        obj = obj.data
    b, dev = placement(backend, device)
    dt = resolve_dtype(dtype, b)
    if is_array(obj):
        x = b.transfer(obj, dev)
    else:
        if obj is None or isinstance(obj, (str, bytes, dict, set)):
            raise TypeError(f"asarray: cannot make a numeric array from {type(obj).__name__}")
        if dt is not None:
            # Python numbers read exactly on the host (NumPy: float64, int64), cast there, then
            # moved: a library whose default float is float32 (torch) would round 0.1 first.
            hxp = backends.get("numpy").namespace
            src = hxp.asarray(obj)
            _check_numbers(hxp, src, obj)
            x = b.from_host(hxp.astype(src, resolve_dtype(dtype, backends.get("numpy"))),
                            device=dev)
        else:
            x = b.from_host(obj, device=dev)
            _check_numbers(b.namespace, x, obj)
    if dt is not None and x.dtype != dt:
        x = b.namespace.astype(x, dt)
    return x


def _check_numbers(xp: Any, x: Any, obj: Any) -> None:
    if not xp.isdtype(x.dtype, ("bool", "integral", "real floating", "complex floating")):
        raise TypeError(f"asarray: {type(obj).__name__} does not hold numbers "
                        f"(it became dtype {x.dtype})")


def _shape(fname: str, shape: Any) -> tuple:
    """``shape`` (an int, a tuple/list of ints, or ``*shape`` packed in a tuple) checked."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise TypeError(f"{fname}: a shape is non-negative ints, got {shape!r}")
    return tuple(shape)


def _make(fill: str, shape: Any, dtype: Any, backend: Any, device: Any) -> Any:
    b, dev = placement(backend, device)
    shape = _shape(fill, (shape,))
    return getattr(b.namespace, fill)(shape, dtype=resolve_dtype(dtype or float32, b), device=dev)


def zeros(shape: Any, dtype: Any = None, backend: Any = None, device: Any = None) -> Any:
    """Zeros (float32 unless told) on the default or given backend."""
    return _make("zeros", shape, dtype, backend, device)


def ones(shape: Any, dtype: Any = None, backend: Any = None, device: Any = None) -> Any:
    """Ones (float32 unless told) on the default or given backend."""
    return _make("ones", shape, dtype, backend, device)


# --- random numbers: one generator per (backend, device), reseeded by manual_seed ---
_seed: int | None = None
_generators: dict[tuple, Any] = {}


def manual_seed(seed: int) -> None:
    """Reseed every backend's generator: runs repeat exactly on the same backend."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def get_rng(backend: Any = None, device: Any = None) -> Any:
    """The generator of ``backend`` and ``device`` (created from the manual seed on first use)."""
    b, dev = placement(backend, device)
    key = (b.name, str(dev))
    g = _generators.get(key)
    if g is None:
        g = _generators[key] = b.rng(_seed, dev)
    return g


def randn(*shape: Any, dtype: Any = None, backend: Any = None, device: Any = None) -> Any:
    """Standard normal samples (float32 unless told)."""
    shape = _shape("randn", shape)
    b, dev = placement(backend, device)
    return get_rng(b, dev).normal(shape, dtype=resolve_dtype(dtype or float32, b))


def rand(*shape: Any, dtype: Any = None, backend: Any = None, device: Any = None) -> Any:
    """Uniform samples in [0, 1) (float32 unless told)."""
    shape = _shape("rand", shape)
    b, dev = placement(backend, device)
    return get_rng(b, dev).uniform(shape, dtype=resolve_dtype(dtype or float32, b))

"""Raw arrays: which namespace an array belongs to, its device, whether its dtype is floating,
NumPy's 0-d fix-up, and portable indexing. Imports nothing of xgrad, so the backends, the core
and the function library all build on it.

An array's namespace depends only on its type, and ``array_namespace()`` costs ~2 us a call, so
the answer is cached per type (None marks a type that is not an array).
"""

from __future__ import annotations

import numbers
from typing import Any

from array_api_compat import array_namespace
from array_api_compat import device as _compat_device

__all__ = ["is_array", "get_namespace", "device_of", "numel", "is_float_dtype", "rearray", "gather",
           "basic_key", "embed"]

NAMESPACES: dict[type, Any] = {}
_FLOAT_DTYPES: dict[int, tuple] = {}


def lookup_namespace(t: type, x: Any) -> Any:
    """The namespace of ``x`` (of type ``t``) or None, computed once and cached in NAMESPACES."""
    ns = None
    if not isinstance(x, numbers.Number) and hasattr(x, "shape") and hasattr(x, "dtype"):
        # NumPy scalars (numpy.float64, numpy.bool_) carry __array_namespace__ but are not arrays.
        generic = t.__module__ == "numpy" and not any(c.__name__ == "ndarray" for c in t.__mro__)
        if not generic:
            try:
                ns = array_namespace(x)
            except TypeError:
                ns = None
    NAMESPACES[t] = ns
    return ns


def is_array(x: Any) -> bool:
    """True if ``x`` is an array of some array-API namespace (not a scalar, list or Variable)."""
    t = type(x)
    ns = NAMESPACES[t] if t in NAMESPACES else lookup_namespace(t, x)
    return ns is not None


def get_namespace(x: Any) -> Any:
    """The array-API namespace of array ``x`` (cached per array type)."""
    t = type(x)
    ns = NAMESPACES.get(t)
    if ns is None:
        ns = lookup_namespace(t, x)
        if ns is None:
            raise TypeError(f"expected an array of an array-API namespace, got {t.__name__}")
    return ns


def device_of(x: Any) -> Any:
    """The device of array ``x``: its ``.device``, or array-api-compat's ``device(x)`` for
    arrays that have no such attribute (dask)."""
    try:
        return x.device
    except AttributeError:
        return _compat_device(x)


def numel(x: Any) -> int:
    """The number of elements of array ``x`` (``x.size`` is a method on torch tensors)."""
    n = 1
    for s in x.shape:
        n *= s
    return n


def is_float_dtype(x: Any) -> bool:
    """True if array ``x`` has a real floating-point dtype (cached per dtype)."""
    dt = x.dtype
    # Keyed by identity: dtypes are singletons, and strict's warn when compared with NumPy's.
    r = _FLOAT_DTYPES.get(id(dt))
    if r is None or r[0] is not dt:
        r = _FLOAT_DTYPES[id(dt)] = (dt, bool(get_namespace(x).isdtype(dt, "real floating")))
    return r[1]


def rearray(x: Any, like: Any = None) -> Any:
    """``x`` as an array: NumPy turns 0-d results into scalars (numpy.float64), which become
    0-d arrays again, of ``like``'s namespace when given. The one 0-d fix-up: hot paths test
    ``type(y) is type(x)`` inline and call this only when the types differ."""
    t = type(x)
    if (NAMESPACES[t] if t in NAMESPACES else lookup_namespace(t, x)) is not None:
        return x  # already an array (perhaps of another namespace: a move between backends)
    try:
        return (array_namespace(x) if like is None else get_namespace(like)).asarray(x)
    except TypeError:
        raise TypeError(f"expected an array of an array-API namespace, got "
                        f"{t.__module__}.{t.__qualname__}") from None


def _is_full_slice(k: Any) -> bool:
    return isinstance(k, slice) and k == slice(None)


def _negative_step(key: tuple) -> bool:
    return any(isinstance(k, slice) and k.step is not None and k.step < 0 for k in key)


def _flipped(x: Any, key: tuple) -> Any:
    """``x[key]`` for a basic key with negative-step slices (not in the standard nor in
    PyTorch): the same elements by a positive step, then flipped."""
    key = basic_key(key, x.ndim)
    pos: list = []
    flip: list[int] = []
    axis = out = 0
    for k in key:
        if k is None:
            pos.append(None)
            out += 1
            continue
        if isinstance(k, slice):
            if k.step is not None and k.step < 0:
                r = range(*k.indices(x.shape[axis]))
                k = slice(r[-1], r[0] + 1, -r.step) if len(r) else slice(0, 0)
                flip.append(out)
            out += 1
        pos.append(k)
        axis += 1
    y = x[tuple(pos)]
    return get_namespace(x).flip(y, axis=tuple(flip)) if flip else y


def gather(x: Any, key: tuple) -> Any:
    """``x[key]``, written so that every backend can do it: the standard allows an integer
    index array only beside other integers, so "one index array, full slices elsewhere" (the
    common ``x[idx]`` / ``x[:, idx]``) becomes ``take`` along that axis; negative-step slices
    become a flip."""
    arrays = [i for i, k in enumerate(key) if hasattr(k, "dtype") and "int" in str(k.dtype)]
    if len(arrays) == 1:
        i = arrays[0]
        rest = key[:i] + key[i + 1:]
        if all(_is_full_slice(k) or (k is Ellipsis and j >= i) for j, k in enumerate(rest)):
            xp = get_namespace(x)
            idx = key[i]
            y = xp.take(x, xp.reshape(idx, (-1,)), axis=i)
            return xp.reshape(y, tuple(x.shape[:i]) + tuple(idx.shape) + tuple(x.shape[i + 1:]))
    if _negative_step(key):
        return _flipped(x, key)
    return x[key]


def basic_key(key: tuple, ndim: int) -> tuple:
    """A basic key (ints, slices, ``None``, at most one ``...``) with ``...`` spelled out as
    full slices and trailing full slices added, so it has one entry per axis (plus Nones)."""
    used = sum(k is not None and k is not Ellipsis for k in key)
    out: list = []
    for k in key:
        if k is Ellipsis:
            out += [slice(None)] * (ndim - used)
            used = ndim
        else:
            out.append(k)
    return tuple(out) + (slice(None),) * (ndim - used)


def embed(v: Any, key: tuple, shape: tuple) -> Any:
    """Zeros of ``shape`` holding ``v`` at the basic index ``key``: the inverse of ``x[key]``
    without item assignment. Each sliced axis is spread with one ``take`` (host-computed
    positions) and the untouched positions masked out."""
    xp = get_namespace(v)
    key = basic_key(key, len(shape))
    axis_keys = [k for k in key if k is not None]
    ranges = [range(k % n, k % n + 1) if isinstance(k, int) else range(*k.indices(n))
              for k, n in zip(axis_keys, shape)]
    sel: list[int] = []  # the shape of x[key]
    it = iter(ranges)
    for k in key:
        if k is None:
            sel.append(1)
        else:
            r = next(it)
            if isinstance(k, slice):
                sel.append(len(r))
    sel_shape = tuple(sel)
    if tuple(v.shape) != sel_shape:
        v = xp.broadcast_to(v, sel_shape)
    # one axis of v per axis of x: ints become length-1 axes, None axes go away
    v = xp.reshape(v, tuple(len(r) for r in ranges))
    dev = v.device
    mask = None
    for axis, (r, n) in enumerate(zip(ranges, shape)):
        if r == range(n):
            continue
        pos = {p: i for i, p in enumerate(r)}
        inv = xp.asarray([pos.get(p, 0) for p in range(n)], device=dev)
        hit = xp.asarray([p in pos for p in range(n)], device=dev)
        v = xp.take(v, inv, axis=axis)
        hit = xp.reshape(hit, (1,) * axis + (n,) + (1,) * (len(shape) - axis - 1))
        mask = hit if mask is None else xp.logical_and(mask, hit)
    if mask is None:
        return v
    return xp.where(mask, v, xp.zeros((), dtype=v.dtype, device=dev))

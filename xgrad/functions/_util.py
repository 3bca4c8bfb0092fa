"""Helpers shared by the function modules (not public)."""

from __future__ import annotations

from typing import Any

from xgrad.core import Variable, get_namespace, is_array, is_float_dtype


def normalize_axis(axis: Any, ndim: int, fname: str) -> tuple:
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative ints, checked against
    ``ndim``; an out-of-range axis raises an error naming ``fname``."""
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, (int, tuple, list)):
        raise TypeError(f"{fname}: axis must be an int or a tuple of ints, got {axis!r}")
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"{fname}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{fname}: axis {a} is out of range for an array of {ndim} "
                             f"dimensions")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{fname}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def array_data(x: Any, fname: str) -> Any:
    """The raw array of a Variable or an array; anything else is refused with a TypeError
    naming ``fname`` and the type."""
    if isinstance(x, Variable):
        return x.data
    if is_array(x):
        return x
    raise TypeError(f"{fname}: expected a Variable or an array, got "
                    f"{type(x).__module__}.{type(x).__qualname__}")


def require_float(fname: str, x: Any) -> None:
    """Differentiable math needs floating-point input; say so instead of computing garbage."""
    if not is_float_dtype(x):
        raise TypeError(f"{fname}: expected a floating-point array, got dtype {x.dtype} "
                        f"(shape {tuple(x.shape)}); cast it first, e.g. "
                        f"xgrad.asarray(x, dtype=xgrad.float32)")


xp_of = get_namespace  # the namespace of a raw array (cached per type)


def _is_full_slice(k: Any) -> bool:
    return isinstance(k, slice) and k == slice(None)


def gather(x: Any, key: tuple) -> Any:
    """``x[key]``, written so that every backend can do it: the standard allows an integer
    index array only beside other integers, so "one index array, full slices elsewhere" (the
    common ``x[idx]`` / ``x[:, idx]``) becomes ``take`` along that axis."""
    arrays = [i for i, k in enumerate(key) if hasattr(k, "dtype") and "int" in str(k.dtype)]
    if len(arrays) == 1:
        i = arrays[0]
        rest = key[:i] + key[i + 1:]
        if all(_is_full_slice(k) or (k is Ellipsis and j >= i) for j, k in enumerate(rest)):
            xp = get_namespace(x)
            idx = key[i]
            y = xp.take(x, xp.reshape(idx, (-1,)), axis=i)
            return xp.reshape(y, tuple(x.shape[:i]) + tuple(idx.shape) + tuple(x.shape[i + 1:]))
    return x[key]

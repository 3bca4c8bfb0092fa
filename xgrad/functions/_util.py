"""Helpers shared by the function modules (not public)."""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from xgrad._array import get_namespace, is_array, is_float_dtype, rearray
from xgrad.backends import backend_of
from xgrad.core import Variable, _new_variable


def _at(fname: str | None) -> str:
    """The head of an error message: ``"fname: "``, or nothing inside a forward (the engine
    prefixes those errors with the Function's public name)."""
    return f"{fname}: " if fname else ""


__all__ = [
    "array_data", "check_axis", "check_bool", "check_bounds", "check_int", "check_probability",
    "check_real", "check_shape", "const", "describe", "host_array", "logsumexp_parts",
    "normalize_axis", "require_float", "xp_of",
]


def describe(v: Any) -> str:
    """A short description of a bad argument for an error message: its type and value (arrays
    and Variables by shape and dtype)."""
    if isinstance(v, Variable) or is_array(v):
        kind = "Variable" if isinstance(v, Variable) else "array"
        return f"a {kind} of shape {tuple(v.shape)} and dtype {v.dtype}"
    text = repr(v)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(v).__name__} {text}"


def logsumexp_parts(x: Any, axes: tuple) -> tuple:
    """``(m, e, s)`` over ``axes``, kept: the maximum m, e = exp(x - m) and s = sum(e), so that
    logsumexp = m + log(s), softmax = e / s, log_softmax = x - (m + log(s)); the one shift by the
    maximum in the library. Edge cases follow PyTorch: a slice of only -inf or holding +inf
    gives NaN in softmax and log_softmax (m is not finite), and logsumexp takes m there
    (-inf and inf)."""
    xp = xp_of(x)
    m = xp.max(x, axis=axes, keepdims=True)
    e = xp.exp(x - m)
    return m, e, xp.sum(e, axis=axes, keepdims=True)


def _as_int(v: Any) -> int | None:
    """``v`` as a Python int if it is an integer (int, NumPy integer; never a bool, a float or
    an array), else None."""
    if type(v) is int:
        return v
    if isinstance(v, bool) or isinstance(v, Variable) or is_array(v) or \
            type(v).__name__.startswith("bool"):
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def check_int(v: Any, fname: str, arg: str, minimum: int | None = None) -> int:
    """``v`` as an int (a bool, a float or an array is refused), at least ``minimum``."""
    i = _as_int(v)
    if i is None:
        raise TypeError(f"{_at(fname)}{arg} must be an int, got {describe(v)}")
    if minimum is not None and i < minimum:
        raise ValueError(f"{_at(fname)}{arg} must be >= {minimum}, got {i}")
    return i


def _pair(v: Any, what: str, fname: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (kernel size, stride, pad), each >= ``minimum``, as a pair of
    Python ints; anything else is refused naming ``fname`` and ``what``."""
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    ints = tuple(_as_int(a) for a in pair)
    if len(ints) != 2 or None in ints:
        raise TypeError(f"{fname}: {what} must be an int or a pair of ints, got {v!r}")
    if any(a < minimum for a in ints):
        raise ValueError(f"{fname}: {what} must be >= {minimum}, got {v!r}")
    return ints


def check_shape(shape: Any, fname: str, arg: str = "shape", unknown: bool = False) -> tuple:
    """``shape`` (an int or a sequence of ints, as NumPy takes it) as a tuple of ints >= 0;
    ``unknown`` allows -1 entries (reshape's "whatever is left")."""
    if type(shape) is tuple and all(type(s) is int and s >= 0 for s in shape):
        return shape  # the common case, kept cheap (the engine's own calls take it)
    if _as_int(shape) is not None:
        shape = (shape,)
    elif isinstance(shape, Variable) or is_array(shape) or isinstance(shape, (str, bytes)) or \
            not isinstance(shape, (tuple, list)) and not hasattr(shape, "__iter__"):
        raise TypeError(f"{_at(fname)}{arg} must be an int or a tuple of ints, got "
                        f"{describe(shape)}")
    out = tuple(_as_int(s) for s in shape)
    if any(s is None for s in out):
        raise TypeError(f"{_at(fname)}{arg} must be an int or a tuple of ints, got "
                        f"{describe(shape)}")
    low = -1 if unknown else 0
    if any(s < low for s in out):
        raise ValueError(f"{_at(fname)}{arg} entries must be >= {low}, got {out}")
    return out


def check_bool(v: Any, fname: str, arg: str) -> bool:
    """``v`` if it is a bool (True/False, NumPy's included); anything else is refused."""
    if v is True or v is False:
        return v
    if type(v).__name__.startswith("bool") and not is_array(v):  # numpy.bool
        return bool(v)
    raise TypeError(f"{_at(fname)}{arg} must be True or False, got {describe(v)}")


def check_real(v: Any, fname: str, arg: str, minimum: float | None = None,
               below: float | None = None) -> float:
    """``v`` as a finite real Python number (an int or float, not a bool, NaN or an array),
    within ``minimum <= v < below`` where given."""
    if type(v) is float or type(v) is int:
        f = float(v)
    elif isinstance(v, (bool, str, bytes)) or isinstance(v, Variable) or is_array(v) or \
            type(v).__name__.startswith("bool") or not isinstance(v, numbers.Real):
        raise TypeError(f"{_at(fname)}{arg} must be a real number, got {describe(v)}")
    else:
        f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{_at(fname)}{arg} must be a finite number, got {f}")
    if minimum is not None and f < minimum or below is not None and f >= below:
        lo = "" if minimum is None else f"[{minimum:g}"
        hi = "" if below is None else f"{below:g})"
        bounds = f"in {lo}, {hi}" if lo and hi else f">= {minimum}" if lo else f"< {below}"
        raise ValueError(f"{_at(fname)}{arg} must be {bounds}, got {v!r}")
    return f


def check_probability(v: Any, fname: str, arg: str) -> float:
    """``v`` as a probability in [0, 1) (a dropout ratio: 1 would drop everything)."""
    return check_real(v, fname, arg, minimum=0.0, below=1.0)


def check_axis(axis: Any, ndim: int, fname: str, arg: str = "axis") -> int:
    """One axis ``axis`` (an int in [-ndim, ndim)) as a non-negative int."""
    a = _as_int(axis)
    if a is None:
        raise TypeError(f"{_at(fname)}{arg} must be an int, got {describe(axis)}")
    if not -ndim <= a < ndim:
        raise ValueError(f"{_at(fname)}{arg} {a} is out of range for an array of {ndim} "
                         f"dimensions")
    return a % ndim


def normalize_axis(axis: Any, ndim: int, fname: str | None, arg: str = "axis") -> tuple:
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative ints, checked against
    ``ndim``; an out-of-range axis raises an error naming ``fname``."""
    if axis is None:
        return tuple(range(ndim))
    if _as_int(axis) is not None:
        axes = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        raise TypeError(f"{_at(fname)}{arg} must be an int or a tuple of ints, got "
                        f"{describe(axis)}")
    out = []
    for a in axes:
        i = _as_int(a)
        if i is None:
            raise TypeError(f"{_at(fname)}{arg} must be an int or a tuple of ints, got "
                            f"{describe(axis)}")
        if not -ndim <= i < ndim:
            raise ValueError(f"{_at(fname)}{arg} {i} is out of range for an array of {ndim} "
                             f"dimensions")
        out.append(i % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{_at(fname)}repeated {arg} in {axis!r}")
    return tuple(sorted(out))


def host_array(v: Any, like: Any, fname: str, arg: str) -> Any:
    """``v`` (a Variable, an array, or nested lists of numbers) as an array of ``like``'s
    backend and device; what cannot be one is refused naming ``fname`` and ``arg``."""
    if isinstance(v, Variable):
        return v.data
    if is_array(v):
        return v
    if v is None or isinstance(v, (str, bytes)):
        raise TypeError(f"{_at(fname)}{arg} must be an array, got {describe(v)}")
    try:
        out = backend_of(like).from_host(v, device=like.device)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{_at(fname)}{arg} must be an array or nested lists of numbers, got "
                      f"{describe(v)} ({e})") from e
    try:
        numeric = get_namespace(out).isdtype(out.dtype, ("bool", "numeric"))
    except (TypeError, ValueError):  # strings, objects
        numeric = False
    if not numeric:
        raise TypeError(f"{_at(fname)}{arg} must hold numbers, got {describe(v)}")
    return out


def array_data(x: Any, fname: str) -> Any:
    """The raw array of a Variable or an array; anything else is refused with a TypeError
    naming ``fname`` and the type."""
    if isinstance(x, Variable):
        return x.data
    if is_array(x):
        return x
    raise TypeError(f"{_at(fname)}expected a Variable or an array, got "
                    f"{type(x).__module__}.{type(x).__qualname__}")


def require_float(fname: str | None, x: Any) -> None:
    """Differentiable math needs floating-point input; say so instead of computing garbage."""
    if not is_float_dtype(x):
        raise TypeError(f"{_at(fname)}expected a floating-point array, got dtype {x.dtype} "
                        f"(shape {tuple(x.shape)}); cast it first, e.g. "
                        f"xgrad.asarray(x, dtype=xgrad.float32)")


xp_of = get_namespace  # the namespace of a raw array (cached per type)


def check_bounds(x: Any, key: tuple) -> None:
    """Raise IndexError for an index outside ``x`` (or not an index): for libraries that clamp
    or fill instead (JAX). Python ints are checked on the host, index arrays by their min and
    max."""
    def mask(k: Any) -> bool:
        return is_array(k) and "bool" in str(k.dtype)

    used = sum(k.ndim if mask(k) else 1 for k in key if k is not None and k is not Ellipsis)
    axis = 0
    for k in key:
        if k is Ellipsis:
            axis += x.ndim - used
            continue
        if k is None or isinstance(k, slice):
            axis += k is not None
            continue
        if mask(k):
            axis += k.ndim
            continue
        n = x.shape[axis] if axis < x.ndim else 0
        if not isinstance(k, int) and not is_array(k):
            raise IndexError(f"only integers, slices, ..., None and integer or boolean arrays "
                             f"are valid indices, got {type(k).__name__} {k!r}")
        if is_array(k):
            if math.prod(k.shape):
                xp = get_namespace(k)
                lo, hi = int(xp.min(k)), int(xp.max(k))
                bad = hi if hi >= n else lo if lo < -n else None
            else:
                bad = None
        else:
            bad = k if not -n <= k < n else None
        if bad is not None:
            raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {n}")
        axis += 1


def const(a: Any) -> Variable:
    """An array a backward rule computed (a 0-d NumPy result included) as a constant Variable:
    no gradient flows into it."""
    return _new_variable(rearray(a))

"""Shape functions: reshape, transpose, broadcasting, joining and splitting, indexing."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from xgrad._array import gather, get_namespace, is_array, numel
from xgrad.backends import backend_of
from xgrad.core import Function, Variable, _new_variable
from xgrad.functions._util import (
    array_data,
    check_axis,
    check_bounds,
    check_int,
    check_shape,
    describe,
    normalize_axis,
    xp_of,
)

__all__ = [
    "broadcast_to", "concat", "expand_dims", "flip", "get_item", "matrix_transpose",
    "permute_dims", "reshape", "split", "squeeze", "stack", "sum_to", "take", "transpose",
    "unstack",
]


def _sum_to_array(x: Any, shape: tuple) -> Any:
    """Sum array ``x`` down to ``shape`` (the inverse of broadcasting)."""
    if tuple(x.shape) == tuple(shape):
        return x
    xp = xp_of(x)
    lead = x.ndim - len(shape)
    if lead < 0:
        raise ValueError(f"sum_to: cannot sum shape {tuple(x.shape)} to the larger {shape}")
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1)
    for i, s in enumerate(shape):
        if s != 1 and x.shape[i + lead] != s:
            raise ValueError(f"sum_to: shape {tuple(x.shape)} does not broadcast from {shape}")
    y = xp.sum(x, axis=axes, keepdims=True) if axes else x
    return xp.reshape(y, shape) if lead else y


def _zeros_like_shape(x: Variable, shape: tuple) -> Variable:
    """A constant Variable of zeros with ``x``'s dtype and device."""
    d = x.data
    return _new_variable(xp_of(d).zeros(shape, dtype=d.dtype, device=d.device))


# --- reshaping and permuting --------------------------------------------------------------
class Reshape(Function):
    def __init__(self, shape: tuple) -> None:
        self.shape = shape

    def forward(self, x: Any) -> Any:
        shape = tuple(self.shape)
        if -1 not in shape and math.prod(shape) != numel(x):  # one wording on every library
            raise ValueError(f"cannot reshape an array of size {numel(x)} into shape {shape}")
        return xp_of(x).reshape(x, shape)

    def backward(self, gy: Variable) -> Variable:
        return reshape(gy, self.inputs[0].shape)


class Transpose(Function):
    name = "permute_dims"

    def __init__(self, axes: tuple | None, name: str = "permute_dims") -> None:
        self.axes, self.name = axes, name  # transpose() and permute_dims() both build one

    def forward(self, x: Any) -> Any:
        n = x.ndim
        if self.axes is None:
            self.axes = tuple(range(n))[::-1]
        else:
            axes = tuple(a + n if isinstance(a, int) and -n <= a < 0 else a for a in self.axes)
            if sorted(axes) != list(range(n)):
                raise ValueError(f"axes {self.axes} are not a permutation of the "
                                 f"{n} dimensions of shape {tuple(x.shape)}")
            self.axes = axes
        return xp_of(x).permute_dims(x, self.axes)

    def backward(self, gy: Variable) -> Variable:
        inverse = tuple(sorted(range(len(self.axes)), key=self.axes.__getitem__))
        return transpose(gy, inverse)


class MatrixTranspose(Function):
    name = "matrix_transpose"

    def forward(self, x: Any) -> Any:
        if x.ndim < 2:
            raise ValueError(f"needs at least 2 dimensions, got shape "
                             f"{tuple(x.shape)}")
        return xp_of(x).matrix_transpose(x)

    def backward(self, gy: Variable) -> Variable:
        return matrix_transpose(gy)


class Flip(Function):
    name = "flip"

    def __init__(self, axis: Any) -> None:
        self.axis = axis

    def forward(self, x: Any) -> Any:
        self.axes = normalize_axis(self.axis, x.ndim, None)
        return xp_of(x).flip(x, axis=self.axes)

    def backward(self, gy: Variable) -> Variable:
        return flip(gy, self.axes)


# --- broadcasting -------------------------------------------------------------------------
class BroadcastTo(Function):
    def __init__(self, shape: tuple) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        return xp_of(x).broadcast_to(x, self.shape)

    def backward(self, gy: Variable) -> Variable:
        return sum_to(gy, self.inputs[0].shape)


class SumTo(Function):
    def __init__(self, shape: tuple) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        return _sum_to_array(x, self.shape)

    def backward(self, gy: Variable) -> Variable:
        return broadcast_to(gy, self.inputs[0].shape)


# --- joining and splitting ----------------------------------------------------------------
def _fill(gys: tuple, like: Variable, shapes: list) -> list:
    """Output gradients with None (an output that got no gradient) replaced by zeros."""
    return [g if g is not None else _zeros_like_shape(like, s) for g, s in zip(gys, shapes)]


class Concat(Function):
    name = "concat"

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs: Any) -> Any:
        shapes = [tuple(x.shape) for x in xs]
        x0 = shapes[0]
        axis = normalize_axis(self.axis, len(x0), None)[0]
        for s in shapes[1:]:
            if len(s) != len(x0) or s[:axis] + s[axis + 1:] != x0[:axis] + x0[axis + 1:]:
                raise ValueError(f"shapes {', '.join(map(str, shapes))} must agree "
                                 f"except along axis {self.axis}")
        self.axis = axis
        return xp_of(xs[0]).concat(list(xs), axis=axis)

    def backward(self, gy: Variable) -> tuple:
        offsets, total = [], 0
        for x in self.inputs[:-1]:
            total += x.shape[self.axis]
            offsets.append(total)
        parts = split(gy, offsets, self.axis)
        return tuple(p if x.requires_grad else None for p, x in zip(parts, self.inputs))


class Split(Function):
    def __init__(self, points: list, axis: int) -> None:
        self.points, self.axis = points, axis

    def forward(self, x: Any) -> tuple:
        axis = self.axis
        bounds = [0, *self.points, x.shape[axis]]
        head = (slice(None),) * axis
        ys = tuple(x[head + (slice(a, b), ...)] for a, b in zip(bounds[:-1], bounds[1:]))
        self.shapes = [tuple(y.shape) for y in ys]
        return ys

    def backward(self, *gys: Variable) -> Variable:
        return concat(_fill(gys, self.inputs[0], self.shapes), self.axis)


class Stack(Function):
    name = "stack"

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs: Any) -> Any:
        shapes = [tuple(x.shape) for x in xs]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"shapes {', '.join(map(str, shapes))} must be equal")
        self.axis = normalize_axis(self.axis, len(shapes[0]) + 1, None)[0]
        return xp_of(xs[0]).stack(list(xs), axis=self.axis)

    def backward(self, gy: Variable) -> tuple:
        parts = unstack(gy, self.axis)
        return tuple(p if x.requires_grad else None for p, x in zip(parts, self.inputs))


class Unstack(Function):
    name = "unstack"

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, x: Any) -> tuple:
        self.axis = axis = normalize_axis(self.axis, x.ndim, None)[0]
        head = (slice(None),) * axis
        ys = tuple(x[head + (i, ...)] for i in range(x.shape[axis]))
        self.shape = tuple(x.shape[:axis]) + tuple(x.shape[axis + 1:])
        return ys

    def backward(self, *gys: Variable) -> Variable:
        return stack(_fill(gys, self.inputs[0], [self.shape] * len(gys)), self.axis)


# --- indexing -----------------------------------------------------------------------------
def _index_part(k: Any, x: Any, fname: str = "get_item") -> Any:
    if isinstance(k, Variable):
        return k.data
    if isinstance(k, list):
        try:
            return get_namespace(x).asarray(k, device=x.device)
        except (TypeError, ValueError) as e:
            raise IndexError(f"{fname}: an index list must be a rectangular list of ints or "
                             f"bools, got {describe(k)} ({e})") from None
    return k


def _is_mask(k: Any) -> bool:
    return is_array(k) and "bool" in str(k.dtype)


def _index_key(key: Any, x: Any) -> tuple:
    """Make an indexing key usable on every backend: Variables and lists become arrays on the
    data's namespace and device, and a key shorter than ``x.ndim`` gets the trailing ``...``
    that the standard asks for (except a boolean mask, which must be the sole index)."""
    parts = tuple(_index_part(k, x) for k in (key if isinstance(key, tuple) else (key,)))
    if len(parts) == 1 and _is_mask(parts[0]):
        return parts
    if not any(k is Ellipsis for k in parts):
        used = 0
        for k in parts:
            if k is None:
                continue
            used += k.ndim if _is_mask(k) else 1
        if used < x.ndim:
            parts = parts + (Ellipsis,)
    return parts


def _is_basic(key: tuple) -> bool:
    """True for a key of ints, slices and ``...``: each element is selected at most once, so
    the gradient is a plain (functional) placement."""
    return all(isinstance(k, (int, slice)) or k is Ellipsis for k in key)


def _unmask(gy: Any, mask: Any, shape: tuple) -> Any:
    """The inverse of ``x[mask]``: zeros of ``shape`` with the rows of ``gy`` where ``mask`` is
    true. Written with take/where (array_api_strict cannot assign through a mask off its CPU
    device): row i of the result reads row (number of trues before i) of ``gy``."""
    xp = xp_of(gy)
    m = xp.reshape(mask, (-1,))
    rest = tuple(shape[mask.ndim:])
    out_rows = xp.zeros((m.shape[0],) + rest, dtype=gy.dtype, device=gy.device)
    if gy.shape[0]:
        # the default integer dtype (int32 on JAX without 64-bit types: never ask for int64)
        pos = xp.cumulative_sum(xp.astype(m, xp.asarray(0, device=m.device).dtype)) - 1
        rows = xp.take(gy, xp.clip(pos, 0, None), axis=0)
        out_rows = xp.where(xp.reshape(m, (-1,) + (1,) * len(rest)), rows, out_rows)
    return xp.reshape(out_rows, shape)


class GetItem(Function):
    name = "get_item"

    def __init__(self, key: Any) -> None:
        self.key = key

    def forward(self, x: Any) -> Any:
        if not backend_of(x).checks_bounds:  # JAX clamps (or fills NaN) instead of raising
            check_bounds(x, self.key)
        try:
            y = gather(x, self.key)
        except IndexError:  # name the bad index where the library does not (PyTorch)
            check_bounds(x, self.key)
            raise
        if any(d is None or d != d for d in y.shape):  # None (the standard) or NaN (dask)
            raise ValueError(
                f"indexing a {type(x).__module__}.{type(x).__name__} of shape "
                f"{tuple(x.shape)} with a boolean mask gives a shape that depends on the data "
                f"({tuple(y.shape)}), which this lazy array library does not know before "
                f"computing; use where(mask, x, 0) to keep the shape, or index data of an eager "
                f"backend (.to('numpy'))")
        return y

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0]
        return GetItemGrad(self.key, x.shape)(gy)


class GetItemGrad(Function):
    """The gradient scattered into zeros of the input's shape: a functional placement for basic
    keys, a gather for a mask, else a scatter-add (repeated indices add up)."""

    def __init__(self, key: Any, shape: tuple) -> None:
        self.key, self.shape = key, shape

    def forward(self, gy: Any) -> Any:
        key = self.key
        if len(key) == 1 and _is_mask(key[0]):
            return _unmask(gy, key[0], self.shape)
        if _is_basic(key):
            out = xp_of(gy).zeros(self.shape, dtype=gy.dtype, device=gy.device)
            return backend_of(gy).add_at(out, key, gy)
        return backend_of(gy).scatter_add(self.shape, self.key, gy)

    def backward(self, ggx: Variable) -> Variable:
        return get_item(ggx, self.key)


# --- public functions ---------------------------------------------------------------------
def reshape(x: Any, shape: tuple) -> Variable:
    """``x`` with a new shape (an int or a tuple; one entry may be -1)."""
    shape = check_shape(shape, "reshape", unknown=True)
    if isinstance(x, Variable) and tuple(x.shape) == shape:
        return x
    return Reshape(shape)(x)


def transpose(x: Any, axes: tuple | None = None) -> Variable:
    """Permute the dimensions (reverse them when ``axes`` is None); DeZero's name."""
    return Transpose(None if axes is None else _axes(x, axes, "transpose"), "transpose")(x)


def permute_dims(x: Any, axes: tuple) -> Variable:
    """Permute the dimensions of ``x`` (the array API standard's name)."""
    return Transpose(_axes(x, axes, "permute_dims"))(x)


def _axes(x: Any, axes: Any, fname: str) -> tuple:
    """``axes``, a permutation of ``x``'s dimensions, checked (negative ones made positive)."""
    shape = tuple(array_data(x, fname).shape)
    n = len(shape)
    if not isinstance(axes, (tuple, list)):
        raise TypeError(f"{fname}: axes must be a tuple of ints, got {describe(axes)}")
    perm = tuple(a + n if -n <= a < 0 else a for a in (check_int(a, fname, "axes") for a in axes))
    if sorted(perm) != list(range(n)):
        raise ValueError(f"{fname}: axes {tuple(axes)} are not a permutation of the {n} "
                         f"dimensions of shape {shape}")
    return perm


def matrix_transpose(x: Any) -> Variable:
    """Swap the last two dimensions."""
    return MatrixTranspose()(x)


def expand_dims(x: Any, axis: int | tuple = 0) -> Variable:
    """Insert size-1 dimensions at ``axis`` (an int or a tuple, positions in the result)."""
    shape = tuple(array_data(x, "expand_dims").shape)
    if not isinstance(axis, (tuple, list)):
        axis = check_int(axis, "expand_dims", "axis")
    axes = normalize_axis(axis, len(shape) + (1 if isinstance(axis, int) else len(axis)),
                          "expand_dims")
    rest = iter(shape)
    return reshape(x, tuple(1 if i in axes else next(rest)
                            for i in range(len(shape) + len(axes))))


def squeeze(x: Any, axis: int | tuple | None = None) -> Variable:
    """Remove size-1 dimensions: those in ``axis``, or all of them when ``axis`` is None."""
    shape = tuple(array_data(x, "squeeze").shape)
    if axis is None:
        axes = tuple(i for i, s in enumerate(shape) if s == 1)
    else:
        axes = normalize_axis(axis, len(shape), "squeeze")
        bad = [a for a in axes if shape[a] != 1]
        if bad:
            raise ValueError(f"squeeze: cannot remove axis {bad[0]} of size {shape[bad[0]]} "
                             f"from shape {shape}")
    return reshape(x, tuple(s for i, s in enumerate(shape) if i not in axes))


def flip(x: Any, axis: int | tuple | None = None) -> Variable:
    """Reverse the order of elements along ``axis`` (None: every axis)."""
    return Flip(axis)(x)


def broadcast_to(x: Any, shape: tuple) -> Variable:
    """``x`` broadcast to ``shape`` (an int or a tuple); the gradient is summed back."""
    shape = check_shape(shape, "broadcast_to")
    if isinstance(x, Variable) and tuple(x.shape) == shape:
        return x
    return BroadcastTo(shape)(x)


def sum_to(x: Any, shape: tuple) -> Variable:
    """Sum ``x`` down to ``shape`` (an int or a tuple; the inverse of broadcasting)."""
    shape = check_shape(shape, "sum_to")
    if isinstance(x, Variable) and tuple(x.shape) == shape:
        return x
    return SumTo(shape)(x)


def _sequence(xs: Any, fname: str) -> list:
    """``xs`` as a list; a single array or a non-iterable is refused with a TypeError."""
    if isinstance(xs, Variable) or is_array(xs) or not isinstance(xs, Iterable):
        raise TypeError(f"{fname}: expected a sequence of Variables/arrays, got "
                        f"{type(xs).__module__}.{type(xs).__qualname__}")
    return list(xs)


def concat(xs: Sequence, axis: int | None = 0) -> Variable:
    """Join a sequence of Variables/arrays along an existing ``axis`` (None: flatten first)."""
    xs = _sequence(xs, "concat")
    if not xs:
        raise ValueError("concat: needs at least one array")
    if axis is None:
        xs, axis = [reshape(x, (-1,)) for x in xs], 0
    return Concat(check_int(axis, "concat", "axis"))(*xs)


def stack(xs: Sequence, axis: int = 0) -> Variable:
    """Join a sequence of equally shaped Variables/arrays along a new ``axis``."""
    xs = _sequence(xs, "stack")
    if not xs:
        raise ValueError("stack: needs at least one array")
    check_int(axis, "stack", "axis")
    return Stack(axis)(*xs)


def unstack(x: Any, axis: int = 0) -> tuple:
    """The slices of ``x`` along ``axis``, as a tuple of Variables (the inverse of stack)."""
    check_int(axis, "unstack", "axis")
    ys = Unstack(axis)(x)
    return tuple(ys) if isinstance(ys, list) else (ys,)


def split(x: Any, indices_or_sections: int | Sequence, axis: int = 0) -> tuple:
    """Split ``x`` along ``axis`` into a tuple of Variables: ``n`` equal parts for an int, or
    at the given increasing split points (as ``numpy.split``)."""
    shape = tuple(array_data(x, "split").shape)
    axis = check_axis(axis, len(shape), "split")
    n = shape[axis]
    if not isinstance(indices_or_sections, (tuple, list)):
        k = check_int(indices_or_sections, "split", "indices_or_sections")
        if k <= 0 or n % k:
            raise ValueError(f"split: axis {axis} of shape {shape} does not divide into {k} "
                             f"equal parts")
        points = [n // k * i for i in range(1, k)]
    else:
        points = [check_int(p, "split", "split points") for p in indices_or_sections]
        if any(not 0 <= p <= n for p in points) or points != sorted(points):
            raise ValueError(f"split: split points {points} must increase within [0, {n}] "
                             f"(axis {axis} of shape {shape})")
    ys = Split(points, axis)(x)
    return tuple(ys) if isinstance(ys, list) else (ys,)


def get_item(x: Any, key: Any) -> Variable:
    """``x[key]``: slices, integer arrays (repeated indices add up in backward), masks."""
    return GetItem(_index_key(key, array_data(x, "get_item")))(x)


def take(x: Any, indices: Any, axis: int | None = None) -> Variable:
    """Elements of ``x`` at integer ``indices`` along ``axis`` (may be omitted for 1-D ``x``);
    ``indices`` of any shape replace that axis. Repeated indices add up in backward."""
    data = array_data(x, "take")
    if axis is None:
        if data.ndim != 1:
            raise ValueError(f"take: axis is required for an input of shape "
                             f"{tuple(data.shape)}")
        axis = 0
    axis = check_axis(axis, data.ndim, "take")
    idx = _index_part(indices, data, "take")
    if not is_array(idx) or not get_namespace(idx).isdtype(idx.dtype, "integral"):
        raise TypeError(f"take: indices must be an integer array, got "
                        f"{getattr(idx, 'dtype', type(idx).__name__)}")
    return GetItem((slice(None),) * axis + (idx, Ellipsis))(x)

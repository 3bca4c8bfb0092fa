"""Reductions over an ``axis`` (None: all, an int or a tuple), with ``keepdims``."""

from __future__ import annotations

import math
from typing import Any

from xgrad._array import rearray
from xgrad.core import Function, Variable
from xgrad.functions._util import (
    check_bool,
    check_int,
    check_real,
    const,
    logsumexp_parts,
    normalize_axis,
    require_float,
    xp_of,
)
from xgrad.functions.math import exp, where
from xgrad.functions.shape import broadcast_to, flip, get_item, reshape

__all__ = [
    "cumulative_sum", "logsumexp", "max", "mean", "min", "prod", "std", "sum", "var",
]


def _keepdims_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _count(shape: tuple, axes: tuple) -> int:
    n = 1
    for a in axes:
        n *= shape[a]
    return n


class _Reduction(Function):
    """A reduction over ``axes``; ``_expand`` turns an output-shaped Variable back into one
    broadcast to the input's shape (what every backward rule here starts from)."""

    name = "?"

    def __init__(self, axis: Any, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def _axes(self, x: Any) -> tuple:
        self.axes = normalize_axis(self.axis, x.ndim, None)  # in forward: the engine names it
        return self.axes

    def _nonempty_axes(self, x: Any) -> tuple:
        """The axes, refused when one has size 0: an extreme of nothing is undefined (NumPy
        raises ValueError, PyTorch IndexError, so say it once here)."""
        axes = self._axes(x)
        if any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"{self.name}: cannot reduce over a zero-size axis (input shape "
                             f"{tuple(x.shape)}, axis {self.axis!r})")
        return axes

    def _expand(self, v: Variable) -> Variable:
        shape = self.inputs[0].shape
        return broadcast_to(reshape(v, _keepdims_shape(shape, self.axes)), shape)


class Sum(_Reduction):
    name = "sum"

    def forward(self, x: Any) -> Any:
        return xp_of(x).sum(x, axis=self._axes(x), keepdims=self.keepdims)

    def backward(self, gy: Variable) -> Variable:
        return self._expand(gy)


class Mean(_Reduction):
    name = "mean"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).mean(x, axis=self._axes(x), keepdims=self.keepdims)

    def backward(self, gy: Variable) -> Variable:
        return self._expand(gy) / _count(self.inputs[0].shape, self.axes)


class Max(_Reduction):
    name = "max"

    def forward(self, x: Any) -> Any:
        return xp_of(x).max(x, axis=self._nonempty_axes(x), keepdims=self.keepdims)

    def backward(self, gy: Variable) -> Variable:
        return self._expand(gy) * _argext_weights(self)


class Min(_Reduction):
    name = "min"

    def forward(self, x: Any) -> Any:
        return xp_of(x).min(x, axis=self._nonempty_axes(x), keepdims=self.keepdims)

    def backward(self, gy: Variable) -> Variable:
        return self._expand(gy) * _argext_weights(self)


def _argext_weights(f: _Reduction) -> Variable:
    """For max/min: 1/k at each of the k elements equal to the extreme value, 0 elsewhere
    (ties share the gradient equally), as a constant."""
    x = f.inputs[0].data
    y = f._out().data
    xp = xp_of(x)
    hit = xp.astype(x == xp.reshape(y, _keepdims_shape(x.shape, f.axes)), x.dtype)
    return const(hit / xp.sum(hit, axis=f.axes, keepdims=True))


class Prod(_Reduction):
    name = "prod"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).prod(x, axis=self._axes(x), keepdims=self.keepdims)

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0]
        xd = x.data
        xp = xp_of(xd)
        zero = xd == 0
        if not bool(xp.any(zero)):
            return self._expand(gy) * self._expand(self._out()) / x
        # With zeros, y / x is 0/0. d y / d x_i is the product of the others: (product of the
        # non-zero others) * Z_i, Z_i the product of the zero-valued others. Z_i is written so
        # that its value and its first derivative are exact (hence y's second derivative):
        # no zero: 1; one zero x_k: 1 at k, x_k elsewhere; two zeros x_a, x_b: at a, x_b
        # (= sum of the zeros - x_a), elsewhere x_a x_b, whose derivative is 0 here, as is
        # every Z_i with three or more zeros.
        dt = xd.dtype
        zf = xp.astype(zero, dt)
        nzeros = xp.sum(zf, axis=self.axes, keepdims=True)
        none = xp.astype(nzeros == 0, dt)
        one = xp.astype(nzeros == 1, dt)
        two = xp.astype(nzeros == 2, dt)
        x_nz = x * const(1 - zf) + const(zf)
        p_nz = Prod(self.axes, True)(x_nz)
        zsum = broadcast_to(Sum(self.axes, True)(x * const(zf)), x.shape)
        z = (const(none + one * zf) + const(one * (1 - zf)) * zsum
             + const(two * zf) * (zsum - x))
        others = (broadcast_to(p_nz, x.shape) / x_nz) * z
        return self._expand(gy) * others


class LogSumExp(_Reduction):
    name = "logsumexp"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        xp = xp_of(x)
        axes = self._nonempty_axes(x)
        m, _, s = logsumexp_parts(x, axes)
        y = xp.where(xp.isfinite(m), m + xp.log(s), m)  # all -inf: -inf; holding inf: inf
        return y if self.keepdims else xp.reshape(y, tuple(
            s for i, s in enumerate(y.shape) if i not in axes))

    def backward(self, gy: Variable) -> Variable:
        # the softmax exp(x - y): bounded by 1, so it never overflows
        y = self._expand(self._out())
        yd = y.data
        xp = xp_of(yd)
        empty = rearray(yd == -math.inf, yd)
        if bool(xp.any(empty)):  # an all -inf slice: its softmax is 0, not -inf - -inf
            y = where(empty, 0.0, y)
        # a slice holding +inf: exp(x - inf) is 0 for its finite entries, NaN for the inf ones
        return self._expand(gy) * exp(self.inputs[0] - y)


class Var(_Reduction):
    name = "var"

    def __init__(self, axis: Any, keepdims: bool, correction: float) -> None:
        super().__init__(axis, keepdims)
        self.correction = correction

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        axes = self._axes(x)
        return xp_of(x).var(x, axis=axes, correction=self.correction, keepdims=self.keepdims)

    def _centered(self) -> tuple:
        x = self.inputs[0]
        n = _count(x.shape, self.axes)
        # N - correction clipped at 0, as the forward divides by (max is this module's)
        dof = n - self.correction if n > self.correction else 0
        return x - broadcast_to(Mean(self.axes, True)(x), x.shape), dof

    def backward(self, gy: Variable) -> Variable:
        # the deviations sum to 0, so the mean's own dependence on x drops out; with no
        # degrees of freedom left (N - correction <= 0) the factor is infinite, as the forward's
        # division by 0 (NaN where the deviation is 0, like PyTorch)
        d, dof = self._centered()
        return self._expand(gy) * d * (2 / dof if dof > 0 else math.inf)


class Std(Var):
    name = "std"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        axes = self._axes(x)
        xp = xp_of(x)
        # the square root of var: PyTorch's std() refuses a fractional correction, var() takes it
        return xp.sqrt(xp.var(x, axis=axes, correction=self.correction, keepdims=self.keepdims))

    def backward(self, gy: Variable) -> Variable:
        # d std = d var / (2 std). Where std is 0 (a constant slice) that is 0/0: the
        # subgradient there is 0 (PyTorch's choice); the denominator is made 1 first so that
        # no NaN enters the graph of a second derivative either
        d, dof = self._centered()
        s = self._expand(self._out())
        xp = xp_of(s.data)
        flat = rearray(s.data == 0, s.data)
        if not bool(xp.any(flat)):
            return self._expand(gy) * d / (s * dof)
        return where(flat, 0.0, self._expand(gy) * d / (where(flat, 1.0, s) * dof))


class CumulativeSum(Function):
    name = "cumulative_sum"

    def __init__(self, axis: int | None, include_initial: bool) -> None:
        self.axis, self.include_initial = axis, include_initial

    def forward(self, x: Any) -> Any:
        if self.axis is None:
            if x.ndim != 1:
                raise ValueError(f"axis is required for an input of shape "
                                 f"{tuple(x.shape)}")
            self.axis = 0
        self.axis = normalize_axis(self.axis, x.ndim, None)[0]
        return xp_of(x).cumulative_sum(x, axis=self.axis, include_initial=self.include_initial)

    def backward(self, gy: Variable) -> Variable:
        axis = self.axis
        if self.include_initial:  # output j sums inputs i < j: drop output 0's gradient
            gy = get_item(gy, (slice(None),) * axis + (slice(1, None), ...))
        # input i feeds every output from i on: a reversed cumulative sum
        return flip(cumulative_sum(flip(gy, axis), axis), axis)


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Sum over ``axis`` (None: all, an int or a tuple)."""
    if type(keepdims) is not bool:
        keepdims = check_bool(keepdims, "sum", "keepdims")
    return Sum(axis, keepdims)(x)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    """Arithmetic mean over ``axis``."""
    if type(keepdims) is not bool:
        keepdims = check_bool(keepdims, "mean", "keepdims")
    return Mean(axis, keepdims)(x)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Maximum over ``axis``. Elements tied for the maximum share its gradient equally."""
    if type(keepdims) is not bool:
        keepdims = check_bool(keepdims, "max", "keepdims")
    return Max(axis, keepdims)(x)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Minimum over ``axis``. Elements tied for the minimum share its gradient equally."""
    if type(keepdims) is not bool:
        keepdims = check_bool(keepdims, "min", "keepdims")
    return Min(axis, keepdims)(x)


def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    """Product over ``axis``; the gradient (the product of the other elements) and the second
    derivative are exact with any number of zeros in the input."""
    if type(keepdims) is not bool:
        keepdims = check_bool(keepdims, "prod", "keepdims")
    return Prod(axis, keepdims)(x)


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    """log(sum(exp(x))) over ``axis``, shifted by the maximum: finite for any finite x. A slice
    of only -inf gives -inf with gradient 0; one holding +inf gives inf, with gradient 0 for its
    finite entries."""
    if type(keepdims) is not bool:
        keepdims = check_bool(keepdims, "logsumexp", "keepdims")
    return LogSumExp(axis, keepdims)(x)


def var(x: Any, axis: Any = None, keepdims: bool = False, correction: float = 0) -> Variable:
    """Variance over ``axis``, dividing by N - ``correction`` (1 for the unbiased estimate).
    With N - correction <= 0 the result and its gradient are NaN or inf (as in PyTorch)."""
    if type(keepdims) is not bool:
        keepdims = check_bool(keepdims, "var", "keepdims")
    check_real(correction, "var", "correction", minimum=0.0)
    return Var(axis, keepdims, correction)(x)


def std(x: Any, axis: Any = None, keepdims: bool = False, correction: float = 0) -> Variable:
    """Standard deviation over ``axis``, dividing by N - ``correction``. Where a slice is
    constant (std 0) the gradient is the subgradient 0, as in PyTorch; with N - correction <= 0
    the result and its gradient are NaN or inf."""
    if type(keepdims) is not bool:
        keepdims = check_bool(keepdims, "std", "keepdims")
    check_real(correction, "std", "correction", minimum=0.0)
    return Std(axis, keepdims, correction)(x)


def cumulative_sum(x: Any, axis: int | None = None, include_initial: bool = False) -> Variable:
    """Running sum along ``axis`` (may be omitted for 1-D input); with ``include_initial`` the
    result starts with 0 (one element longer)."""
    include_initial = check_bool(include_initial, "cumulative_sum", "include_initial")
    if axis is not None:
        check_int(axis, "cumulative_sum", "axis")
    return CumulativeSum(axis, include_initial)(x)

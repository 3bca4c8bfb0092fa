"""Reductions."""

from __future__ import annotations

from typing import Any

from xgrad.core import Function, Variable
from xgrad.functions._util import normalize_axis, xp_of
from xgrad.functions.shape import broadcast_to, reshape


def _keepdims_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    def __init__(self, axis: Any, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x: Any) -> Any:
        self.axes = normalize_axis(self.axis, x.ndim, "sum")
        return xp_of(x).sum(x, axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy: Variable) -> Variable:
        shape = self.inputs[0].shape
        return broadcast_to(reshape(gy, _keepdims_shape(shape, self.axes)), shape)


class Mean(Function):
    def __init__(self, axis: Any, keepdims: bool) -> None:
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x: Any) -> Any:
        self.axes = normalize_axis(self.axis, x.ndim, "mean")
        return xp_of(x).mean(x, axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy: Variable) -> Variable:
        shape = self.inputs[0].shape
        n = 1
        for a in self.axes:
            n *= shape[a]
        return broadcast_to(reshape(gy, _keepdims_shape(shape, self.axes)), shape) / n


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Sum over ``axis`` (None: all, an int or a tuple)."""
    return Sum(axis, keepdims)(x)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    """Arithmetic mean over ``axis``."""
    return Mean(axis, keepdims)(x)

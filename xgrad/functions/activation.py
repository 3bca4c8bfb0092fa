"""Activations and the normalizers of scores: sigmoid, relu, leaky_relu, gelu, softplus,
softmax, log_softmax. Elementwise math that is not mainly an activation (tanh, exp) lives in
math.py."""

from __future__ import annotations

import math
from typing import Any

from xgrad.backends import backend_of
from xgrad.core import Function, Variable
from xgrad.functions._util import (
    check_real,
    const,
    logsumexp_parts,
    normalize_axis,
    require_float,
    xp_of,
)
from xgrad.functions.math import exp, tanh
from xgrad.functions.reduce import sum

__all__ = ["gelu", "leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "softplus"]


class Sigmoid(Function):
    name = "sigmoid"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        xp = xp_of(x)
        # two-sided: with z = e^-|x| <= 1, 1/(1+z) for x >= 0 and z/(1+z) below, so nothing
        # overflows and a tiny sigmoid(x << 0) keeps its relative precision (no 1 - y cancels).
        # The numerator max(z, [x >= 0]) is 1 or z (a where over random signs is 5x slower).
        z = xp.exp(-xp.abs(x))
        return xp.maximum(z, xp.astype(x >= 0, x.dtype)) / (1 + z)

    def backward(self, gy: Variable) -> Variable:
        return SigmoidGrad()(self._out(), gy)


class SigmoidGrad(Function):
    """gy * y * (1 - y) from sigmoid's output y, fused: one node instead of three."""

    def forward(self, y: Any, gy: Any) -> Any:
        return gy * (y - y * y)

    def backward(self, g: Variable) -> tuple:
        y, gy = self.inputs
        gy_y = g * gy * (1 - (y + y)) if y.requires_grad else None
        return gy_y, (SigmoidGrad()(y, g) if gy.requires_grad else None)


class ReLU(Function):
    name = "relu"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).maximum(x, 0.0)

    def backward(self, gy: Variable) -> Variable:
        return ReLUGrad()(self._out(), gy)


class ReLUGrad(Function):
    """gy where relu's output y > 0, else 0 (subgradient 0 at 0), fused: one node, no mask kept
    between forward and backward (y is)."""

    def forward(self, y: Any, gy: Any) -> Any:
        return backend_of(gy).masked(gy, y > 0)  # a product: 10x faster than a where

    def backward(self, g: Variable) -> tuple:
        return None, ReLUGrad()(self.inputs[0], g)  # the mask is piecewise const in y


class LeakyReLU(Function):
    name = "leaky_relu"

    def __init__(self, slope: float) -> None:
        self.slope = slope

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).where(x > 0, x, x * self.slope)

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0].data
        xp = xp_of(x)
        slope = self.slope
        return gy * const(xp.astype(x > 0, x.dtype) * (1 - slope) + slope)


_GELU_C = math.sqrt(2 / math.pi)
_GELU_A = 0.044715


class GELU(Function):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh approximation."""

    name = "gelu"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        t = xp_of(x).tanh((x + _GELU_A * (x * x * x)) * _GELU_C)
        return (t + 1) * x * 0.5

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0]
        x2 = x * x
        t = tanh((x + _GELU_A * x2 * x) * _GELU_C)
        # product rule: 0.5 (1 + t) + 0.5 x (1 - t^2) * d(inner)/dx
        inner_grad = (x2 * (3 * _GELU_A) + 1) * _GELU_C
        return gy * ((t + 1) * 0.5 + x * 0.5 * (1 - t * t) * inner_grad)


class Softplus(Function):
    name = "softplus"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        xp = xp_of(x)
        # log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): the exponent is never positive
        return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy: Variable) -> Variable:
        return gy * sigmoid(self.inputs[0])


class Softmax(Function):
    """Softmax along axes; backward from the output y: y * (gy - sum(y * gy))."""

    name = "softmax"

    def __init__(self, axis: Any) -> None:
        self.axis = axis

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        self.axes = normalize_axis(self.axis, x.ndim, None)
        _, e, s = logsumexp_parts(x, self.axes)
        return e / s

    def backward(self, gy: Variable) -> Variable:
        y = self._out()
        gx = y * gy
        return gx - y * sum(gx, axis=self.axes, keepdims=True)


class LogSoftmax(Function):
    """x - logsumexp(x) along axes; backward: gy - softmax * sum(gy)."""

    name = "log_softmax"

    def __init__(self, axis: Any) -> None:
        self.axis = axis

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        self.axes = normalize_axis(self.axis, x.ndim, None)
        m, _, s = logsumexp_parts(x, self.axes)
        return x - (m + xp_of(x).log(s))

    def backward(self, gy: Variable) -> Variable:
        y = self._out()
        return gy - exp(y) * sum(gy, axis=self.axes, keepdims=True)


def softmax(x: Any, axis: Any = -1) -> Variable:
    """exp(x) / sum(exp(x)) along ``axis`` (an int, a tuple, None: all axes), shifted by the
    maximum (stable for large inputs). A slice of only -inf, or holding +inf, gives NaN (as
    in PyTorch)."""
    return Softmax(axis)(x)


def log_softmax(x: Any, axis: Any = -1) -> Variable:
    """log(softmax(x)) along ``axis`` (an int, a tuple, None: all axes), computed as
    x - logsumexp(x): finite where softmax underflows. A slice of only -inf, or holding +inf,
    gives NaN (as in PyTorch; ``logsumexp`` itself gives -inf and inf there)."""
    return LogSoftmax(axis)(x)


def sigmoid(x: Any) -> Variable:
    """1 / (1 + e^-x), in the two-sided form (1/(1+e^-x) for x >= 0, e^x/(1+e^x) below): no
    overflow, and full relative precision for large negative x (sigmoid(-40) is 4.2e-18, so
    log(sigmoid(x)) stays finite)."""
    return Sigmoid()(x)


def relu(x: Any) -> Variable:
    """max(x, 0); the gradient at 0 is 0."""
    return ReLU()(x)


def leaky_relu(x: Any, slope: float = 0.2) -> Variable:
    """x where x > 0, else slope * x (DeZero's default slope 0.2)."""
    return LeakyReLU(check_real(slope, "leaky_relu", "slope"))(x)


def gelu(x: Any) -> Variable:
    """Gaussian error linear unit, tanh approximation (as in GPT-2 / BERT)."""
    return GELU()(x)


def softplus(x: Any) -> Variable:
    """log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|): finite for any finite x."""
    return Softplus()(x)

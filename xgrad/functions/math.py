"""Elementwise functions. Each backward rule is written with Variables, so it can itself be
differentiated (``create_graph=True``)."""

from __future__ import annotations

from numbers import Number
from typing import Any

from xgrad.core import Function, Variable
from xgrad.functions._util import require_float, xp_of
from xgrad.functions.shape import sum_to


def _unbroadcast(g: Variable, x: Variable) -> Variable | None:
    """The gradient for input ``x``: None if ``x`` needs none, summed back to its shape."""
    if not x.requires_grad:
        return None
    return g if g.shape == x.shape else sum_to(g, x.shape)


class Add(Function):
    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 + x1

    def backward(self, gy: Variable) -> tuple:
        x0, x1 = self.inputs
        return _unbroadcast(gy, x0), _unbroadcast(gy, x1)


class Sub(Function):
    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 - x1

    def backward(self, gy: Variable) -> tuple:
        x0, x1 = self.inputs
        return _unbroadcast(gy, x0), (_unbroadcast(-gy, x1) if x1.requires_grad else None)


class Mul(Function):
    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 * x1

    def backward(self, gy: Variable) -> tuple:
        x0, x1 = self.inputs
        g0 = _unbroadcast(gy * x1, x0) if x0.requires_grad else None
        g1 = _unbroadcast(gy * x0, x1) if x1.requires_grad else None
        return g0, g1


class Div(Function):
    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 / x1

    def backward(self, gy: Variable) -> tuple:
        x0, x1 = self.inputs
        g0 = _unbroadcast(gy / x1, x0) if x0.requires_grad else None
        g1 = _unbroadcast(-gy * x0 / (x1 * x1), x1) if x1.requires_grad else None
        return g0, g1


class Neg(Function):
    def forward(self, x: Any) -> Any:
        return -x

    def backward(self, gy: Variable) -> Variable:
        return -gy


class PowScalar(Function):
    """x ** c for a Python number c (the common case, one input)."""

    def __init__(self, c: Number) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x ** self.c

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0]
        c = self.c
        return gy * c * x ** (c - 1)


class Pow(Function):
    """x0 ** x1 with both operands differentiable."""

    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 ** x1

    def backward(self, gy: Variable) -> tuple:
        x0, x1 = self.inputs
        y = self.outputs[0]()
        g0 = _unbroadcast(gy * x1 * x0 ** (x1 - 1), x0) if x0.requires_grad else None
        # d/dx1 x0**x1 = log(x0) * x0**x1 (defined where x0 > 0)
        g1 = _unbroadcast(gy * y * log(x0), x1) if x1.requires_grad else None
        return g0, g1


class Square(Function):
    def forward(self, x: Any) -> Any:
        require_float("square", x)
        return x * x

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0]
        return gy * (x + x)


class Exp(Function):
    def forward(self, x: Any) -> Any:
        require_float("exp", x)
        return xp_of(x).exp(x)

    def backward(self, gy: Variable) -> Variable:
        return gy * self.outputs[0]()


class Log(Function):
    def forward(self, x: Any) -> Any:
        require_float("log", x)
        return xp_of(x).log(x)

    def backward(self, gy: Variable) -> Variable:
        return gy / self.inputs[0]


class Sin(Function):
    def forward(self, x: Any) -> Any:
        require_float("sin", x)
        return xp_of(x).sin(x)

    def backward(self, gy: Variable) -> Variable:
        return gy * cos(self.inputs[0])


class Cos(Function):
    def forward(self, x: Any) -> Any:
        require_float("cos", x)
        return xp_of(x).cos(x)

    def backward(self, gy: Variable) -> Variable:
        return -(gy * sin(self.inputs[0]))


class Tanh(Function):
    def forward(self, x: Any) -> Any:
        require_float("tanh", x)
        return xp_of(x).tanh(x)

    def backward(self, gy: Variable) -> Variable:
        y = self.outputs[0]()
        return gy - gy * y * y  # gy * (1 - y^2) without a float64 constant


class Abs(Function):
    def forward(self, x: Any) -> Any:
        return xp_of(x).abs(x)

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0]
        return gy * Variable._wrap(xp_of(x.data).sign(x.data))  # subgradient 0 at 0


def add(x0: Any, x1: Any) -> Variable:
    """x0 + x1, broadcasting."""
    return Add()(x0, x1)


def sub(x0: Any, x1: Any) -> Variable:
    """x0 - x1, broadcasting."""
    return Sub()(x0, x1)


def mul(x0: Any, x1: Any) -> Variable:
    """x0 * x1, broadcasting."""
    return Mul()(x0, x1)


def div(x0: Any, x1: Any) -> Variable:
    """x0 / x1, broadcasting."""
    return Div()(x0, x1)


def neg(x: Any) -> Variable:
    """-x."""
    return Neg()(x)


def pow(x0: Any, x1: Any) -> Variable:  # noqa: A001 - the standard's name
    """x0 ** x1; a Python number exponent is a constant."""
    if isinstance(x1, Number) and not isinstance(x1, bool):
        return PowScalar(x1)(x0)
    return Pow()(x0, x1)


def square(x: Any) -> Variable:
    """x * x."""
    return Square()(x)


def exp(x: Any) -> Variable:
    """e ** x."""
    return Exp()(x)


def log(x: Any) -> Variable:
    """Natural logarithm."""
    return Log()(x)


def sin(x: Any) -> Variable:
    """Sine."""
    return Sin()(x)


def cos(x: Any) -> Variable:
    """Cosine."""
    return Cos()(x)


def tanh(x: Any) -> Variable:
    """Hyperbolic tangent."""
    return Tanh()(x)


def abs(x: Any) -> Variable:  # noqa: A001 - the standard's name
    """|x|; the gradient at 0 is 0."""
    return Abs()(x)

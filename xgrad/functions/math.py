"""Elementwise functions. Each backward rule is written with Variables, so it can itself be
differentiated (``create_graph=True``).

Forwards stay minimal (the per-op cost is part of every model's step): binary arithmetic does no
checks at all, transcendental functions only a cached dtype check, so that integer input fails
with a message naming the function instead of silently computing in float64."""

from __future__ import annotations

from numbers import Integral, Number, Real
from typing import Any

from xgrad._array import rearray
from xgrad.backends import backend_of
from xgrad.core import Function, Variable, get_namespace, is_array
from xgrad.creation import resolve_dtype
from xgrad.functions._util import array_data, check_real, const, describe, require_float, xp_of
from xgrad.functions.shape import sum_to

__all__ = [
    "abs", "add", "astype", "clip", "cos", "div", "divide", "exp", "expm1", "log", "log1p",
    "maximum", "minimum", "mul", "multiply", "neg", "negative", "pow", "sin", "sqrt", "square",
    "sub", "subtract", "tan", "tanh", "where",
]


def _unbroadcast(g: Variable, x: Variable) -> Variable | None:
    """The gradient for input ``x``: None if ``x`` needs none, summed back to its shape."""
    if not x.requires_grad:
        return None
    shape = x._data.shape
    return g if g._data.shape == shape else sum_to(g, shape)


# --- arithmetic ---------------------------------------------------------------------------
class AsType(Function):
    """Cast to another dtype; the gradient is cast back."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x: Any) -> Any:
        return xp_of(x).astype(x, self.dtype)

    def backward(self, gy: Variable) -> Variable:
        return astype(gy, self.inputs[0].dtype)


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
        if c == 0:
            return gy * 0
        return gy * c if c == 1 else gy * c * x ** (c - 1)


class Pow(Function):
    """x0 ** x1 with both operands differentiable."""

    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 ** x1

    def backward(self, gy: Variable) -> tuple:
        x0, x1 = self.inputs
        y = self._out()
        a, b = x0.data, x1.data
        xp = xp_of(a)
        g0 = g1 = None
        if x0.requires_grad:
            # x1 * x0**(x1 - 1) is 0 * inf at x0 = x1 = 0: where x1 == 0 the derivative is 0
            # (x0**0 is constant); the base is made 1 there too, so no inf enters the graph
            flat = rearray(b == 0, b)
            if bool(xp.any(flat)):
                g0 = where(flat, 0.0, gy * x1 * where(flat, 1.0, x0) ** (x1 - 1))
            else:
                g0 = gy * x1 * x0 ** (x1 - 1)
            g0 = _unbroadcast(g0, x0)
        if x1.requires_grad:
            # d/dx1 x0**x1 = log(x0) x0**x1, 0 * -inf at x0 = 0: where x0 == 0 and x1 >= 0
            # the derivative is 0, as in PyTorch (log's argument made 1 there)
            arg = x0
            flat = rearray((a == 0) & (b >= 0), a)
            if bool(xp.any(flat)):
                arg = where(flat, 1.0, x0)
            g1 = _unbroadcast(gy * y * log(arg), x1)
        return g0, g1


class Square(Function):
    name = "square"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return x * x

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0]
        return gy * (x + x)


class Sqrt(Function):
    name = "sqrt"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).sqrt(x)

    def backward(self, gy: Variable) -> Variable:
        y = self._out()
        return gy / (y + y)


class Abs(Function):
    def forward(self, x: Any) -> Any:
        return xp_of(x).abs(x)

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0]
        return gy * const(xp_of(x.data).sign(x.data))  # subgradient 0 at 0


# --- exponentials and logarithms ----------------------------------------------------------
class Exp(Function):
    name = "exp"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).exp(x)

    def backward(self, gy: Variable) -> Variable:
        return gy * self._out()


class Expm1(Function):
    name = "expm1"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).expm1(x)

    def backward(self, gy: Variable) -> Variable:
        return gy + gy * self._out()  # d/dx (e^x - 1) = y + 1


class Log(Function):
    name = "log"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).log(x)

    def backward(self, gy: Variable) -> Variable:
        return gy / self.inputs[0]


class Log1p(Function):
    name = "log1p"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).log1p(x)

    def backward(self, gy: Variable) -> Variable:
        return gy / (self.inputs[0] + 1)


# --- trigonometric and hyperbolic ---------------------------------------------------------
class Sin(Function):
    name = "sin"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).sin(x)

    def backward(self, gy: Variable) -> Variable:
        return SinGrad()(self.inputs[0], gy)


class SinGrad(Function):
    """gy * cos(x), sin's backward fused: one node instead of two."""

    def forward(self, x: Any, gy: Any) -> Any:
        return gy * xp_of(x).cos(x)

    def backward(self, g: Variable) -> tuple:
        x, gy = self.inputs
        gx = -(g * gy * sin(x)) if x.requires_grad else None
        return gx, (SinGrad()(x, g) if gy.requires_grad else None)


class Cos(Function):
    name = "cos"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).cos(x)

    def backward(self, gy: Variable) -> Variable:
        return CosGrad()(self.inputs[0], gy)


class CosGrad(Function):
    """-gy * sin(x), cos's backward fused: one node instead of three."""

    def forward(self, x: Any, gy: Any) -> Any:
        return -(gy * xp_of(x).sin(x))

    def backward(self, g: Variable) -> tuple:
        x, gy = self.inputs
        gx = -(g * gy * cos(x)) if x.requires_grad else None
        return gx, (CosGrad()(x, g) if gy.requires_grad else None)


class Tan(Function):
    name = "tan"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).tan(x)

    def backward(self, gy: Variable) -> Variable:
        y = self._out()
        return gy + gy * y * y  # 1 / cos^2 = 1 + tan^2


class Tanh(Function):
    name = "tanh"

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).tanh(x)

    def backward(self, gy: Variable) -> Variable:
        return TanhGrad()(self._out(), gy)


class TanhGrad(Function):
    """gy * (1 - y^2) from tanh's output y, fused: one node instead of three."""

    def forward(self, y: Any, gy: Any) -> Any:
        return gy * (1 - y * y)

    def backward(self, g: Variable) -> tuple:
        y, gy = self.inputs
        gy_y = -2 * (g * gy * y) if y.requires_grad else None
        return gy_y, (TanhGrad()(y, g) if gy.requires_grad else None)


# --- comparisons and selection ------------------------------------------------------------
class Maximum(Function):
    def forward(self, x0: Any, x1: Any) -> Any:
        return xp_of(x0).maximum(x0, x1)

    def backward(self, gy: Variable) -> tuple:
        return _select_grads(self.inputs, gy, lambda a, b: a > b)


class Minimum(Function):
    def forward(self, x0: Any, x1: Any) -> Any:
        return xp_of(x0).minimum(x0, x1)

    def backward(self, gy: Variable) -> tuple:
        return _select_grads(self.inputs, gy, lambda a, b: a < b)


def _select_grads(inputs: list, gy: Variable, wins: Any) -> tuple:
    """Gradients of maximum/minimum: to the winner, split half/half on ties."""
    x0, x1 = inputs
    a, b = x0.data, x1.data
    xp = xp_of(a)
    dt = gy.dtype
    m0 = xp.astype(wins(a, b), dt) + xp.astype(a == b, dt) * 0.5
    g0 = _unbroadcast(gy * const(m0), x0) if x0.requires_grad else None
    g1 = _unbroadcast(gy * const(1 - m0), x1) if x1.requires_grad else None
    return g0, g1


class Clip(Function):
    name = "clip"

    def __init__(self, lo: float | None, hi: float | None) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x: Any) -> Any:
        require_float(None, x)
        return xp_of(x).clip(x, min=self.lo, max=self.hi)

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0].data
        xp = xp_of(x)
        inside = None
        if self.lo is not None:
            inside = x >= self.lo
        if self.hi is not None:
            inside = x <= self.hi if inside is None else xp.logical_and(inside, x <= self.hi)
        if inside is None:
            return gy
        return gy * const(xp.astype(inside, x.dtype))


class Where(Function):
    name = "where"

    def forward(self, cond: Any, x0: Any, x1: Any) -> Any:
        xp = xp_of(cond)
        if not xp.isdtype(cond.dtype, "bool"):
            raise TypeError(f"the condition must be a bool array, got dtype {cond.dtype}")
        return xp.where(cond, x0, x1)

    def backward(self, gy: Variable) -> tuple:
        cond, x0, x1 = self.inputs
        g = gy.data
        zero = const(xp_of(g).zeros((), dtype=g.dtype, device=g.device))
        g0 = _unbroadcast(where(cond, gy, zero), x0) if x0.requires_grad else None
        g1 = _unbroadcast(where(cond, zero, gy), x1) if x1.requires_grad else None
        return None, g0, g1


# --- public functions ---------------------------------------------------------------------
def astype(x: Any, dtype: Any) -> Variable:
    """``x`` cast to ``dtype`` (a dtype of x's backend, or a name such as "float32")."""
    data = array_data(x, "astype")
    if dtype is None:  # resolve_dtype reads None as "the default"; a cast needs a target
        raise TypeError("astype: dtype must be a dtype or a dtype name such as 'float32', "
                        "got None")
    try:
        dt = resolve_dtype(dtype, backend_of(data))
        xp_of(data).isdtype(dt, ("bool", "numeric"))  # a name like "nan" resolves to a non-dtype
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        raise TypeError(f"astype: dtype must be a dtype or a dtype name, got {describe(dtype)} "
                        f"({e})") from None
    if isinstance(x, Variable) and x.dtype == dt:
        return x
    return AsType(dt)(x)


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


# the array API standard's names for DeZero's sub / mul / div / neg
subtract, multiply, divide, negative = sub, mul, div, neg


def pow(x0: Any, x1: Any) -> Variable:  # noqa: A001 - the standard's name
    """x0 ** x1; a number exponent is a constant (a NumPy scalar counts as the Python
    number it holds, so float32 ** numpy.float64(2) stays float32). At x0 = 0 the gradients
    follow PyTorch: 0 for x0 where x1 == 0, 0 for x1 where x1 >= 0."""
    if isinstance(x1, Number) and not isinstance(x1, bool):
        c = int(x1) if isinstance(x1, Integral) else float(x1) if isinstance(x1, Real) else x1
        return PowScalar(c)(x0)
    return Pow()(x0, x1)


def square(x: Any) -> Variable:
    """x * x."""
    return Square()(x)


def sqrt(x: Any) -> Variable:
    """Square root (the gradient is infinite at 0)."""
    return Sqrt()(x)


def abs(x: Any) -> Variable:  # noqa: A001 - the standard's name
    """|x|; the gradient at 0 is 0."""
    return Abs()(x)


def exp(x: Any) -> Variable:
    """e ** x."""
    return Exp()(x)


def expm1(x: Any) -> Variable:
    """e ** x - 1, accurate near 0."""
    return Expm1()(x)


def log(x: Any) -> Variable:
    """Natural logarithm."""
    return Log()(x)


def log1p(x: Any) -> Variable:
    """log(1 + x), accurate near 0."""
    return Log1p()(x)


def sin(x: Any) -> Variable:
    """Sine."""
    return Sin()(x)


def cos(x: Any) -> Variable:
    """Cosine."""
    return Cos()(x)


def tan(x: Any) -> Variable:
    """Tangent."""
    return Tan()(x)


def tanh(x: Any) -> Variable:
    """Hyperbolic tangent."""
    return Tanh()(x)


def maximum(x0: Any, x1: Any) -> Variable:
    """Elementwise maximum, broadcasting. Where x0 == x1 the gradient is split half/half
    between the two inputs (the average of the one-sided derivatives, symmetric in x0, x1)."""
    return Maximum()(x0, x1)


def minimum(x0: Any, x1: Any) -> Variable:
    """Elementwise minimum, broadcasting. Where x0 == x1 the gradient is split half/half."""
    return Minimum()(x0, x1)


def clip(x: Any, min: float | None = None, max: float | None = None) -> Variable:  # noqa: A002
    """``x`` limited to [min, max] (Python numbers; None: unbounded). The gradient is 1 inside
    the closed interval (bounds included) and 0 outside."""
    if min is not None:
        min = check_real(min, "clip", "min")  # noqa: A001
    if max is not None:
        max = check_real(max, "clip", "max")  # noqa: A001
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: min {min} is larger than max {max}")
    return Clip(min, max)(x)


def where(condition: Any, x0: Any, x1: Any) -> Variable:
    """``x0`` where ``condition`` (a bool array or Variable, no gradient) is true, else ``x1``;
    broadcasting. A Python number for ``x0`` or ``x1`` takes the other operand's dtype."""
    if isinstance(x0, Number) or isinstance(x1, Number):
        # The condition is the first array the engine would see; a scalar would take bool.
        if isinstance(x0, Number) and isinstance(x1, Number):
            raise TypeError("where: x0 and x1 cannot both be Python numbers")
        ref = x1 if isinstance(x0, Number) else x0
        ref = ref.data if isinstance(ref, Variable) else ref
        if not is_array(ref):
            raise TypeError(f"where: expected a Variable or an array, got {type(ref).__name__}")
        xp = get_namespace(ref)

        def lift(v: Any) -> Any:
            if isinstance(v, Number):
                return xp.asarray(v, dtype=ref.dtype, device=ref.device)
            return v

        x0, x1 = lift(x0), lift(x1)
    return Where()(condition, x0, x1)

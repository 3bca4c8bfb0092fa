"""Differentiable functions (``import xgrad.functions as F``), one module per family; each
module's ``__all__`` is what this package re-exports.

Importing this package also gives ``Variable`` its operators and array-like methods
(``_setup_variable``, DeZero's ``setup_variable()``): the core defines the graph and the engine,
the functions build on it, and the one link back is installed here, once.
"""

from typing import Any

from xgrad.core import Variable
from xgrad.functions import activation, conv, linalg, math, nn, reduce, shape, transfer
from xgrad.functions.activation import *  # noqa: F403
from xgrad.functions.conv import *  # noqa: F403
from xgrad.functions.linalg import *  # noqa: F403
from xgrad.functions.linalg import matmul
from xgrad.functions.math import *  # noqa: F403
from xgrad.functions.math import Add, Div, Mul, Neg, Sub, abs, astype, pow
from xgrad.functions.nn import *  # noqa: F403
from xgrad.functions.reduce import *  # noqa: F403
from xgrad.functions.reduce import mean, sum
from xgrad.functions.shape import *  # noqa: F403
from xgrad.functions.shape import get_item, matrix_transpose, reshape, transpose
from xgrad.functions.transfer import *  # noqa: F403
from xgrad.functions.transfer import to

_FAMILIES = (math, activation, shape, transfer, reduce, linalg, nn, conv)
__all__ = sorted(name for family in _FAMILIES for name in family.__all__)
# (the names _setup_variable() uses are also imported by name above, for the reader and linters)


def _setup_variable() -> None:
    """Install Variable's operators and its shape, reduction and moving methods."""

    def reshape_(self: Variable, *shape: Any) -> Variable:
        """``self`` with a new shape: ``v.reshape(2, 3)`` or ``v.reshape((2, 3))``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def transpose_(self: Variable, *axes: Any) -> Variable:
        """The axes permuted (reversed when none are given): ``v.transpose(1, 0)``."""
        if not axes:
            axes = None
        elif len(axes) == 1 and (isinstance(axes[0], (tuple, list)) or axes[0] is None):
            axes = axes[0]
        return transpose(self, axes)

    def sum_(self: Variable, axis: Any = None, keepdims: bool = False) -> Variable:
        """The sum over ``axis`` (all axes by default)."""
        return sum(self, axis, keepdims)

    def mean_(self: Variable, axis: Any = None, keepdims: bool = False) -> Variable:
        """The mean over ``axis`` (all axes by default)."""
        return mean(self, axis, keepdims)

    def astype_(self: Variable, dtype: Any) -> Variable:
        """This Variable cast to ``dtype`` (differentiable: the gradient is cast back)."""
        return astype(self, dtype)

    def to_(self: Variable, target: Any) -> Variable:
        """This Variable on another backend or device (``"cpu"``, ``"cuda:1"``, ``"numpy"``, a
        Backend); differentiable: gradients flow back to the original."""
        return to(self, target)

    def to_cpu(self: Variable) -> Variable:
        """This Variable on the host (NumPy)."""
        return to(self, "cpu")

    def to_gpu(self: Variable, device: int | str = 0) -> Variable:
        """This Variable on a CUDA device (CuPy): ``v.to_gpu(1)`` or ``v.to_gpu("cuda:1")``."""
        return to(self, device if isinstance(device, str) else f"cuda:{device}")

    V = Variable
    V.reshape, V.transpose, V.sum, V.mean, V.astype = reshape_, transpose_, sum_, mean_, astype_
    V.to, V.to_cpu, V.to_gpu = to_, to_cpu, to_gpu
    V.T = property(lambda self: transpose(self), doc="The axes reversed.")
    V.mT = property(lambda self: matrix_transpose(self), doc="The last two axes swapped.")
    # The arithmetic operators build their Function directly: they are the per-op hot path.
    V.__add__ = lambda self, other: Add()(self, other)
    V.__radd__ = lambda self, other: Add()(other, self)
    V.__sub__ = lambda self, other: Sub()(self, other)
    V.__rsub__ = lambda self, other: Sub()(other, self)
    V.__mul__ = lambda self, other: Mul()(self, other)
    V.__rmul__ = lambda self, other: Mul()(other, self)
    V.__truediv__ = lambda self, other: Div()(self, other)
    V.__rtruediv__ = lambda self, other: Div()(other, self)
    V.__neg__ = lambda self: Neg()(self)
    V.__pos__ = lambda self: self
    V.__pow__ = lambda self, other: pow(self, other)
    V.__rpow__ = lambda self, other: pow(other, self)
    V.__matmul__ = lambda self, other: matmul(self, other)
    V.__rmatmul__ = lambda self, other: matmul(other, self)
    V.__abs__ = lambda self: abs(self)
    V.__getitem__ = lambda self, key: get_item(self, key)


_setup_variable()

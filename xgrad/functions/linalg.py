"""Linear algebra: matmul, linear, tensordot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xgrad.core import Function, Variable, is_float_dtype
from xgrad.functions._util import check_int, require_float, xp_of
from xgrad.functions.shape import matrix_transpose, permute_dims, reshape, sum_to

__all__ = [
    "linear", "matmul", "tensordot",
]


class MatMul(Function):
    name = "matmul"

    def forward(self, a: Any, b: Any) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("0-d operands are not allowed, use mul")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"shapes {tuple(a.shape)} and {tuple(b.shape)} do not "
                             f"align ({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
        if a.dtype != b.dtype and is_float_dtype(a) != is_float_dtype(b):
            raise TypeError(f"operands have dtypes {a.dtype} and {b.dtype}; cast the "
                            f"integer one first (F.astype(v, 'float32'))")
        return xp_of(a).matmul(a, b)

    def backward(self, gy: Variable) -> tuple:
        a, b = self.inputs
        # Treat 1-D operands as a row (a) / column (b) matrix, then undo it.
        a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
        b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
        gshape = gy.shape
        if a.ndim == 1:
            gshape = gshape + (1,) if b.ndim == 1 else gshape[:-1] + (1, gshape[-1])
            gshape = (1,) + gshape if b.ndim == 1 else gshape
        elif b.ndim == 1:
            gshape = gshape + (1,)
        g2 = reshape(gy, gshape)
        ga = gb = None
        if a.requires_grad:
            ga = reshape(sum_to(matmul(g2, matrix_transpose(b2)), a2.shape), a.shape)
        if b.requires_grad:
            gb = reshape(sum_to(matmul(matrix_transpose(a2), g2), b2.shape), b.shape)
        return ga, gb


class Linear(Function):
    """x @ W (+ b) in one node, W of shape (in, out)."""

    name = "linear"

    def forward(self, x: Any, W: Any, b: Any = None) -> Any:
        # an integer x or W would be promoted (to float64 on NumPy) without a word
        require_float(None, x)
        require_float(None, W)
        if b is not None:
            require_float(None, b)
        if W.ndim != 2 or x.ndim == 0 or x.shape[-1] != W.shape[0]:
            raise ValueError(f"x of shape {tuple(x.shape)} and W of shape "
                             f"{tuple(W.shape)} do not fit; W must be (in, out) with in = "
                             f"x.shape[-1]")
        y = xp_of(x).matmul(x, W)
        return y if b is None else y + b

    def backward(self, gy: Variable) -> tuple:
        x, W = self.inputs[0], self.inputs[1]
        b = self.inputs[2] if len(self.inputs) == 3 else None
        gb = sum_to(gy, b.shape) if b is not None and b.requires_grad else None
        xw_shape = tuple(x.shape[:-1]) + (W.shape[1],)
        if gy.shape != xw_shape:  # a bias with more dimensions broadcast x @ W further
            gy = sum_to(gy, xw_shape)
        gx = matmul(gy, matrix_transpose(W)) if x.requires_grad else None
        gW = None
        if W.requires_grad:
            # batch dimensions of x (if any) fold into the rows (counted: -1 is ambiguous
            # when in-size is 0)
            rows = 1
            for s in x.shape[:-1]:
                rows *= s
            x2 = x if x.ndim == 2 else reshape(x, (rows, W.shape[0]))
            g2 = gy if gy.ndim == 2 else reshape(gy, (rows, W.shape[1]))
            gW = matmul(matrix_transpose(x2), g2)
        return (gx, gW) if b is None else (gx, gW, gb)


def _tensordot_axes(axes: Any, a: Any, b: Any) -> tuple[list, list]:
    """(axes of a, axes of b) contracted pairwise, non-negative, checked against the shapes."""
    if not isinstance(axes, (tuple, list)):
        axes = check_int(axes, "tensordot", "axes")
        if not 0 <= axes <= min(a.ndim, b.ndim):
            raise ValueError(f"tensordot: cannot contract {axes} axes of shapes "
                             f"{tuple(a.shape)} and {tuple(b.shape)}")
        pa, pb = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        if len(axes) != 2 or not all(isinstance(p, (tuple, list)) for p in axes):
            raise TypeError(f"tensordot: axes must be an int or a pair of axis sequences, got "
                            f"{axes!r}")
        pa, pb = (list(p) for p in axes)
        if len(pa) != len(pb):
            raise ValueError(f"tensordot: axes {axes} pair up {len(pa)} and {len(pb)} axes")
        for p, nd, name in ((pa, a.ndim, "x1"), (pb, b.ndim, "x2")):
            for i, k in enumerate(p):
                k = check_int(k, "tensordot", "axes")
                if not -nd <= k < nd:
                    raise ValueError(f"tensordot: axis {k} is out of range for {name} with "
                                     f"{nd} dimensions")
                p[i] = k % nd
    for i, j in zip(pa, pb):
        if a.shape[i] != b.shape[j]:
            raise ValueError(f"tensordot: shapes {tuple(a.shape)} and {tuple(b.shape)} do not "
                             f"align on axes {pa} and {pb} ({a.shape[i]} != {b.shape[j]})")
    return pa, pb


def _place_axes(v: Variable, order: list) -> Variable:
    """Permute ``v``, whose axis k stands for axis ``order[k]`` of the target, into order."""
    perm = [order.index(i) for i in range(len(order))]
    return v if perm == sorted(perm) else permute_dims(v, perm)


class TensorDot(Function):
    def __init__(self, axes: Any) -> None:
        self.axes = axes

    def forward(self, a: Any, b: Any) -> Any:
        self.pa, self.pb = pa, pb = _tensordot_axes(self.axes, a, b)
        return xp_of(a).tensordot(a, b, axes=(pa, pb))

    def backward(self, gy: Variable) -> tuple:
        a, b = self.inputs
        pa, pb = self.pa, self.pb
        a_free = [i for i in range(a.ndim) if i not in pa]
        b_free = [i for i in range(b.ndim) if i not in pb]
        na = len(a_free)
        ga = gb = None
        # Contract gy with the other operand over its free axes; what is left are this
        # operand's free axes and its contracted ones (in the other's order): put them back.
        if a.requires_grad:
            g = tensordot(gy, b, (list(range(na, gy.ndim)), b_free))
            by_b = sorted(range(len(pa)), key=pb.__getitem__)
            ga = _place_axes(g, a_free + [pa[k] for k in by_b])
        if b.requires_grad:
            g = tensordot(a, gy, (a_free, list(range(na))))
            by_a = sorted(range(len(pa)), key=pa.__getitem__)
            gb = _place_axes(g, [pb[k] for k in by_a] + b_free)
        return ga, gb


def matmul(a: Any, b: Any) -> Variable:
    """Matrix product with the array API's rules (batched, 1-D and broadcasting)."""
    return MatMul()(a, b)


def linear(x: Any, W: Any, b: Any = None) -> Variable:
    """x @ W + b, with W of shape (in, out) (DeZero's convention) and b optional."""
    return Linear()(x, W) if b is None else Linear()(x, W, b)


def tensordot(a: Any, b: Any, axes: int | tuple[Sequence[int], Sequence[int]] = 2) -> Variable:
    """Sum of products over the last ``axes`` axes of ``a`` and the first of ``b``, or over
    the paired axes ``(axes_a, axes_b)``."""
    return TensorDot(axes)(a, b)

"""Linear algebra."""

from __future__ import annotations

from typing import Any

from xgrad.core import Function, Variable
from xgrad.functions._util import xp_of
from xgrad.functions.shape import matrix_transpose, reshape, sum_to


class MatMul(Function):
    def forward(self, a: Any, b: Any) -> Any:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: 0-d operands are not allowed, use mul")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not "
                             f"align ({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
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


def matmul(a: Any, b: Any) -> Variable:
    """Matrix product with the array API's rules (batched, 1-D and broadcasting)."""
    return MatMul()(a, b)

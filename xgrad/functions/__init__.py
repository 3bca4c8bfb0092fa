"""Differentiable functions (``import xgrad.functions as F``)."""

from xgrad.functions.linalg import matmul
from xgrad.functions.math import (
    abs, add, cos, div, exp, log, mul, neg, pow, sin, square, sub, tanh,
)
from xgrad.functions.reduce import mean, sum
from xgrad.functions.shape import (
    broadcast_to, get_item, matrix_transpose, permute_dims, reshape, sum_to, to, transpose,
)

__all__ = [
    "abs", "add", "broadcast_to", "cos", "div", "exp", "get_item", "log", "matmul",
    "matrix_transpose", "mean", "mul", "neg", "permute_dims", "pow", "reshape", "sin",
    "square", "sub", "sum", "sum_to", "tanh", "to", "transpose",
]

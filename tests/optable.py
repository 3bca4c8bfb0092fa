"""The table of xgrad.functions: one row per sample of a public function, every test reads it.

Each row (``Case``): an id, the call (Variables in, Variable or tuple out), a NumPy reference on
the host, the differentiable inputs' shapes and domain, whether it is twice differentiable. A
function's main row (the one whose id is the function's name) also carries what holds for the
function as a whole: a valid call with every parameter spelled out (``good``, for the hostile-input
sweep; else built from parameter names), whether it refuses integer and bool arrays
(``float_only``), how many float arrays it takes alone (``arrays``: f(x) or f(x, y)) and, for the
property tests, its kind and the bound of its result (``prop``).

Readers: tests/test_functions_table.py (forward, gradcheck, gradgradcheck, float32 and device on
every backend, and every public name has a main row), tests/test_bad_input.py, tests/test_leaks.py
and tests/test_properties.py. Adding a function: its rule, its name in its module's ``__all__``,
a main row here.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import xgrad
import xgrad.functions as F
from xgrad import Variable

GELU_C = np.sqrt(2 / np.pi)


@dataclass(frozen=True)
class Prop:
    """How the property tests draw a function: ``kind`` (unary: elementwise, binary:
    broadcasting, reduce: over an axis with keepdims, along: same shape along one axis), the
    bound of its result (from the operand's bound; with the reduced length for reduce/along)
    and a squashing function applied to its operand first (``pre``)."""

    kind: str
    bound: Callable
    pre: str | None = None


@dataclass
class Case:
    name: str
    fn: Callable
    ref: Callable | None  # None: no deterministic reference (dropout's mask is random)
    shapes: list
    domain: str = "real"  # real, pos, away0 (|x| >= 0.2), distinct (ties impossible), unit
    twice: bool = True
    grad: bool = True  # False: the result is a constant (accuracy)
    op: str = ""  # the public function; default: the longest public name the id starts with
    # what holds for the function as a whole, given on its main row
    good: Callable | None = None
    float_only: bool = False
    arrays: int | None = None  # default: len(shapes) where fn is the public function itself
    prop: Prop | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.op:
            self.op = max((n for n in F.__all__ if self.name == n
                           or self.name.startswith(n + "_")), key=len, default=self.name)
        if self.arrays is None and self.fn is getattr(F, self.op, None):
            self.arrays = len(self.shapes)

    def __str__(self) -> str:
        return self.name


# --- host references ----------------------------------------------------------------------
def _cumsum0(x: np.ndarray, axis: int) -> np.ndarray:
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 0)
    return np.pad(np.cumsum(x, axis=axis), pad)


def _lse(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(GELU_C * (x + 0.044715 * x ** 3)))


def softmax_ref(x: np.ndarray, axis: Any = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sce_ref(x: np.ndarray, t: list) -> np.ndarray:
    return -np.mean(np.log(softmax_ref(x, 1))[np.arange(len(t)), t])


def _bce(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-x))
    return -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))


def normalize_ref(x: np.ndarray, g: np.ndarray, b: np.ndarray, axes: Any, eps: float = 0.0
               ) -> np.ndarray:
    eps = eps or (2e-5 if axes != -1 else 1e-5)  # batch_norm's and layer_norm's defaults
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return g * (x - mu) / np.sqrt(var + eps) + b


def _seeded(f: Callable) -> Callable:
    """``f`` drawing the same random numbers at every call (gradcheck calls it many times)."""
    def call(*xs: Any) -> Any:
        xgrad.manual_seed(0)
        return f(*xs)
    return call


def pair(v: Any) -> tuple:
    return (v, v) if isinstance(v, int) else v


def _windows(x: np.ndarray, k: tuple, s: tuple, p: tuple, value: float = 0.0) -> Any:
    """Naive host loop: yields (i, j, window (N, C, KH, KW), (oh, ow)) per output pixel."""
    xp_ = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=value)
    oh = (x.shape[2] + 2 * p[0] - k[0]) // s[0] + 1
    ow = (x.shape[3] + 2 * p[1] - k[1]) // s[1] + 1
    for i in range(oh):
        for j in range(ow):
            yield i, j, xp_[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]], (oh, ow)


def conv_ref(x: np.ndarray, w: np.ndarray, b: Any, s: Any, p: Any) -> np.ndarray:
    s, p = pair(s), pair(p)
    out = None
    for i, j, win, (oh, ow) in _windows(x, w.shape[2:], s, p):
        if out is None:
            out = np.zeros((x.shape[0], w.shape[0], oh, ow))
        out[:, :, i, j] = np.tensordot(win, w, ((1, 2, 3), (1, 2, 3)))
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def deconv_ref(x: np.ndarray, w: np.ndarray, b: Any, s: Any, p: Any, outsize: Any = None
               ) -> np.ndarray:
    (sy, sx), (py, px) = pair(s), pair(p)
    n, _, h, wd = x.shape
    _, oc, kh, kw = w.shape
    oh, ow = outsize or (sy * (h - 1) + kh - 2 * py, sx * (wd - 1) + kw - 2 * px)
    full = np.zeros((n, oc, max(oh + 2 * py, sy * (h - 1) + kh),
                     max(ow + 2 * px, sx * (wd - 1) + kw)))
    for i in range(h):
        for j in range(wd):
            full[:, :, i * sy:i * sy + kh, j * sx:j * sx + kw] += np.einsum(
                "nc,cokl->nokl", x[:, :, i, j], w)
    return full[:, :, py:py + oh, px:px + ow] + (0 if b is None else b.reshape(1, -1, 1, 1))


def pool_ref(x: np.ndarray, k: Any, s: Any, p: Any, how: str) -> np.ndarray:
    k, s, p = pair(k), pair(s), pair(p)
    out = None
    for i, j, win, (oh, ow) in _windows(x, k, s, p, -np.inf if how == "max" else 0.0):
        if out is None:
            out = np.zeros(x.shape[:2] + (oh, ow))
        out[:, :, i, j] = win.max(axis=(2, 3)) if how == "max" else win.mean(axis=(2, 3))
    return out


def im2col_ref(x: np.ndarray, k: tuple, s: tuple, p: tuple) -> np.ndarray:
    rows = [[] for _ in range(x.shape[0])]
    for _, _, win, _ in _windows(x, k, s, p):
        for n in range(x.shape[0]):
            rows[n].append(win[n].ravel())
    return np.concatenate([np.array(r) for r in rows])


def col2im_ref(col: np.ndarray, shape: tuple, k: tuple, s: tuple, p: tuple) -> np.ndarray:
    """The adjoint of im2col (to_matrix=False layout (N, C, KH, KW, OH, OW)): windows added
    back into the padded image."""
    n, c, h, w = shape
    out = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]))
    for i in range(col.shape[4]):
        for j in range(col.shape[5]):
            out[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]] += col[..., i, j]
    return out[:, :, p[0]:p[0] + h, p[1]:p[1] + w]


def _reduction_call(e: Any) -> tuple:
    return (e.f(2, 3),), {"axis": 1, "keepdims": False}


def _reduction_call_correction(e: Any) -> tuple:
    return (e.f(2, 3),), {"axis": 1, "keepdims": False, "correction": 0.0}


# math.py
MATH = [
    Case("add", F.add, np.add, [(2, 3), (3,)],
         prop=Prop("binary", lambda a, b: a + b)),
    Case("add_outer", F.add, np.add, [(2, 1), (1, 3)]),
    Case("add_size1", F.add, np.add, [(2, 3), (1,)]),
    Case("sub", F.sub, np.subtract, [(2, 3), (2, 1)],
         prop=Prop("binary", lambda a, b: a + b)),
    Case("mul", F.mul, np.multiply, [(2, 3), (3,)],
         prop=Prop("binary", lambda a, b: a * b)),
    Case("div", F.div, np.divide, [(2, 3), (3,)], "pos"),
    Case("neg", F.neg, np.negative, [(2, 3)],
         prop=Prop("unary", lambda b: b)),
    Case("subtract", F.subtract, np.subtract, [(2, 3), (3,)]),
    Case("multiply", F.multiply, np.multiply, [(2, 3), (2, 1)]),
    Case("divide", F.divide, np.divide, [(2, 3), (3,)], "pos"),
    Case("negative", F.negative, np.negative, [(2, 3)]),
    Case("astype", lambda x: F.astype(x, x.dtype), lambda x: x, [(2, 3)],
         good=lambda e: ((e.f(2, 3), "int64"), {})),
    Case("pow_3", lambda x: F.pow(x, 3), lambda x: x ** 3, [(2, 3)]),
    Case("pow_half", lambda x: F.pow(x, 0.5), np.sqrt, [(2, 3)], "pos"),
    Case("pow_neg2", lambda x: x ** -2, lambda x: x ** -2.0, [(2, 3)], "pos"),
    Case("pow_0", lambda x: F.pow(x, 0), lambda x: np.ones_like(x), [(2, 3)]),
    Case("pow", F.pow, np.power, [(2, 3), (3,)], "pos"),
    Case("square", F.square, np.square, [(2, 3)],
         float_only=True,
         prop=Prop("unary", lambda b: b * b)),
    Case("sqrt", F.sqrt, np.sqrt, [(2, 3)], "pos",
         float_only=True),
    Case("abs", F.abs, np.abs, [(2, 3)], "away0"),
    Case("exp", F.exp, np.exp, [(2, 3)],
         float_only=True,
         prop=Prop("unary", math.exp, pre="tanh")),
    Case("expm1", F.expm1, np.expm1, [(2, 3)],
         float_only=True,
         prop=Prop("unary", math.exp, pre="tanh")),
    Case("log", F.log, np.log, [(2, 3)], "pos",
         float_only=True),
    Case("log1p", F.log1p, np.log1p, [(2, 3)], "pos",
         float_only=True,
         prop=Prop("unary", math.log1p, pre="square")),
    Case("sin", F.sin, np.sin, [(2, 3)],
         float_only=True,
         prop=Prop("unary", lambda b: 1.0)),
    Case("cos", F.cos, np.cos, [(2, 3)],
         float_only=True,
         prop=Prop("unary", lambda b: 1.0)),
    Case("tan", F.tan, np.tan, [(2, 3)], "unit",
         float_only=True),
    Case("tanh", F.tanh, np.tanh, [(2, 3)],
         float_only=True,
         prop=Prop("unary", lambda b: 1.0)),
    Case("maximum", F.maximum, np.maximum, [(2, 3), (3,)], "distinct"),
    Case("minimum", F.minimum, np.minimum, [(2, 3), (2, 1)], "distinct"),
    Case("maximum_scalar", lambda x: F.maximum(x, 0.0), lambda x: np.maximum(x, 0.0),
         [(2, 3)], "away0"),
    Case("clip", lambda x: F.clip(x, -1.0, 1.0), lambda x: np.clip(x, -1, 1), [(3, 4)],
         good=lambda e: ((e.f(2, 3),), {"min": -0.5, "max": 0.5}),
         float_only=True),
    Case("clip_lo", lambda x: F.clip(x, min=0.5), lambda x: np.clip(x, 0.5, None), [(3, 4)]),
    Case("where", lambda a, b: F.where(a.data > 0, a, b),
         lambda a, b: np.where(a > 0, a, b), [(2, 3), (3,)], "away0",
         good=lambda e: ((e.b(2, 3), e.f(2, 3), e.f(2, 3)), {})),
    Case("where_scalar", lambda a: F.where(a.data > 0, a, 0.5),
         lambda a: np.where(a > 0, a, 0.5), [(2, 3)], "away0"),
]

# activation.py
ACTIVATION = [
    Case("sigmoid", F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), [(2, 3)],
         float_only=True,
         prop=Prop("unary", lambda b: 1.0)),
    Case("relu", F.relu, lambda x: np.maximum(x, 0), [(2, 3)], "away0",
         float_only=True),
    Case("leaky_relu", F.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x), [(2, 3)], "away0",
         good=lambda e: ((e.f(2, 3),), {"slope": 0.2}),
         float_only=True),
    Case("leaky_relu_01", lambda x: F.leaky_relu(x, 0.01),
         lambda x: np.where(x > 0, x, 0.01 * x), [(2, 3)], "away0"),
    Case("gelu", F.gelu, _gelu, [(2, 3)],
         float_only=True,
         prop=Prop("unary", lambda b: b)),
    Case("softplus", F.softplus, lambda x: np.log1p(np.exp(x)), [(2, 3)],
         float_only=True,
         prop=Prop("unary", lambda b: b + 1.0)),
    Case("softmax", F.softmax, softmax_ref, [(3, 4)],
         good=lambda e: ((e.f(2, 3),), {"axis": -1}),
         float_only=True,
         prop=Prop("along", lambda b, n: 1.0)),
    Case("softmax_axis0", lambda x: F.softmax(x, axis=0), lambda x: softmax_ref(x, 0), [(3, 4)]),
    Case("log_softmax", F.log_softmax, lambda x: np.log(softmax_ref(x)), [(3, 4)],
         good=lambda e: ((e.f(2, 3),), {"axis": -1}),
         float_only=True,
         prop=Prop("along", lambda b, n: 2 * b + math.log(n))),
    Case("log_softmax_all", lambda x: F.log_softmax(x, axis=None),
         lambda x: np.log(softmax_ref(x, None)), [(2, 3)]),
]

# shape.py
SHAPE = [
    Case("reshape", lambda x: F.reshape(x, (3, 2)), lambda x: x.reshape(3, 2), [(2, 3)],
         good=lambda e: ((e.f(2, 3), (3, 2)), {})),
    Case("reshape_infer", lambda x: x.reshape(-1), lambda x: x.reshape(-1), [(2, 3)]),
    Case("permute_dims", lambda x: F.permute_dims(x, (2, 0, 1)),
         lambda x: x.transpose(2, 0, 1), [(2, 3, 4)],
         good=lambda e: ((e.f(2, 3), (1, 0)), {})),
    Case("permute_dims_neg", lambda x: F.permute_dims(x, (-1, 0, 1)),
         lambda x: x.transpose(2, 0, 1), [(2, 3, 4)]),
    Case("transpose", F.transpose, np.transpose, [(2, 3, 4)],
         good=lambda e: ((e.f(2, 3), (1, 0)), {})),
    Case("matrix_transpose", F.matrix_transpose, lambda x: np.swapaxes(x, -1, -2), [(2, 3, 4)]),
    Case("expand_dims", lambda x: F.expand_dims(x, 1), lambda x: x[:, None], [(2, 3)],
         good=lambda e: ((e.f(2, 3),), {"axis": 0}),
         arrays=1),
    Case("expand_dims_tuple", lambda x: F.expand_dims(x, (0, -1)),
         lambda x: x[None, :, :, None], [(2, 3)]),
    Case("squeeze", lambda x: F.squeeze(x, 1), lambda x: x[:, 0], [(2, 1, 3)],
         good=lambda e: ((e.f(1, 3),), {"axis": 0}),
         arrays=1),
    Case("squeeze_all", F.squeeze, np.squeeze, [(1, 2, 1, 3)]),
    Case("broadcast_to", lambda x: F.broadcast_to(x, (2, 3)),
         lambda x: np.broadcast_to(x, (2, 3)), [(3,)],
         good=lambda e: ((e.f(1, 3), (2, 3)), {})),
    Case("broadcast_to_col", lambda x: F.broadcast_to(x, (4, 2, 3)),
         lambda x: np.broadcast_to(x, (4, 2, 3)), [(2, 1)]),
    Case("sum_to", lambda x: F.sum_to(x, (3,)), lambda x: x.sum(0), [(2, 3)],
         good=lambda e: ((e.f(2, 3), (1, 3)), {})),
    Case("sum_to_keep", lambda x: F.sum_to(x, (2, 1)),
         lambda x: x.sum(1, keepdims=True), [(2, 3)]),
    Case("concat", lambda a, b, c: F.concat([a, b, c], axis=1),
         lambda a, b, c: np.concatenate([a, b, c], 1), [(2, 1), (2, 3), (2, 2)],
         good=lambda e: (([e.f(2, 3), e.f(2, 3)],), {"axis": 0})),
    Case("concat_neg_axis", lambda a, b: F.concat((a, b), axis=-2),
         lambda a, b: np.concatenate([a, b], -2), [(2, 1, 3), (2, 2, 3)]),
    Case("concat_flat", lambda a, b: F.concat([a, b], axis=None),
         lambda a, b: np.concatenate([a.ravel(), b.ravel()]), [(2, 3), (4,)]),
    Case("stack", lambda a, b: F.stack([a, b], axis=1),
         lambda a, b: np.stack([a, b], 1), [(2, 3), (2, 3)],
         good=lambda e: (([e.f(2, 3), e.f(2, 3)],), {"axis": 0})),
    Case("unstack", lambda x: F.unstack(x, axis=1),
         lambda x: tuple(x[:, i] for i in range(3)), [(2, 3, 2)],
         good=lambda e: ((e.f(2, 3),), {"axis": 0}),
         arrays=1),
    Case("split", lambda x: F.split(x, 3, axis=1),
         lambda x: tuple(np.split(x, 3, axis=1)), [(2, 6)],
         good=lambda e: ((e.f(2, 4), 2), {"axis": 1})),
    Case("split_points", lambda x: F.split(x, [1, 4]),
         lambda x: tuple(np.split(x, [1, 4])), [(5, 2)]),
    Case("flip", lambda x: F.flip(x, axis=1), lambda x: np.flip(x, 1), [(2, 3)],
         good=lambda e: ((e.f(2, 3),), {"axis": 1}),
         arrays=1),
    Case("flip_all", F.flip, np.flip, [(2, 3, 2)]),
    Case("get_item_repeat", lambda x: x[[0, 0, 1]], lambda x: x[[0, 0, 1]], [(2, 3)]),
    Case("get_item_slices", lambda x: x[1:, ::-2], lambda x: x[1:, ::-2], [(3, 5)]),
    Case("get_item_int", lambda x: x[1], lambda x: x[1], [(3, 4)]),
    Case("get_item_ellipsis", lambda x: x[..., 0], lambda x: x[..., 0], [(2, 3, 4)]),
    Case("get_item_newaxis", lambda x: x[None, 1:], lambda x: x[None, 1:], [(3, 2)]),
    Case("get_item_mask", lambda x: x[x.data > 0], lambda x: x[x > 0], [(3, 4)], "away0"),
    Case("get_item", lambda x: F.get_item(x, (slice(None), [2, 0, 2])),
         lambda x: x[:, [2, 0, 2]], [(2, 3)],
         good=lambda e: ((e.f(2, 3), 1), {})),
    Case("take", lambda x: F.take(x, [[2, 0], [2, 1]], axis=1),
         lambda x: np.take(x, [[2, 0], [2, 1]], axis=1), [(2, 3, 2)],
         good=lambda e: ((e.f(2, 3), e.i(2)), {"axis": 1})),
    Case("take_1d", lambda x: F.take(x, [3, 3, 0]), lambda x: x[[3, 3, 0]], [(4,)]),
]

# transfer.py
TRANSFER = [
    Case("to", lambda x: F.to(x, x.device), lambda x: x, [(2, 3)],
         good=lambda e: ((e.f(2, 3), "numpy"), {})),
]

# reduce.py
REDUCE = [
    Case("sum", F.sum, np.sum, [(2, 3)],
         good=_reduction_call,
         prop=Prop("reduce", lambda b, n: b * n)),
    Case("sum_axis", lambda x: F.sum(x, axis=1), lambda x: x.sum(1), [(2, 3)]),
    Case("sum_tuple_keepdims", lambda x: F.sum(x, (0, 2), keepdims=True),
         lambda x: x.sum((0, 2), keepdims=True), [(2, 3, 4)]),
    Case("mean", F.mean, np.mean, [(2, 3)],
         good=_reduction_call,
         float_only=True,
         prop=Prop("reduce", lambda b, n: b)),
    Case("mean_axis_neg", lambda x: F.mean(x, -1, keepdims=True),
         lambda x: x.mean(-1, keepdims=True), [(2, 3)]),
    Case("max", F.max, np.max, [(2, 3)], "distinct",
         good=_reduction_call),
    Case("max_axis_keepdims", lambda x: F.max(x, 1, keepdims=True),
         lambda x: x.max(1, keepdims=True), [(2, 3, 2)], "distinct"),
    Case("min", lambda x: F.min(x, axis=0), lambda x: x.min(0), [(3, 2)], "distinct",
         good=_reduction_call,
         arrays=1),
    Case("min_tuple", lambda x: F.min(x, axis=(0, 2)), lambda x: x.min((0, 2)), [(2, 3, 2)],
         "distinct"),
    Case("prod", F.prod, np.prod, [(2, 3)],
         good=_reduction_call,
         float_only=True,
         prop=Prop("reduce", lambda b, n: b ** n)),
    Case("prod_axis", lambda x: F.prod(x, 1, keepdims=True),
         lambda x: x.prod(1, keepdims=True), [(3, 4)]),
    Case("logsumexp", F.logsumexp, _lse, [(2, 3)],
         good=_reduction_call,
         float_only=True,
         prop=Prop("reduce", lambda b, n: b + math.log(n))),
    Case("logsumexp_axis", lambda x: F.logsumexp(x, axis=1, keepdims=True),
         lambda x: _lse(x, 1, True), [(2, 3, 2)]),
    Case("var", F.var, np.var, [(2, 3)],
         good=_reduction_call_correction,
         float_only=True,
         prop=Prop("reduce", lambda b, n: b * b)),
    Case("var_axis_correction", lambda x: F.var(x, axis=1, correction=1),
         lambda x: x.var(1, ddof=1), [(3, 4)]),
    Case("std", lambda x: F.std(x, axis=(0, 1), keepdims=True),
         lambda x: x.std((0, 1), keepdims=True), [(2, 3, 2)],
         good=_reduction_call_correction,
         float_only=True,
         arrays=1),
    Case("std_correction", lambda x: F.std(x, axis=0, correction=1),
         lambda x: x.std(0, ddof=1), [(4, 3)]),
    Case("cumulative_sum", lambda x: F.cumulative_sum(x, axis=1),
         lambda x: np.cumsum(x, 1), [(2, 4)],
         good=lambda e: ((e.f(2, 3),), {"axis": 1, "include_initial": False}),
         prop=Prop("along", lambda b, n: b * n),
         arrays=1),
    Case("cumulative_sum_1d_initial", lambda x: F.cumulative_sum(x, include_initial=True),
         lambda x: _cumsum0(x, 0), [(5,)]),
    Case("cumulative_sum_initial_axis0", lambda x: F.cumulative_sum(x, 0, include_initial=True),
         lambda x: _cumsum0(x, 0), [(3, 2)]),
]

# linalg.py
LINALG = [
    Case("matmul", F.matmul, np.matmul, [(2, 3), (3, 4)],
         good=lambda e: ((e.f(2, 3), e.f(3, 2)), {})),
    Case("matmul_batched", F.matmul, np.matmul, [(2, 2, 3), (3, 4)]),
    Case("matmul_broadcast", F.matmul, np.matmul, [(2, 1, 2, 3), (3, 3, 4)]),
    Case("matmul_vec_vec", F.matmul, np.matmul, [(3,), (3,)]),
    Case("matmul_vec_mat", F.matmul, np.matmul, [(3,), (3, 4)]),
    Case("matmul_mat_vec", F.matmul, np.matmul, [(2, 3), (3,)]),
    Case("matmul_batch_vec", F.matmul, np.matmul, [(2, 2, 3), (3,)]),
    Case("matmul_vec_batch", F.matmul, np.matmul, [(3,), (2, 3, 4)]),
    Case("matmul_operator", lambda a, b: a @ b, np.matmul, [(2, 3), (3, 2)]),
    Case("linear", F.linear, lambda x, W, b: x @ W + b, [(4, 3), (3, 2), (2,)],
         good=lambda e: ((e.f(2, 3), e.f(3, 2), e.f(2)), {})),
    Case("linear_no_bias", F.linear, np.matmul, [(4, 3), (3, 2)]),
    Case("linear_batched", F.linear, lambda x, W, b: x @ W + b, [(2, 4, 3), (3, 2), (2,)]),
    Case("linear_vector", F.linear, lambda x, W, b: x @ W + b, [(3,), (3, 2), (2,)]),
    Case("tensordot", F.tensordot, np.tensordot, [(2, 3, 4), (3, 4, 5)],
         good=lambda e: ((e.f(2, 3), e.f(3, 2)), {"axes": 1})),
    Case("tensordot_1", lambda a, b: F.tensordot(a, b, 1),
         lambda a, b: np.tensordot(a, b, 1), [(2, 3), (3, 4, 2)]),
    Case("tensordot_outer", lambda a, b: F.tensordot(a, b, 0),
         lambda a, b: np.tensordot(a, b, 0), [(2,), (3,)]),
    Case("tensordot_pairs", lambda a, b: F.tensordot(a, b, ([0, 2], [2, -3])),
         lambda a, b: np.tensordot(a, b, ([0, 2], [2, 0])), [(4, 3, 5), (5, 2, 4)]),
]

# nn.py
NN = [
    Case("softmax_cross_entropy", lambda x: F.softmax_cross_entropy(x, [1, 0, 3]),
         lambda x: sce_ref(x, [1, 0, 3]), [(3, 4)],
         good=lambda e: ((e.f(2, 3), e.i(2)), {"ignore_label": -1})),
    Case("softmax_cross_entropy_ignore", lambda x: F.softmax_cross_entropy(x, [1, -1, 3], -1),
         lambda x: sce_ref(x[[0, 2]], [1, 3]), [(3, 4)]),
    Case("sigmoid_cross_entropy", lambda x: F.sigmoid_cross_entropy(x, [[1, 0, 0], [0, 1, 1]]),
         lambda x: _bce(x, np.array([[1, 0, 0], [0, 1, 1]])), [(2, 3)],
         good=lambda e: ((e.f(2, 3), e.i(2, 3)), {})),
    Case("sigmoid_cross_entropy_soft", F.sigmoid_cross_entropy, _bce, [(2, 3), (2, 3)], "unit"),
    Case("mean_squared_error", F.mean_squared_error, lambda a, b: np.mean((a - b) ** 2),
         [(2, 3), (2, 3)]),
    Case("accuracy", lambda y: F.accuracy(y, [1, 0, 2]),
         lambda y: np.mean(y.argmax(1) == [1, 0, 2]), [(3, 3)], "distinct", grad=False,
         good=lambda e: ((e.f(2, 3), e.i(2)), {})),
    Case("dropout", _seeded(lambda x: F.dropout(x, 0.5)), None, [(3, 4)],
         good=lambda e: ((e.f(2, 3),), {"dropout_ratio": 0.5}),
         float_only=True,
         arrays=1),
    Case("batch_norm", F.batch_norm, lambda x, g, b: normalize_ref(x, g, b, 0), [(4, 3), (3,), (3,)],
         good=(lambda e: ((e.f(4, 3), e.f(3), e.f(3)),
                               {"running_mean": e.f(3), "running_var": e.f(3, fill=1.0),
                                "decay": 0.9, "eps": 2e-5}))),
    Case("batch_norm_4d", F.batch_norm,
         lambda x, g, b: normalize_ref(x, g.reshape(1, 2, 1, 1), b.reshape(1, 2, 1, 1), (0, 2, 3)),
         [(3, 2, 2, 2), (2,), (2,)]),
    Case("layer_norm", F.layer_norm, lambda x, g, b: normalize_ref(x, g, b, -1), [(2, 3, 4), (4,), (4,)],
         good=lambda e: ((e.f(2, 3), e.f(3), e.f(3)), {"eps": 1e-5})),
    Case("embed_id", lambda W: F.embed_id([[0, 2, 2], [4, 2, 0]], W),
         lambda W: W[[[0, 2, 2], [4, 2, 0]]], [(5, 3)],
         good=lambda e: ((e.i(2), e.f(5, 3)), {})),
]

# conv.py
CONV = [
    Case("conv2d", F.conv2d, lambda x, W, b: conv_ref(x, W, b, 1, 0), [(2, 3, 5, 5), (4, 3, 3, 3), (4,)],
         good=(lambda e: ((e.f(1, 3, 5, 5), e.f(2, 3, 3, 3)),
                             {"b": e.f(2), "stride": 1, "pad": 0}))),
    Case("conv2d_stride_pad", lambda x, W: F.conv2d(x, W, stride=(2, 1), pad=(0, 1)),
         lambda x, W: conv_ref(x, W, None, (2, 1), (0, 1)), [(1, 2, 5, 5), (3, 2, 3, 2)]),
    Case("deconv2d", F.deconv2d, lambda x, W, b: deconv_ref(x, W, b, 1, 0),
         [(2, 3, 3, 3), (3, 2, 3, 3), (2,)],
         good=(lambda e: ((e.f(1, 2, 3, 3), e.f(2, 3, 3, 3)),
                               {"b": e.f(3), "stride": 1, "pad": 0, "outsize": (5, 5)}))),
    Case("deconv2d_stride_pad", lambda x, W: F.deconv2d(x, W, stride=2, pad=1, outsize=(6, 6)),
         lambda x, W: deconv_ref(x, W, None, 2, 1, (6, 6)), [(1, 2, 3, 3), (2, 3, 3, 3)]),
    Case("im2col", lambda x: F.im2col(x, 3, 2, 1), lambda x: im2col_ref(x, (3, 3), (2, 2), (1, 1)),
         [(2, 3, 5, 5)],
         good=lambda e: ((e.f(1, 1, 4, 4), 2), {"stride": 2, "pad": 0, "to_matrix": True})),
    Case("col2im", lambda c: F.col2im(c, (2, 3, 5, 5), 3, 2, 1, to_matrix=False),
         lambda c: col2im_ref(c, (2, 3, 5, 5), (3, 3), (2, 2), (1, 1)), [(2, 3, 3, 3, 3, 3)],
         good=(lambda e: ((Variable(F.im2col(e.f(1, 1, 4, 4), 2, 2).data), (1, 1, 4, 4), 2),
                            {"stride": 2, "pad": 0, "to_matrix": True}))),
    Case("max_pooling", lambda x: F.max_pooling(x, 2, 2), lambda x: pool_ref(x, 2, 2, 0, "max"),
         [(2, 3, 4, 4)], "distinct",
         good=lambda e: ((e.f(1, 1, 4, 4), 2), {"stride": 2, "pad": 0})),
    Case("max_pooling_pad", lambda x: F.max_pooling(x, 3, 2, 1),
         lambda x: pool_ref(x, 3, 2, 1, "max"), [(1, 2, 5, 5)], "distinct"),
    Case("average_pooling", lambda x: F.average_pooling(x, 2, 2),
         lambda x: pool_ref(x, 2, 2, 0, "mean"), [(2, 3, 4, 4)],
         good=lambda e: ((e.f(1, 1, 4, 4), 2), {"stride": 2, "pad": 0})),
]

CASES = MATH + ACTIVATION + SHAPE + TRANSFER + REDUCE + LINALG + NN + CONV
# a function's main row: the one named after it
OPS: dict[str, Case] = {c.name: c for c in CASES if c.name == c.op}


def host_inputs(case: Case) -> list:
    """Deterministic float64 host inputs for ``case`` in its domain."""
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    sizes = [int(np.prod(s)) for s in case.shapes]
    if case.domain == "distinct":  # values 0.3 apart: no ties, no kink within eps
        pool = (rng.permutation(sum(sizes)) - sum(sizes) / 2) * 0.3
        parts = np.split(pool, np.cumsum(sizes)[:-1])
        return [p.reshape(s) for p, s in zip(parts, case.shapes)]
    out = []
    for s in case.shapes:
        if case.domain == "pos":
            out.append(rng.uniform(0.5, 2.0, s))
        elif case.domain == "away0":
            out.append(rng.choice([-1.0, 1.0], s) * rng.uniform(0.2, 2.0, s))
        elif case.domain == "unit":
            out.append(rng.uniform(-0.9, 0.9, s))
        else:
            out.append(rng.uniform(-2.0, 2.0, s))
    return out

"""One table drives the common checks of every function in math, shape, reduce and linalg.

Each row: a name, the function (Variables in, Variable or tuple out), a NumPy reference on the
host, the input shapes, the input domain and whether it is twice differentiable. Every row runs on
every backend: forward against the reference, gradcheck, gradgradcheck, and float32 in -> float32
out, float32 gradients (first and second order), everything on the backend's device. Special
values, ties, stability and error messages live in tests/test_functions_{math,shape,reduce,
linalg}.py.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import xgrad.functions as F
from xgrad import Variable
from xgrad.testing import assert_close, gradcheck, gradgradcheck, to_host

GELU_C = np.sqrt(2 / np.pi)


@dataclass
class Case:
    name: str
    fn: Callable
    ref: Callable
    shapes: list
    domain: str = "real"  # real, pos, away0 (|x| >= 0.2), distinct (ties impossible), unit
    twice: bool = True

    def __str__(self) -> str:
        return self.name


def _cumsum0(x: np.ndarray, axis: int) -> np.ndarray:
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 0)
    return np.pad(np.cumsum(x, axis=axis), pad)


def _lse(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(GELU_C * (x + 0.044715 * x ** 3)))


MATH = [
    Case("add", F.add, np.add, [(2, 3), (3,)]),
    Case("add_outer", F.add, np.add, [(2, 1), (1, 3)]),
    Case("add_size1", F.add, np.add, [(2, 3), (1,)]),
    Case("sub", F.sub, np.subtract, [(2, 3), (2, 1)]),
    Case("mul", F.mul, np.multiply, [(2, 3), (3,)]),
    Case("div", F.div, np.divide, [(2, 3), (3,)], "pos"),
    Case("neg", F.neg, np.negative, [(2, 3)]),
    Case("pow_3", lambda x: F.pow(x, 3), lambda x: x ** 3, [(2, 3)]),
    Case("pow_half", lambda x: F.pow(x, 0.5), np.sqrt, [(2, 3)], "pos"),
    Case("pow_neg2", lambda x: x ** -2, lambda x: x ** -2.0, [(2, 3)], "pos"),
    Case("pow_0", lambda x: F.pow(x, 0), lambda x: np.ones_like(x), [(2, 3)]),
    Case("pow_tensor", F.pow, np.power, [(2, 3), (3,)], "pos"),
    Case("square", F.square, np.square, [(2, 3)]),
    Case("sqrt", F.sqrt, np.sqrt, [(2, 3)], "pos"),
    Case("abs", F.abs, np.abs, [(2, 3)], "away0"),
    Case("exp", F.exp, np.exp, [(2, 3)]),
    Case("expm1", F.expm1, np.expm1, [(2, 3)]),
    Case("log", F.log, np.log, [(2, 3)], "pos"),
    Case("log1p", F.log1p, np.log1p, [(2, 3)], "pos"),
    Case("sin", F.sin, np.sin, [(2, 3)]),
    Case("cos", F.cos, np.cos, [(2, 3)]),
    Case("tan", F.tan, np.tan, [(2, 3)], "unit"),
    Case("tanh", F.tanh, np.tanh, [(2, 3)]),
    Case("sigmoid", F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), [(2, 3)]),
    Case("relu", F.relu, lambda x: np.maximum(x, 0), [(2, 3)], "away0"),
    Case("leaky_relu", F.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x), [(2, 3)], "away0"),
    Case("leaky_relu_01", lambda x: F.leaky_relu(x, 0.01),
         lambda x: np.where(x > 0, x, 0.01 * x), [(2, 3)], "away0"),
    Case("gelu", F.gelu, _gelu, [(2, 3)]),
    Case("softplus", F.softplus, lambda x: np.log1p(np.exp(x)), [(2, 3)]),
    Case("maximum", F.maximum, np.maximum, [(2, 3), (3,)], "distinct"),
    Case("minimum", F.minimum, np.minimum, [(2, 3), (2, 1)], "distinct"),
    Case("maximum_scalar", lambda x: F.maximum(x, 0.0), lambda x: np.maximum(x, 0.0),
         [(2, 3)], "away0"),
    Case("clip", lambda x: F.clip(x, -1.0, 1.0), lambda x: np.clip(x, -1, 1), [(3, 4)]),
    Case("clip_lo", lambda x: F.clip(x, min=0.5), lambda x: np.clip(x, 0.5, None), [(3, 4)]),
    Case("where", lambda a, b: F.where(a.data > 0, a, b),
         lambda a, b: np.where(a > 0, a, b), [(2, 3), (3,)], "away0"),
    Case("where_scalar", lambda a: F.where(a.data > 0, a, 0.5),
         lambda a: np.where(a > 0, a, 0.5), [(2, 3)], "away0"),
]

SHAPE = [
    Case("reshape", lambda x: F.reshape(x, (3, 2)), lambda x: x.reshape(3, 2), [(2, 3)]),
    Case("reshape_infer", lambda x: x.reshape(-1), lambda x: x.reshape(-1), [(2, 3)]),
    Case("permute_dims", lambda x: F.permute_dims(x, (2, 0, 1)),
         lambda x: x.transpose(2, 0, 1), [(2, 3, 4)]),
    Case("permute_dims_neg", lambda x: F.permute_dims(x, (-1, 0, 1)),
         lambda x: x.transpose(2, 0, 1), [(2, 3, 4)]),
    Case("transpose", F.transpose, np.transpose, [(2, 3, 4)]),
    Case("matrix_transpose", F.matrix_transpose, lambda x: np.swapaxes(x, -1, -2), [(2, 3, 4)]),
    Case("expand_dims", lambda x: F.expand_dims(x, 1), lambda x: x[:, None], [(2, 3)]),
    Case("expand_dims_tuple", lambda x: F.expand_dims(x, (0, -1)),
         lambda x: x[None, :, :, None], [(2, 3)]),
    Case("squeeze", lambda x: F.squeeze(x, 1), lambda x: x[:, 0], [(2, 1, 3)]),
    Case("squeeze_all", F.squeeze, np.squeeze, [(1, 2, 1, 3)]),
    Case("broadcast_to", lambda x: F.broadcast_to(x, (2, 3)),
         lambda x: np.broadcast_to(x, (2, 3)), [(3,)]),
    Case("broadcast_to_col", lambda x: F.broadcast_to(x, (4, 2, 3)),
         lambda x: np.broadcast_to(x, (4, 2, 3)), [(2, 1)]),
    Case("sum_to", lambda x: F.sum_to(x, (3,)), lambda x: x.sum(0), [(2, 3)]),
    Case("sum_to_keep", lambda x: F.sum_to(x, (2, 1)),
         lambda x: x.sum(1, keepdims=True), [(2, 3)]),
    Case("concat", lambda a, b, c: F.concat([a, b, c], axis=1),
         lambda a, b, c: np.concatenate([a, b, c], 1), [(2, 1), (2, 3), (2, 2)]),
    Case("concat_neg_axis", lambda a, b: F.concat((a, b), axis=-2),
         lambda a, b: np.concatenate([a, b], -2), [(2, 1, 3), (2, 2, 3)]),
    Case("concat_flat", lambda a, b: F.concat([a, b], axis=None),
         lambda a, b: np.concatenate([a.ravel(), b.ravel()]), [(2, 3), (4,)]),
    Case("stack", lambda a, b: F.stack([a, b], axis=1),
         lambda a, b: np.stack([a, b], 1), [(2, 3), (2, 3)]),
    Case("unstack", lambda x: F.unstack(x, axis=1),
         lambda x: tuple(x[:, i] for i in range(3)), [(2, 3, 2)]),
    Case("split_sections", lambda x: F.split(x, 3, axis=1),
         lambda x: tuple(np.split(x, 3, axis=1)), [(2, 6)]),
    Case("split_points", lambda x: F.split(x, [1, 4]),
         lambda x: tuple(np.split(x, [1, 4])), [(5, 2)]),
    Case("flip", lambda x: F.flip(x, axis=1), lambda x: np.flip(x, 1), [(2, 3)]),
    Case("flip_all", F.flip, np.flip, [(2, 3, 2)]),
    Case("get_item_repeat", lambda x: x[[0, 0, 1]], lambda x: x[[0, 0, 1]], [(2, 3)]),
    Case("get_item_slices", lambda x: x[1:, ::-2], lambda x: x[1:, ::-2], [(3, 5)]),
    Case("get_item_int", lambda x: x[1], lambda x: x[1], [(3, 4)]),
    Case("get_item_ellipsis", lambda x: x[..., 0], lambda x: x[..., 0], [(2, 3, 4)]),
    Case("get_item_newaxis", lambda x: x[None, 1:], lambda x: x[None, 1:], [(3, 2)]),
    Case("get_item_mask", lambda x: x[x.data > 0], lambda x: x[x > 0], [(3, 4)], "away0"),
    Case("get_item_columns", lambda x: F.get_item(x, (slice(None), [2, 0, 2])),
         lambda x: x[:, [2, 0, 2]], [(2, 3)]),
    Case("take", lambda x: F.take(x, [[2, 0], [2, 1]], axis=1),
         lambda x: np.take(x, [[2, 0], [2, 1]], axis=1), [(2, 3, 2)]),
    Case("take_1d", lambda x: F.take(x, [3, 3, 0]), lambda x: x[[3, 3, 0]], [(4,)]),
]

REDUCE = [
    Case("sum", F.sum, np.sum, [(2, 3)]),
    Case("sum_axis", lambda x: F.sum(x, axis=1), lambda x: x.sum(1), [(2, 3)]),
    Case("sum_tuple_keepdims", lambda x: F.sum(x, (0, 2), keepdims=True),
         lambda x: x.sum((0, 2), keepdims=True), [(2, 3, 4)]),
    Case("mean", F.mean, np.mean, [(2, 3)]),
    Case("mean_axis_neg", lambda x: F.mean(x, -1, keepdims=True),
         lambda x: x.mean(-1, keepdims=True), [(2, 3)]),
    Case("max", F.max, np.max, [(2, 3)], "distinct"),
    Case("max_axis_keepdims", lambda x: F.max(x, 1, keepdims=True),
         lambda x: x.max(1, keepdims=True), [(2, 3, 2)], "distinct"),
    Case("min", lambda x: F.min(x, axis=0), lambda x: x.min(0), [(3, 2)], "distinct"),
    Case("min_tuple", lambda x: F.min(x, axis=(0, 2)), lambda x: x.min((0, 2)), [(2, 3, 2)],
         "distinct"),
    Case("prod", F.prod, np.prod, [(2, 3)]),
    Case("prod_axis", lambda x: F.prod(x, 1, keepdims=True),
         lambda x: x.prod(1, keepdims=True), [(3, 4)]),
    Case("logsumexp", F.logsumexp, _lse, [(2, 3)]),
    Case("logsumexp_axis", lambda x: F.logsumexp(x, axis=1, keepdims=True),
         lambda x: _lse(x, 1, True), [(2, 3, 2)]),
    Case("var", F.var, np.var, [(2, 3)]),
    Case("var_axis_correction", lambda x: F.var(x, axis=1, correction=1),
         lambda x: x.var(1, ddof=1), [(3, 4)]),
    Case("std", lambda x: F.std(x, axis=(0, 1), keepdims=True),
         lambda x: x.std((0, 1), keepdims=True), [(2, 3, 2)]),
    Case("std_correction", lambda x: F.std(x, axis=0, correction=1),
         lambda x: x.std(0, ddof=1), [(4, 3)]),
    Case("cumulative_sum", lambda x: F.cumulative_sum(x, axis=1),
         lambda x: np.cumsum(x, 1), [(2, 4)]),
    Case("cumulative_sum_1d_initial", lambda x: F.cumulative_sum(x, include_initial=True),
         lambda x: _cumsum0(x, 0), [(5,)]),
    Case("cumulative_sum_initial_axis0", lambda x: F.cumulative_sum(x, 0, include_initial=True),
         lambda x: _cumsum0(x, 0), [(3, 2)]),
]

LINALG = [
    Case("matmul", F.matmul, np.matmul, [(2, 3), (3, 4)]),
    Case("matmul_batched", F.matmul, np.matmul, [(2, 2, 3), (3, 4)]),
    Case("matmul_broadcast", F.matmul, np.matmul, [(2, 1, 2, 3), (3, 3, 4)]),
    Case("matmul_vec_vec", F.matmul, np.matmul, [(3,), (3,)]),
    Case("matmul_vec_mat", F.matmul, np.matmul, [(3,), (3, 4)]),
    Case("matmul_mat_vec", F.matmul, np.matmul, [(2, 3), (3,)]),
    Case("matmul_batch_vec", F.matmul, np.matmul, [(2, 2, 3), (3,)]),
    Case("matmul_vec_batch", F.matmul, np.matmul, [(3,), (2, 3, 4)]),
    Case("matmul_operator", lambda a, b: a @ b, np.matmul, [(2, 3), (3, 2)]),
    Case("linear", F.linear, lambda x, W, b: x @ W + b, [(4, 3), (3, 2), (2,)]),
    Case("linear_no_bias", F.linear, np.matmul, [(4, 3), (3, 2)]),
    Case("linear_batched", F.linear, lambda x, W, b: x @ W + b, [(2, 4, 3), (3, 2), (2,)]),
    Case("linear_vector", F.linear, lambda x, W, b: x @ W + b, [(3,), (3, 2), (2,)]),
    Case("tensordot", F.tensordot, np.tensordot, [(2, 3, 4), (3, 4, 5)]),
    Case("tensordot_1", lambda a, b: F.tensordot(a, b, 1),
         lambda a, b: np.tensordot(a, b, 1), [(2, 3), (3, 4, 2)]),
    Case("tensordot_outer", lambda a, b: F.tensordot(a, b, 0),
         lambda a, b: np.tensordot(a, b, 0), [(2,), (3,)]),
    Case("tensordot_pairs", lambda a, b: F.tensordot(a, b, ([0, 2], [2, -3])),
         lambda a, b: np.tensordot(a, b, ([0, 2], [2, 0])), [(4, 3, 5), (5, 2, 4)]),
]

CASES = MATH + SHAPE + REDUCE + LINALG


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


def inputs(backend: Any, case: Case, dtype: str) -> list:
    return [backend.asarray(h, dtype=dtype) for h in host_inputs(case)]


def best_dtype(backend: Any) -> str:
    return "float64" if backend.supports("float64") else "float32"


def as_tuple(y: Any) -> tuple:
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_matches_numpy(backend, case):
    xs = inputs(backend, case, best_dtype(backend))
    ys = as_tuple(case.fn(*[Variable(x) for x in xs]))
    refs = as_tuple(case.ref(*[to_host(x).astype(np.float64) for x in xs]))
    assert len(ys) == len(refs)
    for y, r in zip(ys, refs):
        assert isinstance(y, Variable)
        assert_close(y, np.asarray(r), err_msg=f"{case.name}: ")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gradcheck(backend, case):
    assert gradcheck(case.fn, *inputs(backend, case, best_dtype(backend)))


@pytest.mark.parametrize("case", [c for c in CASES if c.twice], ids=str)
def test_gradgradcheck(backend, case):
    assert gradgradcheck(case.fn, *inputs(backend, case, best_dtype(backend)))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_float32_and_device_preserved(backend, case):
    f32 = backend.dtype("float32")
    xs = [Variable(x) for x in inputs(backend, case, "float32")]
    ys = as_tuple(case.fn(*xs))
    loss = None
    for y in ys:
        assert y.dtype == f32 and y.device == backend.device, f"{case.name}: output {y!r}"
        term = F.sum(y * y)
        loss = term if loss is None else loss + term
    loss.backward(create_graph=case.twice)
    for x in xs:
        assert x.grad is not None and x.grad.shape == x.shape
        assert x.grad.dtype == f32 and x.grad.device == backend.device, case.name
    if not case.twice:
        return
    # second order: differentiate <grad, grad> once more; its gradients stay float32 too
    grads = [x.grad for x in xs]
    for x in xs:
        x.cleargrad()
    gg = None
    for g in grads:
        term = F.sum(g * g)
        gg = term if gg is None else gg + term
    gg.backward()
    for x in xs:
        if x.grad is not None:
            assert x.grad.dtype == f32 and x.grad.device == backend.device, case.name

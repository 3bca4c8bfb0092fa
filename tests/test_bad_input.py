"""Hostile input catalogue: every public entry point, fed the wrong thing, either raises a clear
error (the right exception type, and a message naming the function and the offending shape or
dtype) or returns a documented result, and leaves its Variables, model and optimizer as they were.

Each table row reads ``(id, call, args, expected)``: ``args(env)`` builds the inputs on the
backend under test, the runner snapshots them, makes the call, checks the outcome and compares
the snapshot. Beside the rows, a sweep calls every public function with each argument in turn
replaced by each hostile kind of value.
"""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from optable import OPS

import xgrad
import xgrad.functions as F
from xgrad import Variable, io, nn, optim
from xgrad.data import DataLoader, Dataset
from xgrad.testing import assert_close, to_host

# NumPy warns about NaN and empty reductions; the point here is what xgrad does with them.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


# ---------------------------------------------------------------------------------------------
# Inputs and snapshots
# ---------------------------------------------------------------------------------------------
class Env:
    """Inputs on the backend under test (a BackendCase, or None for the default backend)."""

    def __init__(self, backend: Any = None) -> None:
        self.backend = backend

    def arr(self, *shape: int, dtype: str = "float32", fill: float | None = None) -> Any:
        n = math.prod(shape)
        if fill is not None:
            host = np.full(shape, fill)
        elif "int" in dtype:
            host = np.arange(n).reshape(shape) % 3
        elif dtype == "bool":
            host = (np.arange(n) % 2 == 0).reshape(shape)
        else:
            host = np.linspace(-1.0, 1.0, n).reshape(shape)
        if self.backend is None:
            return xgrad.asarray(host, dtype=dtype)
        if dtype == "float64":
            self.backend.dtype("float64")  # skips on a device without float64
        return self.backend.asarray(host, dtype=dtype)

    def f(self, *shape: int, dtype: str = "float32", fill: float | None = None) -> Variable:
        """A floating-point Variable of ``shape`` (values in [-1, 1], or ``fill``)."""
        return Variable(self.arr(*shape, dtype=dtype, fill=fill))

    def i(self, *shape: int) -> Any:
        """An int64 array (labels-like values 0, 1, 2)."""
        return self.arr(*shape, dtype="int64")

    def b(self, *shape: int) -> Any:
        """A bool array."""
        return self.arr(*shape, dtype="bool")

    def foreign(self, *shape: int) -> Variable:
        """A float32 Variable of another array namespace than the backend under test."""
        name = self.backend.name if self.backend is not None else "numpy"
        other = "array_api_strict" if name == "numpy" else "numpy"
        return Variable(xgrad.asarray(np.ones(shape), dtype="float32", backend=other))

    def elsewhere(self, *shape: int) -> Variable:
        """A float32 Variable of the same namespace on another device (skips without one)."""
        b = self.backend
        devices = [d for d in b.backend.devices() if d != b.device
                   and b.backend.device_spec(d).rsplit(":", 1)[-1] in ("device1", "device2")
                   or (b.backend.gpu and d != b.device)]
        if not devices:
            pytest.skip(f"{b.id} has no second device")
        return Variable(xgrad.asarray(np.ones(shape), dtype="float32", backend=b.backend,
                                      device=devices[0]))


def _host(a: Any) -> Any:
    return to_host(a).copy()


def snapshot(obj: Any) -> Any:
    """A comparable copy of what ``obj`` holds: Variables (data, grad, creator), layers
    (parameters, gradients, buffers), optimizers (state_dict), and containers of them."""
    if isinstance(obj, Variable):
        return ("Variable", type(obj.data), _host(obj.data),
                None if obj.grad is None else _host(obj.grad), obj.creator, obj.requires_grad)
    if isinstance(obj, nn.Layer):
        return ("Layer", [(n, None if p is None else snapshot(p)) for n, p in
                          obj.named_params()],
                [(n, _host(v)) for n, v in obj.named_buffers()],
                {k: v for k, v in vars(obj).items() if v is None})
    if isinstance(obj, optim.Optimizer):
        hyper = {k: getattr(obj, k) for k in obj._hyper}
        state = None if obj.target is None else obj.state_dict()
        return ("Optimizer", hyper, obj.target,
                state and {k: _host(v) for k, v in state.items()})
    if isinstance(obj, (list, tuple)):
        return [snapshot(o) for o in obj]
    if xgrad.core.is_array(obj):
        return ("array", _host(obj))
    return None


def same(a: Any, b: Any) -> bool:
    """Deep equality of two snapshots (arrays by value, NaN equal to NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(
                    a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b)))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a is b or a == b


# ---------------------------------------------------------------------------------------------
# Rows and runners
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bad:
    """``call(*args(env))`` raises ``error`` whose message matches ``match`` (a regex, case
    insensitive) and changes none of its arguments."""

    id: str
    call: Callable
    args: Callable[[Env], tuple]
    error: Any
    match: str


@dataclass(frozen=True)
class Doc:
    """``call(*args(env))`` returns a documented result, checked by ``check(result, *args)``."""

    id: str
    call: Callable
    args: Callable[[Env], tuple]
    check: Callable


def _param(row: Bad | Doc) -> Any:
    return pytest.param(row, id=row.id)


def run_bad(row: Bad, env: Env | None) -> None:
    args = row.args(env)
    before = snapshot(list(args))
    with pytest.raises(row.error) as info:
        row.call(*args)
    msg = str(info.value)
    assert re.search(row.match, msg, re.I | re.S), \
        f"unclear message {msg!r} (wanted {row.match!r})"
    assert same(snapshot(list(args)), before), f"{row.id}: the failed call changed its inputs"


def run_doc(row: Doc, env: Env) -> None:
    args = row.args(env)
    row.check(row.call(*args), *args)


def named(name: str) -> str:
    """A regex for the function ``name`` as it appears in messages: ``leaky_relu`` or
    ``LeakyReLU``, aliases by their canonical name."""
    name = ALIASES.get(name, name)
    return re.escape(name).replace("_", "_?")


ALIASES = {"divide": "div", "multiply": "mul", "subtract": "sub", "negative": "neg"}
NS = r"\S*"  # array_api_strict prints dtypes as array_api_strict.float32



# ---------------------------------------------------------------------------------------------
# Functions: wrong types, integer and bool arrays where floats are needed
# ---------------------------------------------------------------------------------------------
# from the table: one-tensor entry points f(x), two-tensor ones f(x, y), and differentiable
# functions that refuse integer and bool arrays
UNARY = sorted(op for op, row in OPS.items() if row.arrays == 1)
BINARY = sorted(op for op, row in OPS.items() if row.arrays == 2)
FLOAT_ONLY = sorted(op for op, row in OPS.items() if row.float_only)
FLOAT_ONLY_ARGS = {"clip": (0.0, 1.0)}
def _no_array_rows() -> list:
    """Rows whose arguments hold no array at all (run once, not per backend)."""
    rows = []
    for name in UNARY:
        for bad in ("a", None):
            rows.append(Bad(f"{name}({bad!r})", getattr(F, name), lambda e, bad=bad: (bad,),
                            TypeError, named(name) + r".*(str|NoneType)"))
    return rows + [
        Bad("concat(None)", F.concat, lambda e: (None,), TypeError, "concat"),
        Bad("stack(None)", F.stack, lambda e: (None,), TypeError, "stack"),
        Bad("concat([list, list])", F.concat, lambda e: ([[1.0], [2.0]],), TypeError,
            r"concat.*list"),
    ]


def _wrong_type_rows() -> list:
    rows = []
    for name in BINARY:
        for bad in ("a", None):
            rows.append(Bad(f"{name}(x, {bad!r})", getattr(F, name),
                            lambda e, bad=bad: (e.f(2, 3), bad),
                            TypeError, named(name) + r".*input 1.*(str|NoneType)"))
    return rows


def _float_only_rows() -> list:
    rows = []
    for name in FLOAT_ONLY:
        extra = FLOAT_ONLY_ARGS.get(name, ())
        for kind, make in (("int64", Env.i), ("bool", Env.b)):
            rows.append(Bad(f"{name}({kind})", getattr(F, name),
                            lambda e, make=make, extra=extra: (make(e, 2, 3), *extra),
                            TypeError, rf"{name}: expected a floating-point array, got dtype "
                                       rf"{NS}{kind}"))
    return rows


# ---------------------------------------------------------------------------------------------
# Functions: wrong shapes, axes, arguments and labels
# ---------------------------------------------------------------------------------------------
SHAPES = [
    Bad("add: shapes (2, 3) and (4,) do not broadcast", F.add, lambda e: (e.f(2, 3), e.f(4)),
        ValueError, rf"^Add: .*\(2, 3\) {NS}float32, \(4,\) {NS}float32"),
    Bad("mul: shapes (2, 3) and (3, 2)", F.mul, lambda e: (e.f(2, 3), e.f(3, 2)), ValueError,
        r"^Mul: .*\(2, 3\).*\(3, 2\)"),
    Bad("matmul: inner sizes differ", F.matmul, lambda e: (e.f(2, 3), e.f(4, 2)), ValueError,
        r"matmul: shapes \(2, 3\) and \(4, 2\) do not align"),
    Bad("matmul: 0-d operand", F.matmul, lambda e: (e.f(), e.f()), ValueError, r"matmul: 0-d"),
    Bad("tensordot: axes do not align", lambda a, b: F.tensordot(a, b, 1),
        lambda e: (e.f(2, 3), e.f(4, 2)), ValueError, r"tensordot: .*\(2, 3\).*\(4, 2\)"),
    Bad("linear: W does not fit x", F.linear, lambda e: (e.f(2, 3), e.f(4, 2)), ValueError,
        r"linear: x of shape \(2, 3\) and W of shape \(4, 2\)"),
    Bad("linear: bias of the wrong size", F.linear, lambda e: (e.f(2, 3), e.f(3, 2), e.f(5)),
        ValueError, r"linear.*\(5,\)"),
    Bad("reshape: size 6 into (5,)", F.reshape, lambda e: (e.f(2, 3), (5,)), ValueError,
        r"^Reshape: .*\(5,\).*\(2, 3\)"),
    Bad("broadcast_to: (2, 3) to (3, 3)", F.broadcast_to, lambda e: (e.f(2, 3), (3, 3)),
        ValueError, r"^BroadcastTo: .*\(2, 3\)"),
    Bad("sum_to: (3,) to the larger (2, 3)", F.sum_to, lambda e: (e.f(3), (2, 3)), ValueError,
        r"sum_to: .*\(3,\).*\(2, 3\)"),
    Bad("transpose: repeated axes", F.transpose, lambda e: (e.f(2, 3), (0, 0)), ValueError,
        r"transpose: axes \(0, 0\) are not a permutation.*\(2, 3\)"),
    Bad("permute_dims: too few axes", F.permute_dims, lambda e: (e.f(2, 3), (1,)), ValueError,
        r"axes \(1,\) are not a permutation"),
    Bad("matrix_transpose: 1-d", F.matrix_transpose, lambda e: (e.f(3),), ValueError,
        r"^matrix_transpose: needs at least 2 dimensions.*\(3,\)"),
    Bad("sum: axis out of range", lambda x: F.sum(x, axis=5), lambda e: (e.f(2, 3),),
        ValueError, r"sum: axis 5 is out of range for an array of 2 dimensions"),
    Bad("sum: axis of the wrong type", lambda x: F.sum(x, axis="a"), lambda e: (e.f(2, 3),),
        TypeError, r"sum: axis must be an int"),
    Bad("max: repeated axis", lambda x: F.max(x, axis=(0, 0)), lambda e: (e.f(2, 3),),
        ValueError, r"max: repeated axis"),
    Bad("max: empty array", F.max, lambda e: (e.f(0),), ValueError, r"max.*\(0,\)"),
    Bad("min: empty array", F.min, lambda e: (e.f(0),), ValueError, r"min.*\(0,\)"),
    Bad("logsumexp: empty array", F.logsumexp, lambda e: (e.f(0),), ValueError,
        r"logsumexp.*\(0,\)"),
    Bad("softmax: axis out of range", lambda x: F.softmax(x, axis=5), lambda e: (e.f(2, 3),),
        ValueError, r"softmax: axis 5"),
    Bad("cumulative_sum: 2-d without axis", F.cumulative_sum, lambda e: (e.f(2, 3),),
        ValueError, r"cumulative_sum: axis is required.*\(2, 3\)"),
    Bad("get_item: index out of bounds", lambda x: x[5], lambda e: (e.f(2, 3),), IndexError,
        r"^get_item: .*5.*\(2, 3\)"),
    Bad("get_item: float index", lambda x: x[1.5], lambda e: (e.f(2, 3),), IndexError,
        r"^get_item: "),
    Bad("get_item: index array out of bounds", lambda x: x[[0, 7]], lambda e: (e.f(2, 3),),
        IndexError, r"^get_item: .*7"),
    Bad("take: float indices", lambda x: F.take(x, x, axis=1), lambda e: (e.f(2, 3),),
        TypeError, r"take: indices must be an integer array, got \S*float32"),
    Bad("take: axis out of range", lambda x: F.take(x, [0], axis=4), lambda e: (e.f(2, 3),),
        ValueError, r"take: axis 4"),
    Bad("concat: shapes differ off the axis", lambda a, b: F.concat([a, b], axis=1),
        lambda e: (e.f(2, 3), e.f(3, 3)), ValueError,
        r"concat: shapes \(2, 3\), \(3, 3\) must agree except along axis 1"),
    Bad("concat: nothing to join", F.concat, lambda e: ([],), ValueError, r"concat: needs"),
    Bad("stack: shapes differ", lambda a, b: F.stack([a, b]), lambda e: (e.f(2, 3), e.f(3)),
        ValueError, r"stack: shapes \(2, 3\), \(3,\) must be equal"),
    Bad("split: 3 does not divide into 2", lambda x: F.split(x, 2, axis=1),
        lambda e: (e.f(2, 3),), ValueError, r"split: axis 1 of shape \(2, 3\) does not divide"),
    Bad("split: decreasing split points", lambda x: F.split(x, [2, 1], axis=1),
        lambda e: (e.f(2, 3),), ValueError, r"split: split points \[2, 1\] must increase"),
    Bad("squeeze: axis of size 2", lambda x: F.squeeze(x, 0), lambda e: (e.f(2, 3),),
        ValueError, r"squeeze: cannot remove axis 0 of size 2 from shape \(2, 3\)"),
    Bad("expand_dims: axis out of range", lambda x: F.expand_dims(x, 5),
        lambda e: (e.f(2, 3),), ValueError, r"expand_dims: axis 5"),
    Bad("unstack: axis out of range", lambda x: F.unstack(x, 5), lambda e: (e.f(2, 3),),
        ValueError, r"unstack: axis 5"),
    Bad("flip: axis out of range", lambda x: F.flip(x, 5), lambda e: (e.f(2, 3),), ValueError,
        r"flip: axis 5"),
    Bad("where: float condition", F.where, lambda e: (e.f(2, 3), e.f(2, 3), e.f(2, 3)),
        TypeError, r"where: the condition must be a bool array, got dtype \S*float32"),
    Bad("where: shapes do not broadcast", F.where, lambda e: (e.b(2, 3), e.f(2, 3), e.f(4)),
        ValueError, r"^Where: .*\(4,\)"),
    Bad("clip: min above max", lambda x: F.clip(x, 1.0, 0.0), lambda e: (e.f(2, 3),),
        ValueError, r"clip: min 1.0 is larger than max 0.0"),
    Bad("astype: unknown dtype", lambda x: F.astype(x, "floatx"), lambda e: (e.f(2, 3),),
        TypeError, r"no dtype 'floatx'"),
    Bad("to: unknown backend", lambda x: F.to(x, "nope"), lambda e: (e.f(2),),
        xgrad.backends.BackendUnavailable, r"unknown backend 'nope'.*usable here"),
    Bad("to: not a target", lambda x: F.to(x, 3), lambda e: (e.f(2),), ValueError,
        r"cannot move data to 3"),
    # arguments of the wrong kind: the function and the argument named, nothing guessed
    Bad("reshape: a str shape", lambda x: F.reshape(x, "a"), lambda e: (e.f(2, 3),), TypeError,
        r"reshape: shape must be an int or a tuple of ints, got str 'a'"),
    Bad("reshape: a float in the shape", lambda x: F.reshape(x, (2, 3.0)),
        lambda e: (e.f(2, 3),), TypeError, r"reshape: shape must be .*\(2, 3\.0\)"),
    Bad("broadcast_to: a negative size", lambda x: F.broadcast_to(x, (-1, 3)),
        lambda e: (e.f(2, 3),), ValueError, r"broadcast_to: shape entries must be >= 0"),
    Bad("expand_dims: axis None", lambda x: F.expand_dims(x, None), lambda e: (e.f(2, 3),),
        TypeError, r"expand_dims: axis must be an int, got NoneType None"),
    Bad("clip: a list bound", lambda x: F.clip(x, [0.0, 1.0]), lambda e: (e.f(2, 3),),
        TypeError, r"clip: min must be a real number, got list"),
    Bad("clip: a NaN bound", lambda x: F.clip(x, None, float("nan")), lambda e: (e.f(2, 3),),
        ValueError, r"clip: max must be a finite number, got nan"),
    Bad("dropout: a str ratio", lambda x: F.dropout(x, "0.5"), lambda e: (e.f(2, 3),),
        TypeError, r"dropout: dropout_ratio must be a real number, got str '0.5'"),
    Bad("leaky_relu: an array slope", lambda x, s: F.leaky_relu(x, s),
        lambda e: (e.f(2, 3), e.f(2, 3)), TypeError, r"leaky_relu: slope must be a real number"),
    Bad("split: a str", lambda x: F.split(x, "a"), lambda e: (e.f(2, 4),), TypeError,
        r"split: indices_or_sections must be an int, got str 'a'"),
    Bad("split: a fractional split point", lambda x: F.split(x, (0.5, 2), axis=1),
        lambda e: (e.f(2, 4),), TypeError, r"split: split points must be an int, got float 0.5"),
    Bad("split: a float count", lambda x: F.split(x, 2.0, axis=1), lambda e: (e.f(2, 4),),
        TypeError, r"split: indices_or_sections must be an int, got float 2.0"),
    Bad("astype: dtype None", lambda x: F.astype(x, None), lambda e: (e.f(2, 3),), TypeError,
        r"astype: dtype must be a dtype or a dtype name"),
    Bad("astype: a name that is not a dtype", lambda x: F.astype(x, "nan"),
        lambda e: (e.f(2, 3),), TypeError, r"astype: dtype must be a dtype or a dtype name"),
    Bad("sum: keepdims None", lambda x: F.sum(x, keepdims=None), lambda e: (e.f(2, 3),),
        TypeError, r"sum: keepdims must be True or False, got NoneType None"),
    Bad("var: NaN correction", lambda x: F.var(x, correction=float("nan")),
        lambda e: (e.f(2, 3),), ValueError, r"var: correction must be a finite number"),
    Bad("tensordot: axes True", lambda a, b: F.tensordot(a, b, True),
        lambda e: (e.f(2, 3), e.f(3, 2)), TypeError, r"tensordot: axes must be an int"),
    Bad("to: an unknown backend names to", lambda x: F.to(x, "nope"), lambda e: (e.f(2),),
        xgrad.backends.BackendUnavailable, r"^to: unknown backend 'nope'"),
    Bad("stack: axis None", lambda a: F.stack([a, a], axis=None), lambda e: (e.f(2, 3),),
        TypeError, r"stack: axis must be an int, got NoneType"),
    Bad("im2col: to_matrix a str", lambda x: F.im2col(x, 2, to_matrix="no"),
        lambda e: (e.f(1, 1, 4, 4),), TypeError, r"im2col: to_matrix must be True or False"),
    Bad("softmax_cross_entropy: ignore_label 0.5", lambda x, t: F.softmax_cross_entropy(
        x, t, ignore_label=0.5), lambda e: (e.f(2, 3), e.i(2)), TypeError,
        r"softmax_cross_entropy: ignore_label must be an int, got float 0.5"),
    Bad("softmax_cross_entropy: ragged targets", F.softmax_cross_entropy,
        lambda e: (e.f(2, 3), [[1, 2], [0]]), ValueError,
        r"softmax_cross_entropy: targets must be an array or nested lists of numbers"),
    Bad("accuracy: 1-d scores", F.accuracy, lambda e: (e.f(3), e.i(3)), ValueError,
        r"accuracy: expected scores y of shape \(N, C\), got shape \(3,\)"),
    Bad("batch_norm: gamma None", F.batch_norm, lambda e: (e.f(2, 3), None, e.f(3)),
        TypeError, r"batch_norm: gamma: expected a Variable or an array, got builtins.NoneType"),
    Bad("batch_norm: negative eps", lambda x, g, b: F.batch_norm(x, g, b, eps=-1.0),
        lambda e: (e.f(2, 3), e.f(3), e.f(3)), ValueError, r"batch_norm: eps must be >= 0"),
    Bad("get_item: a ragged index list", lambda x: x[[[0, 1], [0]]], lambda e: (e.f(2, 3),),
        IndexError, r"get_item: an index list must be a rectangular list"),
    # losses and nn functions
    Bad("softmax_cross_entropy: labels of the wrong length", F.softmax_cross_entropy,
        lambda e: (e.f(2, 3), e.i(3)), ValueError,
        r"softmax_cross_entropy: expected scores \(N, C\) and targets \(N,\), got shapes "
        r"\(2, 3\) and \(3,\)"),
    Bad("softmax_cross_entropy: float labels", F.softmax_cross_entropy,
        lambda e: (e.f(2, 3), e.f(2)), TypeError,
        r"softmax_cross_entropy: targets must be integer class labels, got dtype \S*float32"),
    Bad("softmax_cross_entropy: label out of range", F.softmax_cross_entropy,
        lambda e: (e.f(2, 3), e.i(2) + 5), ValueError,
        r"softmax_cross_entropy: targets must lie in \[0, 3\)"),
    Bad("softmax_cross_entropy: negative label", F.softmax_cross_entropy,
        lambda e: (e.f(2, 3), e.i(2) - 1), ValueError, r"targets must lie in \[0, 3\)"),
    Bad("softmax_cross_entropy: 1-d scores", F.softmax_cross_entropy,
        lambda e: (e.f(3), e.i(1)), ValueError, r"softmax_cross_entropy: .*\(3,\)"),
    Bad("sigmoid_cross_entropy: shapes differ", F.sigmoid_cross_entropy,
        lambda e: (e.f(2, 3), e.i(2)), ValueError,
        r"sigmoid_cross_entropy: .*\(2, 3\) and \(2,\)"),
    Bad("mean_squared_error: shapes differ", F.mean_squared_error,
        lambda e: (e.f(2, 3), e.f(3)), ValueError,
        r"mean_squared_error: shapes \(2, 3\) and \(3,\) differ"),
    Bad("accuracy: label count differs", F.accuracy, lambda e: (e.f(2, 3), e.i(3)),
        ValueError, r"accuracy: 2 predictions .*3 targets"),
    Bad("accuracy: float labels", F.accuracy, lambda e: (e.f(2, 3), e.f(2)), TypeError,
        r"accuracy: targets must be integer"),
    Bad("dropout: ratio 1.5", lambda x: F.dropout(x, 1.5), lambda e: (e.f(2, 3),), ValueError,
        r"dropout: dropout_ratio must be in \[0, 1\), got 1.5"),
    Bad("embed_id: id out of range", F.embed_id, lambda e: (e.i(2) + 7, e.f(5, 3)),
        ValueError, r"embed_id: ids must lie in \[0, 5\) for W of shape \(5, 3\)"),
    Bad("embed_id: float ids", F.embed_id, lambda e: (e.f(2), e.f(5, 3)), TypeError,
        r"embed_id: .*integer"),
    Bad("batch_norm: gamma of the wrong size", F.batch_norm,
        lambda e: (e.f(2, 3), e.f(4), e.f(4)), ValueError,
        r"batch_norm: gamma must have shape \(3,\) for x of shape \(2, 3\), got \(4,\)"),
    Bad("batch_norm: 1-d input", F.batch_norm, lambda e: (e.f(3), e.f(3), e.f(3)),
        ValueError, r"batch_norm: x must be \(N, C, \.\.\.\), got shape \(3,\)"),
    Bad("layer_norm: gamma of the wrong size", F.layer_norm,
        lambda e: (e.f(2, 3), e.f(4), e.f(4)), ValueError,
        r"layer_norm: gamma must have shape \(3,\) for x of shape \(2, 3\), got \(4,\)"),
    Bad("conv2d: 2-d input", F.conv2d, lambda e: (e.f(2, 3), e.f(2, 3, 3, 3)), ValueError,
        r"conv2d: input must be 4-D \(N, C, H, W\), got shape \(2, 3\)"),
    Bad("conv2d: channels differ", F.conv2d, lambda e: (e.f(1, 2, 5, 5), e.f(2, 3, 3, 3)),
        ValueError, r"conv2d: input has 2 channels but W expects 3"),
    Bad("conv2d: kernel larger than the input", F.conv2d,
        lambda e: (e.f(1, 3, 2, 2), e.f(2, 3, 3, 3)), ValueError,
        r"conv2d: kernel \(3, 3\) .* does not fit an input of shape \(1, 3, 2, 2\)"),
    Bad("conv2d: stride 0", lambda x, w: F.conv2d(x, w, stride=0),
        lambda e: (e.f(1, 3, 5, 5), e.f(2, 3, 3, 3)), ValueError, r"conv2d: stride must be"),
    Bad("conv2d: negative pad", lambda x, w: F.conv2d(x, w, pad=-1),
        lambda e: (e.f(1, 3, 5, 5), e.f(2, 3, 3, 3)), ValueError, r"conv2d: pad must be"),
    Bad("conv2d: int input", F.conv2d, lambda e: (e.i(1, 3, 5, 5), e.f(2, 3, 3, 3)),
        TypeError, rf"conv2d: expected a floating-point array, got dtype {NS}int64"),
    Bad("deconv2d: channels differ", F.deconv2d, lambda e: (e.f(1, 2, 3, 3), e.f(3, 4, 3, 3)),
        ValueError, r"deconv2d: input has 2 channels but W expects 3"),
    Bad("im2col: 2-d input", lambda x: F.im2col(x, 2), lambda e: (e.f(2, 3),), ValueError,
        r"im2col: input must be 4-D"),
    Bad("col2im: columns of the wrong shape", lambda x: F.col2im(x, (1, 1, 4, 4), 2),
        lambda e: (e.f(2, 3),), ValueError, r"col2im: expected columns of shape"),
    Bad("max_pooling: 2-d input", lambda x: F.max_pooling(x, 2), lambda e: (e.f(2, 3),),
        ValueError, r"max_pooling: input must be 4-D"),
    Bad("max_pooling: kernel 0", lambda x: F.max_pooling(x, 0), lambda e: (e.f(1, 1, 4, 4),),
        ValueError, r"max_pooling: kernel_size must be >= 1"),
    Bad("average_pooling: kernel larger than the input", lambda x: F.average_pooling(x, 3),
        lambda e: (e.f(1, 1, 2, 2),), ValueError, r"average_pooling: .*\(1, 1, 2, 2\)"),
    Bad("average_pooling: int input", lambda x: F.average_pooling(x, 2),
        lambda e: (e.i(1, 1, 4, 4),), TypeError, rf"average_pooling: .*{NS}int64"),
    # integer inputs that would otherwise be promoted to float64 without a word
    Bad("linear: int x", F.linear, lambda e: (e.i(2, 3), e.f(3, 2)), TypeError,
        rf"linear: .*{NS}int64"),
    Bad("linear: int W", F.linear, lambda e: (e.f(2, 3), e.i(3, 2)), TypeError,
        rf"linear: .*{NS}int64"),
    Bad("layer_norm: int x", F.layer_norm, lambda e: (e.i(2, 3), e.f(3), e.f(3)), TypeError,
        rf"layer_norm: .*{NS}int64"),
    Bad("batch_norm: int x", F.batch_norm, lambda e: (e.i(2, 3), e.f(3), e.f(3)), TypeError,
        rf"batch_norm: .*{NS}int64"),
    Bad("mean_squared_error: int inputs", F.mean_squared_error,
        lambda e: (e.i(2, 3), e.i(2, 3)), TypeError,
        rf"mean_squared_error: expected a floating-point array, got dtype {NS}int64"),
]

MISMATCH = [
    Bad(f"{name}: another namespace", getattr(F, name), lambda e: (e.f(2, 3), e.foreign(2, 3)),
        xgrad.BackendMismatchError, rf"{named(name)}: inputs live on different backends.*to\(")
    for name in ("add", "sub", "mul", "div", "maximum")
] + [
    Bad("matmul: another namespace", F.matmul, lambda e: (e.f(2, 3), e.foreign(3, 2)),
        xgrad.BackendMismatchError, r"MatMul: inputs live on different backends.*to\("),
    Bad("concat: another namespace", lambda a, b: F.concat([a, b]),
        lambda e: (e.f(2, 3), e.foreign(2, 3)), xgrad.BackendMismatchError, r"Concat: .*to\("),
    Bad("linear: W in another namespace", F.linear, lambda e: (e.f(2, 3), e.foreign(3, 2)),
        xgrad.BackendMismatchError, r"Linear: .*to\("),
    Bad("conv2d: W in another namespace", F.conv2d,
        lambda e: (e.f(1, 3, 5, 5), e.foreign(2, 3, 3, 3)), xgrad.BackendMismatchError,
        r"to\("),
    Bad("mean_squared_error: another namespace", F.mean_squared_error,
        lambda e: (e.f(2, 3), e.foreign(2, 3)), xgrad.BackendMismatchError, r"to\("),
    Bad("add: another device", F.add, lambda e: (e.f(2, 3), e.elsewhere(2, 3)),
        xgrad.BackendMismatchError, r"Add: inputs live on different devices.*to\("),
    Bad("matmul: another device", F.matmul, lambda e: (e.f(2, 3), e.elsewhere(3, 2)),
        xgrad.BackendMismatchError, r"different devices"),
]

NO_ARRAY_ROWS = _no_array_rows()
FUNCTION_ROWS = _wrong_type_rows() + _float_only_rows() + SHAPES + MISMATCH


@pytest.mark.parametrize("row", [_param(r) for r in NO_ARRAY_ROWS])
def test_function_refuses_non_arrays(row):
    run_bad(row, Env())


@pytest.mark.parametrize("row", [_param(r) for r in FUNCTION_ROWS])
def test_function_refuses(backend, row):
    run_bad(row, Env(backend))


# ---------------------------------------------------------------------------------------------
# Functions: every public function, each argument in turn replaced by each hostile kind
# ---------------------------------------------------------------------------------------------
def public_functions() -> list[str]:
    """Every public function of ``xgrad.functions`` (a new one is swept automatically)."""
    return sorted(n for n in dir(F) if not n.startswith("_")
                  and inspect.isfunction(getattr(F, n))
                  and getattr(F, n).__module__.startswith("xgrad.functions"))


# A valid value for a parameter, by its name; ``GOOD_CALLS`` below covers the rest.
GOOD_BY_NAME: dict[str, Callable[[Env], Any]] = {
    "x": lambda e: e.f(2, 3), "x0": lambda e: e.f(2, 3), "x1": lambda e: e.f(2, 3),
}


# function -> a valid call ``(args, kwargs)``, every parameter given (defaults spelled out)
GOOD_CALLS: dict[str, Callable[[Env], tuple[tuple, dict]]] = {
    op: row.good for op, row in OPS.items() if row.good is not None}


def good_call(name: str, e: Env) -> tuple[tuple, dict]:
    """A valid call of ``F.<name>``: from ``GOOD_CALLS``, else from its parameters' names."""
    if name in GOOD_CALLS:
        return GOOD_CALLS[name](e)
    args = []
    for p in inspect.signature(getattr(F, name)).parameters.values():
        if p.name not in GOOD_BY_NAME:
            raise LookupError(f"F.{name}: give its main row in tests/optable.py a valid call "
                              f"(good=...; no default for parameter {p.name!r})")
        args.append(GOOD_BY_NAME[p.name](e))
    return tuple(args), {}


# hostile kinds: name -> the value put in the place of one argument
HOSTILE: dict[str, Callable[[Env], Any]] = {
    "str": lambda e: "a",
    "None": lambda e: None,
    "list": lambda e: [1.0, 2.0],
    "nested list": lambda e: [[1.0, 2.0], [3.0]],
    "float": lambda e: 1.5,
    "bool": lambda e: True,
    "NaN": lambda e: float("nan"),
    "5": lambda e: 5,
    "-7": lambda e: -7,
    "int64 array": lambda e: e.i(2, 3),
    "bool array": lambda e: e.b(2, 3),
    "0-size array": lambda e: e.f(0),
    "0-d array": lambda e: e.f(),
    "(7,) array": lambda e: e.f(7),
    "NaN array": lambda e: e.f(2, 3, fill=float("nan")),
}
ARRAY_KINDS = {"int64 array", "bool array", "0-size array", "0-d array", "(7,) array",
               "NaN array", "list", "float", "bool", "NaN", "5", "-7"}


def _param_class(good: Any) -> str:
    """What a parameter takes, judged from a valid value: array, arrays, bool, int, float, str."""
    if isinstance(good, Variable) or xgrad.core.is_array(good):
        return "array"
    if isinstance(good, list):
        return "arrays"
    if isinstance(good, bool):
        return "bool"
    if isinstance(good, int) or (isinstance(good, tuple) and all(isinstance(v, int)
                                                                  for v in good)):
        return "int"
    if isinstance(good, float):
        return "float"
    return "str"


# parameters where None has a documented meaning though it is not the default
NONE_MEANS = {("concat", "axis"): "flatten first", ("softmax", "axis"): "all axes",
              ("log_softmax", "axis"): "all axes", ("get_item", "key"): "a new axis"}


def must_refuse(name: str, param: str, default: Any, good: Any, kind: str) -> bool:
    """Whether the hostile ``kind`` in ``param`` must raise (else a result is also fine)."""
    cls = _param_class(good)
    if kind == "None":
        return default is not None and (name, param) not in NONE_MEANS
    if kind in ("str", "nested list"):
        return True
    if name == "get_item":  # True, [1, 2], 5 and -7 are NumPy indices (the bounds are checked)
        return kind in ("float", "NaN")
    if cls == "bool":
        return kind != "bool"
    if cls == "array":  # numbers broadcast like 0-d arrays; other shapes and dtypes may work
        return kind not in ARRAY_KINDS
    if cls == "int":  # a size, an axis, a shape, a label
        return not (kind == "5" and param not in ("axis", "axes")
                    or kind == "-7" and param == "ignore_label")
    if cls == "float":  # a hyperparameter: any real number, a probability within [0, 1)
        return kind not in ("5", "-7", "float") or param == "dropout_ratio"
    return True  # bool flags, sequences of arrays, dtype and backend names


SWEEP_ERRORS = (TypeError, ValueError, IndexError, LookupError, xgrad.XgradError,
                xgrad.backends.BackendUnavailable)


def sweep(name: str, e: Env) -> list[tuple]:
    """Every hostile kind in every argument of ``F.<name>``: the offending (function, argument,
    kind, outcome) rows, empty when each call either raised a clear error or is allowed to work."""
    fn = getattr(F, name)
    params = inspect.signature(fn).parameters
    bad = []
    args, kwargs = good_call(name, e)
    fn(*args, **kwargs)  # the valid call works
    for i, p in enumerate(params.values()):
        for kind, make in HOSTILE.items():
            args, kwargs = good_call(name, e)
            good = args[i] if i < len(args) else kwargs.get(p.name, p.default)
            value = make(e)
            if i < len(args):
                args = args[:i] + (value,) + args[i + 1:]
            else:
                kwargs[p.name] = value
            where = f"{name}({p.name}={kind})"
            try:
                fn(*args, **kwargs)
            except SWEEP_ERRORS as err:
                msg = str(err)
                if not re.search(named(name), msg, re.I):
                    bad.append((where, f"{type(err).__name__}: {msg}"))
            except Exception as err:  # an error type that says nothing about the call
                bad.append((where, f"{type(err).__name__}: {err}"))
            else:
                if must_refuse(name, p.name, p.default, good, kind):
                    bad.append((where, "accepted"))
    return bad


def test_every_function_refuses_hostile_arguments_clearly(backend):
    """Each public function, each argument in turn given each hostile kind: an error of a
    clear type naming the function, or a result where the kind is a valid input; every
    offender is listed at once."""
    e = Env(backend)
    offenders = []
    for name in public_functions():
        try:
            offenders += sweep(name, e)
        except Exception as err:  # no valid call to start from
            offenders.append((name, f"{type(err).__name__}: {err}"))
    assert not offenders, f"{len(offenders)} unclear outcomes:\n" + "\n".join(
        f"  {where}: {outcome[:200]}" for where, outcome in offenders)


def test_the_sweep_covers_every_exported_function():
    assert set(F.__all__) <= set(public_functions())
    assert len(public_functions()) >= 70


# ---------------------------------------------------------------------------------------------
# Functions: documented results for empty arrays, zero-size batches, NaN and mixed dtypes
# ---------------------------------------------------------------------------------------------
def _value(expected: Any, dtype: str = "float32") -> Callable:
    def check(y: Any, *args: Any) -> None:
        _dtype(dtype)(y)
        assert_close(y, expected, rtol=0, atol=0)
    return check


def _backward_shapes(y: Variable, *inputs: Any) -> None:
    """backward through ``y`` works and gives each Variable input a gradient of its shape."""
    (y if y.ndim == 0 else y.sum()).backward()
    for v in inputs:
        if isinstance(v, Variable) and v.requires_grad:
            assert v.grad is not None and v.grad.shape == v.shape and v.grad.dtype == v.dtype


def _all(*checks: Callable) -> Callable:
    def check(y: Any, *args: Any) -> None:
        for c in checks:
            c(y, *args)
    return check


def _shape(shape: tuple) -> Callable:
    def check(y: Any, *args: Any) -> None:
        assert y.shape == shape
    return check


def _dtype(name: str) -> Callable:
    def check(y: Any, *args: Any) -> None:
        assert str(y.dtype).endswith(name), f"dtype {y.dtype}, expected {name}"
    return check


def _nan(y: Any, *args: Any) -> None:
    assert np.isnan(to_host(y)).all()


def _nan_gradient(y: Variable, x: Variable) -> None:
    y.sum().backward()
    assert np.isnan(to_host(x.grad)).all()


def _constant(y: Variable, *args: Any) -> None:
    assert not y.requires_grad and y.creator is None


DOCUMENTED = [
    Doc("reshape takes an int shape, as NumPy does", lambda x: F.reshape(x, 6),
        lambda e: (e.f(2, 3),), _all(_shape((6,)), _backward_shapes)),
    Doc("reshape takes -1 in an int shape", lambda x: F.reshape(x, -1), lambda e: (e.f(2, 3),),
        _shape((6,))),
    Doc("broadcast_to takes an int shape", lambda x: F.broadcast_to(x, 3), lambda e: (e.f(1),),
        _all(_shape((3,)), _backward_shapes)),
    Doc("sum_to takes an int shape", lambda x: F.sum_to(x, 3), lambda e: (e.f(2, 3),),
        _all(_shape((3,)), _backward_shapes)),
    Doc("reshape takes NumPy integers", lambda x: F.reshape(x, (np.int64(3), np.int32(2))),
        lambda e: (e.f(2, 3),), _shape((3, 2))),
    Doc("sum of an empty array is 0", F.sum, lambda e: (e.f(0),),
        _all(_value(0.0), _backward_shapes)),
    Doc("prod of an empty array is 1", F.prod, lambda e: (e.f(0),), _value(1.0)),
    Doc("mean of an empty array is NaN (the array API's mean)", F.mean, lambda e: (e.f(0),),
        _nan),
    Doc("sum over an empty axis gives zeros", lambda x: F.sum(x, axis=1), lambda e: (e.f(2, 0),),
        _all(_value([0.0, 0.0]), _backward_shapes)),
    Doc("matmul of an empty batch", F.matmul, lambda e: (e.f(0, 3), e.f(3, 2)),
        _all(_shape((0, 2)), _backward_shapes)),
    Doc("matmul over an empty inner axis gives zeros", F.matmul, lambda e: (e.f(2, 0), e.f(0, 3)),
        _all(_value(np.zeros((2, 3))), _backward_shapes)),
    Doc("softmax of an empty batch", F.softmax, lambda e: (e.f(0, 3),),
        _all(_shape((0, 3)), _backward_shapes)),
    Doc("conv2d of an empty batch", F.conv2d, lambda e: (e.f(0, 3, 5, 5), e.f(2, 3, 3, 3)),
        _all(_shape((0, 2, 3, 3)), _backward_shapes)),
    Doc("softmax_cross_entropy of an empty batch is NaN (a mean over no rows)",
        F.softmax_cross_entropy, lambda e: (e.f(0, 3), e.i(0)), _nan),
    Doc("sum of integers keeps the integer dtype and needs no gradient", F.sum,
        lambda e: (Variable(e.i(2, 3)),), _all(_value(6, "int64"), _constant)),
    Doc("exp of NaN is NaN, and so is its gradient (detect_anomaly() finds it)", F.exp,
        lambda e: (e.f(2, fill=float("nan")),), _all(_nan, _nan_gradient)),
    Doc("NaN scores give a NaN loss", F.softmax_cross_entropy,
        lambda e: (e.f(2, 3, fill=float("nan")), e.i(2)), _nan),
    Doc("float32 and float64 promote to float64; each gradient keeps its input's dtype", F.mul,
        lambda e: (e.f(2, 3), e.f(2, 3, dtype="float64")),
        _all(_dtype("float64"), _backward_shapes)),
]


@pytest.mark.parametrize("row", [_param(r) for r in DOCUMENTED])
def test_function_documented_result(backend, row):
    run_doc(row, Env(backend))


@pytest.mark.parametrize("op", ["add", "mul", "matmul"])
@pytest.mark.parametrize("kind", ["int64", "bool"])
def test_float_variable_with_integer_or_bool_array(backend, op, kind):
    """Either refused (TypeError naming the function and both dtypes) or computed, with the
    float input's gradient in its own dtype."""
    e = Env(backend)
    x = e.f(2, 3)
    other = e.i(3, 2) if op == "matmul" and kind == "int64" else \
        e.b(3, 2) if op == "matmul" else e.i(2, 3) if kind == "int64" else e.b(2, 3)
    try:
        y = getattr(F, op)(x, other)
    except TypeError as err:
        assert re.search(rf"{named(op)}: .*{kind}", str(err), re.I), str(err)
        return
    y.sum().backward()
    assert x.grad.dtype == x.dtype and x.grad.shape == x.shape


def test_pow_with_numpy_float64_exponent_keeps_float32():
    # a NumPy float64 scalar exponent is a weak scalar: float32 ** np.float64 stays float32
    x = Variable(np.ones(3, np.float32))
    y = x ** np.float64(2.0)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Variable, backward, creation helpers
# ---------------------------------------------------------------------------------------------
def _seeded_backward(seed_shape: tuple, seed_dtype: str) -> Callable:
    def call(x: Variable) -> None:
        y = F.exp(x)
        y.grad = Variable(np.ones(seed_shape, dtype=seed_dtype))
        y.backward()
    return call


VARIABLE_ROWS = [
    Bad("Variable(str)", Variable, lambda e: ("a",), TypeError,
        r"Variable wraps an array .* not builtins.str"),
    Bad("Variable(list)", Variable, lambda e: ([1.0, 2.0],), TypeError,
        r"Variable wraps an array .* not builtins.list.*xgrad.asarray"),
    Bad("Variable(Variable)", Variable, lambda e: (e.f(2),), TypeError,
        r"Variable wraps an array .* not xgrad.core.Variable"),
    Bad("Variable(NumPy scalar)", Variable, lambda e: (np.float32(1.0),), TypeError,
        r"Variable wraps .*float32"),
    Bad("Variable(int array, requires_grad=True)",
        lambda a: Variable(a, requires_grad=True), lambda e: (e.i(2),), TypeError,
        r"only floating-point Variables can require gradients, got \S*int64"),
    Bad("bool(Variable)", bool, lambda e: (e.f(2),), TypeError, r"truth value of a Variable"),
    Bad("len(0-d Variable)", len, lambda e: (e.f(),), TypeError, r"len\(\) of a 0-d Variable"),
    Bad("Variable.item() of two elements", lambda x: x.item(), lambda e: (e.f(2),), ValueError,
        r"size 1"),
    Bad("backward: seed gradient of the wrong shape", _seeded_backward((3,), "float32"),
        lambda e: (Variable(np.ones(2, np.float32)),), (ValueError, xgrad.GradientError),
        r"(seed|y\.grad).*\(3,\).*\(2,\)"),
    Bad("backward: seed gradient of the wrong dtype", _seeded_backward((2,), "float64"),
        lambda e: (Variable(np.ones(2, np.float32)),), (TypeError, xgrad.GradientError),
        r"(seed|y\.grad).*float64.*float32"),
    Bad("asarray: unknown dtype", lambda: xgrad.asarray([1.0], dtype="floatx"), lambda e: (),
        TypeError, r"backend 'numpy' has no dtype 'floatx'"),
    Bad("asarray: unknown backend", lambda: xgrad.asarray([1.0], backend="nope"),
        lambda e: (), xgrad.backends.BackendUnavailable,
        r"unknown backend 'nope'.*usable here"),
    Bad("asarray: unknown device", lambda: xgrad.asarray([1.0], device="cuda:3"), lambda e: (),
        ValueError, r"no device 'cuda:3'"),
    Bad("asarray: ragged lists", lambda: xgrad.asarray([[1.0, 2.0], [3.0]]), lambda e: (),
        ValueError, r"inhomogeneous|sequence"),
    Bad("asarray: a string", lambda: xgrad.asarray("abc"), lambda e: (), TypeError,
        r"asarray.*str"),
    Bad("asarray: None", lambda: xgrad.asarray(None), lambda e: (), TypeError,
        r"asarray.*None"),
    Bad("randn: a float size", lambda: xgrad.randn(2.5), lambda e: (), TypeError,
        r"randn.*2\.5"),
    Bad("use_backend: unknown name", xgrad.use_backend, lambda e: ("nope",),
        xgrad.backends.BackendUnavailable, r"unknown backend 'nope'"),
    Bad("using_config: unknown switch", xgrad.using_config, lambda e: ("nope", 1), ValueError,
        r"unknown config switch 'nope'; known: \['detect_anomaly'"),
]


@pytest.mark.parametrize("row", [_param(r) for r in VARIABLE_ROWS])
def test_variable_and_creation_refuse(row):
    run_bad(row, Env())


@pytest.mark.parametrize("scalar", [1000, -1000, 2**70])
def test_python_scalar_out_of_the_dtype_range_names_the_function(backend, scalar):
    x = Variable(backend.asarray(np.ones(2), dtype="int8"))
    with pytest.raises((OverflowError, ValueError), match=rf"^Mul: .*{scalar}.*int8"):
        x * scalar


def test_backward_of_a_graph_recorded_under_no_grad_does_nothing():
    x = Variable(np.ones(2, np.float32))
    with xgrad.no_grad():
        y = F.exp(x).sum()
    y.backward()
    assert x.grad is None and y.creator is None


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------
def _linear(e: Env) -> nn.Linear:
    layer = nn.Linear(4)
    layer(e.f(2, 3))
    return layer


def _batchnorm(e: Env) -> nn.BatchNorm:
    layer = nn.BatchNorm()
    layer(e.f(4, 3))
    return layer


LAYER_ROWS = [
    Bad("Linear: input of the wrong size", lambda m, x: m(x), lambda e: (_linear(e), e.f(2, 5)),
        ValueError, r"linear: x of shape \(2, 5\) and W of shape \(3, 4\)"),
    Bad("Linear: 0-d input", lambda m, x: m(x), lambda e: (_linear(e), e.f()), ValueError,
        r"linear: x of shape \(\)"),
    Bad("Linear: a string", lambda m, x: m(x), lambda e: (_linear(e), "a"), TypeError,
        r"Linear.*str"),
    Bad("Linear: another namespace", lambda m, x: m(x), lambda e: (_linear(e), e.foreign(2, 3)),
        xgrad.BackendMismatchError, r"Linear: inputs live on different backends.*to\("),
    Bad("Linear: int input", lambda m, x: m(x), lambda e: (_linear(e), e.i(2, 3)), TypeError,
        rf"linear.*{NS}int64"),
    Bad("Linear (lazy): a string at the first call", lambda m, x: m(x),
        lambda e: (nn.Linear(3), "a"), TypeError, r"Linear.*str"),
    Bad("Conv2d: 2-d input", lambda m, x: m(x), lambda e: (nn.Conv2d(2, 3), e.f(2, 3)),
        ValueError, r"Conv2d: expected an \(N, C, H, W\) input, got shape \(2, 3\)"),
    Bad("BatchNorm: 1-d input", lambda m, x: m(x), lambda e: (_batchnorm(e), e.f(3)),
        ValueError, r"batch_norm: x must be \(N, C, \.\.\.\), got shape \(3,\)"),
    Bad("BatchNorm: channels differ", lambda m, x: m(x), lambda e: (_batchnorm(e), e.f(4, 5)),
        ValueError, r"\(3,\).*\(4, 5\)|\(4, 5\).*\(3,\)"),
    Bad("EmbedID: float ids", lambda m, x: m(x), lambda e: (nn.EmbedID(5, 3), e.f(2)),
        TypeError, r"embed_id: .*integer"),
    Bad("EmbedID: id out of range", lambda m, x: m(x),
        lambda e: (nn.EmbedID(5, 3), e.i(2) + 7), ValueError, r"embed_id: ids must lie in"),
    Bad("Dropout: ratio 1.5", lambda m, x: m(x), lambda e: (nn.Dropout(1.5), e.f(2, 3)),
        ValueError, r"dropout_ratio must be in \[0, 1\), got 1.5"),
    Bad("Sequential: not a layer", nn.Sequential, lambda e: (3,), TypeError,
        r"Sequential: item 0 is a int"),
]


LAYER_CONSTRUCTION_ROWS = [
    Bad("Linear(-1)", lambda: nn.Linear(-1)(np.ones((2, 3), np.float32)), lambda e: (),
        ValueError, r"Linear.*-1"),
    Bad("Linear('a')", lambda: nn.Linear("a")(np.ones((2, 3), np.float32)), lambda e: (),
        TypeError, r"Linear.*'a'"),
    Bad("MLP(())", lambda: nn.MLP(())(np.ones((2, 3), np.float32)), lambda e: (),
        (TypeError, ValueError), r"MLP"),
]


@pytest.mark.parametrize("row", [_param(r) for r in LAYER_ROWS])
def test_layer_refuses(backend, row):
    run_bad(row, Env(backend))


@pytest.mark.parametrize("row", [_param(r) for r in LAYER_CONSTRUCTION_ROWS])
def test_layer_construction_refuses(row):
    run_bad(row, Env())


def test_layers_take_zero_size_batches(backend):
    e = Env(backend)
    mlp = nn.MLP((4, 2))
    x = e.f(0, 3)
    y = mlp(x)
    assert y.shape == (0, 2)
    y.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in mlp.params())
    assert_close(mlp.layers[0].W.grad, np.zeros((3, 4)))


def test_batchnorm_on_an_empty_batch_keeps_its_statistics(backend):
    """Refused, or computed without touching the running statistics."""
    e = Env(backend)
    layer = _batchnorm(e)
    before = snapshot(layer)
    try:
        y = layer(e.f(0, 3))
    except ValueError as err:
        assert re.search(r"batch_norm.*\(0, 3\)", str(err), re.I), str(err)
    else:
        assert y.shape == (0, 3)
    assert same(snapshot(layer), before), "running statistics changed"


# ---------------------------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------------------------
def _trained(e: Env, opt: optim.Optimizer) -> tuple:
    """A Linear(3 -> 2) and ``opt`` after one ordinary step (so the state is not empty)."""
    model = nn.Linear(2, in_size=3)
    opt.setup(model)
    F.sum(model(e.f(4, 3))).backward()
    opt.update()
    model.cleargrads()
    return model, opt


def _wrong_shape_grad(e: Env) -> tuple:
    """A trained Linear(3 -> 2) and its Adam, W with a good gradient, b with one of shape (5,)."""
    model, opt = _trained(e, optim.Adam())
    model.W.grad, model.b.grad = Variable(e.arr(3, 2)), Variable(e.arr(5))
    return model, opt


OPTIMIZER_ROWS = [
    Bad("update before setup", lambda o: o.update(), lambda e: (optim.SGD(),), RuntimeError,
        r"SGD: call \.setup\(model\) first"),
    Bad("setup(int)", lambda o: o.setup(3), lambda e: (optim.SGD(),), TypeError,
        r"SGD.*int"),
    Bad("setup([array])", lambda o, a: o.setup([a]), lambda e: (optim.SGD(), e.arr(2)),
        TypeError, r"SGD\.setup: item 0 is a \w+, not a Parameter"),
    Bad("SGD(lr='a')", optim.SGD, lambda e: ("a",), (TypeError, ValueError), r"SGD.*lr"),
    Bad("Adam: a gradient of the wrong shape", lambda m, o: o.update(), _wrong_shape_grad,
        ValueError, r"Adam.*b.*\(5,\).*\(2,\)"),
]


@pytest.mark.parametrize("row", [_param(r) for r in OPTIMIZER_ROWS])
def test_optimizer_refuses(backend, row):
    run_bad(row, Env(backend))


@pytest.mark.parametrize("grad", ["float64", "another namespace"])
def test_optimizer_keeps_parameter_dtype_and_namespace(backend, grad):
    """A gradient of another dtype or namespace is refused (the optimizer named, nothing
    changed) or applied without changing the parameter's dtype and namespace."""
    e = Env(backend)
    model, opt = _trained(e, optim.Adam())
    model.W.grad = Variable(e.arr(3, 2, dtype="float64")) if grad == "float64" else \
        e.foreign(3, 2)
    before = snapshot([model, opt])
    kind, dtype = type(model.W.data), model.W.dtype
    try:
        opt.update()
    except (TypeError, ValueError) as err:
        assert re.search(r"Adam.*W", str(err)), str(err)
        assert same(snapshot([model, opt]), before)
    else:
        assert type(model.W.data) is kind and model.W.dtype == dtype


def test_optimizer_documented_nan_gradient_propagates():
    # a NaN gradient is applied like any other (use detect_anomaly() to find where it came from)
    e = Env()
    model, opt = _trained(e, optim.SGD())
    model.W.grad = Variable(e.arr(3, 2, fill=float("nan")))
    opt.update()
    assert np.isnan(to_host(model.W)).all() and model.W.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Saving and loading, data loading
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def files(tmp_path):
    """A saved Linear(3 -> 2), a file that is not an archive, and a folder."""
    model = nn.Linear(2, in_size=3)
    good = tmp_path / "model.npz"
    io.save(model, good)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip archive")
    return {"good": good, "garbage": garbage, "dir": tmp_path,
            "missing": tmp_path / "missing.npz", "nodir": tmp_path / "no" / "model.npz"}


IO_ROWS = [
    Bad("load: no such file", lambda p: io.load(p), lambda f: (f["missing"],),
        FileNotFoundError, r"xgrad.io.load: no such file: .*missing.npz"),
    Bad("load: not an archive", lambda p: io.load(p), lambda f: (f["garbage"],),
        io.StateError, r"garbage.npz: not an .npz archive"),
    Bad("load: a folder", lambda p: io.load(p), lambda f: (f["dir"],), io.StateError,
        r"not an .npz archive"),
    Bad("load_into: shapes differ", lambda m, p: io.load_into(m, p),
        lambda f: (nn.Linear(2, in_size=4), f["good"]), io.StateError,
        r"model.npz: key 'W': shape \(3, 2\) in the file, \(4, 2\)"),
    Bad("load_into: not an archive", lambda m, p: io.load_into(m, p),
        lambda f: (nn.Linear(2, in_size=3), f["garbage"]), io.StateError, r"not an .npz"),
    Bad("load_into: an int", lambda m, p: io.load_into(m, p), lambda f: (3, f["good"]),
        TypeError, r"load_into: cannot load into a int"),
    Bad("save: not a model", lambda o, p: io.save(o, p), lambda f: (object(), f["missing"]),
        TypeError, r"xgrad.io.save: cannot save a object"),
    Bad("save: into a missing folder", lambda m, p: io.save(m, p),
        lambda f: (nn.Linear(2, in_size=3), f["nodir"]), FileNotFoundError,
        r"no[/\\]model\.npz"),
    Bad("DataLoader: batch_size 0", DataLoader, lambda f: (Dataset(np.ones((4, 2))), 0),
        ValueError, r"DataLoader: batch_size must be a positive int, got 0"),
    Bad("DataLoader: batch_size 1.5", DataLoader, lambda f: (Dataset(np.ones((4, 2))), 1.5),
        ValueError, r"DataLoader: batch_size must be a positive int, got 1.5"),
    Bad("DataLoader: batch_size True", DataLoader, lambda f: (Dataset(np.ones((4, 2))), True),
        ValueError, r"got True"),
    Bad("DataLoader: unknown backend", lambda d: DataLoader(d, 2, backend="nope"),
        lambda f: (Dataset(np.ones((4, 2))),), xgrad.backends.BackendUnavailable,
        r"unknown backend 'nope'"),
    Bad("DataLoader: not a dataset", lambda d: list(DataLoader(d, 2)), lambda f: (3,),
        TypeError, r"DataLoader.*int"),
    Bad("Dataset: labels of another length", Dataset,
        lambda f: (np.ones((4, 2)), np.ones(3)), ValueError, r"Dataset: 4 samples but 3 labels"),
    Bad("Dataset: a string", lambda s: list(DataLoader(Dataset(s), 1)), lambda f: ("abc",),
        TypeError, r"Dataset.*str"),
]


@pytest.mark.parametrize("row", [_param(r) for r in IO_ROWS])
def test_io_and_data_refuse(files, row):
    args = row.args(files)
    saved = files["good"].read_bytes()
    run_bad(Bad(row.id, row.call, lambda _: args, row.error, row.match), None)
    assert files["good"].read_bytes() == saved
    assert not files["missing"].exists() and sorted(os.listdir(files["dir"])) == [
        "garbage.npz", "model.npz"]


def test_loading_into_a_model_changes_nothing_on_a_mismatch(files):
    model = nn.Linear(2, in_size=4)
    before = snapshot(model)
    with pytest.raises(io.StateError):
        io.load_into(model, files["good"])
    assert same(snapshot(model), before)


def test_dataloader_over_an_empty_dataset_yields_nothing():
    loader = DataLoader(Dataset(np.ones((0, 2)), np.ones(0)), 4)
    assert len(loader) == 0 and list(loader) == []

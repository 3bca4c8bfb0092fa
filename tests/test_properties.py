"""Property tests: random computation graphs, checked by gradcheck and across backends.

A graph is drawn as a *program*: input shapes, a list of steps (an op and the nodes it reads) and
the outputs. Operands are drawn among earlier nodes (most recent first), so programs have shared
subexpressions, diamonds, repeated operands (``mul(v3, v3)``), broadcasting and multi-output
steps; a failure shrinks to a short program, printed as text in the report. Values stay bounded:
each node carries a static bound on its magnitude, and a step whose bound would pass ``LIMIT`` is
wrapped in ``tanh`` (shown as ``tanh(...)`` in the program), so finite differences stay accurate at
any depth. Ops are xgrad.functions by name, plus ``safediv(a, b)`` = a / (2 + tanh(b)),
``cube(x)`` = x ** 3 and ``sincos``, a two-output Function defined here; ``exp(tanh(v))`` and
``log1p(square(v))`` show an operand squashed first.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from optable import OPS as TABLE

import xgrad
import xgrad.functions as F
from xgrad import Function, Variable
from xgrad.core import get_namespace
from xgrad.testing import assert_close, gradcheck, gradgradcheck

MAX_SIZE = 24  # elements per node
MAX_NDIM = 3
LIMIT = 10.0  # a node whose static bound would exceed this is squashed by tanh
LEAF_SHAPES = [(), (3,), (2, 3), (2, 1), (1, 3), (3, 2), (2, 2, 3)]

SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


class SinCos(Function):
    """A two-output function (sin x, cos x); either output may go unused."""

    def forward(self, x):
        xp = get_namespace(x)
        return xp.sin(x), xp.cos(x)

    def backward(self, g0, g1):
        x = self.inputs[0]
        gx = None
        if g0 is not None:
            gx = g0 * F.cos(x)
        if g1 is not None:
            t = g1 * F.sin(x)
            gx = -t if gx is None else gx - t
        return gx


# ---------------------------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One op: ``op(*args, **kw)``; ``pre`` is applied to the first operand first and ``post``
    wraps the result(s) in tanh."""

    op: str
    args: tuple
    kw: tuple = ()  # ((name, value), ...)
    pre: str | None = None
    post: bool = False
    n_out: int = 1


class Program:
    """Leaf shapes, steps and output nodes; its repr is the program as readable text."""

    def __init__(self, shapes: tuple, steps: tuple, outputs: tuple, seed: int) -> None:
        self.shapes, self.steps, self.outputs, self.seed = shapes, steps, outputs, seed

    def names(self) -> list[str]:
        n = len(self.shapes) + sum(s.n_out for s in self.steps)
        return [f"x{i}" if i < len(self.shapes) else f"v{i}" for i in range(n)]

    def __repr__(self) -> str:
        names = self.names()
        lines = ["inputs: " + ", ".join(f"x{i}{s}" for i, s in enumerate(self.shapes))
                 + f"  (uniform(-2, 2), seed {self.seed})"]
        node = len(self.shapes)
        for s in self.steps:
            args = [names[a] for a in s.args]
            if s.pre:
                args[0] = f"{s.pre}({args[0]})"
            args += [f"{k}={v!r}" for k, v in s.kw]
            call = f"{s.op}({', '.join(args)})"
            lines.append(f"{', '.join(names[node:node + s.n_out])} = "
                         + (f"tanh({call})" if s.post else call))
            node += s.n_out
        lines.append("outputs: " + ", ".join(names[o] for o in self.outputs))
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))  # hypothesis prints the falsifying program as text

    def inputs(self, backend: Any, dtype: str) -> list:
        """The leaf arrays on ``backend`` (a BackendCase); 0-d leaves come as shape (1,)
        (gradcheck turns a perturbed 0-d NumPy array into a NumPy scalar, which no Variable
        wraps) and the program reshapes them."""
        rng = np.random.default_rng(self.seed)
        return [backend.asarray(rng.uniform(-2.0, 2.0, size=s or (1,)), dtype=dtype)
                for s in self.shapes]

    def __call__(self, *leaves: Any) -> tuple:
        """Run the program on Variables; returns the output Variables."""
        nodes = [v if s else F.reshape(v, ()) for v, s in zip(leaves, self.shapes)]
        for s in self.steps:
            args = [nodes[a] for a in s.args]
            if s.pre:
                args[0] = PRE[s.pre](args[0])
            y = APPLY[s.op](*args, **dict(s.kw))
            ys = list(y) if isinstance(y, (tuple, list)) else [y]
            nodes.extend([F.tanh(v) for v in ys] if s.post else ys)
        return tuple(nodes[o] for o in self.outputs)


PRE = {"tanh": F.tanh, "square": F.square}



def _props(kind: str) -> dict:
    """The table's functions of one property kind: name -> Prop."""
    return {op: row.prop for op, row in TABLE.items() if row.prop and row.prop.kind == kind}


# elementwise: name -> (bound of the result from the operand's bound, pre-function or None)
UNARY = {op: (p.bound, p.pre) for op, p in _props("unary").items()}
UNARY["cube"] = (lambda b: b ** 3, None)
# broadcasting binary ops: name -> bound of the result
BINARY = {op: p.bound for op, p in _props("binary").items()}
BINARY["safediv"] = lambda a, b: a
# reductions over axis (None or an int) with keepdims: name -> bound from (bound, count)
REDUCE = {op: p.bound for op, p in _props("reduce").items()}
# same-shape ops along one axis: name -> bound from (bound, length of the axis)
ALONG = {op: p.bound for op, p in _props("along").items()}

APPLY = {name: getattr(F, name) for name in
         [*UNARY, *BINARY, *REDUCE, *ALONG, "matmul", "broadcast_to", "reshape", "transpose",
          "flip", "expand_dims", "squeeze", "take", "split", "unstack"] if hasattr(F, name)}
APPLY.update({
    "cube": lambda x: x ** 3,  # PowScalar through the operator
    "neg": lambda x: -x,
    "sub": lambda a, b: a - b,
    "safediv": lambda a, b: F.div(a, F.tanh(b) + 2.0),  # denominators in [1, 3]
    "getitem": lambda x, key: x[key],
    "concat": lambda a, b, axis: F.concat([a, b], axis=axis),
    "stack": lambda a, b, axis: F.stack([a, b], axis=axis),
    "sincos": lambda x: SinCos()(x),
})
OPS = ["tanh", *[op for op in APPLY if op != "tanh"]]  # tanh first: what a step shrinks to


def _size(shape: tuple) -> int:
    return math.prod(shape)


def _broadcast(a: tuple, b: tuple) -> tuple | None:
    out = []
    for x, y in itertools.zip_longest(reversed(a), reversed(b), fillvalue=1):
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(reversed(out))


def _matmul_shape(a: tuple, b: tuple) -> tuple | None:
    if not a or not b:
        return None
    if len(a) == 1 and len(b) == 1:
        return () if a[0] == b[0] else None
    if len(b) == 1:
        return a[:-1] if a[-1] == b[0] else None
    if len(a) == 1:
        return b[:-2] + b[-1:] if a[0] == b[-2] else None
    if a[-1] != b[-2]:
        return None
    batch = _broadcast(a[:-2], b[:-2])
    return None if batch is None else batch + (a[-2], b[-1])


def _concat_shape(a: tuple, b: tuple, axis: int) -> tuple | None:
    if not a or len(a) != len(b) or any(x != y for i, (x, y) in enumerate(zip(a, b))
                                        if i != axis):
        return None
    return a[:axis] + (a[axis] + b[axis],) + a[axis + 1:]


def _fits(shape: tuple | None) -> bool:
    return shape is not None and len(shape) <= MAX_NDIM and _size(shape) <= MAX_SIZE


def _reshapes(shape: tuple) -> list:
    n = _size(shape)
    return [dims for nd in range(1, MAX_NDIM + 1) for dims in
            itertools.product(range(1, n + 1), repeat=nd) if _size(dims) == n and dims != shape]


def _broadcast_targets(shape: tuple) -> list:
    out = [(2,) + shape] if len(shape) < MAX_NDIM else []
    out += [shape[:i] + (3,) + shape[i + 1:] for i, d in enumerate(shape) if d == 1]
    return [t for t in out if _fits(t)]


def _splits(shape: tuple) -> list:
    """(sections, axis) pairs for F.split (equal sections along an axis)."""
    return [(k, ax) for ax, d in enumerate(shape) for k in (2, 3) if d % k == 0]


# Which nodes an op can take as its (first) operand, by shape.
_FIRST = {
    "matmul": lambda s, shapes: any(_fits(_matmul_shape(s, t)) for t in shapes),
    "concat": lambda s, shapes: len(s) >= 1 and 2 * _size(s) <= MAX_SIZE,
    "stack": lambda s, shapes: len(s) < MAX_NDIM and 2 * _size(s) <= MAX_SIZE,
    "broadcast_to": lambda s, shapes: bool(_broadcast_targets(s)),
    "reshape": lambda s, shapes: bool(_reshapes(s)),
    "transpose": lambda s, shapes: len(s) >= 2,
    "expand_dims": lambda s, shapes: len(s) < MAX_NDIM,
    "squeeze": lambda s, shapes: 1 in s,
    "split": lambda s, shapes: bool(_splits(s)),
    "unstack": lambda s, shapes: any(1 <= d <= 3 for d in s),
    **{op: (lambda s, shapes: len(s) >= 1) for op in
       [*ALONG, "getitem", "take", "flip"]},
}


class _Choices:
    """Turns one drawn list of integers into the choices of one step. Every choice is an index
    taken modulo the number of options, so any integers make a valid step and shrinking them to
    0 gives the simplest one (tanh of the most recent node)."""

    def __init__(self, raw: list) -> None:
        self.raw, self.i = raw, 0

    def index(self, n: int) -> int:
        v = self.raw[self.i % len(self.raw)]
        self.i += 1
        return v % n

    def pick(self, options: list) -> Any:
        return options[self.index(len(options))]

    def operand(self, cands: list) -> int:
        # three times in four the most recent candidate, so chains grow deep
        return cands[0] if self.index(4) < 3 else self.pick(cands)


RAW_STEP = st.lists(st.integers(0, 2 ** 16), min_size=12, max_size=12)


def _step(c: _Choices, op: str, nodes: list) -> tuple[Step, list]:
    """Draw the operands and parameters of ``op``: (the Step, [(shape, bound)] per output)."""
    shapes = [s for s, _ in nodes]
    first = _FIRST.get(op, lambda s, shapes: True)
    a = c.operand([i for i in reversed(range(len(nodes))) if first(shapes[i], shapes)])
    shape, bound = nodes[a]
    axis = c.index(len(shape)) if shape else None
    if op in UNARY:
        rule, pre = UNARY[op]
        pre = pre if pre == "square" or bound > 2.0 else None
        b = 1.0 if pre == "tanh" else bound * bound if pre == "square" else bound
        return Step(op, (a,), pre=pre), [(shape, rule(b))]
    if op == "sincos":
        return Step(op, (a,), n_out=2), [(shape, 1.0)] * 2
    if op in BINARY or op == "matmul":
        rule = _matmul_shape if op == "matmul" else _broadcast
        b = c.operand([i for i in reversed(range(len(nodes))) if _fits(rule(shape, shapes[i]))])
        out = rule(shape, shapes[b])
        bnd = bound * nodes[b][1] * shape[-1] if op == "matmul" else BINARY[op](bound, nodes[b][1])
        return Step(op, (a, b)), [(out, bnd)]
    if op in ("concat", "stack"):
        if op == "concat":
            cands = [i for i in reversed(range(len(nodes)))
                     if _fits(_concat_shape(shape, shapes[i], axis))]
        else:
            axis = c.index(len(shape) + 1)
            cands = [i for i in reversed(range(len(nodes))) if shapes[i] == shape]
        b = c.operand(cands)  # a itself is always a candidate
        out = _concat_shape(shape, shapes[b], axis) if op == "concat" else \
            shape[:axis] + (2,) + shape[axis:]
        return Step(op, (a, b), (("axis", axis),)), [(out, max(bound, nodes[b][1]))]
    if op in REDUCE:
        axis = c.pick([None, *range(len(shape))])
        keep = c.pick([False, True])
        axes = range(len(shape)) if axis is None else (axis,)
        out = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keep else \
            tuple(d for i, d in enumerate(shape) if i not in axes)
        n = _size(tuple(shape[i] for i in axes))
        return (Step(op, (a,), (("axis", axis), ("keepdims", keep))),
                [(out, REDUCE[op](bound, n))])
    if op in ALONG:
        return Step(op, (a,), (("axis", axis),)), [(shape, ALONG[op](bound, shape[axis]))]
    if op == "flip":
        return Step(op, (a,), (("axis", c.pick([None, axis])),)), [(shape, bound)]
    if op in ("broadcast_to", "reshape"):
        target = c.pick(_broadcast_targets(shape) if op == "broadcast_to" else _reshapes(shape))
        return Step(op, (a,), (("shape", target),)), [(target, bound)]
    if op == "transpose":
        perms = [p for p in itertools.permutations(range(len(shape)))
                 if p != tuple(range(len(shape)))]
        perm = c.pick(perms)
        return Step(op, (a,), (("axes", perm),)), [(tuple(shape[i] for i in perm), bound)]
    if op == "expand_dims":
        axis = c.index(len(shape) + 1)
        return Step(op, (a,), (("axis", axis),)), [(shape[:axis] + (1,) + shape[axis:], bound)]
    if op == "squeeze":
        axis = c.pick([i for i, d in enumerate(shape) if d == 1])
        return Step(op, (a,), (("axis", axis),)), [(shape[:axis] + shape[axis + 1:], bound)]
    if op in ("getitem", "take"):
        if op == "getitem" and c.pick([True, False]):  # a slice along axis 0
            axis, lo = 0, c.index(shape[0])
            key = slice(lo, lo + 1 + c.index(shape[0] - lo))
            n = key.stop - key.start
            kw = (("key", key),)
        else:  # an index list with repeats: backward must add them up
            axis = 0 if op == "getitem" else axis
            rest = _size(shape) // shape[axis]
            n = 1 + c.index(max(1, min(4, MAX_SIZE // rest)))
            idx = [c.index(shape[axis]) for _ in range(n)]
            kw = (("key", idx),) if op == "getitem" else (("indices", idx), ("axis", axis))
        return Step(op, (a,), kw), [(shape[:axis] + (n,) + shape[axis + 1:], bound)]
    if op == "split":
        k, axis = c.pick(_splits(shape))
        part = shape[:axis] + (shape[axis] // k,) + shape[axis + 1:]
        return Step(op, (a,), (("indices_or_sections", k), ("axis", axis)), n_out=k), \
            [(part, bound)] * k
    # unstack
    axis = c.pick([i for i, d in enumerate(shape) if 1 <= d <= 3])
    part = shape[:axis] + shape[axis + 1:]
    return Step(op, (a,), (("axis", axis),), n_out=shape[axis]), [(part, bound)] * shape[axis]


def _usable(op: str, shapes: list) -> bool:
    first = _FIRST.get(op)
    return first is None or any(first(s, shapes) for s in shapes)


@st.composite
def programs(draw: Any, min_steps: int = 1, max_steps: int = 50) -> Program:
    """A random Program of ``min_steps``..``max_steps`` steps over 1..3 leaves."""
    shapes = tuple(draw(st.lists(st.sampled_from(LEAF_SHAPES), min_size=1, max_size=3)))
    raws = draw(st.lists(RAW_STEP, min_size=min_steps, max_size=max_steps))
    nodes = [(s, 2.0) for s in shapes]  # (shape, bound on |value|)
    steps = []
    for raw in raws:
        c = _Choices(raw)
        op = c.pick([op for op in OPS if _usable(op, [s for s, _ in nodes])])
        step, outs = _step(c, op, nodes)
        post = any(b > LIMIT for _, b in outs)
        steps.append(Step(step.op, step.args, step.kw, step.pre, post, len(outs)))
        nodes.extend((s, 1.0 if post else b) for s, b in outs)
    last = len(nodes) - 1
    extra = draw(st.lists(st.integers(0, last - 1), max_size=2, unique=True)) if last else []
    return Program(shapes, tuple(steps), (last, *[e for e in extra if e != last]),
                   draw(st.integers(0, 2 ** 16)))


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------
# Libraries whose eager ops cost ~100 us (JAX dispatches each op through XLA): a quarter of the
# examples keeps their leg within CI's time while every program shape is still drawn.
_SLOW_BACKENDS = ("jax",)


def _examples(backend: Any, n: int) -> int:
    """Fewer examples on array_api_strict's fake devices, which are slow and mostly repeat, and
    on backends with a high per-op cost."""
    if backend.device_name is None and backend.name not in _SLOW_BACKENDS:
        return n
    return max(5, n // 4)


def _with_examples(progs: list) -> Any:
    """Decorate a @given test with explicit ``program=`` examples."""
    def deco(f: Any) -> Any:
        for p in reversed(progs):
            f = example(program=p)(f)
        return f
    return deco


def test_program_text_is_readable():
    p = Program(((2, 3), (3,)), (Step("add", (0, 1)), Step("sincos", (2,), n_out=2),
                                 Step("sum", (3,), (("axis", 1),), post=True),
                                 Step("exp", (5,), pre="tanh")), (6, 4), 7)
    assert repr(p) == ("inputs: x0(2, 3), x1(3,)  (uniform(-2, 2), seed 7)\n"
                       "v2 = add(x0, x1)\n"
                       "v3, v4 = sincos(v2)\n"
                       "v5 = tanh(sum(v3, axis=1))\n"
                       "v6 = exp(tanh(v5))\n"
                       "outputs: v6, v4")
    ys = p(Variable(np.zeros((2, 3))), Variable(np.zeros(3)))
    assert_close(ys[0], [1.0, 1.0])
    assert_close(ys[1], np.ones((2, 3)))


# (strategy, examples): short programs shrink well; deep ones (40-50 steps) test long chains
SIZES = {"short": (programs(), 100), "deep": (programs(min_steps=40), 25)}

# Programs this test once found failing, run first every time.
REGRESSIONS = [
    # prod's backward on a 0-d NumPy array holding 0 (NumPy turns 0-d results into scalars)
    Program(((),), (Step("sub", (0, 0)), Step("prod", (1,))), (2,), 0),
]


@pytest.mark.parametrize("size", list(SIZES))
def test_gradcheck_random_graphs(backend, size):
    if not backend.supports("float64"):
        pytest.skip("float32 finite differences are too coarse for random deep graphs; "
                    "test_backends_agree_with_numpy checks this device's float32 gradients")
    strategy, n = SIZES[size]

    @settings(max_examples=_examples(backend, n), **SETTINGS)
    @given(program=strategy)
    @_with_examples(REGRESSIONS if size == "short" else [])
    def check(program: Program) -> None:
        note(repr(program))
        gradcheck(program, *program.inputs(backend, "float64"))

    check()


def test_gradgradcheck_random_graphs(backend):
    # double backward goes through every backward rule's own graph (create_graph=True)
    if backend.device_name is not None:
        pytest.skip("double backward: numpy and array_api_strict's default device suffice")

    @settings(max_examples=30, **SETTINGS)
    @given(program=programs(max_steps=20))
    def check(program: Program) -> None:
        note(repr(program))
        gradgradcheck(program, *program.inputs(backend, "float64"))

    check()


class _NumpyCase:
    """Enough of a BackendCase to make the numpy reference inputs."""

    @staticmethod
    def asarray(obj: Any, dtype: str) -> Any:
        return np.asarray(obj, dtype=dtype)


NUMPY = _NumpyCase()


def _run(program: Program, arrays: list) -> tuple[list, list]:
    """Values of the outputs and gradients of the leaves, for a fixed cotangent per output."""
    leaves = [Variable(a) for a in arrays]
    ys = program(*leaves)
    rng = np.random.default_rng(program.seed + 1)
    loss = None
    for y in ys:
        u = xgrad.asarray(rng.standard_normal(y.shape), dtype=y.dtype, backend=y.backend,
                          device=y.device)
        term = (y * u).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    return list(ys), [v.grad for v in leaves]


@pytest.mark.parametrize("size", list(SIZES))
def test_backends_agree_with_numpy(backend, size):
    if backend.name == "numpy":
        pytest.skip("compares another backend with numpy")
    strategy, n = SIZES[size]

    @settings(max_examples=_examples(backend, n), **SETTINGS)
    @given(program=strategy, dtype=st.sampled_from(["float32", "float64"]))
    def check(program: Program, dtype: str) -> None:
        dtype = dtype if backend.supports(dtype) else "float32"
        note(repr(program))
        ref_ys, ref_gs = _run(program, program.inputs(NUMPY, dtype))
        ys, gs = _run(program, program.inputs(backend, dtype))
        for i, (y, r) in enumerate(zip(ys, ref_ys)):
            assert y.device == backend.device
            assert str(y.dtype).endswith(dtype), f"output {i} is {y.dtype}, not {dtype}"
            assert_close(y, r, err_msg=f"output {i}: ")
        for i, (g, r) in enumerate(zip(gs, ref_gs)):
            assert (g is None) == (r is None), f"gradient of x{i}: {g} vs numpy's {r}"
            if g is not None:
                assert str(g.dtype).endswith(dtype), f"gradient of x{i} is {g.dtype}"
                assert g.device == backend.device
                assert_close(g, r, err_msg=f"gradient of x{i}: ")

    check()


def test_programs_reach_depth_and_every_op():
    """The strategy really draws deep graphs, shared nodes and every op (not a vacuous test)."""
    seen_ops: set = set()
    depths = []
    shared = 0

    @settings(max_examples=60, **SETTINGS)
    @given(program=programs() | programs(min_steps=40))
    def collect(program: Program) -> None:
        nonlocal shared
        depth = [0] * len(program.shapes)
        uses: dict = {}
        for s in program.steps:
            seen_ops.add(s.op)
            d = 1 + max(depth[a] for a in s.args)
            depth.extend([d] * s.n_out)
            for a in s.args:
                uses[a] = uses.get(a, 0) + 1
        depths.append(max(depth))
        shared += any(n > 1 for n in uses.values())

    collect()
    assert seen_ops == set(OPS)
    assert max(depths) >= 30 and shared >= 10

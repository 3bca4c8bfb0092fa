"""The common checks of every public function, from the one table (tests/optable.py).

Every row runs on every backend: forward against the reference, gradcheck, gradgradcheck, and
float32 in -> float32 out, float32 gradients (first and second order), everything on the
backend's device. Special values, ties, stability and error messages live in
tests/test_functions_{math,shape,reduce,linalg,nn,conv}.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from optable import CASES, OPS, Case, host_inputs

import xgrad.functions as F
from xgrad import Variable
from xgrad.testing import assert_close, gradcheck, gradgradcheck, to_host


def inputs(backend: Any, case: Case, dtype: str) -> list:
    return [backend.asarray(h, dtype=dtype) for h in host_inputs(case)]


def best_dtype(backend: Any) -> str:
    return "float64" if backend.supports("float64") else "float32"


def as_tuple(y: Any) -> tuple:
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def test_every_public_function_has_a_main_row():
    """Adding a function without its row fails here; every row names a public function."""
    assert sorted(set(F.__all__) - set(OPS)) == []
    assert sorted({c.op for c in CASES} - set(F.__all__)) == []
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c for c in CASES if c.ref is not None], ids=str)
def test_forward_matches_numpy(backend, case):
    xs = inputs(backend, case, best_dtype(backend))
    ys = as_tuple(case.fn(*[Variable(x) for x in xs]))
    refs = as_tuple(case.ref(*[to_host(x).astype(np.float64) for x in xs]))
    assert len(ys) == len(refs)
    for y, r in zip(ys, refs):
        assert isinstance(y, Variable)
        assert_close(y, np.asarray(r), err_msg=f"{case.name}: ")


@pytest.mark.parametrize("case", [c for c in CASES if c.grad], ids=str)
def test_gradcheck(backend, case):
    assert gradcheck(case.fn, *inputs(backend, case, best_dtype(backend)))


@pytest.mark.parametrize("case", [c for c in CASES if c.grad and c.twice], ids=str)
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
    if not case.grad:
        return
    for y in ys:
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

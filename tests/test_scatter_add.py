"""Backend.scatter_add: the native kernels and the portable version written in the standard
agree with NumPy's add.at on every backend, keep float32 precision, and use memory linear in
values + table (the portable one is what array_api_strict runs)."""

import tracemalloc

import numpy as np
import pytest

import xgrad
import xgrad.functions as F
from xgrad import Parameter, Variable
from xgrad.backends.base import Backend
from xgrad.testing import assert_close, to_host
from xgrad.testing.plugin import BackendCase

RNG = np.random.default_rng(7)


def _ids(shape, high, low=0):
    return RNG.integers(low, high, size=shape)


CASES = {  # table shape, key made of host index arrays / slices
    "rows": ((6, 3), lambda: (_ids(10, 6), Ellipsis)),
    "rows, plain": ((6, 3), lambda: (_ids(10, 6),)),
    "negative rows": ((6, 3), lambda: (_ids(10, 6, low=-6), Ellipsis)),
    "2-d ids": ((5, 4), lambda: (_ids((3, 4), 5), Ellipsis)),
    "middle axis": ((2, 5, 3), lambda: (slice(None), _ids(7, 5), slice(None))),
    "last axis": ((3, 5), lambda: (slice(None), _ids(9, 5))),
    "two arrays": ((4, 5), lambda: (_ids(12, 4), _ids(12, 5))),
    "arrays and an int": ((4, 5, 2), lambda: (_ids(6, 4), _ids(6, 5), 1)),
    "int then array": ((3, 6), lambda: (2, _ids(8, 6))),
    "empty ids": ((4, 3), lambda: (np.zeros(0, dtype=np.int64), Ellipsis)),
}


def _on(backend, key):
    return tuple(backend.asarray(k) if isinstance(k, np.ndarray) else k for k in key)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", ["backend", "portable"])
def test_scatter_add_matches_add_at(backend, case, impl):
    shape, make = CASES[case]
    key = make()
    vals = RNG.standard_normal(np.zeros(shape)[key].shape).astype(np.float32)
    want = np.zeros(shape, np.float32)
    np.add.at(want, key, vals)
    b = backend.backend
    f = b.scatter_add if impl == "backend" else lambda *a: Backend.scatter_add(b, *a)
    got = f(shape, _on(backend, key), backend.asarray(vals))
    assert got.dtype == backend.xp.float32 and got.device == backend.device
    assert_close(got, want)


def test_portable_scatter_add_keeps_small_sums_exact(backend):
    """A run of small values after a run of large ones keeps its own precision (a global
    cumulative sum with differences would lose it in the large running total)."""
    ids = np.array([0] * 1000 + [1] * 7 + [2])
    vals = np.concatenate([np.full(1000, 1e4), np.full(7, 1e-3), [-5e-4]]).astype(np.float32)
    RNG.shuffle(perm := np.arange(ids.size))
    got = Backend.scatter_add(backend.backend, (3,), (backend.asarray(ids[perm]),),
                              backend.asarray(vals[perm]))
    got = to_host(got)
    np.testing.assert_allclose(got, [1e7, 7e-3, -5e-4], rtol=1e-5)


def test_portable_scatter_add_nan_stays_in_its_row(backend):
    vals = np.array([[np.inf, 1.0], [1.0, 2.0], [np.nan, 0.0]], np.float32)
    ids = np.array([0, 1, 2])
    got = to_host(Backend.scatter_add(backend.backend, (4, 2), (backend.asarray(ids), Ellipsis),
                                      backend.asarray(vals)))
    np.testing.assert_array_equal(got[1], [1.0, 2.0])
    np.testing.assert_array_equal(got[3], [0.0, 0.0])
    assert np.isinf(got[0, 0]) and np.isnan(got[2, 0])


def test_embed_id_backward_with_repeated_ids(backend):
    W = RNG.standard_normal((7, 4)).astype(np.float32)
    ids = np.array([[1, 3, 1], [6, 1, 0]])
    gy = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    w = Parameter(backend.asarray(W))
    y = F.embed_id(backend.asarray(ids), w)
    (y * Variable(backend.asarray(gy))).sum().backward()
    want = np.zeros_like(W)
    np.add.at(want, ids, gy)
    assert_close(w.grad, want)


def test_portable_scatter_add_memory_is_linear():
    """20,000 x 64 float32 table (5.1 MB), 4,096 ids (1 MB of values) on array_api_strict
    (host memory that tracemalloc sees): the one-hot product this replaces needed
    size(values) x size(table) (~1.3e11 elements)."""
    backend = BackendCase("array_api_strict")
    v, d, n = 20_000, 64, 4_096
    w = Parameter(backend.asarray(RNG.standard_normal((v, d)).astype(np.float32)))
    ids = backend.asarray(RNG.integers(0, v, size=n))
    gy = backend.asarray(RNG.standard_normal((n, d)).astype(np.float32))
    table, values = v * d * 4, n * d * 4
    tracemalloc.start()
    try:
        y = F.embed_id(ids, w)
        (y * Variable(gy)).sum().backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * table + 12 * values, peak
    want = np.zeros((v, d), np.float32)
    np.add.at(want, to_host(ids), to_host(gy))
    assert_close(w.grad, want)
    assert xgrad.backends.backend_of(w.grad.data).name == "array_api_strict"

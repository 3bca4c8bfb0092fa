"""Reductions: hand values, ties, zeros in prod, stability, corrections, errors (the common
gradcheck/dtype/device checks are in test_functions_table.py)."""

import numpy as np
import pytest

import xgrad.functions as F
from xgrad import Variable
from xgrad.testing import assert_close, gradcheck, gradgradcheck, to_host


def var(backend, value, dtype="float64"):
    return Variable(backend.asarray(value, dtype=backend.dtype(dtype)))


def test_sum_mean_axis_tuple_and_keepdims(backend):
    h = np.arange(24.0).reshape(2, 3, 4)
    x = var(backend, h)
    y = F.sum(x, axis=(0, -1), keepdims=True)
    assert y.shape == (1, 3, 1)
    assert_close(y, h.sum((0, 2), keepdims=True))
    m = F.mean(x, axis=(0, 2))
    m.backward()
    assert m.shape == (3,)
    assert_close(m, h.mean((0, 2)))
    assert_close(x.grad, np.full((2, 3, 4), 1 / 8))
    assert F.sum(x).shape == () and F.sum(x, axis=()).shape == (2, 3, 4)


@pytest.mark.parametrize("fn", [F.max, F.min])
def test_max_min_ties_share_the_gradient_equally(backend, fn):
    h = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]) * (1 if fn is F.max else -1)
    x = var(backend, h)
    y = fn(x, axis=1)
    y.backward()
    assert_close(y, [3.0, 2.0] if fn is F.max else [-3.0, -2.0])
    assert_close(x.grad, [[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    x.cleargrad()
    fn(x).backward()  # over all: the two 3s tie
    assert_close(x.grad, [[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])


def test_max_keepdims_and_float32(backend):
    x = var(backend, [[1.0, 5.0], [7.0, 2.0]], "float32")
    y = F.max(x, axis=0, keepdims=True)
    F.sum(y * 2.0).backward()
    assert y.shape == (1, 2) and y.dtype == x.dtype
    assert_close(x.grad, [[0.0, 2.0], [2.0, 0.0]])
    assert x.grad.dtype == x.dtype


def test_prod_hand_values_and_single_zero(backend):
    x = var(backend, [[2.0, 3.0, 4.0], [2.0, 0.0, 5.0]])
    y = F.prod(x, axis=1)
    y.backward()
    assert_close(y, [24.0, 0.0])
    assert_close(x.grad, [[12.0, 8.0, 6.0], [0.0, 10.0, 0.0]])


def test_prod_two_zeros_gives_zero_gradient(backend):
    x = var(backend, [0.0, 3.0, 0.0, 2.0])
    F.prod(x).backward()
    assert_close(x.grad, np.zeros(4))


def test_prod_single_zero_gradcheck_and_second_derivative(backend):
    x = var(backend, [[1.5, 0.0, -2.0], [0.5, 1.2, 3.0]])
    assert gradcheck(lambda v: F.prod(v, axis=1), x)
    assert gradgradcheck(lambda v: F.prod(v, axis=1), x)
    # d2/dx0 dx1 of x0*x1*x2 is x2, also where x1 == 0
    x = var(backend, [1.5, 0.0, -2.0])
    F.prod(x).backward(create_graph=True)
    g = x.grad
    x.cleargrad()
    g[0].backward()
    assert_close(x.grad, [0.0, -2.0, 0.0])


def test_logsumexp_hand_values(backend):
    x = var(backend, [[0.0, np.log(3.0)], [1.0, 1.0]])
    y = F.logsumexp(x, axis=1)
    y.backward()
    assert_close(y, [np.log(4.0), 1.0 + np.log(2.0)])
    assert_close(x.grad, [[0.25, 0.75], [0.5, 0.5]])


def test_logsumexp_stable_at_1e3_float32(backend):
    x = var(backend, [[1000.0, 1000.0, -1000.0], [-1000.0, -1000.0, -1000.0]], "float32")
    y = F.logsumexp(x, axis=1)
    y.backward()
    for a in (y, x.grad):
        assert a.dtype == x.dtype and np.isfinite(to_host(a)).all()
    assert_close(y, [1000.0 + np.log(2.0), -1000.0 + np.log(3.0)])
    assert_close(x.grad, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    x.cleargrad()
    F.logsumexp(x).backward(create_graph=True)
    g = x.grad
    x.cleargrad()
    F.sum(g * g).backward()
    assert np.isfinite(to_host(x.grad)).all()


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_logsumexp_with_minus_inf(backend):
    x = var(backend, [[-np.inf, 0.0], [-np.inf, -np.inf]])
    y = F.logsumexp(x, axis=1)
    assert_close(y, [0.0, -np.inf])
    y[0].backward()
    assert_close(x.grad, [[0.0, 1.0], [0.0, 0.0]])


def test_var_std_correction_by_hand(backend):
    h = np.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 4.0, 4.0]])
    x = var(backend, h)
    assert_close(F.var(x, axis=1), [3.5, 4.0])
    assert_close(F.var(x, axis=1, correction=1), [14 / 3, 16 / 3])
    assert_close(F.std(x, axis=1, correction=1, keepdims=True),
                 np.sqrt([[14 / 3], [16 / 3]]))
    F.var(x, axis=1).backward()
    assert_close(x.grad, 2 * (h - h.mean(1, keepdims=True)) / 4)
    x.cleargrad()
    F.std(x, axis=1, correction=1).backward()
    d = h - h.mean(1, keepdims=True)
    assert_close(x.grad, d / (3 * np.sqrt([[14 / 3], [16 / 3]])))


def test_cumulative_sum_by_hand(backend):
    x = var(backend, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    w = var(backend, [[1.0, 10.0, 100.0], [1.0, 1.0, 1.0]])
    y = F.cumulative_sum(x, axis=1)
    F.sum(y * w).backward()
    assert_close(y, [[1, 3, 6], [4, 9, 15]])
    assert_close(x.grad, [[111, 110, 100], [3, 2, 1]])
    x.cleargrad()
    y = F.cumulative_sum(x, axis=0, include_initial=True)
    F.sum(y * var(backend, [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [4.0, 4.0, 4.0]])).backward()
    assert_close(y, [[0, 0, 0], [1, 2, 3], [5, 7, 9]])
    assert_close(x.grad, [[6, 6, 6], [4, 4, 4]])
    with pytest.raises(ValueError, match=r"cumulative_sum: axis is required .*\(2, 3\)"):
        F.cumulative_sum(x)


def test_reductions_keep_float32_and_device(backend):
    x = var(backend, np.linspace(0.5, 2.0, 6).reshape(2, 3), "float32")
    for fn in (F.sum, F.mean, F.max, F.min, F.prod, F.logsumexp, F.var, F.std):
        x.cleargrad()
        y = fn(x, axis=1, keepdims=True)
        y.backward()
        assert y.dtype == x.dtype and y.device == backend.device, fn.__name__
        assert x.grad.dtype == x.dtype and x.grad.device == backend.device, fn.__name__


def test_integer_input_to_float_reductions_names_the_function(backend):
    i = backend.asarray([[1, 2], [3, 4]])
    for fn in (F.mean, F.var, F.std, F.logsumexp, F.prod):
        with pytest.raises(TypeError, match=rf"{fn.__name__}: expected a floating-point"):
            fn(i)
    assert_close(F.sum(i), 10)  # sum, max and min take integers (no gradient)
    assert_close(F.max(i, axis=0), [3, 4])


def test_bad_axis_types(backend):
    x = var(backend, np.ones((2, 3)), "float32")
    with pytest.raises(TypeError, match="sum: axis must be an int"):
        F.sum(x, axis=1.0)
    with pytest.raises(TypeError, match="sum: axis must be an int"):
        F.sum(x, axis=(0, 1.0))
    with pytest.raises(ValueError, match="mean: repeated axis"):
        F.mean(x, axis=(1, -1))


def test_std_gradient_is_zero_on_constant_slices(backend):
    # PyTorch's subgradient: 0 where the spread is 0 (a constant row, an axis of length 1)
    x = var(backend, [[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    F.sum(F.std(x, axis=1)).backward()
    s = np.sqrt(2 / 3)
    assert_close(x.grad, [[-1 / (3 * s), 0.0, 1 / (3 * s)], [0.0, 0.0, 0.0]])
    x = var(backend, [[1.0], [5.0]])
    F.sum(F.std(x, axis=1, correction=0)).backward()
    assert_close(x.grad, [[0.0], [0.0]])
    x = var(backend, 5.0)  # 0-d
    F.std(x).backward()
    assert_close(x.grad, 0.0)
    x = var(backend, [[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    F.sum(F.std(x, axis=1)).backward(create_graph=True)
    assert np.all(np.isfinite(to_host(x.grad)))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns of the 0/0 it computes
@pytest.mark.parametrize("f", [F.var, F.std])
def test_var_std_without_degrees_of_freedom_are_nan(backend, f):
    # N - correction == 0: PyTorch gives NaN, forward and gradient (no exception)
    x = var(backend, [[1.0], [2.0]])
    y = f(x, axis=1, correction=1)
    F.sum(y).backward()
    assert np.all(np.isnan(to_host(y))) and np.all(np.isnan(to_host(x.grad)))
    x = var(backend, [3.0])
    y = f(x, correction=1)
    y.backward()
    assert np.isnan(to_host(y)) and np.isnan(to_host(x.grad)).all()


def test_logsumexp_with_infinite_entries(backend):
    # a +inf entry: the result is inf, the finite entries' gradient 0 (PyTorch: [0, nan])
    x = var(backend, [1.0, np.inf])
    y = F.logsumexp(x)
    y.backward()
    g = to_host(x.grad)
    assert to_host(y) == np.inf and g[0] == 0.0 and np.isnan(g[1])
    # every entry -inf, reduced over all axes to a 0-d result: -inf, gradient 0
    for value in ([[-np.inf, -np.inf], [-np.inf, -np.inf]], -np.inf):
        x = var(backend, value)
        y = F.logsumexp(x)
        y.backward()
        assert to_host(y) == -np.inf
        assert_close(x.grad, np.zeros(np.shape(value)))


@pytest.mark.parametrize("row", [[1.5, -2.0, 0.7, 3.0], [0.0, -2.0, 0.7, 3.0],
                                 [0.0, -2.0, 0.0, 3.0], [0.0, 0.0, 0.7, 0.0]])
def test_prod_second_derivative_exact_with_zeros(backend, row):
    x = var(backend, row)
    assert gradcheck(F.prod, x)
    assert gradgradcheck(F.prod, x)
    # d2 prod / dx_a dx_b with exactly two zeros a, b: the product of the others
    if row.count(0.0) == 2:
        x = var(backend, row)
        F.prod(x).backward(create_graph=True)
        g = x.grad
        x.cleargrad()
        g[0].backward()  # d/dx (d prod / dx_0) = row of the Hessian
        assert_close(x.grad, [0.0, 0.0, -2.0 * 3.0, 0.0])


def test_prod_second_derivative_along_an_axis_with_zeros(backend):
    x = var(backend, [[0.0, 2.0, 0.0, 3.0], [1.0, 0.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]])
    assert gradgradcheck(lambda v: F.prod(v, axis=1), x)
    assert gradgradcheck(lambda v: F.prod(v, axis=0, keepdims=True), x)

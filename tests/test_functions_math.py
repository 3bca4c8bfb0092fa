"""Elementwise functions: hand values, broadcasting, ties, stability, higher derivatives and
error messages (the common gradcheck/dtype/device checks are in test_functions_table.py)."""

import math

import numpy as np
import pytest

import xgrad.functions as F
from xgrad import Variable
from xgrad.testing import assert_close, gradcheck, gradgradcheck, to_host


def var(backend, value, dtype="float64"):
    return Variable(backend.asarray(value, dtype=backend.dtype(dtype)))


def test_binary_ops_sum_broadcast_gradients_back(backend):
    x0 = var(backend, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    x1 = var(backend, [10.0, 20.0, 30.0])
    y = F.add(x0, x1)
    y.backward()
    assert_close(y, [[11, 22, 33], [14, 25, 36]])
    assert x1.grad.shape == (3,)
    assert_close(x0.grad, np.ones((2, 3)))
    assert_close(x1.grad, [2.0, 2.0, 2.0])
    x0.cleargrad(), x1.cleargrad()
    F.mul(x0, x1).backward()
    assert_close(x0.grad, [[10, 20, 30], [10, 20, 30]])
    assert_close(x1.grad, [5.0, 7.0, 9.0])
    x0.cleargrad(), x1.cleargrad()
    F.sub(x0, x1).backward()
    assert_close(x1.grad, [-2.0, -2.0, -2.0])
    x0.cleargrad(), x1.cleargrad()
    F.div(x0, x1).backward()
    assert_close(x0.grad, np.broadcast_to([0.1, 0.05, 1 / 30], (2, 3)))
    assert_close(x1.grad, -np.array([5 / 100, 7 / 400, 9 / 900]))


def test_broadcast_against_0d_variable(backend):
    x = var(backend, [[1.0, 2.0], [3.0, 4.0]])
    s = var(backend, 2.0)
    y = x * s + s
    y.backward()
    assert s.grad.shape == () and x.grad.shape == (2, 2)
    assert_close(s.grad, 10.0 + 4.0)
    assert_close(x.grad, np.full((2, 2), 2.0))


def test_python_scalars_keep_float32(backend):
    x = var(backend, [1.0, 2.0], "float32")
    y = F.tanh(2.5 * x - 1) / 3 + x ** 2
    y.backward()
    assert y.dtype == x.dtype and x.grad.dtype == x.dtype


def test_pow_scalar_exponents_by_hand(backend):
    x = var(backend, [1.0, 4.0])
    for c, value, grad in [(0, [1, 1], [0, 0]), (1, [1, 4], [1, 1]), (2, [1, 16], [2, 8]),
                           (0.5, [1, 2], [0.5, 0.25]), (-1, [1, 0.25], [-1, -1 / 16])]:
        x.cleargrad()
        y = F.pow(x, c)
        y.backward()
        assert_close(y, value)
        assert_close(x.grad, grad, err_msg=f"x ** {c}: ")


def test_pow_of_two_variables(backend):
    x0, x1 = var(backend, [2.0, 3.0]), var(backend, [3.0, 2.0])
    y = x0 ** x1
    y.backward()
    assert_close(y, [8.0, 9.0])
    assert_close(x0.grad, [3 * 4.0, 2 * 3.0])
    assert_close(x1.grad, [8 * math.log(2), 9 * math.log(3)])


def test_abs_and_relu_gradient_at_zero_is_zero(backend):
    x = var(backend, [-2.0, 0.0, 3.0])
    F.abs(x).backward()
    assert_close(x.grad, [-1.0, 0.0, 1.0])
    x.cleargrad()
    F.relu(x).backward()
    assert_close(x.grad, [0.0, 0.0, 1.0])
    x.cleargrad()
    y = F.leaky_relu(x)
    y.backward()
    assert_close(y, [-0.4, 0.0, 3.0])
    assert_close(x.grad, [0.2, 0.2, 1.0])


@pytest.mark.parametrize("fn,win", [(F.maximum, [0.0, 0.5, 1.0]), (F.minimum, [1.0, 0.5, 0.0])])
def test_maximum_minimum_split_ties_half_half(backend, fn, win):
    x0 = var(backend, [1.0, 2.0, 3.0])
    x1 = var(backend, [2.0, 2.0, 2.0])
    y = fn(x0, x1)
    y.backward()
    assert_close(y, np.maximum([1, 2, 3], 2) if fn is F.maximum else np.minimum([1, 2, 3], 2))
    assert_close(x0.grad, win)
    assert_close(x1.grad, 1 - np.array(win))


def test_maximum_ties_against_broadcast_scalar_sum_back(backend):
    x = var(backend, [[0.0, 1.0], [-1.0, 0.0]])
    z = var(backend, 0.0)
    F.maximum(x, z).backward()
    assert_close(x.grad, [[0.5, 1.0], [0.0, 0.5]])
    assert_close(z.grad, 0.5 + 1.0 + 0.5)


def test_clip_gradient_is_one_inside_closed_interval_zero_outside(backend):
    x = var(backend, [-2.0, -1.0, 0.0, 1.0, 2.0])
    y = F.clip(x, -1.0, 1.0)
    y.backward()
    assert_close(y, [-1.0, -1.0, 0.0, 1.0, 1.0])
    assert_close(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])
    x.cleargrad()
    F.clip(x, max=0.0).backward()
    assert_close(x.grad, [1.0, 1.0, 1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="clip"):
        F.clip(x, 1.0, -1.0)


def test_where_with_bool_variable_condition(backend):
    cond = Variable(backend.asarray([True, False, True]))
    assert not cond.requires_grad
    x0, x1 = var(backend, [1.0, 2.0, 3.0], "float32"), var(backend, [[10.0], [20.0]], "float32")
    y = F.where(cond, x0, x1)
    y.backward()
    assert y.shape == (2, 3) and y.dtype == x0.dtype
    assert_close(y, [[1, 10, 3], [1, 20, 3]])
    assert_close(x0.grad, [2.0, 0.0, 2.0])
    assert_close(x1.grad, [[1.0], [1.0]])
    y = F.where(cond, 0.5, x0)
    assert y.dtype == x0.dtype
    assert_close(y, [0.5, 2.0, 0.5])
    with pytest.raises(TypeError, match="where.*bool"):
        F.where(backend.asarray([1, 0, 1]), x0, x0)


def test_sigmoid_tanh_hand_values_and_derivatives(backend):
    x = var(backend, [0.0, 1.0])
    y = F.sigmoid(x)
    y.backward(create_graph=True)
    s = 1 / (1 + np.exp(-np.array([0.0, 1.0])))
    assert_close(y, s)
    assert_close(x.grad, s * (1 - s))
    g = x.grad
    x.cleargrad()
    g.backward()
    assert_close(x.grad, s * (1 - s) * (1 - 2 * s))
    # tanh: first, second and third derivatives through the fused backward node
    x = var(backend, [0.3, -1.2])
    t = np.tanh([0.3, -1.2])
    F.tanh(x).backward(create_graph=True)
    g1 = x.grad
    assert_close(g1, 1 - t ** 2)
    x.cleargrad()
    g1.backward(create_graph=True)
    g2 = x.grad
    assert_close(g2, -2 * t * (1 - t ** 2))
    x.cleargrad()
    g2.backward()
    assert_close(x.grad, (1 - t ** 2) * (6 * t ** 2 - 2))


def test_gelu_is_close_to_exact_erf_gelu(backend):
    h = np.linspace(-3, 3, 13)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in h])
    assert_close(F.gelu(var(backend, h)), exact, rtol=0, atol=1e-3)
    assert_close(F.gelu(var(backend, [0.0, 1.0])), [0.0, 0.8411919906082768])


def test_softplus_hand_values(backend):
    x = var(backend, [0.0, math.log(3.0)])
    y = F.softplus(x)
    y.backward()
    assert_close(y, [math.log(2.0), math.log(4.0)])
    assert_close(x.grad, [0.5, 0.75])


def test_expm1_log1p_accurate_near_zero(backend):
    x = var(backend, [1e-10, -1e-12])
    assert_close(F.expm1(x), [1e-10 + 5e-21, -1e-12], rtol=1e-12, atol=0)
    assert_close(F.log1p(x), [1e-10 - 5e-21, -1e-12], rtol=1e-12, atol=0)


@pytest.mark.parametrize("fn,want,dwant", [
    (F.sigmoid, [0.0, 0.5, 1.0], [0.0, 0.25, 0.0]),
    (F.softplus, [0.0, math.log(2), 1000.0], [0.0, 0.5, 1.0]),
])
def test_sigmoid_softplus_stable_at_1e3_float32(backend, fn, want, dwant):
    x = var(backend, [-1000.0, 0.0, 1000.0], "float32")
    y = fn(x)
    y.backward()
    for a in (y, x.grad):
        assert a.dtype == x.dtype
        assert np.isfinite(to_host(a)).all()
    assert_close(y, want)
    assert_close(x.grad, dwant)


def test_sigmoid_second_derivative_finite_at_1e3(backend):
    x = var(backend, [-1000.0, 1000.0], "float32")
    F.sigmoid(x).backward(create_graph=True)
    g = x.grad
    x.cleargrad()
    g.backward()
    assert np.isfinite(to_host(x.grad)).all()


def test_gradients_at_a_point_that_is_not_random(backend):
    # tan near its pole, sqrt and log near 0 (float64: float32 steps would cross 0)
    x = var(backend, [1.4, -1.4])
    assert gradcheck(F.tan, x, rtol=1e-4)
    x = var(backend, [1e-2, 5.0])
    assert gradgradcheck(lambda v: F.sqrt(v) + F.log(v), x, rtol=1e-4)


def test_integer_input_to_exp_names_the_function_and_dtype(backend):
    x = backend.asarray([1, 2, 3])
    for fn, name in [(F.exp, "exp"), (F.log, "log"), (F.sigmoid, "sigmoid"),
                     (F.sqrt, "sqrt"), (F.tanh, "tanh"), (F.relu, "relu")]:
        with pytest.raises(TypeError, match=rf"{name}.*int") as e:
            fn(x)
        assert "(3,)" in str(e.value)


def test_broadcast_mismatch_names_the_function_and_shapes(backend):
    x0, x1 = var(backend, np.ones((2, 3))), var(backend, np.ones(4))
    for fn in (F.add, F.mul, F.maximum):
        with pytest.raises(ValueError) as e:
            fn(x0, x1)
        msg = str(e.value)
        assert type(fn(x0, x0).creator).__name__ in msg
        assert "(2, 3)" in msg and "(4,)" in msg


def test_integer_arithmetic_has_no_gradient(backend):
    i = Variable(backend.asarray([1, 2, 3]))
    assert not i.requires_grad
    y = i * 2 + i
    assert not y.requires_grad and y.creator is None
    assert_close(y, [3, 6, 9])


def test_aliases_are_the_same_functions():
    assert F.subtract is F.sub and F.multiply is F.mul
    assert F.divide is F.div and F.negative is F.neg


@pytest.mark.parametrize("dtype,xs", [("float32", [-20.0, -38.0, -80.0, -1.0, 0.0, 3.0, 20.0]),
                                      ("float64", [-38.0, -100.0, -700.0, -1.0, 0.0, 3.0])])
def test_sigmoid_keeps_relative_precision_for_negative_inputs(backend, dtype, xs):
    # sigmoid(x) = e^x / (1 + e^x), exact in Python float64 for these x
    want = [math.exp(v) / (1 + math.exp(v)) if v < 0 else 1 / (1 + math.exp(-v)) for v in xs]
    x = var(backend, xs, dtype)
    y = F.sigmoid(x)
    assert y.dtype == x.dtype
    tight = 1e-6 if dtype == "float32" else 1e-14
    assert_close(y, want, rtol=tight, atol=0)  # relative: 2.06e-9 at -20 is not 0
    # log(sigmoid(x)) = x - log(1 + e^x), finite; its gradient 1 - sigmoid(x) = 1 / (1 + e^x)
    x = var(backend, xs, dtype)
    ls = F.log(F.sigmoid(x))
    F.sum(ls).backward()
    assert_close(ls, [v - math.log1p(math.exp(v)) if v < 0 else -math.log1p(math.exp(-v))
                      for v in xs], rtol=tight, atol=tight / 8)  # log(1 - 2e-9) rounds to 0
    assert_close(x.grad, [1 / (1 + math.exp(v)) for v in xs])
    assert x.grad.dtype == x.dtype


def test_sigmoid_is_one_node_and_twice_differentiable(backend):
    x = var(backend, [-30.0, -2.0, 0.5, 4.0])
    y = F.sigmoid(x)
    assert type(y.creator).__name__ == "Sigmoid" and type(y.creator.inputs[0]) is Variable
    y.backward(create_graph=True)
    assert type(x.grad.creator).__name__ == "SigmoidGrad"
    assert gradgradcheck(F.sigmoid, x)


def test_pow_array_exponent_gradients_at_zero_base(backend):
    # PyTorch: a = [0, 0, 0, 2], b = [2, 0, 3, -1] -> a.grad [0, 0, 0, -0.25],
    # b.grad [0, 0, 0, log(2) / 2]: the 0 * inf and 0 * log(0) products are 0 where finite
    a = var(backend, [0.0, 0.0, 0.0, 2.0])
    b = var(backend, [2.0, 0.0, 3.0, -1.0])
    y = F.pow(a, b)
    assert_close(y, [0.0, 1.0, 0.0, 0.5])
    F.sum(y).backward(create_graph=True)
    assert_close(a.grad, [0.0, 0.0, 0.0, -0.25])
    assert_close(b.grad, [0.0, 0.0, 0.0, math.log(2) / 2])
    # the gradient's own graph holds no inf either: d2/da2 = b (b - 1) a^(b - 2)
    ga = a.grad
    a.cleargrad(), b.cleargrad()
    F.sum(ga).backward()
    assert_close(a.grad, [2.0, 0.0, 0.0, 0.25])
    assert np.all(np.isfinite(to_host(b.grad)))
    a, b = var(backend, 0.0), var(backend, 0.0)  # 0-d: 0 ** 0
    F.pow(a, b).backward()
    assert_close(a.grad, 0.0)
    assert_close(b.grad, 0.0)

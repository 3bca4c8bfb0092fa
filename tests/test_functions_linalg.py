"""matmul, linear, tensordot: hand values, gradients by hand, errors (the common
gradcheck/dtype/device checks are in test_functions_table.py)."""

import numpy as np
import pytest

import xgrad.functions as F
from xgrad import Variable
from xgrad.testing import assert_close, gradcheck, gradgradcheck


def var(backend, value, dtype="float64"):
    return Variable(backend.asarray(value, dtype=backend.dtype(dtype)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_2x2_by_hand(backend, dtype):
    a = var(backend, [[1, 2], [3, 4]], dtype)
    b = var(backend, [[5, 6], [7, 8]], dtype)
    y = F.matmul(a, b)
    y.backward()
    assert_close(y, [[19, 22], [43, 50]])
    assert_close(a.grad, [[11, 15], [11, 15]])
    assert_close(b.grad, [[4, 4], [6, 6]])
    for v in (y, a.grad, b.grad):
        assert v.dtype == a.dtype and v.device == backend.device


def test_matmul_vector_cases_by_hand(backend):
    u, v = var(backend, [1.0, 2.0]), var(backend, [3.0, 4.0])
    y = u @ v
    y.backward()
    assert y.shape == ()
    assert_close(y, 11.0)
    assert_close(u.grad, [3.0, 4.0]) and assert_close(v.grad, [1.0, 2.0])
    m = var(backend, [[1.0, 2.0], [3.0, 4.0]])
    u.cleargrad()
    F.sum(F.matmul(u, m)).backward()  # row vector: u @ m = [7, 10]
    assert_close(u.grad, [3.0, 7.0])
    assert_close(m.grad, [[1.0, 1.0], [2.0, 2.0]])


def test_matmul_broadcast_batch_gradient_summed_back(backend):
    a = var(backend, np.ones((4, 2, 3)))
    w = var(backend, np.arange(6.0).reshape(3, 2))
    y = F.matmul(a, w)
    y.backward()
    assert y.shape == (4, 2, 2) and w.grad.shape == (3, 2)
    assert_close(w.grad, np.full((3, 2), 8.0))
    assert_close(a.grad, np.broadcast_to([1.0, 5.0, 9.0], (4, 2, 3)))


def test_matmul_shape_mismatch_names_function_and_shapes(backend):
    a, b = var(backend, np.ones((2, 3)), "float32"), var(backend, np.ones((4, 5)), "float32")
    with pytest.raises(ValueError) as e:
        F.matmul(a, b)
    msg = str(e.value)
    assert "matmul" in msg and "(2, 3)" in msg and "(4, 5)" in msg
    with pytest.raises(ValueError, match="matmul: 0-d"):
        F.matmul(var(backend, 2.0, "float32"), a)
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(2,\)"):
        F.matmul(a, var(backend, np.ones(2), "float32"))


def test_linear_by_hand(backend):
    x = var(backend, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    W = var(backend, [[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
    b = var(backend, [0.5, -0.5, 0.0])
    y = F.linear(x, W, b)
    y.backward()
    assert_close(y, np.array([[5, 2, -1], [11, 4, -3], [17, 6, -5]]) + [0.5, -0.5, 0.0])
    assert_close(x.grad, np.broadcast_to([0.0, 3.0], (3, 2)))
    assert_close(W.grad, [[9.0, 9.0, 9.0], [12.0, 12.0, 12.0]])
    assert_close(b.grad, [3.0, 3.0, 3.0])


def test_linear_constant_input_and_bias_broadcast(backend):
    x = backend.asarray(np.ones((2, 3)), dtype=backend.dtype("float32"))
    W = var(backend, np.ones((3, 4)), "float32")
    b = var(backend, np.zeros((1, 4)), "float32")
    y = F.linear(x, W, b)
    y.backward()
    assert y.shape == (2, 4) and y.dtype == W.dtype
    assert_close(W.grad, np.full((3, 4), 2.0))
    assert b.grad.shape == (1, 4)
    assert_close(b.grad, [[2.0, 2.0, 2.0, 2.0]])


def test_linear_shape_errors(backend):
    x = var(backend, np.ones((2, 3)), "float32")
    with pytest.raises(ValueError, match=r"linear: x of shape \(2, 3\) and W of shape \(4, 2\)"):
        F.linear(x, var(backend, np.ones((4, 2)), "float32"))
    with pytest.raises(ValueError, match="linear"):
        F.linear(x, var(backend, np.ones(3), "float32"))


def test_tensordot_by_hand_and_double_backward(backend):
    a = var(backend, np.arange(6.0).reshape(2, 3))
    b = var(backend, np.arange(6.0).reshape(3, 2))
    y = F.tensordot(a, b, axes=([1, 0], [0, 1]))  # trace(a @ b)
    y.backward()
    assert y.shape == ()
    assert_close(y, np.trace(np.arange(6.0).reshape(2, 3) @ np.arange(6.0).reshape(3, 2)))
    assert_close(a.grad, np.arange(6.0).reshape(3, 2).T)
    assert_close(b.grad, np.arange(6.0).reshape(2, 3).T)
    assert gradgradcheck(lambda p, q: F.tensordot(p * p, q, 1), a, b)


def test_tensordot_errors_name_function_and_shapes(backend):
    a, b = var(backend, np.ones((2, 3)), "float32"), var(backend, np.ones((4, 2)), "float32")
    with pytest.raises(ValueError, match=r"tensordot: shapes \(2, 3\) and \(4, 2\)"):
        F.tensordot(a, b, 1)
    with pytest.raises(ValueError, match="tensordot: cannot contract 3 axes"):
        F.tensordot(a, b, 3)
    with pytest.raises(ValueError, match="tensordot: axis 5 is out of range"):
        F.tensordot(a, b, ([5], [0]))
    with pytest.raises(ValueError, match="tensordot: axes .* pair up 2 and 1"):
        F.tensordot(a, b, ([0, 1], [0]))


@pytest.mark.parametrize("xs,ws,bs", [((3,), (3, 4), (1, 4)), ((2, 3), (3, 4), (5, 1, 4)),
                                      ((2, 3), (3, 4), (2, 1, 1, 4)), ((2, 2, 3), (3, 4), (4,))])
def test_linear_bias_that_broadcasts_further(backend, xs, ws, bs):
    rng = np.random.default_rng(0)
    x, W, b = (var(backend, rng.standard_normal(s)) for s in (xs, ws, bs))
    y = F.linear(x, W, b)
    assert y.shape == np.broadcast_shapes(xs[:-1] + ws[1:], bs)
    assert gradcheck(F.linear, x, W, b)


@pytest.mark.parametrize("xs", [(0,), (2, 5, 0), (3, 0)])
def test_linear_with_in_size_zero(backend, xs):
    x = var(backend, np.zeros(xs))
    W = var(backend, np.zeros((0, 4)))
    b = var(backend, [1.0, 2.0, 3.0, 4.0])
    y = F.linear(x, W, b)
    F.sum(y).backward()
    assert_close(y, np.broadcast_to([1.0, 2.0, 3.0, 4.0], xs[:-1] + (4,)))
    assert x.grad.shape == xs and W.grad.shape == (0, 4)
    assert_close(b.grad, np.full(4, float(np.prod(xs[:-1]))))

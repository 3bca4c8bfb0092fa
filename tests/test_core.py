"""The engine: the seeds' semantics (DeZero steps 6-33) on every backend."""

import gc
import threading
import weakref

import numpy as np
import pytest

import xgrad
import xgrad.functions as F
from xgrad import Function, Variable
from xgrad.testing import assert_close


@pytest.fixture
def f64(backend):
    return backend.dtype("float64")


def var(backend, value, dtype="float64"):
    return Variable(backend.asarray(value, dtype=dtype))


def test_variable_rejects_non_arrays():
    for bad in (1.0, 3, [1.0, 2.0], np.float64(1.0), np.float32(2.0), np.bool_(True), None, "x"):
        with pytest.raises(TypeError, match=type(bad).__name__):
            Variable(bad)


def test_variable_attributes(backend, f64):
    x = Variable(backend.asarray([[1, 2, 3], [4, 5, 6]], dtype=f64), name="x")
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.dtype == f64 and x.device == backend.device
    assert x.grad is None and x.creator is None and x.generation == 0
    assert "variable(" in repr(x) and "name='x'" in repr(x)
    assert isinstance(xgrad.Parameter(backend.asarray([1.0])), Variable)
    y = x.reshape(3, 2).transpose().sum()
    assert y.shape == () and y.generation == 3 and x.T.shape == (3, 2)
    assert_close(y, 21.0)


def test_steps_6_to_9_composite_derivative(backend, f64):
    x = var(backend, 0.5)
    y = F.square(F.exp(F.square(x)))
    y.backward()
    assert_close(x.grad, 3.297442541400256)


def test_step_14_repeated_use_and_cleargrad(backend, f64):
    x = var(backend, 3.0)
    y = F.add(x, x)
    y.backward()
    assert_close(x.grad, 2.0)
    x.cleargrad()
    y = F.add(F.add(x, x), x)
    y.backward()
    assert_close(x.grad, 3.0)
    y = F.add(F.add(x, x), x)  # without cleargrad the gradients accumulate
    y.backward()
    assert_close(x.grad, 6.0)


def test_step_14_accumulation_without_cleargrad(backend, f64):
    x = var(backend, 3.0)
    F.add(x, x).backward()
    F.add(F.add(x, x), x).backward()
    assert_close(x.grad, 5.0)


def test_gradients_accumulate_out_of_place(backend, f64):
    # add's backward hands the same gradient to both inputs; += would corrupt x1's gradient
    x0, x1 = var(backend, 1.0), var(backend, 1.0)
    y = F.add(F.add(x0, x1), x0)
    y.backward()
    assert_close(x0.grad, 2.0)
    assert_close(x1.grad, 1.0)


def test_steps_15_16_generation_order(backend, f64):
    x = var(backend, 2.0)
    a = F.square(x)
    y = F.add(F.square(a), F.square(a))
    y.backward()
    assert_close(y, 32.0)
    assert_close(x.grad, 64.0)


def test_step_18_intermediate_grads_freed(backend, f64):
    x0, x1 = var(backend, 1.0), var(backend, 1.0)
    t = F.add(x0, x1)
    y = F.add(x0, t)
    y.backward()
    assert y.grad is None and t.grad is None
    assert_close(x0.grad, 2.0)
    assert_close(x1.grad, 1.0)
    x0.cleargrad()
    x1.cleargrad()
    y = F.add(x0, F.add(x0, x1))
    t = y.creator.inputs[1]
    y.backward(retain_grad=True)
    assert_close(y.grad, 1.0)
    assert_close(t.grad, 1.0)


def goldstein(x, y):
    return (1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x ** 2 - 14 * y + 6 * x * y + 3 * y ** 2)) \
        * (30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x ** 2 + 48 * y - 36 * x * y
                                         + 27 * y ** 2))


def test_goldstein_price(backend, f64):
    x, y = var(backend, 1.0), var(backend, 1.0)
    z = goldstein(x, y)
    z.backward()
    assert_close(x.grad, -5376.0)
    assert_close(y.grad, 8064.0)


def test_sin_higher_derivatives(backend, f64):
    x = var(backend, 1.0)
    y = F.sin(x)
    expected = [0.8414709848078965, 0.5403023058681398, -0.8414709848078965,
                -0.5403023058681398]
    assert_close(y, expected[0])
    for want in expected[1:]:
        x.cleargrad()
        y.backward(create_graph=True)
        y = x.grad
        assert_close(y, want)


def test_newton_second_derivative(backend, f64):
    x = var(backend, 2.0)
    trace = []
    for _ in range(7):
        y = x ** 4 - 2 * x ** 2
        x.cleargrad()
        y.backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        gx.backward()
        gx2 = x.grad
        x = Variable(backend.asarray(x.data - gx.data / gx2.data))  # NumPy 0-d math gives scalars
        trace.append(x.item())
    assert abs(trace[4] - 1.0) > 1e-7  # not there after 5 steps...
    assert trace[6] == pytest.approx(1.0, abs=1e-15)  # ...converged after 7
    assert_close(trace[0], 1.4545454545454546)


def test_rosenbrock_gradient_descent(backend, f64):
    x0, x1 = var(backend, 0.0), var(backend, 2.0)
    lr = 0.001
    for _ in range(1000):
        y = 100 * (x1 - x0 ** 2) ** 2 + (x0 - 1) ** 2
        x0.cleargrad()
        x1.cleargrad()
        y.backward()
        x0.data = backend.asarray(x0.data - lr * x0.grad.data)  # NumPy 0-d math gives scalars
        x1.data = backend.asarray(x1.data - lr * x1.grad.data)
    assert_close(x0, 0.6837118569138317)
    assert_close(x1, 0.4659526837427042)


def test_seed_gradient_has_shape_dtype_device(backend):
    for name in ("float32", "float64"):
        if not backend.supports(name):
            continue
        x = Variable(backend.asarray([[1.0, 2.0]], dtype=name))
        y = F.exp(x)
        y.backward(retain_grad=True)
        assert y.grad.shape == (1, 2) and y.grad.dtype == x.dtype
        assert y.grad.device == backend.device
        assert x.grad.dtype == x.dtype and x.grad.device == backend.device


def test_float32_stays_float32_with_scalars(backend):
    x = Variable(backend.asarray([1.0, 2.0], dtype="float32"))
    y = (2 * x + 1.5) / 3 - x ** 2 + 1 / (x + 1) - 0.5 * F.tanh(x)
    assert y.dtype == backend.dtype("float32")
    y.sum().backward()
    assert x.grad.dtype == x.dtype


def test_operators(backend, f64):
    a = backend.asarray([1.0, 2.0], dtype=f64)
    x = Variable(backend.asarray([3.0, 4.0], dtype=f64))
    cases = {
        "add": (x + a, [4, 6]), "sub": (x - 1, [2, 3]),
        "rsub": (1 - x, [-2, -3]), "mul": (x * a, [3, 8]), "rmul": (2 * x, [6, 8]),
        "div": (x / 2, [1.5, 2]), "rdiv": (12 / x, [4, 3]), "pow": (x ** 2, [9, 16]),
        "rpow": (2 ** x, [8, 16]), "neg": (-x, [-3, -4]), "matmul": (x @ a, 11),
        "getitem": (x[1], 4.0), "vpow": (x ** Variable(a), [3, 16]),
    }
    if backend.name in ("numpy", "cupy"):  # their arrays defer to Variable on the left
        cases.update({"radd": (a + x, [4, 6]), "rmatmul": (a @ x, 11)})
    for name, (y, want) in cases.items():
        assert isinstance(y, Variable), name
        assert_close(y, want, err_msg=name + ": ")


def test_numpy_array_on_the_left_defers_to_variable():
    a = np.array([1.0, 2.0])
    x = Variable(np.array([3.0, 4.0]))
    for y in (a + x, a - x, a * x, a / x, a @ x, a ** x):
        assert isinstance(y, Variable)
    y = a * x
    y.sum().backward()
    assert_close(x.grad, a)


def test_operator_gradients(backend, f64):
    x = Variable(backend.asarray([[1.0, 2.0], [3.0, 4.0]], dtype=f64))
    b = Variable(backend.asarray([0.5, -1.0], dtype=f64))
    y = ((x * b - b / x) ** 2 + x[0] @ b).sum()
    y.backward()
    xh, bh = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, -1.0])
    inner = xh * bh - bh / xh
    gx = 2 * inner * (bh + bh / xh ** 2)
    gx[0] += 4 * bh  # x[0] @ b is broadcast over all four elements
    gb = (2 * inner * (xh - 1 / xh)).sum(0) + 4 * xh[0]
    assert_close(x.grad, gx)
    assert_close(b.grad, gb)


def test_broadcast_gradients_sum_back(backend, f64):
    x = Variable(backend.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=f64))
    b = Variable(backend.asarray([[10.0], [20.0]], dtype=f64))
    c = Variable(backend.asarray(2.0, dtype=f64))
    y = x * b + c
    y.backward()
    assert b.grad.shape == (2, 1) and c.grad.shape == ()
    assert_close(b.grad, [[6.0], [15.0]])
    assert_close(c.grad, 6.0)
    assert_close(x.grad, [[10.0] * 3, [20.0] * 3])


def test_graph_freed_without_gc(backend, f64):
    gc.disable()
    try:
        x = var(backend, [1.0, 2.0])
        y = F.exp(F.square(x))
        ref_f = weakref.ref(y.creator)
        ref_mid = weakref.ref(y.creator.inputs[0])
        y.backward()
        del y
        assert ref_f() is None and ref_mid() is None
    finally:
        gc.enable()


def test_long_chain_no_recursion(backend):
    # 100,000 ops, far beyond Python's recursion limit; 20,000 (still 20x the limit) on JAX,
    # whose eager ops cost ~100 us each.
    x = Variable(backend.asarray([0.5], dtype="float32"))
    y = x
    for _ in range(20_000 if backend.name == "jax" else 100_000):
        y = y * 1.0
    y.backward()
    assert_close(x.grad, [1.0])


def test_no_grad_records_nothing(backend, f64):
    x = var(backend, 2.0)
    with xgrad.no_grad():
        y = x * x
    assert y.creator is None and not y.requires_grad
    y = x * x
    assert y.creator is not None

    @xgrad.no_grad
    def f(v):
        return v * v

    @xgrad.no_grad()
    def g(v):
        return v * v

    assert f(x).creator is None and g(x).creator is None
    with xgrad.no_grad():
        with xgrad.enable_grad():
            assert (x * x).creator is not None
        assert (x * x).creator is None
    assert xgrad.Config.enable_backprop


def test_using_config_and_test_mode():
    assert xgrad.Config.train
    with xgrad.test_mode():
        assert not xgrad.Config.train
    with xgrad.using_config("train", False):
        assert not xgrad.Config.train
    assert xgrad.Config.train
    with pytest.raises(ValueError, match="unknown config"):
        xgrad.using_config("nope", 1)

    @xgrad.test_mode()
    def evaluate():
        return xgrad.Config.train

    assert evaluate() is False and xgrad.Config.train


def test_config_is_thread_local():
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def worker():
        with xgrad.no_grad():
            inside.set()
            release.wait(5)
            seen["worker"] = xgrad.Config.enable_backprop

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    seen["main"] = xgrad.Config.enable_backprop
    release.set()
    t.join()
    assert seen == {"main": True, "worker": False}


def test_wrong_gradient_shape_names_function(backend, f64):
    class Bad(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy.sum()

    x = var(backend, [1.0, 2.0])
    with pytest.raises(xgrad.GradientError, match=r"Bad.*\(\).*\(2,\)"):
        Bad()(x).backward()


def test_wrong_gradient_dtype_names_function(backend):
    if not backend.supports("float64"):
        pytest.skip("needs float64 and float32")

    class Bad(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return Variable(backend.xp.astype(gy.data, backend.dtype("float32")))

    x = var(backend, [1.0, 2.0])
    with pytest.raises(xgrad.GradientError, match="Bad.*float32.*float64"):
        Bad()(x).backward()


def test_mixing_backends_is_an_error():
    import array_api_strict as strict

    x = Variable(np.array([1.0]))
    y = Variable(strict.asarray([1.0]))
    with pytest.raises(xgrad.BackendMismatchError, match="numpy.*array_api_strict.*to\\("):
        x + y
    with pytest.raises(xgrad.BackendMismatchError):
        x * strict.asarray([2.0])


def test_mixing_devices_is_an_error():
    x = Variable(xgrad.asarray([1.0], backend="array_api_strict"))
    y = Variable(xgrad.asarray([1.0], backend="array_api_strict", device="device1"))
    with pytest.raises(xgrad.BackendMismatchError, match="device1.*to\\("):
        x + y
    z = (x.to("array_api_strict:device1") + y).sum()
    z.backward()
    assert_close(x.grad, [1.0]) and x.grad.device == x.device


def test_multi_output_function(backend, f64):
    class Split2(Function):
        def forward(self, x):
            return x[:1], x[1:]

        def backward(self, g0, g1):
            xp = backend.xp
            parts = [g.data if g is not None else xp.zeros((1,), dtype=f64, device=backend.device)
                     for g in (g0, g1)]
            return Variable(xp.concat(parts))

    x = var(backend, [3.0, 4.0])
    a, b = Split2()(x)
    (a * 2 + b * 3).sum().backward()
    assert_close(x.grad, [2.0, 3.0])
    x.cleargrad()
    a, _ = Split2()(x)
    a.sum().backward()
    assert_close(x.grad, [1.0, 0.0])


def test_unchain_backward(backend, f64):
    x = var(backend, 2.0)
    h = x * x
    y = h * 3
    h.unchain_backward()
    y2 = y * 1
    y2.unchain_backward()
    assert y.creator is None
    x.cleargrad()
    z = h * 2
    h.unchain()
    z.backward()
    assert x.grad is None


def test_integer_variables_hold_no_gradient(backend):
    t = Variable(backend.asarray([1, 2]))
    assert not t.requires_grad
    with pytest.raises(TypeError, match="floating"):
        Variable(backend.asarray([1, 2]), requires_grad=True)


def test_scalar_only_call_is_an_error():
    with pytest.raises(TypeError, match="at least one array"):
        F.add(1.0, 2.0)
    with pytest.raises(TypeError, match="input 1 has unsupported type"):
        F.add(Variable(np.ones(1)), "a")


def test_mixed_float_dtypes_promote_and_cast_gradients_back(backend):
    if not backend.supports("float64"):
        pytest.skip("needs float64 and float32")
    a = Variable(backend.asarray([1.0, 2.0], dtype="float64"))
    b = Variable(backend.asarray([3.0, 4.0], dtype="float32"))
    y = (a * b + b).sum()
    assert y.dtype == backend.dtype("float64")  # the standard's promotion
    y.backward()
    assert a.grad.dtype == a.dtype and b.grad.dtype == b.dtype
    assert_close(a.grad, [3.0, 4.0])
    assert_close(b.grad, [2.0, 3.0])
    a.cleargrad()
    b.cleargrad()
    z = (a * b).sum()
    z.backward(create_graph=True)
    gb = b.grad
    b.cleargrad()
    (gb * gb).sum().backward()  # d/db of sum(a^2) is 0; d/da flows through the cast
    assert b.grad is None or b.grad.dtype == b.dtype

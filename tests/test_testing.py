"""xgrad.testing: assert_close, gradcheck, gradgradcheck and the pytest plugin."""

import numpy as np
import pytest

import xgrad.functions as F
from xgrad import Function, Variable, as_variable, backends
from xgrad.backends import backend_of
from xgrad.testing import (
    GradcheckError,
    assert_close,
    default_tolerance,
    gradcheck,
    gradgradcheck,
)


def test_default_tolerances_follow_dtype():
    r64, _ = default_tolerance(np.float64)
    r32, _ = default_tolerance(np.float32)
    assert r64 == pytest.approx(4 * np.finfo(np.float64).eps ** 0.5)
    assert r32 == pytest.approx(4 * np.finfo(np.float32).eps ** 0.5)
    assert default_tolerance(np.int64) == (0.0, 0.0)


def test_assert_close_passes_and_reports(backend):
    a = backend.asarray([1.0, 2.0, 3.0], dtype="float32")
    assert_close(a, [1.0, 2.0, 3.0005])  # within float32's 1.4e-3
    with pytest.raises(AssertionError, match=r"1 of 3 elements differ.*max abs error 0\.5.*index \(2,\)"):
        assert_close(Variable(a), [1.0, 2.0, 3.5])
    with pytest.raises(AssertionError, match="shape mismatch"):
        assert_close(a, [1.0, 2.0])
    assert_close(a, [1.0, 2.0, 4.0], rtol=0.5)


def test_assert_close_float64_is_strict(backend):
    f64 = backend.dtype("float64")
    a = backend.asarray([1.0], dtype=f64)
    with pytest.raises(AssertionError):
        assert_close(a, [1.0 + 1e-6])
    assert_close(a, [1.0 + 1e-9])


def test_assert_close_nan_and_bool():
    assert_close(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    with pytest.raises(AssertionError):
        assert_close(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(AssertionError, match="differ"):
        assert_close(np.array([True, False]), np.array([True, True]))


class WrongSin(Function):
    def forward(self, x):
        from xgrad.functions._util import xp_of

        return xp_of(x).sin(x)

    def backward(self, gy):
        return gy * F.sin(self.inputs[0])  # wrong: should be cos


def test_gradcheck_accepts_correct_and_rejects_wrong(backend):
    x = backend.asarray([0.3, 1.2, -0.7], dtype="float32")
    assert gradcheck(F.sin, x)
    assert gradcheck(lambda a, b: a * b + F.exp(a), x, backend.asarray([1.0, 2.0, 3.0],
                                                                      dtype="float32"))
    with pytest.raises(GradcheckError, match=r"worst element: input 0 index \(\d,\)"):
        gradcheck(lambda v: WrongSin()(v), x)
    assert gradcheck(lambda v: WrongSin()(v), x, raise_exception=False) is False


def test_gradcheck_upcasts_to_float64_on_the_same_backend(backend):
    seen = []

    def f(v):
        seen.append((v.dtype, v.device))
        return F.tanh(v)

    x = backend.asarray([0.1, 0.2], dtype="float32")
    gradcheck(f, x)
    want = backend.dtype("float64") if backend.supports("float64") else backend.dtype("float32")
    assert all(dt == want and dev == backend.device for dt, dev in seen)


def test_gradgradcheck(backend):
    x = backend.asarray([0.3, 1.2, -0.7], dtype="float32")
    assert gradgradcheck(F.sin, x)
    assert gradgradcheck(lambda v: v * v * v, x)

    class BadSecond(Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            x = self.inputs[0]
            return gy * as_variable(x.data + x.data)  # detached: no second derivative

    with pytest.raises(GradcheckError):
        gradgradcheck(lambda v: BadSecond()(v), x)


def test_plugin_fixtures(backend, xp, device):
    assert xp is backend.xp and device == backend.device
    a = backend.asarray([1, 2, 3], dtype="float32")
    assert a.device == device


def _plugin_args():
    """``-p xgrad.testing.plugin`` unless the installed pytest11 entry point already loads it."""
    from importlib.metadata import entry_points

    installed = any(ep.name == "xgrad" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "xgrad.testing.plugin"]


PLUGIN_TEST = '''
def test_runs_on_each_backend(backend, xp):
    a = backend.asarray([1.0, 2.0], dtype="float32")
    assert a.device == backend.device
    print("RAN", backend.id)
'''


def test_plugin_in_a_user_project(pytester):
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest(*_plugin_args(), "--backend=numpy,array_api_strict",
                                "-v", "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*RAN numpy*", "*RAN array_api_strict*"])
    result = pytester.runpytest(*_plugin_args(), "--backend=all")
    # every usable backend (numpy, array_api_strict, torch and jax when installed) plus the two
    # fake devices of array_api_strict
    result.assert_outcomes(passed=len(backends.available()) + 2)


def test_plugin_require_gpu_fails_without_gpu(pytester):
    from xgrad import backends

    if "cupy" in backends.available():
        pytest.skip("a GPU is usable here")
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest(*_plugin_args(), "--backend=cupy", "--require-gpu")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*cupy*"])
    result = pytester.runpytest(*_plugin_args(), "--backend=cupy")
    result.assert_outcomes(skipped=1)


class OffByATenthOfAPercent(Function):
    def forward(self, x):
        return x * x

    def backward(self, gy):
        return gy * (2.002 * self.inputs[0])


@pytest.mark.parametrize("scale", [1e-3, 1e-1, 1.0, 1e2, 1e3, 1e4])
def test_gradcheck_scales_with_the_inputs(backend, scale):
    f64 = backend.dtype("float64")
    rng = np.random.default_rng(7)
    correct = [F.sum, lambda v: v * v, F.sin, F.tanh, lambda v: F.sum(v * v * v, axis=1),
               lambda v: F.matmul(v, F.matrix_transpose(v)), lambda v: F.logsumexp(v, axis=0)]
    for seed in range(4):
        x = backend.asarray(rng.standard_normal((6, 5)) * scale, dtype=f64)
        for f in correct:
            assert gradcheck(f, x, seed=seed)
        with pytest.raises(GradcheckError):
            gradcheck(lambda v: OffByATenthOfAPercent()(v), x, seed=seed)


class WrongAtOneElement(Function):
    def forward(self, x):
        return x * 1.0

    def backward(self, gy):
        h = np.ones(gy.shape)
        h[37, 111] = 100.0  # visible in float32 too (devices without float64)
        return gy * Variable(backend_of(gy.data).from_host(h, device=gy.data.device))


def test_gradcheck_failure_diagnosis_is_bounded(backend):
    calls = []

    def f(v):
        calls.append(1)
        return WrongAtOneElement()(v)

    x = backend.asarray(np.random.default_rng(3).standard_normal((100, 200)), dtype="float32")
    with pytest.raises(GradcheckError, match=r"worst element: input 0 index \(37, 111\)"):
        gradcheck(f, x)
    # a bisection: about 2 log2(20000) forward passes, not two per element
    assert len(calls) < 100

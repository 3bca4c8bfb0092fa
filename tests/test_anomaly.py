"""xgrad.detect_anomaly(): the first non-finite gradient names its Function and where it was made."""

import inspect
import os

import pytest

import xgrad
import xgrad.anomaly
import xgrad.functions as F
from xgrad import Function, Variable
from xgrad.testing import assert_close, to_host

# NumPy warns about log(0) and 1/0; the point here is what xgrad does with the result.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

HERE = os.path.basename(__file__)


def here() -> int:
    """The line number of the caller's next line."""
    return inspect.currentframe().f_back.f_lineno + 1


class NanGrad(Function):
    """Identity whose backward returns NaN everywhere."""

    def forward(self, x):
        return x + 0.0

    def backward(self, gy):
        return gy * float("nan")


class NanForConstant(Function):
    """x * c whose backward returns NaN for the constant c (which needs no gradient)."""

    def forward(self, x, c):
        return x * c

    def backward(self, gy):
        x, c = self.inputs
        return gy * c, gy * float("nan")


def test_error_type():
    assert issubclass(xgrad.AnomalyError, xgrad.XgradError)
    assert issubclass(xgrad.AnomalyError, FloatingPointError)
    assert xgrad.detect_anomaly is xgrad.anomaly.detect_anomaly


def test_off_by_default_inf_gradient_passes_silently(backend):
    assert xgrad.Config.detect_anomaly is False
    x = Variable(backend.asarray([0.0, 1.0], dtype="float32"))
    F.log(x).sum().backward()
    g = to_host(x.grad)
    assert g[0] == float("inf") and g[1] == 1.0


def test_log_at_zero_names_function_line_and_shapes(backend):
    x = Variable(backend.asarray([[0.0, 1.0]], dtype="float32"))
    with xgrad.detect_anomaly():
        line = here()
        y = F.log(x)
        loss = y.sum()
        with pytest.raises(xgrad.AnomalyError) as info:
            loss.backward()
    msg = str(info.value)
    assert msg.startswith("Log.backward")
    assert f"{HERE}:{line}" in msg and "y = F.log(x)" in msg
    assert "(1, 2) float32" in msg and "1 Inf" in msg and "0 NaN" in msg


def test_forward_values_unchanged(backend):
    data = backend.asarray([0.5, 1.0, 2.0], dtype="float32")
    x0, x1 = Variable(data), Variable(data)
    y0 = F.tanh(F.exp(x0) * x0).sum()
    with xgrad.detect_anomaly():
        y1 = F.tanh(F.exp(x1) * x1).sum()
        y1.backward()
    y0.backward()
    assert_close(y1, y0, rtol=0, atol=0)
    assert_close(x1.grad, x0.grad, rtol=0, atol=0)
    assert y1.dtype == y0.dtype


def test_custom_function_nan(backend):
    x = Variable(backend.asarray([1.0, 2.0, 3.0], dtype="float32"))
    with xgrad.detect_anomaly():
        line = here()
        y = F.exp(NanGrad()(x))
        with pytest.raises(xgrad.AnomalyError, match=r"NanGrad\.backward.*3 NaN and 0 Inf"
                                                     r" of 3 elements.*\(3,\) float32") as info:
            y.sum().backward()
    assert f"{HERE}:{line}" in str(info.value)


def test_first_bad_function_in_backward_order_is_named(backend):
    x = Variable(backend.asarray([0.0, 1.0], dtype="float32"))
    with xgrad.detect_anomaly():
        a = F.log(x)  # would give Inf, but runs later in backward
        line = here()
        b = NanGrad()(a)
        with pytest.raises(xgrad.AnomalyError, match=r"^NanGrad") as info:
            b.sum().backward()
    assert f"{HERE}:{line}" in str(info.value)


def test_non_finite_seed_stops_at_first_function(backend):
    x = Variable(backend.asarray([1.0, 2.0], dtype="float32"))
    with xgrad.detect_anomaly():
        y = F.tanh(F.exp(x))
        y.grad = Variable(backend.asarray([1.0, float("nan")], dtype="float32"))
        with pytest.raises(xgrad.AnomalyError, match="^Tanh.*1 NaN and 0 Inf of 2"):
            y.backward()
    assert x.grad is None


def test_operator_inside_xgrad_reports_user_line(backend):
    # 1.0 / x goes through Variable.__rtruediv__ in xgrad.core: the origin is still this file
    x = Variable(backend.asarray([0.0, 2.0], dtype="float32"))
    with xgrad.detect_anomaly():
        line = here()
        y = 1.0 / x
        with pytest.raises(xgrad.AnomalyError, match="^Div") as info:
            y.sum().backward()
    assert f"{HERE}:{line}" in str(info.value) and "y = 1.0 / x" in str(info.value)


def test_function_made_inside_a_layer_reports_the_calling_line(backend):
    with xgrad.use_backend(backend.backend, device=backend.device):
        model = xgrad.nn.Linear(2, in_size=3)
    model.W.data = backend.asarray([[1.0, float("nan")], [0.0, 1.0], [1.0, 1.0]],
                                   dtype="float32")
    x = Variable(backend.asarray([[1.0, 2.0, 3.0]], dtype="float32"))
    with xgrad.detect_anomaly():
        line = here()
        y = model(x)
        with pytest.raises(xgrad.AnomalyError, match=r"^Linear\.backward") as info:
            y.sum().backward()
    assert f"{HERE}:{line}" in str(info.value) and "y = model(x)" in str(info.value)


def _helper(v):
    return F.log(v)  # the origin of the Log below


def test_origin_is_innermost_user_frame(backend):
    x = Variable(backend.asarray([0.0], dtype="float32"))
    with xgrad.detect_anomaly():
        y = _helper(x)
        with pytest.raises(xgrad.AnomalyError, match=r"in _helper: `return F\.log\(v\)"):
            y.backward()


def test_nan_for_input_without_gradient_is_ignored(backend):
    x = Variable(backend.asarray([1.0, 2.0], dtype="float32"))
    c = backend.asarray([3.0, 4.0], dtype="float32")
    with xgrad.detect_anomaly():
        NanForConstant()(x, c).sum().backward()
    assert_close(x.grad, [3.0, 4.0])


def test_graph_recorded_outside_says_so(backend):
    x = Variable(backend.asarray([0.0], dtype="float32"))
    y = F.log(x)
    with xgrad.detect_anomaly(), pytest.raises(xgrad.AnomalyError,
                                               match="Log.*unknown place.*outside"):
        y.backward()


def test_decorator_forms(backend):
    x = Variable(backend.asarray([0.0], dtype="float32"))

    @xgrad.detect_anomaly
    def bare():
        assert xgrad.Config.detect_anomaly is True
        F.log(x).backward()

    @xgrad.detect_anomaly()
    def called():
        F.log(x).backward()

    for fn in (bare, called):
        with pytest.raises(xgrad.AnomalyError, match="Log"):
            fn()
        assert xgrad.Config.detect_anomaly is False


def test_create_graph_under_anomaly(backend):
    f64 = backend.dtype("float64")
    x = Variable(backend.asarray([0.3, 1.2], dtype=f64))
    with xgrad.detect_anomaly():
        y = F.sin(x).sum()
        y.backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        gx.sum().backward()
    assert_close(x.grad, -to_host(F.sin(Variable(backend.asarray([0.3, 1.2], dtype=f64)))))


def test_hooks_not_called_when_off(backend, monkeypatch):
    calls = []
    monkeypatch.setattr(xgrad.anomaly, "record_origin", lambda fn: calls.append("record"))
    monkeypatch.setattr(xgrad.anomaly, "check_gradients", lambda fn, g: calls.append("check"))
    x = Variable(backend.asarray([1.0], dtype="float32"))
    F.exp(x).backward()
    assert calls == []
    with xgrad.detect_anomaly():
        F.exp(x).backward()
    assert calls == ["record", "check"]

"""Optimizers and hooks: two steps against hand-computed NumPy values on every backend, state
that survives model.to(...), and state_dict round trips."""

import math

import numpy as np
import pytest

import xgrad
from xgrad import Parameter, Variable, nn, optim
from xgrad.io import StateError
from xgrad.nn import Layer
from xgrad.testing import assert_close, to_host

P0 = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.25]])
G1 = np.array([[0.1, -0.2, 0.3], [-0.4, 0.5, 0.05]])
G2 = np.array([[-0.3, 0.1, 0.2], [0.2, -0.1, 0.6]])


class Two(Layer):
    """Two parameters, no forward: enough for the optimizers."""

    def __init__(self, backend):
        self.W = Parameter(backend.asarray(P0, dtype="float32"))
        self.b = Parameter(backend.asarray([0.25, -0.5], dtype="float32"))


def set_grads(backend, model, gW, gb=None):
    model.W.grad = Variable(backend.asarray(gW, dtype="float32"))
    if gb is not None:
        model.b.grad = Variable(backend.asarray(gb, dtype="float32"))


# Reference steps written from the papers' formulas, in float64 on the host.
def ref_sgd(p, gs):
    for g in gs:
        p = p - 0.1 * g
    return p


def ref_momentum(p, gs):
    v = np.zeros_like(p)
    for g in gs:
        v = 0.9 * v - 0.1 * g
        p = p + v
    return p


def ref_adagrad(p, gs):
    h = np.zeros_like(p)
    for g in gs:
        h = h + g * g
        p = p - 0.1 * g / (np.sqrt(h) + 1e-8)
    return p


def ref_adadelta(p, gs):
    msg, msdx = np.zeros_like(p), np.zeros_like(p)
    for g in gs:
        msg = 0.95 * msg + 0.05 * g * g
        dx = np.sqrt((msdx + 1e-6) / (msg + 1e-6)) * g
        msdx = 0.95 * msdx + 0.05 * dx * dx
        p = p - dx
    return p


def ref_adam(p, gs, wd=0.0):
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(gs, 1):
        p = p * (1 - 0.1 * wd)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return p


CASES = {
    "SGD": (lambda: optim.SGD(lr=0.1), ref_sgd),
    "MomentumSGD": (lambda: optim.MomentumSGD(lr=0.1, momentum=0.9), ref_momentum),
    "AdaGrad": (lambda: optim.AdaGrad(lr=0.1), ref_adagrad),
    "AdaDelta": (lambda: optim.AdaDelta(rho=0.95, eps=1e-6), ref_adadelta),
    "Adam": (lambda: optim.Adam(lr=0.1), ref_adam),
    "AdamW": (lambda: optim.AdamW(lr=0.1, weight_decay=0.5), lambda p, gs: ref_adam(p, gs, 0.5)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_two_steps_match_hand_computation(backend, name):
    make, ref = CASES[name]
    model = Two(backend)
    opt = make().setup(model)
    for g in (G1, G2):
        set_grads(backend, model, g)  # b has no gradient: it must not move
        opt.update()
    assert_close(model.W, ref(P0, [G1, G2]), rtol=1e-5, atol=1e-6)
    assert_close(model.b, [0.25, -0.5])
    assert model.W.dtype == backend.dtype("float32") and model.W.device == backend.device
    assert type(model.W.data) is type(backend.asarray(0.0))


def test_float32_stays_float32_with_numpy_hyperparameters(backend):
    model = Two(backend)
    opt = optim.Adam(lr=np.float64(0.1), beta1=np.float64(0.9)).setup(model)
    set_grads(backend, model, G1, [1.0, 2.0])
    opt.update()
    assert model.W.dtype == backend.dtype("float32") and model.b.dtype == model.W.dtype
    for st in opt._state.values():
        assert all(v.dtype == model.W.dtype for k, v in st.items() if k != "step")


def test_setup_with_a_list_of_params_and_errors(backend):
    model = Two(backend)
    opt = optim.SGD(lr=1.0).setup([model.b])
    set_grads(backend, model, G1, [1.0, 1.0])
    opt.update()
    assert_close(model.b, [-0.75, -1.5])
    assert_close(model.W, P0)  # not in the list
    with pytest.raises(RuntimeError, match="setup"):
        optim.SGD().update()
    with pytest.raises(TypeError, match="item 0"):
        optim.SGD().setup([np.zeros(2)])


def test_weight_decay_hook(backend):
    model = Two(backend)
    opt = optim.SGD(lr=0.1).setup(model)
    opt.add_hook(optim.WeightDecay(0.01))
    set_grads(backend, model, G1)
    opt.update()
    assert_close(model.W, P0 - 0.1 * (G1 + 0.01 * P0))


def test_clip_grad_uses_the_global_norm(backend):
    model = Two(backend)
    gb = np.array([3.0, -4.0])
    norm = math.sqrt(float(np.sum(G1 ** 2) + np.sum(gb ** 2)))
    opt = optim.SGD(lr=1.0).setup(model)
    opt.add_hook(optim.ClipGrad(1.0))
    set_grads(backend, model, G1, gb)
    opt.update()
    scale = 1.0 / (norm + 1e-6)
    assert_close(model.W, P0 - G1 * scale)
    assert_close(model.b, np.array([0.25, -0.5]) - gb * scale)
    # under the threshold nothing is scaled
    model = Two(backend)
    opt = optim.SGD(lr=1.0).setup(model)
    opt.add_hook(optim.ClipGrad(100.0))
    set_grads(backend, model, G1, gb)
    opt.update()
    assert_close(model.W, P0 - G1)


def test_freeze_param_hook(backend):
    outer = Layer()
    outer.a, outer.c = Two(backend), Two(backend)
    opt = optim.SGD(lr=1.0).setup(outer)
    opt.add_hook(optim.FreezeParam(outer.a, outer.c.b))
    for sub in (outer.a, outer.c):
        set_grads(backend, sub, G1, [1.0, 1.0])
    opt.update()
    assert_close(outer.a.W, P0) and assert_close(outer.a.b, [0.25, -0.5])
    assert_close(outer.c.b, [0.25, -0.5])
    assert_close(outer.c.W, P0 - G1)
    with pytest.raises(TypeError, match="argument 0"):
        optim.FreezeParam("a")


def _other_place(backend):
    return "numpy" if backend.id == "array_api_strict:device1" else "array_api_strict:device1"


def test_state_survives_model_to(backend):
    model = Two(backend)
    W = model.W
    opt = optim.MomentumSGD(lr=0.1, momentum=0.9).setup(model)
    set_grads(backend, model, G1)
    opt.update()
    target = _other_place(backend)
    assert model.to(target) is model
    assert model.W is W  # in place: the same Parameter object
    b, dev = xgrad.backends.resolve_target(target)
    dev = dev or b.default_device
    assert b.owns(W.data) and W.data.device == dev and W.grad.data.device == dev
    W.grad = Variable(xgrad.asarray(G2, dtype="float32", backend=b, device=dev))
    opt.update()  # the momentum follows the parameter
    assert_close(model.W, ref_momentum(P0, [G1, G2]), rtol=1e-5, atol=1e-6)
    v = opt._state[W]["v"]
    assert b.owns(v) and v.device == dev


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_round_trip(backend, name):
    make, ref = CASES[name]
    m1, m2 = Two(backend), Two(backend)
    o1, o2 = make().setup(m1), make().setup(m2)
    set_grads(backend, m1, G1)
    o1.update()
    sd = o1.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert "hyper/" + o1._hyper[0] in sd
    if o1._slots:
        assert "W/" + o1._slots[0] in sd and "b/" + o1._slots[0] not in sd
    m2.W.data = xgrad.asarray(m1.W.data, backend=backend.backend, device=backend.device)
    o2.load_state_dict(sd)
    for m, o in ((m1, o1), (m2, o2)):
        set_grads(backend, m, G2)
        o.update()
    assert_close(m2.W, m1.W, rtol=0, atol=0)
    assert_close(m2.W, ref(P0, [G1, G2]), rtol=1e-5, atol=1e-6)


def test_state_dict_loads_across_backends(backend):
    host = Two(_Host())
    o1 = optim.Adam(lr=0.1).setup(host)
    host.W.grad = Variable(np.asarray(G1, dtype=np.float32))
    o1.update()
    model = Two(backend)
    model.W.data = backend.asarray(to_host(host.W), dtype="float32")
    o2 = optim.Adam(lr=0.5).setup(model)
    o2.load_state_dict(o1.state_dict())
    assert o2.lr == 0.1
    st = o2._state[model.W]
    assert st["step"] == 1 and st["m"].device == backend.device
    set_grads(backend, model, G2)
    o2.update()
    assert_close(model.W, ref_adam(P0, [G1, G2]), rtol=1e-5, atol=1e-6)


class _Host:
    """A stand-in BackendCase for plain NumPy."""

    def asarray(self, obj, dtype=None):
        return np.asarray(obj, dtype=dtype)


def test_load_state_dict_checks_before_changing(backend):
    model = Two(backend)
    opt = optim.Adam(lr=0.1).setup(model)
    set_grads(backend, model, G1)
    opt.update()
    good = opt.state_dict()
    before = {k: v.copy() for k, v in good.items()}
    bad_cases = {
        "shape": ({**good, "W/m": np.zeros((3, 2), np.float32)}, "W/m.*shape"),
        "dtype": ({**good, "W/v": good["W/v"].astype(np.float64)}, "W/v.*dtype"),
        "unknown param": ({**good, "nope/m": good["W/m"]}, "no parameter named 'nope'"),
        "unknown slot": ({**good, "W/h": good["W/m"]}, "no 'h' state"),
        "unknown hyper": ({**good, "hyper/momentum": np.asarray(0.9)}, "no hyperparameter"),
        "missing hyper": ({k: v for k, v in good.items() if k != "hyper/lr"}, "hyper/lr"),
        "missing slot": ({k: v for k, v in good.items() if k != "W/v"}, "W/v"),
        "float step": ({**good, "W/step": np.asarray(1.0)}, "integer"),
        "not a key": ({**good, "plain": np.asarray(1.0)}, "plain"),
    }
    for why, (state, match) in bad_cases.items():
        with pytest.raises(StateError, match=match):
            opt.load_state_dict(state)
        after = opt.state_dict()
        assert after.keys() == before.keys(), why
        for k in before:
            np.testing.assert_array_equal(after[k], before[k], err_msg=why)
        assert opt.lr == 0.1


def test_hyperparameters_are_loaded(backend):
    model = Two(backend)
    opt = optim.MomentumSGD(lr=0.1, momentum=0.5).setup(model)
    sd = opt.state_dict()
    assert float(sd["hyper/lr"]) == 0.1 and float(sd["hyper/momentum"]) == 0.5
    other = optim.MomentumSGD(lr=1.0, momentum=0.0).setup(model)
    other.load_state_dict(sd)
    assert other.lr == 0.1 and other.momentum == 0.5


@pytest.mark.parametrize("bad", ["shape", "dtype", "namespace"])
def test_bad_gradient_is_a_gradient_error_naming_the_parameter(backend, bad):
    """The optimizers refuse a gradient that does not match its parameter with the engine's
    class, GradientError, naming the parameter; nothing is updated."""
    model = nn.Linear(2, in_size=3)
    opt = optim.SGD().setup(model)
    before = to_host(model.W).copy()
    if bad == "shape":
        model.W.grad = Variable(xgrad.zeros((2, 3)))
    elif bad == "dtype":
        model.W.grad = Variable(xgrad.zeros((3, 2), dtype="int32"))
    else:
        other = "array_api_strict" if backend.name != "array_api_strict" else "numpy"
        model.W.grad = Variable(xgrad.asarray(np.zeros((3, 2), np.float32), backend=other))
    with pytest.raises(xgrad.GradientError, match=r"SGD\.update: the gradient of parameter 'W'"):
        opt.update()
    assert_close(model.W, before)

"""Neural-network functions (xgrad/functions/nn.py) on every backend: forward against NumPy
references on the host, gradcheck / gradgradcheck, dtype and device, stability, bad input."""

import numpy as np
import pytest
from optable import normalize_ref, sce_ref, softmax_ref

import xgrad
import xgrad.functions as F
from xgrad import Variable
from xgrad.testing import assert_close, gradcheck, gradgradcheck, to_host

RNG = np.random.default_rng(1234)
X34 = RNG.standard_normal((3, 4))
T3 = np.array([1, 0, 3])


def arr(backend, a, dtype="float32"):
    return backend.asarray(np.asarray(a), dtype=dtype)


def var(backend, a, dtype="float32"):
    return Variable(arr(backend, a, dtype))


def check_dtype_device(backend, y, *inputs):
    """Output and every input gradient are float32 on the backend's device."""
    f32 = backend.xp.float32
    assert y.dtype == f32 and y.device == backend.device
    y.backward()
    for v in inputs:
        assert v.grad is not None
        assert v.grad.dtype == f32 and v.grad.device == backend.device


# --- softmax / log_softmax -------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_log_softmax_forward(backend, axis):
    x = RNG.standard_normal((2, 3, 4))
    assert_close(F.softmax(arr(backend, x), axis=axis), softmax_ref(x, axis))
    assert_close(F.log_softmax(arr(backend, x), axis=axis), np.log(softmax_ref(x, axis)))


def test_softmax_log_softmax_gradients(backend):
    for f in (F.softmax, F.log_softmax, lambda x: F.softmax(x, axis=0)):
        assert gradcheck(f, arr(backend, X34))
        assert gradgradcheck(f, arr(backend, X34))


def test_softmax_log_softmax_dtype_device(backend):
    for f in (F.softmax, F.log_softmax):
        x = var(backend, X34)
        check_dtype_device(backend, f(x) * arr(backend, X34), x)


def test_softmax_stable_at_1e3_float32(backend):
    big = np.array([[1e3, -1e3, 0.0], [1e3, 1e3, -1e3]])
    for f, ref in ((F.softmax, [[1, 0, 0], [0.5, 0.5, 0]]),
                   (F.log_softmax, [[0, -2e3, -1e3], [-np.log(2), -np.log(2), -2e3 - np.log(2)]])):
        x = var(backend, big)
        y = f(x)
        assert_close(y, np.array(ref))
        (y * arr(backend, [[1, 2, 3], [4, 5, 6]])).sum().backward()
        assert np.isfinite(to_host(x.grad)).all()
    x = var(backend, big)
    loss = F.softmax_cross_entropy(x, arr(backend, [1, 2], "int32"))
    loss.backward()
    assert_close(loss, (2e3 + 2e3 + np.log(2)) / 2)
    assert np.isfinite(to_host(x.grad)).all()


def test_softmax_rejects_integer_input_and_bad_axis(backend):
    with pytest.raises(TypeError, match="softmax.*int"):
        F.softmax(arr(backend, [[1, 2]], "int32"))
    with pytest.raises(ValueError, match="log_softmax: axis 2"):
        F.log_softmax(arr(backend, X34), axis=2)


# --- softmax_cross_entropy -------------------------------------------------------------------
def test_softmax_cross_entropy_exact_value(backend):
    f64 = backend.dtype("float64")
    x = Variable(backend.asarray([[-1, 0, 1, 2], [2, 0, 1, -1]], dtype=f64))
    loss = F.softmax_cross_entropy(x, [3, 0])
    assert loss.dtype == f64 and loss.shape == ()
    if backend.gpu:
        assert_close(loss, 0.4401896985611953)
    else:
        assert loss.item() == 0.4401896985611953
    loss.backward()
    xh = to_host(x)
    assert_close(x.grad, (softmax_ref(xh, 1) - np.eye(4)[[3, 0]]) / 2)


def test_softmax_cross_entropy_forward_and_targets(backend):
    loss = F.softmax_cross_entropy(arr(backend, X34), arr(backend, T3, "int64"))
    assert_close(loss, sce_ref(X34, T3))
    for t in (list(T3), Variable(arr(backend, T3, "int32")), arr(backend, T3, "int32")):
        assert_close(F.softmax_cross_entropy(arr(backend, X34), t), sce_ref(X34, T3))


def test_softmax_cross_entropy_gradients(backend):
    t = arr(backend, T3, "int32")
    assert gradcheck(lambda x: F.softmax_cross_entropy(x, t), arr(backend, X34))
    assert gradgradcheck(lambda x: F.softmax_cross_entropy(x, t), arr(backend, X34))


def test_softmax_cross_entropy_targets_checked_on_the_device(backend, monkeypatch):
    """Where reading the labels would wait for a GPU, they are checked on the device: a label
    out of range makes the loss and the gradient NaN (no wrong number, no host read);
    detect_anomaly() raises the named error; valid labels give the host path's numbers."""
    from xgrad.functions import nn

    t_ok = arr(backend, T3, "int64")
    monkeypatch.setitem(nn._GPU_TYPES, type(t_ok), True)
    for create_graph in (False, True):
        x = var(backend, X34)
        loss = F.softmax_cross_entropy(x, t_ok)
        assert_close(loss, sce_ref(X34, T3))
        loss.backward(create_graph=create_graph)
        assert_close(x.grad, (softmax_ref(X34, 1) - np.eye(4)[T3]) / 3)
    for bad, ignore in (([1, 4, 3], None), ([-2, 0, -1], -1)):
        for create_graph in (False, True):
            x = var(backend, X34)
            loss = F.softmax_cross_entropy(x, arr(backend, bad, "int64"), ignore_label=ignore)
            assert loss.dtype == backend.xp.float32 and np.isnan(to_host(loss)).all()
            loss.backward(create_graph=create_graph)
            assert np.isnan(to_host(x.grad)).all()
        with xgrad.detect_anomaly(), pytest.raises(ValueError, match=r"targets must lie in \[0, 4\)"):
            F.softmax_cross_entropy(var(backend, X34), arr(backend, bad, "int64"),
                                    ignore_label=ignore)


def test_softmax_cross_entropy_float32_stays_float32(backend):
    x = var(backend, X34)
    check_dtype_device(backend, F.softmax_cross_entropy(x, arr(backend, T3, "int64")), x)


def test_softmax_cross_entropy_ignore_label(backend):
    t = np.array([1, -1, 3])
    x = var(backend, X34)
    loss = F.softmax_cross_entropy(x, arr(backend, t, "int32"), ignore_label=-1)
    keep = t != -1
    assert_close(loss, sce_ref(X34[keep], t[keep]))
    loss.backward()
    g = to_host(x.grad)
    assert (g[1] == 0).all()
    assert_close(g[keep], (softmax_ref(X34[keep], 1) - np.eye(4)[t[keep]]) / 2)
    ti = arr(backend, t, "int32")
    assert gradcheck(lambda a: F.softmax_cross_entropy(a, ti, ignore_label=-1), arr(backend, X34))
    everything = F.softmax_cross_entropy(x, arr(backend, [-1, -1, -1], "int32"), ignore_label=-1)
    assert_close(everything, 0.0)


def test_softmax_cross_entropy_bad_targets(backend):
    x = arr(backend, X34)
    with pytest.raises(ValueError, match=r"softmax_cross_entropy.*\[0, 4\).*4 classes.*-2, 4"):
        F.softmax_cross_entropy(x, arr(backend, [4, 0, -2], "int32"))
    with pytest.raises(ValueError, match="softmax_cross_entropy.*ignore_label=-1.*got 7"):
        F.softmax_cross_entropy(x, arr(backend, [7, -1, 0], "int32"), ignore_label=-1)
    with pytest.raises(TypeError, match="softmax_cross_entropy.*integer"):
        F.softmax_cross_entropy(x, arr(backend, [1, 0, 3]))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy.*\(3, 4\).*\(2,\)"):
        F.softmax_cross_entropy(x, arr(backend, [1, 0], "int32"))


# --- sigmoid_cross_entropy, mean_squared_error, accuracy --------------------------------------
def test_sigmoid_cross_entropy(backend):
    t = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 0]])
    p = 1 / (1 + np.exp(-X34))
    ref = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    assert_close(F.sigmoid_cross_entropy(arr(backend, X34), arr(backend, t, "int32")), ref)
    assert_close(F.sigmoid_cross_entropy(arr(backend, X34), t.tolist()), ref)
    tf = arr(backend, t)
    assert gradcheck(lambda x: F.sigmoid_cross_entropy(x, tf), arr(backend, X34))
    assert gradgradcheck(lambda x: F.sigmoid_cross_entropy(x, tf), arr(backend, X34))
    assert gradcheck(F.sigmoid_cross_entropy, arr(backend, X34), arr(backend, RNG.random((3, 4))))
    x = var(backend, X34)
    check_dtype_device(backend, F.sigmoid_cross_entropy(x, arr(backend, t, "int32")), x)


def test_sigmoid_cross_entropy_stable_and_shape_check(backend):
    x = var(backend, [1e3, -1e3, 1e3, -1e3])
    loss = F.sigmoid_cross_entropy(x, arr(backend, [1, 0, 0, 1], "int32"))
    loss.backward()
    assert_close(loss, 2e3 / 4)
    assert_close(x.grad, np.array([0, 0, 1, -1]) / 4)
    with pytest.raises(ValueError, match=r"sigmoid_cross_entropy.*\(4,\).*\(2, 2\)"):
        F.sigmoid_cross_entropy(x, arr(backend, [[1, 0], [0, 1]], "int32"))


def test_mean_squared_error(backend):
    y = RNG.standard_normal((3, 4))
    assert_close(F.mean_squared_error(arr(backend, X34), arr(backend, y)), np.mean((X34 - y) ** 2))
    assert gradcheck(F.mean_squared_error, arr(backend, X34), arr(backend, y))
    assert gradgradcheck(F.mean_squared_error, arr(backend, X34), arr(backend, y))
    a, b = var(backend, X34), var(backend, y)
    check_dtype_device(backend, F.mean_squared_error(a, b), a, b)
    assert_close(a.grad, 2 * (X34 - y) / 12)
    with pytest.raises(ValueError, match=r"mean_squared_error.*\(3, 4\).*\(3, 1\)"):
        F.mean_squared_error(a, arr(backend, np.zeros((3, 1))))


def test_accuracy(backend):
    y = var(backend, [[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    acc = F.accuracy(y, arr(backend, [1, 0, 0, 1], "int32"))
    assert_close(acc, 0.5)
    assert acc.dtype == backend.xp.float32 and acc.device == backend.device
    assert not acc.requires_grad and acc.creator is None
    assert_close(F.accuracy(y, [1, 0, 2, 2]), 1.0)
    with pytest.raises(ValueError, match="accuracy"):
        F.accuracy(y, [1, 0])


# --- dropout ---------------------------------------------------------------------------------
def test_dropout_test_mode_is_identity(backend):
    x = var(backend, X34)
    with xgrad.test_mode():
        y = F.dropout(x, 0.5)
    assert_close(y, X34.astype(np.float32))
    assert F.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="dropout.*1.0"):
        F.dropout(x, 1.0)


def test_dropout_train_mask_and_gradient(backend):
    xgrad.manual_seed(0)
    p = 0.3
    x = Variable(backend.xp.ones((50, 40), dtype=backend.xp.float32, device=backend.device))
    y = F.dropout(x, p)
    assert y.dtype == backend.xp.float32 and y.device == backend.device
    yh = to_host(y)
    kept = yh != 0
    assert abs(kept.mean() - (1 - p)) < 0.05
    assert_close(yh[kept], np.full(kept.sum(), 1 / (1 - p)))
    (y * 1.0).sum().backward()
    assert x.grad.dtype == backend.xp.float32
    assert_close(x.grad, yh)  # d(x * mask * scale)/dx with x = 1 is the output itself


def test_dropout_gradcheck_with_a_fixed_mask(backend):
    def f(v):
        xgrad.manual_seed(3)  # the same mask on every evaluation
        return F.dropout(v, 0.4) * v

    assert gradcheck(f, arr(backend, X34))
    assert gradgradcheck(f, arr(backend, X34))


def test_dropout_reproducible_under_manual_seed(backend):
    x = arr(backend, np.ones((8, 8)))
    xgrad.manual_seed(7)
    a = to_host(F.dropout(x))
    b = to_host(F.dropout(x))
    xgrad.manual_seed(7)
    assert (to_host(F.dropout(x)) == a).all()
    assert not (a == b).all()


# --- batch_norm / layer_norm -----------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 2, 3)])
def test_batch_norm_train_updates_running_statistics(backend, shape):
    x = RNG.standard_normal(shape) * 2 + 1
    c = shape[1]
    gamma, beta = RNG.standard_normal(c), RNG.standard_normal(c)
    rm0, rv0 = RNG.standard_normal(c), RNG.random(c) + 0.5
    rm, rv = var(backend, rm0), var(backend, rv0)
    axes = (0,) + tuple(range(2, len(shape)))
    pshape = (1, c) + (1,) * (len(shape) - 2)
    xv, g, b = var(backend, x), var(backend, gamma), var(backend, beta)
    y = F.batch_norm(xv, g, b, rm, rv, decay=0.8, eps=1e-3)
    assert_close(y, normalize_ref(x, gamma.reshape(pshape), beta.reshape(pshape), axes, 1e-3))
    m = x.size // c
    assert_close(rm, 0.8 * rm0 + 0.2 * x.mean(axis=axes))
    assert_close(rv, 0.8 * rv0 + 0.2 * x.var(axis=axes) * m / (m - 1))
    assert rm.dtype == backend.xp.float32 and rm.device == backend.device
    check_dtype_device(backend, y * arr(backend, RNG.standard_normal(shape)), xv, g, b)
    # test mode: running statistics, which stay as they are
    rm_h, rv_h = to_host(rm), to_host(rv)
    with xgrad.test_mode():
        yt = F.batch_norm(xv, g, b, rm, rv, eps=1e-3)
    ref = (gamma.reshape(pshape) * (x - rm_h.reshape(pshape)) / np.sqrt(rv_h.reshape(pshape) + 1e-3)
           + beta.reshape(pshape))
    assert_close(yt, ref)
    assert (to_host(rm) == rm_h).all()


def test_batch_norm_gradients(backend):
    x = RNG.standard_normal((3, 2, 2, 2))
    g, b = RNG.standard_normal(2), RNG.standard_normal(2)
    f = F.batch_norm
    assert gradcheck(f, arr(backend, x), arr(backend, g), arr(backend, b))
    assert gradgradcheck(f, arr(backend, x), arr(backend, g), arr(backend, b))
    rm, rv = arr(backend, [0.5, -0.5]), arr(backend, [2.0, 0.5])
    with xgrad.test_mode():
        assert gradgradcheck(lambda *a: f(*a, rm, rv), arr(backend, x), arr(backend, g),
                             arr(backend, b))


def test_batch_norm_bad_input(backend):
    x = arr(backend, X34)
    g = arr(backend, np.ones(4))
    with pytest.raises(ValueError, match=r"batch_norm: gamma must have shape \(4,\)"):
        F.batch_norm(x, arr(backend, np.ones(3)), g)
    with pytest.raises(TypeError, match="batch_norm: running_mean must be a Variable"):
        F.batch_norm(x, g, g, arr(backend, np.zeros(4)))
    with xgrad.test_mode(), pytest.raises(ValueError, match="batch_norm: test mode"):
        F.batch_norm(x, g, g)


def test_layer_norm(backend):
    x = RNG.standard_normal((2, 3, 4))
    g, b = RNG.standard_normal(4), RNG.standard_normal(4)
    assert_close(F.layer_norm(arr(backend, x), arr(backend, g), arr(backend, b)),
                 normalize_ref(x, g, b, -1, 1e-5))
    assert gradcheck(F.layer_norm, arr(backend, x), arr(backend, g), arr(backend, b))
    assert gradgradcheck(F.layer_norm, arr(backend, x), arr(backend, g), arr(backend, b))
    xv, gv, bv = var(backend, x), var(backend, g), var(backend, b)
    check_dtype_device(backend, F.layer_norm(xv, gv, bv) * arr(backend, x), xv, gv, bv)
    with pytest.raises(ValueError, match=r"layer_norm: gamma must have shape \(4,\)"):
        F.layer_norm(xv, arr(backend, np.ones(3)), bv)


# --- embed_id --------------------------------------------------------------------------------
def test_embed_id(backend):
    W = RNG.standard_normal((5, 3))
    ids = np.array([[0, 2, 2], [4, 2, 0]])
    Wv = var(backend, W)
    y = F.embed_id(arr(backend, ids, "int32"), Wv)
    assert y.shape == (2, 3, 3)
    assert_close(y, W[ids])
    check_dtype_device(backend, y, Wv)
    counts = np.bincount(ids.ravel(), minlength=5)[:, None]
    assert_close(Wv.grad, np.broadcast_to(counts, (5, 3)))  # repeated ids add up
    idv = arr(backend, ids, "int32")
    assert gradcheck(lambda w: F.embed_id(idv, w), arr(backend, W))
    assert_close(F.embed_id([1, 3], arr(backend, W)), W[[1, 3]])
    with pytest.raises(ValueError, match=r"embed_id: ids must lie in \[0, 5\).*\[5\]"):
        F.embed_id(arr(backend, [1, 5], "int32"), Wv)


def test_softmax_cross_entropy_with_a_minus_inf_logit(backend):
    # a masked logit: PyTorch gives log(1 + e) = 1.3133 and gradient [0, -e/(1+e), e/(1+e)]
    e = np.e
    want_grad = [[0.0, -e / (1 + e), e / (1 + e)]]
    for create_graph in (False, True):
        for ignore in (None, 7):
            x = var(backend, [[-np.inf, 0.0, 1.0]])
            loss = F.softmax_cross_entropy(x, [1], ignore_label=ignore)
            loss.backward(create_graph=create_graph)
            assert_close(loss, np.log(1 + e))
            assert_close(x.grad, want_grad)
            assert loss.dtype == x.dtype and x.grad.dtype == x.dtype


def test_sigmoid_cross_entropy_with_infinite_logits(backend):
    # a logit of -inf with target 0 (or +inf with target 1) costs 0, not NaN
    x = var(backend, [-np.inf, np.inf, 0.0, 2.0])
    loss = F.sigmoid_cross_entropy(x, [0, 1, 1, 0])
    loss.backward()
    assert_close(loss, (np.log(2) + np.log1p(np.exp(2.0))) / 4)
    assert_close(x.grad, [0.0, 0.0, -0.125, 1 / (1 + np.exp(-2.0)) / 4])


def test_float16_dropout_and_layers(backend):
    f16 = backend.dtype("float16")
    x = Variable(backend.asarray(np.ones((4, 8)), dtype=f16))
    y = F.dropout(x, 0.5)
    assert y.dtype == f16
    assert set(np.unique(to_host(y)).tolist()) <= {0.0, 2.0}
    layer = xgrad.nn.Linear(3, in_size=8, dtype="float16")
    layer.to(backend.id)
    assert layer.W.dtype == f16 and layer(x).dtype == f16


# --- fused gradient nodes: one backward body, differentiable again ------------------------------
def _gradient_of(backend, f):
    """The inputs -> the gradients of <f(inputs), u> (u fixed), built with create_graph=True:
    gradgradcheck of it checks f's third derivatives."""

    def grads(*vs):
        y = f(*vs)
        u = np.random.default_rng(0).standard_normal(y.shape)
        for v in vs:
            v.cleargrad()
        F.sum(y * arr(backend, u, y.dtype)).backward(create_graph=True)
        gs = [v.grad for v in vs]
        for v in vs:
            v.cleargrad()
        return tuple(gs) if len(gs) > 1 else gs[0]
    return grads


@pytest.mark.parametrize("ignore_label", [None, -1])
def test_softmax_cross_entropy_gradient_node_differentiates_again(backend, ignore_label):
    t = arr(backend, [1, -1, 3] if ignore_label is not None else T3, "int32")

    def f(x):
        return F.softmax_cross_entropy(x, t, ignore_label=ignore_label)
    assert gradgradcheck(f, arr(backend, X34))
    assert gradgradcheck(_gradient_of(backend, f), arr(backend, X34))  # third order


def test_normalization_gradient_nodes_differentiate_again(backend):
    x = RNG.standard_normal((3, 4))
    g, b = RNG.standard_normal(4), RNG.standard_normal(4)
    assert gradgradcheck(_gradient_of(backend, F.layer_norm), arr(backend, x), arr(backend, g),
                         arr(backend, b))
    xb = RNG.standard_normal((4, 2, 3))
    gb, bb = RNG.standard_normal(2), RNG.standard_normal(2)
    assert gradgradcheck(_gradient_of(backend, F.batch_norm), arr(backend, xb), arr(backend, gb),
                         arr(backend, bb))


def test_fused_gradients_first_order_equal_recorded(backend):
    """The first-order gradient (nothing recorded) and the recorded one (create_graph=True) come
    from the same rule: equal values, one gradient node each."""
    x = RNG.standard_normal((3, 4))
    g, b = RNG.standard_normal(4), RNG.standard_normal(4)
    for f, args in ((lambda x: F.softmax_cross_entropy(x, arr(backend, T3, "int32")), (x,)),
                    (F.layer_norm, (x, g, b))):
        got = []
        for create_graph in (False, True):
            vs = [var(backend, a) for a in args]
            F.sum(f(*vs) * 1.5).backward(create_graph=create_graph)
            got.append([to_host(v.grad) for v in vs])
        for a, b_ in zip(*got):
            assert_close(a, b_)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_softmax_family_edge_cases_follow_pytorch(backend):
    """One shift by the maximum, one policy (PyTorch's): a row of only -inf, or one holding
    +inf, has logsumexp -inf / inf and softmax, log_softmax and the loss NaN; rows beside it
    are unaffected."""
    inf = np.inf
    rows = [[-inf, -inf, -inf], [inf, 1.0, 2.0], [0.0, 1.0, 2.0]]
    x = arr(backend, rows)
    assert_close(F.logsumexp(x, axis=1), [-inf, inf, np.log(np.exp([0, 1, 2]).sum())])
    for f in (F.softmax, F.log_softmax):
        y = to_host(f(x, axis=1))
        assert np.isnan(y[:2]).all(), f"{f.__name__}: {y}"
        ref = softmax_ref(np.array(rows[2]))
        assert_close(y[2], ref if f is F.softmax else np.log(ref))
    for i in (0, 1):
        assert np.isnan(to_host(F.softmax_cross_entropy(x[i:i + 1, :], [1])))
    assert np.isfinite(to_host(F.softmax_cross_entropy(x[2:, :], [1])))

"""xgrad.nn: parameter discovery and order, creation and seeding, every layer's forward and
gradients on every backend, train/eval, in-place moves and state dicts."""

import os
import subprocess
import sys

import numpy as np
import pytest

import xgrad
import xgrad.functions as F
from xgrad import Parameter, Variable, nn, optim
from xgrad.io import StateError
from xgrad.testing import assert_close, gradcheck, to_host

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _set_path(layer, name, value):
    *path, last = name.split(".")
    owner = layer
    for part in path:
        owner = owner[int(part)] if part.isdigit() else getattr(owner, part)
    if last.isdigit():
        owner[int(last)] = value
    else:
        setattr(owner, last, value)


def check_layer(layer, *inputs, call=None, **kw):
    """gradcheck of the layer's output with respect to its float inputs and all parameters:
    the parameters are swapped for gradcheck's (upcast) Variables during each evaluation."""
    call = call or (lambda lyr, *xs: lyr(*xs))
    call(layer, *inputs)  # create lazy parameters first
    named = list(layer.named_params())
    assert named, "no parameters to check"
    n = len(inputs)

    def f(*args):
        for (name, _), v in zip(named, args[n:]):
            _set_path(layer, name, v)
        try:
            return call(layer, *args[:n])
        finally:
            for name, p in named:
                _set_path(layer, name, p)

    return gradcheck(f, *inputs, *[p.data for _, p in named], **kw)


def rand(backend, *shape, seed=0):
    return backend.asarray(np.random.default_rng(seed).standard_normal(shape), dtype="float32")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---------------------------------------------------------------------------------------------
# discovery, order, names
# ---------------------------------------------------------------------------------------------
class Block(nn.Layer):
    def __init__(self):
        self.zeta = Parameter(xgrad.zeros(2))
        self.alpha = Parameter(xgrad.zeros(3))


class Tree(nn.Layer):
    def __init__(self):
        self.mid = Parameter(xgrad.zeros(1))
        self.first = Block()
        self.not_a_param = Variable(xgrad.zeros(1))
        self.blocks = [Block(), Block()]
        self.table = {"k": Block(), "j": Parameter(xgrad.ones(1))}
        self.tied = self.mid  # the same Parameter again: reported once
        self.again = self.first  # the same Layer again
        self.aaa = Parameter(xgrad.zeros(4))


TREE_NAMES = ["mid", "first.zeta", "first.alpha", "blocks.0.zeta", "blocks.0.alpha",
              "blocks.1.zeta", "blocks.1.alpha", "table.k.zeta", "table.k.alpha", "table.j", "aaa"]


def test_named_params_follow_attribute_order(backend):
    t = Tree()
    assert [n for n, _ in t.named_params()] == TREE_NAMES
    ps = list(t.params())
    assert [id(p) for p in ps] == [id(p) for _, p in t.named_params()]
    assert len(ps) == len({id(p) for p in ps}) == len(TREE_NAMES)
    assert all(isinstance(p, Parameter) for p in ps)
    assert [type(x).__name__ for x in t.all_layers()] == ["Tree", "Block", "Block", "Block",
                                                          "Block"]
    assert repr(t) == "Tree(11 parameters)"
    t.mid = Parameter(xgrad.zeros(1))  # re-assigning keeps the attribute's place
    assert [n for n, _ in t.named_params()] == TREE_NAMES[:-1] + ["tied", "aaa"]


_ORDER_SCRIPT = """
import xgrad
from xgrad import nn, Parameter
class M(nn.Layer):
    def __init__(self):
        for name in ["w%d" % i for i in range(30)]:
            setattr(self, name, Parameter(xgrad.zeros(1)))
        self.sub = nn.Sequential(nn.Linear(2, in_size=2), nn.Linear(2, in_size=2))
print(",".join(n for n, _ in M().named_params()))
"""


def test_param_order_does_not_depend_on_the_hash_seed():
    outs = []
    for seed in ("0", "1"):
        env = dict(os.environ, PYTHONHASHSEED=seed,
                   PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        r = subprocess.run([sys.executable, "-c", _ORDER_SCRIPT], env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.strip())
    expected = [f"w{i}" for i in range(30)] + ["sub.layers.0.W", "sub.layers.0.b",
                                                "sub.layers.1.W", "sub.layers.1.b"]
    assert outs[0].split(",") == expected and outs[1] == outs[0]


def test_cleargrads_and_train_eval_flags(backend):
    t = Tree()
    for p in t.params():
        p.grad = Variable(xgrad.ones(p.shape))
    t.cleargrads()
    assert all(p.grad is None for p in t.params())
    assert t.eval() is t
    assert all(not layer.training for layer in t.all_layers())
    t.train()
    assert all(layer.training for layer in t.all_layers())


def test_eval_runs_forward_in_test_mode(backend):
    seen = []

    class Probe(nn.Layer):
        def forward(self, x):
            seen.append(xgrad.Config.train)
            return x

    outer = nn.Sequential(Probe())
    outer(1)
    outer.eval()(1)
    outer.train()
    with xgrad.test_mode():
        outer(1)
    assert seen == [True, False, False]
    with pytest.raises(NotImplementedError, match="Layer.forward"):
        nn.Layer()(1)


# ---------------------------------------------------------------------------------------------
# creation: backend, dtype, seeding
# ---------------------------------------------------------------------------------------------
def test_parameters_are_created_on_the_default_backend(backend):
    lin = nn.Linear(3, in_size=4)
    assert lin.W.shape == (4, 3) and lin.b.shape == (3,)
    assert lin.W.dtype == backend.dtype("float32") and lin.W.device == backend.device
    assert backend.backend.owns(lin.W.data)
    assert_close(lin.b, np.zeros(3))
    w = to_host(lin.W)
    assert 0.05 < w.std() < 1.5  # N(0, 1/4) scaled, not constant
    lin64 = nn.Linear(3, in_size=4, dtype=backend.dtype("float64"))
    assert lin64.W.dtype == backend.dtype("float64") and lin64.b.dtype == lin64.W.dtype
    assert nn.Linear(3, in_size=4, nobias=True).b is None


def test_manual_seed_makes_initial_values_repeat(backend):
    xgrad.manual_seed(7)
    a = [to_host(p) for p in nn.LSTM(3, in_size=2).params()]
    xgrad.manual_seed(7)
    b = [to_host(p) for p in nn.LSTM(3, in_size=2).params()]
    xgrad.manual_seed(8)
    c = [to_host(p) for p in nn.LSTM(3, in_size=2).params()]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_lazy_linear_takes_the_inputs_place_and_dtype(backend):
    f64 = backend.dtype("float64")
    lin = nn.Linear(2)
    assert lin.W is None and list(lin.params()) == []
    x = backend.asarray([[1.0, 2.0, 3.0]], dtype=f64)
    with xgrad.use_backend("numpy"):  # the default backend no longer matters
        y = lin(x)
    assert lin.W.shape == (3, 2) and lin.W.dtype == f64 and lin.b.dtype == f64
    assert lin.W.device == backend.device and backend.backend.owns(lin.b.data)
    assert [n for n, _ in lin.named_params()] == ["W", "b"]
    assert_close(y, to_host(x) @ to_host(lin.W) + to_host(lin.b))
    lin32 = nn.Linear(2, dtype="float32")
    lin32(x)
    assert lin32.W.dtype == backend.dtype("float32") and lin32.W.device == backend.device


# ---------------------------------------------------------------------------------------------
# each layer: forward values or shapes, and gradients
# ---------------------------------------------------------------------------------------------
def test_linear_forward_and_gradients(backend):
    lin = nn.Linear(3)
    x = rand(backend, 4, 5)
    y = lin(x)
    assert y.shape == (4, 3) and y.dtype == x.dtype
    assert_close(y, to_host(x) @ to_host(lin.W) + to_host(lin.b))
    check_layer(lin, x)
    y.sum().backward()
    assert lin.W.grad.shape == lin.W.shape and lin.W.grad.dtype == lin.W.dtype


def test_mlp_and_sequential(backend, tmp_path):
    mlp = nn.MLP((4, 2), activation=F.tanh)
    x = rand(backend, 3, 5)
    y = mlp(x)
    assert y.shape == (3, 2)
    W0, b0, W1, b1 = (to_host(p) for p in mlp.params())
    assert_close(y, np.tanh(to_host(x) @ W0 + b0) @ W1 + b1)
    check_layer(mlp, x)
    seq = nn.Sequential(nn.Linear(4), F.relu, nn.Linear(2))
    assert seq(x).shape == (3, 2) and len(seq) == 3 and seq[1] is F.relu
    assert [n for n, _ in seq.named_params()] == ["layers.0.W", "layers.0.b", "layers.2.W",
                                                   "layers.2.b"]
    assert nn.MLP((3, 1))(x).shape == (3, 1)  # default activation: sigmoid
    dot = mlp.plot(x, path=str(tmp_path / "mlp.dot"))
    assert "Linear" in dot.read_text()
    with pytest.raises(TypeError, match="item 1"):
        nn.Sequential(nn.Linear(2), 3)


def test_conv2d_layer(backend):
    conv = nn.Conv2d(4, 3, stride=1, pad=1)
    x = rand(backend, 2, 2, 5, 5)
    y = conv(x)
    assert y.shape == (2, 4, 5, 5) and conv.W.shape == (4, 2, 3, 3) and conv.b.shape == (4,)
    assert conv.W.device == backend.device
    check_layer(conv, rand(backend, 1, 2, 4, 4))
    eager = nn.Conv2d(3, (2, 3), stride=2, in_channels=2, nobias=True)
    assert eager.W.shape == (3, 2, 2, 3) and eager.b is None
    assert eager(x).shape == (2, 3, 2, 2)


def test_deconv2d_layer(backend):
    dec = nn.Deconv2d(3, 3, stride=2, pad=1)
    x = rand(backend, 2, 2, 4, 4)
    y = dec(x)
    assert y.shape == (2, 3, 7, 7) and dec.W.shape == (2, 3, 3, 3)
    assert dec(x, outsize=(8, 8)).shape == (2, 3, 8, 8)
    check_layer(dec, rand(backend, 1, 2, 3, 3))


def test_batch_norm_layer(backend):
    bn = nn.BatchNorm(decay=0.5)
    x = rand(backend, 6, 3) * 2.0 + 1.0
    y = bn(x)
    xh = to_host(x).astype(np.float64)
    assert_close(y, (xh - xh.mean(0)) / np.sqrt(xh.var(0) + 2e-5), atol=1e-4)
    assert [n for n, _ in bn.named_params()] == ["gamma", "beta"]
    assert [n for n, _ in bn.named_buffers()] == ["avg_mean", "avg_var"]
    assert_close(bn.avg_mean, 0.5 * xh.mean(0))
    assert_close(bn.avg_var, 0.5 + 0.5 * xh.var(0, ddof=1))
    assert bn.avg_mean.device == backend.device
    bn.eval()
    m, v = to_host(bn.avg_mean), to_host(bn.avg_var)
    assert_close(bn(x), (xh - m) / np.sqrt(v + 2e-5))
    assert_close(bn.avg_mean, m, rtol=0, atol=0)  # test mode leaves the averages alone
    bn.train()
    check_layer(bn, rand(backend, 5, 3))
    img = nn.BatchNorm()
    assert img(rand(backend, 2, 3, 4, 4)).shape == (2, 3, 4, 4) and img.gamma.shape == (3,)


def test_layer_norm_layer(backend):
    ln = nn.LayerNorm()
    x = rand(backend, 3, 5)
    xh = to_host(x).astype(np.float64)
    mu, var = xh.mean(-1, keepdims=True), xh.var(-1, keepdims=True)
    assert_close(ln(x), (xh - mu) / np.sqrt(var + 1e-5), atol=1e-4)
    assert ln.gamma.shape == (5,)
    check_layer(ln, x)
    assert nn.LayerNorm(5).gamma.shape == (5,)


def test_embedding_layer(backend):
    emb = nn.Embedding(6, 3)
    assert nn.EmbedID is nn.Embedding and emb.W.shape == (6, 3)
    ids = backend.asarray([[0, 5], [2, 2]], dtype="int64")
    y = emb(ids)
    assert y.shape == (2, 2, 3)
    assert_close(y, to_host(emb.W)[to_host(ids)])
    check_layer(emb, call=lambda lyr: lyr(ids))
    y.sum().backward()
    g = to_host(emb.W.grad)
    np.testing.assert_allclose(g[:, 0], [1, 0, 2, 0, 0, 1])  # id 2 twice, id 5 once


def test_dropout_layer(backend):
    drop = nn.Dropout(0.5)
    x = backend.asarray(np.ones((50, 40)), dtype="float32")
    xgrad.manual_seed(0)
    y = to_host(drop(x))
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.3 < (y == 0).mean() < 0.7
    drop.eval()
    assert_close(drop(x), np.ones((50, 40)), rtol=0, atol=0)
    drop.train()

    def same_mask(x):  # the same mask at every evaluation
        xgrad.manual_seed(1)
        return drop(x)

    gradcheck(same_mask, rand(backend, 3, 4))


def test_rnn_matches_hand_computation(backend):
    rnn = nn.RNN(3, in_size=2)
    xs = [rand(backend, 4, 2, seed=s) for s in range(3)]
    Wx, bx, Wh = (to_host(p).astype(np.float64) for p in rnn.params())
    h = None
    for x in xs:
        out = rnn(x)
        a = to_host(x) @ Wx + bx
        h = np.tanh(a if h is None else a + h @ Wh)
        assert_close(out, h)
    rnn.reset_state()
    assert rnn.h is None
    assert_close(rnn(xs[0]), np.tanh(to_host(xs[0]) @ Wx + bx))

    def run(layer, *steps):
        layer.reset_state()
        return [layer(s) for s in steps][-1]

    check_layer(rnn, *xs, call=run)


def test_lstm_matches_hand_computation(backend):
    lstm = nn.LSTM(3)
    xs = [rand(backend, 4, 2, seed=s) for s in range(3)]
    lstm(xs[0])
    lstm(xs[1])  # now every parameter exists (h2* are sized at the second step)
    ps = {n: to_host(p).astype(np.float64) for n, p in lstm.named_params()}
    assert len(ps) == 12
    lstm.reset_state()
    assert lstm.h is None and lstm.c is None
    h = c = None
    for x in xs:
        out = lstm(x)
        xh = to_host(x)

        def gate(k, act, xh=xh, h=h):
            a = xh @ ps[f"x2{k}.W"] + ps[f"x2{k}.b"]
            return act(a if h is None else a + h @ ps[f"h2{k}.W"])

        f, i, o, u = gate("f", sigmoid), gate("i", sigmoid), gate("o", sigmoid), gate("u", np.tanh)
        c = i * u if c is None else f * c + i * u
        h = o * np.tanh(c)
        assert_close(out, h)

    def run(layer, *steps):
        layer.reset_state()
        return [layer(s) for s in steps][-1]

    check_layer(lstm, *xs[:2], call=run)


def test_truncated_bptt_and_training_reduce_the_loss(backend):
    xgrad.manual_seed(0)
    model = nn.Sequential(nn.LSTM(4), nn.Linear(1))
    opt = optim.Adam(lr=0.05).setup(model)
    xs = [rand(backend, 2, 1, seed=s) for s in range(4)]
    ts = [x * 0.5 for x in xs]
    losses = []
    for _ in range(15):
        model.layers[0].reset_state()
        loss = sum((F.mean_squared_error(model(x), t) for x, t in zip(xs, ts)), start=0.0)
        model.cleargrads()
        loss.backward()
        loss.unchain_backward()
        opt.update()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------------------------------------
# moving and state
# ---------------------------------------------------------------------------------------------
def _other_place(backend):
    return "numpy" if backend.id == "array_api_strict:device1" else "array_api_strict:device1"


def test_to_moves_parameters_buffers_and_grads_in_place(backend):
    model = nn.Sequential(nn.Linear(3, in_size=2), nn.BatchNorm(), nn.RNN(2))
    x = rand(backend, 4, 2)
    model(x).sum().backward()
    before = {n: (p, to_host(p)) for n, p in model.named_params()}
    bufs = {n: to_host(v) for n, v in model.named_buffers()}
    assert model.layers[2].h is not None
    target = _other_place(backend)
    assert model.to(target) is model
    b, dev = xgrad.backends.resolve_target(target)
    dev = dev or b.default_device
    for n, p in model.named_params():
        assert p is before[n][0]
        assert b.owns(p.data) and p.data.device == dev
        assert b.owns(p.grad.data) and p.grad.data.device == dev
        np.testing.assert_array_equal(to_host(p), before[n][1])
    for n, v in model.named_buffers():
        assert b.owns(v) and v.device == dev
        np.testing.assert_array_equal(to_host(v), bufs[n])
    assert model.layers[2].h is None  # recurrent state is reset by a move
    y = model(xgrad.asarray(to_host(x), backend=b, device=dev))
    assert b.owns(y.data)


def test_layer_state_dict_round_trip_and_checks(backend):
    a, b = nn.MLP((3, 2)), nn.MLP((3, 2))
    x = rand(backend, 2, 4)
    a(x), b(x)
    sd = a.state_dict()
    assert list(sd) == ["layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    b.load_state_dict(sd)
    assert_close(b(x), a(x), rtol=0, atol=0)
    assert b.layers[0].W.device == backend.device
    c = nn.MLP((3, 2))
    c.load_state_dict(sd)  # lazy parameters are created by the load
    assert_close(c(x), a(x), rtol=0, atol=0)
    before = to_host(b.layers[0].W)
    with pytest.raises(StateError, match=r"'layers.1.b': shape \(3,\) in the file, \(2,\)"):
        b.load_state_dict({**sd, "layers.1.b": np.zeros(3, np.float32)})
    with pytest.raises(StateError, match="expected an array"):
        b.load_state_dict({**sd, "layers.1.b": [0.0, 0.0]})
    with pytest.raises(StateError, match="floating"):
        nn.Linear(2).load_state_dict({"W": np.zeros((2, 2), np.int32), "b": np.zeros(2)})
    np.testing.assert_array_equal(to_host(b.layers[0].W), before)
    with pytest.raises(TypeError, match="register_buffer"):
        nn.Layer().register_buffer("x", [1.0])


def test_a_failing_first_call_leaves_a_lazy_layer_as_it_was(backend):
    conv = nn.Conv2d(2, 5)  # a 5x5 kernel does not fit a 3x3 image
    with pytest.raises(ValueError):
        conv(rand(backend, 1, 2, 3, 3))
    assert conv.W is None and conv.b is None and list(conv.params()) == []
    assert conv(rand(backend, 1, 2, 5, 5)).shape == (1, 2, 1, 1)
    for layer, x, match in ((nn.Linear(3), rand(backend), r"\(\.\.\., in_size\)"),
                            (nn.BatchNorm(), rand(backend, 3), r"\(N, C, \.\.\.\)"),
                            (nn.Conv2d(2, 1), rand(backend, 2, 3), r"\(N, C, H, W\)"),
                            (nn.LayerNorm(), rand(backend), r"\(\.\.\., size\)")):
        with pytest.raises(ValueError, match=type(layer).__name__ + ": expected an " + match):
            layer(x)
        assert list(layer.params()) == [] and list(layer.named_buffers()) == []


def test_one_walker_names_every_node_once_in_attribute_order(backend):
    """Layer.walk visits a layer shared by two parents once, under its first name, and
    params / named_params / all_layers / state_dict / to() all follow it."""
    class Pair(nn.Layer):
        def __init__(self, shared):
            self.first = shared
            self.second = nn.Linear(2, in_size=2)

    class Top(nn.Layer):
        def __init__(self):
            shared = nn.Linear(2, in_size=2)
            self.a = Pair(shared)
            self.b = shared
            self.bn = nn.BatchNorm()

    t = Top()
    t.bn(xgrad.randn(4, 2))
    entries = t.walk()
    assert [(e.name, e.kind) for e in entries] == [
        ("", "layer"), ("a", "layer"), ("a.first", "layer"), ("a.first.W", "param"),
        ("a.first.b", "param"), ("a.second", "layer"), ("a.second.W", "param"),
        ("a.second.b", "param"), ("bn", "layer"), ("bn.avg_mean", "buffer"),
        ("bn.avg_var", "buffer"), ("bn.gamma", "param"), ("bn.beta", "param")]
    assert [id(x) for x in t.all_layers()] == [id(e.value) for e in entries if e.kind == "layer"]
    assert [n for n, _ in t.named_params()] == [e.name for e in entries if e.kind == "param"]
    assert sorted(t.state_dict()) == sorted(e.name for e in entries if e.kind != "layer")
    t.to("array_api_strict:device1")
    dev = xgrad.backends.resolve_target("array_api_strict:device1")[1]
    assert all((e.value.device if e.kind == "buffer" else e.value.data.device) == dev
               for e in t.walk() if e.kind != "layer")


def test_conv_layers_check_sizes_like_the_functions():
    """Conv2d's kernel_size / stride / pad take ints or pairs of ints (NumPy's too), and
    refuse the rest naming the layer and the argument."""
    layer = nn.Conv2d(2, np.int64(3), stride=(np.int32(1), 2), in_channels=1)
    assert layer.kernel_size == (3, 3) and layer.stride == (1, 2)
    assert all(type(v) is int for v in layer.kernel_size + layer.stride + layer.pad)
    with pytest.raises(ValueError, match=r"Conv2d: kernel_size must be >= 1, got 0"):
        nn.Conv2d(2, 0)
    with pytest.raises(ValueError, match=r"Deconv2d: pad must be >= 0, got \(0, -1\)"):
        nn.Deconv2d(2, 3, pad=(0, -1))
    with pytest.raises(TypeError, match=r"Conv2d: stride must be an int or a pair of ints"):
        nn.Conv2d(2, 3, stride=1.5)
    with pytest.raises(TypeError, match=r"Conv2d: kernel_size must be an int or a pair"):
        nn.Conv2d(2, (1, 2, 3))

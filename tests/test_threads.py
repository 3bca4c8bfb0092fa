"""Thread and asyncio safety: config switches are per thread / per task, and two models trained
at the same time in two threads end exactly where they end when trained one after the other."""

import asyncio
import threading

import numpy as np
import pytest

import xgrad
import xgrad.functions as F
from xgrad import Variable, backends, nn, optim
from xgrad.testing import to_host

TIMEOUT = 10  # seconds; a barrier that times out fails the test instead of hanging it

# (name, context manager to enter, how to read the switch, its default value)
SWITCHES = [
    ("no_grad", xgrad.no_grad, lambda: xgrad.Config.enable_backprop, True),
    ("test_mode", xgrad.test_mode, lambda: xgrad.Config.train, True),
    ("detect_anomaly", xgrad.detect_anomaly, lambda: xgrad.Config.detect_anomaly, False),
    ("use_backend", lambda: xgrad.use_backend("array_api_strict"),
     lambda: backends.current().name, "numpy"),
]


def _run_threads(*targets) -> None:
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # report a worker's failure in the test itself
                errors.append(e)
        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("name,enter,read,default", SWITCHES, ids=[s[0] for s in SWITCHES])
def test_switch_in_one_thread_does_not_affect_another(name, enter, read, default):
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    seen = {}

    def inside():
        with enter():
            barrier.wait()  # 1: the other thread looks while this one is inside
            seen["inside"] = read()
            barrier.wait()  # 2
        seen["inside_after"] = read()

    def outside():
        barrier.wait()  # 1
        seen["outside"] = read()
        barrier.wait()  # 2

    _run_threads(inside, outside)
    assert seen["outside"] == default and seen["inside_after"] == default
    assert seen["inside"] != default
    assert read() == default  # nor the main thread


def test_no_grad_thread_records_no_graph_while_other_does(backend):
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    x = Variable(backend.asarray([1.0, 2.0], dtype="float32"))
    out = {}

    def without():
        with xgrad.no_grad():
            barrier.wait()
            out["without"] = F.exp(x) * 2
            barrier.wait()

    def with_graph():
        barrier.wait()
        out["with"] = F.exp(x) * 2
        barrier.wait()

    _run_threads(without, with_graph)
    assert out["without"].creator is None and out["with"].creator is not None
    out["with"].sum().backward()
    assert x.grad is not None


def _make_models(n: int) -> list:
    """``n`` MLPs with parameters from seed 0, created in this thread (the generators of
    xgrad.get_rng are shared between threads, so initialisation is not done concurrently)."""
    xgrad.manual_seed(0)
    models = []
    for _ in range(n):
        m = nn.MLP((12, 3), activation=F.tanh)
        m(np.zeros((1, 5), dtype=np.float32))  # create the lazily sized parameters
        models.append(m)
    return models


def _data(seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)


def _train(model, seed: int, steps: int, barrier=None) -> list:
    """Adam on mini-batches in a fixed order; each step also evaluates under no_grad and
    test_mode, so a switch leaking from the other thread would change the result."""
    x, t = _data(seed)
    opt = optim.Adam(lr=0.01).setup(model)
    losses = []
    for i in range(steps):
        if barrier is not None and i % 10 == 0:
            barrier.wait()  # keep the two threads interleaved
        sl = slice(i % 4 * 10, i % 4 * 10 + 10)
        loss = F.softmax_cross_entropy(model(x[sl]), t[sl])
        model.cleargrads()
        loss.backward()
        opt.update()
        with xgrad.no_grad(), xgrad.test_mode():
            losses.append(float(F.softmax_cross_entropy(model(x), t).item()))
    return losses


def _params(model) -> dict:
    return {name: to_host(p) for name, p in model.named_params()}


def test_two_threads_train_like_one_after_the_other():
    steps = 60
    a, b = _make_models(2)
    loss_a, loss_b = _train(a, 1, steps), _train(b, 2, steps)
    expected = [_params(a), _params(b)]

    c, d = _make_models(2)
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    got = {}

    def run(name, model, seed):
        def go():
            got[name] = _train(model, seed, steps, barrier)
        return go

    _run_threads(run("c", c, 1), run("d", d, 2))
    assert got["c"] == loss_a and got["d"] == loss_b
    for exp, model in zip(expected, (c, d)):
        params = _params(model)
        assert list(params) == list(exp)
        for name in exp:
            np.testing.assert_array_equal(params[name], exp[name], err_msg=name)
    assert loss_a[-1] < loss_a[0]  # the comparison is between models that did learn


def test_asyncio_no_grad_does_not_leak_between_tasks():
    x = Variable(np.array([1.0, 2.0]))

    async def main():
        entered, looked = asyncio.Event(), asyncio.Event()

        async def quiet():
            with xgrad.no_grad():
                entered.set()
                await looked.wait()  # the other task runs while this one is inside no_grad
                return (x * 2).creator, xgrad.Config.enable_backprop

        async def recording():
            await entered.wait()
            y = x * 2
            looked.set()
            return y.creator, xgrad.Config.enable_backprop

        return await asyncio.wait_for(asyncio.gather(quiet(), recording()), TIMEOUT)

    (c_quiet, on_quiet), (c_rec, on_rec) = asyncio.run(main())
    assert c_quiet is None and on_quiet is False
    assert c_rec is not None and on_rec is True
    assert xgrad.Config.enable_backprop is True

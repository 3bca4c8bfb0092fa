"""Gradient semantics of the engine: what a pass propagates, what ``.grad`` holds, stale data,
comparisons and iteration, ``.data`` assignment, and the config switches across threads."""

import asyncio
import threading

import numpy as np
import pytest

import xgrad
import xgrad.functions as F
from xgrad import GradientError, Parameter, Variable
from xgrad.backends import backend_of
from xgrad.testing import assert_close


def fdt(backend):
    """float64 where the device has it (array_api_strict's no_float64 has not), else float32."""
    return "float64" if backend.supports("float64") else "float32"


def var(backend, value):
    return Variable(backend.asarray(value, dtype=fdt(backend)))


def host(v):
    return np.asarray(v.numpy() if isinstance(v, Variable) else backend_of(v).to_host(v))


# --- a pass propagates only its own gradients; retained .grad accumulates across passes ------
def test_retained_gradient_is_not_propagated_again(backend):
    x = var(backend, [1.0, 2.0])
    h = F.exp(x)
    F.sum(h).backward(retain_grad=True)
    F.sum(h * h).backward()
    e = np.exp(np.array([1.0, 2.0]))
    assert_close(host(x.grad), e + 2 * e * e)  # [17.50, 116.59]
    assert_close(host(h.grad), np.ones(2))  # h was retained only in the first pass


def test_backward_from_an_intermediate_seeds_with_ones(backend):
    x = var(backend, 1.0)
    z = x * 2.0
    y = z * 3.0
    y.backward(retain_grad=True)
    assert_close(host(z.grad), 3.0)
    assert_close(host(x.grad), 6.0)
    x.cleargrad()
    z.backward()  # z.grad (3, from the pass) is not a seed
    assert_close(host(x.grad), 2.0)
    assert_close(host(z.grad), 3.0)  # not retained in this pass: left as the user had it


def test_retained_gradients_accumulate_across_passes(backend):
    x = var(backend, 2.0)
    h = x * x
    y = h * 3.0
    y.backward(retain_grad=True)
    y.backward(retain_grad=True)
    assert_close(host(h.grad), 6.0)
    assert_close(host(y.grad), 2.0)
    assert_close(host(x.grad), 24.0)


def test_backward_seed_argument(backend):
    x = var(backend, [1.0, 2.0])
    y = x * x
    y.backward(grad=backend.asarray([1.0, 10.0], dtype=fdt(backend)))
    assert_close(host(x.grad), [2.0, 40.0])
    x.cleargrad()
    y.backward(grad=var(backend, [0.5, 0.5]))
    assert_close(host(x.grad), [1.0, 2.0])
    with pytest.raises(GradientError, match="seed"):
        y.backward(grad=backend.asarray([1.0, 2.0, 3.0], dtype=fdt(backend)))
    with pytest.raises(GradientError, match="seed"):
        y.backward(grad=backend.asarray([1.0, 2.0], dtype="int32"))


def test_seed_set_in_grad_before_any_pass(backend):
    # The seeds' style: y.grad = array(...) then y.backward().
    x = var(backend, 3.0)
    y = x * x
    y.grad = backend.asarray(2.0, dtype=fdt(backend))
    y.backward()
    assert_close(host(x.grad), 12.0)
    x.cleargrad()
    y.backward()  # the seed was consumed: ones now
    assert_close(host(x.grad), 6.0)
    y.backward(retain_grad=True)
    y.grad = backend.asarray(5.0, dtype=fdt(backend))  # set by the user again: a seed again
    x.cleargrad()
    y.backward()
    assert_close(host(x.grad), 30.0)


def test_leaf_backward_accumulates(backend):
    x = var(backend, 1.0)
    x.backward()
    x.backward()
    assert_close(host(x.grad), 2.0)


def test_backward_error_leaves_no_pass_state(backend):
    class Boom(xgrad.Function):
        def forward(self, a):
            return a * 1.0

        def backward(self, gy):
            raise RuntimeError("boom")

    x = var(backend, 2.0)
    h = x * 3.0
    y = Boom()(h) + h
    with pytest.raises(RuntimeError, match="boom"):
        y.backward()
    (h * 1.0).backward()  # a gradient left over by the failed pass would be added here
    assert_close(host(x.grad), 3.0)


# --- stale data between forward and backward -------------------------------------------------
def test_reassigned_data_is_an_error_at_backward(backend):
    W = Parameter(backend.asarray([[2.0]], dtype=fdt(backend)), name="W")
    V = Parameter(backend.asarray([[3.0]], dtype=fdt(backend)), name="V")
    loss = F.sum(F.matmul(F.matmul(backend.asarray([[1.0]], dtype=fdt(backend)), W), V))
    V.data = V.data - 1.0
    with pytest.raises(GradientError, match=r"MatMul.*input 1.*'V'.*reassigned"):
        loss.backward()
    V.data = backend.asarray([[3.0]], dtype=fdt(backend))  # a different array: still stale
    with pytest.raises(GradientError, match="MatMul"):
        loss.backward()


def test_reassigned_output_data_is_an_error_at_backward(backend):
    x = var(backend, 1.0)
    y = F.exp(x)  # exp's backward reads its output
    y.data = y.data + 1.0
    with pytest.raises(GradientError, match="Exp: output 0"):
        y.backward()
    z = F.exp(x) * 1.0  # a consumer saved it too, and is seen first
    z.creator.inputs[0].data = z.creator.inputs[0].data + 1.0
    with pytest.raises(GradientError, match="Mul: input 0"):
        z.backward()


def test_data_reassigned_after_backward_is_fine(backend):
    p = Parameter(backend.asarray([1.0, 2.0], dtype=fdt(backend)))
    for _ in range(2):  # a training loop: forward, backward, update
        loss = F.sum(p * p)
        loss.backward()
        p.data = p.data - 0.1 * p.grad.data
        p.cleargrad()
    assert_close(host(p), np.array([1.0, 2.0]) * 0.8 * 0.8)


# --- a leaf's .grad owns a writable array ----------------------------------------------------
def _try_write(d):
    try:
        d[...] = d * 0.5
    except (ValueError, TypeError):
        return False
    return True


def _halve(backend, v):
    """Halve ``v.data`` in place, as a user's hook does (it must touch only this gradient), and
    return the factor applied: 0.5, or 1.0 on a library whose arrays are immutable (JAX), where
    nothing can be shared through a write."""
    if not _try_write(backend.asarray([1.0, 2.0], dtype="float32")):
        return 1.0
    assert _try_write(v.data), "a leaf's .grad must be writable where arrays are"
    return 0.5


def test_leaf_gradients_are_not_shared(backend):
    a, b = var(backend, [1.0, 2.0]), var(backend, [3.0, 4.0])
    (a + b).backward()
    assert a.grad is not b.grad
    h = _halve(backend, a.grad)
    assert_close(host(a.grad), [h, h])
    assert_close(host(b.grad), [1.0, 1.0])


def test_leaf_gradient_of_sum_is_writable(backend):
    x = var(backend, [[1.0, 2.0], [3.0, 4.0]])
    F.sum(x).backward()
    h = _halve(backend, x.grad)
    assert_close(host(x.grad), np.full((2, 2), h))


def test_leaf_gradient_is_not_the_seed_or_a_retained_gradient(backend):
    x = var(backend, [1.0, 2.0])
    seed = backend.asarray([1.0, 1.0], dtype=fdt(backend))
    y = x + 0.0
    y.backward(grad=seed, retain_grad=True)
    assert x.grad is not y.grad and x.grad.data is not y.grad.data
    _halve(backend, x.grad)
    assert_close(host(seed), [1.0, 1.0])
    assert_close(host(y.grad), [1.0, 1.0])
    x2 = var(backend, [1.0, 2.0])
    x2.reshape(2, 1).backward(grad=backend.asarray([[1.0], [1.0]], dtype=fdt(backend)))
    _halve(backend, x2.grad)


def test_create_graph_gradients_are_not_shared(backend):
    a, b = var(backend, 2.0), var(backend, 3.0)
    (a * a + b).backward(create_graph=True)
    c, d = var(backend, 2.0), var(backend, 3.0)
    (c + d).backward(create_graph=True)
    assert c.grad is not d.grad and c.grad.data is not d.grad.data


# --- iteration and comparisons ---------------------------------------------------------------
def test_iterating_a_0d_variable_raises(backend):
    with pytest.raises(TypeError, match="0-d"):
        iter(var(backend, 1.0))
    with pytest.raises(TypeError):
        list(var(backend, 1.0))


def test_iterating_yields_rows(backend):
    x = var(backend, [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    rows = list(x)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    assert_close(host(rows[2]), [5.0, 6.0])
    F.sum(rows[0] * rows[2]).backward()  # rows are differentiable views
    assert_close(host(x.grad), [[5.0, 6.0], [0.0, 0.0], [1.0, 2.0]])


def test_comparisons_are_elementwise(backend):
    x = var(backend, [1.0, 2.0, 3.0])
    y = var(backend, [3.0, 2.0, 1.0])
    cases = {
        "<": (x < 2.0, [True, False, False]), "<=": (x <= 2.0, [True, True, False]),
        ">": (x > 2.0, [False, False, True]), ">=": (x >= 2.0, [False, True, True]),
        "==": (x == 2.0, [False, True, False]), "!=": (x != 2.0, [True, False, True]),
        "v<v": (x < y, [True, False, False]), "v==v": (x == y, [False, True, False]),
        "1<v": (1.5 < x, [False, True, True]),
    }
    if backend.backend.name == "numpy":  # array_api_strict's operators reject other types
        cases["arr>v"] = (backend.asarray([2.0, 2.0, 2.0], dtype=fdt(backend)) > x,
                          [True, False, False])
    for name, (got, want) in cases.items():
        assert isinstance(got, Variable), name
        assert got.creator is None and not got.requires_grad, name
        assert got.dtype == backend.xp.bool, name
        np.testing.assert_array_equal(host(got), np.array(want), err_msg=name)


def test_variables_hash_by_identity(backend):
    x, y = var(backend, 1.0), var(backend, 1.0)
    assert len({x, y}) == 2 and {x: 1}[x] == 1
    assert x.__eq__("a") is NotImplemented and (x == "a") is False and (x != None) is True  # noqa: E711


def test_variables_in_containers_by_identity(backend):
    # Layers and optimizers keep Variables in lists and dicts.
    model = xgrad.nn.Linear(2, in_size=3, dtype=fdt(backend))
    opt = xgrad.optim.Adam().setup(model)
    x = backend.asarray(np.ones((4, 3)), dtype=fdt(backend))
    for _ in range(2):
        model.cleargrads()
        F.sum(model(x)).backward()
        opt.update()
    assert len(list(model.params())) == 2


# --- .data assignment ------------------------------------------------------------------------
def test_data_assignment_of_a_numpy_scalar(backend):
    x = var(backend, 2.0)
    x.data = np.float64(3.5) if fdt(backend) == "float64" else np.float32(3.5)
    assert xgrad.core.is_array(x.data) and x.shape == () and x.dtype == backend.dtype(fdt(backend))
    assert type(x.data) is type(backend.asarray(1.0, dtype=fdt(backend)))
    assert x.device == backend.device
    assert_close(host(x * 2.0), 7.0)


def test_book_update_on_a_0d_numpy_variable():
    x = Variable(np.array(2.0))
    y = x * x
    y.backward()
    x.data = x.data - 0.1 * x.grad.data  # NumPy gives numpy.float64 here
    assert isinstance(x.data, np.ndarray) and x.data.shape == ()
    assert_close(host(x), 1.6)


def test_data_assignment_of_a_non_array_raises(backend):
    x = var(backend, [1.0, 2.0])
    for bad in (1.0, [1.0, 2.0], None, "x", x):
        with pytest.raises(TypeError, match=r"\.data"):
            x.data = bad
    assert_close(host(x), [1.0, 2.0])


# --- config switches: reusable, re-entrant across threads and tasks -------------------------
def _enter_from_two_threads(ctx, check_inside, check_after=lambda: None) -> None:
    """Enter the one context object ``ctx`` from two threads at once, 50 times each, checking
    the switch inside each entry and after it; raise what either thread saw."""
    barrier = threading.Barrier(2)
    errors = []

    def work():
        try:
            for _ in range(50):
                with ctx:
                    barrier.wait(timeout=10)
                    check_inside()
                check_after()
        except Exception as e:  # reported below
            errors.append(e)
            barrier.abort()

    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not errors, errors


def test_shared_no_grad_object_across_threads(backend):
    def inside():
        assert not xgrad.Config.enable_backprop

    def after():
        assert xgrad.Config.enable_backprop

    _enter_from_two_threads(xgrad.no_grad(), inside, after)
    assert xgrad.Config.enable_backprop


def test_shared_use_backend_object_across_threads(backend):
    before = xgrad.backends.current_target()

    def inside():
        assert xgrad.backends.current().name == "numpy"

    _enter_from_two_threads(xgrad.use_backend("numpy"), inside)
    assert xgrad.backends.current_target() == before


def test_shared_no_grad_object_across_tasks(backend):
    ng = xgrad.no_grad()

    async def task(first):
        with ng:
            await asyncio.sleep(0.01 if first else 0.0)
            assert not xgrad.Config.enable_backprop
        return xgrad.Config.enable_backprop

    async def main():
        return await asyncio.gather(task(True), task(False))

    assert asyncio.run(main()) == [True, True]
    assert xgrad.Config.enable_backprop


def test_no_grad_object_nests_with_itself(backend):
    ng = xgrad.no_grad()
    with ng:
        with ng:
            assert not xgrad.Config.enable_backprop
        assert not xgrad.Config.enable_backprop
    assert xgrad.Config.enable_backprop


def test_no_grad_decorates_generators(backend):
    x = var(backend, 1.0)

    @xgrad.no_grad()
    def gen():
        for _ in range(3):
            yield (x * 2.0).creator is None

    g = gen()
    assert next(g) is True
    assert (x * 2.0).creator is not None  # the caller records between resumes
    assert list(g) == [True, True]


def test_no_grad_decorated_generator_send_throw_close(backend):
    @xgrad.no_grad()
    def gen():
        got = yield xgrad.Config.enable_backprop
        try:
            yield (got, xgrad.Config.enable_backprop)
        except KeyError:
            yield ("caught", xgrad.Config.enable_backprop)
        return "done"

    g = gen()
    assert next(g) is False
    assert g.send(5) == (5, False)
    assert g.throw(KeyError("k")) == ("caught", False)
    with pytest.raises(StopIteration) as e:
        next(g)
    assert e.value.value == "done"
    g2 = gen()
    next(g2)
    g2.close()
    assert xgrad.Config.enable_backprop


def test_no_grad_decorates_async_functions(backend):
    x = var(backend, 1.0)

    @xgrad.no_grad()
    async def f():
        await asyncio.sleep(0)
        return (x * 2.0).creator is None

    assert asyncio.run(f()) is True
    assert xgrad.Config.enable_backprop

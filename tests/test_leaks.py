"""No leaks: a long training run keeps memory flat, and a dropped graph is freed by reference
counting alone (no reference cycles between Variables and Functions, so no gc.collect())."""

import gc
import os
import tracemalloc
import weakref

import numpy as np
import pytest
from optable import CASES, host_inputs

import xgrad
import xgrad.functions as F
from xgrad import Function, Variable, nn, optim

STEPS, WARMUP, ROUNDS = 2000, 200, 6


@pytest.fixture
def no_gc():
    """Run the test with the cyclic garbage collector off: only reference counting frees."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _rss() -> int:
    """Resident set size of this process in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _graph(*roots: Variable) -> tuple[list, list]:
    """Weak references to every Function and Variable reachable from ``roots`` (and the
    gradients they hold), found iteratively."""
    funcs, variables, seen = [], [], set()
    stack = list(roots)
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        variables.append(weakref.ref(v))
        if v.grad is not None:
            stack.append(v.grad)
        f = v.creator
        if f is not None and id(f) not in seen:
            seen.add(id(f))
            funcs.append(weakref.ref(f))
            stack.extend(f.inputs)
            stack.extend(y for y in (r() for r in f.outputs) if y is not None)
    return funcs, variables


def _alive(refs: list) -> list:
    return [r() for r in refs if r() is not None]


def _mlp_problem(backend_name: str = "numpy", device: str | None = None):
    xgrad.manual_seed(0)
    with xgrad.use_backend(backend_name, device=device):
        x = xgrad.randn(32, 8)
        t = xgrad.asarray(np.arange(32) % 3)
        model = nn.MLP((16, 3), activation=F.tanh)
        model(x)  # create the lazily sized parameters
    opt = optim.SGD(lr=0.1).setup(model)
    return model, opt, x, t


def _step(model, opt, x, t) -> None:
    loss = F.softmax_cross_entropy(model(x), t)
    model.cleargrads()
    loss.backward()
    opt.update()


def _rounds(step, rounds: int, steps: int, measure) -> list:
    """``measure()`` after each of ``rounds`` rounds of ``steps`` calls of ``step``."""
    out = []
    for _ in range(rounds):
        for _ in range(steps):
            step()
        out.append(measure())
    return out


def test_training_memory_flat_numpy(no_gc):
    model, opt, x, t = _mlp_problem()
    for _ in range(WARMUP):
        _step(model, opt, x, t)
    gc.collect()  # cycles from setting up (imports), not from training
    tracemalloc.start()
    try:
        # the first round pays what is allocated once (caches, tracemalloc's own tables); a
        # leak shows as growth from round to round after it
        per = (STEPS - WARMUP) // ROUNDS
        seen = _rounds(lambda: _step(model, opt, x, t), ROUNDS, per,
                       lambda: (_rss(), tracemalloc.get_traced_memory()[0]))
    finally:
        tracemalloc.stop()
    rss, traced = [r for r, _ in seen], [b for _, b in seen]
    steps = per * (ROUNDS - 1)
    # Python-level allocations (NumPy's arrays included): less than 8 bytes a step, far less
    # than the smallest object a step could leak; RSS within 5%
    assert traced[-1] - traced[0] < 8 * steps, f"traced memory by round: {traced}"
    assert rss[-1] <= rss[0] * 1.05, f"RSS by round: {rss}"
    # nothing was left for the cyclic collector either
    assert gc.collect() == 0


def test_leak_check_sees_growth(no_gc):
    """The round-to-round measure above catches a leak of one small object per step."""
    kept = []
    tracemalloc.start()
    try:
        traced = _rounds(lambda: kept.append(object()), ROUNDS, 300,
                         lambda: tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert traced[-1] - traced[0] >= 8 * 300 * (ROUNDS - 1)


@pytest.mark.gpu
def test_training_memory_flat_cupy(no_gc):
    import cupy

    model, opt, x, t = _mlp_problem("cupy")
    pool = cupy.get_default_memory_pool()
    for _ in range(WARMUP):
        _step(model, opt, x, t)
    gc.collect()
    cupy.cuda.Device().synchronize()

    def used() -> int:
        cupy.cuda.Device().synchronize()
        return pool.used_bytes()

    seen = _rounds(lambda: _step(model, opt, x, t), ROUNDS, (STEPS - WARMUP) // ROUNDS, used)
    assert seen[-1] <= seen[0] * 1.05, f"GPU memory in use by round: {seen}"
    assert gc.collect() == 0


def test_training_step_graph_freed_without_gc(no_gc):
    model, opt, x, t = _mlp_problem()
    loss = F.softmax_cross_entropy(model(x), t)
    model.cleargrads()
    loss.backward()
    opt.update()
    funcs, variables = _graph(loss)
    assert len(funcs) == 4  # linear, tanh, linear, softmax_cross_entropy
    del loss
    assert _alive(funcs) == []
    # what survives is what the model and the data own
    owned = {id(p) for p in model.params()} | {id(p.grad) for p in model.params()}
    assert [v for v in _alive(variables) if id(v) not in owned] == []


def test_dropped_graph_freed_without_gc(backend, no_gc):
    x = Variable(backend.asarray([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]], dtype="float32"))
    w = Variable(backend.asarray([[0.1], [0.2], [0.3]], dtype="float32"))
    h = F.tanh(F.matmul(x, w) + x)  # broadcasting, a diamond through x
    a, b, c = F.split(h, 3, axis=1)  # multi-output, one output unused below
    y = (a * b + F.exp(a)).sum()
    y.backward()
    funcs, variables = _graph(y, x.grad, w.grad)
    assert len(funcs) >= 6
    del y, h, a, b, c
    assert _alive(funcs) == []
    assert {id(v) for v in _alive(variables)} == {id(x), id(w), id(x.grad), id(w.grad)}


def test_unused_outputs_of_multi_output_function_freed(backend, no_gc):
    x = Variable(backend.asarray([1.0, 2.0, 3.0, 4.0], dtype="float32"))
    parts = F.split(x, 2)
    f = weakref.ref(parts[0].creator)
    p1 = weakref.ref(parts[1])
    y = parts[0].sum()
    del parts
    assert p1() is None and f() is not None  # the Function lives while y needs it
    y.backward()
    del y
    assert f() is None


def test_double_backward_graph_freed_after_cleargrad(backend, no_gc):
    # create_graph=True makes x.grad a Variable whose graph reaches x: cleargrad() releases it
    x = Variable(backend.asarray([0.3, 1.2, -0.5], dtype="float32"))
    y = (F.sin(x) * F.exp(x)).sum()
    y.backward(create_graph=True)
    gx = x.grad
    x.cleargrad()
    z = (gx * gx).sum()
    z.backward()
    funcs, _ = _graph(y, z, gx)
    assert len(funcs) >= 8
    x.cleargrad()
    del y, z, gx
    assert _alive(funcs) == []


def test_double_backward_cycle_is_collected(backend):
    """Documented limitation (PyTorch has the same): backward(create_graph=True) stores in x.grad
    a Variable whose graph holds x (Sin's backward computes gy * cos(x)), so x -> x.grad ->
    creator -> inputs -> x is a cycle. x.cleargrad() breaks it (tested above); without it the
    cycle collector frees it: nothing leaks."""
    x = Variable(backend.asarray([0.3, 1.2], dtype="float32"))
    F.sin(x).sum().backward(create_graph=True)
    funcs, _ = _graph(x.grad)
    ref_x = weakref.ref(x)
    del x
    gc.collect()
    assert ref_x() is None and _alive(funcs) == []


def _total(out: Variable | tuple | list) -> Variable:
    """One scalar from a function's output(s), so backward reaches every output."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    total = outs[0].sum()
    for o in outs[1:]:
        total = total + o.sum()
    return total


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_function_frees_its_graph(no_gc, case):
    """No function keeps a strong reference to its outputs (or anything that reaches them),
    with and without create_graph: every row of the table."""
    for create_graph in (False, True):
        leaves = [Variable(xgrad.asarray(h, dtype="float32")) for h in host_inputs(case)]
        y = _total(case.fn(*leaves))
        if y.creator is not None:
            y.backward(create_graph=create_graph)
        funcs, _ = _graph(y, *(v.grad for v in leaves if v.grad is not None))
        for v in leaves:
            v.cleargrad()  # (with create_graph, a leaf's grad graph reaches the leaf)
        del y
        assert _alive(funcs) == [], (create_graph, sorted(type(f).__name__
                                                          for f in _alive(funcs)))


def test_calls_beyond_the_table_free_their_graph(no_gc):
    """What the table's rows do not call: a move to another backend, batch_norm updating its
    running statistics."""
    xgrad.manual_seed(0)
    x = Variable(xgrad.randn(4, 5))
    one, zero = Variable(xgrad.ones(5)), Variable(xgrad.zeros(5))
    calls = [lambda: F.to(x, "array_api_strict"),
             lambda: F.batch_norm(x, one, zero, Variable(xgrad.zeros(5)), Variable(xgrad.ones(5)))]
    for make in calls:
        for create_graph in (False, True):
            y = _total(make())
            y.backward(create_graph=create_graph)
            funcs, _ = _graph(y, *(v.grad for v in (x, one, zero) if v.grad is not None))
            for v in (x, one, zero):
                v.cleargrad()
            del y
            assert _alive(funcs) == []


def test_leak_check_sees_a_cycle(no_gc):
    # The engine holds outputs weakly; a Function that keeps its output strongly makes a
    # cycle, and the helpers above must notice it.
    class Keeps(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * 2

    f = Keeps()
    y = f(Variable(np.ones(2)))
    f.kept = y
    funcs, _ = _graph(y)
    del y, f
    assert len(_alive(funcs)) == 1
    gc.collect()
    assert _alive(funcs) == []


def test_recorded_op_leaves_four_objects_for_the_cyclic_gc(no_gc):
    """What a recorded one-output op leaves for the cyclic GC to track while its graph lives:
    the Function, its output Variable, the weak reference to that output and the inputs' tuple.
    Each further object per op costs every collection of a long graph (the 100,000-op chain
    spent about 40% of its time in the GC with five). On NumPy, whose arrays the GC does not
    track (a tuple of them is untracked at its first collection); on libraries whose arrays are
    Python objects the count grows by what the library allocates, which is not the engine's."""
    x = Variable(np.array([0.5]))
    w = Variable(np.array([0.9]))
    n = 400
    gc.collect()
    before = len(gc.get_objects())
    y = x
    for _ in range(n // 2):
        y = F.sin(y) * w  # a one-input and a two-input call
    gc.collect()
    per_op = (len(gc.get_objects()) - before) / n
    assert per_op <= 4.05, per_op
    funcs, _ = _graph(y)
    assert type(y.creator.outputs) is tuple and len(y.creator.outputs) == 1
    assert y.creator.outputs[0]() is y
    del y
    assert _alive(funcs) == []

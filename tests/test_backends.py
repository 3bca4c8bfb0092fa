"""The backend registry, array creation, device transfer and the backend extras."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import xgrad
from xgrad import Variable, backends
from xgrad.backends import BackendUnavailable, backend_of
from xgrad.testing import assert_close, to_host


def test_builtin_backends_registered_lazily():
    code = ("import sys, xgrad; assert 'cupy' not in sys.modules; "
            "assert 'array_api_strict' not in sys.modules; "
            "print(sorted(xgrad.backends.registered()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "'array_api_strict', 'cupy', 'numpy'" in out.stdout


def test_available_lists_usable_backends():
    names = backends.available()
    assert "numpy" in names and "array_api_strict" in names
    try:
        import cupy  # noqa: F401

        has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        has_gpu = False
    assert ("cupy" in names) == has_gpu


def test_unknown_backend_lists_available():
    with pytest.raises(BackendUnavailable, match="unknown backend 'jax'.*numpy"):
        backends.get("jax")


@pytest.mark.skipif("cupy" in backends.available(), reason="a GPU is usable here")
def test_cupy_without_gpu_says_so():
    with pytest.raises(BackendUnavailable, match=r"no CUDA GPU.*xgrad\[cuda12\]"):
        backends.get("cupy")
    with pytest.raises(BackendUnavailable, match="cupy"):
        Variable(np.ones(2)).to("cuda")


def test_use_backend_context_and_decorator():
    assert backends.current().name == "numpy"
    with xgrad.use_backend("array_api_strict") as b:
        assert b.name == "array_api_strict"
        assert backend_of(xgrad.zeros(3)).name == "array_api_strict"
        with xgrad.use_backend("numpy"):
            assert backends.current().name == "numpy"
        assert backends.current().name == "array_api_strict"
    assert backends.current().name == "numpy"

    @xgrad.use_backend("array_api_strict:device1")
    def make():
        return xgrad.ones((2,))

    x = make()
    assert backend_of(x).name == "array_api_strict" and "device1" in str(x.device)


def test_use_backend_is_thread_local():
    seen = {}
    ready, go = threading.Event(), threading.Event()

    def worker():
        with xgrad.use_backend("array_api_strict"):
            ready.set()
            go.wait(5)
            seen["worker"] = backends.current().name

    t = threading.Thread(target=worker)
    t.start()
    ready.wait(5)
    seen["main"] = backends.current().name
    go.set()
    t.join()
    assert seen == {"main": "numpy", "worker": "array_api_strict"}


def test_xgrad_backend_environment_variable():
    code = "import xgrad; print(xgrad.backends.current().name, type(xgrad.zeros(2)).__module__)"
    env = dict(os.environ, XGRAD_BACKEND="array_api_strict")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.split()[0] == "array_api_strict"
    env["XGRAD_BACKEND"] = "nonsense"
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "unknown backend 'nonsense'" in bad.stderr


def test_register_third_party_backend():
    from xgrad.backends.strict import StrictBackend

    class Mine(StrictBackend):
        name = "mine"

    backends.register("mine", Mine())
    try:
        assert "mine" in backends.registered() and backends.get("mine").name == "mine"
        with pytest.raises(ValueError, match="already registered"):
            backends.register("mine", Mine())
        backends.register("lazy_strict", "xgrad.backends.strict:backend")
        assert backends.get("lazy_strict").name == "array_api_strict"
        with pytest.raises(ValueError, match="module:attribute"):
            backends.register("broken", "no_colon_here")
    finally:
        backends._REGISTRY.pop("mine", None)
        backends._REGISTRY.pop("lazy_strict", None)
        backends._BY_TYPE.clear()


def test_creation_follows_backend_device_dtype(backend):
    for make in (xgrad.zeros, xgrad.ones):
        x = make((2, 3))
        assert x.shape == (2, 3) and x.dtype == backend.dtype("float32")
        assert x.device == backend.device and backend_of(x) is backend.backend
    r = xgrad.randn(4, 5)
    u = xgrad.rand((1000,))
    assert r.shape == (4, 5) and r.dtype == backend.dtype("float32") and r.device == backend.device
    uh = to_host(u)
    assert 0.0 <= uh.min() and uh.max() < 1.0 and 0.4 < uh.mean() < 0.6
    a = xgrad.asarray([[1, 2], [3, 4]], dtype="float32")
    assert a.dtype == backend.dtype("float32") and a.device == backend.device
    assert_close(a, [[1, 2], [3, 4]])
    i = xgrad.asarray([1, 2])
    assert backend.xp.isdtype(i.dtype, "integral")


def test_manual_seed_reproducible(backend):
    xgrad.manual_seed(123)
    a = to_host(xgrad.randn(10))
    xgrad.manual_seed(123)
    b = to_host(xgrad.randn(10))
    c = to_host(xgrad.randn(10))
    assert np.array_equal(a, b) and not np.array_equal(b, c)


def test_rng_methods(backend):
    g = backend.rng(0)
    n = g.normal((2000,), dtype=backend.dtype("float32"), loc=3.0, scale=2.0)
    assert n.dtype == backend.dtype("float32") and n.device == backend.device
    nh = to_host(n)
    assert abs(nh.mean() - 3.0) < 0.2 and abs(nh.std() - 2.0) < 0.2
    p = to_host(g.permutation(50))
    assert sorted(p.tolist()) == list(range(50))
    k = to_host(g.integers(2, 5, (100,)))
    assert k.min() >= 2 and k.max() < 5


@pytest.mark.parametrize("key", [
    (np.array([0, 0, 2, 0]),),
    (slice(None), np.array([1, 1, 0])),
    (np.array([2, 2]), np.array([1, 1])),
    (slice(1, None), slice(None, None, 2)),
])
def test_scatter_add_accumulates_repeated_indices(backend, key):
    shape = (3, 4)
    vals_shape = np.zeros(shape)[key].shape
    vh = np.arange(1, 1 + int(np.prod(vals_shape)), dtype=np.float32).reshape(vals_shape)
    want = np.zeros(shape, dtype=np.float32)
    np.add.at(want, key, vh)
    bkey = tuple(backend.asarray(k) if isinstance(k, np.ndarray) else k for k in key)
    got = backend.scatter_add(shape, bkey, backend.asarray(vh, dtype="float32"))
    assert got.device == backend.device and got.dtype == backend.dtype("float32")
    assert_close(got, want)


def test_portable_scatter_add_matches_numpy():
    from xgrad.backends.base import Backend

    numpy_backend = backends.get("numpy")
    idx = np.array([3, 1, 3, 3, 0])
    vals = np.arange(10.0).reshape(5, 2)
    portable = Backend.scatter_add(numpy_backend, (4, 2), (idx,), vals)
    assert_close(portable, numpy_backend.scatter_add((4, 2), (idx,), vals))


def test_to_moves_and_gradient_flows_back(backend):
    x = Variable(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    y = x.to(backend.backend.name + (f":{backend.device_name}" if backend.device_name else ""))
    assert backend_of(y.data) is backend.backend and y.device == backend.device
    z = (y * y).sum()
    z.backward()
    assert isinstance(x.grad.data, np.ndarray) and x.grad.dtype == x.dtype
    assert_close(x.grad, [2.0, 4.0, 6.0])
    back = y.to_cpu()
    assert isinstance(back.data, np.ndarray)
    assert_close(back, [1.0, 2.0, 3.0])


def test_to_accepts_backend_objects_and_rejects_nonsense():
    x = Variable(np.ones(2))
    y = x.to(backends.get("array_api_strict"))
    assert backend_of(y.data).name == "array_api_strict"
    with pytest.raises(BackendUnavailable):
        x.to("tpu")
    with pytest.raises(ValueError, match="no device"):
        x.to("array_api_strict:device9")
    with pytest.raises(ValueError, match="cannot move data"):
        x.to(3.5)


def test_backend_of_is_cached_per_type():
    a = np.ones(2)
    assert backend_of(a) is backend_of(np.zeros(3)) is backends.get("numpy")
    assert type(a) in backends._BY_TYPE


def test_namespace_cache():
    from xgrad.core import _NAMESPACES, get_namespace

    a = np.ones(2)
    xp = get_namespace(a)
    assert _NAMESPACES[np.ndarray] is xp and hasattr(xp, "permute_dims")
    with pytest.raises(TypeError, match="list"):
        get_namespace([1, 2])


def test_float16_random_draws(backend):
    f16 = backend.dtype("float16")
    for draw in (xgrad.rand, xgrad.randn):
        a = draw(3, 4, dtype="float16", backend=backend.backend, device=backend.device)
        assert a.dtype == f16 and a.shape == (3, 4) and a.device == backend.device


def test_narrow_uniform_draws_stay_below_high():
    # float32 / float64 draws cast to float16 round to 1.0 about 250 times in a million
    from xgrad.backends.base import RNG

    numpy_backend = backends.get("numpy")
    for rng in (numpy_backend.rng(0), RNG(numpy_backend, 0)):
        u = rng.uniform((10**6,), dtype=np.float16)
        assert u.dtype == np.float16 and u.min() >= 0.0 and u.max() < 1.0
        u = rng.uniform((10**5,), dtype=np.float16, low=-2.0, high=3.0)
        assert u.min() >= -2.0 and u.max() < 3.0


def test_to_a_device_without_the_dtype_raises(backend):
    pytest.importorskip("array_api_strict")
    x = Variable(backend.asarray([1.0, 2.0], dtype=backend.dtype("float64")),
                 requires_grad=True)
    with pytest.raises(TypeError, match=r"to: array_api_strict:no_float64 has no float64; "
                                        r"cast first"):
        x.to("array_api_strict:no_float64")
    y = xgrad.functions.astype(x, "float32").to("array_api_strict:no_float64")
    (y * y).sum().backward()
    assert_close(x.grad, [2.0, 4.0])
    assert x.grad.dtype == x.dtype

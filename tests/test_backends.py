"""The backend registry, array creation, device transfer and the backend extras."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import xgrad
from xgrad import Variable, backends
from xgrad.backends import BackendUnavailable, backend_of
from xgrad.backends.base import Backend
from xgrad.backends.strict import StrictBackend
from xgrad.testing import assert_close, to_host


def test_builtin_backends_registered_lazily():
    code = ("import sys, xgrad; "
            "print(sorted(xgrad.backends.registered())); "
            "print([m for m in ('cupy', 'array_api_strict', 'torch', 'jax') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, imported = out.stdout.splitlines()
    assert "'array_api_strict', 'cupy', 'jax', 'numpy', 'torch'" in names
    assert imported == "[]"


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
    with pytest.raises(BackendUnavailable, match="unknown backend 'mxnet'.*numpy"):
        backends.get("mxnet")


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


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_masked_keeps_dtype_and_zeroes_where_false(backend, dtype):
    backend.dtype(dtype)  # skips where the device lacks it
    xh = np.array([[1.5, -2.0, 3.0], [0.25, 4.0, -1.0]])
    mh = np.array([[True, False, True], [False, False, True]])
    x = backend.asarray(xh, dtype=dtype)
    m = backend.asarray(mh)
    for portable in (False, True):  # the library's own version and the standard's
        got = Backend.masked(backend.backend, x, m) if portable else backend.masked(x, m)
        assert got.dtype == x.dtype and got.device == backend.device
        assert_close(got, np.where(mh, xh, 0.0).astype(dtype))


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
    from xgrad._array import NAMESPACES, get_namespace

    a = np.ones(2)
    xp = get_namespace(a)
    assert NAMESPACES[np.ndarray] is xp and hasattr(xp, "permute_dims")
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


# --- what a backend must be, and what the registry says when one is not usable ---
class _NotANamespace(xgrad.backends.Backend):
    name = "not_a_namespace"
    module = "math"  # imports fine, but is no array library

    def owns(self, array):
        return False


def test_backend_unavailable_is_an_xgrad_error():
    assert issubclass(BackendUnavailable, xgrad.XgradError)
    assert issubclass(backends.InvalidBackend, xgrad.XgradError)
    with pytest.raises(xgrad.XgradError):
        backends.get("no_such_backend")


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test."""
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    monkeypatch.setattr(backends, "_PROBLEMS", {})
    monkeypatch.setattr(backends, "_BY_TYPE", {})
    return backends


def test_register_refuses_a_module_that_is_not_an_array_api_namespace(registry):
    with pytest.raises(backends.InvalidBackend,
                       match=r"'not_a_namespace'.*'math' is not an array-API namespace.*isdtype"):
        registry.register("not_a_namespace", _NotANamespace())
    assert "not_a_namespace" not in registry.registered()
    with pytest.raises(backends.InvalidBackend, match="expected a Backend"):
        registry.register("a_module", np)


def test_register_names_the_array_api_compat_namespace_to_use(registry):
    pytest.importorskip("dask.array")

    class RawDask(xgrad.backends.Backend):
        name = "raw_dask"
        module = "dask.array"  # dask's own module: from_array() has no device=, no isdtype

    with pytest.raises(backends.InvalidBackend,
                       match=r"'dask.array' is not an array-API namespace.*namespace_module = "
                             r"'array_api_compat.dask.array'"):
        registry.register("raw_dask", RawDask())


def test_lazy_backend_is_checked_at_first_use_and_why_is_kept(registry, tmp_path, monkeypatch):
    (tmp_path / "xgrad_probe_backends.py").write_text(
        "from xgrad.backends import Backend\n"
        "class NotANamespace(Backend):\n"
        "    name = 'lazy_math'\n"
        "    module = 'math'\n"
        "class Broken(Backend):\n"
        "    name = 'lazy_broken'\n"
        "    module = 'array_api_strict'\n"
        "    def is_available(self):\n"
        "        raise OSError('driver 7 is too old')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("lazy_math", "xgrad_probe_backends:NotANamespace")  # not imported yet
    registry.register("lazy_broken", "xgrad_probe_backends:Broken")
    registry.register("lazy_missing", "xgrad_probe_no_such_module:backend")
    assert {"numpy", "array_api_strict"} <= set(registry.available())
    assert not {"lazy_math", "lazy_broken", "lazy_missing"} & set(registry.available())
    why = registry.unavailable()
    assert "InvalidBackend" in why["lazy_math"] and "not an array-API namespace" in why["lazy_math"]
    assert why["lazy_broken"] == "OSError: driver 7 is too old"
    assert "ModuleNotFoundError" in why["lazy_missing"]
    assert "numpy" not in why
    with pytest.raises(backends.InvalidBackend, match="'math' is not an array-API namespace"):
        registry.get("lazy_math")
    from xgrad.__main__ import info

    report = info()
    assert "NOT available (InvalidBackend: backend 'lazy_math': module 'math' is not an " \
        "array-API namespace" in report
    assert "lazy_broken" in report and "driver 7 is too old" in report
    assert "lazy_missing: cannot be loaded: ModuleNotFoundError" in report


def test_backend_version_comes_from_the_distribution():
    pytest.importorskip("dask.array")

    class DaskVersion(xgrad.backends.Backend):
        module = "dask.array"  # has no __version__ of its own

    assert DaskVersion().version == importlib.metadata.version("dask") != "?"
    assert backends.get("array_api_strict").version == \
        importlib.metadata.version("array-api-strict")


class _Float32Default(StrictBackend):
    """A library whose default float is float32 (as torch's): Python floats land as float32."""

    name = "float32_default"

    def from_host(self, a, device=None):
        x = super().from_host(a, device)
        return self.namespace.astype(x, self.namespace.float32) if x.dtype == \
            self.namespace.float64 and not isinstance(a, np.ndarray) else x


def test_asarray_reads_python_numbers_in_the_requested_dtype(backend):
    x = xgrad.asarray([0.1, 1e-10, 16777217], dtype=backend.dtype("float64"))
    assert x.dtype == backend.dtype("float64")
    assert to_host(x).tolist() == [0.1, 1e-10, 16777217.0]
    b = _Float32Default()
    y = xgrad.asarray([0.1, 1e-10, 16777217], dtype="float64", backend=b)
    assert to_host(y).tolist() == [0.1, 1e-10, 16777217.0]
    assert to_host(xgrad.asarray([0.1], backend=b)).dtype == np.float32  # its own default
    with pytest.raises(TypeError, match="asarray: list does not hold numbers"):
        xgrad.asarray(["a", "b"], dtype="float64")


def test_materialize_is_a_no_op_on_eager_backends(backend):
    a = [xgrad.zeros((2,)), xgrad.ones((3,))]
    out = backend.backend.materialize(a)
    assert len(out) == 2 and out[0] is a[0] and out[1] is a[1]


def test_ruff_bans_numpy_in_the_core_and_allows_it_in_backends():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install ruff, or the dev extra)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def check(path, code):
        return subprocess.run([ruff, "check", "--no-cache", "--select", "TID251",
                               "--stdin-filename", path, "-"], input=code, text=True,
                              capture_output=True, cwd=root)

    for code in ("import numpy as np\n", "import cupy\n", "from numpy import asarray\n",
                 "import cupyx.scipy\n"):
        r = check("xgrad/functions/probe.py", code)
        assert r.returncode == 1 and "TID251" in r.stdout, (code, r.stdout, r.stderr)
        assert check("xgrad/core.py", code).returncode == 1
    for path in ("xgrad/backends/probe.py", "xgrad/testing/probe.py", "xgrad/data/probe.py",
                 "xgrad/io.py", "tests/probe.py"):
        r = check(path, "import numpy as np\n")
        assert r.returncode == 0, (path, r.stdout, r.stderr)


# --- the README's recipe, followed for a third-party library: dask.array ---
def _readme_recipe() -> str:
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"),
                  encoding="utf-8").read()
    section = readme[readme.index("### Adding a backend"):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("\n```", start)]


@pytest.fixture
def dask_backend(registry):
    """The backend the README's "Adding a backend" recipe defines, registered as it says."""
    pytest.importorskip("dask.array")
    scope: dict = {"__name__": "readme_recipe"}
    with xgrad.use_backend("numpy"):
        exec(compile(_readme_recipe(), "README.md (Adding a backend)", "exec"), scope)
    return registry.get("dask")


def test_readme_recipe_registers_a_working_dask_backend(dask_backend):
    import dask.array as da

    assert dask_backend.name == "dask" and "dask" in backends.available()
    x = xgrad.asarray([0.1, 1e-10], dtype="float64", backend="dask")
    assert isinstance(x, da.Array) and backend_of(x) is dask_backend
    assert to_host(x).tolist() == [0.1, 1e-10]
    assert dask_backend.version == importlib.metadata.version("dask")


def test_dask_gradients_match_numpy(dask_backend):
    import xgrad.functions as F

    rng = np.random.default_rng(0)
    xh = rng.standard_normal((4, 3)).astype(np.float32)
    wh = rng.standard_normal((3, 2)).astype(np.float32)
    th = rng.standard_normal((4, 2)).astype(np.float32)

    def loss(x, w, t):
        h = F.tanh(F.matmul(x, w)) + F.sigmoid(F.matmul(x, w * 0.5)) * F.exp(-F.sum(w, axis=0))
        return F.mean_squared_error(F.relu(h) + F.sum(x, axis=1, keepdims=True), t) + \
            F.mean(F.transpose(F.reshape(h, (2, 4))) ** 2) + F.max(h) - F.log(F.softplus(h)).sum()

    grads = {}
    for name in ("numpy", "dask"):
        vs = [Variable(xgrad.asarray(a, backend=name)) for a in (xh, wh, th)]
        y = loss(*vs)
        y.backward()
        assert backend_of(vs[0].grad.data).name == name
        assert vs[0].grad.dtype == vs[0].dtype  # float32 stays float32
        grads[name] = (to_host(y), to_host(vs[0].grad), to_host(vs[1].grad))
    for a, b in zip(grads["dask"], grads["numpy"]):
        assert_close(a, b)


def test_dask_boolean_mask_fails_early_naming_get_item(dask_backend):
    x = Variable(xgrad.asarray([1.0, -2.0, 3.0], dtype="float32", backend="dask"))
    with pytest.raises(ValueError, match=r"get_item: .*boolean mask.*depends on the data"):
        x[x.data > 0]
    y = Variable(xgrad.asarray([1.0, -2.0, 3.0], dtype="float32"))  # known mask: fine
    y[np.asarray(y.data) > 0].sum().backward()
    assert_close(y.grad, [1.0, 0.0, 1.0])


def test_dask_training_keeps_parameters_concrete(dask_backend):
    import xgrad.functions as F
    from xgrad.nn import MLP
    from xgrad.optim import Adam

    rng = np.random.default_rng(1)
    xh = rng.standard_normal((32, 2)).astype(np.float32)
    th = np.sin(xh[:, :1] * 2).astype(np.float32)
    losses, sizes = {}, []
    for name in ("numpy", "dask"):
        xgrad.manual_seed(0)  # the same initial parameters: drawn on numpy, then moved
        model = MLP((8, 1))
        model(Variable(xh))
        model.to(name)
        with xgrad.use_backend(name):
            opt = Adam(lr=0.05).setup(model)
            x, t = xgrad.asarray(xh), xgrad.asarray(th)
            losses[name] = []
            for _ in range(6):
                loss = F.mean_squared_error(model(x), t)
                model.cleargrads()
                loss.backward()
                opt.update()
                losses[name].append(float(to_host(loss)))
                if name == "dask":
                    ps = list(model.params())
                    assert all(backend_of(p.data) is dask_backend for p in ps)
                    sizes.append(sum(len(p.data.__dask_graph__()) for p in ps))
    assert_close(losses["dask"], losses["numpy"])
    assert losses["dask"][-1] < losses["dask"][0]
    # persisted after each update: a parameter's graph is its chunks, not the steps so far
    assert sizes == [sizes[0]] * len(sizes), sizes


def test_dask_batch_norm_buffers_are_materialized_too(dask_backend):
    import xgrad.functions as F
    from xgrad import nn
    from xgrad.optim import MomentumSGD

    xh = np.random.default_rng(2).standard_normal((16, 3)).astype(np.float32)
    with xgrad.use_backend("dask"):
        model = nn.Sequential(nn.Linear(4), nn.BatchNorm(), nn.Linear(1))
        opt = MomentumSGD(0.1).setup(model)
        x = xgrad.asarray(xh)
        for _ in range(3):
            loss = F.sum(model(x) ** 2)
            model.cleargrads()
            loss.backward()
            opt.update()
    bufs = dict(model.named_buffers())
    assert set(bufs) == {"layers.1.avg_mean", "layers.1.avg_var"}
    assert all(backend_of(v) is dask_backend and len(v.__dask_graph__().layers) == 1
               for v in bufs.values())


@pytest.mark.parametrize("key", [
    (1, slice(None)),
    (slice(None), slice(1, None, 2)),
    (slice(None, None, -1), 2),
    (Ellipsis, slice(3, 0, -2)),
    (),
])
def test_add_at_is_functional_and_matches_numpy(backend, key):
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    vals = np.ones_like(base[key]) * 10 + np.arange(base[key].size).reshape(base[key].shape)
    want = base.copy()
    want[key] += vals
    got = backend.add_at(backend.asarray(base.copy(), "float32"), key,
                         backend.asarray(vals, "float32"))
    assert got.device == backend.device and got.dtype == backend.dtype("float32")
    assert_close(got, want)
    # the portable version (no item assignment) on this backend's arrays
    from xgrad.backends.base import Backend

    portable = Backend.add_at(backend.backend, backend.asarray(base.copy(), "float32"), key,
                              backend.asarray(vals, "float32"))
    assert_close(portable, want)


def test_device_spec_round_trips(backend):
    spec = backend.device_spec(backend.device)
    b, dev = backends.resolve_target(spec)
    assert b is backend.backend
    assert str(b.default_device if dev is None else dev) == str(backend.device)
    y = Variable(np.ones(2, dtype=np.float32)).to(spec)
    assert backend_of(y.data) is backend.backend


def test_optional_backends_unavailable_without_their_library():
    # a library that cannot be imported makes its backend unusable, with an install hint
    code = ("import sys; sys.modules['torch'] = None; sys.modules['jax'] = None\n"
            "import xgrad\n"
            "print(xgrad.backends.available())\n"
            "try:\n    xgrad.backends.get('torch')\n"
            "except xgrad.backends.BackendUnavailable as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    usable, why = out.splitlines()
    assert "'numpy'" in usable and "torch" not in usable and "jax" not in usable
    assert "torch is not installed" in why and "xgrad[torch]" in why


def test_moves_between_libraries_copy_through_dlpack():
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    src = np.arange(4, dtype=np.float32)
    t = xgrad.asarray(src, backend="torch")
    j = xgrad.asarray(t, backend="jax")
    back = xgrad.asarray(j, backend="torch")
    assert backend_of(t).name == "torch" and backend_of(j).name == "jax"
    assert_close(back, src)
    src[0] = 100.0  # the moved arrays own their data
    t[1] = 100.0
    assert_close(j, [0, 1, 2, 3])
    assert_close(back, [0, 1, 2, 3])
    assert to_host(xgrad.asarray(j, backend="numpy")).tolist() == [0, 1, 2, 3]


def test_torch_devices():
    torch = pytest.importorskip("torch")
    b = backends.get("torch")
    assert b.parse_device("cpu") == torch.device("cpu") and b.device_spec(b.default_device) \
        == "torch:cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no device 'cuda'"):
            Variable(np.ones(2)).to("torch:cuda")
    else:
        assert b.parse_device("cuda") == torch.device("cuda", 0)


def test_jax_respects_64_bit_types_off():
    pytest.importorskip("jax")
    # a fresh process: the test plugin turned JAX's 64-bit types on in this one
    code = """
import warnings
import numpy as np, xgrad, jax
warnings.simplefilter("error")  # JAX warns when asked for a 64-bit dtype it then downcasts
assert not jax.config.read("jax_enable_x64")
try:
    xgrad.asarray([0.1], dtype="float64", backend="jax")
except TypeError as e:
    print("refused:", e)
with xgrad.use_backend("jax"):
    xgrad.manual_seed(1)
    a = xgrad.randn(3)
    xgrad.manual_seed(1)
    x = xgrad.Variable(xgrad.randn(3))
    ((x * 2.0 + 1) ** 2).sum().backward()
    print(a.dtype, x.grad.dtype, bool((a == x.data).all()))
    print(xgrad.backends.get("jax").device_spec(x.data.device))
    x.cleargrad()
    x[x.data > 0].sum().backward()  # mask indexing: its backward counts in integers
    assert x.grad.dtype == x.dtype
    try:
        x[5]
    except IndexError as e:
        print("IndexError:", e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0].startswith("refused: backend 'jax' has no dtype float64") \
        and "jax_enable_x64" in out[0]
    assert out[1] == "float32 float32 True"
    assert out[2] == "jax:cpu:0"
    assert out[3].startswith("IndexError: get_item: index 5 is out of bounds")

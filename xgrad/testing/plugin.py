"""pytest plugin: run tests on every backend.

Fixtures ``backend`` (a :class:`BackendCase`), ``xp`` (its namespace) and ``device`` are
parametrized over the backends chosen with ``--backend`` (default: every usable one); a test
that asks for any of them runs once per backend. ``--require-gpu`` turns a missing GPU into a
failure; markers ``gpu`` (needs a GPU backend) and ``slow``.

``--backend`` takes a comma list of ``name`` or ``name:device`` (``numpy``, ``cupy:1``,
``array_api_strict:device1``), or ``all``: every usable backend plus array_api_strict's fake
devices ``device1`` and ``no_float64``, which catch kernels that forget ``device=`` or assume
float64.

On the ``jax`` leg the plugin turns JAX's 64-bit types on (``jax_enable_x64``) so that the
float64 tests (and gradcheck's float64 upcast) run there too; it is the stricter setting for
xgrad, as any float64 it created by accident would show up instead of being silently rounded
to float32. Without it, the jax backend reports float64 missing and those tests skip.
"""

from __future__ import annotations

from typing import Any

import pytest

from xgrad import backends
from xgrad.creation import asarray, resolve_dtype

_STRICT_FAKE_DEVICES = ("device1", "no_float64")


class BackendCase:
    """A backend and one of its devices, with helpers to make test data there."""

    def __init__(self, name: str, device_name: str | None = None) -> None:
        self.backend = backends.get(name)
        self.device_name = device_name
        self.device = self.backend.parse_device(device_name) if device_name else \
            self.backend.default_device

    @property
    def id(self) -> str:
        return self.backend.name + (f":{self.device_name}" if self.device_name else "")

    @property
    def xp(self) -> Any:
        return self.backend.namespace

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def asarray(self, obj: Any, dtype: Any = None) -> Any:
        """``obj`` as an array of this backend on this device (dtype a name or None)."""
        return asarray(obj, dtype=dtype, backend=self.backend, device=self.device)

    def supports(self, dtype: Any) -> bool:
        """Whether this device holds ``dtype`` (array_api_strict's no_float64 lacks float64)."""
        try:
            self.xp.zeros((1,), dtype=resolve_dtype(dtype, self.backend), device=self.device)
        except Exception:
            return False
        return True

    def dtype(self, name: str) -> Any:
        """This backend's dtype called ``name``; skips the test where the device lacks it."""
        if not self.supports(name):
            pytest.skip(f"{self.id} has no {name}")
        return resolve_dtype(name, self.backend)

    def rng(self, seed: int | None = 0) -> Any:
        return self.backend.rng(seed, self.device)

    def __repr__(self) -> str:
        return f"BackendCase({self.id})"


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("xgrad")
    group.addoption("--backend", action="store", default=None,
                    help="comma list of backends (name or name:device), or 'all' "
                         "(default: every usable backend)")
    group.addoption("--require-gpu", action="store_true", default=False,
                    help="fail, instead of skip, when a GPU backend is missing")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "gpu: needs a GPU backend (cupy)")
    config.addinivalue_line("markers", "slow: a slow test (deselect with -m 'not slow')")
    config._xgrad_cases = _cases(config)


def _cases(config: Any) -> list:
    spec = config.getoption("--backend")
    require_gpu = config.getoption("--require-gpu")
    usable = backends.available()
    if spec in (None, "", "available", "all"):
        names = list(usable)
        if spec == "all" and "array_api_strict" in usable:
            names += [f"array_api_strict:{d}" for d in _STRICT_FAKE_DEVICES]
        if require_gpu and "cupy" not in usable:
            raise pytest.UsageError("--require-gpu: no usable GPU backend (cupy): "
                                    + _why("cupy"))
    else:
        names = [s.strip() for s in spec.split(",") if s.strip()]
    cases = []
    for n in names:
        name, _, dev = n.partition(":")
        if name == "jax" and "jax" in usable:
            import jax

            jax.config.update("jax_enable_x64", True)
        try:
            cases.append(BackendCase(name, dev or None))
        except Exception as e:
            if require_gpu or name != "cupy":
                raise pytest.UsageError(f"--backend {n}: {e}") from None
            cases.append(pytest.param(None, marks=pytest.mark.skip(reason=f"{n}: {e}"), id=n))
    return cases


def _why(name: str) -> str:
    try:
        backends.get(name)
    except Exception as e:
        return str(e)
    return "unknown reason"


def pytest_generate_tests(metafunc: Any) -> None:
    if "xgrad_case" in metafunc.fixturenames:
        cases = metafunc.config._xgrad_cases
        ids = [c.id if isinstance(c, BackendCase) else c.id for c in cases]
        metafunc.parametrize("xgrad_case", cases, ids=ids, scope="function")


def pytest_collection_modifyitems(config: Any, items: list) -> None:
    gpu_ok = "cupy" in backends.available()
    for item in items:
        if item.get_closest_marker("gpu") and not gpu_ok:
            # (--require-gpu without a GPU already stopped the run in pytest_configure)
            item.add_marker(pytest.mark.skip(reason="needs a GPU backend (cupy)"))


@pytest.fixture
def backend(xgrad_case: BackendCase) -> BackendCase:
    """The backend under test (with ``.asarray``, ``.dtype``, ``.device``, ``.xp``)."""
    with backends.use_backend(xgrad_case.backend, device=xgrad_case.device):
        yield xgrad_case


@pytest.fixture
def xp(backend: BackendCase) -> Any:
    """The array namespace of the backend under test."""
    return backend.xp


@pytest.fixture
def device(backend: BackendCase) -> Any:
    """The device under test."""
    return backend.device

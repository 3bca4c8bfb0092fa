"""The backend registry: names -> Backend objects, imported lazily, and the default backend.

Importing xgrad never imports CuPy, PyTorch or JAX, nor touches CUDA: built-in backends are
registered by module path and loaded on first use; third-party ones register with
``register()`` or through the ``xgrad.backends`` entry-point group.
"""

from __future__ import annotations

import contextvars
import importlib
import os
import warnings
from typing import Any

from xgrad._array import get_namespace
from xgrad._switch import Switch
from xgrad.backends.base import RNG, Backend, BackendUnavailable, InvalidBackend

__all__ = [
    "Backend", "BackendUnavailable", "InvalidBackend", "RNG", "register", "get", "available",
    "unavailable", "registered", "use_backend", "current", "current_target", "backend_of",
    "resolve_target",
]

# name -> Backend instance, or "module:attribute" not yet imported
_REGISTRY: dict[str, Backend | str] = {
    "numpy": "xgrad.backends.numpy:backend",
    "cupy": "xgrad.backends.cupy:backend",
    "array_api_strict": "xgrad.backends.strict:backend",
    "torch": "xgrad.backends.torch:backend",
    "jax": "xgrad.backends.jax:backend",
}
_ALIASES = {"np": "numpy", "cp": "cupy", "strict": "array_api_strict", "cpu": "numpy",
            "cuda": "cupy", "gpu": "cupy"}
_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="xgrad.backends"):
        _REGISTRY.setdefault(ep.name, ep.value)


def register(name: str, backend: Backend | str, *, overwrite: bool = False) -> None:
    """Register ``backend`` (a Backend, or ``"module:attribute"`` to import lazily) as ``name``.

    A Backend whose library is installed is checked now (its namespace must be an array-API
    namespace: :class:`InvalidBackend` otherwise); a lazy one is checked at first use."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a backend named {name!r} is already registered")
    if isinstance(backend, str):
        if ":" not in backend:
            raise ValueError(f"register({name!r}, ...): a lazy backend is 'module:attribute', "
                             f"got {backend!r}")
    elif not isinstance(backend, Backend):
        raise InvalidBackend(f"register({name!r}, ...): expected a Backend instance or "
                             f"'module:attribute', got {type(backend).__name__}")
    elif backend.is_available():
        backend.namespace  # noqa: B018  (raises InvalidBackend for a non-namespace)
    _REGISTRY[name] = backend
    _PROBLEMS.pop(name, None)
    _BY_TYPE.clear()


def registered() -> list[str]:
    """Every registered backend name, usable here or not."""
    _load_entry_points()
    return list(_REGISTRY)


def _load(name: str) -> Backend:
    b = _REGISTRY[name]
    if isinstance(b, str):
        mod, attr = b.split(":", 1)
        obj = getattr(importlib.import_module(mod), attr)
        b = obj() if isinstance(obj, type) else obj
        if not isinstance(b, Backend):
            raise InvalidBackend(f"backend {name!r}: {b!r} (from {_REGISTRY[name]!r}) is not a "
                                 f"Backend instance or class")
        _REGISTRY[name] = b
    return b


# name -> why that registered backend cannot be used here, as found by available()/get()
_PROBLEMS: dict[str, str] = {}


def _usable(name: str) -> Backend | None:
    """The loaded, checked backend ``name``, or None with the reason kept in ``_PROBLEMS``."""
    try:
        b = _load(name)
        if not b.is_available():
            _PROBLEMS[name] = b.why_unavailable()
            return None
        b.namespace  # noqa: B018  (imports and checks the namespace)
    except Exception as e:  # a third-party backend may fail in any way: keep what it said
        _PROBLEMS[name] = f"{type(e).__name__}: {e}"
        return None
    _PROBLEMS.pop(name, None)
    return b


def available() -> list[str]:
    """Names of the backends usable on this machine (cupy only with a visible GPU); why each
    other one is not is in :func:`unavailable`."""
    return [name for name in registered() if _usable(name) is not None]


def unavailable() -> dict[str, str]:
    """``{name: reason}`` for each registered backend that cannot be used on this machine
    (not installed, no GPU, failed to import, not an array-API namespace, ...)."""
    return {name: _PROBLEMS[name] for name in registered() if _usable(name) is None}


def get(name: str | Backend) -> Backend:
    """The Backend called ``name``; an error lists the usable ones and how to install."""
    if isinstance(name, Backend):
        return name
    _load_entry_points()
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}; registered: {registered()}, "
                                 f"usable here: {available()}")
    b = _load(key)  # a lazy backend that fails to import raises its own error here
    if not b.is_available():
        why = "no CUDA GPU is visible or CuPy is not installed" if b.gpu else \
            b.why_unavailable()
        hint = f" Install it with: {b.install_hint}." if b.install_hint else ""
        raise BackendUnavailable(f"backend {key!r} is not usable on this machine: {why}.{hint} "
                                 f"Usable here: {available()}")
    b.namespace  # noqa: B018  (InvalidBackend, at first use, for a non-namespace)
    return b


# --- the default backend: a ContextVar, seeded from XGRAD_BACKEND ---
_current: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("xgrad.backend",
                                                                        default=None)


def current() -> Backend:
    """The default backend: ``use_backend()``'s, else ``$XGRAD_BACKEND``, else numpy."""
    return current_target()[0]


def current_target() -> tuple[Backend, Any]:
    """(default backend, its default device or None) as set by ``use_backend``/XGRAD_BACKEND."""
    cur = _current.get()
    if cur is not None:
        return cur
    return resolve_target(os.environ.get("XGRAD_BACKEND") or "numpy")


class use_backend(Switch):
    """Make a backend (and optionally a device) the default inside a ``with`` block or a
    decorated function: ``use_backend("cupy")``, ``use_backend("cuda:1")``,
    ``use_backend("array_api_strict", device=...)``. One object may be entered from several
    threads and tasks at once, and nested."""

    def __init__(self, name: str | Backend, device: Any = None) -> None:
        b, dev = resolve_target(name)  # fail now, not at first use
        self._var = _current
        self._value = (b, b.parse_device(device) if device is not None else dev)

    def __enter__(self) -> Backend:
        super().__enter__()
        return self._value[0]

    def __repr__(self) -> str:
        return f"use_backend({self._value[0].name!r}, device={self._value[1]!r})"


# --- which backend owns an array: cached per array type ---
_BY_TYPE: dict[type, Backend] = {}


class _GenericBackend(Backend):
    """Any array-API namespace nobody registered: the portable defaults only."""

    def __init__(self, ns: Any) -> None:
        super().__init__()
        self._namespace = ns
        self.name = getattr(ns, "__name__", "unknown")
        self.module = self.name

    def owns(self, array: Any) -> bool:
        try:
            return get_namespace(array) is self._namespace
        except TypeError:
            return False


def backend_of(x: Any) -> Backend:
    """The Backend that owns array ``x``."""
    t = type(x)
    b = _BY_TYPE.get(t)
    if b is None:
        for name in registered():
            try:
                cand = _load(name)
                if cand.owns(x):
                    b = cand
                    break
            except Exception as e:  # a broken third-party backend: say so, then ask the rest
                warnings.warn(f"backend {name!r} was skipped while looking for the owner of a "
                              f"{t.__module__}.{t.__name__}: {type(e).__name__}: {e}",
                              RuntimeWarning, stacklevel=2)
                continue
        if b is None:
            b = _GenericBackend(get_namespace(x))
        _BY_TYPE[t] = b
    return b


def resolve_target(target: Any) -> tuple[Backend, Any]:
    """(backend, device) from ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"numpy"``,
    ``"array_api_strict:device1"``, a Backend, or a device object."""
    if isinstance(target, Backend):
        return target, None
    if isinstance(target, str):
        name, _, dev = target.partition(":")
        if name in ("cuda", "gpu"):
            b = get("cupy")
            return b, b.parse_device(target if dev else None)
        b = get(name)
        return b, (b.parse_device(dev) if dev else None)
    for name in available():  # a device object: find the backend that knows it
        b = _load(name)
        try:
            if target in b.devices():
                return b, target
        except Exception:
            continue
    raise ValueError(f"cannot move data to {target!r}: expected a backend name, 'cpu', 'cuda', "
                     f"'cuda:N', 'backend:device' or a Backend")

"""Moving data between backends and devices: ``to``, differentiable (the gradient moves back)."""

from __future__ import annotations

from typing import Any

from xgrad.backends import BackendUnavailable, backend_of, resolve_target
from xgrad.core import Function, Variable
from xgrad.dtypes import dtype_name

__all__ = ["to"]


def _lacks_dtype(backend: Any, device: Any, name: str) -> bool:
    """Whether the array API's inspection says ``device`` lacks a dtype its library has."""
    try:
        info = backend.namespace.__array_namespace_info__()
        return name in info.dtypes() and name not in info.dtypes(device=device)
    except Exception:  # a library without the inspection API: the check after the move
        return False


class To(Function):
    """Move data to another backend/device; the gradient moves back."""

    name = "to"

    def __init__(self, backend: Any, device: Any) -> None:
        self.backend, self.device = backend, device

    def forward(self, x: Any) -> Any:
        self.source = backend_of(x)
        self.source_device = x.device
        # a device without the dtype (array_api_strict's no_float64, Apple MPS) either casts
        # silently, which would change the numbers and leave the gradient no way back, or
        # fails deep inside the library: asked first, and checked after
        name = dtype_name(x.dtype)
        if _lacks_dtype(self.backend, self.device, name):
            self._no_dtype(name, self.device)
        y = self.backend.transfer(x, self.device)
        if dtype_name(y.dtype) != name:
            self._no_dtype(name, y.device)
        return y

    def _no_dtype(self, name: str, device: Any) -> None:
        dev = self.backend.device_spec(device if device is not None else
                                       self.backend.default_device)
        raise TypeError(f"{dev} has no {name}; cast first, e.g. "
                        f"F.astype(x, 'float32').to({dev!r})")

    def backward(self, gy: Variable) -> Variable:
        return To(self.source, self.source_device)(gy)


def to(x: Any, target: Any) -> Variable:
    """``x`` on another backend or device (``"cpu"``, ``"cuda:0"``, ``"numpy"``, a Backend).
    The dtype never changes: a target device that lacks ``x``'s dtype (float64 on
    ``"array_api_strict:no_float64"``) raises a TypeError; cast first with ``astype``."""
    try:
        backend, device = resolve_target(target)
    except (ValueError, TypeError, BackendUnavailable) as e:
        raise type(e)(f"to: {e}") from None
    return To(backend, device)(x)

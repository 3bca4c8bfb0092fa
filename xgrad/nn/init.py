"""Initial values of parameters: where they are made (the current backend, or the first input's
backend and device for a layer created lazily), in which dtype, and from which distribution."""

from __future__ import annotations

import math
from typing import Any

from xgrad import backends
from xgrad.backends import backend_of
from xgrad.core import Parameter, Variable, device_of, is_array, is_float_dtype
from xgrad.creation import float32, get_rng, resolve_dtype

__all__ = ["normal_init", "const_init", "const_array", "fan_in_scale", "input_place",
           "input_float_dtype"]


def normal_init(shape: tuple, scale: float, dtype: Any = None, place: tuple | None = None,
                name: str | None = None) -> Parameter:
    """A Parameter of samples from N(0, scale^2), drawn from the backend's generator
    (``xgrad.manual_seed`` makes them repeat) on ``place`` = (backend, device), default the
    current backend, in ``dtype`` (default float32)."""
    b, dev = place if place is not None else backends.current_target()
    data = get_rng(b, dev).normal(tuple(shape), dtype=resolve_dtype(dtype or float32, b))
    if scale != 1.0:
        data = data * float(scale)
    return Parameter(data, name=name)


def const_init(shape: tuple, value: float, dtype: Any = None, place: tuple | None = None,
               name: str | None = None) -> Parameter:
    """A Parameter filled with ``value`` on ``place`` (default: the current backend)."""
    return Parameter(const_array(shape, value, dtype, place), name=name)


def const_array(shape: tuple, value: float, dtype: Any = None, place: tuple | None = None) -> Any:
    """An array filled with ``value`` on ``place`` (default: the current backend)."""
    b, dev = place if place is not None else backends.current_target()
    dev = dev if dev is not None else b.default_device
    return b.namespace.full(tuple(shape), value, dtype=resolve_dtype(dtype or float32, b),
                            device=dev)


def fan_in_scale(fan_in: int) -> float:
    """DeZero's (and LeCun's) initial scale ``sqrt(1 / fan_in)``."""
    return math.sqrt(1.0 / fan_in)


def input_place(x: Any) -> tuple:
    """(backend, device) of a Variable's or an array's data: where a lazily created
    parameter goes."""
    data = x.data if isinstance(x, Variable) else x
    return backend_of(data), device_of(data)


def input_float_dtype(x: Any, dtype: Any) -> Any:
    """The dtype of a lazily created parameter: ``dtype`` if given, else the input's dtype
    when it is floating, else float32."""
    if dtype is not None:
        return dtype
    data = x.data if isinstance(x, Variable) else x
    return data.dtype if is_array(data) and is_float_dtype(data) else float32

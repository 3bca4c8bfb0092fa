"""Checks of a layer's arguments and inputs, with errors that name the layer."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from xgrad.core import Variable, is_array

__all__ = ["check_size", "layer_input"]


def check_size(owner: str, what: str, v: Any, minimum: int = 1) -> int:
    """``v`` as an int >= ``minimum`` (a layer size); anything else is refused with an error
    naming ``owner`` and the argument."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{owner}: {what} must be an int >= {minimum}, got {v!r}")
    if v < minimum:
        raise ValueError(f"{owner}: {what} must be an int >= {minimum}, got {v!r}")
    return int(v)


def layer_input(layer: Any, x: Any, ndims: str, ok: Callable[[int], bool]) -> Any:
    """The raw array of input ``x`` (a Variable or an array) whose number of dimensions
    ``ok`` accepts; anything else is refused with an error naming the layer."""
    data = x.data if isinstance(x, Variable) else x
    if not is_array(data):
        raise TypeError(f"{type(layer).__name__}: expected a Variable or an array, got "
                        f"{type(x).__module__}.{type(x).__qualname__}")
    if not ok(data.ndim):
        raise ValueError(f"{type(layer).__name__}: expected {ndims} input, got shape "
                         f"{tuple(data.shape)}")
    return data

"""Anomaly detection: find the first Function whose backward produced NaN or Inf.

``with xgrad.detect_anomaly():`` (or ``@xgrad.detect_anomaly``) turns on the config switch
``detect_anomaly``. While it is on, the engine calls :func:`record_origin` for every Function it
records (where the user created it) and :func:`check_gradients` after every backward rule; the
first non-finite gradient raises :class:`AnomalyError`. When it is off the engine pays one
ContextVar read per call and nothing else.
"""

from __future__ import annotations

import linecache
import os
import sys
from collections.abc import Callable
from typing import Any

from xgrad.core import Function, Variable, XgradError, get_namespace, is_array, numel, using_config

__all__ = ["AnomalyError", "detect_anomaly", "record_origin", "check_gradients"]

# Frames whose file lies under this folder belong to xgrad, not to the user.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class AnomalyError(XgradError, FloatingPointError):
    """A backward rule produced a gradient containing NaN or Inf."""


def detect_anomaly(func: Callable | None = None) -> Any:
    """Check every gradient for NaN/Inf during backward: ``with detect_anomaly():``,
    ``@detect_anomaly()`` or ``@detect_anomaly``. Functions must be recorded inside it too, for
    the error to say where they were created."""
    ctx = using_config("detect_anomaly", True)
    return ctx(func) if func is not None else ctx


_INTERNAL: dict[str, bool] = {}  # filename -> inside xgrad (abspath costs a few us)


def _is_internal(filename: str) -> bool:
    r = _INTERNAL.get(filename)
    if r is None:
        r = _INTERNAL[filename] = os.path.abspath(filename).startswith(_PACKAGE_DIR)
    return r


def record_origin(fn: Function) -> None:
    """Store on ``fn`` (as ``_origin``) the first stack frame outside xgrad: (file, line, name)."""
    frame = sys._getframe(1)
    innermost = frame
    while frame is not None and _is_internal(frame.f_code.co_filename):
        frame = frame.f_back
    frame = frame or innermost
    fn._origin = (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)


def _origin_text(fn: Function) -> str:
    origin = getattr(fn, "_origin", None)
    if origin is None:
        return "at an unknown place (it was recorded outside detect_anomaly())"
    filename, lineno, name = origin
    line = linecache.getline(filename, lineno).strip()
    return f"at {filename}:{lineno} in {name}" + (f": `{line}`" if line else "")


def _count_bad(g: Any) -> tuple[int, int]:
    xp = get_namespace(g)
    n_nan = int(xp.sum(xp.astype(xp.isnan(g), xp.int32)))
    n_inf = int(xp.sum(xp.astype(xp.isinf(g), xp.int32)))
    return n_nan, n_inf


def _finite(g: Any) -> bool:
    xp = get_namespace(g)
    return not bool(xp.any(~xp.isfinite(g)))


def check_gradients(fn: Function, gxs: tuple) -> None:
    """Raise :class:`AnomalyError` if a gradient that ``fn.backward`` returned for an input that
    needs one contains NaN or Inf; the message names ``fn``, where it was created and its
    inputs' shapes and dtypes."""
    inputs = fn.inputs
    for i, gx in enumerate(gxs):
        if gx is None or (i < len(inputs) and not inputs[i].requires_grad):
            continue
        g = gx.data if isinstance(gx, Variable) else gx
        if not is_array(g) or _finite(g):
            continue
        name = type(fn).__name__
        n_nan, n_inf = _count_bad(g)
        shapes = ", ".join(f"{tuple(x.shape)} {str(x.dtype).rsplit('.', 1)[-1]}"
                           for x in inputs)
        raise AnomalyError(
            f"{name}.backward returned a gradient with {n_nan} NaN and {n_inf} Inf of "
            f"{numel(g)} elements for input {i}; {name} was created {_origin_text(fn)}; "
            f"inputs: {shapes}")

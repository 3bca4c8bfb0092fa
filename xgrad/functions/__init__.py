"""Differentiable functions (``import xgrad.functions as F``), one module per family; each
module's ``__all__`` is what this package re-exports."""

from xgrad.functions import activation, conv, linalg, math, nn, reduce, shape, transfer
from xgrad.functions.activation import *  # noqa: F403
from xgrad.functions.conv import *  # noqa: F403
from xgrad.functions.linalg import *  # noqa: F403
from xgrad.functions.math import *  # noqa: F403
from xgrad.functions.nn import *  # noqa: F403
from xgrad.functions.reduce import *  # noqa: F403
from xgrad.functions.shape import *  # noqa: F403
from xgrad.functions.transfer import *  # noqa: F403

_FAMILIES = (math, activation, shape, transfer, reduce, linalg, nn, conv)
__all__ = sorted(name for family in _FAMILIES for name in family.__all__)

"""xgrad's base exception class, in a module that imports nothing of xgrad (the backends use it)."""

from __future__ import annotations

__all__ = ["XgradError"]


class XgradError(Exception):
    """Base class of xgrad's own errors."""

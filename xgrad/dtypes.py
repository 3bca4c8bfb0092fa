"""dtype names: the spelling xgrad accepts wherever a dtype is, and the name of any backend's
dtype object. Imports nothing of xgrad, so every module can use it."""

from __future__ import annotations

from typing import Any

__all__ = ["float32", "float64", "int32", "int64", "bool_", "dtype_name"]

# dtype names accepted everywhere a dtype is: resolved on the target backend's namespace
float32, float64, int32, int64, bool_ = "float32", "float64", "int32", "int64", "bool"


def dtype_name(dtype: Any) -> str:
    """The standard's name of ``dtype`` ("float32", "bool", ...) for a name or any backend's
    dtype object (NumPy's ``numpy.float32`` scalar type, ``dtype('float32')``, torch.float32,
    array_api_strict's ``float32``)."""
    if isinstance(dtype, type):  # NumPy/CuPy namespaces spell dtypes as scalar types
        return "bool" if dtype.__name__ == "bool_" else dtype.__name__
    s = str(dtype)
    return s.rsplit(".", 1)[-1] if "." in s else s

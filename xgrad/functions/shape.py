"""Shape functions: reshape, transpose, broadcasting, indexing, and moving between backends."""

from __future__ import annotations

from typing import Any

from xgrad.core import Function, Variable, get_namespace, is_array
from xgrad.functions._util import gather, xp_of


def _sum_to_array(x: Any, shape: tuple) -> Any:
    """Sum array ``x`` down to ``shape`` (the inverse of broadcasting)."""
    if tuple(x.shape) == tuple(shape):
        return x
    xp = xp_of(x)
    lead = x.ndim - len(shape)
    if lead < 0:
        raise ValueError(f"sum_to: cannot sum shape {tuple(x.shape)} to the larger {shape}")
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1)
    for i, s in enumerate(shape):
        if s != 1 and x.shape[i + lead] != s:
            raise ValueError(f"sum_to: shape {tuple(x.shape)} does not broadcast from {shape}")
    y = xp.sum(x, axis=axes, keepdims=True) if axes else x
    return xp.reshape(y, shape) if lead else y


class Reshape(Function):
    def __init__(self, shape: tuple) -> None:
        self.shape = shape

    def forward(self, x: Any) -> Any:
        return xp_of(x).reshape(x, self.shape)

    def backward(self, gy: Variable) -> Variable:
        return reshape(gy, self.inputs[0].shape)


class Transpose(Function):
    def __init__(self, axes: tuple | None) -> None:
        self.axes = axes

    def forward(self, x: Any) -> Any:
        axes = self.axes if self.axes is not None else tuple(range(x.ndim))[::-1]
        self.axes = tuple(a % x.ndim for a in axes)
        return xp_of(x).permute_dims(x, self.axes)

    def backward(self, gy: Variable) -> Variable:
        inverse = tuple(sorted(range(len(self.axes)), key=self.axes.__getitem__))
        return transpose(gy, inverse)


class MatrixTranspose(Function):
    def forward(self, x: Any) -> Any:
        if x.ndim < 2:
            raise ValueError(f"matrix_transpose needs at least 2 dimensions, got shape "
                             f"{tuple(x.shape)}")
        return xp_of(x).matrix_transpose(x)

    def backward(self, gy: Variable) -> Variable:
        return matrix_transpose(gy)


class BroadcastTo(Function):
    def __init__(self, shape: tuple) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        return xp_of(x).broadcast_to(x, self.shape)

    def backward(self, gy: Variable) -> Variable:
        return sum_to(gy, self.inputs[0].shape)


class SumTo(Function):
    def __init__(self, shape: tuple) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        return _sum_to_array(x, self.shape)

    def backward(self, gy: Variable) -> Variable:
        return broadcast_to(gy, self.inputs[0].shape)


def _index_part(k: Any, x: Any) -> Any:
    if isinstance(k, Variable):
        return k.data
    if isinstance(k, list):
        return get_namespace(x).asarray(k, device=x.device)
    return k


def _index_key(key: Any, x: Any) -> tuple:
    """Make an indexing key usable on every backend: Variables and lists become arrays on the
    data's namespace and device, and a key shorter than ``x.ndim`` gets the trailing ``...``
    that the standard asks for."""
    parts = tuple(_index_part(k, x) for k in (key if isinstance(key, tuple) else (key,)))
    if not any(k is Ellipsis for k in parts):
        used = 0
        for k in parts:
            if k is None:
                continue
            used += k.ndim if is_array(k) and "bool" in str(k.dtype) else 1
        if used < x.ndim:
            parts = parts + (Ellipsis,)
    return parts


class GetItem(Function):
    def __init__(self, key: Any) -> None:
        self.key = key

    def forward(self, x: Any) -> Any:
        return gather(x, self.key)

    def backward(self, gy: Variable) -> Variable:
        x = self.inputs[0]
        return GetItemGrad(self.key, x.shape)(gy)


class GetItemGrad(Function):
    """Scatter-add of the gradient into zeros of the input's shape (repeated indices add up)."""

    def __init__(self, key: Any, shape: tuple) -> None:
        self.key, self.shape = key, shape

    def forward(self, gy: Any) -> Any:
        from xgrad.backends import backend_of

        return backend_of(gy).scatter_add(self.shape, self.key, gy)

    def backward(self, ggx: Variable) -> Variable:
        return get_item(ggx, self.key)


class To(Function):
    """Move data to another backend/device; the gradient moves back."""

    def __init__(self, backend: Any, device: Any) -> None:
        self.backend, self.device = backend, device

    def forward(self, x: Any) -> Any:
        from xgrad.backends import backend_of

        self.source = backend_of(x)
        self.source_device = x.device
        return self.backend.transfer(x, self.device)

    def backward(self, gy: Variable) -> Variable:
        return To(self.source, self.source_device)(gy)

    def __call__(self, x: Any) -> Any:
        # The output lives elsewhere than the input, so the usual "same type" fix-up is skipped.
        from xgrad.core import _enable_backprop

        if not isinstance(x, Variable):
            x = Variable._wrap(x, False) if is_array(x) else Variable(x)
        y = Variable._wrap(self.forward(x.data))
        if _enable_backprop.get() and x.requires_grad:
            import weakref

            self.generation = x.generation
            y.creator, y.generation, y.requires_grad = self, x.generation + 1, True
            self.inputs, self.outputs = [x], [weakref.ref(y)]
        return y


def reshape(x: Any, shape: tuple) -> Variable:
    """``x`` with a new shape (one entry may be -1)."""
    if isinstance(x, Variable) and tuple(x.shape) == tuple(shape):
        return x
    return Reshape(tuple(shape))(x)


def transpose(x: Any, axes: tuple | None = None) -> Variable:
    """Permute the dimensions (reverse them when ``axes`` is None); DeZero's name."""
    return Transpose(None if axes is None else tuple(axes))(x)


def permute_dims(x: Any, axes: tuple) -> Variable:
    """Permute the dimensions of ``x`` (the array API standard's name)."""
    return Transpose(tuple(axes))(x)


def matrix_transpose(x: Any) -> Variable:
    """Swap the last two dimensions."""
    return MatrixTranspose()(x)


def broadcast_to(x: Any, shape: tuple) -> Variable:
    """``x`` broadcast to ``shape``; the gradient is summed back."""
    if isinstance(x, Variable) and tuple(x.shape) == tuple(shape):
        return x
    return BroadcastTo(shape)(x)


def sum_to(x: Any, shape: tuple) -> Variable:
    """Sum ``x`` down to ``shape`` (the inverse of broadcasting)."""
    if isinstance(x, Variable) and tuple(x.shape) == tuple(shape):
        return x
    return SumTo(shape)(x)


def get_item(x: Any, key: Any) -> Variable:
    """``x[key]``: slices, integer arrays (repeated indices add up in backward), masks."""
    data = x.data if isinstance(x, Variable) else x
    return GetItem(_index_key(key, data))(x)


def to(x: Any, target: Any) -> Variable:
    """``x`` on another backend or device (``"cpu"``, ``"cuda:0"``, ``"numpy"``, a Backend)."""
    from xgrad.backends import resolve_target

    backend, device = resolve_target(target)
    return To(backend, device)(x)

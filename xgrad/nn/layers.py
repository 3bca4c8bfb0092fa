"""The standard layers: Linear, Conv2d, Deconv2d, BatchNorm, LayerNorm, Embedding, Dropout, MLP.

Sizes that can be read off the first input (``in_size``, ``in_channels``, the normalised size)
may be left out; those parameters are then created at the first call, on the input's backend
and device and in its dtype (unless ``dtype=`` was given). Parameters created up front live on
the current default backend (``xgrad.use_backend``), in float32 unless ``dtype=`` says
otherwise, with initial values from that backend's generator (``xgrad.manual_seed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xgrad import functions as F
from xgrad.core import Variable
from xgrad.functions._util import _pair
from xgrad.nn.checks import check_size, layer_input
from xgrad.nn.init import (
    const_array,
    const_init,
    fan_in_scale,
    input_float_dtype,
    input_place,
    normal_init,
)
from xgrad.nn.layer import Layer, Model

__all__ = ["Linear", "Conv2d", "Deconv2d", "BatchNorm", "LayerNorm", "Embedding", "EmbedID",
           "Dropout", "MLP"]


def _optional_size(owner: str, what: str, v: Any) -> int | None:
    """None (inferred at the first call) or a checked size."""
    return None if v is None else check_size(owner, what, v)


class Linear(Layer):
    """``y = x @ W + b`` with ``W`` of shape (in_size, out_size) (DeZero's layout); with
    ``in_size=None``, W is created at the first call from the input's last dimension."""

    def __init__(self, out_size: int, in_size: int | None = None, *, nobias: bool = False,
                 dtype: Any = None) -> None:
        out_size = check_size("Linear", "out_size", out_size)
        in_size = _optional_size("Linear", "in_size", in_size)
        self.out_size, self.in_size, self.dtype = out_size, in_size, dtype
        if in_size is None:
            self.declare_lazy("W")
        else:
            self.W = normal_init((in_size, out_size), fan_in_scale(in_size), dtype, name="W")
        if nobias:
            self.b = None
        elif in_size is None:
            self.declare_lazy("b")
        else:
            self.b = const_init((out_size,), 0.0, dtype, name="b")

    def _init(self, x: Any) -> None:
        data = layer_input(self, x, "an (..., in_size)", lambda n: n >= 1)
        place, dt = input_place(data), input_float_dtype(data, self.dtype)
        in_size = data.shape[-1]
        self.W = normal_init((in_size, self.out_size), fan_in_scale(in_size), dt, place, "W")
        if "b" in self._lazy:
            self.b = const_init((self.out_size,), 0.0, dt, place, "b")

    def forward(self, x: Any) -> Any:
        if self.W is None:
            self._init(x)
        return F.linear(x, self.W, self.b)


def _lazy_conv_init(layer: Any, x: Any) -> None:
    """Create a (de)convolution's W (and b) from the first input's channels and placement."""
    data = layer_input(layer, x, "an (N, C, H, W)", lambda n: n == 4)
    place, dt = input_place(data), input_float_dtype(data, layer.dtype)
    layer.W = layer._new_W(data.shape[1], dt, place)
    if not layer.nobias:
        layer.b = const_init((layer.out_channels,), 0.0, dt, place, "b")


class _Conv(Layer):
    """What Conv2d and Deconv2d share: sizes, stride, pad and (lazy) parameters."""

    def __init__(self, out_channels: int, kernel_size: int | tuple, stride: int | tuple = 1,
                 pad: int | tuple = 0, *, nobias: bool = False, in_channels: int | None = None,
                 dtype: Any = None) -> None:
        name = type(self).__name__
        self.out_channels = check_size(name, "out_channels", out_channels)
        self.in_channels = in_channels = _optional_size(name, "in_channels", in_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", name, 1)
        self.stride = _pair(stride, "stride", name, 1)
        self.pad = _pair(pad, "pad", name, 0)
        self.dtype = dtype
        self.nobias = nobias
        if in_channels is None:
            self.declare_lazy("W")
        else:
            self.W = self._new_W(in_channels, dtype, None)
        if nobias:
            self.b = None
        elif in_channels is None:
            self.declare_lazy("b")
        else:
            self.b = const_init((self.out_channels,), 0.0, dtype, name="b")

    def _new_W(self, c: int, dtype: Any, place: Any) -> Any:
        raise NotImplementedError


class Conv2d(_Conv):
    """2-D convolution of NCHW input; ``W`` has shape (out_channels, in_channels, KH, KW);
    with ``in_channels=None`` it is created at the first call."""

    def _new_W(self, c: int, dtype: Any, place: Any) -> Any:
        kh, kw = self.kernel_size
        return normal_init((self.out_channels, c, kh, kw), fan_in_scale(c * kh * kw), dtype,
                           place, "W")

    def forward(self, x: Any) -> Any:
        if self.W is None:
            _lazy_conv_init(self, x)
        return F.conv2d(x, self.W, self.b, self.stride, self.pad)


class Deconv2d(_Conv):
    """2-D transposed convolution of NCHW input; ``W`` has shape (in_channels, out_channels,
    KH, KW); ``outsize`` picks the output size when the stride leaves a choice."""

    def _new_W(self, c: int, dtype: Any, place: Any) -> Any:
        kh, kw = self.kernel_size
        return normal_init((c, self.out_channels, kh, kw), fan_in_scale(c * kh * kw), dtype,
                           place, "W")

    def forward(self, x: Any, outsize: tuple | None = None) -> Any:
        if self.W is None:
            _lazy_conv_init(self, x)
        return F.deconv2d(x, self.W, self.b, self.stride, self.pad, outsize)


class BatchNorm(Layer):
    """Batch normalisation over axis 1 (features of (N, C) or channels of NCHW input).
    In train mode it normalises with the batch statistics and updates the running averages
    (buffers ``avg_mean``, ``avg_var``: ``avg = decay * avg + (1 - decay) * batch``); in test
    mode it normalises with the running averages. Parameters are created at the first call."""

    def __init__(self, decay: float = 0.9, eps: float = 2e-5, *, dtype: Any = None) -> None:
        self.decay, self.eps, self.dtype = decay, eps, dtype
        self.register_buffer("avg_mean", None)
        self.register_buffer("avg_var", None)
        self.declare_lazy("gamma", "beta")

    def forward(self, x: Any) -> Any:
        if self.gamma is None or self.avg_mean is None:
            data = layer_input(self, x, "an (N, C, ...)", lambda n: n >= 2)
            place, dt = input_place(data), input_float_dtype(data, self.dtype)
            c = data.shape[1]
            self.avg_mean = const_array((c,), 0.0, dt, place)
            self.avg_var = const_array((c,), 1.0, dt, place)
            self.gamma = const_init((c,), 1.0, dt, place, "gamma")
            self.beta = const_init((c,), 0.0, dt, place, "beta")
        # F.batch_norm replaces the .data of these Variables with the updated averages
        mean = Variable(self.avg_mean, requires_grad=False)
        var = Variable(self.avg_var, requires_grad=False)
        y = F.batch_norm(x, self.gamma, self.beta, mean, var, decay=self.decay, eps=self.eps)
        self.avg_mean, self.avg_var = mean.data, var.data
        return y


class LayerNorm(Layer):
    """Normalise over the last axis, then scale by ``gamma`` and shift by ``beta``
    (both of the last axis' size, created at the first call if ``size`` is None)."""

    def __init__(self, size: int | None = None, eps: float = 1e-5, *, dtype: Any = None) -> None:
        self.eps, self.dtype = eps, dtype
        size = _optional_size("LayerNorm", "size", size)
        if size is None:
            self.declare_lazy("gamma", "beta")
        else:
            self.gamma = const_init((size,), 1.0, dtype, name="gamma")
            self.beta = const_init((size,), 0.0, dtype, name="beta")

    def forward(self, x: Any) -> Any:
        if self.gamma is None:
            data = layer_input(self, x, "an (..., size)", lambda n: n >= 1)
            place, dt = input_place(data), input_float_dtype(data, self.dtype)
            n = data.shape[-1]
            self.gamma = const_init((n,), 1.0, dt, place, "gamma")
            self.beta = const_init((n,), 0.0, dt, place, "beta")
        return F.layer_norm(x, self.gamma, self.beta, eps=self.eps)


class Embedding(Layer):
    """A lookup table: integer ids of any shape -> rows of ``W`` (in_size, out_size), N(0, 1)."""

    def __init__(self, in_size: int, out_size: int, *, dtype: Any = None) -> None:
        in_size = check_size("Embedding", "in_size", in_size)
        out_size = check_size("Embedding", "out_size", out_size)
        self.W = normal_init((in_size, out_size), 1.0, dtype, name="W")

    def forward(self, ids: Any) -> Any:
        return F.embed_id(ids, self.W)


EmbedID = Embedding  # DeZero's name


class Dropout(Layer):
    """Zero each element with probability ``ratio`` in train mode (scaling the rest by
    1 / (1 - ratio)); the identity in test mode."""

    def __init__(self, ratio: float = 0.5) -> None:
        self.ratio = ratio

    def forward(self, x: Any) -> Any:
        return F.dropout(x, self.ratio)


class MLP(Model):
    """Fully connected layers of ``fc_output_sizes`` with ``activation`` (default sigmoid, as
    in DeZero) between them; input sizes are inferred at the first call."""

    def __init__(self, fc_output_sizes: tuple | list, activation: Callable | None = None, *,
                 dtype: Any = None) -> None:
        if not isinstance(fc_output_sizes, (tuple, list)):
            raise TypeError(f"MLP: fc_output_sizes must be a tuple or list of layer sizes, got "
                            f"{fc_output_sizes!r}")
        if not fc_output_sizes:
            raise ValueError("MLP: fc_output_sizes must give at least one layer size, got "
                             f"{fc_output_sizes!r}")
        sizes = [check_size("MLP", f"fc_output_sizes[{i}]", n)
                 for i, n in enumerate(fc_output_sizes)]
        if activation is not None and not callable(activation):
            raise TypeError(f"MLP: activation must be callable, got {activation!r}")
        self.activation = activation
        self.layers = [Linear(n, dtype=dtype) for n in sizes]

    def forward(self, x: Any) -> Any:
        act = self.activation if self.activation is not None else F.sigmoid
        for layer in self.layers[:-1]:
            x = act(layer(x))
        return self.layers[-1](x)

"""Convolution and pooling on NCHW images, with im2col/col2im written in the array API standard.

The portable kernels gather the kernel offsets with strided slices stacked into one array (a
Python loop over the ``kh * kw`` offsets, never over output pixels), then do one batched matrix
product. Padding is a concatenation; col2im adds each offset's patches into the image with the
backend's functional ``add_at`` (no item assignment: JAX arrays are immutable). Every
Function's backward is built from the others (conv2d <-> deconv2d, im2col <-> col2im), so
convolutions are differentiable any number of times.
"""

from __future__ import annotations

import math
from typing import Any

from xgrad.backends import backend_of
from xgrad.core import Function, Variable
from xgrad.functions._util import (
    _at,
    _pair,
    check_bool,
    check_shape,
    require_float,
    xp_of,
)
from xgrad.functions.reduce import sum

# the differentiable functions (re-exported by xgrad.functions); get_conv_outsize and
# get_deconv_outsize are size helpers of this module
__all__ = ["average_pooling", "col2im", "conv2d", "deconv2d", "im2col", "max_pooling"]


# ---------------------------------------------------------------------------------------------
# Sizes and arguments
# ---------------------------------------------------------------------------------------------
def get_conv_outsize(size: int, k: int, s: int, p: int) -> int:
    """Output length of a convolution along one axis: ``(size + 2p - k) // s + 1``."""
    return (size + 2 * p - k) // s + 1


def get_deconv_outsize(size: int, k: int, s: int, p: int) -> int:
    """Output length of a transposed convolution along one axis: ``s (size - 1) + k - 2p``."""
    return s * (size - 1) + k - 2 * p


def _check_image(fname: str | None, x: Any, what: str = "input") -> None:
    if x.ndim != 4:
        raise ValueError(f"{_at(fname)}{what} must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    require_float(fname, x)


def _outsize(fname: str | None, shape: tuple, k: tuple, s: tuple, p: tuple) -> tuple[int, int]:
    oh = get_conv_outsize(shape[2], k[0], s[0], p[0])
    ow = get_conv_outsize(shape[3], k[1], s[1], p[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"{_at(fname)}kernel {k} with stride {s} and pad {p} does not fit an "
                         f"input of shape {tuple(shape)} (output would be {oh}x{ow})")
    return oh, ow


# ---------------------------------------------------------------------------------------------
# Array kernels (raw arrays in and out)
# ---------------------------------------------------------------------------------------------
def _pad(x: Any, ph: int, pw: int, value: float = 0.0) -> Any:
    """``x`` with ``ph`` rows and ``pw`` columns of ``value`` on each side (the standard has no
    pad: concatenate filled strips)."""
    xp = xp_of(x)
    n, c, h, w = x.shape
    if pw:
        side = xp.full((n, c, h, pw), value, dtype=x.dtype, device=x.device)
        x = xp.concat([side, x, side], axis=3)
    if ph:
        top = xp.full((n, c, ph, w + 2 * pw), value, dtype=x.dtype, device=x.device)
        x = xp.concat([top, x, top], axis=2)
    return x


def _im2col_array(x: Any, k: tuple, s: tuple, p: tuple, value: float = 0.0,
                  fname: str | None = None) -> Any:
    """Patches of ``x`` (N, C, H, W) as (N, C, KH, KW, OH, OW); padding filled with ``value``."""
    xp = xp_of(x)
    n, c = x.shape[:2]
    oh, ow = _outsize(fname, x.shape, k, s, p)
    xpad = _pad(x, p[0], p[1], value)
    (kh, kw), (sy, sx) = k, s
    hspan, wspan = sy * (oh - 1) + 1, sx * (ow - 1) + 1
    patches = [xpad[:, :, i:i + hspan:sy, j:j + wspan:sx] for i in range(kh) for j in range(kw)]
    col = xp.stack(patches, axis=2)
    return xp.reshape(col, (n, c, kh, kw, oh, ow))


def _col2im_array(col: Any, h: int, w: int, s: tuple, p: tuple) -> Any:
    """Sum patches ``col`` (N, C, KH, KW, OH, OW) back into an (N, C, h, w) image (overlaps
    add up): the adjoint of ``_im2col_array``."""
    xp, b = xp_of(col), backend_of(col)
    n, c, kh, kw, oh, ow = col.shape
    (sy, sx), (ph, pw) = s, p
    hp, wp = max(h + 2 * ph, sy * (oh - 1) + kh), max(w + 2 * pw, sx * (ow - 1) + kw)
    img = xp.zeros((n, c, hp, wp), dtype=col.dtype, device=col.device)
    hspan, wspan = sy * (oh - 1) + 1, sx * (ow - 1) + 1
    for i in range(kh):
        for j in range(kw):
            key = (slice(None), slice(None), slice(i, i + hspan, sy), slice(j, j + wspan, sx))
            img = b.add_at(img, key, col[:, :, i, j, :, :])
    return img[:, :, ph:ph + h, pw:pw + w]


# ---------------------------------------------------------------------------------------------
# im2col / col2im
# ---------------------------------------------------------------------------------------------
class Im2col(Function):
    """Image to patches; backward: col2im."""

    name = "im2col"

    def __init__(self, k: tuple, s: tuple, p: tuple, to_matrix: bool) -> None:
        self.k, self.s, self.p, self.to_matrix = k, s, p, to_matrix

    def forward(self, x: Any) -> Any:
        _check_image(None, x)
        col = _im2col_array(x, self.k, self.s, self.p)
        if self.to_matrix:
            xp = xp_of(x)
            n, c, kh, kw, oh, ow = col.shape
            col = xp.reshape(xp.permute_dims(col, (0, 4, 5, 1, 2, 3)), (n * oh * ow, c * kh * kw))
        return col

    def backward(self, gy: Variable) -> Variable:
        return col2im(gy, self.inputs[0].shape, self.k, self.s, self.p, self.to_matrix)


class Col2im(Function):
    """Patches summed back into an image; backward: im2col."""

    name = "col2im"

    def __init__(self, shape: tuple, k: tuple, s: tuple, p: tuple, to_matrix: bool) -> None:
        self.shape, self.k, self.s, self.p, self.to_matrix = tuple(shape), k, s, p, to_matrix

    def forward(self, col: Any) -> Any:
        xp = xp_of(col)
        n, c, h, w = self.shape
        (kh, kw), oh_ow = self.k, _outsize(None, self.shape, self.k, self.s, self.p)
        full = (n, c, kh, kw) + oh_ow
        expect = (n * oh_ow[0] * oh_ow[1], c * kh * kw) if self.to_matrix else full
        if tuple(col.shape) != expect:
            raise ValueError(f"expected columns of shape {expect} for an image of shape "
                             f"{self.shape}, got {tuple(col.shape)}")
        if self.to_matrix:
            col = xp.reshape(col, (n,) + oh_ow + (c, kh, kw))
            col = xp.permute_dims(col, (0, 3, 4, 5, 1, 2))
        return _col2im_array(col, h, w, self.s, self.p)

    def backward(self, gx: Variable) -> Variable:
        return im2col(gx, self.k, self.s, self.p, self.to_matrix)


def im2col(x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0,
           to_matrix: bool = True) -> Variable:
    """Image patches of ``x`` (N, C, H, W): (N*OH*OW, C*KH*KW) if ``to_matrix``, else
    (N, C, KH, KW, OH, OW)."""
    k = _pair(kernel_size, "kernel_size", "im2col", 1)
    return Im2col(k, _pair(stride, "stride", "im2col", 1), _pair(pad, "pad", "im2col", 0),
                  check_bool(to_matrix, "im2col", "to_matrix"))(x)


def col2im(col: Any, input_shape: tuple, kernel_size: Any, stride: Any = 1, pad: Any = 0,
           to_matrix: bool = True) -> Variable:
    """The adjoint of :func:`im2col`: patches summed back into an image of ``input_shape``."""
    k = _pair(kernel_size, "kernel_size", "col2im", 1)
    return Col2im(check_shape(input_shape, "col2im", "input_shape"), k,
                  _pair(stride, "stride", "col2im", 1), _pair(pad, "pad", "col2im", 0),
                  check_bool(to_matrix, "col2im", "to_matrix"))(col)


# ---------------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------------
def _bias_check(fname: str | None, b: tuple, channels: int) -> None:
    if b and tuple(b[0].shape) != (channels,):
        raise ValueError(f"{_at(fname)}bias must have shape ({channels},), got {tuple(b[0].shape)}")


class Conv2d(Function):
    """Convolution as im2col + one batched matrix product; backward: deconv2d and Conv2dGradW."""

    name = "conv2d"

    def __init__(self, s: tuple, p: tuple) -> None:
        self.s, self.p = s, p

    def forward(self, x: Any, W: Any, *b: Any) -> Any:
        _check_image(None, x)
        _check_image(None, W, "W")
        if x.shape[1] != W.shape[1]:
            raise ValueError(f"input has {x.shape[1]} channels but W expects "
                             f"{W.shape[1]}: x shape {tuple(x.shape)}, W shape {tuple(W.shape)} "
                             f"(W is (out_channels, in_channels, KH, KW))")
        _bias_check(None, b, W.shape[0])
        xp = xp_of(x)
        oc, c, kh, kw = W.shape
        n = x.shape[0]
        col = _im2col_array(x, (kh, kw), self.s, self.p, fname=None)
        oh, ow = col.shape[4:]
        col = xp.reshape(col, (n, c * kh * kw, oh * ow))
        y = xp.matmul(xp.reshape(W, (oc, c * kh * kw)), col)  # (N, OC, OH*OW): NCHW, no transpose
        if b:
            y = y + xp.reshape(b[0], (1, oc, 1))
        return xp.reshape(y, (n, oc, oh, ow))

    def backward(self, gy: Variable) -> tuple:
        # Keeps x and W only (its inputs); the weight gradient recomputes the patches. Keeping
        # the forward's im2col buffer instead would hold KH*KW times x per layer until backward
        # (13.8 MB for a 1.5 MB input): bench/conv_memory.py measures the trade-off.
        x, W = self.inputs[:2]
        gx = deconv2d(gy, W, stride=self.s, pad=self.p, outsize=x.shape[2:]) \
            if x.requires_grad else None
        gW = Conv2dGradW(W.shape[2:], self.s, self.p)(x, gy) if W.requires_grad else None
        if len(self.inputs) == 2:
            return gx, gW
        gb = sum(gy, axis=(0, 2, 3)) if self.inputs[2].requires_grad else None
        return gx, gW, gb


class Deconv2d(Function):
    """Transposed convolution: matrix product, then col2im; backward: conv2d and Conv2dGradW."""

    name = "deconv2d"

    def __init__(self, s: tuple, p: tuple, outsize: tuple | None) -> None:
        self.s, self.p, self.outsize = s, p, outsize

    def forward(self, x: Any, W: Any, *b: Any) -> Any:
        _check_image(None, x)
        _check_image(None, W, "W")
        if x.shape[1] != W.shape[0]:
            raise ValueError(f"input has {x.shape[1]} channels but W expects "
                             f"{W.shape[0]}: x shape {tuple(x.shape)}, W shape {tuple(W.shape)} "
                             f"(W is (in_channels, out_channels, KH, KW))")
        xp = xp_of(x)
        cin, cout, kh, kw = W.shape
        n, _, h, w = x.shape
        (sy, sx), (ph, pw) = self.s, self.p
        oh, ow = self.outsize or (get_deconv_outsize(h, kh, sy, ph),
                                  get_deconv_outsize(w, kw, sx, pw))
        if (get_conv_outsize(oh, kh, sy, ph), get_conv_outsize(ow, kw, sx, pw)) != (h, w):
            raise ValueError(f"output size {(oh, ow)} does not match input shape "
                             f"{tuple(x.shape)} with kernel {(kh, kw)}, stride {self.s}, pad "
                             f"{self.p}")
        _bias_check(None, b, cout)
        W2 = xp.matrix_transpose(xp.reshape(W, (cin, cout * kh * kw)))
        col = xp.matmul(W2, xp.reshape(x, (n, cin, h * w)))
        y = _col2im_array(xp.reshape(col, (n, cout, kh, kw, h, w)), oh, ow, self.s, self.p)
        if b:
            y = y + xp.reshape(b[0], (1, cout, 1, 1))
        return y

    def backward(self, gy: Variable) -> tuple:
        x, W = self.inputs[:2]
        gx = conv2d(gy, W, stride=self.s, pad=self.p) if x.requires_grad else None
        gW = Conv2dGradW(W.shape[2:], self.s, self.p)(gy, x) if W.requires_grad else None
        if len(self.inputs) == 2:
            return gx, gW
        gb = sum(gy, axis=(0, 2, 3)) if self.inputs[2].requires_grad else None
        return gx, gW, gb


class Conv2dGradW(Function):
    """The weight gradient of conv2d: correlate image ``x`` with output gradient ``gy``."""

    def __init__(self, k: tuple, s: tuple, p: tuple) -> None:
        self.k, self.s, self.p = tuple(k), s, p

    def forward(self, x: Any, gy: Any) -> Any:
        xp = xp_of(x)
        n, c = x.shape[:2]
        oc, oh, ow = gy.shape[1:]
        kh, kw = self.k
        # explicit sizes, not -1: an empty batch (n = 0) leaves -1 undetermined
        col = xp.reshape(_im2col_array(x, self.k, self.s, self.p), (n, c * kh * kw, oh * ow))
        g = xp.reshape(gy, (n, oc, oh * ow))
        # one matrix product per image against the transposed view, then a small sum over N
        gW = xp.sum(xp.matmul(g, xp.matrix_transpose(col)), axis=0)
        return xp.reshape(gW, (oc, c, kh, kw))

    def backward(self, ggW: Variable) -> tuple:
        x, gy = self.inputs
        gx = deconv2d(gy, ggW, stride=self.s, pad=self.p, outsize=x.shape[2:]) \
            if x.requires_grad else None
        ggy = conv2d(x, ggW, stride=self.s, pad=self.p) if gy.requires_grad else None
        return gx, ggy


def conv2d(x: Any, W: Any, b: Any = None, stride: Any = 1, pad: Any = 0) -> Variable:
    """2-D convolution (cross-correlation) of ``x`` (N, C, H, W) with filters ``W``
    (OC, C, KH, KW) and optional bias ``b`` (OC,)."""
    s, p = _pair(stride, "stride", "conv2d", 1), _pair(pad, "pad", "conv2d", 0)
    args = (x, W) if b is None else (x, W, b)
    return Conv2d(s, p)(*args)


def deconv2d(x: Any, W: Any, b: Any = None, stride: Any = 1, pad: Any = 0,
             outsize: Any = None) -> Variable:
    """Transposed 2-D convolution of ``x`` (N, C, H, W) with ``W`` (C, OC, KH, KW): the
    gradient of conv2d with respect to its input; ``outsize`` (OH, OW) picks among the sizes
    that a strided convolution maps to the same input size."""
    s, p = _pair(stride, "stride", "deconv2d", 1), _pair(pad, "pad", "deconv2d", 0)
    out = None if outsize is None else _pair(outsize, "outsize", "deconv2d", 1)
    args = (x, W) if b is None else (x, W, b)
    return Deconv2d(s, p, out)(*args)


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------
def _windows(x: Any, k: tuple, s: tuple, oh: int, ow: int) -> list:
    """The KH*KW strided views of ``x`` (already padded) at each kernel offset, (N, C, OH, OW)
    each: window element (i, j) of every output pixel, without copying."""
    (kh, kw), (sy, sx) = k, s
    hspan, wspan = sy * (oh - 1) + 1, sx * (ow - 1) + 1
    return [x[:, :, i:i + hspan:sy, j:j + wspan:sx] for i in range(kh) for j in range(kw)]


def _spread(parts: list, shape: tuple, k: tuple, s: tuple, p: tuple) -> Any:
    """Sum arrays (N, C, OH, OW), one per kernel offset, into an image of ``shape`` at the
    window positions they came from (``_windows``'s adjoint); padding is cut off."""
    xp, b = xp_of(parts[0]), backend_of(parts[0])
    n, c, h, w = shape
    oh, ow = parts[0].shape[2:]
    (kh, kw), (sy, sx), (ph, pw) = k, s, p
    hp, wp = max(h + 2 * ph, sy * (oh - 1) + kh), max(w + 2 * pw, sx * (ow - 1) + kw)
    img = xp.zeros((n, c, hp, wp), dtype=parts[0].dtype, device=parts[0].device)
    hspan, wspan = sy * (oh - 1) + 1, sx * (ow - 1) + 1
    for (i, j), part in zip(((i, j) for i in range(kh) for j in range(kw)), parts):
        key = (slice(None), slice(None), slice(i, i + hspan, sy), slice(j, j + wspan, sx))
        img = b.add_at(img, key, part)
    return img[:, :, ph:ph + h, pw:pw + w]


class MaxPooling(Function):
    """Window maxima. Keeps, besides x, one boolean mask per kernel offset marking the windows
    whose (first) maximum sits there: KH*KW bytes per output element."""

    name = "max_pooling"

    def __init__(self, k: tuple, s: tuple, p: tuple) -> None:
        self.k, self.s, self.p = k, s, p

    def forward(self, x: Any) -> Any:
        _check_image(None, x)
        oh, ow = _outsize(None, x.shape, self.k, self.s, self.p)
        # elementwise over the offsets' strided views: no im2col copy, no argmax over a
        # strided axis (both several times slower than these passes over the output)
        views = _windows(_pad(x, self.p[0], self.p[1], -math.inf), self.k, self.s, oh, ow)
        xp = xp_of(x)
        y = views[0]
        for v in views[1:]:
            y = xp.maximum(y, v)
        # ties: the first maximum in the window takes the gradient
        self.hits, taken = [], None
        for v in views:
            hit = v == y
            if taken is not None:
                hit = hit & ~taken
                taken = taken | hit
            else:
                taken = hit
            self.hits.append(hit)
        return y if len(views) > 1 else xp.asarray(y, copy=True)

    def backward(self, gy: Variable) -> Variable:
        return MaxPoolingGrad(self)(gy)


class MaxPoolingGrad(Function):
    """Route each output gradient to the input element that was the window's maximum."""

    def __init__(self, pool: MaxPooling) -> None:
        self.pool = pool

    def forward(self, gy: Any) -> Any:
        pool, b = self.pool, backend_of(gy)
        parts = [b.masked(gy, hit) for hit in pool.hits]
        return _spread(parts, pool.inputs[0].shape, pool.k, pool.s, pool.p)

    def backward(self, ggx: Variable) -> Variable:
        return MaxPoolingWithIndexes(self.pool)(ggx)


class MaxPoolingWithIndexes(Function):
    """Pick, in each window of ``x``, the element at the maximum found by a MaxPooling."""

    def __init__(self, pool: MaxPooling) -> None:
        self.pool = pool

    def forward(self, x: Any) -> Any:
        pool, b = self.pool, backend_of(x)
        oh, ow = pool.hits[0].shape[2:]
        views = _windows(_pad(x, pool.p[0], pool.p[1]), pool.k, pool.s, oh, ow)
        y = None
        for v, hit in zip(views, pool.hits):
            part = b.masked(v, hit)
            y = part if y is None else y + part
        return y

    def backward(self, gy: Variable) -> Variable:
        return MaxPoolingGrad(self.pool)(gy)


def max_pooling(x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> Variable:
    """Max over each ``kernel_size`` window of ``x`` (N, C, H, W); padding never wins. On ties
    the first maximum in the window gets the whole gradient."""
    k = _pair(kernel_size, "kernel_size", "max_pooling", 1)
    s, p = _pair(stride, "stride", "max_pooling", 1), _pair(pad, "pad", "max_pooling", 0)
    if p[0] >= k[0] or p[1] >= k[1]:
        raise ValueError(f"max_pooling: pad {p} must be smaller than kernel_size {k}")
    return MaxPooling(k, s, p)(x)


class AveragePooling(Function):
    """Window means; keeps only x's shape: its gradient spreads each output's evenly."""

    name = "average_pooling"

    def __init__(self, k: tuple, s: tuple, p: tuple) -> None:
        self.k, self.s, self.p = k, s, p

    def forward(self, x: Any) -> Any:
        _check_image(None, x)
        xp = xp_of(x)
        col = _im2col_array(x, self.k, self.s, self.p, fname=None)
        return xp.sum(col, axis=(2, 3)) / (self.k[0] * self.k[1])

    def backward(self, gy: Variable) -> Variable:
        return AveragePoolingGrad(self.k, self.s, self.p, self.inputs[0].shape)(gy)


class AveragePoolingGrad(Function):
    """The adjoint of average pooling: each output gradient spread over its window (col2im)."""

    def __init__(self, k: tuple, s: tuple, p: tuple, shape: tuple) -> None:
        self.k, self.s, self.p, self.shape = k, s, p, tuple(shape)

    def forward(self, gy: Any) -> Any:
        xp = xp_of(gy)
        n, c, oh, ow = gy.shape
        kh, kw = self.k
        g = xp.reshape(gy / (kh * kw), (n, c, 1, 1, oh, ow))
        return _col2im_array(xp.broadcast_to(g, (n, c, kh, kw, oh, ow)), self.shape[2],
                             self.shape[3], self.s, self.p)

    def backward(self, ggx: Variable) -> Variable:
        return AveragePooling(self.k, self.s, self.p)(ggx)  # linear: the adjoint's adjoint


def average_pooling(x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> Variable:
    """Mean over each ``kernel_size`` window of ``x`` (N, C, H, W); zero padding counts in the
    mean (Chainer's convention)."""
    k = _pair(kernel_size, "kernel_size", "average_pooling", 1)
    s, p = _pair(stride, "stride", "average_pooling", 1), _pair(pad, "pad", "average_pooling", 0)
    return AveragePooling(k, s, p)(x)


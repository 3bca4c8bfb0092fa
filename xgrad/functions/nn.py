"""Neural-network functions: losses, accuracy, dropout, normalization, embeddings.

Forwards are fused and numerically stable (shift by the maximum; cross entropy from
log-softmax, never the log of a softmax). Backward rules are written with Variables, one body
each; where a fused forward saved arrays its backward can reuse, the backward is a fused gradient
node (``SoftmaxCrossEntropyGrad``, ``StandardizeGrad``): its forward is the first-order formula on
those arrays, its own backward the second derivative written with Functions.
"""

from __future__ import annotations

from typing import Any

from xgrad._array import numel, rearray
from xgrad.backends import backend_of
from xgrad.core import Config, Function, Variable, as_variable
from xgrad.creation import get_rng
from xgrad.functions._util import (
    array_data,
    check_int,
    check_probability,
    check_real,
    const,
    host_array,
    logsumexp_parts,
    require_float,
    xp_of,
)
from xgrad.functions.activation import sigmoid, softmax
from xgrad.functions.math import pow
from xgrad.functions.reduce import mean, sum
from xgrad.functions.shape import get_item, reshape, sum_to

__all__ = [
    "accuracy", "batch_norm", "dropout", "embed_id", "layer_norm", "mean_squared_error",
    "sigmoid_cross_entropy", "softmax_cross_entropy",
]


def _labels(t: Any, like: Any, fname: str, arg: str = "targets") -> Any:
    """Integer labels ``t`` (Variable, array or nested lists) as an array next to ``like``."""
    t = host_array(t, like, fname, arg)
    if not xp_of(t).isdtype(t.dtype, "integral"):
        raise TypeError(f"{fname}: {arg} must be integer class labels, got dtype {t.dtype}")
    return t


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------
_GPU_TYPES: dict[type, bool] = {}  # array type -> its backend computes on a GPU


def _targets_read_on_host(t: Any) -> bool:
    """Whether softmax_cross_entropy checks its targets' range on the host, raising at once:
    on CPU backends (a few microseconds, nothing to wait for) and under ``detect_anomaly()``.
    On a GPU that read would wait for the device at every step, so there the check stays on the
    device: out-of-range targets make the loss and the gradient NaN."""
    gpu = _GPU_TYPES.get(type(t))
    if gpu is None:
        gpu = _GPU_TYPES[type(t)] = bool(backend_of(t).gpu)
    return not gpu or Config.detect_anomaly


def _check_targets(t: Any, bad: Any, c: int, ignore_label: int | None) -> None:
    """Raise a clear error naming the targets outside [0, c) (``bad`` marks them), reading
    the device once."""
    xp = xp_of(t)
    if bool(xp.any(bad)):
        b = backend_of(t)
        values = sorted({int(v) for v in b.to_host(t)[b.to_host(bad)]})
        shown = ", ".join(map(str, values[:10])) + (", ..." if len(values) > 10 else "")
        also = f" or ignore_label={ignore_label}" if ignore_label is not None else ""
        raise ValueError(f"targets must lie in [0, {c}) for {c} classes"
                         f"{also}; got {shown}")


class SoftmaxCrossEntropy(Function):
    """Fused log-softmax + negative log-likelihood, mean over the counted rows."""

    name = "softmax_cross_entropy"

    def __init__(self, ignore_label: int | None) -> None:
        self.ignore_label = ignore_label

    def forward(self, x: Any, t: Any) -> Any:
        require_float(None, x)
        if x.ndim != 2 or t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"expected scores (N, C) and targets (N,), "
                             f"got shapes {tuple(x.shape)} and {tuple(t.shape)}")
        xp = xp_of(x)
        n, c = x.shape
        valid = None if self.ignore_label is None else t != self.ignore_label
        bad = (t < 0) | (t >= c)
        if valid is not None:
            bad = bad & valid
        self.poison = poison = None
        if _targets_read_on_host(t):
            _check_targets(t, bad, c, self.ignore_label)
        else:  # no host read: NaN (in x's dtype) if any target is out of range, else 0
            nan = xp.full((), float("nan"), dtype=x.dtype, device=x.device)
            self.poison = poison = xp.where(xp.any(bad), nan, xp.zeros_like(nan))
            t = xp.where(bad, xp.zeros_like(t), t)  # a valid index for the selections below
        hit = t[:, None] == xp.arange(c, dtype=t.dtype, device=x.device)
        if valid is not None:
            hit = hit & valid[:, None]
            self.count = max(int(xp.sum(xp.astype(valid, xp.int32))), 1)
            self.valid = xp.astype(valid[:, None], x.dtype)
        else:
            self.count, self.valid = n, None
        self.onehot = xp.astype(hit, x.dtype)  # in x's dtype: float32 stays float32
        m, e, s = logsumexp_parts(x, (1,))
        self.p = e / s if poison is None else e / s + poison
        log_p = x - (m + xp.log(s))  # x - logsumexp(x)
        if poison is not None:
            log_p = log_p + poison
        # select the target's log-probability (flat positions row * C + t): a product with the
        # one-hot would turn a -inf logit elsewhere in the row (a mask) into -inf * 0 = NaN
        rows = xp.arange(n, dtype=t.dtype, device=x.device) * c
        if valid is None:
            return -xp.sum(xp.take(xp.reshape(log_p, (-1,)), rows + t)) / self.count
        picked = xp.take(xp.reshape(log_p, (-1,)), rows + t * xp.astype(valid, t.dtype))
        return -xp.sum(xp.where(valid, picked, 0.0)) / self.count

    def backward(self, gy: Variable) -> tuple:
        x = self.inputs[0]
        if not x.requires_grad:
            return None, None
        return SoftmaxCrossEntropyGrad(self.p, self.onehot, self.valid, self.count,
                                       self.poison)(x, gy), None


class SoftmaxCrossEntropyGrad(Function):
    """(softmax(x) - onehot) * valid * gy / count, softmax cross entropy's backward fused: the
    forward reuses the probabilities the loss computed; the backward is the second derivative."""

    def __init__(self, p: Any, onehot: Any, valid: Any, count: int, poison: Any) -> None:
        self.p, self.onehot, self.valid, self.count = p, onehot, valid, count
        self.poison = poison  # NaN where a target was out of range (unchecked on the host)

    def forward(self, x: Any, gy: Any) -> Any:
        p = self.p if self.valid is None else self.p * self.valid
        return (p - self.onehot) * (gy / self.count)

    def backward(self, g: Variable) -> tuple:
        x, gy = self.inputs
        p = softmax(x, axis=1)  # as a function of x: the next derivative goes through it
        if self.poison is not None:
            p = p + const(self.poison)
        if self.valid is not None:
            g = g * const(self.valid)
        gx = ggy = None
        if x.requires_grad:
            h = g * (gy / self.count)
            ph = p * h  # softmax's backward: p * (h - sum(p * h))
            gx = ph - p * sum(ph, axis=1, keepdims=True)
        if gy.requires_grad:
            ggy = sum(g * (p - const(self.onehot))) / self.count
        return gx, ggy


def softmax_cross_entropy(x: Any, t: Any, ignore_label: int | None = None) -> Variable:
    """Mean cross entropy of scores ``x`` (N, C) against integer labels ``t`` (N,), fused with
    log-softmax; rows whose label is ``ignore_label`` count neither in the sum nor the mean.
    A logit of -inf (a mask) other than the target's is allowed: it has probability 0.
    A label outside [0, C) raises ValueError at once on CPU backends and under
    ``detect_anomaly()``; on a GPU, where reading the labels would wait for the device, it makes
    the loss and its gradient NaN instead (run the step under ``detect_anomaly()`` for the
    error)."""
    if ignore_label is not None:
        ignore_label = check_int(ignore_label, "softmax_cross_entropy", "ignore_label")
    return SoftmaxCrossEntropy(ignore_label)(x, _labels(t, array_data(x, "softmax_cross_entropy"),
                                                   "softmax_cross_entropy"))


class SigmoidCrossEntropy(Function):
    """Binary cross entropy from logits, mean over all elements."""

    name = "sigmoid_cross_entropy"

    def forward(self, x: Any, t: Any) -> Any:
        require_float(None, x)
        if tuple(t.shape) != tuple(x.shape):
            raise ValueError(f"scores and targets must have the same "
                             f"shape, got {tuple(x.shape)} and {tuple(t.shape)}")
        xp = xp_of(x)
        # max(x, 0) - x t + log(1 + exp(-|x|)): no overflow for any x
        ax = xp.abs(x)
        loss = xp.maximum(x, 0.0) - x * t + xp.log1p(xp.exp(-ax))
        if bool(xp.any(xp.isinf(ax))):
            # a masked logit (x = -inf, t = 0, or x = inf, t = 1) costs 0, not inf * 0 = NaN:
            # max(x, 0) - x t is |x| (1 - t) for x >= 0 and |x| t below, its factor 0 selected
            a = xp.where(x >= 0, 1 - t, t)
            loss = xp.where(a == 0, 0.0, ax) * a + xp.log1p(xp.exp(-ax))
        return xp.sum(loss) / numel(x)

    def backward(self, gy: Variable) -> tuple:
        x, t = self.inputs
        g = gy / numel(x)
        gx = (sigmoid(x) - t) * g if x.requires_grad else None
        gt = -(x * g) if t.requires_grad else None
        return gx, gt


def sigmoid_cross_entropy(x: Any, t: Any) -> Variable:
    """Mean over all elements of the binary cross entropy of logits ``x`` against labels ``t``
    (0/1, integer or float, same shape), computed stably from the logits; an infinite logit
    on its label's side (-inf with label 0, inf with label 1) costs 0."""
    xd = array_data(x, "sigmoid_cross_entropy")
    if not (isinstance(t, Variable) and t.requires_grad):
        td = t.data if isinstance(t, Variable) else t
        td = host_array(td, xd, "sigmoid_cross_entropy", "targets")
        t = td if td.dtype == xd.dtype else xp_of(td).astype(td, xd.dtype)
    return SigmoidCrossEntropy()(x, t)


class MeanSquaredError(Function):
    """mean((x0 - x1) ** 2) in one node."""

    name = "mean_squared_error"

    def forward(self, x0: Any, x1: Any) -> Any:
        if tuple(x0.shape) != tuple(x1.shape):
            raise ValueError(f"shapes {tuple(x0.shape)} and "
                             f"{tuple(x1.shape)} differ (broadcasting here is usually a bug)")
        require_float(None, x0)
        d = x0 - x1
        return xp_of(d).sum(d * d) / numel(d)

    def backward(self, gy: Variable) -> tuple:
        x0, x1 = self.inputs
        g = (x0 - x1) * (gy * (2.0 / numel(x0)))
        return (g if x0.requires_grad else None), (-g if x1.requires_grad else None)


def mean_squared_error(x0: Any, x1: Any) -> Variable:
    """Mean over all elements of (x0 - x1) ** 2 (shapes must match)."""
    return MeanSquaredError()(x0, x1)


def accuracy(y: Any, t: Any) -> Variable:
    """Fraction of rows of scores ``y`` (N, C) whose argmax equals label ``t``; a constant
    Variable (no gradient) in ``y``'s dtype."""
    yd = array_data(y, "accuracy")
    if yd.ndim != 2:
        raise ValueError(f"accuracy: expected scores y of shape (N, C), got shape "
                         f"{tuple(yd.shape)}")
    require_float("accuracy", yd)
    td = _labels(t, yd, "accuracy")
    xp = xp_of(yd)
    pred = xp.argmax(yd, axis=1)
    if numel(pred) != numel(td):
        raise ValueError(f"accuracy: {numel(pred)} predictions from scores {tuple(yd.shape)} but "
                         f"{numel(td)} targets {tuple(td.shape)}")
    hit = xp.reshape(pred, td.shape) == td
    return as_variable(rearray(xp.mean(xp.astype(hit, yd.dtype)), yd))


# ---------------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------------
class Dropout(Function):
    """Multiply by a fixed, pre-scaled 0/1 mask."""

    def __init__(self, mask: Any) -> None:
        self.mask = mask  # kept elements hold 1 / (1 - ratio), dropped ones 0

    def forward(self, x: Any) -> Any:
        return x * self.mask

    def backward(self, gy: Variable) -> Variable:
        return gy * const(self.mask)


def dropout(x: Any, dropout_ratio: float = 0.5) -> Variable:
    """Zero each element with probability ``dropout_ratio`` and scale the rest by
    1 / (1 - ratio) in training; the identity under ``xgrad.test_mode()``. The mask comes from
    the backend's generator (``xgrad.get_rng``, reseeded by ``xgrad.manual_seed``)."""
    dropout_ratio = check_probability(dropout_ratio, "dropout", "dropout_ratio")
    xd = array_data(x, "dropout")
    x = as_variable(x)
    if not Config.train or dropout_ratio == 0.0:
        return x
    require_float("dropout", xd)
    xp = xp_of(xd)
    u = get_rng(backend=backend_of(xd), device=xd.device).uniform(tuple(xd.shape), dtype=xd.dtype)
    mask = xp.astype(u >= dropout_ratio, xd.dtype) * (1.0 / (1.0 - dropout_ratio))
    return Dropout(mask)(x)


# ---------------------------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------------------------
class Normalize(Function):
    """gamma * (x - mean) / sqrt(var + eps) + beta with statistics over ``axes``; gamma and
    beta broadcast against x. The engine of batch_norm (train) and layer_norm."""

    def __init__(self, axes: tuple, eps: float) -> None:
        self.axes, self.eps = axes, eps

    def forward(self, x: Any, gamma: Any, beta: Any) -> Any:
        xp = xp_of(x)
        self.mean = xp.mean(x, axis=self.axes, keepdims=True)
        xc = x - self.mean
        self.var = xp.mean(xc * xc, axis=self.axes, keepdims=True)
        self.inv_std = 1.0 / xp.sqrt(self.var + self.eps)
        self.xhat = xc * self.inv_std
        return gamma * self.xhat + beta

    def backward(self, gy: Variable) -> tuple:
        x, gamma, beta = self.inputs
        cache = (self.axes, self.eps, self.xhat, self.inv_std)
        gx = StandardizeGrad(*cache)(x, gy * gamma) if x.requires_grad else None
        ggamma = sum_to(gy * Standardize(*cache)(x), gamma.shape) if gamma.requires_grad else None
        gbeta = sum_to(gy, beta.shape) if beta.requires_grad else None
        return gx, ggamma, gbeta


class Standardize(Function):
    """xhat = (x - mean) / sqrt(var + eps) over ``axes``: the value Normalize's forward already
    computed (``xhat``, kept with ``inv_std``), as a function of x for Normalize's backward."""

    def __init__(self, axes: tuple, eps: float, xhat: Any, inv_std: Any) -> None:
        self.axes, self.eps, self.xhat, self.inv_std = axes, eps, xhat, inv_std

    def forward(self, x: Any) -> Any:
        return self.xhat

    def backward(self, gy: Variable) -> Variable:
        return StandardizeGrad(self.axes, self.eps, self.xhat, self.inv_std)(self.inputs[0], gy)


class StandardizeGrad(Function):
    """inv_std * P(g), standardization's backward fused, with P(g) = g - mean(g) - xhat *
    mean(g * xhat) over ``axes`` (g with its mean and its projection on xhat removed)."""

    def __init__(self, axes: tuple, eps: float, xhat: Any, inv_std: Any) -> None:
        self.axes, self.eps, self.xhat, self.inv_std = axes, eps, xhat, inv_std

    def forward(self, x: Any, g: Any) -> Any:
        xp, axes, xhat = xp_of(g), self.axes, self.xhat
        p = g - xp.mean(g, axis=axes, keepdims=True) - xhat * xp.mean(g * xhat, axis=axes,
                                                                         keepdims=True)
        return self.inv_std * p

    def backward(self, a: Variable) -> tuple:
        x, g = self.inputs
        axes = self.axes
        gg = StandardizeGrad(*self._cache())(x, a) if g.requires_grad else None  # P is symmetric
        if not x.requires_grad:
            return None, gg
        # d/dx <a, r P(g)> with r = inv_std and xhat rebuilt as functions of x:
        # -r^2 (xhat mean(a P(g)) + mean(g xhat) P(a) + mean(a xhat) P(g))
        xc = x - mean(x, axis=axes, keepdims=True)
        r = pow(mean(xc * xc, axis=axes, keepdims=True) + self.eps, -0.5)
        xhat = xc * r

        def proj(v: Variable) -> Variable:
            return v - mean(v, axis=axes, keepdims=True) - xhat * mean(v * xhat, axis=axes,
                                                                        keepdims=True)

        pa, pg = proj(a), proj(g)
        gx = -(r * r) * (xhat * mean(a * pg, axis=axes, keepdims=True)
                         + mean(g * xhat, axis=axes, keepdims=True) * pa
                         + mean(a * xhat, axis=axes, keepdims=True) * pg)
        return gx, gg

    def _cache(self) -> tuple:
        return self.axes, self.eps, self.xhat, self.inv_std


def batch_norm(x: Any, gamma: Any, beta: Any, running_mean: Any = None, running_var: Any = None,
               decay: float = 0.9, eps: float = 2e-5) -> Variable:
    """Batch normalization of ``x`` (N, C) or (N, C, H, W, ...) per channel C.

    Training (``xgrad.Config.train``): normalize with the batch's mean and variance and, when
    ``running_mean`` / ``running_var`` are given as Variables, replace their ``.data`` with
    ``decay * old + (1 - decay) * batch statistic`` (the variance unbiased). Test mode
    (``xgrad.test_mode()``): normalize with ``running_mean`` / ``running_var`` (Variables or
    arrays of shape (C,)). ``gamma`` and ``beta`` have shape (C,)."""
    xd = array_data(x, "batch_norm")
    decay = check_real(decay, "batch_norm", "decay", minimum=0.0)
    eps = check_real(eps, "batch_norm", "eps", minimum=0.0)
    x = as_variable(x)
    if xd.ndim < 2:
        raise ValueError(f"batch_norm: x must be (N, C, ...), got shape {tuple(xd.shape)}")
    c = xd.shape[1]
    for name, v in (("x", x), ("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if v is None and name.startswith("running"):
            continue
        vd = array_data(v, f"batch_norm: {name}")
        # an integer x or parameter would be promoted (to float64 on NumPy) without a word
        require_float("batch_norm", vd)
        if name != "x" and tuple(vd.shape) != (c,):
            raise ValueError(f"batch_norm: {name} must have shape ({c},) for x of shape "
                             f"{tuple(xd.shape)}, got {tuple(vd.shape)}")
    pshape = (1, c) + (1,) * (xd.ndim - 2)
    g, b = reshape(gamma, pshape), reshape(beta, pshape)
    if not Config.train:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: test mode needs running_mean and running_var")
        xp = xp_of(xd)
        rm = xp.reshape(array_data(running_mean, "batch_norm"), pshape)
        inv_std = 1.0 / xp.sqrt(xp.reshape(array_data(running_var, "batch_norm"), pshape) + eps)
        scale = g * inv_std
        return x * scale + (b - scale * rm)
    for name, v in (("running_mean", running_mean), ("running_var", running_var)):
        if v is not None and not isinstance(v, Variable):
            raise TypeError(f"batch_norm: {name} must be a Variable (its .data is replaced by "
                            f"the updated statistic) or None, got {type(v).__name__}")
    m = numel(xd) // c if c else 0  # samples per channel
    if m == 1:  # the batch variance would be 0: zeros out, running_var dragged to 0
        raise ValueError(f"batch_norm: Expected more than 1 value per channel when training, "
                         f"got input of shape {tuple(xd.shape)} ({c} channels, 1 value each); "
                         f"use a larger batch or xgrad.test_mode()")
    f = Normalize((0,) + tuple(range(2, xd.ndim)), eps)
    y = f(x, g, b)
    xp = xp_of(xd)
    if m == 0:  # an empty batch has no statistics: the running averages stay as they are
        return y
    if running_mean is not None:
        bm = xp.reshape(f.mean, (c,))
        running_mean.data = running_mean.data * decay + bm * (1.0 - decay)
    if running_var is not None:
        bv = xp.reshape(f.var, (c,)) * (m / max(m - 1, 1))
        running_var.data = running_var.data * decay + bv * (1.0 - decay)
    return y


def layer_norm(x: Any, gamma: Any, beta: Any, eps: float = 1e-5) -> Variable:
    """Normalize ``x`` over its last axis, then scale by ``gamma`` and shift by ``beta`` (both of
    the last axis' length)."""
    xd = array_data(x, "layer_norm")
    eps = check_real(eps, "layer_norm", "eps", minimum=0.0)
    d = xd.shape[-1] if xd.ndim else None
    require_float("layer_norm", xd)
    for name, v in (("gamma", gamma), ("beta", beta)):
        vd = array_data(v, f"layer_norm: {name}")
        require_float("layer_norm", vd)
        if d is None or tuple(vd.shape) != (d,):
            raise ValueError(f"layer_norm: {name} must have shape ({d},) for x of shape "
                             f"{tuple(xd.shape)}, got {tuple(vd.shape)}")
    return Normalize((xd.ndim - 1,), eps)(x, gamma, beta)


# ---------------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------------
def embed_id(x: Any, W: Any) -> Variable:
    """Rows of ``W`` (V, D) picked by integer ids ``x`` (any shape): shape x.shape + (D,). The
    gradient scatter-adds into W, so repeated ids add up."""
    Wd = array_data(W, "embed_id")
    if Wd.ndim != 2:
        raise ValueError(f"embed_id: W must be 2-D (vocabulary, dim), got {tuple(Wd.shape)}")
    ids = _labels(x, Wd, "embed_id", "x")
    xp = xp_of(ids)
    v = Wd.shape[0]
    if bool(xp.any((ids < 0) | (ids >= v))):
        host = backend_of(ids).to_host(ids)
        bad = sorted({int(i) for i in host[(host < 0) | (host >= v)]})[:10]
        raise ValueError(f"embed_id: ids must lie in [0, {v}) for W of shape "
                         f"{tuple(Wd.shape)}; got {bad}")
    return get_item(W, (ids, ...))

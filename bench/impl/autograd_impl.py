"""HIPS autograd (NumPy only): functional ``grad`` of a loss; it needs a scalar output, so the
chains end in a sum (one extra op in 1,000), and convolution is im2col by strided slices."""

from __future__ import annotations

from typing import Any

from bench.impl import BaseImpl, Step


class Impl(BaseImpl):
    """autograd on NumPy; it has no GPU backend."""

    name = "autograd"
    gpu = False

    def __init__(self, backend: str) -> None:
        super().__init__(backend)
        import autograd
        import autograd.numpy as anp
        from autograd.scipy.special import logsumexp

        self.ag, self.anp, self.logsumexp = autograd, anp, logsumexp

    def version(self) -> str:
        from importlib.metadata import version

        return version("autograd")

    def _sce(self, y: Any, t: Any) -> Any:
        anp = self.anp
        logp = y - self.logsumexp(y, axis=1, keepdims=True)
        return -anp.mean(logp[anp.arange(y.shape[0]), t])

    def _sigmoid(self, h: Any) -> Any:
        return self.anp.tanh(h * 0.5) * 0.5 + 0.5

    def chain(self, x: Any, w: Any, n: int) -> Step:
        anp = self.anp
        sin, tanh, exp = anp.sin, anp.tanh, anp.exp

        def f(x: Any, w: Any) -> Any:
            y = x
            for _ in range(n // 4):
                y = sin(y)
                y = tanh(y)
                y = exp(y)
                y = y * w
            return anp.sum(y)

        g = self.ag.grad(f, argnum=(0, 1))
        return lambda: g(x, w)

    def mlp(self, x: Any, t: Any, params: list, lr: float) -> Step:
        anp = self.anp
        nl = len(params) // 2

        def loss(ps: list) -> Any:
            h = x
            for i in range(nl):
                h = anp.dot(h, ps[2 * i]) + ps[2 * i + 1]
                if i < nl - 1:
                    h = self._sigmoid(h)
            return self._sce(h, t)

        vg = self.ag.value_and_grad(loss)

        def step() -> Any:
            value, gs = vg(params)
            for p, g in zip(params, gs):
                p -= lr * g
            return value

        return step

    def matmul_tanh(self, x: Any, ws: list) -> Step:
        anp = self.anp

        def loss(ws: list) -> Any:
            h = x
            for w in ws:
                h = anp.tanh(anp.dot(h, w))
            return anp.sum(h)

        g = self.ag.grad(loss)
        return lambda: g(ws)[0]

    def tanh_chain(self, x: Any, layers: int) -> Step:
        anp = self.anp

        def loss(x: Any) -> Any:
            y = x
            for _ in range(layers):
                y = anp.tanh(y)
            return anp.sum(y)

        g = self.ag.grad(loss)
        return lambda: g(x)

    def _conv(self, x: Any, W: Any, b: Any) -> Any:
        """3x3 convolution, stride 1, pad 1: im2col by strided slices, one batched matmul."""
        anp = self.anp
        n, c, h, w = x.shape
        oc = W.shape[0]
        xpad = anp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="constant")
        col = anp.stack([xpad[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)],
                        axis=2)
        col = anp.reshape(col, (n, c * 9, h * w))
        y = anp.matmul(anp.reshape(W, (oc, c * 9)), col) + anp.reshape(b, (1, oc, 1))
        return anp.reshape(y, (n, oc, h, w))

    def cnn(self, x: Any, t: Any, params: list, lr: float) -> Step:
        anp = self.anp

        def loss(ps: list) -> Any:
            W1, b1, W2, b2 = ps
            h = anp.maximum(self._conv(x, W1, b1), 0.0)
            n, c, hh, ww = h.shape
            h = anp.max(anp.reshape(h, (n, c, hh // 2, 2, ww // 2, 2)), axis=(3, 5))
            y = anp.dot(anp.reshape(h, (n, -1)), W2) + b2
            return self._sce(y, t)

        vg = self.ag.value_and_grad(loss)

        def step() -> Any:
            value, gs = vg(params)
            for p, g in zip(params, gs):
                p -= lr * g
            return value

        return step

    def conv2d(self, x: Any, W: Any, b: Any) -> Step:
        anp = self.anp
        g = self.ag.grad(lambda x, W, b: anp.sum(self._conv(x, W, b)), argnum=(0, 1, 2))
        return lambda: g(x, W, b)

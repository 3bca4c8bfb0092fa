"""xgrad: the workloads as a user writes them (``import xgrad.functions as F``), with the SGD
update done on the raw arrays, as the floor and the peers do it."""

from __future__ import annotations

from typing import Any

from bench.impl import BaseImpl, Step


class Impl(BaseImpl):
    """xgrad on NumPy, or on CuPy for the GPU."""

    name = "xgrad"

    def __init__(self, backend: str) -> None:
        super().__init__(backend)
        import xgrad
        import xgrad.functions as F

        self.xgrad, self.F = xgrad, F

    def version(self) -> str:
        v = self.xgrad.__version__
        return f"{v} at {self.ref}" if self.ref else v

    def fn(self, name: str) -> Any:
        """``xgrad.functions.<name>``."""
        return getattr(self.F, name)

    def _params(self, params: list) -> list:
        return [self.xgrad.Parameter(self.asarray(p)) for p in params]

    @staticmethod
    def _sgd(ps: list, lr: float) -> None:
        for p in ps:
            p.data -= lr * p.grad.data
            p.cleargrad()

    # --- A, B ---
    def chain(self, x: Any, w: Any, n: int) -> Step:
        sin, tanh, exp = self.fn("sin"), self.fn("tanh"), self.fn("exp")
        x = self.xgrad.Variable(self.asarray(x))
        w = self.xgrad.Variable(self.asarray(w))

        def step() -> tuple:
            x.cleargrad()
            w.cleargrad()
            y = x
            for _ in range(n // 4):
                y = sin(y)
                y = tanh(y)
                y = exp(y)
                y = y * w
            y.backward()
            return x.grad.data, w.grad.data

        return step

    # --- C ---
    def mlp(self, x: Any, t: Any, params: list, lr: float) -> Step:
        linear, sigmoid = self.fn("linear"), self.fn("sigmoid")
        sce = self.fn("softmax_cross_entropy")
        x, t = self.asarray(x), self.asarray(t)
        ps = self._params(params)
        nl = len(ps) // 2

        def step() -> Any:
            h = x
            for i in range(nl):
                h = linear(h, ps[2 * i], ps[2 * i + 1])
                if i < nl - 1:
                    h = sigmoid(h)
            loss = sce(h, t)
            loss.backward()
            self._sgd(ps, lr)
            return loss.data

        return step

    # --- D ---
    def matmul_tanh(self, x: Any, ws: list) -> Step:
        matmul, tanh, fsum = self.fn("matmul"), self.fn("tanh"), self.fn("sum")
        x = self.asarray(x)
        ws = self._params(ws)

        def step() -> Any:
            h = x
            for w in ws:
                h = tanh(matmul(h, w))
            fsum(h).backward()
            g = ws[0].grad.data
            for w in ws:
                w.cleargrad()
            return g

        return step

    # --- E ---
    def tanh_chain(self, x: Any, layers: int) -> Step:
        tanh, fsum = self.fn("tanh"), self.fn("sum")
        x = self.xgrad.Variable(self.asarray(x))

        def step() -> Any:
            x.cleargrad()
            y = x
            for _ in range(layers):
                y = tanh(y)
            fsum(y).backward()
            return x.grad.data

        return step

    # --- F ---
    def cnn(self, x: Any, t: Any, params: list, lr: float) -> Step:
        conv2d, relu, pool = self.fn("conv2d"), self.fn("relu"), self.fn("max_pooling")
        reshape, linear = self.fn("reshape"), self.fn("linear")
        sce = self.fn("softmax_cross_entropy")
        x, t = self.asarray(x), self.asarray(t)
        ps = self._params(params)
        W1, b1, W2, b2 = ps

        def step() -> Any:
            h = pool(relu(conv2d(x, W1, b1, 1, 1)), 2, 2)
            y = linear(reshape(h, (h.shape[0], -1)), W2, b2)
            loss = sce(y, t)
            loss.backward()
            self._sgd(ps, lr)
            return loss.data

        return step

    def conv2d(self, x: Any, W: Any, b: Any) -> Step:
        conv2d = self.fn("conv2d")
        x, W, b = (self.xgrad.Variable(self.asarray(a)) for a in (x, W, b))

        def step() -> tuple:
            for v in (x, W, b):
                v.cleargrad()
            conv2d(x, W, b, 1, 1).backward()
            return x.grad.data, W.grad.data, b.grad.data

        return step

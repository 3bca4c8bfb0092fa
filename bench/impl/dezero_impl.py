"""DeZero 0.0.13 (PyPI), written as its book does: ``dezero.functions`` and Variables.

DeZero 0.0.13 uses ``np.int`` and friends, removed in NumPy 2: they are put back here, in the
benchmark's worker process only, before DeZero is imported.
"""

from __future__ import annotations

import warnings
from typing import Any

from bench.impl import BaseImpl, Step

_REMOVED_ALIASES = {"int": int, "float": float, "bool": bool, "complex": complex,
                    "object": object, "str": str}


def _patch_numpy() -> None:
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, value in _REMOVED_ALIASES.items():
            if name not in np.__dict__:
                setattr(np, name, value)


class Impl(BaseImpl):
    """DeZero on NumPy, or on CuPy through its own ``dezero.cuda``."""

    name = "dezero"

    def __init__(self, backend: str) -> None:
        super().__init__(backend)
        _patch_numpy()
        import dezero
        import dezero.functions as F

        self.dz, self.F = dezero, F

    def version(self) -> str:
        return self.dz.__version__

    def _params(self, params: list) -> list:
        return [self.dz.Parameter(self.asarray(p)) for p in params]

    @staticmethod
    def _sgd(ps: list, lr: float) -> None:
        for p in ps:
            p.data -= lr * p.grad.data
            p.cleargrad()

    def chain(self, x: Any, w: Any, n: int) -> Step:
        F = self.F
        sin, tanh, exp = F.sin, F.tanh, F.exp
        x, w = self.dz.Variable(self.asarray(x)), self.dz.Variable(self.asarray(w))

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

    def mlp(self, x: Any, t: Any, params: list, lr: float) -> Step:
        F = self.F
        x, t = self.asarray(x), self.asarray(t)
        ps = self._params(params)
        nl = len(ps) // 2

        def step() -> Any:
            h = x
            for i in range(nl):
                h = F.linear(h, ps[2 * i], ps[2 * i + 1])
                if i < nl - 1:
                    h = F.sigmoid(h)
            loss = F.softmax_cross_entropy(h, t)
            loss.backward()
            self._sgd(ps, lr)
            return loss.data

        return step

    def matmul_tanh(self, x: Any, ws: list) -> Step:
        F = self.F
        x = self.asarray(x)
        ws = self._params(ws)

        def step() -> Any:
            h = x
            for w in ws:
                h = F.tanh(F.matmul(h, w))
            F.sum(h).backward()
            g = ws[0].grad.data
            for w in ws:
                w.cleargrad()
            return g

        return step

    def tanh_chain(self, x: Any, layers: int) -> Step:
        F = self.F
        x = self.dz.Variable(self.asarray(x))

        def step() -> Any:
            x.cleargrad()
            y = x
            for _ in range(layers):
                y = F.tanh(y)
            F.sum(y).backward()
            return x.grad.data

        return step

    def cnn(self, x: Any, t: Any, params: list, lr: float) -> Step:
        F = self.F
        x, t = self.asarray(x), self.asarray(t)
        ps = self._params(params)
        W1, b1, W2, b2 = ps

        def step() -> Any:
            h = F.pooling(F.relu(F.conv2d(x, W1, b1, 1, 1)), 2, 2)
            y = F.linear(F.reshape(h, (h.shape[0], -1)), W2, b2)
            loss = F.softmax_cross_entropy(y, t)
            loss.backward()
            self._sgd(ps, lr)
            return loss.data

        return step

    def conv2d(self, x: Any, W: Any, b: Any) -> Step:
        F = self.F
        x, W, b = (self.dz.Variable(self.asarray(a)) for a in (x, W, b))

        def step() -> tuple:
            for v in (x, W, b):
                v.cleargrad()
            F.conv2d(x, W, b, 1, 1).backward()
            return x.grad.data, W.grad.data, b.grad.data

        return step

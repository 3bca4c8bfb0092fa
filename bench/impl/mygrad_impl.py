"""MyGrad (NumPy only), with its defaults (memory guarding on)."""

from __future__ import annotations

from typing import Any

from bench.impl import BaseImpl, Step


class Impl(BaseImpl):
    """MyGrad on NumPy; it has no GPU backend."""

    name = "mygrad"
    gpu = False

    def __init__(self, backend: str) -> None:
        super().__init__(backend)
        import mygrad
        import mygrad.nnet as nnet

        self.mg, self.nnet = mygrad, nnet

    def version(self) -> str:
        return self.mg.__version__

    def _params(self, params: list) -> list:
        return [self.mg.Tensor(p) for p in params]

    @staticmethod
    def _sgd(ps: list, lr: float) -> None:
        for p in ps:
            d = p.data
            d -= lr * p.grad
            p.null_grad()

    def chain(self, x: Any, w: Any, n: int) -> Step:
        mg = self.mg
        sin, tanh, exp = mg.sin, mg.tanh, mg.exp
        x, w = self._params([x, w])

        def step() -> tuple:
            y = x
            for _ in range(n // 4):
                y = sin(y)
                y = tanh(y)
                y = exp(y)
                y = y * w
            y.backward()
            return x.grad, w.grad

        return step

    def mlp(self, x: Any, t: Any, params: list, lr: float) -> Step:
        mg, nnet = self.mg, self.nnet
        ps = self._params(params)
        nl = len(ps) // 2

        def step() -> Any:
            h = x
            for i in range(nl):
                h = mg.matmul(h, ps[2 * i]) + ps[2 * i + 1]
                if i < nl - 1:
                    h = nnet.sigmoid(h)
            loss = nnet.softmax_crossentropy(h, t)
            loss.backward()
            self._sgd(ps, lr)
            return loss.data

        return step

    def matmul_tanh(self, x: Any, ws: list) -> Step:
        mg = self.mg
        ws = self._params(ws)

        def step() -> Any:
            h = x
            for w in ws:
                h = mg.tanh(mg.matmul(h, w))
            h.sum().backward()
            return ws[0].grad

        return step

    def tanh_chain(self, x: Any, layers: int) -> Step:
        mg = self.mg
        (x,) = self._params([x])

        def step() -> Any:
            y = x
            for _ in range(layers):
                y = mg.tanh(y)
            y.sum().backward()
            return x.grad

        return step

    def cnn(self, x: Any, t: Any, params: list, lr: float) -> Step:
        nnet = self.nnet
        ps = self._params(params)
        W1, b1, W2, b2 = ps

        def step() -> Any:
            h = nnet.conv_nd(x, W1, stride=1, padding=1) + b1.reshape(1, -1, 1, 1)
            h = nnet.max_pool(nnet.relu(h), (2, 2), 2)
            y = self.mg.matmul(h.reshape(h.shape[0], -1), W2) + b2
            loss = nnet.softmax_crossentropy(y, t)
            loss.backward()
            self._sgd(ps, lr)
            return loss.data

        return step

    def conv2d(self, x: Any, W: Any, b: Any) -> Step:
        nnet = self.nnet
        ps = self._params([x, W, b])

        def step() -> tuple:
            y = nnet.conv_nd(ps[0], ps[1], stride=1, padding=1) + ps[2].reshape(1, -1, 1, 1)
            y.backward()
            return tuple(p.grad for p in ps)

        return step

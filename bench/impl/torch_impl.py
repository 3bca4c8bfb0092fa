"""PyTorch eager mode, with the same weight layout as the others (W is (in, out))."""

from __future__ import annotations

import os
from typing import Any

from bench.impl import BaseImpl, Step, Unsupported


class Impl(BaseImpl):
    """PyTorch on the CPU, or on CUDA for the GPU backend."""

    name = "torch"

    def __init__(self, backend: str) -> None:
        import torch

        self.torch = torch
        self.backend = backend
        self.on_gpu = backend == "cupy"
        if self.on_gpu and not torch.cuda.is_available():
            raise Unsupported("this torch build sees no CUDA device")
        self.device = torch.device("cuda" if self.on_gpu else "cpu")
        threads = int(os.environ.get("BENCH_THREADS", "1"))
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        self._gpu_base = 0

    def version(self) -> str:
        return self.torch.__version__

    def asarray(self, a: Any) -> Any:
        return self.torch.tensor(a, device=self.device)

    def sync(self) -> None:
        if self.on_gpu:
            self.torch.cuda.synchronize()

    def gpu_mem_reset(self) -> None:
        cuda = self.torch.cuda
        cuda.synchronize()
        cuda.empty_cache()
        cuda.reset_peak_memory_stats()
        self._gpu_base = cuda.memory_reserved()

    def gpu_mem_peak(self) -> int:
        cuda = self.torch.cuda
        cuda.synchronize()
        return cuda.max_memory_reserved() - self._gpu_base

    def _params(self, params: list) -> list:
        return [self.asarray(p).requires_grad_() for p in params]

    def _sgd(self, ps: list, lr: float) -> None:
        with self.torch.no_grad():
            for p in ps:
                p -= lr * p.grad
                p.grad = None

    def chain(self, x: Any, w: Any, n: int) -> Step:
        torch = self.torch
        sin, tanh, exp = torch.sin, torch.tanh, torch.exp
        x, w = self._params([x, w])

        def step() -> tuple:
            x.grad = w.grad = None
            y = x
            for _ in range(n // 4):
                y = sin(y)
                y = tanh(y)
                y = exp(y)
                y = y * w
            y.backward(torch.ones_like(y))
            return x.grad, w.grad

        return step

    def mlp(self, x: Any, t: Any, params: list, lr: float) -> Step:
        torch = self.torch
        cross_entropy = torch.nn.functional.cross_entropy
        x, t = self.asarray(x), self.asarray(t)
        ps = self._params(params)
        nl = len(ps) // 2

        def step() -> Any:
            h = x
            for i in range(nl):
                h = torch.addmm(ps[2 * i + 1], h, ps[2 * i])
                if i < nl - 1:
                    h = torch.sigmoid(h)
            loss = cross_entropy(h, t)
            loss.backward()
            self._sgd(ps, lr)
            return loss.detach()

        return step

    def matmul_tanh(self, x: Any, ws: list) -> Step:
        torch = self.torch
        x = self.asarray(x)
        ws = self._params(ws)

        def step() -> Any:
            h = x
            for w in ws:
                h = torch.tanh(h @ w)
            h.sum().backward()
            g = ws[0].grad
            for w in ws:
                w.grad = None
            return g

        return step

    def tanh_chain(self, x: Any, layers: int) -> Step:
        torch = self.torch
        (x,) = self._params([x])

        def step() -> Any:
            x.grad = None
            y = x
            for _ in range(layers):
                y = torch.tanh(y)
            y.sum().backward()
            return x.grad

        return step

    def cnn(self, x: Any, t: Any, params: list, lr: float) -> Step:
        torch = self.torch
        nnf = torch.nn.functional
        x, t = self.asarray(x), self.asarray(t)
        ps = self._params(params)
        W1, b1, W2, b2 = ps

        def step() -> Any:
            h = nnf.max_pool2d(torch.relu(nnf.conv2d(x, W1, b1, 1, 1)), 2, 2)
            y = torch.addmm(b2, h.reshape(h.shape[0], -1), W2)
            loss = nnf.cross_entropy(y, t)
            loss.backward()
            self._sgd(ps, lr)
            return loss.detach()

        return step

    def conv2d(self, x: Any, W: Any, b: Any) -> Step:
        torch = self.torch
        conv2d = torch.nn.functional.conv2d
        ps = self._params([x, W, b])

        def step() -> tuple:
            for p in ps:
                p.grad = None
            y = conv2d(ps[0], ps[1], ps[2], 1, 1)
            y.backward(torch.ones_like(y))
            return tuple(p.grad for p in ps)

        return step

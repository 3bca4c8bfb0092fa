"""The floor: every workload's forward, backward and SGD update written by hand in the raw
backend (NumPy, or CuPy on the GPU), keeping only what the backward pass needs.

The math is the one xgrad's kernels do (the two-sided sigmoid ``max(z, [x >= 0]) / (1 + z)``
with ``z = exp(-|x|)``, a fused softmax cross entropy, im2col by strided slices with one batched
matmul, max pooling by elementwise maxima over the window's strided views), so a ratio to the
floor measures the autograd machinery, not a different algorithm. One deliberate difference:
the floor keeps conv2d's im2col buffer for the weight gradient (the fastest hand-written choice),
where xgrad keeps only x and W and recomputes it.
"""

from __future__ import annotations

from typing import Any

from bench.impl import BaseImpl, Step


class Impl(BaseImpl):
    """Hand-written NumPy / CuPy."""

    name = "floor"

    def version(self) -> str:
        return f"{self.xp.__name__} {self.xp.__version__}"

    # --- A, B ---
    def chain(self, x: Any, w: Any, n: int) -> Step:
        xp = self.xp
        x, w = self.asarray(x), self.asarray(w)
        sin, cos, tanh, exp = xp.sin, xp.cos, xp.tanh, xp.exp

        def step() -> tuple:
            saved = []
            y = x
            for _ in range(n // 4):
                saved.append(y)
                y = sin(y)
                y = tanh(y)
                saved.append(y)
                y = exp(y)
                saved.append(y)
                y = y * w
            g = xp.ones_like(y)
            gw = xp.zeros_like(w)
            pop = saved.pop
            for _ in range(n // 4):
                e = pop()
                gw = gw + g * e
                g = g * w
                g = g * e
                t = pop()
                g = g * (1 - t * t)
                g = g * cos(pop())
            return g, gw

        return step

    # --- C ---
    def mlp(self, x: Any, t: Any, params: list, lr: float) -> Step:
        xp = self.xp
        x, t = self.asarray(x), self.asarray(t)
        ps = [self.asarray(p) for p in params]
        rows = xp.arange(x.shape[0])

        def step() -> Any:
            hs = [x]
            h = x
            nl = len(ps) // 2
            for i in range(nl):
                h = h @ ps[2 * i] + ps[2 * i + 1]
                if i < nl - 1:
                    z = xp.exp(-xp.abs(h))  # two-sided sigmoid: nothing overflows
                    h = xp.maximum(z, (h >= 0).astype(h.dtype)) / (1 + z)
                    hs.append(h)
            loss, g = _softmax_cross_entropy(xp, h, t, rows)
            for i in reversed(range(nl)):
                a = hs[i]
                gW = a.T @ g
                gb = g.sum(axis=0)
                if i > 0:
                    g = g @ ps[2 * i].T
                    g = g * a * (1 - a)
                ps[2 * i] -= lr * gW
                ps[2 * i + 1] -= lr * gb
            return loss

        return step

    # --- D ---
    def matmul_tanh(self, x: Any, ws: list) -> Step:
        xp = self.xp
        x = self.asarray(x)
        ws = [self.asarray(w) for w in ws]

        def step() -> Any:
            hs = [x]
            for w in ws:
                hs.append(xp.tanh(hs[-1] @ w))
            g = xp.ones_like(hs[-1])
            gws = [None] * len(ws)
            for i in reversed(range(len(ws))):
                y = hs.pop()
                g = g * (1 - y * y)
                gws[i] = hs[-1].T @ g
                if i:
                    g = g @ ws[i].T
            return gws[0]

        return step

    # --- E ---
    def tanh_chain(self, x: Any, layers: int) -> Step:
        xp = self.xp
        x = self.asarray(x)

        def step() -> Any:
            ys = []
            y = x
            for _ in range(layers):
                y = xp.tanh(y)
                ys.append(y)
            del y
            g = xp.ones_like(x)
            while ys:
                y = ys.pop()
                g = g * (1 - y * y)
            return g

        return step

    # --- F ---
    def cnn(self, x: Any, t: Any, params: list, lr: float) -> Step:
        xp = self.xp
        x, t = self.asarray(x), self.asarray(t)
        W1, b1, W2, b2 = ps = [self.asarray(p) for p in params]
        rows = xp.arange(x.shape[0])

        def step() -> Any:
            n = x.shape[0]
            h, col = _conv_forward(xp, x, W1, b1, 1, 1)
            a = xp.maximum(h, 0.0)
            p, hits = _maxpool_forward(xp, a, 2, 2)
            flat = p.reshape(n, -1)
            y = flat @ W2 + b2
            loss, g = _softmax_cross_entropy(xp, y, t, rows)
            gW2, gb2 = flat.T @ g, g.sum(axis=0)
            g = (g @ W2.T).reshape(p.shape)
            g = _maxpool_backward(xp, g, hits, a.shape, 2, 2)
            g = g * (h > 0)
            _, gW1, gb1 = _conv_backward(xp, g, col, W1, x.shape, 1, 1, need_gx=False)
            for q, gq in zip(ps, (gW1, gb1, gW2, gb2)):
                q -= lr * gq
            return loss

        return step

    def conv2d(self, x: Any, W: Any, b: Any) -> Step:
        xp = self.xp
        x, W, b = self.asarray(x), self.asarray(W), self.asarray(b)

        def step() -> tuple:
            y, col = _conv_forward(xp, x, W, b, 1, 1)
            gy = xp.ones_like(y)
            return _conv_backward(xp, gy, col, W, x.shape, 1, 1, need_gx=True)

        return step


# --- raw-array kernels ---
def _softmax_cross_entropy(xp: Any, y: Any, t: Any, rows: Any) -> tuple:
    """Mean cross entropy of logits ``y`` against labels ``t`` and its gradient wrt ``y``."""
    n = y.shape[0]
    z = y - y.max(axis=1, keepdims=True)
    e = xp.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = -(z[rows, t] - xp.log(s)[:, 0]).sum() * (1 / n)
    g = e / s
    g[rows, t] -= 1
    return loss, g * (1 / n)


def _im2col(xp: Any, x: Any, k: int, s: int, p: int) -> Any:
    """Patches (N, C, K, K, OH, OW) of ``x`` by strided slices of the padded image."""
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    xpad = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
    col = xp.empty((n, c, k, k, oh, ow), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            col[:, :, i, j] = xpad[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]
    return col


def _col2im(xp: Any, col: Any, h: int, w: int, s: int, p: int) -> Any:
    """The adjoint of :func:`_im2col`: overlapping patches summed into the image."""
    n, c, k, _, oh, ow = col.shape
    img = xp.zeros((n, c, h + 2 * p + s - 1, w + 2 * p + s - 1), dtype=col.dtype)
    for i in range(k):
        for j in range(k):
            img[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s] += col[:, :, i, j]
    return img[:, :, p:p + h, p:p + w]


def _conv_forward(xp: Any, x: Any, W: Any, b: Any, s: int, p: int) -> tuple:
    n = x.shape[0]
    oc, c, k, _ = W.shape
    col = _im2col(xp, x, k, s, p)
    oh, ow = col.shape[4:]
    col = col.reshape(n, c * k * k, oh * ow)
    y = W.reshape(oc, -1) @ col + b.reshape(1, oc, 1)
    return y.reshape(n, oc, oh, ow), col


def _conv_backward(xp: Any, gy: Any, col: Any, W: Any, xshape: tuple, s: int, p: int,
                   need_gx: bool) -> tuple:
    n, oc, oh, ow = gy.shape
    _, c, k, _ = W.shape
    g = gy.reshape(n, oc, oh * ow)
    gb = gy.sum(axis=(0, 2, 3))
    gW = (g @ col.transpose(0, 2, 1)).sum(axis=0).reshape(W.shape)
    gx = None
    if need_gx:
        gcol = (W.reshape(oc, -1).T @ g).reshape(n, c, k, k, oh, ow)
        gx = _col2im(xp, gcol, xshape[2], xshape[3], s, p)
    return gx, gW, gb


def _maxpool_forward(xp: Any, x: Any, k: int, s: int) -> tuple:
    """Window maxima over the k*k strided views, and a first-maximum mask per view."""
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    views = [x[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]
             for i in range(k) for j in range(k)]
    y = views[0]
    for v in views[1:]:
        y = xp.maximum(y, v)
    hits, taken = [], None
    for v in views:
        hit = v == y
        if taken is not None:
            hit &= ~taken
            taken |= hit
        else:
            taken = hit.copy()
        hits.append(hit)
    return y, hits


def _maxpool_backward(xp: Any, gy: Any, hits: list, xshape: tuple, k: int, s: int) -> Any:
    n, c, oh, ow = gy.shape
    g = xp.zeros(xshape, dtype=gy.dtype)
    for (i, j), hit in zip(((i, j) for i in range(k) for j in range(k)), hits):
        g[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s] += gy * hit
    return g

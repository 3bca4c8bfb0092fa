"""Higher-order derivatives by differentiating the backward pass (DeZero steps 33-35).

Newton's method on f(x) = (x^2 - 1)^2 uses f'' from a second backward pass, and the plot shows
tanh with its first four derivatives, each the gradient of the one before.

    python examples/higher_order.py [--backend numpy] [--epochs 10]
"""

from __future__ import annotations

import numpy as np
from _common import parser, plt, save, session
from tqdm import tqdm

import xgrad
import xgrad.functions as F
from xgrad import Variable


def f(x: Variable) -> Variable:
    """(x^2 - 1)^2: minima at x = -1 and x = 1, where it is 0."""
    return (x ** 2 - 1.0) ** 2


def newton(x0: float, steps: int) -> list[float]:
    """Newton's method: x <- x - f'(x) / f''(x), both from backward passes."""
    x = Variable(xgrad.asarray([x0], dtype="float64"), name="x")
    path = [x0]
    for _ in tqdm(range(steps), desc="newton"):
        y = f(x)
        x.cleargrad()
        y.backward(create_graph=True)  # keep the graph of f' to differentiate it again
        gx = x.grad
        x.cleargrad()
        gx.backward()
        x.data = x.data - gx.data / x.grad.data
        path.append(x.item())
    return path


def tanh_derivatives(n: int, points: int) -> tuple:
    """tanh on [-7, 7] and its first ``n`` derivatives, as host arrays."""
    x = Variable(xgrad.asarray(np.linspace(-7.0, 7.0, points), dtype="float64"), name="x")
    y = F.tanh(x)
    curves = [y.numpy()]
    y.backward(create_graph=True)
    for i in range(n):
        gx = x.grad
        curves.append(gx.numpy())
        if i + 1 < n:
            x.cleargrad()
            gx.backward(create_graph=True)
    return x.numpy(), curves


def main() -> None:
    p = parser("Newton's method and tanh's derivatives by double backprop", epochs=10)
    args = p.parse_args()
    with session(args, float64=True):
        path = newton(2.0, 3 if args.smoke else args.epochs)
        xs, curves = tanh_derivatives(4, 50 if args.smoke else 200)
    t = np.tanh(xs)
    s = 1.0 - t * t
    closed = [t, s, -2 * t * s, -2 * s * (1 - 3 * t * t), 8 * t * s * (2 - 3 * t * t)]
    err = max(float(np.max(np.abs(c - r))) for c, r in zip(curves, closed))
    print(f"newton: x = {path[-1]:.6f} after {len(path) - 1} steps (minimum at 1)")
    print(f"tanh derivatives 1-4: max error against the closed forms {err:.2e}")

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4))
    for i, c in enumerate(curves):
        a0.plot(xs, c, label="tanh" if i == 0 else f"order {i}")
    a0.set_title("tanh and its derivatives (create_graph=True)")
    a0.legend()
    grid = np.linspace(-1.6, 2.1, 200)
    a1.plot(grid, (grid ** 2 - 1) ** 2, color="grey")
    a1.plot(path, [(v ** 2 - 1) ** 2 for v in path], "o-", color="tab:red", label="newton")
    a1.set_ylim(-0.5, 10)
    a1.set_title("Newton's method on (x^2 - 1)^2")
    a1.legend()
    save(fig, args, "higher_order.png")
    print(f"final loss: {(path[-1] ** 2 - 1) ** 2:.4g}")


if __name__ == "__main__":
    main()

"""Minimise the Rosenbrock function (DeZero step 28), by gradient descent and by Newton's method
with the Hessian from double backprop; the plot shows both paths over its contours.

    python examples/rosenbrock.py [--backend numpy] [--epochs 20000]
"""

from __future__ import annotations

import numpy as np
from _common import parser, plt, save, session
from tqdm import tqdm

import xgrad
from xgrad import Variable


def rosenbrock(x: Variable) -> Variable:
    """100 (x1 - x0^2)^2 + (1 - x0)^2: a curved valley with its minimum 0 at (1, 1)."""
    x0, x1 = x[0], x[1]
    return 100.0 * (x1 - x0 ** 2) ** 2 + (1.0 - x0) ** 2


def gradient_descent(start: list, steps: int, lr: float) -> np.ndarray:
    """Plain gradient descent; returns the path, one point per step."""
    x = Variable(xgrad.asarray(start, dtype="float64"), name="x")
    path = [x.numpy()]
    bar = tqdm(range(steps), desc="gradient descent", mininterval=0.5)
    for i in bar:
        y = rosenbrock(x)
        x.cleargrad()
        y.backward()
        x.data = x.data - lr * x.grad.data
        path.append(x.numpy())
        if i % 1000 == 0:
            bar.set_postfix(loss=f"{y.item():.3g}")
    return np.stack(path)


def newton(start: list, steps: int) -> np.ndarray:
    """Newton's method: the gradient from one backward pass, each Hessian row from another."""
    x = Variable(xgrad.asarray(start, dtype="float64"), name="x")
    path = [x.numpy()]
    for _ in tqdm(range(steps), desc="newton"):
        y = rosenbrock(x)
        x.cleargrad()
        y.backward(create_graph=True)
        g = x.grad
        rows = []
        for i in range(2):
            x.cleargrad()
            g[i].backward()  # row i of the Hessian: d(df/dx_i)/dx
            rows.append(x.grad.numpy())
        step = np.linalg.solve(np.stack(rows), g.numpy())  # a 2x2 solve on the host
        x.data = x.data - xgrad.asarray(step, dtype=x.dtype, backend=x.backend, device=x.device)
        path.append(x.numpy())
    return np.stack(path)


def loss_at(p: np.ndarray) -> float:
    return float(100.0 * (p[1] - p[0] ** 2) ** 2 + (1.0 - p[0]) ** 2)


def main() -> None:
    p = parser("Rosenbrock: gradient descent vs Newton's method", epochs=20000)
    p.add_argument("--lr", type=float, default=0.001, help="gradient descent step (0.001)")
    args = p.parse_args()
    start = [0.0, 2.0]
    with session(args, float64=True):
        gd = gradient_descent(start, 50 if args.smoke else args.epochs, args.lr)
        nt = newton(start, 3 if args.smoke else 6)
    print(f"newton: x = ({nt[-1][0]:.6f}, {nt[-1][1]:.6f}) after {len(nt) - 1} steps, "
          f"loss {loss_at(nt[-1]):.3g}")
    print(f"gradient descent: x = ({gd[-1][0]:.4f}, {gd[-1][1]:.4f}) after {len(gd) - 1} steps")

    fig, ax = plt.subplots(figsize=(6, 5))
    a, b = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-1, 3, 300))
    ax.contour(a, b, 100 * (b - a ** 2) ** 2 + (1 - a) ** 2, levels=np.logspace(-1, 3.5, 15),
               cmap="viridis", linewidths=0.8)
    every = max(1, len(gd) // 200)
    ax.plot(gd[::every, 0], gd[::every, 1], ".-", ms=3, label=f"gradient descent, lr={args.lr}")
    ax.plot(nt[:, 0], nt[:, 1], "o-", label="newton (Hessian by double backprop)")
    ax.plot([1], [1], "r*", ms=12, label="minimum (1, 1)")
    ax.set_title("descent paths on the Rosenbrock function")
    ax.legend(loc="upper left", fontsize=8)
    save(fig, args, "rosenbrock.png")
    print(f"final loss: {loss_at(gd[-1]):.4g}")


if __name__ == "__main__":
    main()

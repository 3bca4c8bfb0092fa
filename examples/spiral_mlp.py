"""Classify the three arms of a spiral with a two-layer MLP (DeZero steps 48-50).

Trains on one draw of the spiral and reports accuracy on a second, held-out draw; the plot shows
the loss and accuracy curves and the learned decision regions.

    python examples/spiral_mlp.py [--backend numpy] [--epochs 300]
"""

from __future__ import annotations

import numpy as np
from _common import evaluate, parser, plt, save, session
from tqdm import tqdm

import xgrad
import xgrad.functions as F
from xgrad import nn, optim
from xgrad.data import DataLoader, Spiral


def main() -> None:
    p = parser("Spiral classification with an MLP (DeZero steps 48-50)", epochs=300)
    p.add_argument("--batch-size", type=int, default=30)
    p.add_argument("--hidden", type=int, default=10)
    p.add_argument("--lr", type=float, default=1.0)
    args = p.parse_args()
    epochs = 2 if args.smoke else args.epochs
    with session(args):
        train_set, test_set = Spiral(train=True), Spiral(train=False)
        train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                                  backend=args.backend)
        test_loader = DataLoader(test_set, args.batch_size, backend=args.backend)
        model = nn.MLP((args.hidden, 3))  # sigmoid between the layers, as in DeZero
        optimizer = optim.SGD(lr=args.lr).setup(model)

        history: dict[str, list] = {"train_loss": [], "test_loss": [], "train_accuracy": [],
                                    "test_accuracy": []}
        bar = tqdm(range(epochs), desc="spiral")
        for _ in bar:
            total_loss = total_acc = 0.0
            for x, t in train_loader:
                y = model(x)
                loss = F.softmax_cross_entropy(y, t)
                model.cleargrads()
                loss.backward()
                optimizer.update()
                total_loss += loss.item() * t.shape[0]
                total_acc += F.accuracy(y, t).item() * t.shape[0]
            history["train_loss"].append(total_loss / len(train_set))
            history["train_accuracy"].append(total_acc / len(train_set))
            test_loss, test_acc = evaluate(model, test_loader)
            history["test_loss"].append(test_loss)
            history["test_accuracy"].append(test_acc)
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}", test_acc=f"{test_acc:.3f}")

        # decision regions: the model's class over a grid of points
        grid = np.linspace(-1.1, 1.1, 200, dtype=np.float32)
        gx, gy = np.meshgrid(grid, grid)
        points = xgrad.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1))
        with xgrad.no_grad():
            regions = model(points).numpy().argmax(axis=1).reshape(gx.shape)

    fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(15, 4))
    for key in ("train_loss", "test_loss"):
        a0.plot(range(1, epochs + 1), history[key], label=key.replace("_", " "))
    a0.set_xlabel("epoch")
    a0.set_title("softmax cross-entropy")
    a0.legend()
    for key in ("train_accuracy", "test_accuracy"):
        a1.plot(range(1, epochs + 1), history[key], label=key.replace("_", " "))
    a1.set_xlabel("epoch")
    a1.set_title("accuracy")
    a1.legend()
    a2.contourf(gx, gy, regions, levels=[-0.5, 0.5, 1.5, 2.5], alpha=0.3,
                colors=["tab:blue", "tab:orange", "tab:green"])
    for c, color in enumerate(["tab:blue", "tab:orange", "tab:green"]):
        pts = test_set.data[test_set.label == c]
        a2.scatter(pts[:, 0], pts[:, 1], s=12, color=color)
    a2.set_title("decision regions and the held-out points")
    save(fig, args, "spiral_mlp.png")
    print(f"test accuracy: {history['test_accuracy'][-1]:.4f}")


if __name__ == "__main__":
    main()

"""A small convolutional network on MNIST (or Fashion-MNIST): conv, ReLU, max pooling, twice.

The IDX files are read from ~/.cache/xgrad/mnist (or $XGRAD_DATA/mnist) and downloaded there when
missing. ``--smoke`` never downloads: it trains on a small slice of the files when they are
already there, and on synthetic 28x28 digits-like images otherwise.

    python examples/mnist_cnn.py [--backend numpy] [--epochs 2] [--dataset fashion]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from _common import evaluate, parser, plot_curves, session
from tqdm import tqdm

import xgrad.functions as F
from xgrad import nn, optim
from xgrad.data import MNIST, DataLoader, Dataset, FashionMNIST


class CNN(nn.Model):
    """conv 3x3 (16) - ReLU - pool 2 - conv 3x3 (32) - ReLU - pool 2 - linear (10)."""

    def __init__(self, classes: int = 10) -> None:
        self.conv1 = nn.Conv2d(16, 3, pad=1)
        self.conv2 = nn.Conv2d(32, 3, pad=1)
        self.fc = nn.Linear(classes)

    def forward(self, x: Any) -> Any:
        x = F.max_pooling(F.relu(self.conv1(x)), 2, stride=2)  # 28x28 -> 14x14
        x = F.max_pooling(F.relu(self.conv2(x)), 2, stride=2)  # 14x14 -> 7x7
        return self.fc(F.reshape(x, (x.shape[0], -1)))


def synthetic(n: int, seed: int) -> Dataset:
    """``n`` noisy copies of ten fixed random 28x28 templates, shaped like normalised MNIST."""
    templates = np.random.default_rng(1234).random((10, 28, 28)) > 0.7
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 10, n)
    x = 0.8 * templates[label] + 0.3 * rng.random((n, 28, 28))
    return Dataset(np.clip(x, 0, 1).astype(np.float32)[:, None], label.astype(np.int64))


def load(args: argparse.Namespace) -> tuple[Dataset, Dataset]:
    cls = FashionMNIST if args.dataset == "fashion" else MNIST
    if not args.smoke:
        try:
            return cls(train=True), cls(train=False)
        except FileNotFoundError as e:
            raise SystemExit(f"{e}\n(--smoke runs the example on synthetic images)") from None
    try:  # a smoke run uses the files only if they are already here
        train, test = cls(train=True, download=False), cls(train=False, download=False)
    except FileNotFoundError:
        print(f"{cls.__name__} files not found: the smoke run uses synthetic images")
        return synthetic(128, args.seed), synthetic(64, args.seed + 1)
    return Dataset(train.data[:128], train.label[:128]), Dataset(test.data[:64], test.label[:64])


def main() -> None:
    p = parser("A CNN on MNIST", epochs=2)
    p.add_argument("--dataset", choices=("mnist", "fashion"), default="mnist")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    args = p.parse_args()
    epochs = 1 if args.smoke else args.epochs
    with session(args):
        train_set, test_set = load(args)
        train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                                  backend=args.backend)
        test_loader = DataLoader(test_set, 500, backend=args.backend)
        model = CNN()
        optimizer = optim.Adam(lr=args.lr).setup(model)

        history: dict[str, list] = {"train_loss": [], "test_loss": [], "test_accuracy": []}
        for epoch in range(epochs):
            total = 0.0
            bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{epochs}")
            for x, t in bar:
                loss = F.softmax_cross_entropy(model(x), t)
                model.cleargrads()
                loss.backward()
                optimizer.update()
                total += loss.item() * t.shape[0]
                bar.set_postfix(loss=f"{loss.item():.3f}")
            test_loss, test_acc = evaluate(model, test_loader)
            history["train_loss"].append(total / len(train_set))
            history["test_loss"].append(test_loss)
            history["test_accuracy"].append(test_acc)
            print(f"epoch {epoch + 1}: train loss {history['train_loss'][-1]:.4f}, "
                  f"test loss {test_loss:.4f}, test accuracy {test_acc:.4f}")
    plot_curves(args, "mnist_cnn.png", f"{args.dataset}: a small CNN", **history)
    print(f"test accuracy: {history['test_accuracy'][-1]:.4f}")


if __name__ == "__main__":
    main()

"""Recognise handwritten digits: an MLP on scikit-learn's bundled 8x8 digits (no download).

The README's first example: about 97% test accuracy in a few seconds on a laptop CPU. The plot
shows the loss and accuracy curves.

    python examples/digits_mlp.py [--backend numpy] [--epochs 30]
"""

from __future__ import annotations

import time

from _common import evaluate, parser, plot_curves, session
from tqdm import tqdm

import xgrad.functions as F
from xgrad import nn, optim
from xgrad.data import DataLoader, Dataset, Digits


def main() -> None:
    p = parser("An MLP on scikit-learn's 8x8 digits", epochs=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    args = p.parse_args()
    epochs = 1 if args.smoke else args.epochs
    start = time.perf_counter()
    with session(args):
        train_set, test_set = Digits(train=True), Digits(train=False)
        if args.smoke:
            train_set = Dataset(train_set.data[:256], train_set.label[:256])
        train_loader = DataLoader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                                  backend=args.backend)
        test_loader = DataLoader(test_set, 256, backend=args.backend)
        model = nn.MLP((args.hidden, 10), activation=F.relu)
        optimizer = optim.Adam(lr=args.lr).setup(model)

        history: dict[str, list] = {"train_loss": [], "test_loss": [], "test_accuracy": []}
        bar = tqdm(range(epochs), desc="digits")
        for _ in bar:
            total = 0.0
            for x, t in train_loader:
                loss = F.softmax_cross_entropy(model(x), t)
                model.cleargrads()
                loss.backward()
                optimizer.update()
                total += loss.item() * t.shape[0]
            test_loss, test_acc = evaluate(model, test_loader)
            history["train_loss"].append(total / len(train_set))
            history["test_loss"].append(test_loss)
            history["test_accuracy"].append(test_acc)
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}", test_acc=f"{test_acc:.3f}")
    print(f"{len(train_set)} training images, {epochs} epochs on {args.backend} in "
          f"{time.perf_counter() - start:.1f} s")
    plot_curves(args, "digits_mlp.png", "8x8 digits: an MLP with one hidden layer", **history)
    print(f"test accuracy: {history['test_accuracy'][-1]:.4f}")


if __name__ == "__main__":
    main()

"""Predict the next value of a noisy sine wave with an LSTM, trained by truncated
backpropagation through time (DeZero step 60); then run it on a clean cosine.

    python examples/sin_lstm.py [--backend numpy] [--epochs 100]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _common import parser, plt, save, session
from tqdm import tqdm

import xgrad
import xgrad.functions as F
from xgrad import nn, optim
from xgrad.data import SeqDataLoader, SinCurve


class BetterRNN(nn.Model):
    """An LSTM layer and a linear read-out of its hidden state."""

    def __init__(self, hidden_size: int, out_size: int) -> None:
        self.rnn = nn.LSTM(hidden_size)
        self.fc = nn.Linear(out_size)

    def reset_state(self) -> None:
        self.rnn.reset_state()

    def forward(self, x: Any) -> Any:
        return self.fc(self.rnn(x))


def main() -> None:
    p = parser("An LSTM on a sine wave (truncated BPTT)", epochs=100)
    p.add_argument("--batch-size", type=int, default=30)
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--bptt", type=int, default=30, help="steps between backward passes")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate")
    args = p.parse_args()
    epochs = 2 if args.smoke else args.epochs
    with session(args):
        train_set = SinCurve(train=True, num_data=200 if args.smoke else 1000)
        loader = SeqDataLoader(train_set, args.batch_size, backend=args.backend)
        model = BetterRNN(args.hidden, 1)
        optimizer = optim.Adam(lr=args.lr).setup(model)

        losses = []
        bar = tqdm(range(epochs), desc="sin")
        for _ in bar:
            model.reset_state()
            chunk, total, count = 0, 0.0, 0
            for x, t in loader:
                chunk = chunk + F.mean_squared_error(model(x), t)
                count += 1
                if count % args.bptt == 0 or count == len(loader):
                    model.cleargrads()
                    chunk.backward()
                    chunk.unchain_backward()  # keep the state, cut the graph behind it
                    optimizer.update()
                    total += chunk.item()
                    chunk = 0
            losses.append(total / count)
            bar.set_postfix(loss=f"{losses[-1]:.5f}")

        # one step ahead on a clean cosine, feeding the true values
        test_set = SinCurve(train=False, num_data=200 if args.smoke else 1000)
        model.reset_state()
        preds = []
        with xgrad.no_grad(), xgrad.test_mode():
            for x, _ in SeqDataLoader(test_set, 1, backend=args.backend):
                preds.append(float(model(x).item()))
    test_mse = float(np.mean((np.array(preds) - test_set.label[:, 0]) ** 2))
    print(f"one-step prediction of cos: mean squared error {test_mse:.5f}")

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4))
    a0.semilogy(range(1, epochs + 1), losses)
    a0.set_xlabel("epoch")
    a0.set_title("training loss (mean squared error)")
    a1.plot(test_set.label[:, 0], label="cos(x)")
    a1.plot(preds, "--", label="LSTM, one step ahead")
    a1.set_title("prediction on a clean cosine")
    a1.legend()
    save(fig, args, "sin_lstm.png")
    print(f"final loss: {losses[-1]:.4g}")


if __name__ == "__main__":
    main()

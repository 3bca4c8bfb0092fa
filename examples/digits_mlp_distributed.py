"""The digits MLP trained data-parallel: every process trains the same model on its slice of
each global batch, and averaged gradients keep the copies identical.

    python -m xgrad.distributed.run -n 2 examples/digits_mlp_distributed.py   # 2 processes
    python examples/digits_mlp_distributed.py                                  # 1 process

Both reach the same accuracy: the global batch (``--batch-size``) is the same, only split
across the processes. Rank 0 alone shows the progress bar, prints and draws the plot.
"""

from __future__ import annotations

import time

from _common import parser, plot_curves, session

import xgrad
import xgrad.distributed as dist
import xgrad.functions as F
from xgrad import nn, optim
from xgrad.data import Dataset, Digits


def main() -> None:
    p = parser("An MLP on scikit-learn's 8x8 digits, data-parallel", epochs=30)
    p.add_argument("--batch-size", type=int, default=32, help="global batch (all ranks)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    args = p.parse_args()
    epochs = 1 if args.smoke else args.epochs
    comm = dist.init()  # MPI when started by a launcher, else one process
    start = time.perf_counter()
    with session(args):  # the same seed everywhere; rank 0's parameters are broadcast anyway
        train_set, test_set = Digits(train=True), Digits(train=False)
        if args.smoke:
            train_set = Dataset(train_set.data[:256], train_set.label[:256])
        train_loader = dist.ShardedLoader(train_set, args.batch_size, comm, shuffle=True,
                                          seed=args.seed, backend=args.backend)
        test_loader = dist.ShardedLoader(test_set, len(test_set), comm, backend=args.backend)
        model = nn.MLP((args.hidden, 10), activation=F.relu)
        with xgrad.no_grad():  # create the lazy layers, then give every rank rank 0's values
            model(next(iter(test_loader))[0])
        dist.broadcast_parameters(model, comm)
        optimizer = dist.DistributedOptimizer(optim.Adam(lr=args.lr).setup(model), comm)

        history: dict[str, list] = {"train_loss": [], "test_loss": [], "test_accuracy": []}
        bar = dist.progress(range(epochs), comm, desc=f"digits on {comm.size} rank(s)")
        for _ in bar:
            total, seen = 0.0, 0
            for x, t in train_loader:
                loss = F.softmax_cross_entropy(model(x), t)
                model.cleargrads()
                loss.backward()
                optimizer.update(batch_size=t.shape[0])  # weight by this rank's share
                total += loss.item() * t.shape[0]
                seen += t.shape[0]
            with xgrad.no_grad(), xgrad.test_mode():
                x, t = next(iter(test_loader))  # this rank's slice of the test set
                y = model(x)
                test = dist.average_metrics(
                    comm, {"loss": F.softmax_cross_entropy(y, t),
                           "accuracy": F.accuracy(y, t)}, weight=t.shape[0])
            train = dist.average_metrics(comm, {"loss": total / seen}, weight=seen)
            history["train_loss"].append(train["loss"])
            history["test_loss"].append(test["loss"])
            history["test_accuracy"].append(test["accuracy"])
            if comm.is_root:
                bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}",
                                test_acc=f"{test['accuracy']:.3f}")
    dist.print0(comm, f"{len(train_set)} training images, {epochs} epochs on {comm.size} "
                f"rank(s) of {args.backend} in {time.perf_counter() - start:.1f} s")
    if comm.is_root:
        plot_curves(args, "digits_mlp_distributed.png",
                    f"8x8 digits: an MLP trained on {comm.size} rank(s)", **history)
    dist.print0(comm, f"test accuracy: {history['test_accuracy'][-1]:.4f}")


if __name__ == "__main__":
    main()

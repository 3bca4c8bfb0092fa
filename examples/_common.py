"""What every example shares: the command line, the backend and seed, and saving plots."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # render to files; no display needed
import matplotlib.pyplot as plt  # noqa: E402

import xgrad  # noqa: E402
import xgrad.data  # noqa: E402
import xgrad.nn  # noqa: E402


def parser(description: str, epochs: int) -> argparse.ArgumentParser:
    """The options every example takes: --backend, --epochs, --smoke, --out, --seed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--backend", default="numpy",
                   help="numpy, cupy, array_api_strict, torch, jax, or a device such as "
                        "cuda:1 or torch:cuda (default: numpy)")
    p.add_argument("--epochs", type=int, default=epochs, help=f"default {epochs}")
    p.add_argument("--smoke", action="store_true", help="a tiny, fast run (for CI)")
    p.add_argument("--out", default="out/", help="directory for the plot (default out/)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return p


@contextlib.contextmanager
def session(args: argparse.Namespace, float64: bool = False) -> Iterator[None]:
    """Make ``args.backend`` the default backend and seed its generator; ``float64``: the
    example computes in float64, so JAX's 64-bit types (off by default) are turned on."""
    if float64 and xgrad.backends.resolve_target(args.backend)[0].name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    with xgrad.use_backend(args.backend):
        xgrad.manual_seed(args.seed)
        yield


def save(fig: plt.Figure, args: argparse.Namespace, name: str) -> Path:
    """Save ``fig`` as ``<args.out>/<name>`` and close it."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    print(f"plot saved to {out / name}")
    return out / name


def plot_curves(args: argparse.Namespace, name: str, title: str, **curves: list) -> Path:
    """One line per keyword (e.g. ``train_loss=[...]``) against the epoch, saved as ``name``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, ys in curves.items():
        ax.plot(range(1, len(ys) + 1), ys, label=label.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.legend()
    return save(fig, args, name)


def evaluate(model: xgrad.nn.Layer, loader: xgrad.data.DataLoader) -> tuple[float, float]:
    """Mean softmax cross-entropy and accuracy of classifier ``model`` over ``loader``."""
    import xgrad.functions as F

    total_loss = total_acc = 0.0
    n = 0
    with xgrad.no_grad(), xgrad.test_mode():
        for x, t in loader:
            y = model(x)
            total_loss += F.softmax_cross_entropy(y, t).item() * t.shape[0]
            total_acc += F.accuracy(y, t).item() * t.shape[0]
            n += t.shape[0]
    return total_loss / n, total_acc / n

"""Small datasets generated or bundled locally: Spiral, SinCurve and scikit-learn's Digits."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from xgrad.data.loader import Dataset


class Spiral(Dataset):
    """``num_class`` interleaved spiral arms in 2-D (DeZero steps 45-50): float32 points of
    shape (num_class * num_data, 2) and int64 labels. The train and test sets are drawn with
    different seeds (1984 and 2020 unless ``seed`` is given), so the test set is held out."""

    def __init__(self, train: bool = True, num_data: int = 100, num_class: int = 3,
                 noise: float = 0.2, seed: int | None = None,
                 transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        rng = np.random.default_rng((1984 if train else 2020) if seed is None else seed)
        rate = np.tile(np.arange(num_data) / num_data, num_class)
        label = np.repeat(np.arange(num_class), num_data)
        theta = label * 4.0 + rate * 4.0 + rng.standard_normal(rate.shape) * noise
        x = np.stack([rate * np.sin(theta), rate * np.cos(theta)], axis=1)
        order = rng.permutation(len(x))
        super().__init__(x[order].astype(np.float32), label[order].astype(np.int64),
                         transform, target_transform)


class SinCurve(Dataset):
    """One period of a sine sampled at ``num_data`` points, as next-value prediction:
    ``data[i]`` is y(i), ``label[i]`` is y(i + 1), both float32 of shape (num_data - 1, 1).
    The train curve is sin with uniform noise in [-noise, noise]; the test curve is a clean
    cos (DeZero step 59)."""

    def __init__(self, train: bool = True, num_data: int = 1000, noise: float = 0.05,
                 seed: int = 0, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        x = np.linspace(0.0, 2.0 * math.pi, num_data)
        if train:
            y = np.sin(x) + np.random.default_rng(seed).uniform(-noise, noise, num_data)
        else:
            y = np.cos(x)
        y = y.astype(np.float32)[:, None]
        super().__init__(y[:-1], y[1:], transform, target_transform)


class Digits(Dataset):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download): float32
    pixels scaled to [0, 1], shape (n, 64), or (n, 1, 8, 8) with ``flatten=False``; int64
    labels 0-9. The train/test split is a fixed permutation drawn from ``seed``."""

    def __init__(self, train: bool = True, test_size: float = 0.2, seed: int = 0,
                 flatten: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise ImportError(
                "xgrad.data.Digits reads the 8x8 digits bundled with scikit-learn, which is "
                "not installed: pip install scikit-learn (or pip install \"xgrad[examples]\")"
            ) from e
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"Digits: test_size must be in (0, 1), got {test_size!r}")
        d = load_digits()
        x = (d.data / 16.0).astype(np.float32)
        t = d.target.astype(np.int64)
        order = np.random.default_rng(seed).permutation(len(x))
        n_test = int(round(len(x) * test_size))
        idx = order[n_test:] if train else order[:n_test]
        x = x[idx] if flatten else x[idx].reshape(-1, 1, 8, 8)
        super().__init__(x, t[idx], transform, target_transform)

"""Datasets and loaders: host-side data, batched onto any backend and device."""

from xgrad.data.datasets import Digits, SinCurve, Spiral
from xgrad.data.loader import DataLoader, Dataset, SeqDataLoader
from xgrad.data.mnist import MNIST, FashionMNIST, data_dir, read_idx

__all__ = ["DataLoader", "Dataset", "Digits", "FashionMNIST", "MNIST", "SeqDataLoader",
           "SinCurve", "Spiral", "data_dir", "read_idx"]

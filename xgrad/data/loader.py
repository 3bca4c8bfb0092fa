"""Datasets held on the host and the loaders that batch them onto a backend and device."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from xgrad.backends import backend_of
from xgrad.core import Variable, is_array
from xgrad.creation import asarray, placement


def _host_array(v: Any, owner: str, what: str, numeric: bool) -> np.ndarray:
    """``v`` (array of any backend, Variable, nested lists) as a host NumPy array with samples
    along the first axis, of numbers if ``numeric`` (no transform to turn them into numbers);
    anything else is refused naming ``owner``."""
    if isinstance(v, Variable):
        v = v.data
    if is_array(v) and not isinstance(v, np.ndarray):
        v = backend_of(v).to_host(v)
    try:
        a = np.asarray(v)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{owner}: {what} cannot be made an array: {e}") from None
    if (numeric and a.dtype.kind not in "biufc") or a.ndim == 0:
        got = f"{type(v).__name__}" + (f" of dtype {a.dtype}" if a.ndim else "")
        kind = "an array of numbers" if numeric else "an array"
        raise TypeError(f"{owner}: {what} must be {kind} with the samples along its first "
                        f"axis, got {got}")
    return a


def _check_dataset(dataset: Any, owner: str) -> None:
    """Refuse, when the loader is made, what cannot be measured and indexed."""
    if not hasattr(dataset, "__len__") or not (hasattr(dataset, "batch")
                                               or hasattr(dataset, "__getitem__")):
        raise TypeError(f"{owner}: dataset must be a Dataset or a sequence of (x, t) pairs "
                        f"(len() and indexing), got {type(dataset).__name__}")


class Dataset:
    """Samples (and optional labels) as host NumPy arrays; ``ds[i]`` is ``(x, t)``.

    ``transform`` / ``target_transform`` map one sample / one label; without them a DataLoader
    gathers a whole batch with one fancy index instead of one call per sample."""

    def __init__(self, data: Any, label: Any = None, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        owner = type(self).__name__
        self.data = _host_array(data, owner, "data", transform is None)
        self.label = None if label is None else \
            _host_array(label, owner, "label", target_transform is None)
        if self.label is not None and len(self.label) != len(self.data):
            raise ValueError(f"{type(self).__name__}: {len(self.data)} samples but "
                             f"{len(self.label)} labels")
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple:
        x = self.data[index]
        t = None if self.label is None else self.label[index]
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None and t is not None:
            t = self.target_transform(t)
        return x, t

    def batch(self, indices: np.ndarray) -> tuple:
        """The samples at ``indices`` stacked along a new first axis, as host arrays."""
        if self.transform is None and self.target_transform is None:
            return self.data[indices], None if self.label is None else self.label[indices]
        return _stack([self[int(i)] for i in indices])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, data={tuple(self.data.shape)})"


def _stack(items: list) -> tuple:
    x = np.stack([np.asarray(a) for a, _ in items])
    t = None if items[0][1] is None else np.stack([np.asarray(b) for _, b in items])
    return x, t


def _gather(dataset: Any, indices: np.ndarray) -> tuple:
    batch = getattr(dataset, "batch", None)
    if batch is not None:
        return batch(indices)
    return _stack([dataset[int(i)] for i in indices])  # any sequence of (x, t) pairs


def _move(batch: tuple, target: tuple) -> tuple:
    b, dev = target
    x, t = batch
    return asarray(x, backend=b, device=dev), \
        None if t is None else asarray(t, backend=b, device=dev)


def _check_batch_size(batch_size: int, who: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"{who}: batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


class DataLoader:
    """Mini-batches ``(x, t)`` of ``dataset`` as arrays of ``backend`` on ``device`` (default:
    the current default backend when iteration starts).

    With ``shuffle=True`` every epoch (every ``iter()``) draws a new order from a generator
    seeded once with ``seed``: the same seed gives the same sequence of epochs. ``len()`` is
    the number of batches; ``drop_last`` drops a last batch smaller than ``batch_size``."""

    def __init__(self, dataset: Any, batch_size: int, shuffle: bool = False,
                 seed: int | None = None, drop_last: bool = False, backend: Any = None,
                 device: Any = None) -> None:
        owner = type(self).__name__  # a subclass's errors name the subclass
        _check_dataset(dataset, owner)
        self.dataset = dataset
        self.batch_size = _check_batch_size(batch_size, owner)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.backend, self.device = backend, device
        if backend is not None:
            placement(backend, device)  # fail now on an unknown backend or device
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple]:
        return self._batches(self._order(), placement(self.backend, self.device))

    def _order(self) -> np.ndarray:
        """This epoch's order of the samples."""
        n = len(self.dataset)
        return self._rng.permutation(n) if self.shuffle else np.arange(n)

    def _local(self, batch: np.ndarray) -> np.ndarray:
        """The indices of a batch that this loader yields (all of them)."""
        return batch

    def _batches(self, order: np.ndarray, target: tuple) -> Iterator[tuple]:
        bs = self.batch_size
        for i in range(len(self)):
            yield _move(_gather(self.dataset, self._local(order[i * bs:(i + 1) * bs])), target)


class SeqDataLoader:
    """Batches for truncated backpropagation through time: the dataset is cut into
    ``batch_size`` equal streams, and batch ``i`` holds element ``i`` of every stream, so row
    ``r`` of consecutive batches continues the same sequence (the hidden state carries over).
    ``len()`` is the stream length, ``len(dataset) // batch_size``."""

    def __init__(self, dataset: Any, batch_size: int, backend: Any = None,
                 device: Any = None) -> None:
        _check_dataset(dataset, "SeqDataLoader")
        self.dataset = dataset
        self.batch_size = _check_batch_size(batch_size, "SeqDataLoader")
        if len(dataset) < self.batch_size:
            raise ValueError(f"SeqDataLoader: a dataset of {len(dataset)} samples cannot make "
                             f"{self.batch_size} streams; use a smaller batch_size")
        self.backend, self.device = backend, device
        if backend is not None:
            placement(backend, device)

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def __iter__(self) -> Iterator[tuple]:
        return self._batches(placement(self.backend, self.device))

    def _batches(self, target: tuple) -> Iterator[tuple]:
        offsets = np.arange(self.batch_size) * len(self)
        for i in range(len(self)):
            yield _move(_gather(self.dataset, offsets + i), target)

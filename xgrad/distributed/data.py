"""Sharded loading: every rank reads its own disjoint slice of each global batch."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np  # numpy-ok: host-side index permutations, like xgrad.data

from xgrad.data.loader import DataLoader
from xgrad.distributed.comm import Communicator

__all__ = ["ShardedLoader"]


class ShardedLoader(DataLoader):
    """Global batches of ``batch_size`` examples drawn as one ``DataLoader`` would (the same
    seeded permutation on every rank), each cut into ``comm.size`` contiguous slices as equal as
    can be; this rank gets slice ``comm.rank``. Every rank sees the same number of batches.

    Epoch ``e`` uses the permutation drawn from ``(seed, e)``; each ``iter()`` moves to the next
    epoch, ``set_epoch(e)`` chooses one (to resume). Without a seed rank 0 draws one and sends
    it to the others. ``len()`` is the number of global batches; the last one, with
    ``drop_last=False``, may be smaller and (if smaller than the number of ranks) leave some
    ranks an empty slice: pass each batch's length to ``DistributedOptimizer.update``."""

    def __init__(self, dataset: Any, batch_size: int, comm: Communicator, shuffle: bool = False,
                 seed: int | None = None, drop_last: bool = False, backend: Any = None,
                 device: Any = None) -> None:
        if not isinstance(comm, Communicator):
            raise TypeError(f"ShardedLoader: comm must be a Communicator "
                            f"(xgrad.distributed.init()), got {type(comm).__name__}")
        super().__init__(dataset, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                         backend=backend, device=device)
        if shuffle and seed is None:
            fresh = np.random.default_rng().integers(2**63)  # numpy-ok
            seed = comm.bcast_obj(int(fresh) if comm.is_root else None)
        self.comm, self.seed, self.epoch = comm, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` use epoch ``epoch``'s order."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"ShardedLoader.set_epoch: epoch must be an int >= 0, got "
                             f"{epoch!r}")
        self.epoch = int(epoch)

    def shard(self, n: int) -> tuple[int, int]:
        """(start, stop) of this rank's slice of a global batch of ``n`` examples."""
        size, rank = self.comm.size, self.comm.rank
        q, r = divmod(n, size)
        start = rank * q + min(rank, r)
        return start, start + q + (rank < r)

    def _order(self) -> np.ndarray:  # numpy-ok
        """Epoch ``self.epoch``'s order (the same on every rank); moves to the next epoch."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(n)  # numpy-ok
        else:
            order = np.arange(n)  # numpy-ok
        self.epoch += 1
        return order

    def _local(self, batch: np.ndarray) -> np.ndarray:  # numpy-ok
        """This rank's slice of a global batch."""
        start, stop = self.shard(len(batch))
        return batch[start:stop]

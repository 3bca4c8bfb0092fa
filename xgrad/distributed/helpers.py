"""What only rank 0 should do (print, show progress, save) and metrics averaged over ranks."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from xgrad import io
from xgrad.backends import backend_of
from xgrad.core import Variable, is_array
from xgrad.distributed.comm import Communicator
from xgrad.distributed.optimizer import _check_same

__all__ = ["print0", "progress", "save0", "average_metrics"]


def print0(comm: Communicator, *args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only."""
    if comm.is_root:
        print(*args, **kwargs)


def progress(iterable: Iterable, comm: Communicator, **tqdm_kwargs: Any) -> Iterable:
    """A tqdm progress bar over ``iterable`` on rank 0 (``iterable`` itself on the others, or
    when tqdm is not installed)."""
    if not comm.is_root:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, **tqdm_kwargs)


def save0(comm: Communicator, obj: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """``xgrad.io.save(obj, path)`` on rank 0, then wait for it on every rank (so no rank reads
    the file before it is complete)."""
    if comm.is_root:
        io.save(obj, path, **kwargs)
    comm.barrier()


def _number(v: Any, key: str) -> float:
    if isinstance(v, Variable):
        return v.item()
    if is_array(v):
        return float(backend_of(v).to_host(v))
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"average_metrics: metric {key!r} must be a number, a 0-d array or a "
                        f"Variable, got {type(v).__name__}")
    return float(v)


def average_metrics(comm: Communicator, metrics: Mapping[str, Any],
                    weight: float = 1.0) -> dict[str, float]:
    """``metrics`` (name -> number, 0-d array or Variable) averaged over the ranks in one
    collective, each rank weighted by ``weight`` (e.g. its number of examples); the same dict
    of floats on every rank. Ranks passing different names all get the same error."""
    import numpy as np  # numpy-ok: a small vector reduced on the host

    keys = sorted(metrics)
    _check_same(comm, keys, "average_metrics")  # different names would break the collective
    vals = [_number(metrics[k], k) for k in keys]
    w = float(weight)
    total = comm.allreduce(np.asarray([w] + [w * v for v in vals], dtype=np.float64))  # numpy-ok
    if total[0] == 0:
        raise ValueError("average_metrics: the weights of all ranks sum to 0")
    return {k: float(total[i + 1] / total[0]) for i, k in enumerate(keys)}

"""Communicators: who the other processes are, and the collectives that reach them.

A :class:`Communicator` knows this process's ``rank`` among ``size`` processes (and its
``local_rank`` among the ``local_size`` processes on the same machine) and runs collectives on
arrays of any backend. Subclasses implement the host-side collectives on NumPy arrays
(``_allreduce_host``, ``_broadcast_host``); arrays of other backends travel through the host
with the backend's ``to_host`` / ``from_host``, and come back on the device they came from.

Communicators are chosen by name like backends: ``init("mpi")``, ``$XGRAD_COMM``, or
automatically (MPI when an MPI launcher started this process, else a single process). Third
parties register theirs with :func:`register` or the ``xgrad.communicators`` entry-point group.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from xgrad.backends import backend_of
from xgrad.core import XgradError, is_array, is_float_dtype

__all__ = ["Communicator", "SingleCommunicator", "CommunicatorUnavailable", "DistributedError",
           "init", "register", "registered", "launched_by_mpi"]

_OPS = ("sum", "mean", "max", "min")


class CommunicatorUnavailable(RuntimeError):
    """A communicator was asked for that cannot be used here (unknown, or not installed)."""


class DistributedError(XgradError):
    """The ranks disagree (different models, different parameters): raised on every rank."""


class Communicator:
    """Base class: ``rank``, ``size``, ``local_rank``, ``local_size`` and collectives on arrays
    of any backend. Subclasses set the four numbers and write the ``_*_host`` methods."""

    name = "?"
    rank = 0
    size = 1
    local_rank = 0
    local_size = 1

    @property
    def is_root(self) -> bool:
        """True on rank 0 (the rank that logs, draws and saves)."""
        return self.rank == 0

    def __repr__(self) -> str:
        return (f"<xgrad communicator {self.name!r}: rank {self.rank} of {self.size}, "
                f"local {self.local_rank} of {self.local_size}>")

    # --- collectives on arrays of any backend ---
    def allreduce(self, x: Any, op: str = "sum") -> Any:
        """A new array, on ``x``'s backend and device, holding ``op`` ("sum", "mean", "max",
        "min") of ``x`` over every rank, elementwise; every rank gets the same result."""
        who = f"{type(self).__name__}.allreduce"
        _check_array(x, who)
        if op not in _OPS:
            raise ValueError(f"{who}: op must be one of {_OPS}, got {op!r}")
        if op == "mean" and not is_float_dtype(x):
            raise TypeError(f"{who}: op='mean' needs a floating dtype, got {x.dtype}; use "
                            f"op='sum' on integers")
        b = backend_of(x)
        host = _contiguous(b.to_host(x))
        out = self._allreduce_host(host, "sum" if op == "mean" else op)
        if op == "mean":
            out = out / out.dtype.type(self.size)
        return _back(b, out, x)

    def broadcast(self, x: Any, root: int = 0) -> Any:
        """A new array holding root's ``x`` on every rank (every rank passes an array of the
        same shape and dtype; only root's values are read), on ``x``'s backend and device."""
        who = f"{type(self).__name__}.broadcast"
        _check_array(x, who)
        self._check_root(root, who)
        b = backend_of(x)
        return _back(b, self._broadcast_host(_contiguous(b.to_host(x)), root), x)

    def bcast_obj(self, obj: Any, root: int = 0) -> Any:
        """Root's picklable ``obj`` on every rank."""
        self._check_root(root, f"{type(self).__name__}.bcast_obj")
        return obj

    def allgather_obj(self, obj: Any) -> list:
        """Every rank's picklable ``obj``, as a list indexed by rank."""
        return [obj]

    def barrier(self) -> None:
        """Wait until every rank reaches this call."""

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now with exit status ``code``."""
        os._exit(code)

    # --- what subclasses write: collectives on contiguous host NumPy arrays ---
    def _allreduce_host(self, a: Any, op: str) -> Any:
        """A new host array: ``op`` ("sum", "max", "min") of ``a`` over the ranks."""
        return a.copy()

    def _broadcast_host(self, a: Any, root: int) -> Any:
        """A new host array holding root's ``a``."""
        return a.copy()

    def _check_root(self, root: Any, who: str) -> None:
        if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < self.size:
            raise ValueError(f"{who}: root must be a rank in [0, {self.size}), got {root!r}")


class SingleCommunicator(Communicator):
    """One process, no launcher: every collective returns its input's values (as a new array),
    so a data-parallel script also runs unlaunched."""

    name = "single"


def _check_array(x: Any, who: str) -> None:
    if not is_array(x):
        hint = " (pass its .data)" if hasattr(x, "data") and is_array(x.data) else ""
        raise TypeError(f"{who}: expected an array of any backend, got "
                        f"{type(x).__module__}.{type(x).__qualname__}{hint}")


def _contiguous(a: Any) -> Any:
    import numpy as np  # numpy-ok: the host side of a collective

    return np.ascontiguousarray(a)  # numpy-ok


def _back(b: Any, out: Any, like: Any) -> Any:
    """Host result ``out`` on ``like``'s backend and device."""
    if b.name == "numpy":
        return out
    return b.from_host(out, device=like.device)


# --- the registry ---
# name -> Communicator class / factory, or "module:attribute" not imported yet
_REGISTRY: dict[str, Any] = {
    "single": "xgrad.distributed.comm:SingleCommunicator",
    "mpi": "xgrad.distributed.mpi:MPICommunicator",
}
_NOT_IN_THIS_RELEASE = {
    "nccl": ("the 'nccl' communicator (NCCL through CuPy) is not part of this release: it has "
             "not been run on a GPU yet. On GPUs use the 'mpi' communicator (XGRAD_COMM=mpi): "
             "CuPy gradients are averaged through the host"),
}
_INSTANCES: dict[str, Communicator] = {}
_entry_points_loaded = False

# Variables that MPI launchers set in every process they start: MPICH/Intel MPI (Hydra, PMI),
# Open MPI, PMIx-based launchers, and Slurm's srun.
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
                  "OMPI_COMM_WORLD_RANK", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE")


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="xgrad.communicators"):
        _REGISTRY.setdefault(ep.name, ep.value)


def register(name: str, factory: Callable[[], Communicator] | str, *,
             overwrite: bool = False) -> None:
    """Register ``factory`` (a Communicator class, a function returning one, or
    ``"module:attribute"`` to import lazily) as ``name``."""
    _load_entry_points()
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"register: a communicator named {name!r} is already registered")
    if isinstance(factory, str) and ":" not in factory:
        raise ValueError(f"register({name!r}, ...): a lazy communicator is "
                         f"'module:attribute', got {factory!r}")
    if not isinstance(factory, str) and not callable(factory):
        raise TypeError(f"register({name!r}, ...): expected a Communicator class, a function "
                        f"returning one or 'module:attribute', got {type(factory).__name__}")
    _REGISTRY[name] = factory
    _INSTANCES.pop(name, None)


def registered() -> list[str]:
    """Every registered communicator name."""
    _load_entry_points()
    return list(_REGISTRY)


def launched_by_mpi() -> bool:
    """True if an MPI launcher (mpiexec, mpirun, srun) started this process."""
    if any(v in os.environ for v in _LAUNCHER_VARS):
        return True
    return int(os.environ.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1


def init(name: str | None = None) -> Communicator:
    """The communicator called ``name``; without a name ``$XGRAD_COMM``, else "mpi" when an
    MPI launcher started this process, else "single". The same name gives the same object."""
    if name is None:
        name = os.environ.get("XGRAD_COMM") or ("mpi" if launched_by_mpi() else "single")
    if not isinstance(name, str):
        raise TypeError(f"init: name must be a communicator name, got {type(name).__name__}")
    if name in _INSTANCES:
        return _INSTANCES[name]
    _load_entry_points()
    if name not in _REGISTRY:
        if name in _NOT_IN_THIS_RELEASE:
            raise CommunicatorUnavailable(f"init({name!r}): {_NOT_IN_THIS_RELEASE[name]}")
        raise CommunicatorUnavailable(f"init: unknown communicator {name!r}; registered: "
                                      f"{registered()}")
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        mod, attr = factory.split(":", 1)
        factory = getattr(importlib.import_module(mod), attr)
    comm = factory()
    if not isinstance(comm, Communicator):
        raise TypeError(f"init({name!r}): the registered factory returned a "
                        f"{type(comm).__name__}, not a Communicator")
    _INSTANCES[name] = comm
    return comm

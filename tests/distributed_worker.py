"""Training runs for tests/test_distributed.py, run on every rank of an MPI job
(``python -m xgrad.distributed.run -n N tests/distributed_worker.py JOB OUTDIR``) and, for the
one-process reference, imported by the test itself.

``train(case, comm)`` trains one small model on the global batches of a ShardedLoader and
returns its parameters as host arrays; with a one-process communicator it is exactly one
process trained on the same global batches.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import xgrad
import xgrad.distributed as dist
import xgrad.functions as F
from xgrad import nn, optim
from xgrad.data import Dataset

# case: (optimizer, dtype, backend, global batch, model, seed rule, bucket_cap_mb, clip)
CASES = {
    "sgd": ("SGD", "float64", "numpy", 12, "fixed", "same", 25, None),
    "momentum": ("MomentumSGD", "float64", "numpy", 12, "fixed", "same", 25, None),
    "adam": ("Adam", "float64", "numpy", 12, "fixed", "same", 25, None),
    "adam-f32": ("Adam", "float32", "numpy", 12, "fixed", "same", 25, None),
    "clip": ("Adam", "float64", "numpy", 12, "fixed", "same", 25, 0.05),
    "unequal": ("MomentumSGD", "float64", "numpy", 11, "fixed", "same", 25, None),
    # rank r seeded with 100 + r: only the broadcast makes the ranks start alike
    "broadcast": ("Adam", "float64", "numpy", 12, "fixed", "per-rank", 25, None),
    # lazy layers: a forward pass, then broadcast_parameters (each rank seeded differently)
    "lazy": ("Adam", "float64", "numpy", 12, "lazy-dry-run", "per-rank", 25, None),
    # lazy layers broadcast by DistributedOptimizer at its first update (same seeds)
    "lazy-auto": ("SGD", "float64", "numpy", 12, "lazy", "same", 25, None),
    # ... and with each rank seeded differently: the ranks still end identical
    "lazy-auto-seeds": ("SGD", "float64", "numpy", 12, "lazy", "per-rank", 25, None),
    "strict": ("Adam", "float64", "array_api_strict", 12, "fixed", "per-rank", 25, 0.05),
    "one-bucket": ("Adam", "float32", "numpy", 12, "fixed", "same", 1000, None),
    "many-buckets": ("Adam", "float32", "numpy", 12, "fixed", "same", 1e-5, None),
}


class Net(nn.Model):
    """Two fully connected layers (explicit sizes, or lazy ones) and one unused parameter."""

    def __init__(self, dtype: str, lazy: bool) -> None:
        self.fc1 = nn.Linear(16, None if lazy else 5, dtype=dtype)
        self.fc2 = nn.Linear(3, None if lazy else 16, dtype=dtype)
        self.unused = xgrad.Parameter(xgrad.ones((2,), dtype=dtype))

    def forward(self, x):
        return self.fc2(F.tanh(self.fc1(x)))


def dataset(n: int = 48) -> Dataset:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 5))
    return Dataset(x, (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1))


def train(case: str, comm: dist.Communicator, epochs: int = 2) -> dict[str, np.ndarray]:
    """Train ``case`` on ``comm``'s ranks; the final parameters (and unused one) on the host."""
    opt_name, dtype, backend, batch, model_kind, seeds, cap, clip = CASES[case]
    with xgrad.use_backend(backend):
        xgrad.manual_seed(100 + (comm.rank if seeds == "per-rank" else 0))
        model = Net(dtype, lazy=model_kind.startswith("lazy"))
        ds = Dataset(dataset().data.astype(dtype), dataset().label)
        loader = dist.ShardedLoader(ds, batch, comm, shuffle=True, seed=3)
        if model_kind == "lazy-dry-run":
            with xgrad.no_grad():
                model(next(iter(dist.ShardedLoader(ds, batch, comm)))[0])
        dist.broadcast_parameters(model, comm)
        kwargs = {"lr": 0.05} if opt_name != "Adam" else {"lr": 0.01}
        inner = getattr(optim, opt_name)(**kwargs).setup(model)
        if clip is not None:
            inner.add_hook(optim.ClipGrad(clip))
        opt = dist.DistributedOptimizer(inner, comm, bucket_cap_mb=cap)
        for _ in range(epochs):
            for x, t in loader:
                loss = F.softmax_cross_entropy(model(x), t)
                model.cleargrads()
                loss.backward()
                opt.update(batch_size=int(t.shape[0]))
        assert model.unused.grad is None  # no rank had a gradient: none, and not updated
        return {k: np.asarray(v) for k, v in model.state_dict().items()}


def check_no_alias(comm: dist.Communicator) -> dict:
    """The gradients a rank computed are not overwritten and not shared with what
    ``update()`` leaves behind (its buckets are new arrays, never views of a gradient)."""
    with xgrad.use_backend("numpy"):
        xgrad.manual_seed(0)
        model = Net("float64", lazy=False)
        dist.broadcast_parameters(model, comm)
        opt = dist.DistributedOptimizer(optim.SGD(0.0).setup(model), comm, bucket_cap_mb=1e-5)
        x = dataset().data[comm.rank * 4:(comm.rank + 1) * 4]
        loss = F.sum(model(x) ** 2)
        model.cleargrads()
        loss.backward()
        before = [p.grad.data for p in model.params() if p.grad is not None]
        copies = [g.copy() for g in before]
        opt.update()
        after = [p.grad.data for p in model.params() if p.grad is not None]
        return {
            "local_grads_unchanged": all(np.array_equal(a, b) for a, b in zip(before, copies)),
            "shares_memory": any(np.shares_memory(a, b) for a in after for b in before),
            "grads_overlap": any(np.shares_memory(a, b) for i, a in enumerate(after)
                                 for b in after[i + 1:]),
        }


def partial_gradients(comm: dist.Communicator) -> dict:
    """Parameter ``a`` (and the 0-d ``d``) has a gradient on every rank, ``b`` on rank 0 only,
    ``c`` on none; rank r weighs r + 1: the averaged gradients that ``update()`` leaves for
    the wrapped optimizer."""
    with xgrad.use_backend("numpy"):
        a, b, c = (xgrad.Parameter(xgrad.zeros((3,), dtype="float64")) for _ in range(3))
        d = xgrad.Parameter(xgrad.zeros((), dtype="float64"))
        opt = dist.DistributedOptimizer(optim.SGD(0.0).setup([a, b, c, d]), comm)
        x = xgrad.ones((3,), dtype="float64") * float(comm.rank + 1)
        loss = F.sum(a * x) + d * float(comm.rank + 1)
        loss = loss + F.sum(b * x) if comm.rank == 0 else loss
        loss.backward()
        opt.update(batch_size=comm.rank + 1)
        return {"a": a.grad.data.tolist(), "b": b.grad.data.tolist(), "c": c.grad is None,
                "d": [d.grad.data.shape, float(d.grad.data)]}


def collectives(comm: dist.Communicator) -> dict:
    """The communicator's collectives on numpy and array_api_strict arrays."""
    import array_api_strict as xs

    r, n = comm.rank, comm.size
    out = {"rank": r, "size": n, "local": [comm.local_rank, comm.local_size]}
    a = np.arange(4.0) + r
    out["sum"] = comm.allreduce(a).tolist()
    out["mean"] = comm.allreduce(a, "mean").tolist()
    out["max"] = comm.allreduce(np.asarray([r, -r]), "max").tolist()
    s = comm.allreduce(xs.asarray([1.0 + r, 2.0], device=xs.Device("device1")), "sum")
    out["strict"] = [type(s).__module__.split(".")[0], str(s.device), np.asarray(s._array).tolist()]
    out["bcast"] = comm.broadcast(np.full(3, float(r)), root=n - 1).tolist()
    out["bcast_obj"] = comm.bcast_obj({"from": r}, root=0)
    out["allgather_obj"] = comm.allgather_obj(r * 10)
    comm.barrier()
    out["metrics"] = dist.average_metrics(comm, {"acc": float(r), "loss": xgrad.asarray(2.0)},
                                          weight=r + 1)
    with xgrad.use_backend("numpy"):
        bn = nn.BatchNorm()
        bn(xgrad.asarray(np.random.default_rng(r).standard_normal((4, 3))))
        dist.broadcast_parameters(bn, comm)
        out["bn"] = [bn.avg_mean.tolist(), bn.gamma.data.tolist()]
    ds = Dataset(np.arange(23.0)[:, None], np.arange(23))
    loader = dist.ShardedLoader(ds, 8, comm, shuffle=True, seed=5)
    loader.set_epoch(1)
    out["shards"] = [t.tolist() for _, t in loader]
    return out


def mismatch(comm: dist.Communicator, where: str) -> str:
    """The error each rank gets when rank 1 built a different model."""
    with xgrad.use_backend("numpy"):
        xgrad.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3, dtype="float64"),
                              nn.Linear(2 if comm.rank != 1 else 3, 4, dtype="float64"))
        opt = dist.DistributedOptimizer(optim.SGD().setup(model), comm)
        try:
            if where == "broadcast":
                dist.broadcast_parameters(model, comm)
            else:
                loss = F.sum(model(xgrad.ones((2, 3), dtype="float64")))
                loss.backward()
                opt.update()
        except dist.DistributedError as e:
            return str(e)
        return "no error"


def main() -> None:
    job, outdir = sys.argv[1], Path(sys.argv[2])
    comm = dist.init()
    if job == "raise":
        xgrad.manual_seed(0)
        model = nn.Linear(2, 3)
        opt = dist.DistributedOptimizer(optim.SGD().setup(model), comm)
        if comm.rank == comm.size - 1:
            raise ValueError(f"deliberate failure on rank {comm.rank}")
        for _ in range(1000):  # the other ranks wait in the gradient allreduce
            F.sum(model(xgrad.ones((1, 3)))).backward()
            opt.update()
        return
    res = {"init": [type(comm).__name__, dist.launched_by_mpi()]}
    res["collectives"] = collectives(comm)
    res["no_alias"] = check_no_alias(comm)
    res["partial"] = partial_gradients(comm)
    res["mismatch"] = [mismatch(comm, "broadcast"), mismatch(comm, "update")]
    for case in CASES:
        np.savez(outdir / f"{case}-rank{comm.rank}.npz", **train(case, comm))
    (outdir / f"rank{comm.rank}.json").write_text(json.dumps(res))


if __name__ == "__main__":
    main()

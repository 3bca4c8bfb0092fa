"""Keeping the ranks' models identical: one broadcast of the parameters, then averaged
gradients before every update.

:func:`broadcast_parameters` copies root's parameters and buffers to every rank.
:class:`DistributedOptimizer` wraps any xgrad optimizer: its ``update()`` averages every
parameter's gradient over the ranks, then runs the wrapped optimizer (and its hooks) unchanged,
so every rank applies the same update to the same parameters and they stay bit-identical.

Gradients travel in a few fused flat buckets, one or more per (backend, device, dtype), each at
most ``bucket_cap_mb``: built with ``concat`` of the flattened gradients, reduced in one
collective each, and cut back into gradients by slicing (never item assignment, so every
backend works). A parameter without a gradient on some rank is sent as zeros so that every rank
sends the same layout; one without a gradient on every rank keeps none, as in one process.

Before its first collective of every update, ``update()`` checks with one fixed-size
collective that every rank holds the same parameter names, shapes, dtypes and backends; when
they differ, every rank gathers every rank's list and raises the same
:class:`~xgrad.distributed.DistributedError` instead of a hang.
"""

from __future__ import annotations

import numbers
import zlib
from collections.abc import Iterable
from typing import Any

from xgrad.backends import backend_of
from xgrad.core import Parameter, Variable, _WeakIdentityDict, get_namespace, numel
from xgrad.distributed.comm import Communicator, DistributedError
from xgrad.dtypes import dtype_name
from xgrad.nn.layer import Layer

__all__ = ["DistributedOptimizer", "broadcast_parameters"]

# Parameters whose values were broadcast from a root: the rest are broadcast at the next update.
_SYNCED = _WeakIdentityDict()  # Parameter -> True (keyed by identity)


def _host64(values: list) -> Any:
    import numpy as np  # numpy-ok: small bookkeeping vectors reduced on the host

    return np.asarray(values, dtype=np.float64)  # numpy-ok


def _signature(entries: list[tuple[str, Any]]) -> list[tuple]:
    """(name, shape, dtype, backend, broadcast yet) of each (name, Parameter | array | None)."""
    sig = []
    for name, v in entries:
        if v is None:
            sig.append((name, None, None, None, False))
            continue
        d = v.data if isinstance(v, Variable) else v
        sig.append((name, tuple(d.shape), dtype_name(d.dtype),
                    backend_of(d).name, isinstance(v, Parameter) and v in _SYNCED))
    return sig


def _describe(entry: tuple | None) -> str:
    if entry is None:
        return "nothing there"
    name, shape, dtype, backend, _ = entry
    if shape is None:
        return f"{name!r} (not created yet: a lazy layer before its first call)"
    return f"{name!r} of shape {shape} {dtype} on {backend}"


def _mismatch(sigs: list[list[tuple]], who: str) -> str | None:
    """The message naming how each rank's list differs from rank 0's, or None if all agree."""
    lines = []
    ref = sigs[0]
    for r, sig in enumerate(sigs[1:], start=1):
        if sig == ref:
            continue
        for i in range(max(len(sig), len(ref))):
            a = ref[i] if i < len(ref) else None
            b = sig[i] if i < len(sig) else None
            if a == b:
                continue
            if a is not None and b is not None and a[:4] == b[:4]:
                lines.append(f"rank 0 has broadcast {a[0]!r} from the root but rank {r} has "
                             f"not (call broadcast_parameters on every rank)")
            else:
                lines.append(f"entry {i}: rank 0 has {_describe(a)}, rank {r} has "
                             f"{_describe(b)}")
            break
    if not lines:
        return None
    return (f"{who}: the ranks do not hold the same model (every rank must build the same "
            f"layers with the same sizes and dtypes): " + "; ".join(lines))


def _check_same(comm: Communicator, sig: list, who: str) -> None:
    """Raise the same DistributedError on every rank if the ranks' ``sig`` differ: one
    fixed-size collective when they agree, a gather of every list when they do not."""
    if comm.size == 1:
        return
    crc = float(zlib.crc32(repr(sig).encode()))
    both = comm.allreduce(_host64([crc, -crc]), op="max")
    if both[0] == -both[1]:
        return
    msg = _mismatch(comm.allgather_obj(sig), who)
    raise DistributedError(msg or f"{who}: the ranks do not hold the same model")


def _groups(arrays: list[Any], cap_bytes: float) -> list[list[int]]:
    """Indices of ``arrays`` in buckets: per (array type, device, dtype), in order, each
    bucket at most ``cap_bytes`` (an array larger than that alone)."""
    by_key: dict[tuple, list[list[int]]] = {}
    sizes: dict[tuple, float] = {}
    for i, a in enumerate(arrays):
        key = (type(a), a.device, a.dtype)
        nbytes = numel(a) * _itemsize(a)
        buckets = by_key.setdefault(key, [[]])
        if buckets[-1] and sizes[key] + nbytes > cap_bytes:
            buckets.append([])
            sizes[key] = 0.0
        buckets[-1].append(i)
        sizes[key] = sizes.get(key, 0.0) + nbytes
    return [b for buckets in by_key.values() for b in buckets]


def _itemsize(a: Any) -> int:
    xp = get_namespace(a)
    if xp.isdtype(a.dtype, "bool"):
        return 1
    info = xp.finfo if xp.isdtype(a.dtype, ("real floating", "complex floating")) else xp.iinfo
    return info(a.dtype).bits // 8


def _flatten(arrays: list[Any]) -> Any:
    """One new flat array (never a view of any input) holding ``arrays`` one after another."""
    xp = get_namespace(arrays[0])
    return xp.concat([xp.reshape(a, (-1,)) for a in arrays])


def _unflatten(flat: Any, like: list[Any]) -> list[Any]:
    """``flat`` cut by slicing into arrays shaped like ``like``."""
    xp = get_namespace(flat)
    out, off = [], 0
    for a in like:
        n = numel(a)
        out.append(xp.reshape(flat[off:off + n], tuple(a.shape)))
        off += n
    return out


def _broadcast_arrays(comm: Communicator, arrays: list[Any], root: int,
                      cap_bytes: float) -> list[Any]:
    """Root's values of ``arrays`` on every rank, in fused buckets (root keeps its arrays)."""
    out = list(arrays)
    for idx in _groups(arrays, cap_bytes):
        flat = comm.broadcast(_flatten([arrays[i] for i in idx]), root=root)
        if comm.rank != root:
            for i, a in zip(idx, _unflatten(flat, [arrays[i] for i in idx])):
                out[i] = a
    return out


def _scaled(g: Any, w: float) -> Any:
    """``g * w`` as an array of ``g``'s type (NumPy makes 0-d products scalars)."""
    if w == 1.0:
        return g
    out = g * w
    return out if type(out) is type(g) else get_namespace(g).asarray(out)


def _cap(bucket_cap_mb: float, who: str) -> float:
    if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) \
            or not bucket_cap_mb > 0:
        raise ValueError(f"{who}: bucket_cap_mb must be a positive number, got "
                         f"{bucket_cap_mb!r}")
    return float(bucket_cap_mb) * 2**20


def _check_comm(comm: Any, who: str) -> None:
    if not isinstance(comm, Communicator):
        raise TypeError(f"{who}: comm must be a Communicator (xgrad.distributed.init()), got "
                        f"{type(comm).__name__}")


def broadcast_parameters(model: Layer | Iterable[Parameter], comm: Communicator,
                         root: int = 0, bucket_cap_mb: float = 25) -> None:
    """Give every rank root's values of ``model``'s parameters and buffers (batch-norm
    statistics), after checking that every rank holds the same ones. Parameters of lazy
    layers that do not exist yet are broadcast by ``DistributedOptimizer`` at its first
    update after their creation (or call this again after the first forward pass)."""
    who = "broadcast_parameters"
    _check_comm(comm, who)
    comm._check_root(root, who)
    cap = _cap(bucket_cap_mb, who)
    if isinstance(model, Layer):
        entries = [(e.name, e.value, e) for e in model.walk() if e.kind != "layer"]
    elif isinstance(model, Iterable) and not isinstance(model, Variable):
        entries = [(str(i), p, None) for i, p in enumerate(model)]
        for name, p, _ in entries:
            if not isinstance(p, Parameter):
                raise TypeError(f"{who}: item {name} is a {type(p).__name__}, not a Parameter")
    else:
        raise TypeError(f"{who}: expected a Layer or an iterable of Parameters, got "
                        f"{type(model).__name__}")
    # Whether a parameter was broadcast before does not matter here: everything is sent now.
    sig = [s[:4] + (False,) for s in _signature([(n, v) for n, v, _ in entries])]
    if comm.size > 1:
        msg = _mismatch(comm.allgather_obj(sig), who)
        if msg:
            raise DistributedError(msg)
    present = [(v, e) for _, v, e in entries if v is not None]
    arrays = [v.data if isinstance(v, Variable) else v for v, _ in present]
    if comm.size > 1 and arrays:
        new = _broadcast_arrays(comm, arrays, root, cap)
        for (v, e), a, old in zip(present, new, arrays):
            if a is old:
                continue
            if isinstance(v, Variable):
                v.data = a
            else:
                setattr(e.owner, e.attr, a)
    for v, _ in present:
        if isinstance(v, Parameter):
            _SYNCED[v] = True


class DistributedOptimizer:
    """Wrap ``optimizer`` (any xgrad optimizer, set up or not) so that ``update()`` averages
    the gradients over the ranks of ``comm`` before the wrapped update and its hooks run.

    ``update(batch_size=n)`` weights this rank's gradient by its ``n`` examples (unequal
    shards: the result is the gradient of the mean loss over the global batch); without it
    every rank weighs the same. Parameters never broadcast from the root (lazy layers created
    since, or every parameter if :func:`broadcast_parameters` was not called) are broadcast
    from ``root`` before their first update. Everything else (``lr``, ``add_hook``,
    ``state_dict``, ...) is the wrapped optimizer's."""

    def __init__(self, optimizer: Any, comm: Communicator, *, bucket_cap_mb: float = 25,
                 root: int = 0) -> None:
        who = "DistributedOptimizer"
        if not callable(getattr(optimizer, "update", None)) \
                or not callable(getattr(optimizer, "setup", None)):
            raise TypeError(f"{who}: expected an xgrad optimizer (with setup and update), got "
                            f"{type(optimizer).__name__}")
        _check_comm(comm, who)
        comm._check_root(root, who)
        self.optimizer, self.comm, self.root = optimizer, comm, root
        self.bucket_cap_mb = bucket_cap_mb
        self._cap = _cap(bucket_cap_mb, who)

    def __getattr__(self, name: str) -> Any:
        if name == "optimizer":  # not set yet (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r}, {self.comm!r})"

    def setup(self, target: Layer | Iterable[Parameter]) -> DistributedOptimizer:
        """Set up the wrapped optimizer on ``target``; returns self."""
        self.optimizer.setup(target)
        return self

    def _named(self) -> list[tuple[str, Parameter]]:
        target = self.optimizer.target
        if target is None:
            raise RuntimeError(f"DistributedOptimizer: call .setup(model) on it or on "
                               f"{type(self.optimizer).__name__} first")
        if isinstance(target, Layer):
            return list(target.named_params())
        return [(str(i), p) for i, p in enumerate(target)]

    def update(self, batch_size: int | None = None) -> None:
        """Average the gradients over the ranks (weighted by ``batch_size`` if given), then
        run the wrapped optimizer's update."""
        who = "DistributedOptimizer.update"
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 0
                                       or not isinstance(batch_size, numbers.Integral)):
            raise ValueError(f"{who}: batch_size must be an int >= 0 (the examples behind "
                             f"this rank's loss), got {batch_size!r}")
        comm = self.comm
        if comm.size == 1:
            self.optimizer.update()
            return
        named = self._named()
        _check_same(comm, _signature(named), who)
        params = [p for _, p in named]
        fresh = [p for p in params if p not in _SYNCED]
        if fresh:
            new = _broadcast_arrays(comm, [p.data for p in fresh], self.root, self._cap)
            for p, a in zip(fresh, new):
                p.data = a
                _SYNCED[p] = True
        w = 1.0 if batch_size is None else float(batch_size)
        meta = comm.allreduce(_host64([w] + [float(p.grad is not None) for p in params]))
        total, counts = float(meta[0]), meta[1:]
        grads = []
        for p in params:
            d = p.data
            if p.grad is None:  # zeros, so that every rank sends the same layout
                g = get_namespace(d).zeros(tuple(d.shape), dtype=d.dtype, device=d.device)
            else:
                g = p.grad.data
            grads.append(_scaled(g, w))
        for idx in _groups(grads, self._cap):
            flat = comm.allreduce(_flatten([grads[i] for i in idx]), op="sum")
            if total != 1.0 and total > 0:
                flat = flat / total
            for i, g in zip(idx, _unflatten(flat, [grads[i] for i in idx])):
                params[i].grad = Variable(g, requires_grad=False) if counts[i] > 0 else None
        self.optimizer.update()

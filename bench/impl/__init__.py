"""One implementation of every workload per library, behind one interface.

Each library's module defines ``Impl``, a subclass of :class:`BaseImpl`, whose builder methods
(``chain``, ``mlp``, ``matmul_tanh``, ``tanh_chain``, ``cnn``, ``conv2d``) take the host data of
``bench.workloads.make_data`` and return ``step()``: one forward + backward (+ SGD update),
returning arrays whose sums are the case's checksum. A worker process imports exactly one module.

``xgrad@REF`` (any git revision of this repository, e.g. ``xgrad@HEAD~3``) is xgrad as it was at
that revision: its ``xgrad`` package is extracted once into ``bench/.trees/<commit>/`` and put
first on the import path, so a run can time the current engine side by side with an older one.
"""

from __future__ import annotations

import importlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODULES = {
    "xgrad": "bench.impl.xgrad_impl",
    "floor": "bench.impl.floor_impl",
    "dezero": "bench.impl.dezero_impl",
    "torch": "bench.impl.torch_impl",
    "mygrad": "bench.impl.mygrad_impl",
    "autograd": "bench.impl.autograd_impl",
}
PEERS = ("dezero", "torch", "mygrad", "autograd")

Step = Callable[[], Any]


class Unsupported(Exception):
    """This library cannot run this case (or this backend); the table shows the reason."""


class BaseImpl:
    """Backend plumbing shared by the implementations: arrays, synchronisation, GPU memory."""

    name = ""
    gpu = True  # runs on the cupy backend
    ref = ""  # xgrad@REF: the git revision (see load())

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.on_gpu = backend == "cupy"
        if self.on_gpu and not self.gpu:
            raise Unsupported(f"{self.name} has no GPU support")
        if self.on_gpu:
            import cupy  # imported only for GPU runs

            self.xp: Any = cupy
        else:
            import numpy

            self.xp = numpy
        self._gpu_base = 0

    def version(self) -> str:
        """The library's version string."""
        raise NotImplementedError

    def asarray(self, a: Any) -> Any:
        """Host array ``a`` as an array of this backend (numpy or cupy)."""
        return self.xp.asarray(a)

    def sync(self) -> None:
        """Wait for queued device work (no-op on the CPU)."""
        if self.on_gpu:
            self.xp.cuda.Device().synchronize()

    def gpu_mem_reset(self) -> None:
        """Empty the memory pool's cache and remember what stays allocated."""
        pool = self.xp.get_default_memory_pool()
        self.sync()
        pool.free_all_blocks()
        self._gpu_base = pool.total_bytes()

    def gpu_mem_peak(self) -> int:
        """Bytes the pool grew by since :meth:`gpu_mem_reset` (the pool keeps freed blocks
        cached, so its size is the peak of what was live, rounded up to its bins)."""
        self.sync()
        return self.xp.get_default_memory_pool().total_bytes() - self._gpu_base

    def build(self, kind: str, data: dict) -> Step:
        """The step function of workload ``kind`` on ``data``."""
        fn = getattr(self, kind, None)
        if fn is None:
            raise Unsupported(f"{self.name} has no {kind} implementation")
        return fn(**data)


def checkout(ref: str) -> Path:
    """A folder holding the ``xgrad`` package as it was at git revision ``ref`` of this
    repository (extracted on first use into ``bench/.trees/<commit>``)."""
    root = Path(__file__).resolve().parent.parent.parent
    p = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                       cwd=root, capture_output=True, text=True)
    if p.returncode:
        raise ValueError(f"xgrad@{ref}: {ref!r} is not a commit of {root}")
    sha = p.stdout.strip()
    dest = root / "bench" / ".trees" / sha
    if not (dest / "xgrad" / "__init__.py").exists():
        tar = subprocess.run(["git", "archive", "--format=tar", sha, "xgrad"], cwd=root,
                             capture_output=True, check=True).stdout
        tmp = dest.with_name(f"{sha}.{os.getpid()}.tmp")
        # our own repository's archive; the "data" filter where tarfile has it (3.10.12+)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            t.extractall(tmp, **safe)
        try:
            tmp.rename(dest)
        except OSError:  # another worker extracted it first
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def load(name: str, backend: str) -> BaseImpl:
    """Import library ``name``'s implementation and instantiate it for ``backend``;
    ``xgrad@REF`` is xgrad at git revision ``REF`` (see the module docstring)."""
    lib, _, ref = name.partition("@")
    if lib not in MODULES or (ref and lib != "xgrad"):
        raise ValueError(f"unknown library {name!r}; known: {', '.join(MODULES)}, xgrad@REF")
    if ref:
        if "xgrad" in sys.modules:
            raise RuntimeError(f"{name}: another xgrad is already imported in this process")
        sys.path.insert(0, str(checkout(ref)))
    impl = importlib.import_module(MODULES[lib]).Impl(backend)
    impl.ref = ref
    return impl

"""The benchmark cases and their input data.

Every library builds a case from the same host (NumPy) data, made here from a fixed seed, so the
first steps of all libraries compute the same numbers; the orchestrator compares their checksums
with the floor's to catch a peer or an xgrad kernel doing different math.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The per-op chain: one cycle is sin, tanh, exp, then a product with a Variable w (4 ops).
CHAIN_CYCLE = 4


@dataclass(frozen=True)
class Case:
    """One measured configuration of a workload."""

    id: str                      # unique key, e.g. "C-mlp784-f32"
    workload: str                # the workload's letter: A..F
    kind: str                    # the builder every implementation provides (Impl.<kind>)
    title: str                   # what the table shows
    args: dict                   # arguments of the data generator and the builder (CPU)
    gpu_args: dict = field(default_factory=dict)    # overrides on the GPU
    quick_args: dict = field(default_factory=dict)  # overrides under --quick
    unit: str = "ms"             # "us/op": time divided by args["n"]; "ms": per step
    timed: bool = True           # timed in interleaved rounds
    memory: bool = False         # peak memory measured in a fresh process
    in_quick: bool = True        # part of --quick
    # Short rounds, many of them: a burst of load from other processes then hits every library
    # alike instead of one library's whole sample.
    rounds: int = 25             # interleaved rounds (each lib runs a batch of steps per round)
    quick_rounds: int = 12
    round_s: float = 0.08        # target seconds per lib per round (sets the batch size)
    warmup: int = 2
    dtype: str = "float64"
    # Memory runs warm up on these (smaller) arguments: lazy initialisation is not the
    # workload's memory, and a full-size warm-up would leave a heap the measured step reuses.
    memory_warmup: dict = field(default_factory=dict)

    def resolved(self, backend: str, quick: bool) -> dict:
        """The builder arguments for this backend and mode."""
        a = dict(self.args)
        if backend == "cupy":
            a.update(self.gpu_args)
        if quick:
            a.update(self.quick_args)
        return a

    def per_unit(self, args: dict) -> float:
        """Divisor turning seconds per step into the reported unit."""
        return args["n"] / 1e6 if self.unit == "us/op" else 1e-3


CASES: list[Case] = [
    Case("A-chain1k", "A", "chain", "A: 1,000-op chain, shape (1,) f64, fwd+bwd",
         {"n": 1000}, unit="us/op"),
    Case("B-chain100k", "B", "chain", "B: 100,000-op chain, shape (1,) f64, fwd+bwd",
         {"n": 100_000}, unit="ms", memory=True, rounds=5, quick_rounds=2, round_s=0.0,
         warmup=1, memory_warmup={"n": 1000}),
    Case("C-mlp784-f32", "C", "mlp", "C: MLP 784-1000-10 step, batch 100, f32",
         {"sizes": (784, 1000, 10), "batch": 100}, dtype="float32"),
    Case("C-mlp784-f64", "C", "mlp", "C: MLP 784-1000-10 step, batch 100, f64",
         {"sizes": (784, 1000, 10), "batch": 100}, dtype="float64"),
    Case("C-mlp4096-f32", "C", "mlp", "C: MLP 4096-4096-10 step, batch 1024, f32",
         {"sizes": (4096, 4096, 10), "batch": 1024}, dtype="float32",
         rounds=7, quick_rounds=3, round_s=0.0, warmup=1),
    Case("C-mlp4096-f64", "C", "mlp", "C: MLP 4096-4096-10 step, batch 1024, f64",
         {"sizes": (4096, 4096, 10), "batch": 1024}, dtype="float64",
         rounds=6, round_s=0.0, warmup=1, in_quick=False),
    Case("D-mmtanh-f32", "D", "matmul_tanh", "D: 4 x (matmul+tanh) 2048x2048, f32, fwd+bwd",
         {"n": 2048, "layers": 4}, gpu_args={"n": 8192}, quick_args={"n": 1024},
         dtype="float32", rounds=5, quick_rounds=3, round_s=0.0, warmup=1),
    Case("D-mmtanh-f64", "D", "matmul_tanh", "D: 4 x (matmul+tanh) 2048x2048, f64, fwd+bwd",
         {"n": 2048, "layers": 4}, gpu_args={"n": 8192}, dtype="float64",
         rounds=3, round_s=0.0, warmup=1, in_quick=False),
    Case("E-tanh200-mem", "E", "tanh_chain", "E: 200 x tanh on (1000,1000) f32, fwd+bwd",
         {"layers": 200, "shape": (1000, 1000)}, dtype="float32", timed=False, memory=True,
         memory_warmup={"layers": 2}),
    Case("F-cnn-f32", "F", "cnn", "F: CNN step (conv3x3x16+relu+pool+linear), batch 32, f32",
         {"batch": 32, "channels": 16, "image": 28}, dtype="float32"),
    Case("F-cnn-f64", "F", "cnn", "F: CNN step (conv3x3x16+relu+pool+linear), batch 32, f64",
         {"batch": 32, "channels": 16, "image": 28}, dtype="float64", in_quick=False),
    Case("F-conv2d-f32", "F", "conv2d", "F: conv2d (32,16,28,28) * 32 3x3, pad 1, f32, fwd+bwd",
         {"shape": (32, 16, 28, 28), "filters": 32}, dtype="float32", memory=True,
         memory_warmup={"shape": (2, 16, 28, 28)}),
    Case("F-conv2d-f64", "F", "conv2d", "F: conv2d (32,16,28,28) * 32 3x3, pad 1, f64, fwd+bwd",
         {"shape": (32, 16, 28, 28), "filters": 32}, dtype="float64", memory=True,
         memory_warmup={"shape": (2, 16, 28, 28)}, in_quick=False),
]

CASES_BY_ID = {c.id: c for c in CASES}
LR = 0.1  # SGD learning rate of the training steps


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _normal(rng: np.random.Generator, shape: tuple, scale: float, dtype: str) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(dtype)


def make_data(case: Case, args: dict) -> dict[str, Any]:
    """Host (NumPy) inputs of ``case``: the keyword arguments of ``Impl.<case.kind>``."""
    rng, dt = _rng(), case.dtype
    if case.kind == "chain":
        return {"x": np.array([0.5], dtype=dt), "w": np.array([0.5], dtype=dt), "n": args["n"]}
    if case.kind == "mlp":
        sizes, batch = args["sizes"], args["batch"]
        params = []
        for i, o in zip(sizes[:-1], sizes[1:]):
            params += [_normal(rng, (i, o), math.sqrt(1 / i), dt), np.zeros(o, dtype=dt)]
        x = _normal(rng, (batch, sizes[0]), 1.0, dt)
        t = rng.integers(0, sizes[-1], batch).astype(np.int64)
        return {"x": x, "t": t, "params": params, "lr": LR}
    if case.kind == "matmul_tanh":
        n = args["n"]
        ws = [_normal(rng, (n, n), math.sqrt(1 / n), dt) for _ in range(args["layers"])]
        return {"x": _normal(rng, (n, n), 1.0, dt), "ws": ws}
    if case.kind == "tanh_chain":
        return {"x": _normal(rng, args["shape"], 1.0, dt), "layers": args["layers"]}
    if case.kind == "cnn":
        b, c, side = args["batch"], args["channels"], args["image"]
        flat = c * (side // 2) ** 2  # after the 2x2 pooling
        params = [_normal(rng, (c, 1, 3, 3), math.sqrt(2 / 9), dt), np.zeros(c, dtype=dt),
                  _normal(rng, (flat, 10), math.sqrt(1 / flat), dt), np.zeros(10, dtype=dt)]
        x = _normal(rng, (b, 1, side, side), 1.0, dt)
        t = rng.integers(0, 10, b).astype(np.int64)
        return {"x": x, "t": t, "params": params, "lr": LR}
    if case.kind == "conv2d":
        shape, oc = args["shape"], args["filters"]
        c = shape[1]
        return {"x": _normal(rng, shape, 1.0, dt),
                "W": _normal(rng, (oc, c, 3, 3), math.sqrt(1 / (9 * c)), dt),
                "b": np.zeros(oc, dtype=dt)}
    raise ValueError(f"unknown workload kind {case.kind!r}")


def select(ids_or_letters: list[str] | None, quick: bool) -> list[Case]:
    """The cases to run: by letter (``A``) or id (``C-mlp784-f32``); --quick drops the slow."""
    if not ids_or_letters:
        return [c for c in CASES if c.in_quick or not quick]
    wanted = {s.strip() for s in ids_or_letters if s.strip()}
    unknown = wanted - {c.workload for c in CASES} - set(CASES_BY_ID)
    if unknown:
        raise SystemExit(f"unknown workloads {sorted(unknown)}; known: A..F or "
                         f"{', '.join(CASES_BY_ID)}")
    return [c for c in CASES
            if c.id in wanted or (c.workload in wanted and (c.in_quick or not quick))]

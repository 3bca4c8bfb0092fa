"""Which float32 workloads create float64 arrays: run each once, small, recording the dtype of
every Function's output (forwards and the gradient nodes of backward) and of the step's results.

    python -m bench.dtypes [--backend numpy]     # prints one JSON object: case id -> offenders

A float64 array inside a float32 model is a silent 2-5x slowdown (NumPy 2 promotes a float32
array combined with a float64 array, e.g. a Python scalar wrapped as ``asarray(1.0)``), so the
benchmark report and ``tests/test_bench.py`` both run this check.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workloads import CASES, Case, make_data  # noqa: E402

# Small sizes of each workload kind: the dtypes do not depend on the size.
TINY = {
    "chain": {"n": 8},
    "mlp": {"sizes": (6, 5, 3), "batch": 4},
    "matmul_tanh": {"n": 8, "layers": 2},
    "tanh_chain": {"layers": 3, "shape": (4, 4)},
    "cnn": {"batch": 2, "channels": 2, "image": 6},
    "conv2d": {"shape": (2, 2, 5, 5), "filters": 3},
}


def float32_cases() -> list[Case]:
    """The workloads whose data is float32."""
    return [c for c in CASES if c.dtype == "float32"]


def _function_classes() -> list[type]:
    from xgrad.core import Function

    out, todo = [], [Function]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return out


def _recording(cls: type, forward: Callable, seen: list) -> Callable:
    def forward_recorded(self: Any, *xs: Any) -> Any:
        ys = forward(self, *xs)
        for y in ys if isinstance(ys, (tuple, list)) else (ys,):
            if hasattr(y, "dtype"):
                seen.append((cls.__name__, str(y.dtype)))
        return ys
    return forward_recorded


def float_dtypes(case: Case, backend: str = "numpy") -> list[tuple[str, str]]:
    """(producer, dtype) of every floating-point array one xgrad step of ``case`` (at a tiny
    size) produced: each Function's forward output and the step's results."""
    from bench.impl import load

    impl = load("xgrad", backend)
    seen: list[tuple[str, str]] = []
    patched = [(cls, vars(cls)["forward"]) for cls in _function_classes()
               if "forward" in vars(cls)]
    try:
        for cls, fwd in patched:
            cls.forward = _recording(cls, fwd, seen)
        step = impl.build(case.kind, make_data(case, {**case.args, **TINY[case.kind]}))
        outs = step()
    finally:
        for cls, fwd in patched:
            cls.forward = fwd
    seen += [("step result", str(o.dtype)) for o in (outs if isinstance(outs, tuple) else (outs,))]
    return [s for s in seen if "float" in s[1]]


def float64_leaks(backend: str = "numpy") -> dict[str, list[str]]:
    """For each float32 workload, the sorted distinct producers of non-float32 floats."""
    out = {}
    for case in float32_cases():
        seen = float_dtypes(case, backend)
        if not seen:
            raise RuntimeError(f"{case.id}: the dtype hook recorded nothing")
        out[case.id] = sorted({f"{name} -> {dt}" for name, dt in seen if dt != "float32"})
    return out


def main(argv: list[str] | None = None) -> None:
    """Print the float64 producers of each float32 workload as JSON."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    a = p.parse_args(argv)
    print(json.dumps(float64_leaks(a.backend)))


if __name__ == "__main__":
    main()

"""Helpers shared by the orchestrator (run.py) and the per-library worker processes."""

from __future__ import annotations

import os
import platform
import re
import socket
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"

# The machine image sets these for its own builds; the benchmark measures OpenBLAS's own choice.
UNSET_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
# glibc's allocator settings per kind of run (environment variables read at process start):
# - "default": glibc as users get it (a dynamic mmap threshold; big temporaries are often
#   mapped, or trimmed from the heap, and page-faulted in afresh on every step);
# - "tuned": arrays up to 32 MiB (glibc's largest fixed mmap threshold on 64-bit) come from the
#   heap, and freed heap memory is never trimmed, so a step reuses pages instead of faulting;
# - "memory": every allocation from 64 KiB up is mapped, so a freed array leaves the resident
#   set at once and the resident high-water mark is the true peak of live data.
MALLOC_ENV = {
    "default": {},
    "tuned": {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)},
    "memory": {"MALLOC_MMAP_THRESHOLD_": str(64 * 2**10)},
}


def child_env(threads: int, malloc: str = "default") -> dict[str, str]:
    """The environment of a worker: threads pinned, the image's OpenBLAS overrides removed,
    glibc's allocator set per ``MALLOC_ENV[malloc]``, the checkout importable."""
    env = dict(os.environ)
    for k in UNSET_ENV:
        env.pop(k, None)
    for k in THREAD_ENV:
        env[k] = str(threads)
    env["BENCH_THREADS"] = str(threads)
    for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        env.pop(k, None)
    env.update(MALLOC_ENV[malloc])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The name of CUDA device 0, or None when CuPy or a GPU is missing."""
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
    except Exception:
        return None
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def slug(text: str) -> str:
    """``text`` as a lowercase file-name-safe string."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_name(backend: str) -> str:
    """Host name plus the CPU (or, for the cupy backend, GPU) model, as a file-name stem."""
    host = socket.gethostname().split(".")[0]
    device = (gpu_name() or "unknown-gpu") if backend == "cupy" else cpu_name()
    return slug(f"{host}-{device}")


def summarize(times: list[float]) -> dict[str, float]:
    """Median, quartiles and minimum of a list of timings (seconds)."""
    ts = sorted(times)
    if len(ts) >= 4:
        q1, _, q3 = statistics.quantiles(ts, n=4)
    else:
        q1, q3 = ts[0], ts[-1]
    return {"median": statistics.median(ts), "q1": q1, "q3": q3, "min": ts[0], "n": len(ts)}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_reset() -> int:
    """Reset the resident-set high-water mark to the current resident set; return it (bytes)."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def rss_peak() -> int:
    """The resident-set high-water mark since the last :func:`rss_reset` (bytes)."""
    return _status_kib("VmHWM") * 1024


def python_version() -> str:
    """``3.11.7`` style version of the running interpreter."""
    return ".".join(map(str, sys.version_info[:3]))


def to_float(v: Any) -> float:
    """The sum of an array of any of the benchmarked libraries, as a Python float (checksums)."""
    import numpy as np

    if hasattr(v, "detach"):  # torch
        v = v.detach().cpu().numpy()
    elif hasattr(v, "get") and not isinstance(v, np.ndarray):  # cupy
        v = v.get()
    return float(np.sum(np.asarray(v, dtype=np.float64)))

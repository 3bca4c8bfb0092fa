"""``embed_id`` backward (the scatter-add of indexing backward) on a 50,000 x 256 float32 table
with 4,096 ids: time and memory per backend, each backend in its own process.

    python bench/scatter_add.py [--backend array_api_strict,numpy] [--rounds 7]
                                [--vocab 50000] [--dim 256] [--ids 4096]

array_api_strict has no native scatter-add, so it runs the portable ``Backend.scatter_add``
(sort by destination, segmented scan, ``searchsorted``); NumPy runs ``np.add.at``. Reported:
the median wall time of the backward pass alone (a fresh forward before each round), the peak
of memory traced by ``tracemalloc`` during one backward (NumPy's allocations included), and the
rise of peak RSS during one backward (Linux: VmHWM reset through /proc/self/clear_refs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import child_env  # noqa: E402


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(backend_name: str, vocab: int, dim: int, n_ids: int, rounds: int) -> dict:
    """Run in the worker process: the numbers for one backend."""
    import numpy as np

    import xgrad.functions as F
    from xgrad import Parameter, Variable
    from xgrad.testing.plugin import BackendCase

    b = BackendCase(backend_name)
    rng = np.random.default_rng(0)
    w = Parameter(b.asarray(rng.standard_normal((vocab, dim)).astype(np.float32)))
    ids = b.asarray(rng.integers(0, vocab, size=n_ids))
    gy = Variable(b.asarray(rng.standard_normal((n_ids, dim)).astype(np.float32)))

    def forward() -> Variable:
        w.grad = None
        return (F.embed_id(ids, w) * gy).sum()

    forward().backward()  # warm-up
    times = []
    for _ in range(rounds):
        loss = forward()
        t0 = time.perf_counter()
        loss.backward()
        times.append(time.perf_counter() - t0)
    loss = forward()
    w.grad = None
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    loss.backward()
    traced = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    loss = forward()
    w.grad = None
    rss = None
    if _reset_peak_rss():
        before = _status_kib("VmRSS")
        loss.backward()
        after = _status_kib("VmHWM")
        if before is not None and after is not None:
            rss = (after - before) * 1024
    want = np.zeros((vocab, dim), np.float32)
    np.add.at(want, b.backend.to_host(ids), b.backend.to_host(gy.data))
    got = b.backend.to_host(w.grad.data)
    return {"backend": backend_name, "median_s": statistics.median(times),
            "min_s": min(times), "traced_peak_bytes": traced, "rss_rise_bytes": rss,
            "grad_bytes": vocab * dim * 4, "max_abs_err": float(np.abs(got - want).max())}


def main() -> None:
    """Parse arguments, run one worker process per backend, print a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", default="array_api_strict,numpy")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--vocab", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--ids", type=int, default=4_096)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(measure(a.worker, a.vocab, a.dim, a.ids, a.rounds)))
        return
    rows = []
    for name in a.backend.split(","):
        cmd = [sys.executable, __file__, "--worker", name, "--rounds", str(a.rounds),
               "--vocab", str(a.vocab), "--dim", str(a.dim), "--ids", str(a.ids)]
        out = subprocess.run(cmd, env=child_env(1), capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"embed_id backward, table {a.vocab} x {a.dim} float32, {a.ids} ids, "
          f"{a.rounds} rounds, 1 thread\n")
    print("| backend | median | min | tracemalloc peak | peak RSS rise | max abs error |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        rss = f"{r['rss_rise_bytes'] / 1e6:.0f} MB" if r["rss_rise_bytes"] is not None else "n/a"
        print(f"| {r['backend']} | {r['median_s'] * 1e3:.0f} ms | {r['min_s'] * 1e3:.0f} ms | "
              f"{r['traced_peak_bytes'] / 1e6:.0f} MB | {rss} | {r['max_abs_err']:.1e} |")
    print(f"\n(the gradient itself is {rows[0]['grad_bytes'] / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()

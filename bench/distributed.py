"""Data-parallel scaling on this machine: a compute-bound MLP step on 1 vs 2 ranks, the cost of
an allreduce per MiB, and the share of a step spent in collectives.

    python bench/distributed.py [--rounds 3] [--steps 8] [--quick]

Each configuration runs as its own MPI job (``python -m xgrad.distributed.run -n N``), threads
pinned to 1 per rank (OPENBLAS_NUM_THREADS=1, ...), the 1- and 2-rank jobs alternating for
``--rounds`` rounds. Both train on the same global batch (2 ranks: half each), so the ratio
t(1 rank) / t(2 ranks) is the speed-up (2.0 at best on two free cores). The step time is rank
0's median over the timed steps; the communication share is the time rank 0 spent inside the
communicator's collectives (the model check, the bookkeeping vector and the gradient buckets,
including waiting for the slower rank) over the step time. Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import child_env, cpu_name, python_version  # noqa: E402

SIZES = {"full": (784, 2048, 2048, 10, 512), "quick": (784, 512, 512, 10, 256)}


def worker(a: argparse.Namespace) -> None:
    """One rank: time ``a.steps`` training steps and (with 2+ ranks) allreduces; rank 0 prints
    one ``BENCH {json}`` line."""
    import numpy as np

    import xgrad
    import xgrad.distributed as dist
    import xgrad.functions as F
    from xgrad import nn, optim

    comm = dist.init()
    spent = [0.0]

    def timed(f):
        def g(*args, **kwargs):
            t = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t
        return g

    comm.allreduce, comm.broadcast = timed(comm.allreduce), timed(comm.broadcast)
    d_in, h1, h2, d_out, batch = SIZES[a.size]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, d_in)).astype(np.float32)
    t = rng.integers(0, d_out, batch)
    q, r = divmod(batch, comm.size)
    start = comm.rank * q + min(comm.rank, r)
    stop = start + q + (comm.rank < r)
    x, t = xgrad.asarray(x[start:stop]), xgrad.asarray(t[start:stop])
    xgrad.manual_seed(0)
    model = nn.MLP((h1, h2, d_out), activation=F.relu)
    with xgrad.no_grad():
        model(x)
    dist.broadcast_parameters(model, comm)
    opt = dist.DistributedOptimizer(optim.SGD(0.01).setup(model), comm)
    steps, comms = [], []
    for i in range(a.warmup + a.steps):
        spent[0] = 0.0
        t0 = time.perf_counter()
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update(batch_size=int(t.shape[0]))
        if i >= a.warmup:
            steps.append(time.perf_counter() - t0)
            comms.append(spent[0])
    grad_mib = sum(p.data.size * p.data.itemsize for p in model.params()) / 2**20
    out = {"ranks": comm.size, "step_s": statistics.median(steps),
           "comm_share": sum(comms) / sum(steps), "grad_mib": grad_mib}
    if comm.size > 1:
        per = {}
        for mib in (1, 4, 16):
            buf = np.ones(mib * 2**18, dtype=np.float32)
            ts = []
            for _ in range(7):
                comm.barrier()
                t0 = time.perf_counter()
                comm.allreduce(buf)
                ts.append(time.perf_counter() - t0)
            per[mib] = statistics.median(ts)
        out["allreduce_s"] = per
    if comm.is_root:
        print("BENCH " + json.dumps(out), flush=True)


def run_job(n: int, a: argparse.Namespace) -> dict:
    """Launch one ``n``-rank job of this script's worker and return rank 0's result."""
    env = child_env(1)
    cmd = [sys.executable, "-m", "xgrad.distributed.run", "-n", str(n), "--timeout", "600",
           str(Path(__file__).resolve()), "--worker", "--size", a.size, "--steps", str(a.steps),
           "--warmup", str(a.warmup)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=700)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the {n}-rank job failed ({proc.returncode}):\n{proc.stdout}\n"
                         f"{proc.stderr}")
    return json.loads(lines[-1][6:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="a smaller MLP (784-512-512-10)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--size", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return
    a.size = "quick" if a.quick else "full"
    load = os.getloadavg()[0]
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(a.rounds):
        for n in (1, 2):
            runs[n].append(run_job(n, a))
    t1 = statistics.median(r["step_s"] for r in runs[1])
    t2 = statistics.median(r["step_s"] for r in runs[2])
    share = statistics.median(r["comm_share"] for r in runs[2])
    ar = {mib: statistics.median(r["allreduce_s"][str(mib)] for r in runs[2])
          for mib in (1, 4, 16)}
    d_in, h1, h2, d_out, batch = SIZES[a.size]
    print(f"MLP {d_in}-{h1}-{h2}-{d_out} float32, ReLU, SGD, global batch {batch}, "
          f"{runs[1][0]['grad_mib']:.1f} MiB of gradients; {cpu_name()}, {os.cpu_count()} "
          f"cores, Python {python_version()}; load average {load:.1f} at the start; "
          f"{a.rounds} rounds x {a.steps} steps, medians\n")
    print("| | 1 rank | 2 ranks |\n|---|---|---|")
    print(f"| step time | {t1 * 1e3:.1f} ms | {t2 * 1e3:.1f} ms |")
    print(f"| speed-up t(1) / t(2) | | {t1 / t2:.2f}x |")
    print(f"| time in collectives (rank 0) | | {share * 100:.1f}% of the step |")
    print("\n| allreduce (2 ranks, float32 sum) | 1 MiB | 4 MiB | 16 MiB |\n|---|---|---|---|")
    print("| time | " + " | ".join(f"{ar[m] * 1e3:.2f} ms" for m in (1, 4, 16)) + " |")
    print("| per MiB | " + " | ".join(f"{ar[m] / m * 1e3:.2f} ms" for m in (1, 4, 16)) + " |")
    print("\nper round (ms): 1 rank " + ", ".join(f"{r['step_s'] * 1e3:.0f}" for r in runs[1])
          + "; 2 ranks " + ", ".join(f"{r['step_s'] * 1e3:.0f}" for r in runs[2]))


if __name__ == "__main__":
    main()

"""The engine's per-operation overhead and the namespace lookup in its hot path.

    python bench/overhead.py [--backend numpy|cupy] [--peers dezero,torch] [--rounds 15]
                             [--against REF[,REF]] [--instructions] [--update-results]
    python bench/overhead.py --arrays numpy,torch,jax [--rounds 15]

1. Workload A of ``run.py`` (a chain of 1,000 elementwise ops, forward + backward on a shape-(1,)
   float64 array) for xgrad, the hand-written floor and the peers, each in its own process with
   interleaved rounds: microseconds per op and the ratios. ``--instructions`` also counts CPU
   instructions per op under valgrind's callgrind (xgrad, floor, DeZero): unlike seconds, the
   count does not move when other processes load the machine. ``--against REF`` adds xgrad as
   it was at git revision REF of this repository (``xgrad@REF``, see ``bench/impl``) to the same
   run, timed and counted side by side with the working tree's xgrad.
``--arrays`` instead runs the same chain (float32) with xgrad on each listed backend's arrays,
   one process per backend, and prints us/op with the ratio to NumPy, next to the library's own
   cost of one elementwise call made through the namespace xgrad uses (array-api-compat's
   wrapper for NumPy and PyTorch) and made directly, so that the wrapper's share is named.
2. The cost of one namespace lookup: ``xgrad.core.get_namespace`` (the cached per-type lookup the
   kernels use), ``array_api_compat.array_namespace``, ``x.__array_namespace__()`` and the
   registry's ``xgrad.backends.backend_of``, and how often the chain calls each per op.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime
import pstats
import shutil
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import child_env, gpu_name, machine_name, python_version  # noqa: E402
from bench.prof import instructions_per_step  # noqa: E402
from bench.run import Worker, run_timed, update_results_md  # noqa: E402
from bench.workloads import CASES_BY_ID, make_data  # noqa: E402

CASE = CASES_BY_ID["A-chain1k"]
N_OPS = CASE.args["n"]

def chain_timings(backend: str, peers: list[str], rounds: int, threads: int,
                  against: tuple[str, ...] = ()) -> dict:
    """us/op of workload A per library, interleaved rounds in one process per library;
    ``against``: git revisions whose xgrad runs beside the working tree's."""
    env = child_env(threads)
    workers = {}
    skipped = {}
    logdir = Path(tempfile.mkdtemp(prefix="xgrad-overhead-"))
    versions = {"python": python_version()}
    for lib in ["xgrad", *(f"xgrad@{r}" for r in against), "floor", *peers]:
        w = Worker(lib, backend, env, logdir)
        if w.hello["ok"]:
            workers[lib] = w
            versions[lib] = w.hello["version"]
        else:
            skipped[lib] = w.hello.get("skip") or w.hello.get("error")
            w.close()
    case = dataclasses.replace(CASE, rounds=rounds)
    try:
        res = run_timed(case, workers, quick=False, budget_s=60.0)
    finally:
        for w in workers.values():
            w.close()
        shutil.rmtree(logdir, ignore_errors=True)
    out = {lib: {"us_per_op": r["median"] / N_OPS * 1e6, "q1": r["q1"] / N_OPS * 1e6,
                 "q3": r["q3"] / N_OPS * 1e6, "n": r["n"]}
           for lib, r in res.items() if "median" in r}
    for lib, r in res.items():
        if "median" not in r:
            skipped[lib] = r.get("skip") or r.get("error")
    return {"libs": out, "skipped": skipped, "versions": versions, "rounds": rounds,
            "machine": machine_name(backend)}


_ARRAYS_CHILD = """
import json, statistics, sys, time
import xgrad
from xgrad import Variable
name, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = xgrad.backends.get(name)
xp = b.namespace
direct = {"numpy": "numpy", "torch": "torch", "jax": "jax.numpy"}.get(name)
lib = __import__(direct, fromlist=["_"]) if direct else xp
def med(f, reps):
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
with xgrad.use_backend(name):
    x = Variable(xgrad.asarray([0.5], dtype="float32"))
    w = Variable(xgrad.asarray([0.9], dtype="float32"))
def step():
    x.cleargrad(); w.cleargrad(); y = x
    for _ in range(n // 4):
        y = xgrad.functions.exp(xgrad.functions.tanh(xgrad.functions.sin(y))) * w
    y.backward()
def raw(ns):
    def run():
        y, v = x.data, w.data
        for _ in range(n // 4):
            y = ns.multiply(ns.exp(ns.tanh(ns.sin(y))), v)
    return run
out = {"xgrad": med(step, rounds) / n * 1e6,
       "namespace": med(raw(xp), rounds) / n * 1e6,
       "direct": med(raw(lib), rounds) / n * 1e6 if lib is not xp else None,
       "version": b.version}
print(json.dumps(out))
"""


def arrays_timings(names: list[str], rounds: int, threads: int) -> dict:
    """us/op of the float32 chain with xgrad on each backend's arrays, and the library's own
    per-call cost through the namespace xgrad uses and directly (one process per backend)."""
    import json
    import subprocess

    out = {}
    for name in names:
        r = subprocess.run([sys.executable, "-c", _ARRAYS_CHILD, name, str(rounds),
                            str(N_OPS)], capture_output=True, text=True, env=child_env(threads))
        out[name] = json.loads(r.stdout.splitlines()[-1]) if r.returncode == 0 else \
            {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return out


def render_arrays(res: dict, rounds: int, threads: int) -> str:
    """Markdown table of ``arrays_timings``."""
    base = res.get("numpy", {}).get("xgrad")
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"Machine `{machine_name('numpy')}`, {when}: workload A's chain in float32 "
             f"(1,000 ops, forward + backward, shape (1,)) with xgrad on each backend's arrays, "
             f"one process per backend, median of {rounds} rounds, threads pinned to "
             f"{threads}. The last three columns time the forward ops alone, one library "
             "call each: through the namespace xgrad uses, and calling the library directly.", "",
             "| backend | xgrad us/op | ratio to numpy | library call via xgrad's namespace (us) "
             "| direct (us) | wrapper's share |", "|---|---|---|---|---|---|"]
    for name, r in res.items():
        if "error" in r:
            lines.append(f"| {name} | skipped: {r['error']} | | | | |")
            continue
        if r["direct"] is None:  # the namespace is the library's own module: no wrapper
            direct, share = "(the same module)", "none"
        else:
            direct = f"{r['direct']:.2f}"
            share = f"{max(r['namespace'] - r['direct'], 0.0) / r['xgrad'] * 100:.0f}%"
        lines.append(f"| {name} {r['version']} | {r['xgrad']:.2f} | "
                     + (f"{r['xgrad'] / base:.1f}x" if base else "") +
                     f" | {r['namespace']:.2f} | {direct} | {share} |")
    return "\n".join(lines)


def instructions_per_op(lib: str) -> float | None:
    """CPU instructions per op of workload A under callgrind (None without valgrind), over 30
    steps: a step leaves about 4,000 objects for the cyclic GC to track, and its collections land
    on some steps only, so a handful of steps would read the GC's phase as much as the engine."""
    n = instructions_per_step(lib, CASE.id, steps=30)
    return n / N_OPS if n else None


def _per_call_ns(fn: Any, arg: Any) -> float:
    """Median over 7 repeats of the time of one ``fn(arg)`` call (through a lambda, as the
    baseline row shows), in nanoseconds; each repeat runs about 0.2 s."""
    timer = timeit.Timer(lambda: fn(arg))
    loops = max(1000, timer.autorange()[0])
    ts = sorted(timer.repeat(number=loops, repeat=7))
    return ts[len(ts) // 2] / loops * 1e9


def lookup_costs(backend: str) -> dict:
    """ns per call of each namespace lookup, on this backend's arrays and array_api_strict's."""
    import array_api_compat
    import numpy as np

    from xgrad.backends import backend_of
    from xgrad.core import get_namespace

    arrays = {"numpy": np.ones(1)}
    try:
        import array_api_strict

        arrays["array_api_strict"] = array_api_strict.ones(1)
    except ImportError:
        pass
    if backend == "cupy":
        import cupy

        arrays["cupy"] = cupy.ones(1)
    calls = {
        "xgrad.core.get_namespace(x)": get_namespace,
        "array_api_compat.array_namespace(x)": array_api_compat.array_namespace,
        "x.__array_namespace__()": lambda x: x.__array_namespace__(),
        "xgrad.backends.backend_of(x)": backend_of,
        "(baseline: a lambda call)": lambda x: x,
    }
    return {name: {k: _per_call_ns(fn, x) for k, x in arrays.items()}
            for name, fn in calls.items()}


def lookups_per_op(backend: str) -> dict:
    """How many times one op of the chain (forward + backward) calls each lookup."""
    from bench.impl import load

    step = load("xgrad", backend).build(CASE.kind, make_data(CASE, CASE.args))
    step()
    prof = cProfile.Profile()
    prof.runcall(step)
    stats = pstats.Stats(prof).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    wanted = {"get_namespace", "array_namespace", "backend_of", "_lookup_namespace",
              "__array_namespace__"}
    out: dict[str, float] = {}
    for (_, _, name), (_, nc, *_rest) in stats.items():
        if name in wanted:
            out[name] = out.get(name, 0) + nc / N_OPS
    return out


def render(timing: dict, ic: dict, costs: dict, per_op: dict, threads: int) -> str:
    """Markdown report of both measurements."""
    libs = timing["libs"]
    floor = libs.get("floor", {}).get("us_per_op")
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"Machine `{timing['machine']}`, {when}: workload A (1,000-op chain, forward + "
             f"backward, shape (1,) float64), one process per library, "
             f"{timing['rounds']} interleaved rounds. Versions: "
             + ", ".join(f"{k} {v}" for k, v in timing["versions"].items()) + ".", "",
             "| library | us/op (median) | IQR | ratio to floor | ratio to xgrad |",
             "|---|---|---|---|---|"]
    x = libs.get("xgrad", {}).get("us_per_op")
    for lib, r in libs.items():
        u = r["us_per_op"]
        lines.append(f"| {lib} | {u:.2f} | {r['q1']:.2f}-{r['q3']:.2f} | "
                     f"{u / floor:.2f}x | {u / x:.2f}x |" if floor and x else
                     f"| {lib} | {u:.2f} | | | |")
    for lib, why in timing["skipped"].items():
        lines.append(f"| {lib} | skipped: {why} | | | |")
    if ic:
        lines += ["", "Instructions per op (callgrind, insensitive to machine load): " +
                  ", ".join(f"{lib} {v:,.0f}" if v else f"{lib} n/a" for lib, v in ic.items())]
        if ic.get("xgrad") and ic.get("floor"):
            lines[-1] += f" (xgrad/floor {ic['xgrad'] / ic['floor']:.2f}x)"
        for lib, v in ic.items():
            if lib.startswith("xgrad@") and v and ic.get("xgrad"):
                d = ic["xgrad"] / v - 1
                lines[-1] += (f". Against {lib}: {ic['xgrad']:,.0f} vs {v:,.0f} instructions per "
                              f"op, {'+' if d >= 0 else ''}{d * 100:.1f}%")
    if "dezero" in libs and x:
        half = libs["dezero"]["us_per_op"] / 2
        lines += ["", f"Target (<= half of DeZero, {half:.2f} us/op): "
                  f"{'met' if x <= half else 'missed by %.0f%%' % ((x / half - 1) * 100)}."]
    if "torch" in libs and x:
        t = libs["torch"]["us_per_op"]
        lines += ["", f"Target (<= PyTorch eager, {t:.2f} us/op): "
                  f"{'met' if x <= t else 'missed by %.0f%%' % ((x / t - 1) * 100)}."]
    kinds = list(next(iter(costs.values())))
    lines += ["", "Namespace lookup, ns per call (median of 7 repeats of about 0.2 s each):", "",
              "| lookup | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for name, per in costs.items():
        lines.append(f"| `{name}` | " + " | ".join(f"{per[k]:.0f}" for k in kinds) + " |")
    if per_op and x:
        gn = costs["xgrad.core.get_namespace(x)"]["numpy"]
        calls = per_op.get("get_namespace", 0)
        lines += ["", "Calls per op of the chain (forward + backward): " +
                  ", ".join(f"`{k}` {v:.2f}" for k, v in sorted(per_op.items())) +
                  f". The cached lookup costs about {calls * gn / 1000:.2f} us of the "
                  f"{x:.2f} us per op ({calls * gn / 1000 / x * 100:.0f}%); "
                  f"`backend_of` (the registry) is "
                  f"{'not on the hot path' if not per_op.get('backend_of') else 'on it'}."]
    lines += ["", f"Threads pinned to {threads}; medians over interleaved rounds."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--peers", default="dezero,torch",
                   help="comma-separated peers, or 'none' (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--against", default="",
                   help="comma-separated git revisions whose xgrad runs side by side with this "
                        "tree's (e.g. HEAD~5)")
    p.add_argument("--instructions", action="store_true",
                   help="also count instructions per op under callgrind (about 2 minutes)")
    p.add_argument("--update-results", action="store_true",
                   help="write the report into bench/RESULTS.md")
    p.add_argument("--arrays", default=None,
                   help="comma-separated backends (numpy,torch,jax): the chain on each one's "
                        "arrays instead of the peer comparison")
    a = p.parse_args(argv)
    if a.arrays:
        report = render_arrays(arrays_timings(a.arrays.split(","), a.rounds, a.threads),
                               a.rounds, a.threads)
        print(report)
        if a.update_results:
            update_results_md("overhead-backends", report)
        return
    if a.backend == "cupy" and gpu_name() is None:
        p.error("--backend cupy needs CuPy and a visible CUDA device; none found here")
    peers = [s for s in a.peers.split(",") if s and s != "none"]
    against = tuple(r for r in a.against.split(",") if r)
    timing = chain_timings(a.backend, peers, a.rounds, a.threads, against)
    ic = {}
    if a.instructions and a.backend == "numpy":
        ic = {lib: instructions_per_op(lib)
              for lib in ("xgrad", *(f"xgrad@{r}" for r in against), "floor", "dezero")}
    report = render(timing, ic, lookup_costs(a.backend), lookups_per_op(a.backend), a.threads)
    print(report)
    if a.update_results:
        update_results_md("overhead-" + ("gpu" if a.backend == "cupy" else "cpu"), report)


if __name__ == "__main__":
    main()

"""Run the benchmark suite: xgrad, the hand-written floor and the peers, one process each.

    python bench/run.py [--backend numpy|cupy] [--peers dezero,torch,mygrad,autograd] [--quick]
                        [--workloads A,B,...] [--threads 1] [--malloc default|tuned|both]

Each library runs in its own worker process (``bench/worker.py``), started with its threads
pinned (OMP/OPENBLAS/MKL_NUM_THREADS) and the image's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed
from its environment. For every case the workers build the same data and warm up; then the timing
rounds alternate between the libraries (the order rotates each round) and the table reports the
median of all timed steps (GPU steps end with a device synchronisation). Peak memory is measured
in a fresh process per library. A full CPU run times workloads C, D and F a second time with
glibc's allocator tuned (``bench.common.MALLOC_ENV``), since their large temporaries otherwise
pay page faults on every step. Results go to ``bench/results/<machine>.json`` and a Markdown table
(printed, written next to the JSON, and, for a full run, into ``bench/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    MALLOC_ENV,
    RESULTS_DIR,
    ROOT,
    child_env,
    cpu_name,
    gpu_name,
    machine_name,
    python_version,
    summarize,
)
from bench.impl import PEERS  # noqa: E402
from bench.workloads import CASES_BY_ID, Case, select  # noqa: E402

CORE = ("xgrad", "floor")
RESULTS_MD = ROOT / "bench" / "RESULTS.md"
CHECK_RTOL = {"float32": 2e-3, "float64": 1e-6}


class WorkerDied(RuntimeError):
    """A worker process exited or answered garbage."""


class Worker:
    """A running ``bench.worker`` process for one library."""

    def __init__(self, lib: str, backend: str, env: dict, logdir: Path) -> None:
        self.lib, self.backend, self.env = lib, backend, env
        self.log = logdir / f"{lib}.log"
        self.proc = self._start()
        self.hello = self.recv()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.worker", self.lib, self.backend],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("ab"),
            text=True, cwd=ROOT, env=self.env)

    def restart(self) -> None:
        """Start a fresh process after a crash."""
        self.close()
        self.proc = self._start()
        self.hello = self.recv()

    def recv(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise WorkerDied(f"{self.lib} worker exited with code {self.proc.returncode}: "
                             f"{_tail(self.log)}")
        return json.loads(line)

    def call(self, **msg: Any) -> dict:
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # recv() reports the exit
        return self.recv()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def _tail(path: Path, n: int = 3) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def log(msg: str) -> None:
    """Progress on stderr."""
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------
def run_timed(case: Case, workers: dict[str, Worker], quick: bool, budget_s: float) -> dict:
    """Warm every library up on ``case``, then time interleaved rounds; per-lib results."""
    out: dict[str, dict] = {}
    plan: dict[str, tuple[int, int]] = {}  # lib -> (steps per round, rounds)
    rounds = case.quick_rounds if quick else case.rounds
    for lib, w in workers.items():
        try:
            r = w.call(op="setup", case=case.id, quick=quick)
        except WorkerDied as e:
            out[lib] = {"error": str(e)[:300]}
            w.restart()
            continue
        if not r["ok"]:
            out[lib] = {k: r[k] for k in ("skip", "error") if k in r}
            continue
        est = max(r["warm_s"], 1e-7)
        batch = max(1, min(2000, round(case.round_s / est)))
        own_rounds = max(1, min(rounds, int(budget_s / (est * batch))))
        plan[lib] = (batch, own_rounds)
        out[lib] = {"check": r["check"], "times": [], "faults": 0, "rounds": []}
    libs = list(plan)
    for rnd in range(rounds):
        k = rnd % len(libs) if libs else 0
        for lib in libs[k:] + libs[:k]:
            batch, own_rounds = plan[lib]
            if rnd >= own_rounds or "error" in out[lib]:
                if "rounds" in out[lib]:
                    out[lib]["rounds"].append(None)
                continue
            try:
                r = workers[lib].call(op="time", n=batch)
            except WorkerDied as e:
                out[lib] = {"error": str(e)[:300]}
                workers[lib].restart()
                continue
            if r["ok"]:
                out[lib]["times"] += r["times"]
                out[lib]["faults"] += r["faults"]
                out[lib]["rounds"].append(statistics.median(r["times"]))
            else:
                out[lib] = {"error": r.get("error", "failed")}
    for lib in libs:
        if "error" not in out[lib]:
            workers[lib].call(op="drop")
            times = out[lib].pop("times")
            out[lib]["faults_per_step"] = out[lib].pop("faults") / len(times)
            out[lib].update(summarize(times))
    return out


def run_memory(case: Case, libs: list[str], backend: str, quick: bool, threads: int,
               logdir: Path) -> dict:
    """Peak memory of one step of ``case`` per library, each in a fresh process."""
    env = child_env(threads, "memory" if backend != "cupy" else "default")
    out = {}
    for lib in libs:
        cmd = [sys.executable, "-m", "bench.worker", lib, backend, "--memory", case.id]
        if quick:
            cmd.append("--quick")
        logf = logdir / f"{lib}.log"
        with logf.open("ab") as err:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT,
                               env=env)
        lines = p.stdout.strip().splitlines()
        if not lines:
            out[lib] = {"error": f"exited with code {p.returncode}: {_tail(logf)}"[:300]}
            continue
        r = json.loads(lines[-1])
        out[lib] = ({"peak_bytes": r["peak_bytes"], "mem_time_s": r["time_s"],
                     "mem_check": r["check"], "mem_method": r["method"]} if r["ok"]
                    else {k: r[k] for k in ("skip", "error") if k in r})
    return out


def compare_checks(case: Case, res: dict) -> list[str]:
    """Notes for libraries whose checksums differ from the floor's (different math)."""
    ref = res.get("floor", {})
    key = "check" if "check" in ref else "mem_check"
    if key not in ref:
        return []
    rtol = CHECK_RTOL.get(case.dtype, 1e-6)
    ref_vals = ref[key][0] if key == "check" else ref[key]
    notes = []
    for lib, r in res.items():
        if lib == "floor" or key not in r:
            continue
        vals = r[key][0] if key == "check" else r[key]
        for a, b in zip(vals, ref_vals):
            if abs(a - b) > rtol * max(abs(b), 1e-30) + 1e-12:
                notes.append(f"{case.id}: {lib}'s checksum {vals} differs from the floor's "
                             f"{ref_vals} (rtol {rtol})")
                break
    return notes


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return f"{v:.3g}" if v < 1000 else f"{v:,.0f}"


def _cell(r: dict | None, value: float | None, ref: float | None) -> str:
    if r is None:
        return "–"
    if "skip" in r:
        return "skip"
    if "error" in r:
        return "error"
    if value is None:
        return "–"
    s = _fmt(value)
    if ref:
        s += f" ({value / ref:.2f}x)"
    return s


def rows(report: dict) -> list[tuple[str, str, dict[str, float | None], dict]]:
    """(title, unit, value per lib, raw per lib) for every measured quantity."""
    out = []
    for _cid, c in report["cases"].items():
        res = c["libs"]
        if c["timed"]:
            div = c["per_unit"]
            vals = {lib: (r["median"] / div if "median" in r else None) for lib, r in res.items()}
            out.append((c["title"], c["unit"], vals, res))
        if c["memory"]:
            vals = {lib: (r["peak_bytes"] / 2**20 if "peak_bytes" in r else None)
                    for lib, r in res.items()}
            out.append((c["title"] + ": peak memory", "MiB", vals, res))
    return out


def markdown_table(report: dict) -> str:
    """The results as a Markdown table: value (ratio to the floor) per library."""
    libs = report["libs"]
    head = "| workload | unit | " + " | ".join(libs) + " |"
    lines = [head, "|" + "---|" * (len(libs) + 2)]
    for title, unit, vals, res in rows(report):
        ref = vals.get("floor")
        cells = [_cell(res.get(lib), vals.get(lib), ref if lib != "floor" else None)
                 for lib in libs]
        lines.append(f"| {title} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_ratio(a: dict, b: dict) -> float | None:
    """Median over rounds of a's / b's round median: each pair ran back to back, so a slow
    drift in the machine's load cancels out."""
    pairs = [x / y for x, y in zip(a.get("rounds", ()), b.get("rounds", ())) if x and y]
    return statistics.median(pairs) if pairs else None


def diagnostics(report: dict) -> list[str]:
    """Per timed case: xgrad / floor by median, minimum and paired rounds; page faults."""
    out = []
    for key, c in report["cases"].items():
        x, f = c["libs"].get("xgrad", {}), c["libs"].get("floor", {})
        if c["timed"] and "median" in x and "median" in f:
            paired = paired_ratio(x, f)
            out.append(f"{key}: median {x['median'] / f['median']:.2f}, "
                       f"min {x['min'] / f['min']:.2f}"
                       + (f", paired rounds {paired:.2f}" if paired else "")
                       + f"; page faults/step xgrad {x['faults_per_step']:,.0f}, "
                       f"floor {f['faults_per_step']:,.0f}")
    return out


def _get(report: dict, key: str, lib: str, memory: bool = False) -> float | None:
    c = report["cases"].get(key)
    if c is None:
        return None
    r = c["libs"].get(lib, {})
    if memory:
        return r.get("peak_bytes")
    return r["median"] / c["per_unit"] if "median" in r else None


def _verdict(value: float, limit: float) -> str:
    pct = (value / limit - 1) * 100
    return "met" if value <= limit else f"missed by {pct:.1f}%" if pct < 10 else \
        f"missed by {pct:.0f}%"


NOT_MEASURED = ("not measured", "not measured in this run")
SPEED_TARGETS = [  # (case id, limit as a ratio to the floor), timed with glibc's default malloc
    ("C-mlp784-f32", 1.05), ("C-mlp784-f64", 1.05), ("D-mmtanh-f32", 1.05),
    ("D-mmtanh-f64", 1.05), ("F-cnn-f32", 1.05), ("F-cnn-f64", 1.05)]
MEMORY_TARGETS = [  # (case id, limit as a ratio to the floor's peak memory)
    ("F-conv2d-f32", 1.5), ("F-conv2d-f64", 1.5), ("E-tanh200-mem", 1.2)]


def targets(report: dict) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for every target; one this run did not measure says so."""
    out = []

    def ratio_row(label: str, key: str, limit: float, memory: bool = False,
                  ref: str = "floor") -> None:
        x, f = _get(report, key, "xgrad", memory), _get(report, key, ref, memory)
        what = "the floor" if ref == "floor" else ref
        if x is not None and f is not None:
            out.append((label, f"{x / f:.2f}x {what}" + ("'s" if memory else ""),
                        _verdict(x / f, limit)))
        else:
            out.append((label, *NOT_MEASURED))

    x = _get(report, "A-chain1k", "xgrad")
    if x is not None and report["backend"] == "cupy":
        out.append(("A: <= 35 us/op on the GPU", f"{x:.1f} us/op", _verdict(x, 35)))
    t = _get(report, "A-chain1k", "torch")
    out.append(("A: <= 0.75x PyTorch eager per op",
                *((f"{x:.2f} vs {t:.2f} us/op ({x / t:.2f}x)", _verdict(x / t, 0.75))
                  if x is not None and t is not None else NOT_MEASURED)))
    ratio_row("B: 100,000-op chain time <= 1.0x PyTorch eager's", "B-chain100k", 1.0,
              ref="torch")
    ratio_row("B: 100,000-op chain peak memory <= PyTorch eager's", "B-chain100k", 1.0,
              memory=True, ref="torch")
    for cid, limit in SPEED_TARGETS:
        ratio_row(f"{cid[0]}: {CASES_BY_ID[cid].title[3:]}: <= {limit:.2f}x the floor", cid,
                  limit)
    for cid, limit in MEMORY_TARGETS:
        ratio_row(f"{cid[0]}: {CASES_BY_ID[cid].title[3:]}: peak memory <= {limit:.1f}x the "
                  f"floor's", cid, limit, memory=True)
    leaks = report.get("float64_leaks")
    if leaks is None:
        out.append(("every float32 workload: no float64 intermediates", *NOT_MEASURED))
    else:
        bad = {k: v for k, v in leaks.items() if v}
        out.append(("every float32 workload: no float64 intermediates",
                    f"{len(leaks) - len(bad)} of {len(leaks)} workloads float32 throughout"
                    + ("".join(f"; {k}: {', '.join(v)}" for k, v in bad.items())),
                    "met" if not bad else "missed"))
    for key, c in report["cases"].items():  # for reference: the same steps, malloc tuned
        if c["variant"] == "tuned" and c["timed"] and c["workload"] in "CDF":
            ratio_row(f"{c['id']} [malloc tuned, for reference]: <= 1.05x the floor", key,
                      1.05)
    return out


def float64_leaks(backend: str) -> dict[str, list[str]] | None:
    """``python -m bench.dtypes`` in its own process: float32 workloads' float64 producers."""
    p = subprocess.run([sys.executable, "-m", "bench.dtypes", "--backend", backend],
                       capture_output=True, text=True, cwd=ROOT, env=child_env(1))
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        log(f"bench.dtypes failed: {p.stderr[-500:]}")
        return None


def render(report: dict) -> str:
    """The Markdown block for RESULTS.md: set-up, table, targets, notes."""
    v = report["versions"]
    tuned = " ".join(f"{k}={val}" for k, val in MALLOC_ENV["tuned"].items())
    memory = " ".join(f"{k}={val}" for k, val in MALLOC_ENV["memory"].items())
    lines = [
        f"Machine `{report['machine']}` ({report['gpu'] or report['cpu']}, "
        f"{report['cpu_count']} cores), {report['date']}, mode: {report['mode']}, "
        f"backend: {report['backend']}, whole run {report['elapsed_s']:.0f} s.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        f"Each library in its own process; threads pinned to {report['threads']} "
        f"(OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS; torch.set_num_threads); "
        f"OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from the workers' environment. "
        f"Rows marked [malloc tuned] ran with {tuned}; all others with glibc's defaults. "
        f"Memory runs: {memory}.",
        "",
        "Cells: median (ratio to the floor). Times are the median of all timed steps over "
        "interleaved rounds; peak memory is the resident-set (GPU: memory-pool) growth during "
        "one step, in a fresh process.",
        "",
        markdown_table(report),
    ]
    tg = targets(report)
    if tg:
        lines += ["", "| target | measured | verdict |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in tg]
    diag = diagnostics(report)
    if diag:
        lines += ["", "xgrad / floor by statistic of the timed steps (under load the minimum and "
                  "the median of per-round ratios are the least disturbed), and minor page "
                  "faults per step:", ""]
        lines += [f"- {d}" for d in diag]
    if report["notes"]:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines)


def update_results_md(key: str, block: str) -> None:
    """Replace the block between this key's markers in RESULTS.md (append it if missing)."""
    start, end = f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    new = f"{start}\n{block}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + new + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## Latest run: {key}\n\n{new}\n"
    RESULTS_MD.write_text(text)


# ---------------------------------------------------------------------------------------------
def start_workers(libs: list[str], backend: str, env: dict, logdir: Path,
                  notes: list[str] | None) -> tuple[dict[str, Worker], dict[str, str]]:
    """A worker per library; those that cannot run are noted (when ``notes`` is given)."""
    workers, versions = {}, {}
    for lib in libs:
        w = Worker(lib, backend, env, logdir)
        if w.hello["ok"]:
            workers[lib] = w
            versions[lib] = w.hello["version"]
        else:
            if notes is not None:
                notes.append(f"{lib}: skipped: {w.hello.get('skip') or w.hello.get('error')}")
            w.close()
    return workers, versions


def run_pass(cases: list[Case], libs: list[str], variant: str, a: argparse.Namespace,
             report: dict, logdir: Path, t_start: float, budget: float) -> None:
    """Measure ``cases`` with the workers' allocator set per ``variant``; fill ``report``."""
    notes = report["notes"]
    timed = [c for c in cases if c.timed]
    workers: dict[str, Worker] = {}
    if timed:
        env = child_env(a.threads, variant)
        workers, _ = start_workers(libs, a.backend, env, logdir, None)
    try:
        for i, case in enumerate(cases, 1):
            args = case.resolved(a.backend, a.quick)
            key = case.id + ("@tuned" if variant == "tuned" else "")
            log(f"[{variant} {i}/{len(cases)}] {case.id} {args} "
                f"({time.perf_counter() - t_start:.0f} s elapsed)")
            res: dict[str, dict] = {lib: {} for lib in libs}
            if case.timed:
                for lib, r in run_timed(case, workers, a.quick, budget).items():
                    res[lib].update(r)
            if case.memory and variant != "tuned":
                mem = run_memory(case, libs, a.backend, a.quick, a.threads, logdir)
                for lib, r in mem.items():
                    if "error" not in res[lib] and "skip" not in res[lib]:
                        res[lib].update(r)
            for lib, r in res.items():
                for k in ("skip", "error"):
                    if k in r:
                        notes.append(f"{key}: {lib}: {k}: {r[k]}")
            notes.extend(compare_checks(case, res))
            title = case.title
            if args != case.args:
                title += " [" + ", ".join(f"{k}={v}" for k, v in args.items()
                                          if case.args.get(k) != v) + "]"
            if variant == "tuned":
                title += " [malloc tuned]"
            report["cases"][key] = {
                "id": case.id, "variant": variant, "title": title, "workload": case.workload,
                "unit": case.unit, "per_unit": case.per_unit(args), "args": args,
                "dtype": case.dtype, "timed": case.timed,
                "memory": case.memory and variant != "tuned", "libs": res}
            log(_summary_line(case, report["cases"][key]))
    finally:
        for w in workers.values():
            w.close()


def main(argv: list[str] | None = None) -> dict:
    """Run the suite; return the report (also written to bench/results/)."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--peers", default=",".join(PEERS),
                   help="comma-separated peers to compare, or 'none' (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smaller/fewer cases and rounds (about 5 minutes on 2 cores)")
    p.add_argument("--workloads", default="",
                   help="comma-separated letters (A..F) or case ids; default: all")
    p.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    p.add_argument("--malloc", choices=["default", "tuned", "both"], default=None,
                   help="glibc allocator of the timing workers: 'both' (the default of a full "
                        "CPU run) adds a tuned pass over workloads C, D, F")
    p.add_argument("--budget", type=float, default=None,
                   help="max seconds of timed steps per library per case")
    p.add_argument("--out", type=Path, default=None, help="JSON output path")
    p.add_argument("--update-results", action=argparse.BooleanOptionalAction, default=None,
                   help="write the table into bench/RESULTS.md (default: only for full runs)")
    a = p.parse_args(argv)

    peers = [s for s in a.peers.split(",") if s and s != "none"]
    unknown = set(peers) - set(PEERS)
    if unknown:
        p.error(f"unknown peers {sorted(unknown)}; known: {', '.join(PEERS)}")
    if a.backend == "cupy" and gpu_name() is None:
        p.error("--backend cupy needs CuPy and a visible CUDA device; none found here "
                "(pip install 'xgrad[cuda12]' on a GPU machine)")
    malloc = a.malloc or ("both" if not a.quick and a.backend == "numpy" else "default")
    cases = select(a.workloads.split(",") if a.workloads else None, a.quick)
    budget = a.budget if a.budget is not None else (12.0 if a.quick else 30.0)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)

    t_start = time.perf_counter()
    logdir = Path(tempfile.mkdtemp(prefix="xgrad-bench-"))
    notes: list[str] = []
    try:
        # Probe which libraries run here (and their versions) before measuring anything.
        probe, versions = start_workers(list(CORE) + peers, a.backend,
                                        child_env(a.threads), logdir, notes)
        for w in probe.values():
            w.close()
        libs = list(probe)
        report: dict[str, Any] = {
            "machine": machine_name(a.backend),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "backend": a.backend, "cpu": cpu_name(),
            "gpu": gpu_name() if a.backend == "cupy" else None, "cpu_count": _cpu_count(),
            "platform": platform.platform(), "mode": "quick" if a.quick else "full",
            "threads": a.threads, "malloc": malloc, "malloc_env": MALLOC_ENV,
            "versions": {"python": python_version(), **versions}, "libs": libs, "cases": {},
            "notes": notes,
        }
        if malloc in ("default", "both"):
            run_pass(cases, libs, "default", a, report, logdir, t_start, budget)
        if malloc in ("tuned", "both"):
            tuned = cases if malloc == "tuned" else [
                c for c in cases if c.timed and c.workload in "CDF"]
            run_pass(tuned, libs, "tuned", a, report, logdir, t_start, budget)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    report["float64_leaks"] = float64_leaks(a.backend)
    report["elapsed_s"] = round(time.perf_counter() - t_start, 1)

    stem = report["machine"] + ("-quick" if a.quick else "") + (
        "-partial" if a.workloads else "")
    out = a.out or RESULTS_DIR / f"{stem}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    block = render(report)
    out.with_suffix(".md").write_text(block + "\n")
    print(block)
    full = not a.quick and not a.workloads
    if a.update_results or (a.update_results is None and full):
        key = "gpu" if a.backend == "cupy" else "cpu"
        update_results_md(key, block)
        log(f"updated {RESULTS_MD.relative_to(ROOT)} ({key})")
    log(f"wrote {out}")
    return report


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _summary_line(case: Case, c: dict) -> str:
    parts = []
    for lib, r in c["libs"].items():
        if "median" in r:
            parts.append(f"{lib} {_fmt(r['median'] / c['per_unit'])}")
        if "peak_bytes" in r:
            parts.append(f"{lib} {r['peak_bytes'] / 2**20:.0f} MiB")
        if "skip" in r or "error" in r:
            parts.append(f"{lib} {'skip' if 'skip' in r else 'error'}")
    return f"    {case.unit}: " + ", ".join(parts)


if __name__ == "__main__":
    main()

"""Profile one library's step of a benchmark case with cProfile and print the top functions.

    python bench/prof.py A-chain1k [--lib xgrad] [--steps 20] [--sort tottime] [--top 25]
    python bench/prof.py C-mlp784-f32 --instructions [--lib xgrad,floor]

Threads are pinned to 1 and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed before NumPy loads, as
in ``run.py``. For a sampling view without cProfile's per-call cost, run the same case under
py-spy: ``py-spy record -o prof.svg -- python bench/prof.py A-chain1k --no-profile``.
``--instructions`` counts the CPU instructions of one step under valgrind's callgrind instead
(user space only, so page faults do not show): a count does not change with the machine's load,
which makes small differences between xgrad and the floor visible on a busy machine. Counts are
taken with ``PYTHONHASHSEED=0`` (repeatable to 0.1%).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, THREAD_ENV, UNSET_ENV, child_env  # noqa: E402


def instructions_per_step(lib: str, case_id: str, quick: bool = False, steps: int = 3,
                          backend: str = "numpy") -> float | None:
    """Instructions of one step of ``case_id`` for ``lib``, counted by callgrind as the
    difference between runs of 1 + ``steps`` and 1 steps (None without valgrind)."""
    if shutil.which("valgrind") is None:
        return None
    # One plain run first, so that the counted runs find everything prepared: an ``xgrad@REF``
    # tree extracted (the first run of a revision extracts it, which once made a count 7% low)
    # and, where Python writes bytecode, modules compiled.
    subprocess.run([sys.executable, str(Path(__file__).resolve()), case_id, "--lib", lib,
                    "--backend", backend, "--steps", "0", "--no-profile"]
                   + (["--quick"] if quick else []), capture_output=True, cwd=ROOT,
                   env=child_env(1))
    counts = []
    for n in (0, steps):
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
               str(Path(__file__).resolve()), case_id, "--lib", lib, "--backend", backend,
               "--steps", str(n), "--no-profile"] + (["--quick"] if quick else [])
        # A fixed string-hash seed, so that a count repeats to 0.1% (the seed changes dict
        # layouts: seeds 0-7 spread the count of one build over 0.3%).
        env = {**child_env(1), "PYTHONHASHSEED": "0"}
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        m = re.search(r"Collected : (\d+)", p.stderr)
        if p.returncode or m is None:
            return None
        counts.append(int(m.group(1)))
    return (counts[1] - counts[0]) / steps


def main(argv: list[str] | None = None) -> None:
    """Entry point: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", help="a case id from bench/workloads.py, e.g. A-chain1k")
    p.add_argument("--lib", default="xgrad", help="a library (--instructions: comma-separated)")
    p.add_argument("--backend", default="numpy", choices=["numpy", "cupy"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="the case's --quick size")
    p.add_argument("--sort", default="tottime", choices=["tottime", "cumtime", "ncalls"])
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--no-profile", action="store_true", help="just run (for py-spy)")
    p.add_argument("--instructions", action="store_true",
                   help="count instructions per step under callgrind instead of profiling")
    a = p.parse_args(argv)
    if a.instructions:
        counts = {lib: instructions_per_step(lib, a.case, a.quick, backend=a.backend)
                  for lib in a.lib.split(",")}
        for lib, n in counts.items():
            print(f"{lib}: {n:,.0f} instructions per step" if n else f"{lib}: failed")
        base = counts.get("floor")
        if base:
            for lib, n in counts.items():
                if n and lib != "floor":
                    print(f"{lib} / floor: {n / base:.3f}x")
        return
    for k in UNSET_ENV:
        os.environ.pop(k, None)
    for k in THREAD_ENV:
        os.environ[k] = "1"

    import cProfile
    import pstats

    from bench.impl import load
    from bench.workloads import CASES_BY_ID, make_data

    case = CASES_BY_ID[a.case]
    impl = load(a.lib, a.backend)
    step = impl.build(case.kind, make_data(case, case.resolved(a.backend, a.quick)))
    step()

    def run() -> None:
        for _ in range(a.steps):
            step()
        impl.sync()

    if a.no_profile:
        run()
        return
    prof = cProfile.Profile()
    prof.runcall(run)
    stats = pstats.Stats(prof)
    stats.strip_dirs().sort_stats(a.sort).print_stats(a.top)


if __name__ == "__main__":
    main()

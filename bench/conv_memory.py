"""What conv2d keeps for its backward: time and peak memory of each weight-gradient strategy.

    python bench/conv_memory.py [--rounds 15] [--cases F-conv2d-f32,F-cnn-f32,...]

The weight gradient of a convolution needs the input's patches (im2col, KH*KW times the input).
The ways to have them, each measured on workload F's conv2d layer and CNN step:

- ``keep``: the forward's im2col buffer is kept until backward (xgrad's former rule, and the
  floor's): no recomputation, but KH*KW x the input stays alive per layer until backward.
- ``recompute``: keep x and W only, recompute im2col in backward (xgrad's rule, Chainer's
  choice): one more im2col per step, nothing kept.
- ``offsets``: keep x and W, and sum one matrix product per kernel offset over strided views of
  the padded input: no KH*KW buffer at all, but KH*KW smaller matrix products (slow when C is
  small: the CNN's first layer has C = 1).

Times: median of interleaved rounds in one process (glibc's default allocator, threads pinned to
1). Peak memory: resident-set growth of one step in a fresh process per strategy, as
``run.py`` measures it (MALLOC_MMAP_THRESHOLD_=65536). The strategies are patches applied to
xgrad's conv module by this script only; the floor's peak is printed for reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, child_env, rss_peak, rss_reset  # noqa: E402
from bench.workloads import CASES_BY_ID, make_data  # noqa: E402

STRATEGIES = ("keep", "recompute", "offsets")
DEFAULT_CASES = "F-conv2d-f32,F-conv2d-f64,F-cnn-f32,F-cnn-f64"


ORIGINAL: list = []  # the conv module's own (_im2col_array, Conv2dGradW.forward)


def use(strategy: str) -> None:
    """Patch xgrad's conv module so that conv2d's weight gradient follows ``strategy``."""
    import xgrad.functions.conv as C

    if not ORIGINAL:
        ORIGINAL[:] = C._im2col_array, C.Conv2dGradW.forward
    C._im2col_array, C.Conv2dGradW.forward = ORIGINAL
    if strategy == "recompute":  # the library's own rule
        return
    if strategy == "keep":
        im2col = ORIGINAL[0]
        kept: dict[int, tuple] = {}  # id(x) -> (x, col): conv2d forward's patches of x

        def im2col_kept(x: Any, k: tuple, s: tuple, p: tuple, value: float = 0.0,
                        fname: str = "im2col") -> Any:
            hit = kept.pop(id(x), None)
            if hit is not None and hit[0] is x and value == 0.0:
                return hit[1]  # the weight gradient reuses the forward's buffer
            col = im2col(x, k, s, p, value, fname)
            if fname == "conv2d":  # conv2d's forward: keep its patches until backward
                kept[id(x)] = (x, col)
            return col

        C._im2col_array = im2col_kept
        return
    if strategy != "offsets":
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")

    def grad_w_offsets(self: Any, x: Any, gy: Any) -> Any:
        xp = C.xp_of(x)
        n, c = x.shape[:2]
        oc, oh, ow = gy.shape[1:]
        (kh, kw), (sy, sx), (ph, pw) = self.k, self.s, self.p
        xpad = C._pad(x, ph, pw)
        g = xp.reshape(gy, (n, oc, oh * ow))
        hspan, wspan = sy * (oh - 1) + 1, sx * (ow - 1) + 1
        cols = []
        for i in range(kh):
            for j in range(kw):
                patch = xp.reshape(xpad[:, :, i:i + hspan:sy, j:j + wspan:sx], (n, c, oh * ow))
                cols.append(xp.sum(xp.matmul(g, xp.matrix_transpose(patch)), axis=0))
        return xp.reshape(xp.stack(cols, axis=2), (oc, c, kh, kw))

    C.Conv2dGradW.forward = grad_w_offsets


def _build(lib: str, case_id: str, args: dict | None = None) -> Any:
    from bench.impl import load

    case = CASES_BY_ID[case_id]
    return load(lib, "numpy").build(case.kind, make_data(case, args or case.args))


def memory(lib: str, strategy: str, case_id: str) -> dict:
    """Peak resident-set growth of one step (this process must be fresh)."""
    if lib == "xgrad":
        use(strategy)
    case = CASES_BY_ID[case_id]
    _build(lib, case_id, {**case.args, **case.memory_warmup})()
    step = _build(lib, case_id)
    base = rss_reset()
    step()
    return {"peak_bytes": rss_peak() - base}


def times(case_id: str, rounds: int) -> dict[str, float]:
    """Median seconds per step of each strategy, interleaved rounds in this process."""
    # one step per strategy (own data); conv2d looks the patched names up on every call
    steps = {strategy: _build("xgrad", case_id) for strategy in STRATEGIES}
    out: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    k = len(STRATEGIES)
    for r in range(rounds + 1):
        for strategy in STRATEGIES[r % k:] + STRATEGIES[:r % k]:
            use(strategy)
            t0 = time.perf_counter()
            for _ in range(3):
                steps[strategy]()
            if r:  # round 0 warms up
                out[strategy].append((time.perf_counter() - t0) / 3)
    use("recompute")
    return {s: statistics.median(v) for s, v in out.items()}


def main(argv: list[str] | None = None) -> None:
    """Entry point: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--cases", default=DEFAULT_CASES)
    p.add_argument("--memory", nargs=3, metavar=("LIB", "STRATEGY", "CASE"),
                   help=argparse.SUPPRESS)  # the fresh-process memory run
    a = p.parse_args(argv)
    if a.memory:
        print(json.dumps(memory(*a.memory)))
        return
    env = child_env(1, "memory")
    print("| case | strategy | time ms | vs keep | peak MiB | vs floor's peak |")
    print("|---|---|---|---|---|---|")
    for cid in a.cases.split(","):
        mem = {}
        for lib, strategy in [("floor", "keep")] + [("xgrad", s) for s in STRATEGIES]:
            r = subprocess.run([sys.executable, "-m", "bench.conv_memory", "--memory", lib,
                                strategy, cid], capture_output=True, text=True, cwd=ROOT, env=env)
            mem[lib if lib == "floor" else strategy] = json.loads(
                r.stdout.strip().splitlines()[-1])["peak_bytes"] / 2**20
        t = times(cid, a.rounds)
        for s in STRATEGIES:
            print(f"| {cid} | {s} | {t[s] * 1e3:.2f} | {t[s] / t['keep']:.2f}x | {mem[s]:.1f} | "
                  f"{mem[s] / mem['floor']:.2f}x |")
        print(f"| {cid} | (floor) | | | {mem['floor']:.1f} | 1.00x |")


if __name__ == "__main__":
    main()

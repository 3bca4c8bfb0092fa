"""A worker process: one library only, driven by ``run.py`` over JSON lines.

``python -m bench.worker LIB BACKEND`` answers ``setup`` (build a case and warm it up), ``time``
(run a batch of steps, one timing each) and ``drop`` requests on stdin, one JSON object a line.
``python -m bench.worker LIB BACKEND --memory CASE [--quick]`` measures one step's peak memory in
this fresh process and exits. Library output goes to stderr; stdout carries only the protocol.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import time
import traceback
from typing import Any, TextIO

from bench.common import rss_peak, rss_reset, to_float
from bench.impl import BaseImpl, Step, Unsupported, load
from bench.workloads import CASES_BY_ID, make_data


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]


def checksum(out: Any) -> list[float]:
    """The sums of a step's returned arrays."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [to_float(o) for o in outs]


class Session:
    """The one library of this process and the case it currently holds."""

    def __init__(self, impl: BaseImpl, backend: str) -> None:
        self.impl, self.backend = impl, backend
        self.step: Step | None = None

    def build(self, case_id: str, quick: bool, memory_warmup: bool = False) -> Step:
        case = CASES_BY_ID[case_id]
        args = case.resolved(self.backend, quick)
        if memory_warmup:
            args.update(case.memory_warmup)
        return self.impl.build(case.kind, make_data(case, args))

    def timed(self, step: Step) -> float:
        sync = self.impl.sync
        t0 = time.perf_counter()
        step()
        sync()
        return time.perf_counter() - t0

    def setup(self, case_id: str, quick: bool) -> dict:
        self.step = None
        gc.collect()
        step = self.build(case_id, quick)
        checks, times = [], []
        for _ in range(CASES_BY_ID[case_id].warmup):
            t0 = time.perf_counter()
            out = step()
            self.impl.sync()
            times.append(time.perf_counter() - t0)
            checks.append(checksum(out))
            del out
        self.step = step
        return {"ok": True, "check": checks, "warm_s": min(times)}

    def time(self, n: int) -> dict:
        assert self.step is not None, "time before setup"
        gc.collect()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        times = [self.timed(self.step) for _ in range(n)]
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        return {"ok": True, "times": times, "faults": faults}

    def memory(self, case_id: str, quick: bool) -> dict:
        self.build(case_id, quick, memory_warmup=True)()
        self.impl.sync()
        step = self.build(case_id, quick)
        gc.collect()
        gpu = self.impl.on_gpu
        if gpu:
            self.impl.gpu_mem_reset()
        else:
            base = rss_reset()
        t0 = time.perf_counter()
        out = step()
        self.impl.sync()
        elapsed = time.perf_counter() - t0
        peak = self.impl.gpu_mem_peak() if gpu else rss_peak() - base
        return {"ok": True, "peak_bytes": peak, "time_s": elapsed, "check": checksum(out),
                "method": "memory pool" if gpu else "resident-set high-water mark"}


def _serve(session: Session, out: TextIO) -> None:
    for line in sys.stdin:
        msg = json.loads(line)
        op = msg["op"]
        if op == "quit":
            return
        try:
            if op == "setup":
                reply = session.setup(msg["case"], msg.get("quick", False))
            elif op == "time":
                reply = session.time(msg["n"])
            elif op == "drop":
                session.step = None
                gc.collect()
                reply = {"ok": True}
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except Unsupported as e:
            reply = {"ok": False, "skip": str(e)}
        except Exception as e:  # reported in the table; the worker stays usable
            traceback.print_exc()
            session.step = None
            reply = {"ok": False, "error": _error(e)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main() -> None:
    """Entry point: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("lib")
    p.add_argument("backend")
    p.add_argument("--memory", metavar="CASE")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    # Keep the protocol on a private copy of stdout; anything a library prints goes to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        impl = load(a.lib, a.backend)
    except Unsupported as e:
        return send({"ok": False, "skip": str(e)})
    except ImportError as e:
        return send({"ok": False, "skip": f"not installed ({_error(e)})"})
    session = Session(impl, a.backend)
    if a.memory:
        try:
            send(session.memory(a.memory, a.quick))
        except Unsupported as e:
            send({"ok": False, "skip": str(e)})
        except Exception as e:
            traceback.print_exc()
            send({"ok": False, "error": _error(e)})
        return
    send({"ok": True, "version": impl.version()})
    _serve(session, out)


if __name__ == "__main__":
    main()

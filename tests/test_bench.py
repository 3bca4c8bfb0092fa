"""Smoke tests of the benchmark scripts (bench/): every xgrad workload runs once at a tiny size on
NumPy and computes what the hand-written floor computes; the orchestrator's protocol and report
work end to end. No timing is asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402
from bench.impl import load  # noqa: E402
from bench.worker import checksum  # noqa: E402
from bench.workloads import CASES, CASES_BY_ID, make_data, select  # noqa: E402

TINY = {
    "chain": {"n": 8},
    "mlp": {"sizes": (6, 5, 3), "batch": 4},
    "matmul_tanh": {"n": 8, "layers": 2},
    "tanh_chain": {"layers": 3, "shape": (4, 4)},
    "cnn": {"batch": 2, "channels": 2, "image": 6},
    "conv2d": {"shape": (2, 2, 5, 5), "filters": 3},
}


@pytest.fixture(scope="module")
def impls():
    return load("xgrad", "numpy"), load("floor", "numpy")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_xgrad_workload_matches_floor(case, impls):
    rtol = 1e-3 if case.dtype == "float32" else 1e-9
    for steps in (1, 2):  # a training case's 2nd step checks the 1st step's update
        results = []
        for impl in impls:
            step = impl.build(case.kind, make_data(case, {**case.args, **TINY[case.kind]}))
            for _ in range(steps):
                out = step()
            results.append(checksum(out))
        got, want = results
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g == pytest.approx(w, rel=rtol, abs=1e-12), (case.id, got, want)


def test_step_keeps_dtype(impls):
    case = CASES_BY_ID["C-mlp784-f32"]
    step = impls[0].build(case.kind, make_data(case, {**case.args, **TINY["mlp"]}))
    assert str(step().dtype) == "float32"


def test_select():
    assert [c.id for c in select(["A"], quick=False)] == ["A-chain1k"]
    quick = {c.id for c in select(None, quick=True)}
    assert "C-mlp4096-f64" not in quick and "A-chain1k" in quick
    assert [c.id for c in select(["C-mlp4096-f64"], quick=True)] == ["C-mlp4096-f64"]
    with pytest.raises(SystemExit, match="unknown workloads"):
        select(["Z"], quick=False)


def _fake_report():
    def timing(t):
        return {"median": t, "q1": t, "q3": t, "min": t / 2, "n": 9, "faults_per_step": 0.0,
                "rounds": [t, None, 2 * t]}

    libs = {"xgrad": timing(4e-3), "floor": timing(1e-3), "torch": timing(5e-3),
            "mygrad": {"skip": "mygrad has no GPU support"}}
    mem = {"xgrad": {"peak_bytes": 130 * 2**20}, "floor": {"peak_bytes": 100 * 2**20}}
    return {
        "machine": "m", "date": "d", "backend": "numpy", "cpu": "cpu", "gpu": None,
        "cpu_count": 2, "mode": "full", "threads": 1, "elapsed_s": 1.0,
        "versions": {"python": "3"}, "libs": ["xgrad", "floor", "torch", "mygrad"], "notes": [],
        "cases": {
            "A-chain1k": {"id": "A-chain1k", "variant": "default", "title": "A",
                          "workload": "A", "unit": "us/op", "per_unit": 1e-3, "timed": True,
                          "memory": False, "libs": libs},
            "E-tanh200-mem": {"id": "E-tanh200-mem", "variant": "default", "title": "E",
                              "workload": "E", "unit": "ms", "per_unit": 1e-3, "timed": False,
                              "memory": True, "libs": mem},
        },
    }


def test_report_table_and_targets():
    report = _fake_report()
    table = run.markdown_table(report)
    assert "| A | us/op | 4 (4.00x) | 1 | 5 (5.00x) | skip |" in table
    assert "| E: peak memory | MiB | 130 (1.30x) | 100 |" in table
    text = run.render(report)
    assert text.count("| A | us/op |") == 1 and "A-chain1k: median 4.00, min 4.00, paired rounds 4.00" in text
    # what the run measured against each target: A 4 us/op vs PyTorch's 5 (no DeZero, no GPU
    # in this report, so no rows for those), E 130 MiB vs the floor's 100 against 1.2x
    rows = run.targets(report)
    assert [(measured, verdict) for _, measured, verdict in rows] == [
        ("4.00 vs 5.00 us/op", "met"), ("1.30x the floor", "missed by 8.3%")]
    assert rows[0][0].startswith("A: ") and "PyTorch" in rows[0][0]
    assert rows[1][0].startswith("E: peak memory <= 1.2x")
    for target, _, _ in rows:
        assert target in text


def test_update_results_md(tmp_path, monkeypatch):
    md = tmp_path / "RESULTS.md"
    md.write_text("# R\n\nintro\n")
    monkeypatch.setattr(run, "RESULTS_MD", md)
    run.update_results_md("cpu", "first")
    run.update_results_md("cpu", "second")
    text = md.read_text()
    assert "second" in text and "first" not in text and text.startswith("# R\n\nintro")
    assert text.count("<!-- bench:cpu:start -->") == 1


def test_run_end_to_end(tmp_path):
    """Two worker processes (xgrad, floor), one short round of workload A, JSON written."""
    out = tmp_path / "r.json"
    report = run.main(["--workloads", "A-chain1k", "--peers", "none", "--budget", "0.05",
                       "--out", str(out), "--no-update-results"])
    saved = json.loads(out.read_text())
    res = saved["cases"]["A-chain1k"]["libs"]
    assert res["xgrad"]["median"] > 0 and res["floor"]["median"] > 0
    assert res["xgrad"]["check"][0] == pytest.approx(res["floor"]["check"][0], rel=1e-9)
    assert report["versions"]["xgrad"]
    assert (tmp_path / "r.md").read_text().startswith("Machine ")


def _function_classes() -> list:
    from xgrad.core import Function

    out, todo = [], [Function]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return out


F32_CASES = [c for c in CASES if c.dtype == "float32"]


@pytest.mark.parametrize("case", F32_CASES, ids=[c.id for c in F32_CASES])
def test_float32_workload_makes_no_float64(case, impls, monkeypatch):
    """Every Function a float32 workload runs (forward and the backward's gradient nodes)
    returns float32 arrays, and so does every gradient: no silent float64 temporaries."""
    seen: list[tuple[str, str]] = []

    def recording(cls: type, forward):
        def wrapper(self, *xs):
            ys = forward(self, *xs)
            for y in ys if isinstance(ys, tuple) else (ys,):
                if hasattr(y, "dtype") and "float" in str(y.dtype):
                    seen.append((cls.__name__, str(y.dtype)))
            return ys
        return wrapper

    for cls in _function_classes():
        if "forward" in vars(cls):
            monkeypatch.setattr(cls, "forward", recording(cls, vars(cls)["forward"]))
    step = impls[0].build(case.kind, make_data(case, {**case.args, **TINY[case.kind]}))
    outs = step()
    for out in outs if isinstance(outs, tuple) else (outs,):
        seen.append(("step result", str(out.dtype)))
    assert seen, "the hook recorded nothing"
    wrong = sorted({s for s in seen if s[1] != "float32"})
    assert not wrong, f"{case.id}: float64 intermediates from {wrong}"

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
from bench.dtypes import TINY, float32_cases, float_dtypes  # noqa: E402
from bench.impl import load  # noqa: E402
from bench.worker import checksum  # noqa: E402
from bench.workloads import CASES, CASES_BY_ID, make_data, select  # noqa: E402


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
    # every target has a row; those this report holds get a verdict: A 4 us/op vs PyTorch's 5
    # is 0.80x against 0.75x, E 130 MiB vs the floor's 100 against 1.2x
    rows = {target: (measured, verdict) for target, measured, verdict in run.targets(report)}
    assert rows["A: <= 0.75x PyTorch eager per op"] == ("4.00 vs 5.00 us/op (0.80x)",
                                                         "missed by 6.7%")
    e = next(k for k in rows if k.startswith("E: ") and "peak memory <= 1.2x" in k)
    assert rows[e] == ("1.30x the floor's", "missed by 8.3%")
    for want in ("B: 100,000-op chain time", "B: 100,000-op chain peak memory", "C: MLP 784",
                 "D: 4 x (matmul+tanh)", "F: CNN step", "F: conv2d", "every float32 workload"):
        assert any(k.startswith(want) for k in rows), want
    for cid, _ in run.SPEED_TARGETS + run.MEMORY_TARGETS[:2]:
        title = CASES_BY_ID[cid].title[3:]
        assert [v for k, v in rows.items() if title in k] == [run.NOT_MEASURED], cid
    assert len(rows) == 1 + 2 + len(run.SPEED_TARGETS) + len(run.MEMORY_TARGETS) + 1
    for target in rows:
        assert target in text
    report["float64_leaks"] = {"C-mlp784-f32": [], "F-cnn-f32": ["ReLU -> float64"]}
    leak = dict((t, (m, v)) for t, m, v in run.targets(report))[
        "every float32 workload: no float64 intermediates"]
    assert leak == ("1 of 2 workloads float32 throughout; F-cnn-f32: ReLU -> float64", "missed")


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



@pytest.mark.parametrize("case", float32_cases(), ids=[c.id for c in float32_cases()])
def test_float32_workload_makes_no_float64(case):
    """Every Function a float32 workload runs (forward and the backward's gradient nodes)
    returns float32 arrays, and so does the step: no silent float64 temporaries."""
    seen = float_dtypes(case)
    assert any(name != "step result" for name, _ in seen), "the dtype hook recorded nothing"
    wrong = sorted({s for s in seen if s[1] != "float32"})
    assert not wrong, f"{case.id}: float64 intermediates from {wrong}"


def test_xgrad_at_a_git_revision_runs_beside_the_tree(tmp_path):
    """``xgrad@REF`` imports the package as committed at REF (extracted under bench/.trees) and
    computes what the working tree's xgrad computes on the same case."""
    import subprocess

    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    code = ("import json, sys; from bench.impl import load; from bench.worker import checksum; "
            "from bench.workloads import CASES_BY_ID, make_data; from bench.dtypes import TINY; "
            "lib = sys.argv[1]; impl = load(lib, 'numpy'); import xgrad; "
            "c = CASES_BY_ID['A-chain1k']; "
            "step = impl.build(c.kind, make_data(c, {**c.args, **TINY[c.kind]})); "
            "print(json.dumps([xgrad.__file__, impl.version(), checksum(step())]))")
    out = {}
    for lib in ("xgrad", "xgrad@HEAD"):
        p = subprocess.run([sys.executable, "-c", code, lib], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        out[lib] = json.loads(p.stdout.splitlines()[-1])
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True).stdout.strip()
    path, version, check = out["xgrad@HEAD"]
    assert Path(path).resolve().is_relative_to(ROOT / "bench" / ".trees" / sha)
    assert version.endswith(" at HEAD")
    assert check == pytest.approx(out["xgrad"][2], rel=1e-12)
    with pytest.raises(ValueError, match="not a commit"):
        from bench.impl import checkout

        checkout("no-such-revision-xyz")
    with pytest.raises(ValueError, match="unknown library 'floor@HEAD'"):
        load("floor@HEAD", "numpy")

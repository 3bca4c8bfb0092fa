"""Every example runs end to end in its --smoke mode, prints its final line and saves its plot.

The smoke runs start together as subprocesses (one module-scoped fixture) and each test checks
one of them, so the file takes about as long as the slowest run. Besides NumPy, every example
also runs with ``--backend torch`` / ``--backend jax`` when the test run selects that backend."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FINAL = re.compile(r"^(test accuracy|final loss): (\S+)$")

CASES = {  # run id: (script, extra arguments, final metric, plot)
    "spiral_mlp": ("spiral_mlp.py", (), "test accuracy", "spiral_mlp.png"),
    "digits_mlp": ("digits_mlp.py", (), "test accuracy", "digits_mlp.png"),
    "mnist_cnn": ("mnist_cnn.py", (), "test accuracy", "mnist_cnn.png"),
    "sin_lstm": ("sin_lstm.py", (), "final loss", "sin_lstm.png"),
    "higher_order": ("higher_order.py", (), "final loss", "higher_order.png"),
    "rosenbrock": ("rosenbrock.py", (), "final loss", "rosenbrock.png"),
    "spiral_mlp-strict": ("spiral_mlp.py", ("--backend", "array_api_strict"), "test accuracy",
                          "spiral_mlp.png"),
}


LIBRARY_BACKENDS = ("torch", "jax")  # every example also runs on these when they are selected


def _run_ids(config):
    """CASES, plus each example on the library backends this test run selected."""
    chosen = {getattr(c, "backend", None) and c.backend.name for c in config._xgrad_cases}
    extra = [f"{name}-{b}" for b in LIBRARY_BACKENDS if b in chosen
             for name, (_, args, _, _) in CASES.items() if not args]
    return list(CASES) + extra


def _case(run_id):
    """(script, extra arguments, final metric, plot) of a run id."""
    if run_id in CASES:
        return CASES[run_id]
    name, _, b = run_id.rpartition("-")
    script, args, metric, plot = CASES[name]
    return script, (*args, "--backend", b), metric, plot


def pytest_generate_tests(metafunc):
    if "run_id" in metafunc.fixturenames:
        metafunc.parametrize("run_id", _run_ids(metafunc.config))


def _wanted(run_id):
    if run_id.startswith("digits_mlp"):
        try:
            import sklearn  # noqa: F401
        except ImportError:
            return False
    if run_id.endswith("-strict"):
        try:
            import array_api_strict  # noqa: F401
        except ImportError:
            return False
    return True


@pytest.fixture(scope="module")
def runs(tmp_path_factory, pytestconfig):
    """{run id: (returncode, stdout, stderr, directory)} of every smoke run."""
    base = tmp_path_factory.mktemp("examples")
    data = base / "data"  # an empty $XGRAD_DATA: mnist_cnn.py must fall back to synthetic data
    env = dict(os.environ, MPLBACKEND="Agg", XGRAD_DATA=str(data),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("XGRAD_BACKEND", None)
    procs = {}
    for run_id in _run_ids(pytestconfig):
        script, extra, _, _ = _case(run_id)
        if not _wanted(run_id):
            continue
        d = base / run_id
        d.mkdir()
        procs[run_id] = d, subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), "--smoke", "--out", str(d / "out"), *extra],
            cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for run_id, (d, p) in procs.items():
        out, err = p.communicate(timeout=600)
        results[run_id] = p.returncode, out, err, d
    results["data"] = data
    return results


def test_example_smoke(runs, run_id):
    if run_id not in runs:
        pytest.skip(f"{run_id} needs a package that is not installed")
    _, _, metric, plot = _case(run_id)
    code, stdout, stderr, d = runs[run_id]
    assert code == 0, f"{run_id} failed:\n{stdout}\n{stderr}"
    last = stdout.strip().splitlines()[-1]
    m = FINAL.match(last)
    assert m and m.group(1) == metric, f"unexpected final line {last!r}"
    value = float(m.group(2))
    assert value == value and value >= 0.0  # a number, not nan
    if metric == "test accuracy":
        assert value <= 1.0
    assert (d / "out" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if run_id.startswith("mnist_cnn"):  # no MNIST files, and a smoke run never downloads
        assert "synthetic" in stdout and not (runs["data"] / "mnist").exists()

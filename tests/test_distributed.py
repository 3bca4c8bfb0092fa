"""Data parallelism: communicators, parameter broadcast, gradient averaging, sharded loading
and the launcher.

The MPI tests launch real jobs (2 and 3 ranks, through ``python -m xgrad.distributed.run``)
as subprocesses with a timeout, so a hang fails a test instead of the run; each job runs every
check of tests/distributed_worker.py at once and the tests read its results. The one-process
reference is the same training code run here on a one-process communicator.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import xgrad
import xgrad.distributed as dist
import xgrad.functions as F
from xgrad import nn, optim
from xgrad.data import Dataset
from xgrad.distributed import run as launcher

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
JOB_TIMEOUT = 120


def _worker():
    spec = importlib.util.spec_from_file_location("distributed_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _env():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    for k in ("XGRAD_BACKEND", "XGRAD_COMM", *dist.comm._LAUNCHER_VARS):
        env.pop(k, None)
    return env


def _launch(n, args, out):
    return subprocess.Popen(
        [sys.executable, "-m", "xgrad.distributed.run", "-n", str(n), "--timeout",
         str(JOB_TIMEOUT), *args], cwd=out, env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def _finish(proc):
    try:
        out, err = proc.communicate(timeout=JOB_TIMEOUT + 20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the MPI job hung:\n{out}\n{err}")
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """{ranks: (output directory, [per-rank json results])} of the 2- and 3-rank jobs."""
    pytest.importorskip("mpi4py", reason="the MPI tests need mpi4py (pip install 'xgrad[mpi]')")
    pytest.importorskip("array_api_strict", reason="the host-staged path runs array_api_strict")
    procs = {}
    for n in (2, 3):
        out = tmp_path_factory.mktemp(f"ranks{n}")
        procs[n] = out, _launch(n, [str(WORKER), "all", str(out)], out)
    examples = _start_examples(tmp_path_factory.mktemp("example"))  # meanwhile
    results = {}
    for n, (out, proc) in procs.items():
        rc, so, se = _finish(proc)
        assert rc == 0, f"the {n}-rank job failed ({rc}):\n{so}\n{se}"
        results[n] = out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(n)]
    results["example"] = {n: (d, *_finish(proc)) for n, (d, proc) in examples.items()}
    return results


def _start_examples(base):
    """The digits example's smoke run on 1 process and on 2 ranks, started together."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return {}
    script = str(ROOT / "examples" / "digits_mlp_distributed.py")
    env = dict(_env(), MPLBACKEND="Agg")
    runs = {}
    for n in (1, 2):
        d = base / f"n{n}"
        d.mkdir()
        cmd = [sys.executable, script] if n == 1 else \
            [sys.executable, "-m", "xgrad.distributed.run", "-n", "2", "--timeout",
             str(JOB_TIMEOUT), script]
        runs[n] = d, subprocess.Popen([*cmd, "--smoke", "--out", "out"], cwd=d, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return runs


@pytest.fixture(scope="module")
def reference():
    """{case: parameters} of one process trained on the same global batches."""
    worker = _worker()
    return worker, {case: worker.train(case, dist.SingleCommunicator())
                    for case in worker.CASES}


RANKS = [2, 3]


@pytest.mark.parametrize("n", RANKS)
@pytest.mark.parametrize("case", ["sgd", "momentum", "adam", "adam-f32", "clip", "unequal",
                                  "broadcast", "lazy", "lazy-auto", "strict"])
def test_ranks_identical_and_equal_to_one_process(jobs, reference, n, case):
    out, _ = jobs[n]
    worker, ref = reference
    ranks = [dict(np.load(out / f"{case}-rank{r}.npz")) for r in range(n)]
    assert set(ranks[0]) == set(ref[case])
    tol = 1e-6 if worker.CASES[case][1] == "float32" else 1e-12
    for name, want in ref[case].items():
        for r in range(1, n):
            assert np.array_equal(ranks[r][name], ranks[0][name]), (case, name, r)
        assert ranks[0][name].dtype == want.dtype
        np.testing.assert_allclose(ranks[0][name], want, rtol=tol, atol=tol,
                                   err_msg=f"{case} {name}")
    # the run really trained (a test that could not fail otherwise)
    assert not np.allclose(ref[case]["fc1.W"], _initial(worker, case)["fc1.W"])


def _initial(worker, case):
    dtype = worker.CASES[case][1]
    with xgrad.use_backend(worker.CASES[case][2]):
        xgrad.manual_seed(100)
        m = worker.Net(dtype, lazy=False)
        return {k: np.asarray(v) for k, v in m.state_dict().items()}


def test_unequal_split_is_unequal():
    assert _worker().CASES["unequal"][3] == 11
    for n, want in ((2, [6, 5]), (3, [4, 4, 3])):
        sizes = [dist.ShardedLoader(Dataset(np.zeros((11, 1))), 11, _Fake(r, n)).shard(11)
                 for r in range(n)]
        assert [b - a for a, b in sizes] == want


@pytest.mark.parametrize("n", RANKS)
def test_lazy_layers_broadcast_at_the_first_update(jobs, n):
    out, _ = jobs[n]
    ranks = [np.load(out / f"lazy-auto-seeds-rank{r}.npz") for r in range(n)]
    for name in ranks[0].files:
        for r in range(1, n):
            assert np.array_equal(ranks[r][name], ranks[0][name]), name


@pytest.mark.parametrize("n", RANKS)
def test_buckets_bit_identical_to_one_bucket(jobs, n):
    out, _ = jobs[n]
    for r in range(n):
        one = np.load(out / f"one-bucket-rank{r}.npz")
        many = np.load(out / f"many-buckets-rank{r}.npz")
        for name in one.files:
            assert np.array_equal(one[name], many[name]), name


@pytest.mark.parametrize("n", RANKS)
def test_bucket_never_aliases_a_gradient(jobs, n):
    for res in jobs[n][1]:
        assert res["no_alias"] == {"local_grads_unchanged": True, "shares_memory": False,
                                   "grads_overlap": False}


@pytest.mark.parametrize("n", RANKS)
def test_missing_gradients_count_as_zeros(jobs, n):
    w = np.arange(1, n + 1.0)  # rank r's weight and gradient are both r + 1
    mean = float((w * w).sum() / w.sum())
    for res in jobs[n][1]:
        p = res["partial"]
        assert p["a"] == pytest.approx([mean] * 3, rel=1e-15)
        assert p["b"] == pytest.approx([1 / w.sum()] * 3, rel=1e-15)  # rank 0 alone, weight 1
        assert p["c"] is True and p["d"] == [[], pytest.approx(mean, rel=1e-15)]


@pytest.mark.parametrize("n", RANKS)
def test_collectives(jobs, n):
    results = jobs[n][1]
    for r, res in enumerate(results):
        c = res["collectives"]
        assert res["init"] == ["MPICommunicator", True]
        assert (c["rank"], c["size"], c["local"]) == (r, n, [r, n])
        base = np.arange(4.0) * n + sum(range(n))
        assert c["sum"] == base.tolist()
        assert c["mean"] == (base / n).tolist()
        assert c["max"] == [n - 1, 0]
        assert c["strict"] == ["array_api_strict", "array_api_strict.Device('device1')",
                               [float(n + sum(range(n))), 2.0 * n]]
        assert c["bcast"] == [float(n - 1)] * 3
        assert c["bcast_obj"] == {"from": 0}
        assert c["allgather_obj"] == [10 * i for i in range(n)]
        w = np.arange(1, n + 1)
        assert c["metrics"]["acc"] == pytest.approx(float((w * np.arange(n)).sum() / w.sum()))
        assert c["metrics"]["loss"] == pytest.approx(2.0)
        assert c["bn"] == results[0]["collectives"]["bn"]
    # the BatchNorm statistics really differed before the broadcast
    assert results[0]["collectives"]["bn"][0] != _bn_mean(1)
    shards = [res["collectives"]["shards"] for res in results]
    order = np.random.default_rng((5, 1)).permutation(23)
    for i in range(3):
        got = [s[i] for s in shards]
        assert sum(got, []) == order[i * 8:(i + 1) * 8].tolist()  # disjoint, in order


def _bn_mean(r):
    with xgrad.use_backend("numpy"):
        bn = nn.BatchNorm()
        bn(xgrad.asarray(np.random.default_rng(r).standard_normal((4, 3))))
        return bn.avg_mean.tolist()


@pytest.mark.parametrize("n", RANKS)
def test_different_models_raise_the_same_error_everywhere(jobs, n):
    msgs = [res["mismatch"] for res in jobs[n][1]]
    for where, who in enumerate(["broadcast_parameters", "DistributedOptimizer.update"]):
        got = {m[where] for m in msgs}
        assert len(got) == 1, got
        msg = got.pop()
        assert msg.startswith(f"{who}: the ranks do not hold the same model")
        assert "rank 0 has 'layers.1.W' of shape (4, 2)" in msg
        assert "rank 1 has 'layers.1.W' of shape (4, 3)" in msg


def test_a_failing_rank_ends_the_job(tmp_path):
    pytest.importorskip("mpi4py", reason="the MPI tests need mpi4py (pip install 'xgrad[mpi]')")
    start = time.monotonic()
    rc, out, err = _finish(_launch(3, [str(WORKER), "raise", str(tmp_path)], tmp_path))
    took = time.monotonic() - start
    assert rc != 0
    assert took < 30, took
    assert "Traceback" in err and "ValueError: deliberate failure on rank 2" in err


def test_launcher_timeout_and_termination_end_every_rank(tmp_path):
    pytest.importorskip("mpi4py", reason="the MPI tests need mpi4py (pip install 'xgrad[mpi]')")
    script = tmp_path / "hang.py"
    script.write_text("import os, sys, time\n"
                      "open(os.path.join(sys.argv[1], f'pid{os.getpid()}'), 'w').close()\n"
                      "time.sleep(120)\n")
    procs = {}
    for how in ("timeout", "terminate"):
        d = tmp_path / how
        d.mkdir()
        limit = ["--timeout", "8"] if how == "timeout" else []
        procs[how] = d, subprocess.Popen(
            [sys.executable, "-m", "xgrad.distributed.run", "-n", "2", *limit, str(script),
             str(d)], cwd=d, env=_env(), stderr=subprocess.PIPE, text=True)
    d, proc = procs["terminate"]
    deadline = time.monotonic() + 60
    while len(list(d.glob("pid*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.terminate()
    for how, (d, proc) in procs.items():
        start = time.monotonic()
        err = proc.communicate(timeout=60)[1]
        assert proc.returncode == (124 if how == "timeout" else 143), (how, err)
        assert time.monotonic() - start < 30
        if how == "timeout":
            assert "ran past --timeout 8" in err
        pids = [int(f.name[3:]) for f in d.glob("pid*")]
        assert len(pids) == 2, how
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in pids), how


def _alive(pid):
    """True while process ``pid`` runs (an exited process not yet reaped counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


# --- without MPI ---------------------------------------------------------------------------
class _Fake(dist.SingleCommunicator):
    """Rank ``rank`` of ``size`` for sharding tests (no collectives)."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size


def test_importing_xgrad_imports_no_mpi():
    code = ("import sys, xgrad, xgrad.distributed as d; d.init(); "
            "assert 'mpi4py' not in sys.modules and 'cupy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), cwd=ROOT, timeout=60)


def test_init_chooses_by_name_environment_and_launcher(monkeypatch):
    for k in ("XGRAD_COMM", "SLURM_STEP_NUM_TASKS", *dist.comm._LAUNCHER_VARS):
        monkeypatch.delenv(k, raising=False)
    assert not dist.launched_by_mpi()
    c = dist.init()
    assert isinstance(c, dist.SingleCommunicator) and (c.rank, c.size) == (0, 1)
    assert dist.init("single") is c
    monkeypatch.setenv("PMI_RANK", "0")
    assert dist.launched_by_mpi()
    monkeypatch.delenv("PMI_RANK")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert dist.launched_by_mpi()
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    monkeypatch.setenv("XGRAD_COMM", "single")
    assert dist.init() is c
    with pytest.raises(dist.CommunicatorUnavailable, match="unknown communicator 'nope'"):
        dist.init("nope")
    with pytest.raises(dist.CommunicatorUnavailable, match="not part of this release"):
        dist.init("nccl")


def test_register_a_communicator():
    class Mine(dist.SingleCommunicator):
        name = "mine"

    dist.register("test-mine", Mine)
    try:
        assert "test-mine" in dist.registered()
        assert isinstance(dist.init("test-mine"), Mine)
        with pytest.raises(ValueError, match="already registered"):
            dist.register("test-mine", Mine)
        with pytest.raises(ValueError, match="module:attribute"):
            dist.register("test-other", "no_colon")
    finally:
        dist.comm._REGISTRY.pop("test-mine", None)
        dist.comm._INSTANCES.pop("test-mine", None)


def test_entry_point_group_registers_communicators(monkeypatch):
    import importlib.metadata

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert "xgrad.communicators" in project["entry-points"]
    assert [r.split(">")[0] for r in project["optional-dependencies"]["mpi"]] == ["mpi4py"]
    ep = importlib.metadata.EntryPoint(name="ep-comm", group="xgrad.communicators",
                                       value="xgrad.distributed.comm:SingleCommunicator")
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [ep] if group == "xgrad.communicators" else [])
    monkeypatch.setattr(dist.comm, "_entry_points_loaded", False)
    monkeypatch.setattr(dist.comm, "_REGISTRY", dict(dist.comm._REGISTRY))
    monkeypatch.setattr(dist.comm, "_INSTANCES", {})
    assert "ep-comm" in dist.registered()
    assert type(dist.init("ep-comm")) is dist.SingleCommunicator


def test_single_communicator_collectives(xp):
    c = dist.SingleCommunicator()
    a = xp.asarray([1.0, 2.0])
    for op in ("sum", "mean", "max", "min"):
        r = c.allreduce(a, op)
        assert type(r) is type(a) and r.device == a.device
        assert xgrad.backends.backend_of(r).to_host(r).tolist() == [1.0, 2.0]
    assert c.bcast_obj("x") == "x" and c.allgather_obj(3) == [3]
    with pytest.raises(TypeError, match="allreduce: expected an array"):
        c.allreduce(xgrad.Variable(a))
    with pytest.raises(ValueError, match="op must be one of"):
        c.allreduce(a, "prod")
    with pytest.raises(TypeError, match="op='mean' needs a floating dtype"):
        c.allreduce(xp.asarray([1, 2]), "mean")
    with pytest.raises(ValueError, match="root must be a rank in"):
        c.broadcast(a, root=1)


def test_sharded_loader_slices_each_global_batch():
    ds = Dataset(np.arange(23.0)[:, None], np.arange(23))
    full = dist.ShardedLoader(ds, 8, _Fake(0, 1), shuffle=True, seed=4)
    parts = [dist.ShardedLoader(ds, 8, _Fake(r, 3), shuffle=True, seed=4) for r in range(3)]
    for _ in range(2):
        want = [t.tolist() for _, t in full]
        got = [[t.tolist() for _, t in p] for p in parts]
        assert all(len(g) == len(want) == 3 for g in got)
        for i, w in enumerate(want):
            assert sum((g[i] for g in got), []) == w
            assert [len(g[i]) for g in got] == ([3, 3, 2] if len(w) == 8 else [3, 2, 2])
    assert want != [t.tolist() for _, t in full]  # a new epoch, a new order
    full.set_epoch(1)
    assert want == [t.tolist() for _, t in full]
    with pytest.raises(TypeError, match="ShardedLoader: comm must be a Communicator"):
        dist.ShardedLoader(ds, 8, None)
    with pytest.raises(ValueError, match="set_epoch: epoch must be"):
        full.set_epoch(-1)


def test_distributed_optimizer_on_one_process_is_the_optimizer():
    xgrad.manual_seed(0)
    a, b = nn.Linear(2, 3, dtype="float64"), nn.Linear(2, 3, dtype="float64")
    b.load_state_dict(a.state_dict())
    oa = optim.Adam().setup(a)
    ob = dist.DistributedOptimizer(optim.Adam(), dist.SingleCommunicator()).setup(b)
    for _ in range(3):
        for m, o in ((a, oa), (b, ob)):
            m.cleargrads()
            F.sum(m(xgrad.ones((4, 3), dtype="float64")) ** 2).backward()
            o.update()
    for k, v in a.state_dict().items():
        assert np.array_equal(v, b.state_dict()[k])
    assert ob.lr == oa.lr and repr(ob).startswith("DistributedOptimizer(")


def test_distributed_optimizer_bad_input():
    c = dist.SingleCommunicator()
    with pytest.raises(TypeError, match="expected an xgrad optimizer"):
        dist.DistributedOptimizer(object(), c)
    with pytest.raises(TypeError, match="comm must be a Communicator"):
        dist.DistributedOptimizer(optim.SGD(), "mpi")
    with pytest.raises(ValueError, match="bucket_cap_mb must be a positive number"):
        dist.DistributedOptimizer(optim.SGD(), c, bucket_cap_mb=0)
    with pytest.raises(RuntimeError, match="call .setup"):
        dist.DistributedOptimizer(optim.SGD(), _Fake(0, 2)).update()
    with pytest.raises(ValueError, match="batch_size must be an int >= 0"):
        dist.DistributedOptimizer(optim.SGD(), c).update(batch_size=-1)
    with pytest.raises(TypeError, match="broadcast_parameters: expected a Layer"):
        dist.broadcast_parameters(3, c)


def test_rank0_helpers(tmp_path, capsys):
    c = dist.SingleCommunicator()
    dist.print0(c, "hello")
    dist.print0(_Fake(1, 2), "not me")
    assert capsys.readouterr().out == "hello\n"
    assert dist.progress([1, 2], _Fake(1, 2)) == [1, 2]
    assert list(dist.progress([1, 2], c, disable=True)) == [1, 2]
    m = nn.Linear(2, 3)
    dist.save0(c, m, tmp_path / "m.npz")
    dist.save0(_Fake(1, 2), m, tmp_path / "other.npz")
    assert (tmp_path / "m.npz").exists() and not (tmp_path / "other.npz").exists()
    assert dist.average_metrics(c, {"a": 1.5, "b": xgrad.asarray(2.0)}) == {"a": 1.5, "b": 2.0}
    with pytest.raises(TypeError, match="metric 'a' must be a number"):
        dist.average_metrics(c, {"a": "x"})


def test_launcher_command(tmp_path):
    fake = tmp_path / "mpiexec"
    fake.write_text("#!/bin/sh\necho 'mpiexec (Open MPI) 5.0.5'\n")
    fake.chmod(0o755)
    argv, env = launcher.command(2, ["s.py", "--x"], mpiexec=str(fake), python="py")
    assert argv == [str(fake), "-n", "2", "--oversubscribe", "py", "-m", "mpi4py", "s.py", "--x"]
    if os.geteuid() == 0:
        assert env["OMPI_ALLOW_RUN_AS_ROOT"] == env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] == "1"
    fake.write_text("#!/bin/sh\necho 'HYDRA build details:'\n")
    argv, env = launcher.command(3, ["-m", "pkg.mod"], mpiexec=str(fake), python="py")
    assert argv == [str(fake), "-n", "3", "py", "-m", "mpi4py", "-m", "pkg.mod"]
    assert "OMPI_ALLOW_RUN_AS_ROOT" not in env or "OMPI_ALLOW_RUN_AS_ROOT" in os.environ
    with pytest.raises(SystemExit):
        launcher.main(["-n", "0", "s.py"])


def test_example_on_two_ranks_matches_one_process(jobs):
    if not jobs["example"]:
        pytest.skip("the digits example needs scikit-learn")
    acc = {}
    for n, (d, rc, out, err) in jobs["example"].items():
        assert rc == 0, f"{n} rank(s) failed:\n{out}\n{err}"
        lines = out.strip().splitlines()
        assert sum(ln.startswith("test accuracy: ") for ln in lines) == 1  # rank 0 alone
        assert lines[-1].startswith("test accuracy: ")
        acc[n] = float(lines[-1].split()[-1])
        assert err.count("100%") <= 2 and "rank(s)" in err  # one bar (drawn, then closed)
        assert [p.name for p in (d / "out").iterdir()] == ["digits_mlp_distributed.png"]
    assert abs(acc[2] - acc[1]) <= 2 / 359, acc  # at most two of the 359 test images differ

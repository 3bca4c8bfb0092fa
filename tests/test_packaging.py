"""Packaging and the first minutes: imports, `python -m xgrad info`, metadata, the registry's
errors and third-party backends."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import xgrad
from xgrad import Variable, backends
from xgrad.backends.strict import StrictBackend
from xgrad.testing import assert_close

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -c code`` in a fresh interpreter without XGRAD_BACKEND (plus ``env``)."""
    clean = {k: v for k, v in os.environ.items() if k != "XGRAD_BACKEND"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, cwd=ROOT, timeout=120)


def test_importing_xgrad_and_every_module_never_imports_cupy():
    code = (
        "import pkgutil, sys, xgrad\n"
        "assert 'cupy' not in sys.modules, 'import xgrad imported cupy'\n"
        "import importlib\n"
        "for m in pkgutil.walk_packages(xgrad.__path__, 'xgrad.'):\n"
        "    if m.name != 'xgrad.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "        assert 'cupy' not in sys.modules, m.name + ' imported cupy'\n"
        "print('ok', len(sys.modules))\n"
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok")


def _info(**env: str) -> str:
    r = _python("import sys; from xgrad.__main__ import main; sys.exit(main(['info']))", **env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_info_lists_backends_with_versions_and_the_default():
    out = _info()
    assert f"xgrad {xgrad.__version__}" in out
    assert f"Python {sys.version.split()[0]}" in out
    np_version = importlib.metadata.version("numpy")
    strict_version = importlib.metadata.version("array-api-strict")
    assert f"numpy {np_version}: available" in out
    assert f"array_api_strict {strict_version}: available" in out
    assert "cupy" in out  # listed even where it is not installed or sees no GPU
    assert "Default backend: numpy on cpu (built-in default" in out


def test_info_reports_the_default_from_xgrad_backend():
    out = _info(XGRAD_BACKEND="array_api_strict")
    assert "Default backend: array_api_strict" in out
    assert "from XGRAD_BACKEND='array_api_strict'" in out
    bad = _info(XGRAD_BACKEND="no_such_backend")  # a report, not a traceback
    assert "Default backend: ERROR" in bad and "no_such_backend" in bad


def test_python_dash_m_xgrad_help_and_info():
    r = subprocess.run([sys.executable, "-m", "xgrad", "--help"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "info" in r.stdout
    r = subprocess.run([sys.executable, "-m", "xgrad", "info"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "Backends" in r.stdout


def test_version_is_single_sourced():
    project = _pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "xgrad.__version__"}
    try:
        installed = importlib.metadata.version("xgrad")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("xgrad is not installed (running from a source tree)")
    assert installed == xgrad.__version__


def test_entry_points_are_declared():
    eps = _pyproject()["project"]["entry-points"]
    assert eps["pytest11"] == {"xgrad": "xgrad.testing.plugin"}
    assert "xgrad.backends" in eps  # the group third-party backends register in
    installed = importlib.metadata.entry_points(group="pytest11")
    if any(ep.name == "xgrad" for ep in installed):
        assert {ep.value for ep in installed if ep.name == "xgrad"} == {"xgrad.testing.plugin"}


def test_cuda_extras_pin_cupy_14_with_ctk():
    from packaging.requirements import Requirement  # a dependency of pytest

    extras = _pyproject()["project"]["optional-dependencies"]
    for extra, dist in (("cuda12", "cupy-cuda12x"), ("cuda13", "cupy-cuda13x")):
        (req,) = [Requirement(r) for r in extras[extra]]
        assert req.name == dist and req.extras == {"ctk"}
        assert "14.0" in req.specifier and "14.9" in req.specifier
        assert "13.6" not in req.specifier and "15.0" not in req.specifier
    assert {"test", "examples"} <= set(extras)
    test_reqs = {Requirement(r).name for r in extras["test"]}
    assert {"pytest", "hypothesis", "array-api-strict"} <= test_reqs
    assert {"tqdm", "matplotlib", "scikit-learn"} <= {Requirement(r).name
                                                      for r in extras["examples"]}


def test_wheel_holds_every_module_and_the_metadata(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 68:
        pytest.skip(f"building needs setuptools>=68, found {setuptools.__version__}")
    src = tmp_path / "src"  # build from a copy: no build/ or egg-info left in the checkout
    shutil.copytree(ROOT / "xgrad", src / "xgrad",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path / "dist"), str(src)],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PIP_NO_INDEX": "1"})
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("xgrad-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "xgrad").rglob("*.py")}
    assert sources <= names, f"missing from the wheel: {sorted(sources - names)}"
    dist_info = f"xgrad-{xgrad.__version__}.dist-info"
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert f"Version: {xgrad.__version__}" in metadata
    assert 'Provides-Extra: cuda12' in metadata and "cupy-cuda12x[ctk]" in metadata
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "[pytest11]" in entry_points and "xgrad.testing.plugin" in entry_points


# --- the registry's errors and third-party backends -------------------------------------------
def test_cupy_without_a_gpu_says_so_and_how_to_install(monkeypatch):
    if "cupy" in backends.available():
        pytest.skip("CuPy sees a GPU here")
    for ask in (lambda: backends.get("cupy"), lambda: xgrad.use_backend("cuda"),
                lambda: xgrad.zeros(3, backend="cupy")):
        with pytest.raises(backends.BackendUnavailable) as err:
            ask()
        msg = str(err.value)
        assert "no CUDA GPU" in msg and 'pip install "xgrad[cuda12]"' in msg
        assert "numpy" in msg  # the usable ones
    monkeypatch.setenv("XGRAD_BACKEND", "cupy")
    with pytest.raises(backends.BackendUnavailable, match="no CUDA GPU"):
        xgrad.ones(2)


def test_unknown_backend_lists_the_available_ones():
    with pytest.raises(backends.BackendUnavailable) as err:
        backends.get("tensorflow")
    msg = str(err.value)
    assert "'tensorflow'" in msg
    for name in backends.available():
        assert repr(name) in msg


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, restored after the test."""
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    monkeypatch.setattr(backends, "_BY_TYPE", {})
    return backends


class MyStrict(StrictBackend):
    """A third-party backend: array_api_strict under another name."""

    name = "my_strict"


def _train_a_step_on(name: str) -> None:
    with xgrad.use_backend(name):
        x = Variable(xgrad.asarray([1.0, 2.0, 3.0]))
    assert backends.get("array_api_strict").owns(x.data)
    (x * x).sum().backward()
    assert_close(x.grad, [2.0, 4.0, 6.0])


def test_register_a_third_party_backend(registry):
    pytest.importorskip("array_api_strict")
    mine = MyStrict()
    registry.register("my_strict", mine)
    assert registry.get("my_strict") is mine
    assert "my_strict" in registry.registered() and "my_strict" in registry.available()
    _train_a_step_on("my_strict")
    assert xgrad.zeros(2, backend="my_strict").shape == (2,)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("my_strict", mine)
    registry.register("my_strict", StrictBackend(), overwrite=True)
    assert registry.get("my_strict") is not mine
    with pytest.raises(ValueError, match="module:attribute"):
        registry.register("lazy", "no_colon_here")


def _write_plugin(tmp_path: Path, monkeypatch, module: str) -> None:
    (tmp_path / f"{module}.py").write_text(
        "from xgrad.backends.strict import StrictBackend\n"
        "class PluginBackend(StrictBackend):\n"
        "    name = 'plugin_strict'\n"
        "backend = PluginBackend()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_lazy_module_attr_backend_is_imported_on_first_use(registry, tmp_path, monkeypatch):
    pytest.importorskip("array_api_strict")
    _write_plugin(tmp_path, monkeypatch, "xgrad_lazy_plugin")
    registry.register("plugin_strict", "xgrad_lazy_plugin:backend")
    registry.register("plugin_class", "xgrad_lazy_plugin:PluginBackend")  # a class: instantiated
    assert "xgrad_lazy_plugin" not in sys.modules  # registering imports nothing
    assert registry.get("plugin_strict").name == "plugin_strict"
    assert "xgrad_lazy_plugin" in sys.modules
    assert isinstance(registry.get("plugin_class"), sys.modules["xgrad_lazy_plugin"].PluginBackend)
    _train_a_step_on("plugin_class")
    monkeypatch.delitem(sys.modules, "xgrad_lazy_plugin")


def test_entry_point_group_registers_lazily(registry, tmp_path, monkeypatch):
    pytest.importorskip("array_api_strict")
    _write_plugin(tmp_path, monkeypatch, "xgrad_ep_plugin")
    ep = importlib.metadata.EntryPoint(name="ep_strict", value="xgrad_ep_plugin:backend",
                                       group="xgrad.backends")
    seen = []

    def entry_points(group=None):
        seen.append(group)
        return [ep] if group == "xgrad.backends" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(backends, "_entry_points_loaded", False)
    assert "ep_strict" in registry.registered()
    assert seen == ["xgrad.backends"]
    assert "xgrad_ep_plugin" not in sys.modules  # listed, not yet imported
    assert registry.get("ep_strict").name == "plugin_strict"
    _train_a_step_on("ep_strict")
    monkeypatch.delitem(sys.modules, "xgrad_ep_plugin")

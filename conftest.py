"""Test-suite set-up: pytester for the plugin's own tests, and xgrad's pytest plugin when running
from a checkout where xgrad is not pip-installed (an installed xgrad registers it through the
pytest11 entry point)."""

from importlib.metadata import entry_points

pytest_plugins = ["pytester"]
if not any(ep.name == "xgrad" for ep in entry_points(group="pytest11")):
    pytest_plugins.append("xgrad.testing.plugin")

"""``python -m xgrad info``: the environment report to paste into a bug report."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from importlib import metadata

import xgrad
from xgrad import backends


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _backend_lines(name: str) -> list[str]:
    """One backend: its version, whether it is usable here (and why not), and its devices."""
    try:
        b = backends._load(name)
    except Exception as e:  # a third-party entry point that fails to import
        return [f"  {name}: cannot be loaded: {type(e).__name__}: {e}"]
    if importlib.util.find_spec(b.module.split(".")[0]) is None:
        return [f"  {name}: not installed (install with: {b.install_hint})"]
    try:
        version = b.version
    except Exception as e:
        version = f"(version unknown: {type(e).__name__}: {e})"
    problem = backends.unavailable().get(name)
    if problem is None:
        try:
            devices = ", ".join(b.describe_devices()) or "none"
        except Exception as e:
            devices = f"cannot list them: {type(e).__name__}: {e}"
        return [f"  {name} {version}: available", f"      devices: {devices}"]
    lines = [f"  {name} {version}: NOT available ({problem})"]
    if b.gpu and b.why_unavailable().startswith("no GPU"):
        try:  # ask for the devices anyway: the error says why (no driver, no GPU, ...)
            lines[0] = lines[0][:-1] + f"; devices: {b.devices() or 'none'})"
        except Exception as e:
            lines[0] = lines[0][:-1] + f"; {type(e).__name__}: {e})"
    if b.install_hint:
        lines.append(f"      install with: {b.install_hint}")
    return lines


def _default_backend_line() -> str:
    env = os.environ.get("XGRAD_BACKEND")
    source = f"from XGRAD_BACKEND={env!r}" if env else \
        "built-in default; set XGRAD_BACKEND or call xgrad.use_backend() to change it"
    try:
        b, device = backends.current_target()
    except Exception as e:
        return f"Default backend: ERROR ({source}): {e}"
    return f"Default backend: {b.name} on {b.device_spec(device)} ({source})"


def info() -> str:
    """The report printed by ``python -m xgrad info``."""
    lines = [
        f"xgrad {xgrad.__version__} ({os.path.dirname(xgrad.__file__)})",
        f"Python {platform.python_version()} ({platform.python_implementation()}, "
        f"{sys.executable})",
        f"Platform: {platform.platform()} ({platform.machine()})",
        f"array-api-compat {_dist_version('array-api-compat')}",
        "",
        "Backends (registered; usable ones are 'available'):",
    ]
    for name in backends.registered():
        lines += _backend_lines(name)
    lines += ["", _default_backend_line()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of ``python -m xgrad``."""
    parser = argparse.ArgumentParser(
        prog="python -m xgrad",
        description="xgrad: define-by-run automatic differentiation on the Python array API.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="print xgrad's version, Python, platform, the backends with "
                                "their versions and devices, and the default backend "
                                "(paste it into bug reports)")
    args = parser.parse_args(argv)
    if args.command == "info":
        print(info())
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The computational graph as Graphviz DOT text, and rendering it with the ``dot`` program."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from xgrad.core import Function, Variable, XgradError
from xgrad.dtypes import dtype_name

__all__ = ["GraphvizNotFound", "plot_graph", "to_dot"]

_INSTALL = ("install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), `dnf install "
            "graphviz` (Fedora), `brew install graphviz` (macOS), `conda install graphviz`, or "
            "see https://graphviz.org/download/")


class GraphvizNotFound(XgradError, RuntimeError):
    """The Graphviz ``dot`` program is not on the PATH."""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _var_node(v: Variable, verbose: bool) -> str:
    label = v.name or ""
    if verbose:
        label += (": " if label else "") + f"{tuple(v.shape)} {dtype_name(v.dtype)}"
    return f"{id(v)} [label={_quote(label)}, color=orange, style=filled]"


def _func_node(f: Function) -> str:
    return f"{id(f)} [label={_quote(type(f).__name__)}, color=lightblue, style=filled, shape=box]"


def to_dot(output: Variable | Iterable[Variable], verbose: bool = False) -> str:
    """DOT text of the graph that produced ``output`` (one Variable or several): Variables are
    orange ellipses labelled with their name (and, with ``verbose``, shape and dtype),
    Functions light-blue boxes labelled with their class name."""
    outs = [output] if isinstance(output, Variable) else list(output)
    for o in outs:
        if not isinstance(o, Variable):
            raise TypeError(f"to_dot: expected Variables, got {type(o).__name__}")
    lines: list[str] = []
    seen_vars: set[int] = set()
    seen_funcs: set[int] = set()

    def add_var(v: Variable) -> None:
        if id(v) not in seen_vars:
            seen_vars.add(id(v))
            lines.append(_var_node(v, verbose))

    stack: list[Function] = []
    for o in outs:
        add_var(o)
        if o.creator is not None and id(o.creator) not in seen_funcs:
            seen_funcs.add(id(o.creator))
            stack.append(o.creator)
    while stack:  # iterative: a graph of any depth, each Function visited once
        f = stack.pop()
        lines.append(_func_node(f))
        for x in f.inputs:
            add_var(x)
            lines.append(f"{id(x)} -> {id(f)}")
            if x.creator is not None and id(x.creator) not in seen_funcs:
                seen_funcs.add(id(x.creator))
                stack.append(x.creator)
        for ref in f.outputs:
            y = ref()
            if y is not None:  # an output nobody holds any more has been freed
                add_var(y)
                lines.append(f"{id(f)} -> {id(y)}")
    return "digraph g {\n" + "".join(f"  {line}\n" for line in lines) + "}\n"


def plot_graph(output: Variable | Iterable[Variable], path: str | os.PathLike,
               verbose: bool = True) -> Path:
    """Render the graph of ``output`` to ``path`` with Graphviz's ``dot`` (the format comes from
    the suffix: .png, .svg, .pdf, ...); a ``.dot`` path gets the DOT text and needs no Graphviz.
    Returns the path."""
    path = Path(path)
    text = to_dot(output, verbose=verbose)
    fmt = path.suffix.lstrip(".").lower()
    if fmt in ("dot", "gv"):
        path.write_text(text)
        return path
    if not fmt:
        raise ValueError(f"plot_graph: {path} has no suffix to choose the format "
                         f"(.png, .svg, .pdf or .dot)")
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFound(f"plot_graph: rendering {path} needs the Graphviz `dot` program, "
                               f"which is not on the PATH; {_INSTALL}. Or write the DOT text "
                               f"with to_dot() or a .dot path.")
    r = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=text, text=True,
                       capture_output=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"plot_graph: `dot -T{fmt}` failed ({r.returncode}): "
                           f"{r.stderr.strip()}")
    return path

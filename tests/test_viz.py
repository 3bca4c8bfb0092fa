"""xgrad.viz: DOT text of a graph, and rendering it with (or without) Graphviz."""

import os
import re
import sys

import pytest

import xgrad
import xgrad.functions as F
from xgrad import Variable, viz


def _graph(backend):
    x = Variable(backend.asarray([[1.0, 2.0, 3.0]], dtype="float32"), name="x")
    y = F.tanh(x) * x
    y.name = "y"
    return x, y


def _nodes(dot):
    """{node id: attribute text} and the list of (src, dst) edges of a DOT text."""
    nodes = dict(re.findall(r"^\s*(\d+) \[(.*)\]$", dot, flags=re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)$", dot, flags=re.M)
    return nodes, edges


def test_to_dot_variables_and_functions(backend):
    x, y = _graph(backend)
    dot = viz.to_dot(y)
    assert dot.startswith("digraph g {") and dot.rstrip().endswith("}")
    nodes, edges = _nodes(dot)
    boxes = [a for a in nodes.values() if "shape=box" in a]
    assert sorted(re.search(r'label="(\w+)"', a).group(1) for a in boxes) == ["Mul", "Tanh"]
    ellipses = [a for a in nodes.values() if "shape=box" not in a]
    assert len(ellipses) == 3  # x, tanh(x), y
    assert nodes[str(id(x))].startswith('label="x"') and nodes[str(id(y))].startswith('label="y"')
    assert "(1, 3)" not in dot and "float32" not in dot
    # x feeds both Tanh and Mul; Tanh feeds Mul; Mul makes y: 3 input edges, 2 output edges
    assert len(edges) == 5 and (str(id(x)), str(id(y.creator))) in edges
    assert (str(id(y.creator)), str(id(y))) in edges


def test_to_dot_verbose_shows_shape_and_dtype(backend):
    x, y = _graph(backend)
    nodes, _ = _nodes(viz.to_dot(y, verbose=True))
    assert nodes[str(id(x))].startswith('label="x: (1, 3) float32"')
    assert nodes[str(id(y))].startswith('label="y: (1, 3) float32"')
    unnamed = [a for k, a in nodes.items() if k not in (str(id(x)), str(id(y))) and "box" not in a]
    assert unnamed == ['label="(1, 3) float32", color=orange, style=filled']


def test_to_dot_escapes_names_and_takes_several_outputs(backend):
    x = Variable(backend.asarray([1.0]), name='say "hi"\\')
    a, b = F.exp(x), F.sin(x)
    dot = viz.to_dot([a, b])
    assert r'label="say \"hi\"\\"' in dot and dot.count(f"{id(x)} [") == 1
    assert "Exp" in dot and "Sin" in dot
    with pytest.raises(TypeError, match="expected Variables"):
        viz.to_dot([a, 3.0])


def test_to_dot_deep_graph_is_iterative():
    n = 3 * sys.getrecursionlimit()
    x = Variable(xgrad.asarray([1.0]), name="x")
    y = x
    for _ in range(n):
        y = y + 1.0
    nodes, edges = _nodes(viz.to_dot(y))
    assert sum("shape=box" in a for a in nodes.values()) == n
    assert len(nodes) == 1 + 3 * n  # x, and per Add: the function, its constant, its output
    assert len(edges) == 3 * n  # per Add: two inputs, one output


def test_to_dot_of_a_gradient_graph(backend):
    x = Variable(backend.asarray([0.5]), name="x")
    y = x * x * x
    y.backward(create_graph=True)
    nodes, edges = _nodes(viz.to_dot(x.grad))  # 3 x^2, built from x by Muls and Adds
    assert str(id(x)) in nodes and any("shape=box" in a for a in nodes.values())
    assert any(src == str(id(x)) for src, _ in edges)


def test_plot_graph_writes_dot_text_without_graphviz(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    _, y = _graph(backend)
    out = viz.plot_graph(y, tmp_path / "g.dot")
    assert out.read_text() == viz.to_dot(y, verbose=True)


def test_plot_graph_without_dot_says_how_to_install(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    _, y = _graph(backend)
    with pytest.raises(viz.GraphvizNotFound, match="Graphviz `dot`") as e:
        viz.plot_graph(y, tmp_path / "g.png")
    assert "apt-get install graphviz" in str(e.value) and "brew install graphviz" in str(e.value)
    assert not (tmp_path / "g.png").exists()
    with pytest.raises(ValueError, match="suffix"):
        viz.plot_graph(y, tmp_path / "graph")


@pytest.mark.skipif(sys.platform == "win32", reason="fake `dot` is a shell script")
def test_plot_graph_runs_dot_with_an_argument_list(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    # records its arguments, copies the DOT text from stdin to the -o file
    fake.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\ncat > "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    x = Variable(xgrad.asarray([1.0]), name="x")
    y = F.exp(x)
    target = tmp_path / "out dir; rm -rf x" / "graph.svg"  # no shell: odd names are harmless
    target.parent.mkdir()
    assert viz.plot_graph(y, target) == target
    assert target.read_text() == viz.to_dot(y, verbose=True)
    assert (fake.parent / "args").read_text().split()[:2] == ["-Tsvg", "-o"]
    fake.write_text('#!/bin/sh\necho "syntax error in line 1" >&2\nexit 1\n')
    with pytest.raises(RuntimeError, match="syntax error in line 1"):
        viz.plot_graph(y, tmp_path / "g.png")

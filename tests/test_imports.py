"""The package's imports run one way: backends <- core <- functions <- nn / optim / data / io /
distributed. Read from the source with ``ast``: no cycle between xgrad modules, and an import
inside a function only where it is deliberately lazy (listed below, each with its reason)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "xgrad"

# (module, imported xgrad module): the only imports of xgrad modules inside functions.
LAZY = {
    # anomaly builds on the core; the core consults it only under detect_anomaly()
    ("xgrad.core", "xgrad.anomaly"),
    # the registry imports the Backend class; transfer() asks it for a foreign array's owner
    ("xgrad.backends.base", "xgrad.backends"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _targets(node: ast.AST, module: str) -> list[str]:
    """The xgrad modules an import statement loads (``from xgrad import io`` loads xgrad.io)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        assert isinstance(node, ast.ImportFrom)
        if node.level:  # relative: resolve against the importing package
            pkg = module.split(".")
            if not MODULES[module].name == "__init__.py":
                pkg = pkg[:-1]
            base = ".".join(pkg[:len(pkg) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        names = [f"{base}.{a.name}" for a in node.names]
    out = []
    for name in names:
        if name.split(".")[0] != "xgrad":
            continue
        while name not in MODULES and "." in name:  # an attribute: its module
            name = name.rsplit(".", 1)[0]
        if name in MODULES and name != module:
            out.append(name)
    return out


def _imports(module: str) -> tuple[set[str], list[tuple[str, int]]]:
    """(xgrad modules imported at module level, [(module, line)] imported inside functions)."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    top: set[str] = set()
    inner: list[tuple[str, int]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for t in _targets(child, module):
                    if in_function:
                        inner.append((t, child.lineno))
                    else:
                        top.add(t)
            visit(child, in_function or isinstance(child, (ast.FunctionDef,
                                                           ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return top, inner


def _parents(module: str) -> set[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))} & set(MODULES)


def test_no_import_cycle_between_xgrad_modules():
    graph = {}
    for m in MODULES:
        top, _ = _imports(m)
        graph[m] = {t for t in top if t not in _parents(m)}
        # importing a submodule imports its package first
        graph[m] |= {p for t in top for p in _parents(t) if p != m and p not in _parents(m)}
    # depth-first search for a back edge
    state: dict[str, int] = {}
    cycles = []

    def dfs(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t] if t in path else [m, t])
            elif t not in state:
                dfs(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_inside_functions_are_deliberate_and_say_why():
    bad = []
    for m, path in MODULES.items():
        lines = path.read_text().splitlines()
        for t, line in _imports(m)[1]:
            if (m, t) not in LAZY:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {t} in a function")
            elif "#" not in lines[line - 1]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: say why {t} is lazy")
    assert not bad, "\n".join(bad)


def test_the_layers_run_one_way():
    """The leaves import nothing of xgrad; the backends nothing above them; the core no
    function, layer or optimizer."""
    def closure(m: str) -> set[str]:
        seen, todo = set(), [m]
        while todo:
            for t in _imports(todo.pop())[0]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return seen

    for leaf in ("xgrad.errors", "xgrad.dtypes", "xgrad._array", "xgrad._switch"):
        assert closure(leaf) == set(), leaf
    backends = {m for m in MODULES if m.startswith("xgrad.backends")}
    for m in backends:
        assert closure(m) <= backends | {"xgrad.errors", "xgrad.dtypes", "xgrad._array",
                                         "xgrad._switch"}, m
    core = closure("xgrad.core")
    assert not {m for m in core if m.startswith(("xgrad.functions", "xgrad.nn", "xgrad.optim",
                                                 "xgrad.data", "xgrad.io", "xgrad.creation"))}

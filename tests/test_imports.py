"""The package's import graph (top-level and function-level imports) has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import spinglass_icl

ROOT = Path(spinglass_icl.__file__).parent


def _graph() -> dict[str, set[str]]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = ("spinglass_icl", *p.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    graph: dict[str, set[str]] = {n: set() for n in mods}
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
                b = ".".join(base + ([node.module] if node.module else []))
                targets = [b] + [f"{b}.{a.name}" for a in node.names]
            else:
                continue
            # a submodule importing its own package's __init__ is how Python loads it
            graph[name] |= {
                t for t in targets if t in mods and t != name and not name.startswith(t + ".")
            }
    return graph


def test_intra_package_imports_are_acyclic():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(v, path):
        state[v] = 1
        for w in sorted(graph[v]):
            assert state.get(w) != 1, "import cycle: " + " -> ".join([*path, v, w])
            if w not in state:
                visit(w, [*path, v])
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v, [])
    assert len(graph) > 30  # the walk saw the package

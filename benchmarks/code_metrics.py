"""Code metrics of the package: size, longest functions, import cycles, parameter hops, seams.

    python benchmarks/code_metrics.py

Prints four sections (read-only; nothing is imported from the package but the functions
the trace names, which it checks exist):

1. lines per module of ``src/spinglass_icl`` (the 20 largest, and the total) and the ten
   longest functions and methods (``ast``: first line of the ``def`` to its last line);
2. the import graph of the package's modules from their module-level imports (not those
   inside functions, nor under ``if TYPE_CHECKING``): its edges, and whether it is
   acyclic (strongly connected components of more than one module are cycles);
3. ``--damping`` and ``lam`` traced from the command line to the AMP update: every
   function boundary the value crosses (a hop) and every place it is checked (a
   validation). The trace is written by hand below; the script checks that each function
   it names exists and mentions the value, so a refactoring that removes a hop makes it
   fail rather than print a stale count;
4. for each extension kind (solver, task distribution, model, figure), what a new one has
   to touch: the example of ``examples/extending`` with its registration call and the test
   that runs it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = SRC / "spinglass_icl"
sys.path.insert(0, str(SRC))


# ------------------------------------------------------------------ 1. size
def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def functions(tree: ast.AST, prefix: str = ""):
    """``(qualified name, lines)`` of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            yield name, node.end_lineno - node.lineno + 1
            yield from functions(node, name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")


def size_report() -> list[str]:
    mods = modules()
    lines = {m: len(p.read_text().splitlines()) for m, p in mods.items()}
    out = [
        f"## 1. size: {len(mods)} modules, {sum(lines.values())} lines in src/spinglass_icl",
        "",
        "| module | lines |",
        "|---|---|",
    ]
    out += [f"| {m} | {n} |" for m, n in sorted(lines.items(), key=lambda kv: -kv[1])[:20]]
    funcs = []
    for m, p in mods.items():
        funcs += [(n, f"{m}.{q}") for q, n in functions(ast.parse(p.read_text()))]
    funcs.sort(key=lambda t: -t[0])
    out += ["", "ten longest functions:", "", "| function | lines |", "|---|---|"]
    out += [f"| {q} | {n} |" for n, q in funcs[:10]]
    n_f = len(funcs)
    long = sum(1 for n, _ in funcs if n > 50)
    out += ["", f"{n_f} functions and methods; {long} longer than 50 lines"]
    return out


# ---------------------------------------------------------- 2. import graph
def _top_level_imports(tree: ast.Module):
    """Import statements executed when the module is imported (module level, inside
    top-level if/try/with blocks, not under ``if TYPE_CHECKING``)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" in ast.unparse(node.test):
                todo.extend(node.orelse)
            else:
                todo.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend(node.body + node.orelse + node.finalbody)
            for h in node.handlers:
                todo.extend(h.body)
        elif isinstance(node, ast.With):
            todo.extend(node.body)


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        is_pkg = p.name == "__init__.py"
        for node in _top_level_imports(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = m.split(".") if is_pkg else m.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # "from pkg import sub" imports the submodule pkg.sub when it is one
                targets = [
                    f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names
                ]
            for t in targets:
                while t and t not in mods:  # "spinglass_icl.x.y" where y is a name in x
                    t = t.rpartition(".")[0]
                if t and t != m:
                    graph[m].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_report() -> list[str]:
    g = import_graph()
    cyc = cycles(g)
    n_edges = sum(len(v) for v in g.values())
    out = [
        "## 2. import graph (module-level imports inside spinglass_icl)",
        "",
        f"{len(g)} modules, {n_edges} edges; "
        + ("acyclic" if not cyc else f"{len(cyc)} cycle(s):"),
    ]
    out += [f"- cycle: {' <-> '.join(c)}" for c in cyc]
    return out


# ------------------------------------------------- 3. parameter hops (manual trace)
# (function, role). Roles: "hop" (the value crosses into this function), "check" (the
# value is validated here; also a hop), "use" (the AMP update reads it). Each function
# is checked to exist and to mention the value.
TRACES: dict[str, list[tuple[str, str]]] = {
    "spinglass-icl solve --damping 0.7": [
        ("spinglass_icl.solvers.stability.parse_damping", "check"),  # argparse type: number/auto
        ("spinglass_icl.cli.solve._configs", "hop"),
        ("spinglass_icl.solvers.config.SolverConfig.__post_init__", "check"),  # [0, 1)
        ("spinglass_icl.cli.solve._run", "hop"),
        ("spinglass_icl.solvers.solve", "hop"),
        ("spinglass_icl.solvers.make_config", "hop"),
        ("spinglass_icl.solvers.registry.Solver.__call__", "hop"),
        ("spinglass_icl.solvers.amp.run_amp", "hop"),
        ("spinglass_icl.solvers.engine.iterate", "hop"),
        ("spinglass_icl.solvers.engine._damped", "use"),
    ],
    "spinglass-icl solve --damping auto (extra steps)": [
        ("spinglass_icl.solvers.stability.resolve_auto_damping", "hop"),
        ("spinglass_icl.solvers.registry.check_auto_damping", "check"),  # solver has it
        ("spinglass_icl.solvers.stability.batch_auto_damping", "hop"),
        ("spinglass_icl.solvers.config.SolverConfig.__post_init__", "check"),  # replace
    ],
    "spinglass-icl sweep run spec.toml (solver_options.damping = 0.7, serial)": [
        ("spinglass_icl.sweep.spec.SweepSpec.from_toml", "hop"),
        ("spinglass_icl.sweep.spec.SweepSpec._check_solver_options", "hop"),
        ("spinglass_icl.solvers.registry.Settings.__post_init__", "check"),  # [0, 1)
        ("spinglass_icl.sweep.executors.run_sweep", "hop"),
        ("spinglass_icl.sweep.executors._chunk_results", "hop"),
        ("spinglass_icl.sweep.rows.spec_fields", "hop"),  # RowOptions, plain data
        ("spinglass_icl.sweep.executors._results", "hop"),
        ("spinglass_icl.sweep.executors._serial", "hop"),
        ("spinglass_icl.sweep.rows.iter_chunk_rows", "hop"),
        ("spinglass_icl.sweep.rows._batched_result", "hop"),
        ("spinglass_icl.sweep.rows._auto_damping", "hop"),
        ("spinglass_icl.sweep.rows.RowOptions.solver_config", "hop"),
        ("spinglass_icl.solvers.config.SolverConfig.__post_init__", "check"),  # [0, 1)
        ("spinglass_icl.solvers.solve", "hop"),
        ("spinglass_icl.solvers.make_config", "hop"),
        ("spinglass_icl.solvers.registry.Solver.__call__", "hop"),
        ("spinglass_icl.solvers.amp.run_amp", "hop"),
        ("spinglass_icl.solvers.engine.iterate", "hop"),
        ("spinglass_icl.solvers.engine._damped", "use"),
    ],
    "spinglass-icl solve --lam 0.1": [
        ("spinglass_icl.cli.solve._run", "hop"),
        ("spinglass_icl.hamiltonian.make_instance", "hop"),
        ("spinglass_icl.hamiltonian.build_instance", "hop"),
        ("spinglass_icl.hamiltonian.Instance.__post_init__", "check"),  # lam >= 0
        ("spinglass_icl.solvers.solve", "hop"),
        ("spinglass_icl.solvers.operators.operators_for", "check"),  # lam > 0 (Boltzmann)
        ("spinglass_icl.solvers.operators.DenseOperators.of", "hop"),
        ("spinglass_icl.solvers.registry.Solver.__call__", "hop"),
        ("spinglass_icl.solvers.amp.run_amp", "hop"),  # ops.lam_i
        ("spinglass_icl.solvers.amp.amp_rule", "use"),  # beta lam_i - V
    ],
    "spinglass-icl sweep run spec.toml (grid lam, serial)": [
        ("spinglass_icl.sweep.spec.SweepSpec.from_toml", "hop"),
        ("spinglass_icl.sweep.spec._check_value", "check"),  # lam > 0
        ("spinglass_icl.sweep.executors.run_sweep", "hop"),  # in the plan's tasks
        ("spinglass_icl.sweep.executors._chunk_results", "hop"),  # the chunks' tasks
        ("spinglass_icl.sweep.executors._results", "hop"),
        ("spinglass_icl.sweep.executors._serial", "hop"),
        ("spinglass_icl.sweep.rows.iter_chunk_rows", "hop"),
        ("spinglass_icl.sweep.rows._batched_result", "hop"),
        ("spinglass_icl.solvers.operators.PairOperators.of_factors", "hop"),
        ("spinglass_icl.solvers.solve", "hop"),
        ("spinglass_icl.solvers.operators.operators_for", "hop"),  # operators as given
        ("spinglass_icl.solvers.registry.Solver.__call__", "hop"),
        ("spinglass_icl.solvers.amp.run_amp", "hop"),
        ("spinglass_icl.solvers.amp.amp_rule", "use"),
    ],
}


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for a in parts[i:]:
            obj = getattr(obj, a)
        return obj
    raise ImportError(dotted)


def trace_report() -> list[str]:
    out = [
        "## 3. --damping and lam from the command line to the AMP update",
        "",
        "hop: a function boundary the value crosses; check: a validation (also a hop).",
        "",
        "| path | hops | checks | chain |",
        "|---|---|---|---|",
    ]
    for path, steps in TRACES.items():
        value = "damping" if "damping" in path else "lam"
        for dotted, _ in steps:
            src = inspect.getsource(_resolve(dotted))
            # the value by name, the object that carries it (a config, the operators, the
            # spec's options), or the field-constraint mechanism that checks it
            carriers = r"config|cfg|opts|ops|spec|fields|tasks|validate_fields|_parameter_constr"
            if not re.search(rf"{value}|{carriers}", src):
                raise AssertionError(f"{dotted} does not mention {value}: the trace is stale")
        hops = sum(1 for _, r in steps if r in ("hop", "check"))
        checks = sum(1 for _, r in steps if r == "check")
        chain = " > ".join(
            d.split(".", 1)[1].replace("solvers.", "") + ("*" if r == "check" else "")
            for d, r in steps
        )
        out.append(f"| {path} | {hops} | {checks} | {chain} |")
    out += ["", "(* = validated there; the last function of a chain is where the update reads it)"]
    return out


# ----------------------------------------------------------- 4. extension seams
EXAMPLES = {
    "solver": "new_solver.py",
    "task distribution": "new_task.py",
    "model": "new_model.py",
    "figure": "new_figure.py",
}


def seam_report() -> list[str]:
    ex = ROOT / "examples" / "extending"
    tests = sorted((ROOT / "tests").glob("test_*.py"))
    out = [
        "## 4. what a new extension touches",
        "",
        "| kind | new file | lines | registers with | its test | package files changed |",
        "|---|---|---|---|---|---|",
    ]
    src_text = {p: p.read_text() for p in PKG.rglob("*.py")}
    for kind, name in EXAMPLES.items():
        path = ex / name
        tree = ast.parse(path.read_text())
        calls = sorted(
            {
                (n.func.id if isinstance(n.func, ast.Name) else n.func.attr)
                for n in ast.walk(tree)
                if isinstance(n, ast.Call)
                and isinstance(n.func, (ast.Name, ast.Attribute))
                and (n.func.id if isinstance(n.func, ast.Name) else n.func.attr).startswith(
                    "register_"
                )
            }
            | {
                d.id
                for n in ast.walk(tree)
                if isinstance(n, (ast.ClassDef, ast.FunctionDef))
                for d in n.decorator_list
                if isinstance(d, ast.Name) and d.id.startswith("register_")
            }
        )
        runners = [t.name for t in tests if name in t.read_text()]
        # the registered name must appear nowhere in the package: nothing else was touched
        names = re.findall(r'name\s*[:=]\s*(?:str\s*=\s*)?"([\w\-]+)"', path.read_text())
        names += re.findall(r'Solver\(\s*"([\w\-]+)"', path.read_text())
        names += re.findall(r'^NAME\s*=\s*"([\w\-]+)"', path.read_text(), re.M)
        leaked = sorted(
            str(p.relative_to(ROOT)) for p, t in src_text.items() for n in names if f'"{n}"' in t
        )
        out.append(
            f"| {kind} | examples/extending/{name} | {len(path.read_text().splitlines())} | "
            f"{', '.join(calls) or '-'} | {', '.join(runners) or '-'} | "
            f"{len(leaked)} ({', '.join(leaked) or 'none'}) |"
        )
    return out


def main() -> int:
    for section in (size_report, import_report, trace_report, seam_report):
        print("\n".join(section()))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

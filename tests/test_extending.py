"""The one-file extensions of examples/extending/ run end to end, with public names only."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "extending"


def _run(name: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _private_names(path: Path) -> list[str]:
    """Imports of underscored names or modules from the package (public names only)."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("spinglass_icl"):
            if any(part.startswith("_") for part in node.module.split(".")):
                bad.append(node.module)
            bad += [a.name for a in node.names if a.name.startswith("_")]
    return bad


@pytest.mark.parametrize("name", ["new_solver.py"])
def test_example_is_short_and_uses_public_names(name):
    path = EXAMPLES / name
    assert len(path.read_text().splitlines()) < 200
    assert _private_names(path) == []


def test_new_solver_example_registers_solves_sweeps_and_refuses():
    out = _run("new_solver.py")
    assert "naive-mf: converged 3" in out
    # the mean of the Jacobi fixed point is the exact one (the script asserts < 1e-8)
    assert "mean vs exact: max relative error" in out
    assert out.count("sweep row N=") == 2 and "solver naive-mf, converged" in out
    assert "unregistered solver: ParameterError: solver must be one of" in out
    assert "'gauss-seidel-amp'" in out and "naive-mf" in out.splitlines()[-1]


def test_a_registered_solver_is_available_everywhere_and_can_be_removed():
    """Registering, finding by capability, refusing duplicates, unregistering."""
    import torch

    from spinglass_icl import ParameterError, make_instance, solve
    from spinglass_icl.solvers import (
        Solver,
        SolverConfig,
        get_solver,
        register_solver,
        solver_names,
        unregister_solver,
    )

    def exact_mean(ops, config):
        res = solve(ops, SolverConfig("exact", beta=config.beta))
        return res.with_message("exact-again: Cholesky")

    s = register_solver(Solver("exact-again", exact_mean, iterative=False, uses_damping=False))
    try:
        assert "exact-again" in solver_names() and "exact-again" not in solver_names(stability=True)
        assert get_solver("exact-again") is s and "exact-again" in repr(s)
        with pytest.raises(ParameterError, match="must be new"):
            register_solver(s)
        inst = make_instance(3, 6, 40, 1.0, seed=1)
        assert torch.equal(solve(inst, "exact-again").m, solve(inst, "exact").m)
        with pytest.raises(ParameterError, match="solvers with matrix free"):
            solve(inst, "exact-again", backend="matfree")
        with pytest.raises(ParameterError, match="solver must be one of"):
            SolverConfig("exact-agian")
    finally:
        unregister_solver("exact-again")
    assert "exact-again" not in solver_names()

"""Add a solver to spinglass-icl in one file: naive mean field.

Naive mean field is AMP (paper eq. 34) without the variance reaction: the term
``V_i = beta^2 sum_j J_ij^2 v_j`` is dropped from the denominator, so

    m_i <- (h_i + sum_j J_ij m_j) / lam_i,        v_i = 1 / (beta lam_i).

The mean update is the Jacobi iteration for ``A m = h`` (``A = G + lam I``): where it
converges, the mean is the exact one; the variances are the naive ``1 / (beta lam_i)``,
which ignore every coupling. The package does not ship this solver; this file
registers it, solves a batch with it, runs a two-row sweep with it on the ``local``
executor (worker processes) and shows that an unregistered name is refused.

Run it from the repository root::

    python examples/extending/new_solver.py

The solver is registered at import time (module level), so the ``local`` executor's
worker processes, which import this file again, know it too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from spinglass_icl import ParameterError, make_instance, solve
from spinglass_icl.solvers import Settings, Solver, SolverResult, iterate, register_solver
from spinglass_icl.sweep import SweepSpec, run_sweep


def naive_mean_field(ops, config) -> SolverResult:
    """The rule: iterate the naive mean-field update with the package's engine.

    ``ops`` are the operators of the batch (dense, pair or matrix-free: the rule only
    asks for ``J m``, ``h`` and ``lam_i``); ``config`` holds beta, damping, tol and
    max_iter (the caller's, or this solver's defaults below).
    """
    h, lam_i = ops.h, ops.lam_i
    always = torch.ones(ops.batch_shape, dtype=torch.bool, device=h.device)

    def update(state):
        (m,) = state
        return ((h + ops.couplings_matvec(m)) / lam_i,), always  # denominators lam_i > 0

    out = iterate(
        update,
        (torch.zeros_like(h),),
        batch_shape=ops.batch_shape,
        damping=config.damping,
        tol=config.tol,
        max_iter=config.max_iter,
    )
    v = (1.0 / (config.beta * lam_i)).expand_as(h)
    return SolverResult.from_engine(config.solver, config.beta, out.state[0], v, out)


register_solver(
    Solver(
        "naive-mf",
        naive_mean_field,
        summary="naive mean field: eq. 34 without the variance reaction (Jacobi on A m = h)",
        defaults=Settings(damping=0.5, tol=1e-10, max_iter=5000),
        backends=("dense", "pair", "matfree"),  # it only needs J m: every backend has it
        memory="O(n^2) dense; O(P D) matrix-free",
        plot_style={"marker": "v", "color": "tab:brown"},
    )
)


def main() -> None:
    # 1. a batch of three instances, solved with the new solver and with the exact one
    inst = make_instance(4, 8, 200, 1.0, seed=0, batch_shape=(3,))
    mf = solve(inst, "naive-mf")  # the solver's own defaults (damping 0.5, tol 1e-10)
    ex = solve(inst, "exact")
    print(mf)
    err = float(((mf.m - ex.m).norm(dim=-1) / ex.m.norm(dim=-1)).max())
    print(f"status {mf.status.tolist()}, iterations {mf.n_iter.tolist()}")
    print(f"mean vs exact: max relative error {err:.2e} (the Jacobi fixed point is A m = h)")
    ratio = float((mf.v / ex.v).mean())
    print(f"variance / exact variance: {ratio:.3f} on average (naive: couplings ignored)")
    assert mf.all_converged and err < 1e-8

    # the same solver on the matrix-free backend (no n x n matrix is formed)
    mfree = solve(inst, "naive-mf", backend="matfree")
    print(f"matrix-free backend: max |dm| = {float((mfree.m - mf.m).abs().max()):.1e}")

    # 2. a two-row sweep with it, in worker processes (the local executor)
    spec = SweepSpec(
        grid={"N": [4, 8]},
        fixed={"D": 4, "P": 200, "lam": 1.0, "solver": "naive-mf"},
        solver_options={"damping": 0.5, "tol": 1e-10, "max_iter": 5000},
        observables=("contrast", "test_error"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = run_sweep(
            spec, Path(tmp) / "sweep.sqlite", executor="local", workers=2, progress=False
        )
        rows = store.rows()
    for r in rows:
        print(
            f"sweep row N={r['N']}: solver {r['solver']}, {r['status']} after {r['n_iter']} "
            f"iterations, contrast {r['contrast']:.4f}, test error {r['test_error']:.4f}"
        )
    assert len(rows) == 2 and all(r["converged"] for r in rows)

    # 3. a name nobody registered is refused, naming the registered ones
    try:
        solve(inst, "gauss-seidel-amp")
    except ParameterError as exc:
        print(f"unregistered solver: ParameterError: {exc}")
    else:
        raise AssertionError("an unregistered solver name was accepted")


if __name__ == "__main__":
    main()

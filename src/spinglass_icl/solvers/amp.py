"""Approximate message passing (paper eq. 34 / 8) with and without the Onsager term.

``amp-paper`` is eq. 34 verbatim::

    V_i = beta^2 sum_j J_ij^2 v_j
    m_i = (beta h_i + beta sum_j J_ij m_j) / (beta lam_i - V_i)          (34a)
    v_i = 1 / (beta lam_i - V_i)                                         (34b)

``amp`` adds the Onsager reaction term that eq. 34a drops (docs/solvers.md#onsager-term)::

    m_i = (beta h_i + beta sum_j J_ij m_j - V_i m_i) / (beta lam_i - V_i)

whose fixed point satisfies ``lam_i m_i - sum_j J_ij m_j = h_i``, i.e. ``A m = h``:
the exact mean. Variances are the same TAP approximation in both.

The rule needs only ``J m``, ``J^2 v``, ``h`` and ``lam_i``: the
:class:`~spinglass_icl.solvers.operators.Operators` of any backend (dense, pair,
matrix-free) supply them, so one rule serves every path.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import torch

from .config import SolverConfig
from .engine import iterate
from .operators import Operators
from .registry import Settings, Solver, register_solver
from .result import SolverResult


def amp_rule(
    couplings_matvec: Callable[[torch.Tensor], torch.Tensor],
    j2_matvec: Callable[[torch.Tensor], torch.Tensor],
    h: torch.Tensor,
    lam_i: torch.Tensor,
    beta: float,
    onsager: bool,
    v_tol: float = 1e-12,
    products: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    | None = None,
):
    """The AMP update ``F(m, v) -> (m', v'), ok`` of eq. 34 from two linear maps.

    ``couplings_matvec(m) = J m`` and ``j2_matvec(v) = J^2 v`` (``J_ij^2``, zero
    diagonal); ``products(m, v) = (J m, J^2 v)``, if given, takes both at once
    (:meth:`~spinglass_icl.solvers.operators.Operators.amp_products`).

    The variance equation (34b) does not involve ``m``: once every valid instance's
    ``v`` has stopped moving (relative change below ``v_tol``), ``V = beta^2 J^2 v`` is
    kept and the ``J^2`` pass is skipped for the remaining iterations, halving the
    memory traffic of the mean-only tail.
    """
    frozen: dict[str, torch.Tensor] = {}
    beta_h, beta_lam = beta * h, beta * lam_i  # loop invariants (the same numbers)

    def update(state):
        m, v = state
        if "V" in frozen:
            Jm = couplings_matvec(m)
            V, v_new = frozen["V"], v
        else:
            Jm, J2v = products(m, v) if products else (couplings_matvec(m), j2_matvec(v))
            V = beta * beta * J2v
        denom = beta_lam - V
        ok = (denom > 0).all(-1)
        if "V" not in frozen:
            v_new = 1.0 / denom
            # relative change of v; not finite iff some v_new is not (v > 0 is finite)
            change = (v_new - v).abs().amax(-1) / v.abs().amax(-1)
            valid = ok & torch.isfinite(change)
            if bool(valid.any() & ((change < v_tol) | ~valid).all()):
                frozen["V"] = V
        num = beta_h + beta * Jm
        if onsager:
            num = num - V * m
        return (num / denom, v_new), ok

    return update


def run_amp(
    ops: Operators,
    config: SolverConfig,
    *,
    onsager: bool,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> SolverResult:
    """Iterate :func:`amp_rule` on ``ops`` with the shared engine from ``m = 0,
    v = 1/(beta lam_i)`` (or ``init``); the result is named ``config.solver``."""
    beta, lam_i, h = config.beta, ops.lam_i, ops.h
    if init is None:
        init = (torch.zeros_like(h), 1.0 / (beta * lam_i))
    out = iterate(
        amp_rule(
            ops.couplings_matvec,
            ops.j2_matvec,
            h,
            lam_i,
            beta,
            onsager,
            products=ops.amp_products,
        ),  # fmt: skip
        init,
        batch_shape=ops.batch_shape,
        damping=config.damping,
        tol=config.tol,
        max_iter=config.max_iter,
    )
    res = SolverResult.from_engine(config.solver, beta, out.state[0], out.state[1], out)
    if ops.backend == "matfree":
        msg = res.message + f" (matrix-free, V {ops.variance_term})"
        return dataclasses.replace(res, message=msg, extras=ops.options)
    return res


_COMMON = dict(
    backends=("dense", "pair", "matfree"), stability=True, factor_matvec=True,
    defaults=Settings(damping=0.5, tol=1e-8, max_iter=2000), dense_matrices=5,
    batch_matrices=4, memory="O(n^2) (dense J^2); O(P D) matrix-free",
)  # fmt: skip
AMP = register_solver(
    Solver(
        "amp",
        functools.partial(run_amp, onsager=True),  # the rule, called (ops, config)
        summary="AMP eq. 34 with the Onsager reaction term (exact mean)",
        reaction_term=True,
        plot_style={"marker": "s", "color": "tab:blue"},
        **_COMMON,
    )  # fmt: skip
)
AMP_PAPER = register_solver(
    Solver(
        "amp-paper",
        functools.partial(run_amp, onsager=False),
        summary="AMP eq. 34 verbatim (biased mean; the paper's figures)",
        plot_style={"marker": "^", "color": "tab:orange"},
        **_COMMON,
    )  # fmt: skip
)

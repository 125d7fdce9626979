"""Relaxed belief propagation (paper eq. 29).

Gaussian messages ``m_{i->j}, v_{i->j}`` on every ordered pair: ``O(n^2)`` memory, fine
for D <= ~12-20. Stored as matrices ``Mmsg[k, i] = m_{k->i}``::

    M_{i->j} = beta sum_{k != i,j} J_ik m_{k->i}
    V_{i->j} = beta^2 sum_{k != i,j} J_ik^2 v_{k->i}
    m_{i->j} = (beta h_i + M_{i->j}) / (beta lam_i - V_{i->j})
    v_{i->j} = 1 / (beta lam_i - V_{i->j})

and the marginals (eq. 31) ``m_i = (beta h_i + M_i)/(beta lam_i - V_i)``,
``v_i = 1/(beta lam_i - V_i)`` with the full sums ``M_i, V_i``. For this Gaussian model
Gaussian messages are exact, so BP (eq. 16) reduces to r-BP, and a converged r-BP has
the exact means (Gaussian BP on a loopy graph; Weiss & Freeman 2001).
"""

from __future__ import annotations

import torch

from .config import SolverConfig
from .engine import iterate
from .operators import Operators
from .registry import Solver, register_solver
from .result import SolverResult


def _sums(J: torch.Tensor, J2: torch.Tensor, Mmsg: torch.Tensor, Vmsg: torch.Tensor, beta: float):
    JM = J * Mmsg.transpose(-1, -2)  # [i, k] = J_ik m_{k->i}
    JV = J2 * Vmsg.transpose(-1, -2)
    M = beta * JM.sum(-1)
    V = beta * beta * JV.sum(-1)
    return JM, JV, M, V


def solve_rbp(ops: Operators, config: SolverConfig) -> SolverResult:
    """Iterate r-BP (eq. 29) on the dense couplings of ``ops`` and return the marginals
    of eq. 31."""
    J, h, lam_i, beta = ops.couplings, ops.h, ops.lam_i, config.beta
    J2 = J * J
    hc = h[..., :, None]
    lam_c = lam_i[..., :, None]

    def update(state):
        Mmsg, Vmsg = state
        JM, JV, M, V = _sums(J, J2, Mmsg, Vmsg, beta)
        Mc = M[..., :, None] - beta * JM  # M_{i->j}
        Vc = V[..., :, None] - beta * beta * JV  # V_{i->j}
        denom = beta * lam_c - Vc
        ok = (denom > 0).flatten(-2).all(-1)
        return ((beta * hc + Mc) / denom, 1.0 / denom), ok

    n = J.shape[-1]
    bs = tuple(J.shape[:-2])
    shape = (*bs, n, n)
    M0 = torch.zeros(shape, dtype=J.dtype, device=J.device)
    V0 = (1.0 / (beta * lam_c)).expand(shape).clone()
    out = iterate(
        update,
        (M0, V0),
        batch_shape=bs,
        damping=config.damping,
        tol=config.tol,
        max_iter=config.max_iter,
    )
    _, _, M, V = _sums(J, J2, out.state[0], out.state[1], beta)
    denom = beta * lam_i - V
    m = (beta * h + M) / denom
    v = 1.0 / denom
    return SolverResult.from_engine(config.solver, beta, m, v, out)


RBP = register_solver(
    Solver(
        "rbp",
        solve_rbp,
        summary="relaxed BP eq. 29 (messages on every pair)",
        dense_matrices=8,
        batch_matrices=6,
        memory="O(n^2) messages",
        plot_style={"marker": "D", "color": "tab:purple"},
    )  # fmt: skip
)

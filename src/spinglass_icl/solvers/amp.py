"""Approximate message passing (paper eq. 34 / 8) with and without the Onsager term.

``amp-paper`` is eq. 34 verbatim::

    V_i = beta^2 sum_j J_ij^2 v_j
    m_i = (beta h_i + beta sum_j J_ij m_j) / (beta lam_i - V_i)          (34a)
    v_i = 1 / (beta lam_i - V_i)                                         (34b)

``amp`` adds the Onsager reaction term that eq. 34a drops (docs/solvers.md#onsager-term)::

    m_i = (beta h_i + beta sum_j J_ij m_j - V_i m_i) / (beta lam_i - V_i)

whose fixed point satisfies ``lam_i m_i - sum_j J_ij m_j = h_i``, i.e. ``A m = h``:
the exact mean. Variances are the same TAP approximation in both.

Dense ``J`` and ``J^2`` are formed once (``O(n^2)`` memory); ``J m`` is computed as
``-G m + diag(G) m`` so only ``G`` and ``J^2`` are stored.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..hamiltonian import Instance
from .engine import iterate
from .result import SolverResult


def amp_operators(instance: Instance) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(G, diag(G), J^2)`` used by the AMP update."""
    G = instance.gram
    gd = G.diagonal(dim1=-2, dim2=-1).clone()
    J2 = G * G
    J2.diagonal(dim1=-2, dim2=-1).zero_()
    return G, gd, J2


def amp_rule(
    gram_matvec: Callable[[torch.Tensor], torch.Tensor],
    j2_matvec: Callable[[torch.Tensor], torch.Tensor],
    gd: torch.Tensor,
    h: torch.Tensor,
    lam_i: torch.Tensor,
    beta: float,
    onsager: bool,
    v_tol: float = 1e-12,
):
    """The AMP update ``F(m, v) -> (m', v'), ok`` of eq. 34 from two linear maps.

    ``gram_matvec(m) = G m`` and ``j2_matvec(v) = J^2 v`` (``J_ij^2``, zero diagonal);
    ``gd = diag(G)``, so ``J m = -G m + gd m``. Every AMP in the package (dense,
    batched sweeps, matrix-free) supplies only these maps and shares this rule.

    The variance equation (34b) does not involve ``m``: once every valid instance's
    ``v`` has stopped moving (relative change below ``v_tol``), ``V = beta^2 J^2 v`` is
    kept and the ``J^2`` pass is skipped for the remaining iterations, halving the
    memory traffic of the mean-only tail.
    """
    frozen: dict[str, torch.Tensor] = {}
    beta_h, beta_lam = beta * h, beta * lam_i  # loop invariants (the same numbers)

    def update(state):
        m, v = state
        Jm = gd * m - gram_matvec(m)
        if "V" in frozen:
            V, v_new = frozen["V"], v
        else:
            V = beta * beta * j2_matvec(v)
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
    gram_matvec: Callable[[torch.Tensor], torch.Tensor],
    j2_matvec: Callable[[torch.Tensor], torch.Tensor],
    gd: torch.Tensor,
    h: torch.Tensor,
    lam_i: torch.Tensor,
    *,
    beta: float,
    onsager: bool,
    batch_shape: tuple[int, ...],
    damping: float,
    tol: float,
    max_iter: int,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> SolverResult:
    """Iterate :func:`amp_rule` with the shared engine from ``m = 0, v = 1/(beta lam_i)``."""
    if init is None:
        init = (torch.zeros_like(h), 1.0 / (beta * lam_i))
    out = iterate(
        amp_rule(gram_matvec, j2_matvec, gd, h, lam_i, beta, onsager),
        init,
        batch_shape=batch_shape,
        damping=damping,
        tol=tol,
        max_iter=max_iter,
    )
    name = "amp" if onsager else "amp-paper"
    return SolverResult.from_engine(name, beta, out.state[0], out.state[1], out)


def solve_amp(
    instance: Instance,
    beta: float,
    *,
    onsager: bool = True,
    damping: float = 0.0,
    tol: float = 1e-8,
    max_iter: int = 1000,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> SolverResult:
    """Iterate AMP (eq. 34; with the Onsager term if ``onsager``) to a fixed point.

    Dense ``G`` and ``J^2``; both are symmetric, so the products are taken in the row
    layout ``m^T G``, which batched CPU matmul runs much faster than ``G m``.
    Starts from ``m = 0``, ``v = 1/(beta lam_i)`` unless ``init`` is given.
    """
    G, gd, J2 = amp_operators(instance)
    return run_amp(
        lambda m: (m.unsqueeze(-2) @ G).squeeze(-2),
        lambda v: (v.unsqueeze(-2) @ J2).squeeze(-2),
        gd,
        instance.fields,
        instance.lam_i,
        beta=beta,
        onsager=onsager,
        batch_shape=instance.batch_shape,
        damping=damping,
        tol=tol,
        max_iter=max_iter,
        init=init,
    )

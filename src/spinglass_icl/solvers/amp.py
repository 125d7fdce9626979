"""Approximate message passing (paper eq. 34 / 8) with and without the Onsager term.

``amp-paper`` is eq. 34 verbatim::

    V_i = beta^2 sum_j J_ij^2 v_j
    m_i = (beta h_i + beta sum_j J_ij m_j) / (beta lam_i - V_i)          (34a)
    v_i = 1 / (beta lam_i - V_i)                                         (34b)

``amp`` adds the Onsager reaction term that eq. 34a drops (SPEC §4)::

    m_i = (beta h_i + beta sum_j J_ij m_j - V_i m_i) / (beta lam_i - V_i)

whose fixed point satisfies ``lam_i m_i - sum_j J_ij m_j = h_i``, i.e. ``A m = h``:
the exact mean. Variances are the same TAP approximation in both.

Dense ``J`` and ``J^2`` are formed once (``O(n^2)`` memory); ``J m`` is computed as
``-G m + diag(G) m`` so only ``G`` and ``J^2`` are stored.
"""

from __future__ import annotations

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


def amp_update(instance: Instance, beta: float, onsager: bool, v_tol: float = 1e-12):
    """The AMP update rule ``F(m, v) -> (m', v'), ok`` for the iteration engine.

    The variance equation (34b) does not involve ``m``: once every valid instance's
    ``v`` has stopped moving (relative change below ``v_tol``), ``V = beta^2 J^2 v`` is
    kept and the pass over ``J^2`` is skipped for the remaining iterations, halving the
    memory traffic of the mean-only tail. ``G`` and ``J^2`` are symmetric, so the
    matrix-vector products are taken as ``m^T G`` (row layout), which batched CPU
    matmul runs much faster than ``G m``.
    """
    G, gd, J2 = amp_operators(instance)
    h = instance.fields
    lam_i = instance.lam_i
    frozen: dict[str, torch.Tensor] = {}

    def update(state):
        m, v = state
        Jm = -(m.unsqueeze(-2) @ G).squeeze(-2) + gd * m
        if "V" in frozen:
            V, v_new = frozen["V"], v
        else:
            V = beta * beta * (v.unsqueeze(-2) @ J2).squeeze(-2)
        denom = beta * lam_i - V
        ok = (denom > 0).all(-1)
        if "V" not in frozen:
            v_new = 1.0 / denom
            change = ((v_new - v).abs().amax(-1) / v.abs().amax(-1)).nan_to_num(nan=0.0)
            valid = ok & torch.isfinite(v_new).all(-1)
            if bool((change[valid] < v_tol).all()) and bool(valid.any()):
                frozen["V"] = V
        num = beta * h + beta * Jm
        if onsager:
            num = num - V * m
        return (num / denom, v_new), ok

    return update


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

    Starts from ``m = 0``, ``v = 1/(beta lam_i)`` unless ``init`` is given.
    """
    name = "amp" if onsager else "amp-paper"
    if init is None:
        m0 = torch.zeros_like(instance.fields)
        v0 = 1.0 / (beta * instance.lam_i)
    else:
        m0, v0 = init
    out = iterate(
        amp_update(instance, beta, onsager),
        (m0, v0),
        batch_shape=instance.batch_shape,
        damping=damping,
        tol=tol,
        max_iter=max_iter,
    )
    from . import package_result

    return package_result(name, beta, out.state[0], out.state[1], out)

"""Exact marginals of the Gaussian Boltzmann measure (docs/solvers.md#exact).

``H = 1/2 sigma^T A sigma - h.sigma`` with ``A = G + lam I`` positive definite for
lam > 0, so ``P(sigma) ~ exp(-beta H)`` is exactly Gaussian with mean ``A^{-1} h`` (the
ridge minimizer, i.e. the ground state) and covariance ``(beta A)^{-1}``. One Cholesky
factorization gives both the mean and the marginal variances ``diag((beta A)^{-1})``.
"""

from __future__ import annotations

import torch

from ..errors import ParameterError
from ..hamiltonian import Instance
from .result import SolverResult


def ground_state(instance: Instance) -> torch.Tensor:
    """The minimizer of H (and of the loss eq. 2): ``A^{-1} h``, shape (*batch, n).

    Needs lam > 0; for lam = 0 the minimum-norm least-squares solution is returned.
    """
    if instance.lam == 0:
        pinv = torch.linalg.pinv(instance.gram, hermitian=True)
        return (pinv @ instance.fields[..., None])[..., 0]
    L = torch.linalg.cholesky(instance.hessian)
    return torch.cholesky_solve(instance.fields[..., None], L)[..., 0]


def solve_exact(instance: Instance, beta: float, *, variances: bool = True) -> SolverResult:
    """Exact mean and marginal variances by Cholesky (docs/solvers.md#exact).

    Parameters
    ----------
    instance
        The (possibly batched) instance; needs lam > 0 (:func:`~spinglass_icl.solvers.solve`
        checks it; here a Hessian that is not positive definite raises ParameterError).
    beta
        Inverse temperature.
    variances
        If False, skip the ``O(n^3)`` inverse; ``v`` is then NaN (mean only).
    """
    return solve_exact_hessian(instance.hessian, instance.fields, beta, variances=variances)


def solve_exact_hessian(
    A: torch.Tensor, h: torch.Tensor, beta: float, *, variances: bool = True
) -> SolverResult:
    """:func:`solve_exact` from the Hessian ``A = G + lam I`` (*batch, n, n) and the
    fields ``h`` (*batch, n) directly (sweeps that build ``G`` themselves)."""
    L, info = torch.linalg.cholesky_ex(A)
    if bool((info != 0).any()):
        raise ParameterError("the Hessian A = G + lam I is not positive definite; increase lam")
    m = torch.cholesky_solve(h[..., None], L)[..., 0]
    if variances:
        v = torch.cholesky_inverse(L).diagonal(dim1=-2, dim2=-1) / beta
    else:
        v = torch.full_like(m, float("nan"))
    bs = tuple(h.shape[:-1])
    return SolverResult.build(
        "exact", beta, m, v, converged=torch.ones(bs, dtype=torch.bool),
        message="exact: Cholesky solve",
    )  # fmt: skip

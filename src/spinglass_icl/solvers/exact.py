"""Exact marginals of the Gaussian Boltzmann measure (docs/solvers.md#exact).

``H = 1/2 sigma^T A sigma - h.sigma`` with ``A = G + lam I`` positive definite for
lam > 0, so ``P(sigma) ~ exp(-beta H)`` is exactly Gaussian with mean ``A^{-1} h`` (the
ridge minimizer, i.e. the ground state) and covariance ``(beta A)^{-1}``. On the dense
and pair backends one Cholesky factorization gives both the mean and the marginal
variances ``diag((beta A)^{-1})``. On the matrix-free backend the mean is found by
Jacobi-preconditioned conjugate gradients on ``A m = h`` (run by the iteration engine)
and the variances, which would need ``n`` solves, are absent (``v is None``).
"""

from __future__ import annotations

import torch

from ..errors import ParameterError
from ..hamiltonian import Instance
from .config import SolverConfig
from .engine import iterate
from .operators import Operators
from .registry import Settings, Solver, register_solver
from .result import SolverResult

#: the tolerance and iteration cap of the matrix-free (CG) exact solver
CG_TOL, CG_MAX_ITER = 1e-10, 10_000


def ground_state(instance: Instance) -> torch.Tensor:
    """The minimizer of H (and of the loss eq. 2): ``A^{-1} h``, shape (*batch, n).

    Needs lam > 0; for lam = 0 the minimum-norm least-squares solution is returned.
    """
    if instance.lam == 0:
        pinv = torch.linalg.pinv(instance.gram, hermitian=True)
        return (pinv @ instance.fields[..., None])[..., 0]
    L = torch.linalg.cholesky(instance.hessian)
    return torch.cholesky_solve(instance.fields[..., None], L)[..., 0]


def solve_exact_hessian(
    A: torch.Tensor, h: torch.Tensor, beta: float, *, variances: bool = True
) -> SolverResult:
    """Exact mean and marginal variances from the Hessian ``A = G + lam I`` (*batch, n, n)
    and the fields ``h`` (*batch, n) by Cholesky; ``variances=False`` skips the
    ``O(n^3)`` inverse (``v`` is then None)."""
    L, info = torch.linalg.cholesky_ex(A)
    if bool((info != 0).any()):
        raise ParameterError("the Hessian A = G + lam I is not positive definite; increase lam")
    m = torch.cholesky_solve(h[..., None], L)[..., 0]
    v = torch.cholesky_inverse(L).diagonal(dim1=-2, dim2=-1) / beta if variances else None
    bs = tuple(h.shape[:-1])
    return SolverResult.build(
        "exact", beta, m, v, converged=torch.ones(bs, dtype=torch.bool),
        message="exact: Cholesky solve" + ("" if variances else " (mean only)"),
    )  # fmt: skip


def conjugate_gradients(
    ops: Operators, config: SolverConfig, *, precondition: bool = True
) -> SolverResult:
    """The exact mean ``A^{-1} h`` by conjugate gradients on ``(G + lam I) m = h`` with
    ``ops``' matrix-vector products, Jacobi-preconditioned by ``lam_i = diag(A)`` (or not).

    One CG step is the engine's update (:func:`~spinglass_icl.solvers.iterate`, no
    damping) on the state ``(m, r, p, r.z)``; the residual is ``|A m - h| / |h|`` and an
    instance stops when it is below ``config.tol``. ``n_iter`` counts CG steps. ``v`` is
    None: the marginal variances ``diag((beta A)^{-1})`` are not computed matrix-free.
    """
    h = ops.h
    Minv = 1.0 / ops.lam_i if precondition else torch.ones_like(h)
    hnorm = h.norm(dim=-1).clamp_min(torch.finfo(h.dtype).tiny)
    r0 = h.clone()
    z0 = Minv * r0
    state0 = (torch.zeros_like(h), r0, z0.clone(), (r0 * z0).sum(-1, keepdim=True))

    def update(state):
        m, r, p, rz = state
        Ap = ops.hessian_matvec(p)
        pAp = (p * Ap).sum(-1, keepdim=True)
        alpha = torch.where(pAp > 0, rz / pAp, torch.zeros_like(rz))
        r_new = r - alpha * Ap
        z = Minv * r_new
        rz_new = (r_new * z).sum(-1, keepdim=True)
        step = torch.where(rz > 0, rz_new / rz, torch.zeros_like(rz))
        ok = ((pAp > 0) | (rz == 0)).squeeze(-1)
        return (m + alpha * p, r_new, z + step * p, rz_new), ok

    def residual(old, new):
        return new[1].norm(dim=-1) / hnorm

    out = iterate(
        update, state0, batch_shape=ops.batch_shape, tol=config.tol,
        max_iter=config.max_iter, residual=residual,
    )  # fmt: skip
    res = SolverResult.from_engine(config.solver, config.beta, out.state[0], None, out)
    return res.with_message(res.message + "; mean only (v not computed matrix-free)")


def _exact(ops: Operators, config: SolverConfig) -> SolverResult:
    if ops.backend == "matfree":
        return conjugate_gradients(ops, config)
    return solve_exact_hessian(ops.hessian, ops.h, config.beta)


EXACT = register_solver(
    Solver(
        "exact",
        _exact,
        summary="Cholesky of A = G + lam I (CG matrix-free; docs/solvers.md#exact)",
        backends=("dense", "pair", "matfree"),
        iterative=False,
        uses_damping=False,
        defaults=Settings(damping=0.5, tol=CG_TOL, max_iter=CG_MAX_ITER),
        dense_matrices=5,
        batch_matrices=4,
        memory="O(n^2); O(P D) matrix-free (mean only)",
        plot_style={"marker": "o", "color": "k"},
    )  # fmt: skip
)

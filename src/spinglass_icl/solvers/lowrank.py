"""Batched solver kernels on the rank-one factors: what sweeps solve many instances with.

A batch of instances of one shape (same D, P, lam) is given by its factors
``S^mu = c u_mu (x) q_mu`` (eq. 3). Its Gram matrix lives on unordered index pairs
(:func:`~spinglass_icl.hamiltonian.pair_gram`, one GEMM, 4x fewer multiply-adds than
``S^T S``): a :class:`PairSystem` holds that pair Gram matrix, the fields and the
diagonal, and :func:`solve_pair_system` solves it with any solver, returning one
:class:`~spinglass_icl.solvers.result.SolverResult` for the batch:

* ``amp`` / ``amp-paper``: the AMP rule of :mod:`.amp` on ``J^2 = G o G`` (expanded from
  the pair Gram matrix) and ``G m`` applied through the factors when
  :func:`use_lowrank_matvec`, else from dense ``G``; optionally mixed precision;
* ``exact``: Cholesky of ``A = G + lam I``;
* ``rbp``: relaxed BP on ``J = -G`` (zero diagonal).

A nested task-diversity sweep extends one system from P to the next
(:meth:`PairSystem.extend`): pair products and fields are sums over prompts, so the
system at P is the one at the previous P plus the new prompts'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..hamiltonian import expand_pairs, pair_gram, pair_index, pair_products
from .amp import run_amp
from .config import SolverConfig
from .exact import solve_exact_hessian
from .rbp import rbp_from_couplings
from .result import SolverResult

__all__ = [
    "PairSystem",
    "solve_pair_system",
    "solve_amp_batched",
    "solve_factors",
    "pair_system_inputs",
    "amp_pair_operators",
    "amp_from_operators",
    "use_lowrank_matvec",
]


def use_lowrank_matvec(P: int, n: int, itemsize: int = 8) -> bool:
    """Whether the AMP kernel applies ``G`` through the factors (``O(P n)`` flops on
    ``O(P D)`` data) rather than as a dense ``n x n`` matrix: for ``P <= n`` in float64,
    ``P <= 3 n`` with float32 matrices (mixed precision; the factors' GEMMs in float32).
    Measured at D = 40 (1 thread, 2-core AMD EPYC VM): float64 breaks even at P ~ n;
    float32 factors beat a float32 dense G up to P = 2.3 n (1.63 vs 1.84 ms/iteration)."""
    return P <= (n if itemsize >= 8 else 3 * n)


def amp_pair_operators(
    Gs: torch.Tensor, *, lowrank_matvec: bool, matrix_dtype: torch.dtype | None = None
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The dense AMP matrices ``(G or None, J^2)`` from the pair Gram matrix ``Gs``
    (:func:`~spinglass_icl.hamiltonian.pair_gram`, normalized): ``G`` only if
    ``not lowrank_matvec``; ``J^2 = G o G`` with a zero diagonal, in ``matrix_dtype``
    (default: that of ``Gs``)."""
    k = math.isqrt(2 * Gs.shape[-1])  # k2 = k (k + 1) / 2
    mdt = Gs.dtype if matrix_dtype is None else matrix_dtype
    G = None if lowrank_matvec else expand_pairs(Gs.to(mdt), k)
    if G is not None and mdt == Gs.dtype:
        J2 = G * G  # the same numbers as expanding Gs o Gs, one pass fewer
    else:  # (mixed: J^2 rounded once from float64)
        J2 = expand_pairs((Gs * Gs).to(mdt), k)
    J2.diagonal(dim1=-2, dim2=-1).zero_()
    return G, J2


def amp_from_operators(
    ops: tuple[torch.Tensor | None, torch.Tensor],
    gd: torch.Tensor,
    h: torch.Tensor,
    u: torch.Tensor,
    q: torch.Tensor,
    c2P: float,
    lam: float,
    beta: float,
    *,
    onsager: bool,
    damping: float,
    tol: float,
    max_iter: int,
) -> SolverResult:
    """Run AMP (:func:`~spinglass_icl.solvers.amp.run_amp`) on the operators of
    :func:`amp_pair_operators`: ``G m`` from dense ``G`` (row product) if present, else
    through the factors ``(1/P) S^T (S m)``, ``(S m)_mu = c u_mu^T M q_mu`` with
    ``c2P = c^2 / P`` (u, q: (*batch, P, k)); ``gd = diag(G)``, ``h`` the fields."""
    G, J2 = ops
    mdt = J2.dtype
    k = u.shape[-1]
    n = k * k
    bs = tuple(h.shape[:-1])
    if G is None and mdt != u.dtype:  # mixed precision: the factors' products too
        u, q = u.to(mdt), q.to(mdt)

    def j2_matvec(v: torch.Tensor) -> torch.Tensor:
        return (v.to(mdt).unsqueeze(-2) @ J2).squeeze(-2).to(v.dtype)

    def gram_matvec(m: torch.Tensor) -> torch.Tensor:
        if G is not None:
            return (m.to(mdt).unsqueeze(-2) @ G).squeeze(-2).to(m.dtype)
        M = m.to(mdt).reshape(*bs, k, k)
        r = ((u @ M) * q).sum(-1)  # (*, P): (S m) / c
        return c2P * ((u * r[..., None]).transpose(-1, -2) @ q).reshape(*bs, n).to(m.dtype)

    return run_amp(
        gram_matvec,
        j2_matvec,
        gd,
        h,
        lam + gd,
        beta=beta,
        onsager=onsager,
        batch_shape=bs,
        damping=damping,
        tol=tol,
        max_iter=max_iter,
    )


@dataclass
class PairSystem:
    """A batch of instances in pair-Gram form (mutable: :meth:`extend` grows its P).

    Attributes
    ----------
    u, q : Tensor, shape (*batch, P, k)
        The factors, the prefactor folded into ``u`` (``S^mu = u_mu (x) q_mu``).
    y : Tensor, shape (*batch, P)
        Query labels.
    pair_sum, field_sum : Tensor
        Unnormalized ``sum_mu u_a u_a' q_b q_b'`` on pairs (*batch, k2, k2) and
        ``sum_mu y_mu u_mu q_mu^T`` (*batch, k, k).
    """

    u: torch.Tensor
    q: torch.Tensor
    y: torch.Tensor
    pair_sum: torch.Tensor
    field_sum: torch.Tensor

    @classmethod
    def empty(cls, batch: int, k: int, *, device, dtype) -> PairSystem:
        """A system of no prompts yet (grown by :meth:`extend`)."""
        k2 = k * (k + 1) // 2
        z = torch.zeros(batch, 0, k, device=device, dtype=dtype)
        return cls(
            u=z, q=z, y=torch.zeros(batch, 0, device=device, dtype=dtype),
            pair_sum=torch.zeros(batch, k2, k2, device=device, dtype=dtype),
            field_sum=torch.zeros(batch, k, k, device=device, dtype=dtype),
        )  # fmt: skip

    def extend(self, u: torch.Tensor, q: torch.Tensor, y: torch.Tensor) -> None:
        """Add prompts (their factors): the sums grow by theirs, the factors are appended."""
        self.pair_sum += pair_products(u, q)
        self.field_sum += (u * y[..., None]).transpose(-1, -2) @ q
        first = self.u.shape[-2] == 0
        self.u = u if first else torch.cat([self.u, u], dim=-2)
        self.q = q if first else torch.cat([self.q, q], dim=-2)
        self.y = y if first else torch.cat([self.y, y], dim=-1)

    @property
    def P(self) -> int:
        return self.u.shape[-2]

    @property
    def k(self) -> int:
        return self.u.shape[-1]

    def normalized(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(Gs, h, diag(G))`` at the current P: the pair Gram matrix, the fields and
        the Gram diagonal (each computed once per P by the caller)."""
        k, n, P = self.k, self.k * self.k, self.P
        bs = tuple(self.u.shape[:-2])
        Gs = self.pair_sum / P
        pd = pair_index(k, Gs.device)[2].reshape(k, k).diagonal()  # p(a, a)
        gd = Gs[..., pd, :][..., pd].reshape(*bs, n)
        h = self.field_sum.reshape(*bs, n) / P
        return Gs, h, gd


def solve_pair_system(
    Gs: torch.Tensor,
    h: torch.Tensor,
    gd: torch.Tensor,
    u: torch.Tensor,
    q: torch.Tensor,
    c2P: float,
    lam: float,
    config: SolverConfig,
    *,
    matrix_dtype: torch.dtype | None = None,
    ops_cache: dict | None = None,
    lowrank_matvec: bool | None = None,
) -> SolverResult:
    """Solve a batch given in pair-Gram form (``Gs``, fields ``h``, ``gd = diag(G)``,
    factors ``u, q`` with ``c2P = c^2/P`` for the factor matvec) with the solver of
    ``config`` (a :class:`~spinglass_icl.solvers.SolverConfig`) at ridge ``lam``.

    ``ops_cache`` (a dict) keeps the AMP matrices between calls at the same P (several
    lam, beta or AMP variants share them)."""
    k = u.shape[-1]
    P = u.shape[-2]
    n = k * k
    opts = dict(damping=config.damping, tol=config.tol, max_iter=config.max_iter)
    if config.solver in ("amp", "amp-paper"):
        low = lowrank_matvec
        if low is None:
            low = use_lowrank_matvec(P, n, 8 if matrix_dtype in (None, torch.float64) else 4)
        cache = {} if ops_cache is None else ops_cache
        if low not in cache:
            cache.clear()
            cache[low] = amp_pair_operators(Gs, lowrank_matvec=low, matrix_dtype=matrix_dtype)
        return amp_from_operators(
            cache[low], gd, h, u, q, c2P, lam, config.beta, onsager=config.solver == "amp",
            **opts,
        )  # fmt: skip
    G = expand_pairs(Gs, k)
    if config.solver == "exact":  # Cholesky of A = G + lam I
        G.diagonal(dim1=-2, dim2=-1).add_(lam)
        return solve_exact_hessian(G, h, config.beta)
    G.neg_().diagonal(dim1=-2, dim2=-1).zero_()  # J = -G, J_ii = 0
    return rbp_from_couplings(G, h, lam + gd, config.beta, **opts)


def solve_amp_batched(
    u: torch.Tensor,
    q: torch.Tensor,
    y: torch.Tensor,
    c: float,
    lam: float,
    beta: float,
    *,
    onsager: bool = True,
    damping: float = 0.9,
    tol: float = 1e-6,
    max_iter: int = 2000,
    lowrank_matvec: bool | None = None,
    matrix_dtype: torch.dtype | None = None,
) -> SolverResult:
    """AMP (eq. 34; with the Onsager term if ``onsager``) for a batch of instances given
    by their rank-one factors ``u, q`` (*batch, P, D+1) and labels ``y`` (*batch, P).

    The update rule, start point and iteration engine are those of
    :func:`spinglass_icl.solvers.solve_amp`; the sweep-specific savings are in the
    linear algebra (results agree with the per-instance solver to rounding, tested):

    * ``J^2 = G o G`` is expanded from the pair Gram matrix (4x fewer flops than
      ``S^T S``), and ``J^2 v`` is the row product ``v^T J^2`` (symmetric), 2-3x faster on
      the CPU than the batched column product ``J^2 @ v[..., None]``;
    * ``G m = (1/P) S^T (S m)`` is applied through the factors,
      ``(S m)_mu = c u_mu^T M q_mu`` (O(P n) flops on O(P D) data), when
      :func:`use_lowrank_matvec` (or ``lowrank_matvec=True``); otherwise from dense G
      (row product).

    ``matrix_dtype=torch.float32`` with float64 factors is *mixed precision*: the dense
    ``n x n`` matrices (J^2, and G if used) are rounded to float32 and their products
    taken in float32, while the state (m, v), fields, diagonal and the iteration stay in
    float64. Halving the bytes of the bandwidth-bound passes makes an iteration ~2-3x
    faster on the CPU at D = 40, and the fixed point moves by ~1e-7 (relative; the
    matrices' rounding), where all-float32 AMP stalls at a residual of ~1e-6 (damped
    updates below float32 resolution) and never meets the authors' tol = 1e-6.
    """
    config = SolverConfig(
        solver="amp" if onsager else "amp-paper", beta=beta, damping=damping, tol=tol,
        max_iter=max_iter,
    )  # fmt: skip
    return solve_factors(
        u, q, y, c, lam, config, matrix_dtype=matrix_dtype, lowrank_matvec=lowrank_matvec
    )


def solve_factors(
    u: torch.Tensor,
    q: torch.Tensor,
    y: torch.Tensor,
    c: float,
    lam: float,
    config: SolverConfig,
    *,
    matrix_dtype: torch.dtype | None = None,
    lowrank_matvec: bool | None = None,
) -> SolverResult:
    """Solve a batch of instances of one shape given by their factors
    ``S^mu = c u_mu (x) q_mu`` (u, q: (*batch, P, k); y: (*batch, P)) with the solver
    of ``config``: :func:`solve_pair_system` on the pair Gram form."""
    Gs, h, gd, c2P = pair_system_inputs(u, q, y, c)
    return solve_pair_system(
        Gs, h, gd, u, q, c2P, lam, config, matrix_dtype=matrix_dtype,
        lowrank_matvec=lowrank_matvec,
    )  # fmt: skip


def pair_system_inputs(
    u: torch.Tensor, q: torch.Tensor, y: torch.Tensor, c: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``(Gs, h, gd, c2P)`` of a batch of factors: the arithmetic of
    :func:`solve_amp_batched`, so both give the same numbers."""
    k, P = u.shape[-1], u.shape[-2]
    n = k * k
    bs = tuple(u.shape[:-2])
    c2P = c * c / P
    gd = c2P * ((u * u).transpose(-1, -2) @ (q * q)).reshape(*bs, n)
    h = (c / P) * ((u * y[..., None]).transpose(-1, -2) @ q).reshape(*bs, n)
    return pair_gram(u, q, c), h, gd, c2P

"""Batches of one shape given by their rank-one factors: what sweeps solve many instances with.

A batch of instances of one shape (same D, P, lam) is given by its factors
``S^mu = c u_mu (x) q_mu`` (eq. 3). Its Gram matrix lives on unordered index pairs
(:func:`~spinglass_icl.hamiltonian.pair_gram`, one GEMM, 4x fewer multiply-adds than
``S^T S``); :class:`~spinglass_icl.solvers.operators.PairOperators` hold it with the
fields and the diagonal and give every registered solver its products, so
:func:`solve_factors` is ``solve(PairOperators.of_factors(...), config)``.

A nested task-diversity sweep extends one system from P to the next
(:meth:`PairSystem.extend`): pair products and fields are sums over prompts, so the
system at P is the one at the previous P plus the new prompts'.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..hamiltonian import pair_index, pair_products
from .config import SolverConfig
from .operators import PairOperators
from .registry import PAPER_SETTINGS
from .result import SolverResult

__all__ = ["PairSystem", "solve_amp_batched", "solve_factors"]


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

    def __repr__(self) -> str:
        return f"PairSystem(batch={tuple(self.u.shape[:-2])}, P={self.P}, k={self.k})"

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

    def operators(self, lam: float, *, matrix_dtype: torch.dtype | None = None) -> PairOperators:
        """The :class:`~spinglass_icl.solvers.operators.PairOperators` at the current P
        (other ridges: :meth:`~spinglass_icl.solvers.operators.Operators.with_lam`)."""
        Gs, h, gd = self.normalized()
        return PairOperators(
            h=h, gram_diag=gd, lam=float(lam), Gs=Gs, u=self.u, q=self.q, c2P=1.0 / self.P,
            matrix_dtype=matrix_dtype,
        )  # fmt: skip


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
    of ``config``, on their pair-Gram operators."""
    from . import solve

    ops = PairOperators.of_factors(
        u, q, y, c, lam, matrix_dtype=matrix_dtype, lowrank_matvec=lowrank_matvec
    )
    return solve(ops, config, warn=False)


def solve_amp_batched(
    u: torch.Tensor,
    q: torch.Tensor,
    y: torch.Tensor,
    c: float,
    lam: float,
    beta: float,
    *,
    onsager: bool = True,
    damping: float = PAPER_SETTINGS.damping,
    tol: float = PAPER_SETTINGS.tol,
    max_iter: int = PAPER_SETTINGS.max_iter,
    lowrank_matvec: bool | None = None,
    matrix_dtype: torch.dtype | None = None,
) -> SolverResult:
    """AMP (eq. 34; with the Onsager term if ``onsager``) for a batch of instances given
    by their rank-one factors ``u, q`` (*batch, P, D+1) and labels ``y`` (*batch, P);
    defaults: the authors' settings (:data:`~spinglass_icl.solvers.PAPER_SETTINGS`).

    The update rule, start point and iteration engine are those of every AMP; the
    sweep-specific savings are in the operators
    (:class:`~spinglass_icl.solvers.operators.PairOperators`; results agree with the
    per-instance solver to rounding, tested):

    * ``J^2 = G o G`` is expanded from the pair Gram matrix (4x fewer flops than
      ``S^T S``), and ``J^2 v`` is the row product ``v^T J^2`` (symmetric), 2-3x faster on
      the CPU than the batched column product ``J^2 @ v[..., None]``;
    * ``G m = (1/P) S^T (S m)`` is applied through the factors,
      ``(S m)_mu = c u_mu^T M q_mu`` (O(P n) flops on O(P D) data), when
      :func:`~spinglass_icl.solvers.operators.use_lowrank_matvec` (or
      ``lowrank_matvec=True``); otherwise from dense G (row product).

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

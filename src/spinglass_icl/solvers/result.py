"""The frozen result every solver returns, built in one place (:meth:`SolverResult.build`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from .engine import EngineOutput

STATUSES = ("converged", "max_iter", "diverged")


@dataclass(frozen=True)
class SolverResult:
    """Marginals of the Boltzmann measure ``P(sigma) ~ exp(-beta H)`` found by a solver.

    Every per-instance field has the instance's batch shape, ``()`` for one instance:
    ``converged`` a bool tensor, ``n_iter`` an int64 tensor, ``status`` a numpy array of
    str (so ``res.status == "converged"`` reads the same for one instance and
    ``res.status[i]`` for a batch). ``result[i]`` gives the i-th instance.

    Attributes
    ----------
    m : Tensor, shape (*batch, n)
        Marginal means ``<sigma_i>``.
    v : Tensor, shape (*batch, n), or None
        Marginal variances ``<sigma_i^2> - <sigma_i>^2``; None where the solver cannot
        compute them (the matrix-free exact solver: mean only).
    converged : Tensor of bool, shape batch
        Whether the tolerance on the undamped residual was reached.
    status : numpy array of str, shape batch
        ``"converged"``, ``"max_iter"`` or ``"diverged"`` (non-positive denominator or
        non-finite iterate). A diverged instance keeps its last finite iterate.
    n_iter : Tensor of int64, shape batch
        Iterations used (0 for the exact solver).
    residuals : Tensor, shape (n_iter_max, *batch)
        Undamped residual ``max|F(x) - x| / max|x|`` at every iteration (NaN once an
        instance has stopped).
    solver : str
        Name of the solver that made it.
    beta : float
        Inverse temperature.
    message : str
        One human sentence.
    """

    m: torch.Tensor
    v: torch.Tensor | None
    converged: torch.Tensor
    status: np.ndarray
    n_iter: torch.Tensor
    residuals: torch.Tensor
    solver: str
    beta: float
    message: str = ""
    extras: dict = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        solver: str,
        beta: float,
        m: torch.Tensor,
        v: torch.Tensor | None,
        *,
        converged: torch.Tensor,
        diverged: torch.Tensor | None = None,
        n_iter: torch.Tensor | None = None,
        residuals: torch.Tensor | None = None,
        message: str | None = None,
        extras: dict | None = None,
    ) -> SolverResult:
        """The one constructor: status from ``converged`` / ``diverged`` (bool tensors of
        the batch shape), bookkeeping moved to the CPU, a default message."""
        conv = torch.as_tensor(converged, dtype=torch.bool).cpu()
        div = torch.zeros_like(conv) if diverged is None else torch.as_tensor(diverged).cpu()
        its = torch.zeros(conv.shape, dtype=torch.int64) if n_iter is None else n_iter
        its = torch.as_tensor(its, dtype=torch.int64).cpu()
        codes = np.where(conv.numpy(), 0, np.where(div.numpy(), 2, 1))
        status = np.asarray(np.asarray(STATUSES)[codes])  # str array, the batch shape
        if residuals is None:
            residuals = torch.zeros((0, *conv.shape), dtype=m.dtype)
        if message is None:
            message = _message(solver, status, its, residuals)
        return cls(
            m=m,
            v=v,
            converged=conv,
            status=status,
            n_iter=its,
            residuals=residuals.cpu(),
            solver=solver,
            beta=float(beta),
            message=message,
            extras={} if extras is None else extras,
        )

    @classmethod
    def from_engine(
        cls, solver: str, beta: float, m: torch.Tensor, v: torch.Tensor | None, out: EngineOutput
    ) -> SolverResult:
        """The result of an :func:`~spinglass_icl.solvers.engine.iterate` run."""
        return cls.build(
            solver, beta, m, v, converged=out.converged, diverged=out.diverged,
            n_iter=out.n_iter, residuals=out.residuals,
        )  # fmt: skip

    @classmethod
    def cat(cls, parts: Sequence[SolverResult]) -> SolverResult:
        """Concatenate results with one batch dimension along it (residual histories
        padded with NaN to the longest); solver name and beta of the first part."""
        if not parts:
            raise ValueError("SolverResult.cat needs at least one result")
        T = max(p.residuals.shape[0] for p in parts)
        res = []
        for p in parts:
            r = p.residuals.reshape(p.residuals.shape[0], p.converged.numel())
            pad = torch.full((T - r.shape[0], r.shape[1]), float("nan"), dtype=r.dtype)
            res.append(torch.cat([r, pad]))
        status = np.concatenate([p.status.reshape(-1) for p in parts])
        n_iter = torch.cat([p.n_iter.reshape(-1) for p in parts])
        p0 = parts[0]
        return cls(
            m=torch.cat([p.m.reshape(-1, p.m.shape[-1]) for p in parts]),
            v=None
            if any(p.v is None for p in parts)
            else torch.cat([p.v.reshape(-1, p.v.shape[-1]) for p in parts]),
            converged=torch.cat([p.converged.reshape(-1) for p in parts]),
            status=status,
            n_iter=n_iter,
            residuals=torch.cat(res, dim=1),
            solver=p0.solver,
            beta=p0.beta,
            message=_message(p0.solver, status, n_iter, torch.zeros(0)),
        )

    # ------------------------------------------------------------ access
    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.converged.shape)

    @property
    def batched(self) -> bool:
        return self.converged.dim() > 0

    @property
    def all_converged(self) -> bool:
        """True if every instance converged."""
        return bool(self.converged.all())

    def __getitem__(self, i: int) -> SolverResult:
        """The ``i``-th instance of a result with one batch dimension."""
        if not self.batched:
            raise IndexError("cannot index an unbatched SolverResult")
        if self.converged.dim() != 1:
            raise IndexError("indexing needs exactly one batch dimension; reshape the instance")
        i = range(len(self))[i]  # normalizes negatives, raises IndexError out of range
        return SolverResult(
            m=self.m[i],
            v=None if self.v is None else self.v[i],
            converged=self.converged[i],
            status=self.status[i : i + 1].reshape(()),
            n_iter=self.n_iter[i],
            residuals=self.residuals[:, i],
            solver=self.solver,
            beta=self.beta,
            message=f"{self.solver}: {self.status[i]} after {int(self.n_iter[i])} iterations",
        )

    def with_message(self, message: str) -> SolverResult:
        """The same result with another message."""
        return dataclasses.replace(self, message=message)

    def __repr__(self) -> str:
        """One line: solver, shapes and outcome, never the tensors."""
        v = "None" if self.v is None else f"{tuple(self.v.shape)}"
        return (
            f"SolverResult({self.message!r}, beta={self.beta:g}, m={tuple(self.m.shape)}, "
            f"v={v}, {str(self.m.dtype).replace('torch.', '')})"
        )

    def __len__(self) -> int:
        if not self.batched:
            raise TypeError("an unbatched SolverResult has no length")
        return int(self.converged.shape[0])


def _message(solver: str, status: np.ndarray, n_iter: torch.Tensor, residuals) -> str:
    """``"amp: converged after 54 iterations (residual 7.5e-09)"`` for one instance,
    ``"amp: converged 3, diverged 1"`` for a batch."""
    if status.ndim == 0:
        s = str(status)
        r = residuals[-1] if len(residuals) else torch.tensor(float("nan"))
        return f"{solver}: {s} after {int(n_iter)} iterations (residual {float(r):.3g})"
    flat = status.reshape(-1).tolist()
    counts = {s: flat.count(s) for s in STATUSES if flat.count(s)}
    return f"{solver}: " + ", ".join(f"{k} {v}" for k, v in counts.items())

"""The result every solver returns (frozen; the same fields for every solver)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

STATUSES = ("converged", "max_iter", "diverged")


@dataclass(frozen=True)
class SolverResult:
    """Marginals of the Boltzmann measure ``P(sigma) ~ exp(-beta H)`` found by a solver.

    For an unbatched instance, ``converged`` is a bool, ``status`` a str and ``n_iter``
    an int; for a batch they are a bool tensor, a tuple of str (flattened batch order)
    and an int64 tensor of the batch shape. ``result[i]`` gives the i-th instance.

    Attributes
    ----------
    m : Tensor, shape (*batch, n)
        Marginal means ``<sigma_i>``.
    v : Tensor, shape (*batch, n)
        Marginal variances ``<sigma_i^2> - <sigma_i>^2``.
    converged : bool or Tensor
        Whether the tolerance on the undamped residual was reached.
    status : str or tuple of str
        ``"converged"``, ``"max_iter"`` or ``"diverged"`` (non-positive denominator or
        non-finite iterate). A diverged instance keeps its last finite iterate.
    n_iter : int or Tensor
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
    v: torch.Tensor
    converged: bool | torch.Tensor
    status: str | tuple[str, ...]
    n_iter: int | torch.Tensor
    residuals: torch.Tensor
    solver: str
    beta: float
    message: str = ""
    extras: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def batched(self) -> bool:
        return isinstance(self.converged, torch.Tensor)

    @property
    def all_converged(self) -> bool:
        """True if every instance converged."""
        if self.batched:
            return bool(self.converged.all())
        return bool(self.converged)

    def __getitem__(self, i: int) -> SolverResult:
        """The ``i``-th instance of a result with one batch dimension."""
        if not self.batched:
            raise IndexError("cannot index an unbatched SolverResult")
        if self.converged.dim() != 1:
            raise IndexError("indexing needs exactly one batch dimension; reshape the instance")
        i = range(len(self))[i]  # normalizes negatives, raises IndexError out of range
        status = self.status[i]
        n_iter = int(self.n_iter[i])
        return SolverResult(
            m=self.m[i],
            v=self.v[i],
            converged=bool(self.converged[i]),
            status=status,
            n_iter=n_iter,
            residuals=self.residuals[:, i],
            solver=self.solver,
            beta=self.beta,
            message=f"{self.solver}: {status} after {n_iter} iterations",
        )

    def __len__(self) -> int:
        if not self.batched:
            raise TypeError("an unbatched SolverResult has no length")
        return int(self.converged.shape[0])

"""Solvers of the spin-glass model: exact Gaussian marginals and message passing.

| name        | what                                                   | memory  |
|-------------|--------------------------------------------------------|---------|
| ``exact``   | Cholesky of ``A = G + lam I`` (docs/solvers.md#exact)    | O(n^2)  |
| ``amp``     | AMP eq. 34 with the Onsager reaction term (exact mean)  | O(n^2)  |
| ``amp-paper``| AMP eq. 34 verbatim (biased mean; the paper's figures) | O(n^2)  |
| ``rbp``     | relaxed BP eq. 29 (messages on every pair)             | O(n^2) messages |

:func:`solve` validates its arguments and dispatches; all return a
:class:`SolverResult`. Every solver accepts a batched :class:`Instance`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..errors import ConvergenceWarning, ParameterError, check_choice, check_float, check_int
from ..hamiltonian import Instance
from .engine import EngineOutput, iterate
from .result import STATUSES, SolverResult

SOLVERS: tuple[str, ...] = ("exact", "amp", "amp-paper", "rbp")

__all__ = [
    "SOLVERS",
    "SolverConfig",
    "SolverResult",
    "STATUSES",
    "solve",
    "iterate",
    "ground_state",
    "solve_exact",
    "solve_amp",
    "solve_rbp",
]


@dataclass(frozen=True)
class SolverConfig:
    """How to solve an instance.

    Attributes
    ----------
    solver : str
        One of :data:`SOLVERS`; default ``"amp"``.
    beta : float
        Inverse temperature (> 0); the paper uses 100.
    damping : float
        In [0, 1): ``x <- damping x + (1 - damping) F(x)``. Default 0.5 (undamped AMP
        diverges in much of the paper's range); the authors used 0.9.
    tol : float
        Tolerance on the relative undamped residual (> 0).
    max_iter : int
        Iteration cap (>= 1).
    """

    solver: str = "amp"
    beta: float = 100.0
    damping: float = 0.5
    tol: float = 1e-8
    max_iter: int = 2000

    def __post_init__(self) -> None:
        check_choice("solver", self.solver, SOLVERS)
        object.__setattr__(self, "beta", check_float("beta", self.beta, low=0.0, low_open=True))
        object.__setattr__(
            self, "damping", check_float("damping", self.damping, low=0.0, high=1.0, high_open=True)
        )
        object.__setattr__(self, "tol", check_float("tol", self.tol, low=0.0, low_open=True))
        object.__setattr__(self, "max_iter", check_int("max_iter", self.max_iter))


def package_result(
    name: str, beta: float, m: torch.Tensor, v: torch.Tensor, out: EngineOutput
) -> SolverResult:
    """Turn engine bookkeeping into a :class:`SolverResult` (shared by all iterative solvers)."""
    status_t = [
        "converged" if c else ("diverged" if d else "max_iter")
        for c, d in zip(out.converged.reshape(-1).tolist(), out.diverged.reshape(-1).tolist())
    ]
    batched = out.converged.dim() > 0
    if batched:
        conv: bool | torch.Tensor = out.converged.cpu()
        status: str | tuple[str, ...] = tuple(status_t)
        n_iter: int | torch.Tensor = out.n_iter.cpu()
        counts = {s: status_t.count(s) for s in STATUSES if status_t.count(s)}
        message = f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    else:
        conv, status, n_iter = bool(out.converged), status_t[0], int(out.n_iter)
        r = out.residuals[-1] if len(out.residuals) else torch.tensor(float("nan"))
        message = f"{name}: {status} after {n_iter} iterations (residual {float(r):.3g})"
    return SolverResult(
        m=m,
        v=v,
        converged=conv,
        status=status,
        n_iter=n_iter,
        residuals=out.residuals.cpu(),
        solver=name,
        beta=float(beta),
        message=message,
    )


def solve(
    instance: Instance,
    solver: str = "amp",
    *,
    beta: float = 100.0,
    damping: float = 0.5,
    tol: float = 1e-8,
    max_iter: int = 2000,
    warn: bool = True,
) -> SolverResult:
    """Solve ``instance`` for the marginals of ``exp(-beta H)`` with the named solver.

    Parameters are validated as in :class:`SolverConfig`. Message-passing solvers need
    lam > 0 (otherwise the spins of W's last column have zero precision). A run that
    does not converge emits a :class:`ConvergenceWarning` (unless ``warn=False``)
    and says so in ``result.status``; it never returns NaN silently.
    """
    cfg = SolverConfig(solver=solver, beta=beta, damping=damping, tol=tol, max_iter=max_iter)
    if not isinstance(instance, Instance):
        raise ParameterError(
            f"instance must be a spinglass_icl Instance, got {type(instance).__name__}"
        )
    if instance.lam <= 0:
        raise ParameterError(
            f"lam must be > 0 for the Boltzmann solvers (got lam={instance.lam:g}): at lam = 0 "
            "the spins of W's last column are free and the measure is not normalizable"
        )
    if cfg.solver == "exact":
        res = solve_exact(instance, cfg.beta)
    elif cfg.solver in ("amp", "amp-paper"):
        res = solve_amp(
            instance,
            cfg.beta,
            onsager=cfg.solver == "amp",
            damping=cfg.damping,
            tol=cfg.tol,
            max_iter=cfg.max_iter,
        )
    else:
        res = solve_rbp(instance, cfg.beta, damping=cfg.damping, tol=cfg.tol, max_iter=cfg.max_iter)
    if warn and not res.all_converged:
        warnings.warn(res.message, ConvergenceWarning, stacklevel=2)
    return res


from .amp import solve_amp  # noqa: E402
from .exact import ground_state, solve_exact  # noqa: E402
from .rbp import solve_rbp  # noqa: E402

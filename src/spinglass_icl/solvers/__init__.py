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

import torch

from ..errors import ConvergenceWarning, ParameterError
from ..hamiltonian import Instance
from .amp import solve_amp
from .config import SOLVERS, SolverConfig
from .engine import EngineOutput, iterate
from .exact import ground_state, solve_exact
from .rbp import solve_rbp
from .result import STATUSES, SolverResult

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


def package_result(
    name: str, beta: float, m: torch.Tensor, v: torch.Tensor, out: EngineOutput
) -> SolverResult:
    """:meth:`SolverResult.from_engine` (kept for callers of the old name)."""
    return SolverResult.from_engine(name, beta, m, v, out)


def _check_memory(instance: Instance, solver: str) -> None:
    """Refuse (ResourceError) before building the dense n x n matrices if they cannot fit."""
    import math

    from ..resources import check_memory, dense_solve_bytes

    batch = math.prod(instance.batch_shape)
    need = dense_solve_bytes(instance.D, 1, 0, solver, batch=batch)  # the n x n matrices
    check_memory(
        need,
        f"{solver} solve of D={instance.D} ({instance.n} spins, batch {batch})",
        "use the matrix-free solvers (spinglass_icl.solvers.matfree) or a smaller D",
        device=instance.u.device,
    )


def solve(
    instance: Instance,
    config: SolverConfig | str = "amp",
    *,
    warn: bool = True,
    **options,
) -> SolverResult:
    """Solve ``instance`` for the marginals of ``exp(-beta H)``.

    ``config`` is a :class:`SolverConfig` (the primary form), or a solver name whose
    ``options`` (``beta``, ``damping``, ``tol``, ``max_iter``) make one:
    ``solve(instance, "amp", beta=100.0)``. The config validated itself; the solvers
    below trust it. Message-passing solvers need lam > 0 (otherwise the spins of W's
    last column have zero precision). A run that does not converge emits a
    :class:`ConvergenceWarning` (unless ``warn=False``) and says so in
    ``result.status``; it never returns NaN silently.
    """
    if "solver" in options:  # solve(instance, solver="amp"), the keyword form
        config = options.pop("solver")
    if isinstance(config, SolverConfig):
        if options:
            raise ParameterError(
                f"options must be given in the SolverConfig, got {', '.join(sorted(options))}"
            )
        cfg = config
    else:
        unknown = sorted(set(options) - {"beta", "damping", "tol", "max_iter"})
        if unknown:
            raise ParameterError(
                f"solver option must be one of beta, damping, tol, max_iter; got {unknown[0]!r}"
            )
        cfg = SolverConfig(solver=config, **options)
    if not isinstance(instance, Instance):
        raise ParameterError(
            f"instance must be a spinglass_icl Instance, got {type(instance).__name__}"
        )
    _check_memory(instance, cfg.solver)
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

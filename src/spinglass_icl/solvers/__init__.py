"""Solvers of the spin-glass model: exact Gaussian marginals and message passing.

Solvers are registered objects (:class:`Solver`, :func:`register_solver`,
:func:`get_solver`; :mod:`.registry`). The built-in ones:

| name        | what                                                   | memory  |
|-------------|--------------------------------------------------------|---------|
| ``exact``   | Cholesky of ``A = G + lam I`` (docs/solvers.md#exact)    | O(n^2)  |
| ``amp``     | AMP eq. 34 with the Onsager reaction term (exact mean)  | O(n^2)  |
| ``amp-paper``| AMP eq. 34 verbatim (biased mean; the paper's figures) | O(n^2)  |
| ``rbp``     | relaxed BP eq. 29 (messages on every pair)             | O(n^2) messages |

:func:`solve` validates its arguments, builds the :class:`Operators` of the instance
(dense, or matrix-free on request; :mod:`.operators`) and runs the registered solver's
rule on them; all return a :class:`SolverResult`. Every solver accepts a batched
:class:`~spinglass_icl.hamiltonian.Instance`.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import ConvergenceWarning, ParameterError
from . import amp as _amp  # noqa: F401  (registers amp, amp-paper)
from . import exact as _exact  # noqa: F401  (registers exact)
from . import rbp as _rbp  # noqa: F401  (registers rbp)
from .config import DEFAULT_SOLVER, SolverConfig
from .engine import EngineOutput, iterate
from .exact import ground_state
from .operators import (
    DenseOperators,
    MatrixFreeOperators,
    Operators,
    PairOperators,
    operators_for,
)
from .registry import (
    PAPER_SETTINGS,
    Settings,
    Solver,
    check_auto_damping,
    get_solver,
    register_solver,
    solver_names,
    unregister_solver,
)
from .result import STATUSES, SolverResult

__all__ = [
    "DEFAULT_SOLVER",
    "DenseOperators",
    "EngineOutput",
    "MatrixFreeOperators",
    "Operators",
    "PAPER_SETTINGS",
    "PairOperators",
    "STATUSES",
    "Settings",
    "Solver",
    "SolverConfig",
    "check_auto_damping",
    "SolverResult",
    "get_solver",
    "ground_state",
    "iterate",
    "operators_for",
    "register_solver",
    "solve",
    "solver_names",
    "unregister_solver",
]

#: the options ``solve(instance, name, ...)`` makes a :class:`SolverConfig` from
CONFIG_OPTIONS = ("beta", "damping", "tol", "max_iter")
#: the options of the matrix-free backend (:class:`MatrixFreeOperators`)
MATFREE_OPTIONS = ("variance_term", "n_probes", "probe_seed")


def make_config(config: SolverConfig | str, options: dict[str, Any]) -> SolverConfig:
    """``config`` itself (then ``options`` must be empty) or the :class:`SolverConfig` of
    a solver name and the options ``beta``, ``damping``, ``tol``, ``max_iter``."""
    if isinstance(config, SolverConfig):
        if options:
            raise ParameterError(
                f"options must be given in the SolverConfig, got {', '.join(sorted(options))}"
            )
        return config
    unknown = sorted(set(options) - set(CONFIG_OPTIONS))
    if unknown:
        raise ParameterError(
            f"solver option must be one of {', '.join(CONFIG_OPTIONS)}; got {unknown[0]!r}"
        )
    return SolverConfig(solver=config, **options)


def solve(
    instance: Any,
    config: SolverConfig | str = DEFAULT_SOLVER,
    *,
    backend: str = "auto",
    warn: bool = True,
    **options,
) -> SolverResult:
    """Solve ``instance`` for the marginals of ``exp(-beta H)``.

    ``instance`` is an :class:`~spinglass_icl.hamiltonian.Instance` or the
    :class:`Operators` of a batch (e.g. :meth:`PairOperators.of_factors`). ``config`` is
    a :class:`SolverConfig` (the primary form), or a registered solver name whose
    ``options`` (``beta``, ``damping``, ``tol``, ``max_iter``; unset ones take the
    solver's defaults) make one: ``solve(instance, "amp", beta=100.0)``.

    ``backend``: ``"auto"`` (the operators given, or dense ones for an Instance),
    ``"dense"`` or ``"matfree"`` (no ``n x n`` matrix; ``options`` may then also hold
    ``variance_term``, ``n_probes``, ``probe_seed``; docs/solvers.md#matrix-free-solvers).
    Message-passing solvers need lam > 0 (otherwise the spins of W's last column have
    zero precision). A run that does not converge emits a :class:`ConvergenceWarning`
    (unless ``warn=False``) and says so in ``result.status``; it never returns NaN
    silently.
    """
    if "solver" in options:  # solve(instance, solver="amp"), the keyword form
        config = options.pop("solver")
    op_opts = {k: options.pop(k) for k in MATFREE_OPTIONS if k in options}
    cfg = make_config(config, options)
    solver = get_solver(cfg.solver)
    ops = operators_for(instance, solver, backend, **op_opts)
    res = solver(ops, cfg)
    if warn and not res.all_converged:
        warnings.warn(res.message, ConvergenceWarning, stacklevel=2)
    return res

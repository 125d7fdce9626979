"""How to solve an instance: the solver and its options, checked once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import OrNone, Real, validate_fields
from .registry import Settings, check_solver, get_solver

#: the solver :func:`~spinglass_icl.solvers.solve`, the CLI and sweeps use by default
DEFAULT_SOLVER = "amp"


@dataclass(frozen=True)
class SolverConfig:
    """How to solve an instance.

    Attributes
    ----------
    solver : str
        A registered solver (:func:`~spinglass_icl.solvers.solver_names`); default
        ``"amp"``.
    beta : float
        Inverse temperature (> 0); the paper uses 100.
    damping : float or None
        In [0, 1): ``x <- damping x + (1 - damping) F(x)``. None (the default): the
        solver's own default (:attr:`Solver.defaults`; 0.5 for AMP, whose undamped
        iteration diverges in much of the paper's range; the authors used 0.9,
        :data:`~spinglass_icl.solvers.PAPER_SETTINGS`).
    tol : float or None
        Tolerance on the relative undamped residual (> 0); None: the solver's default.
    max_iter : int or None
        Iteration cap (>= 1); None: the solver's default.
    """

    solver: str = DEFAULT_SOLVER
    beta: float = 100.0
    damping: float | None = None
    tol: float | None = None
    max_iter: int | None = None

    _parameter_constraints: ClassVar[dict] = {
        "solver": check_solver,
        "beta": Real(low=0.0, low_open=True),
        # damping, tol, max_iter: checked as Settings' (None: the solver's default)
        **{k: OrNone(c, state_none=False) for k, c in Settings._parameter_constraints.items()},
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "solver", check_solver("solver", self.solver))
        defaults = get_solver(self.solver).defaults
        for name in ("damping", "tol", "max_iter"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(defaults, name))
        validate_fields(self)

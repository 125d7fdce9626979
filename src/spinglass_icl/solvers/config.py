"""How to solve an instance: the solver and its options, checked once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import Choice, Int, Real, validate_fields

SOLVERS: tuple[str, ...] = ("exact", "amp", "amp-paper", "rbp")


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

    _parameter_constraints: ClassVar[dict] = {
        "solver": Choice(SOLVERS),
        "beta": Real(low=0.0, low_open=True),
        "damping": Real(low=0.0, high=1.0, high_open=True),
        "tol": Real(low=0.0, low_open=True),
        "max_iter": Int(1),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

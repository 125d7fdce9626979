"""Solvers as registered objects: one :class:`Solver` per name, looked up everywhere.

A solver declares, in one place, its update rule (a function of the
:class:`~spinglass_icl.solvers.operators.Operators` of a batch and a
:class:`~spinglass_icl.solvers.config.SolverConfig`), its capabilities and its defaults.
Every entry point -- :func:`~spinglass_icl.solvers.solve`, the ``solve`` and
``stability`` commands, sweep specs, presets, memory estimates, figures -- asks the
registry, so adding a solver is one :func:`register_solver` call and an unknown name is a
:class:`~spinglass_icl.errors.ParameterError` naming the registered ones, never a silent
fall-through to another solver::

    from spinglass_icl.solvers import Solver, register_solver

    register_solver(Solver(name="my-amp", rule=my_rule, summary="..."))
    solve(instance, "my-amp")

The built-in solvers register themselves in :mod:`.exact`, :mod:`.amp` and :mod:`.rbp`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import (
    Check,
    Constraint,
    Flag,
    InstanceOf,
    Int,
    ParameterError,
    Real,
    Table,
    Text,
    validate_fields,
)

__all__ = [
    "BACKENDS",
    "PAPER_SETTINGS",
    "Settings",
    "Solver",
    "get_solver",
    "register_solver",
    "solver_names",
    "unregister_solver",
]

#: the operator backends a solver can run on (:mod:`.operators`)
BACKENDS: tuple[str, ...] = ("dense", "pair", "matfree")


@dataclass(frozen=True)
class Settings:
    """Iteration settings: damping in [0, 1), tolerance (> 0) and iteration cap (>= 1)."""

    damping: float = 0.5
    tol: float = 1e-8
    max_iter: int = 2000

    _parameter_constraints: ClassVar[dict] = {
        "damping": Real(low=0.0, high=1.0, high_open=True),
        "tol": Real(low=0.0, low_open=True),
        "max_iter": Int(1),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    def as_dict(self) -> dict[str, Any]:
        return {"damping": self.damping, "tol": self.tol, "max_iter": self.max_iter}


#: the authors' AMP settings, ``new = 0.9 old + 0.1 update`` to a tolerance of 1e-6
#: (docs/solvers.md#convergence-and-divergence): what sweeps and the paper's presets use
PAPER_SETTINGS = Settings(damping=0.9, tol=1e-6, max_iter=2000)

#: ``rule(ops, config) -> SolverResult`` (:class:`~.operators.Operators`,
#: :class:`~.config.SolverConfig`, :class:`~.result.SolverResult`)
Rule = Callable[[Any, Any], Any]


def _check_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ParameterError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _check_rule(name: str, value: Any) -> Any:
    if not callable(value):
        raise ParameterError(f"{name} must be callable, got {type(value).__name__}")
    return value


def _check_backends(name: str, value: Any) -> tuple[str, ...]:
    value = tuple(value) if isinstance(value, (list, tuple)) else value
    if not isinstance(value, tuple) or not value or any(b not in BACKENDS for b in value):
        raise ParameterError(
            f"{name} must be a non-empty tuple of {', '.join(BACKENDS)}; got {value!r}"
        )
    return value


_CAPABILITIES = ("iterative", "uses_damping", "stability", "reaction_term", "factor_matvec")


@dataclass(frozen=True)
class Solver:
    """A solver of the spin-glass model: its update rule, capabilities and defaults.

    Attributes
    ----------
    name : str
        The registered name (``solve(instance, name)``, ``--solver``, sweep specs).
    rule : callable
        ``rule(ops, config) -> SolverResult``: solves the batch whose Hamiltonian is
        ``ops`` (:class:`~spinglass_icl.solvers.operators.Operators`) with the settings of
        ``config``. Iterative rules run through :func:`~spinglass_icl.solvers.iterate`.
    summary : str
        One line: what it computes (the paper's equation).
    defaults : Settings
        Damping, tolerance and iteration cap used where the caller gives none.
    backends : tuple of str
        The operator backends the rule runs on (of :data:`BACKENDS`).
    iterative : bool
        It iterates to a tolerance (``tol`` and ``max_iter`` matter).
    uses_damping : bool
        ``damping`` changes its iteration.
    stability : bool
        :func:`~spinglass_icl.solvers.stability.amp_stability` analyses it (and so
        ``damping = "auto"`` can resolve a damping for it).
    reaction_term : bool
        Its mean update carries the Onsager reaction term ``-V_i m_i`` (the stability
        analysis then linearizes ``K = G + lam I``, else ``G + lam I - diag(R)``).
    dense_matrices : int
        ``n x n`` matrices one dense solve holds (memory estimates).
    batch_matrices : int
        ``n x n`` matrices per instance of a batched sweep solve.
    factor_matvec : bool
        Its batched kernel applies ``G`` through the factors when ``P <= n``, so holds
        one ``n x n`` matrix less (sweep planning).
    memory : str
        Memory in words (the docs' table).
    plot_style : dict
        Matplotlib marker and colour of its curves.
    """

    name: str
    rule: Rule
    summary: str = ""
    defaults: Settings = Settings()
    backends: tuple[str, ...] = ("dense", "pair")
    iterative: bool = True
    uses_damping: bool = True
    stability: bool = False
    reaction_term: bool = False
    dense_matrices: int = 5
    batch_matrices: int = 4
    factor_matvec: bool = False
    memory: str = "O(n^2)"
    plot_style: dict = field(default_factory=lambda: {"marker": "."})

    _parameter_constraints: ClassVar[dict] = {
        "name": Check(
            _check_name,
            "a non-empty string",
            [("", "''"), (" amp", "' amp'"), (3, "3")],
            label="solver name",
        ),
        "rule": Check(_check_rule, "callable", [("x", "str"), (None, "NoneType")]),
        "summary": Text(),
        "defaults": InstanceOf(Settings),
        "backends": Check(
            _check_backends,
            f"a non-empty tuple of {', '.join(BACKENDS)}",
            [(("gpu",), "('gpu',)"), ((), "()")],
        ),
        **{k: Flag() for k in _CAPABILITIES},
        "dense_matrices": Int(0),
        "batch_matrices": Int(0),
        "memory": Text(),
        "plot_style": Table(Text(), Check(lambda n, v: v, "any value", []), "name -> value"),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    @property
    def matrix_free(self) -> bool:
        """It runs on the matrix-free backend (large D)."""
        return "matfree" in self.backends

    def __call__(self, ops: Any, config: Any) -> Any:
        """Run the rule on ``ops`` after checking that it supports their backend."""
        if ops.backend not in self.backends:
            raise ParameterError(
                f"backend must be one of {', '.join(self.backends)} for solver {self.name!r}, "
                f"got {ops.backend!r}"
            )
        return self.rule(ops, config)

    def __repr__(self) -> str:
        caps = [c for c in ("iterative", "uses_damping", "stability") if getattr(self, c)]
        return (
            f"Solver({self.name!r}, backends={'/'.join(self.backends)}, "
            f"{', '.join(caps) or 'direct'}; {self.summary})"
        )


_REGISTRY: dict[str, Solver] = {}


def register_solver(solver: Solver, *, replace: bool = False) -> Solver:
    """Register ``solver`` under its name (``replace=True`` to overwrite one); returns it."""
    if not isinstance(solver, Solver):
        raise ParameterError(f"solver must be a Solver, got {type(solver).__name__}")
    if solver.name in _REGISTRY and not replace:
        raise ParameterError(
            f"solver name must be new, got {solver.name!r} (registered already; "
            "pass replace=True to overwrite it)"
        )
    _REGISTRY[solver.name] = solver
    return solver


def unregister_solver(name: str) -> None:
    """Remove a registered solver (tests and examples that register their own)."""
    get_solver(name)
    del _REGISTRY[name]


def get_solver(name: Any, *, need: str | None = None, field: str = "solver") -> Solver:
    """The registered :class:`Solver` called ``name``; ParameterError naming the
    registered ones otherwise (``field``: the parameter named in the message). ``need``
    names a capability (an attribute that must be true, e.g. ``"stability"`` or
    ``"matrix_free"``)."""
    if isinstance(name, Solver):
        name = name.name
    allowed = solver_names(**({need: True} if need else {}))
    if name not in allowed:
        with_ = f" (solvers with {need.replace('_', ' ')})" if need else ""
        raise ParameterError(f"{field} must be one of {', '.join(allowed)}{with_}; got {name!r}")
    return _REGISTRY[name]


def solver_names(**capabilities: bool) -> tuple[str, ...]:
    """Registered names, in registration order, with the given capabilities
    (``solver_names(stability=True)``, ``solver_names(matrix_free=True)``)."""
    return tuple(
        s.name
        for s in _REGISTRY.values()
        if all(bool(getattr(s, k)) == v for k, v in capabilities.items())
    )


class SolverName(Constraint):
    """A field constraint (:func:`~spinglass_icl.errors.validate_fields`): a registered
    solver's name (with the capability ``need``, if given; a :class:`Solver` is kept as
    its name)."""

    def __init__(self, need: str | None = None, *, label: str | None = None) -> None:
        self.need, self.label = need, label

    def check(self, name: str, value: Any) -> str:
        return get_solver(value, need=self.need, field=name).name

    @property
    def rule(self) -> str:
        return f"one of {', '.join(solver_names(**({self.need: True} if self.need else {})))}"

    def invalid(self) -> list[tuple[Any, str, str]]:
        return self._bad(("no-such-solver", "'no-such-solver'"), (3, "3"))


#: a registered solver's name (:class:`SolverName`)
check_solver = SolverName()


def check_auto_damping(name: str) -> Solver:
    """The solver ``name``, if ``damping = "auto"`` can be resolved for it: it has the
    stability analysis, or uses no damping (then auto is ignored)."""
    solver = get_solver(name)
    if solver.uses_damping and not solver.stability:
        raise ParameterError(
            f"solver must be one of {', '.join(solver_names(stability=True))} (the stability "
            f"analysis of docs/amp-stability.md) or one without damping for damping auto; "
            f"got {name!r}"
        )
    return solver

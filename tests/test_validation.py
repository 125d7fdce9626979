"""One validation mechanism for every config object (spinglass_icl.errors.validate_fields).

The package is walked for frozen dataclasses. Each one either declares every field in
``_parameter_constraints`` (a config class) or is a result or data holder listed below
with the reason it needs none. For every field of every config class the test builds
invalid values from the field's constraint itself (below the minimum, a wrong choice, a
string for an int, NaN and inf for a real, ...) and checks the error: a
:class:`ParameterError` of one line that names the field, states the allowed values and
quotes the value as typed.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

import spinglass_icl
from spinglass_icl.errors import Constraint, Int, OrNone, ParameterError, Real, validate_fields


def _walk() -> list[type]:
    """Every dataclass defined in the package (imported module by module)."""
    out = {}
    for info in pkgutil.walk_packages(spinglass_icl.__path__, "spinglass_icl."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if dataclasses.is_dataclass(cls) and cls.__module__ == mod.__name__:
                out[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [out[k] for k in sorted(out)]


ALL = _walk()
CONFIGS = [c for c in ALL if "_parameter_constraints" in vars(c) or any(
    "_parameter_constraints" in vars(b) for b in c.__mro__[1:] if dataclasses.is_dataclass(b)
)]  # fmt: skip

#: dataclasses that are not configs: results and data a function built from checked
#: inputs (nothing a user types reaches them unchecked)
NOT_CONFIGS: dict[str, str] = {
    "spinglass_icl.diversity.TestContexts": "test prompts drawn by TestContexts.draw",
    "spinglass_icl.diversity.DiversityRow": "a result row of a task-diversity curve",
    "spinglass_icl.experiments.figure.Context": "built by the runner from RunOptions",
    "spinglass_icl.experiments.figure.Outcome": "a figure's result",
    "spinglass_icl.hamiltonian.CouplingBlocks": "blocks computed from an Instance",
    "spinglass_icl.hamiltonian.FieldBlocks": "blocks computed from an Instance",
    "spinglass_icl.solvers.engine.EngineOutput": "the iteration engine's result",
    "spinglass_icl.solvers.lowrank.PairSystem": "built from an Instance's factors",
    "spinglass_icl.solvers.operators.Operators": "built from an Instance (of_factors)",
    "spinglass_icl.solvers.operators.DenseOperators": "built from an Instance",
    "spinglass_icl.solvers.operators.PairOperators": "built from an Instance's factors",
    "spinglass_icl.solvers.operators.MatrixFreeOperators": "built from an Instance",
    "spinglass_icl.solvers.result.SolverResult": "a solver's result",
    "spinglass_icl.solvers.stability.StabilityResult": "a stability analysis' result",
    "spinglass_icl.sweep.rows.RowOptions": "copied from a checked SweepSpec",
    "spinglass_icl.sweep.spec.Task": "one row of a checked SweepSpec (SweepSpec.tasks)",
    "spinglass_icl.tasks.TaskMoments": "moments computed from a TaskConfig",
    "spinglass_icl.tasks.Prompts": "prompts sampled from a TaskConfig (shapes checked)",
    "spinglass_icl.tasks.Factors": "factors sampled from a TaskConfig (shapes checked)",
    "spinglass_icl.testerrors.TestError": "a test error's result",
    "spinglass_icl.theory.TheoryParams": "computed by lu_params from checked arguments",
    "spinglass_icl.theory.PoolTheory": "a theory result (pool_theory)",
    "spinglass_icl.training.TrainResult": "a training run's result",
    "spinglass_icl.weights.WBlocks": "the blocks of a weight W (blocks(W))",
}

#: fields of config classes that need no constraint, with the reason
UNCONSTRAINED: dict[str, str] = {}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def unconstrained_fields(cls: type) -> list[str]:
    """The init fields of ``cls`` with no constraint (and not in :data:`UNCONSTRAINED`)."""
    table = cls._parameter_constraints
    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.name not in table and f"{_name(cls)}.{f.name}" not in UNCONSTRAINED
    ]


def _instance():
    from spinglass_icl import TaskConfig

    z = torch.zeros
    return {"u": z(3, 4), "q": z(3, 4), "y": z(3), "lam": 0.1, "config": TaskConfig(3, 2, 3)}


def _rule(ops, config):  # a solver's rule (never run here)
    raise NotImplementedError


#: keyword arguments of a valid object, for classes whose fields have no defaults
VALID = {
    "spinglass_icl.tasks.TaskConfig": lambda: {"D": 3, "N": 2, "P": 4},
    "spinglass_icl.correlated.CorrelatedTaskConfig": lambda: {"D": 3, "N": 2, "P": 4},
    "spinglass_icl.hamiltonian.Instance": _instance,
    "spinglass_icl.experiments.claims.Claim": lambda: {
        "claim": "c",
        "quantity": "q",
        "measured": 1.0,
        "criterion": "k",
        "verdict": "agrees",
    },  # fmt: skip
    "spinglass_icl.solvers.registry.Solver": lambda: {"name": "s", "rule": _rule},
    "spinglass_icl.sweep.spec.SweepSpec": lambda: {"fixed": {"D": 2, "N": 2, "P": 3, "lam": 1.0}},
}


def _valid(cls: type):
    """A valid object of ``cls``: from :data:`VALID`, else the models' (D, N), else the
    defaults."""
    name = _name(cls)
    if name in VALID:
        return cls(**VALID[name]())
    from spinglass_icl.models import Model

    if issubclass(cls, Model):
        return cls(D=3, N=2)
    return cls()


def _cases():
    for cls in CONFIGS:
        for f in dataclasses.fields(cls):
            c = cls._parameter_constraints.get(f.name)
            if c is None:
                continue
            for k, (value, quoted, rule) in enumerate(c.invalid()):
                yield pytest.param(cls, f.name, c, value, quoted, rule,
                                   id=f"{cls.__name__}.{f.name}[{k}]")  # fmt: skip


def test_the_walk_finds_the_config_classes():
    names = {c.__name__ for c in CONFIGS}
    must = {"TaskConfig", "TrainConfig", "SweepSpec", "SolverConfig", "Settings", "Claim",
            "SlurmOptions", "RunOptions", "Fig4aPreset", "SAConfig", "SA", "Precision"}  # fmt: skip
    assert must <= names, must - names
    assert len(CONFIGS) >= 40


def test_every_dataclass_is_a_config_or_a_listed_result():
    stray = [_name(c) for c in ALL if c not in CONFIGS and _name(c) not in NOT_CONFIGS]
    assert not stray, f"declare _parameter_constraints or list as NOT_CONFIGS: {stray}"
    stale = [n for n in NOT_CONFIGS if n.count(".") > 1 and n not in map(_name, ALL)]
    assert not stale, stale


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_has_a_constraint_of_the_vocabulary(cls):
    assert not unconstrained_fields(cls), f"{cls.__name__}: no constraint for these fields"
    names = {f.name for f in dataclasses.fields(cls)}
    for field, c in cls._parameter_constraints.items():
        assert field in names, f"{cls.__name__}._parameter_constraints names no field {field}"
        assert isinstance(c, Constraint), f"{cls.__name__}.{field}: {c!r} is not a Constraint"
        assert c.invalid(), f"{cls.__name__}.{field}: its constraint names no invalid value"
    _valid(cls)  # a valid object passes


@pytest.mark.parametrize("cls, field, c, value, quoted, rule", list(_cases()))
def test_an_invalid_field_is_a_one_line_error(cls, field, c, value, quoted, rule):
    obj = _valid(cls)
    kwargs = {f.name: getattr(obj, f.name) for f in dataclasses.fields(cls) if f.init}
    kwargs[field] = value
    with pytest.raises(ParameterError) as e:
        cls(**kwargs)
    msg = str(e.value)
    assert "\n" not in msg, msg
    assert msg.startswith(c.label or field), msg  # names the field
    assert rule in msg, f"{msg!r} does not state {rule!r}"
    assert quoted in msg, f"{msg!r} does not quote {quoted!r}"


def test_a_field_without_a_constraint_fails_the_check():
    @dataclass(frozen=True)
    class Forgot:
        n: int = 1
        new: float = 0.5  # added without a constraint
        _parameter_constraints: ClassVar[dict] = {"n": Int(1)}

        def __post_init__(self) -> None:
            validate_fields(self)

    assert unconstrained_fields(Forgot) == ["new"]
    with pytest.raises(AssertionError, match="no constraint"):
        test_every_field_has_a_constraint_of_the_vocabulary(Forgot)


def test_a_constraint_without_invalid_values_fails_the_check():
    from spinglass_icl.errors import Check

    @dataclass(frozen=True)
    class Vague:
        n: int = 1
        _parameter_constraints: ClassVar[dict] = {"n": Check(lambda _, v: v, "anything", [])}

        def __post_init__(self) -> None:
            validate_fields(self)

    with pytest.raises(AssertionError, match="names no invalid value"):
        test_every_field_has_a_constraint_of_the_vocabulary(Vague)


def test_or_none_and_cross_checks():
    @dataclass(frozen=True)
    class Window:
        low: float = 0.0
        high: float | None = None
        _parameter_constraints: ClassVar[dict] = {"low": Real(), "high": OrNone(Real(low=0.0))}
        _cross_checks: ClassVar[tuple] = ("_ordered",)

        def __post_init__(self) -> None:
            validate_fields(self)

        def _ordered(self) -> None:
            if self.high is not None and self.high <= self.low:
                raise ParameterError(f"high must be > low = {self.low:g}, got {self.high:g}")

    assert Window(high=None).high is None and Window(high=2).high == 2.0
    with pytest.raises(ParameterError, match=r"^high must be >= 0 or None, got -1.0$"):
        Window(high=-1)
    with pytest.raises(ParameterError, match=r"^high must be > low = 3, got 2$"):
        Window(low=3, high=2)
    with pytest.raises(ParameterError, match=r"^low must be a finite number, got nan$"):
        Window(low=float("nan"))


def test_a_registry_choice_is_read_when_checked():
    from spinglass_icl.errors import Choice

    registry = {"a": 1}
    c = Choice(registry)
    registry["b"] = 2  # registered after the constraint was made
    assert c("kind", "b") == "b"
    with pytest.raises(ParameterError, match=r"^kind must be one of a, b; got 'c'$"):
        c("kind", "c")

"""Parameter presets of ``spinglass-icl reproduce``: one frozen dataclass per figure.

Each figure's class holds the paper's parameters as its defaults (docs/experiments.md#presets;
from the captions and, where they are silent, the authors' released data); ``quick``
(every figure on a 2-core CPU in about a minute: smaller D, P, trials; same physics) and
``tiny`` (seconds per figure, for the tests) are :func:`dataclasses.replace` of them.
Every class checks its own fields once, on construction, from its ``_constraints``
table (as scikit-learn's ``_parameter_constraints``); a figure's seeds are derived from
the ``--seed`` given on the command line (:func:`spinglass_icl.experiments.common.figure_seed`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ParameterError, check_choice, check_float, check_int

__all__ = [
    "PRESETS",
    "FigurePreset",
    "Fig1Preset",
    "Fig2Preset",
    "Fig3Preset",
    "HessianPreset",
    "Fig4aPreset",
    "AmpStabilityPreset",
    "Fig4bPreset",
    "Fig5Preset",
    "Fig6Preset",
    "DoubleDescentPreset",
    "get_preset",
]

PRESETS: tuple[str, ...] = ("tiny", "quick", "paper")

# --- field checks: each takes (name, value) and returns the normalized value --------------


def _int(minimum: int = 1) -> Callable[[str, Any], int]:
    return lambda name, v: check_int(name, v, minimum=minimum)


def _pos(name: str, v: Any) -> float:
    return check_float(name, v, low=0.0, low_open=True)


def _nonneg(name: str, v: Any) -> float:
    return check_float(name, v, low=0.0)


def _unit(name: str, v: Any) -> float:
    return check_float(name, v, low=0.0, high=1.0, high_open=True)


def _damping(name: str, v: Any) -> float | str:
    """A damping in [0, 1), or ``auto`` (the smallest predicted to converge, per batch)."""
    return "auto" if v == "auto" else _unit(name, v)


def _opt_pos(name: str, v: Any) -> float | None:
    return None if v is None else _pos(name, v)


def _opt_int(name: str, v: Any) -> int | None:
    return None if v is None else check_int(name, v)


def _dtypes(name: str, v: Any) -> dict[str, str]:
    """A model -> dtype table (``float64`` or ``float32``)."""
    if not isinstance(v, dict):
        raise ParameterError(f"{name} must be a table model -> dtype, got {v!r}")
    for m, d in v.items():
        check_choice(f"{name} model", m, _MODELS)
        check_choice(f"{name}[{m}]", d, ("float64", "float32"))
    return dict(v)


def _choice(*choices: str) -> Callable[[str, Any], str]:
    return lambda name, v: check_choice(name, v, choices)


def _flag(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ParameterError(f"{name} must be true or false, got {v!r}")
    return v


def _seq(item: Callable[[str, Any], Any], length: int | None = None, minimum: int = 1):
    """A non-empty tuple of items (``length`` exactly, if given)."""

    def check(name: str, v: Any) -> tuple:
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
            raise ParameterError(f"{name} must be a list, got {v!r}")
        out = tuple(item(name, x) for x in v)
        if length is not None and len(out) != length:
            raise ParameterError(f"{name} must hold {length} values, got {len(out)}")
        if len(out) < minimum:
            raise ParameterError(f"{name} must hold at least {minimum} value(s), got {len(out)}")
        return out

    return check


_OPTIMIZERS = ("adam", "sgd")
_MODELS = ("sla", "fla", "sa", "tf", "mhla")
_SOLVERS = ("exact", "amp", "amp-paper", "rbp")
_SAMPLERS = ("prompts", "factors")


@dataclass(frozen=True)
class FigurePreset:
    """Base of the per-figure presets: validates and normalizes every field once."""

    _constraints: ClassVar[dict[str, Callable[[str, Any], Any]]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = self._constraints.get(f.name)
            if check is not None:
                object.__setattr__(self, f.name, check(f.name, getattr(self, f.name)))
        self._check_together()

    def _check_together(self) -> None:
        """Checks that involve several fields (none by default)."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    # read-only mapping access (``p["D"]``, ``p.get("sampler", ...)``, ``"trials" in p``)
    def __getitem__(self, name: str) -> Any:
        if name not in self:
            raise KeyError(name)
        return getattr(self, name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in {f.name for f in dataclasses.fields(self)}

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in self else default

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]

    def replace(self, **changes: Any) -> FigurePreset:
        """A copy with ``changes``; unknown names are a one-line :class:`ParameterError`."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ParameterError(
                f"params must be keys of the {type(self).__name__} preset "
                f"({', '.join(names)}), got {unknown}"
            )
        return dataclasses.replace(self, **changes)


def _range(name: str, v: Any) -> tuple:
    lo, hi = _seq(_pos, length=2)(name, v)
    if not lo < hi:
        raise ParameterError(f"{name} must be [low, high] with low < high, got [{lo:g}, {hi:g}]")
    return (lo, hi)


@dataclass(frozen=True)
class Fig1Preset(FigurePreset):
    """Fig. 1: (P, D, N) = (1000, 5, 100); '100 000 ensembles' read as 100 instances of
    P = 1000 prompts; the block laws sampled ``law_samples`` times."""

    D: int = 5
    N: int = 100
    P: int = 1000
    instances: int = 100
    law_samples: int = 2_000_000
    max_entries: int = 2_000_000
    bins: int = 120
    _constraints: ClassVar = {k: _int() for k in ("D", "N", "P", "instances", "bins")} | {
        "law_samples": _int(2),
        "max_entries": _int(2),
    }


@dataclass(frozen=True)
class Fig2Preset(FigurePreset):
    """Fig. 2: Adam at lam = 0 for several P at (D, N) = (10, 100); AMP at P = 5000,
    lam = 0.01, beta = 100."""

    D: int = 10
    N: int = 100
    P_list: tuple[int, ...] = (10, 100, 1000, 10000)
    epochs: int = 2000
    lr: float | None = None
    optimizer: str = "adam"
    trials: int = 1
    test_tasks: int = 2000
    amp_P: int = 5000
    amp_lam: float = 0.01
    beta: float = 100.0
    damping: float = 0.9
    _constraints: ClassVar = {
        **{k: _int() for k in ("D", "N", "epochs", "trials", "test_tasks", "amp_P")},
        "P_list": _seq(_int(), minimum=2),
        "lr": _opt_pos,
        "optimizer": _choice(*_OPTIMIZERS),
        "amp_lam": _pos,
        "beta": _pos,
        "damping": _unit,
    }


@dataclass(frozen=True)
class Fig3Preset(FigurePreset):
    """Fig. 3: D = 10, N = 50, lam = 0.01, P = 1000 vs 10, 2000 random W."""

    D: int = 10
    N: int = 50
    lam: float = 0.01
    P_list: tuple[int, ...] = (1000, 10)
    points: int = 2000
    perplexity: float = 30.0
    tsne_iter: int = 1000
    _constraints: ClassVar = {
        "D": _int(),
        "N": _int(),
        "lam": _pos,
        "P_list": _seq(_int(), minimum=2),
        "points": _int(4),
        "perplexity": _pos,
        "tsne_iter": _int(250),
    }


@dataclass(frozen=True)
class HessianPreset(FigurePreset):
    """The slides' Hessian spectrum at Fig. 3's setting, P = 10 and 1000."""

    D: int = 10
    N: int = 50
    lam: float = 0.01
    P_list: tuple[int, ...] = (10, 1000)
    instances: int = 10
    _constraints: ClassVar = {
        "D": _int(),
        "N": _int(),
        "lam": _pos,
        "P_list": _seq(_int()),
        "instances": _int(),
    }


@dataclass(frozen=True)
class Fig4aPreset(FigurePreset):
    """Fig. 4a: the authors' data and grid: D = 20, P = 20, 40, ..., 1000 and
    N = 2, 4, ..., 100 (linear, 50 x 50), lam = 1, 10 repeats, AMP as printed (eq. 34),
    damping 0.9, at the authors' 100-step cap and at a converged cap (2000).

    ``authors_tol``: the stop of the capped runs. The authors stop when the mean-square
    change of m plus that of v is below 1e-6 (an RMS change of 1e-3); the engine's
    residual is the relative max change, so the capped runs stop at 1e-3, three decades
    from an O(1) start as theirs. At the engine's 1e-6 no run could stop within 100 steps
    at damping 0.9 (each step removes at most 10% of the change: 0.9^100 = 2.7e-5)."""

    D: int = 20
    lam: float = 1.0
    beta: float = 100.0
    P_range: tuple[float, float] = (20, 1000)
    N_range: tuple[float, float] = (2, 100)
    grid: int = 50
    grid_kind: str = "linear"
    repeats: int = 10
    damping: float = 0.9
    tol: float = 1e-6
    max_iter: int = 2000
    authors_cap: int = 100
    authors_tol: float = 1e-3
    predict_every: int = 5
    amp_solver: str = "amp-paper"
    test_tasks: int = 500
    _constraints: ClassVar = {
        **{
            k: _int()
            for k in ("D", "repeats", "max_iter", "authors_cap", "predict_every", "test_tasks")
        },  # fmt: skip
        "grid": _int(2),
        "grid_kind": _choice("linear", "log"),
        "authors_tol": _pos,
        "lam": _pos,
        "beta": _pos,
        "P_range": _range,
        "N_range": _range,
        "damping": _damping,
        "tol": _pos,
        "amp_solver": _choice("amp", "amp-paper", "rbp"),
    }


@dataclass(frozen=True)
class AmpStabilityPreset(FigurePreset):
    """AMP stability (not in the paper): the variance margin and damped spectral radius vs
    P/D^2 at a few lam, at the authors' Fig. 4a setting (D = 20)."""

    D: int = 20
    N: int = 20
    beta: float = 100.0
    lam_list: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0)
    P_range: tuple[float, float] = (10, 4000)
    points: int = 16
    repeats: int = 10
    solver: str = "amp-paper"
    damping: float = 0.9
    tol: float = 1e-6
    max_iter: int = 2000
    _constraints: ClassVar = {
        **{k: _int() for k in ("D", "N", "repeats", "max_iter")},
        "points": _int(2),
        "beta": _pos,
        "lam_list": _seq(_pos),
        "P_range": _range,
        "solver": _choice("amp", "amp-paper"),
        "damping": _damping,
        "tol": _pos,
    }


@dataclass(frozen=True)
class Fig4bPreset(FigurePreset):
    """Fig. 4b: D = 20, lam = 0.01, P = 10 000, beta = 100, 100 trials; SGD (Adam)
    beside AMP, the exact solution and the theory.

    N on the grid of the authors' released data. AMP and exact solve at lam = 0.01; SGD
    trains twice (``sgd_lams``): as the authors did (Adam ``weight_decay`` 0.01 on the
    MSE, i.e. lam = 0.005 in eq. 2) and at the matched lam = 0.01. Training stops per
    trial when its loss changed by less than ``train_tol`` (relative) over
    ``train_window`` epochs, capped at ``epochs``; ``sampler = "factors"`` draws the SLA
    data (SGD and solvers) as exact-law factors; ``chunk`` trials are trained (and
    stored) at a time (None: as many as memory allows).
    """

    D: int = 20
    lam: float = 0.01
    beta: float = 100.0
    P: int = 10000
    N_list: tuple[int, ...] = (20, 40, 60, 80, 100, 120, 140, 160, 180, 200)
    trials: int = 100
    damping: float = 0.9
    tol: float = 1e-6
    max_iter: int = 2000
    test_tasks: int = 2000
    sgd: bool = True
    sgd_lams: tuple[float, ...] = (0.005, 0.01)
    epochs: int = 2000
    train_tol: float | None = 1e-8
    train_window: int = 50
    sampler: str = "factors"
    chunk: int | None = 25
    lr: float | None = None
    optimizer: str = "adam"
    _constraints: ClassVar = {
        **{k: _int() for k in ("D", "P", "max_iter", "test_tasks", "epochs", "train_window")},
        "trials": _int(),
        "lam": _pos,
        "beta": _pos,
        "N_list": _seq(_int(), minimum=2),
        "damping": _damping,
        "tol": _pos,
        "sgd": _flag,
        "sgd_lams": _seq(_nonneg, minimum=0),
        "train_tol": _opt_pos,
        "sampler": _choice(*_SAMPLERS),
        "chunk": _opt_int,
        "lr": _opt_pos,
        "optimizer": _choice(*_OPTIMIZERS),
    }


@dataclass(frozen=True)
class Fig5Preset(FigurePreset):
    """Fig. 5: (P, D, N) = (1000, 20, 50), 1000 instances."""

    D: int = 20
    N: int = 50
    P: int = 1000
    lam: float = 0.01
    instances: int = 1000
    dN_list: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
    bins: int = 100
    chunk: int = 50
    _constraints: ClassVar = {
        **{k: _int() for k in ("D", "N", "P", "instances", "chunk")},
        "bins": _int(8),
        "lam": _pos,
        "dN_list": _seq(_int()),
    }


@dataclass(frozen=True)
class Fig6Preset(FigurePreset):
    """Fig. 6: lam = 0.01, P = 10 000, D = 20, beta = 100, H = 32, M = 10, 100 trials.

    ``train_lam``: the paper's lam = 0.01 read as the authors' Adam ``weight_decay``,
    which is lam = wd / 2 = 0.005 in eq. 2; at lam = 0.01 SA and TF stay at the trivial
    predictor (the figure's notes).
    """

    D: int = 20
    N: int = 50
    P: int = 10000
    lam: float = 0.01
    train_lam: float = 0.005
    beta: float = 100.0
    H: int = 32
    M: int = 10
    trials: int = 100
    epochs: int = 2000
    train_tol: float | None = 1e-7
    train_window: int = 50
    #: one trial per chunk: a chunk steps until its last trial stops, so each trial trains
    #: for its own epochs (and costs no more per trial-epoch than chunks of 4)
    chunk: int | None = 1
    #: float32 where a test shows the float64 test errors to 3 digits (FLA, SA, TF)
    dtype: dict = field(default_factory=lambda: {"fla": "float32", "sa": "float32",
                                                 "tf": "float32"})  # fmt: skip
    lr: float | None = None
    optimizer: str = "adam"
    models: tuple[str, ...] = ("sla", "fla", "sa", "tf", "mhla")
    test_tasks: int = 2000
    damping: float = 0.9
    _constraints: ClassVar = {
        **{k: _int() for k in ("D", "N", "P", "H", "M", "epochs", "test_tasks", "train_window")},
        "train_tol": _opt_pos,
        "chunk": _opt_int,
        "dtype": _dtypes,
        "trials": _int(),
        "lam": _pos,
        "train_lam": _nonneg,
        "beta": _pos,
        "lr": _opt_pos,
        "optimizer": _choice(*_OPTIMIZERS),
        "models": _seq(_choice(*_MODELS)),
        "damping": _unit,
    }


@dataclass(frozen=True)
class DoubleDescentPreset(FigurePreset):
    """Double descent in task diversity (not in the paper): tau = P / D^2 from
    ``tau_range`` (log-spaced, ``taus`` points) for each alpha = N / D."""

    D: int = 20
    alphas: tuple[float, ...] = (1.0, 2.0, 4.0)
    tau_range: tuple[float, float] = (0.1, 10.0)
    taus: int = 17
    lam: float = 1e-3
    repeats: int = 10
    solvers: tuple[str, ...] = ("exact", "amp", "amp-paper")
    _constraints: ClassVar = {
        "D": _int(),
        "alphas": _seq(_pos),
        "tau_range": _range,
        "taus": _int(2),
        "lam": _pos,
        "repeats": _int(),
        "solvers": _seq(_choice(*_SOLVERS)),
    }


_PAPER: dict[str, FigurePreset] = {
    "fig1": Fig1Preset(),
    "fig2": Fig2Preset(),
    "fig3": Fig3Preset(),
    "hessian": HessianPreset(),
    "fig4a": Fig4aPreset(),
    "amp-stability": AmpStabilityPreset(),
    "fig4b": Fig4bPreset(),
    "fig5": Fig5Preset(),
    "fig6": Fig6Preset(),
    "double-descent": DoubleDescentPreset(),
}

_r = dataclasses.replace
_QUICK: dict[str, FigurePreset] = {
    "fig1": _r(_PAPER["fig1"], instances=40, law_samples=400_000, max_entries=400_000, bins=80),
    "fig2": _r(_PAPER["fig2"], P_list=(10, 100, 1000), epochs=300, lr=1e-2, test_tasks=1000),
    "fig3": _r(_PAPER["fig3"], points=1000, tsne_iter=500),
    "hessian": _r(_PAPER["hessian"], instances=3),
    # the printed caption's lam = 10, at D = 10
    "fig4a": _r(
        _PAPER["fig4a"],
        D=10,
        lam=10.0,
        P_range=(5, 250),
        N_range=(2, 50),
        grid=10,
        grid_kind="log",
        predict_every=1,
        repeats=3,
        max_iter=1000,
        test_tasks=200,
    ),  # fmt: skip
    "amp-stability": _r(
        _PAPER["amp-stability"], D=10, N=10, P_range=(5, 1000), points=12, repeats=4, max_iter=1000
    ),
    "fig4b": _r(
        _PAPER["fig4b"],
        D=10,
        P=2000,
        N_list=(5, 10, 20, 40, 80),
        trials=5,
        test_tasks=1000,
        epochs=300,
        lr=1e-2,
        sampler="prompts",
        chunk=None,
    ),  # fmt: skip
    "fig5": _r(_PAPER["fig5"], D=10, instances=100, dN_list=(1, 5, 20, 50), bins=60, chunk=20),
    "fig6": _r(
        _PAPER["fig6"],
        chunk=None,
        D=10,
        N=40,
        P=2000,
        train_lam=0.01,
        H=16,
        M=4,
        trials=3,
        epochs=200,
        lr=1e-2,
        train_tol=None,
        train_window=1,
        dtype={},
        test_tasks=1000,
    ),  # fmt: skip
    "double-descent": _r(
        _PAPER["double-descent"],
        D=10,
        alphas=(1.0, 2.0),
        taus=13,
        repeats=3,
        solvers=("exact", "amp"),
    ),  # fmt: skip
}
_TINY: dict[str, FigurePreset] = {
    "fig1": _r(
        _PAPER["fig1"],
        D=3,
        N=20,
        P=200,
        instances=5,
        law_samples=50_000,
        max_entries=50_000,
        bins=40,
    ),  # fmt: skip
    "fig2": _r(
        _PAPER["fig2"], D=4, N=20, P_list=(5, 500), epochs=150, lr=2e-2, test_tasks=500, amp_P=500
    ),  # fmt: skip
    "fig3": _r(
        _PAPER["fig3"], D=4, N=20, P_list=(500, 5), points=150, perplexity=15.0, tsne_iter=250
    ),  # fmt: skip
    "hessian": _r(_PAPER["hessian"], D=4, N=20, P_list=(10, 500), instances=2),
    "fig4a": _r(
        _PAPER["fig4a"],
        D=4,
        P_range=(2, 200),
        N_range=(2, 40),
        grid=4,
        grid_kind="log",
        predict_every=1,
        repeats=2,
        max_iter=600,
        test_tasks=200,
    ),  # fmt: skip
    "amp-stability": _r(
        _PAPER["amp-stability"],
        D=4,
        N=4,
        lam_list=(0.3, 3.0),
        P_range=(4, 200),
        points=5,
        repeats=2,
        max_iter=600,
    ),
    "fig4b": _r(
        _PAPER["fig4b"],
        D=4,
        P=300,
        N_list=(4, 12, 36),
        trials=3,
        test_tasks=1000,
        epochs=100,
        lr=5e-2,
        train_tol=None,
        train_window=1,
        sampler="prompts",
        chunk=2,
    ),  # fmt: skip
    "fig5": _r(
        _PAPER["fig5"], D=5, N=10, P=300, instances=30, dN_list=(10, 40), bins=40, chunk=30
    ),  # fmt: skip
    "fig6": _r(
        _PAPER["fig6"],
        D=4,
        N=16,
        P=300,
        train_lam=0.01,
        H=8,
        M=2,
        trials=2,
        epochs=60,
        lr=2e-2,
        train_tol=None,
        train_window=1,
        chunk=1,
        dtype={},
        test_tasks=300,
    ),  # fmt: skip
    "double-descent": _r(
        _PAPER["double-descent"],
        D=5,
        alphas=(2.0,),
        tau_range=(0.2, 5.0),
        taus=7,
        repeats=2,
        solvers=("exact",),
    ),  # fmt: skip
}
del _r

_ALL = {"tiny": _TINY, "quick": _QUICK, "paper": _PAPER}


def get_preset(name: str, figure: str) -> FigurePreset:
    """The (frozen) parameters of ``figure`` under preset ``name``."""
    check_choice("preset", name, PRESETS)
    table = _ALL[name]
    if figure not in table:
        raise ParameterError(f"figure must be one of {', '.join(table)}; got {figure!r}")
    return table[figure]

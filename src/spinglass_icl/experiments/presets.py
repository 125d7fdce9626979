"""Parameter presets of ``spinglass-icl reproduce``: one frozen dataclass per figure.

Each figure's class holds the paper's parameters as its defaults (docs/experiments.md#presets;
from the captions and, where they are silent, the authors' released data); ``quick``
(every figure on a 2-core CPU in about a minute: smaller D, P, trials; same physics) and
``tiny`` (seconds per figure, for the tests) are :func:`dataclasses.replace` of them.
Every class checks its own fields once, on construction, from its
``_parameter_constraints`` table (:func:`spinglass_icl.errors.validate_fields`, as
scikit-learn's); a figure's seeds are derived from the ``--seed`` given on the command
line (:func:`spinglass_icl.experiments.common.figure_seed`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import (
    Choice,
    Constraint,
    Either,
    Flag,
    Int,
    Interval,
    OrNone,
    ParameterError,
    Real,
    Seq,
    Table,
    check_choice,
    validate_fields,
)
from ..solvers import PAPER_SETTINGS
from ..solvers.registry import SolverName

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
    "FigS1Preset",
    "FigS8Preset",
    "FigS7Preset",
    "FigS5Preset",
    "FigS2Preset",
    "FigS6Preset",
    "FigS3Preset",
    "FigS4Preset",
    "get_preset",
]

PRESETS: tuple[str, ...] = ("tiny", "quick", "paper")

# --- field constraints (:mod:`spinglass_icl.errors`), by their short names here ---------

_int = Int
_pos = Real(low=0.0, low_open=True)
_nonneg = Real(low=0.0)
_unit = Real(low=0.0, high=1.0, high_open=True)
#: a damping in [0, 1), or ``auto`` (the smallest predicted to converge, per batch)
_damping = Either(_unit, "auto")
_opt_pos = OrNone(_pos)
_opt_int = OrNone(Int(1))
_flag = Flag()
_seq = Seq
_range = Interval()


def _choice(*choices: str) -> Choice:
    return Choice(choices)


def _solver(need: str | None = None) -> SolverName:
    """A registered solver (with the capability ``need``, if given)."""
    return SolverName(need)


_OPTIMIZERS = ("adam", "sgd")


def _model_names() -> tuple[str, ...]:
    """The registered models (:func:`spinglass_icl.models.model_names`)."""
    from ..models import model_names

    return model_names()


_model = Choice(_model_names)
#: a model -> dtype table (``float64`` or ``float32``)
_dtypes = Table(_model, Choice(("float64", "float32")), "model -> dtype", key_name="model")

_SAMPLERS = ("prompts", "factors")


@dataclass(frozen=True)
class FigurePreset:
    """Base of the per-figure presets: validates and normalizes every field once."""

    _parameter_constraints: ClassVar[dict[str, Constraint]] = {}
    _cross_checks: ClassVar[tuple] = ("_check_together",)

    def __post_init__(self) -> None:
        validate_fields(self)

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
    _parameter_constraints: ClassVar = {k: _int() for k in ("D", "N", "P", "instances", "bins")} | {
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
    damping: float = PAPER_SETTINGS.damping  # the authors' AMP settings
    _parameter_constraints: ClassVar = {
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
    _parameter_constraints: ClassVar = {
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
    _parameter_constraints: ClassVar = {
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
    damping: float = PAPER_SETTINGS.damping  # the authors' AMP settings
    tol: float = PAPER_SETTINGS.tol
    max_iter: int = PAPER_SETTINGS.max_iter
    authors_cap: int = 100
    authors_tol: float = 1e-3
    predict_every: int = 5
    amp_solver: str = "amp-paper"
    test_tasks: int = 500
    _parameter_constraints: ClassVar = {
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
        "amp_solver": _solver("uses_damping"),
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
    damping: float = PAPER_SETTINGS.damping  # the authors' AMP settings
    tol: float = PAPER_SETTINGS.tol
    max_iter: int = PAPER_SETTINGS.max_iter
    _parameter_constraints: ClassVar = {
        **{k: _int() for k in ("D", "N", "repeats", "max_iter")},
        "points": _int(2),
        "beta": _pos,
        "lam_list": _seq(_pos),
        "P_range": _range,
        "solver": _solver("stability"),
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
    damping: float = PAPER_SETTINGS.damping  # the authors' AMP settings
    tol: float = PAPER_SETTINGS.tol
    max_iter: int = PAPER_SETTINGS.max_iter
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
    _parameter_constraints: ClassVar = {
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
    _parameter_constraints: ClassVar = {
        **{k: _int() for k in ("D", "N", "P", "instances", "chunk")},
        "bins": _int(8),
        "lam": _pos,
        "dN_list": _seq(_int()),
    }


@dataclass(frozen=True)
class TrainedModelsPreset(FigurePreset):
    """What Fig. 6 and Fig. S8 share: the task (D, P), AMP's lam, beta and damping, and
    how every model is trained (``train_lam``, H, M, ``trials``, epochs, stopping rule,
    chunks, dtypes, optimizer, restarts). Fig. 6 adds one N and its models, Fig. S8 an N
    grid per model."""

    D: int = 20
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
    #: trials per stored chunk, trained as one batch; a trial stops at its own epoch and the
    #: chunk then steps only the trials still training; 4 per chunk cost 15-25 % less per
    #: trial-epoch than 1 for SA and MHLA, no less for TF (D = 20; benchmarks/RESULTS.md,
    #: "## train")
    chunk: int | None = 4
    #: float32 where a test shows the float64 test errors to 3 digits (FLA, SA, TF)
    dtype: dict = field(default_factory=lambda: {"fla": "float32", "sa": "float32",
                                                 "tf": "float32"})  # fmt: skip
    lr: float | None = None
    optimizer: str = "adam"
    test_tasks: int = 2000
    damping: float = PAPER_SETTINGS.damping  # the authors' AMP settings
    #: initializations per trial (``reproduce --restarts``); the lowest training loss is kept
    restarts: int = 1
    _parameter_constraints: ClassVar = {
        **{k: _int() for k in ("D", "P", "H", "M", "trials", "epochs", "test_tasks")},
        **{k: _int() for k in ("train_window", "restarts")},
        "train_tol": _opt_pos,
        "chunk": _opt_int,
        "dtype": _dtypes,
        "lam": _pos,
        "train_lam": _nonneg,
        "beta": _pos,
        "lr": _opt_pos,
        "optimizer": _choice(*_OPTIMIZERS),
        "damping": _unit,
    }


@dataclass(frozen=True)
class Fig6Preset(TrainedModelsPreset):
    """Fig. 6: lam = 0.01, P = 10 000, D = 20, beta = 100, H = 32, M = 10, 100 trials.

    ``train_lam``: the paper's lam = 0.01 read as the authors' Adam ``weight_decay``,
    which is lam = wd / 2 = 0.005 in eq. 2; at lam = 0.01 SA and TF stay at the trivial
    predictor (the figure's notes).
    """

    N: int = 50
    models: tuple[str, ...] = ("sla", "fla", "sa", "tf", "mhla")
    #: trials per model run on a CPU in place of ``trials`` (the first ones, same data), so
    #: that the main figures fit 2 hours on 2 cores: on the 2-core VM TF costs about 39 s
    #: per trial, MHLA 13 s, SA 10 s, SLA and FLA 1-3 s (benchmarks/RESULTS.md); CUDA or
    #: ``--trials`` runs ``trials`` for every model
    #: (:func:`~spinglass_icl.experiments.supp.cpu_count_applies`)
    cpu_model_trials: dict = field(default_factory=lambda: {"sa": 50, "tf": 50, "mhla": 50})
    _parameter_constraints: ClassVar = {
        **TrainedModelsPreset._parameter_constraints,
        "N": _int(),
        "models": _seq(_model),
        "cpu_model_trials": Table(_model, Int(1), "model -> trials", key_name="model"),
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
    _parameter_constraints: ClassVar = {
        "D": _int(),
        "alphas": _seq(_pos),
        "tau_range": _range,
        "taus": _int(2),
        "lam": _pos,
        "repeats": _int(),
        "solvers": _seq(_solver()),
    }


#: the authors' Fig. S1 alphas = P / D^2
_S1_ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2,
              1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0)  # fmt: skip


@dataclass(frozen=True)
class FigS1Preset(FigurePreset):
    """Fig. S1: the SLA with separate W_Q, W_K against the merged W (eq. 40), test MSE vs
    alpha = P / D^2 (Adam lr 0.01, 3000 epochs, lam = 0, 1000 test prompts; the authors'
    data-a script), and learning curves at P = 120 (lr 0.008) and 680 (lr 0.02), 200
    epochs (their data-bc script). ``repeats``: the authors' 50; ``cpu_repeats``: the
    count run on a CPU in its place (the 2-hour budget of the supplementary figures;
    :func:`~spinglass_icl.experiments.supp.budget_count`)."""

    D: int = 20
    N: int = 100
    alphas: tuple[float, ...] = _S1_ALPHAS
    repeats: int = 50
    cpu_repeats: int | None = 10
    epochs: int = 3000
    lr: float = 0.01
    lam: float = 0.0
    test_tasks: int = 1000
    models: tuple[str, ...] = ("sla", "sla-separate")
    curve_P: tuple[int, ...] = (120, 680)
    curve_lr: tuple[float, ...] = (0.008, 0.02)
    curve_epochs: int = 200
    curve_trials: int = 1
    _parameter_constraints: ClassVar = {
        **{
            k: _int()
            for k in ("D", "N", "repeats", "epochs", "test_tasks", "curve_epochs", "curve_trials")
        },  # fmt: skip
        "cpu_repeats": _opt_int,
        "alphas": _seq(_pos, minimum=2),
        "lr": _pos,
        "lam": _nonneg,
        "models": _seq(_model, length=2),
        "curve_P": _seq(_int()),
        "curve_lr": _seq(_pos),
    }

    def _check_together(self) -> None:
        if len(self.curve_lr) != len(self.curve_P):
            raise ParameterError(
                f"curve_lr must hold one rate per curve_P ({len(self.curve_P)}), "
                f"got {len(self.curve_lr)}"
            )


@dataclass(frozen=True)
class FigS8Preset(TrainedModelsPreset):
    """Fig. S8: every model against N at D = 20, P = 10 000 (AMP at lam = 0.01 on the SLA
    trials' data; training as Fig. 6: lam = 0.005, Adam, stop 1e-7 over 50 epochs, cap
    2000, H = 32, M = 10); each model on its own N grid, as the authors'; ``trials`` per
    point (10 at the paper preset); ``cpu_trials``: the count run on a CPU in its place
    (the 2-hour budget of the supplementary figures;
    :func:`~spinglass_icl.experiments.supp.budget_count`)."""

    trials: int = 10
    cpu_trials: int | None = 4
    #: N grid per model (AMP runs on the SLA's)
    N_sla: tuple[int, ...] = tuple(range(10, 201, 10))
    N_fla: tuple[int, ...] = tuple(range(30, 191, 20))
    N_mhla: tuple[int, ...] = tuple(range(20, 201, 20))
    N_sa: tuple[int, ...] = tuple(range(40, 201, 20))
    N_tf: tuple[int, ...] = tuple(range(50, 191, 20))
    _parameter_constraints: ClassVar = {
        **TrainedModelsPreset._parameter_constraints,
        "cpu_trials": _opt_int,
        **{f"N_{m}": _seq(_int(), minimum=0) for m in ("sla", "fla", "mhla", "sa", "tf")},
    }

    def _check_together(self) -> None:
        if not self.N_sla:
            raise ParameterError("N_sla must hold at least 1 value (AMP and SLA), got none")


@dataclass(frozen=True)
class FigS7Preset(FigurePreset):
    """Supplement Fig. S7 (the authors' script): Hessian spectra at D = 20, N = 100,
    P = 100, 500, 1500 over 2000 repeats; the zero-eigenvalue fraction on D = 10..40
    (step 5) by P = 25..2000 (80 values), N = 100, 10 repeats; ``chunk`` spectra repeats
    per stored chunk; ``cpu_spectra_repeats``, ``cpu_repeats``: the counts run on a CPU in
    place of the authors' 2000 and 10 (the 2-hour budget)."""

    D: int = 20
    N: int = 100
    spectra_P: tuple[int, ...] = (100, 500, 1500)
    spectra_repeats: int = 2000
    cpu_spectra_repeats: int | None = 500
    map_D: tuple[int, ...] = (10, 15, 20, 25, 30, 35, 40)
    map_P: tuple[int, ...] = tuple(range(25, 2001, 25))
    map_N: int = 100
    repeats: int = 10
    cpu_repeats: int | None = 4
    chunk: int = 100
    zero_rtol: float = 1e-9
    _parameter_constraints: ClassVar = {
        "cpu_spectra_repeats": _opt_int,
        "cpu_repeats": _opt_int,
        **{k: _int() for k in ("D", "N", "spectra_repeats", "map_N", "repeats", "chunk")},
        "spectra_P": _seq(_int()),
        "map_D": _seq(_int()),
        "map_P": _seq(_int()),
        "zero_rtol": _pos,
    }


@dataclass(frozen=True)
class FigS5Preset(FigurePreset):
    """Supplement Fig. S5 (the authors' script): the spectrum of X X^T / N at D = 100 for
    N = 100 ... 10 000, 10 000 matrices per N (the script's P), ``chunk`` matrices per
    stored chunk; ``sampler``: ``bartlett`` (Wishart by Bartlett's decomposition, the
    same law, needs N >= D) or ``tokens`` (the D x N tokens themselves)."""

    D: int = 100
    N_list: tuple[int, ...] = (100, 500, 1000, 2000, 5000, 10000)
    repeats: int = 10000
    chunk: int = 1000
    sampler: str = "bartlett"
    _parameter_constraints: ClassVar = {
        **{k: _int() for k in ("D", "repeats", "chunk")},
        "N_list": _seq(_int()),
        "sampler": _choice("bartlett", "tokens"),
    }

    def _check_together(self) -> None:
        if min(self.N_list) < self.D:
            raise ParameterError(
                f"N_list must hold context lengths >= D = {self.D} (Marchenko-Pastur ratio "
                f"D/N <= 1), got {min(self.N_list)}"
            )


@dataclass(frozen=True)
class FigS2Preset(FigurePreset):
    """Supplement Fig. S2 (the authors' script): block laws at N = 20, 21, 40, ..., 200
    against base N = 20; D = 20, P = 1000, 1000 repeats (instances); ``chunk`` instances
    per stored chunk, at most ``per_instance`` entries per block and instance; ``sampler``
    ``factors`` draws each prompt's rank-one factors from their exact law (a cost
    independent of N), ``prompts`` the whole prompts; ``cpu_repeats``: the count run on a
    CPU in place of the authors' 1000 (the 2-hour budget)."""

    D: int = 20
    P: int = 1000
    lam: float = 0.01
    base_N: int = 20
    N_list: tuple[int, ...] = (20, 21, 40, 60, 80, 100, 120, 140, 160, 180, 200)
    repeats: int = 1000
    cpu_repeats: int | None = 400
    chunk: int = 50
    bins: int = 100
    per_instance: int = 4000
    sampler: str = "factors"
    _parameter_constraints: ClassVar = {
        "cpu_repeats": _opt_int,
        **{k: _int() for k in ("D", "P", "base_N", "repeats", "chunk", "per_instance")},
        "bins": _int(8),
        "lam": _pos,
        "N_list": _seq(_int(), minimum=2),
        "sampler": _choice(*_SAMPLERS),
    }


@dataclass(frozen=True)
class FigS6Preset(FigurePreset):
    """Supplement Fig. S6 (the authors' script): eq. 39 fitted by full-batch Adam
    (lr 1e-2, 1000 epochs) at P = 10, D = 10, N = 50, 5000 repeats; P = 1 beside it (ours);
    ``chunk`` repeats trained together per stored chunk."""

    D: int = 10
    N: int = 50
    P_list: tuple[int, ...] = (10, 1)
    epochs: int = 1000
    lr: float = 1e-2
    repeats: int = 5000
    chunk: int = 500
    _parameter_constraints: ClassVar = {
        **{k: _int() for k in ("D", "N", "epochs", "repeats", "chunk")},
        "P_list": _seq(_int()),
        "lr": _pos,
    }


@dataclass(frozen=True)
class FigS3Preset(FigurePreset):
    """Supplement Fig. S3 (the authors' script): AMP on synthetic couplings drawn from
    the fitted block laws at D = 10, lam = 1, beta = 100, damping 0.9, to ``tol`` (the
    script's 100 ``steps``: the residual there is recorded); ``laws``: ``script`` (the
    script's unnormalized densities, as sampled) and ``normalized``; ``repeats``
    synthetic instances per law (the script: one); beside them the exact mean of one real
    instance at ``reference_N``, ``reference_P`` (Fig. 2's AMP setting)."""

    D: int = 10
    lam: float = 1.0
    beta: float = 100.0
    damping: float = 0.9
    steps: int = 100
    tol: float = 1e-6
    max_iter: int = 2000
    solver: str = "amp-paper"
    laws: tuple[str, ...] = ("script", "normalized")
    repeats: int = 20
    reference_N: int = 100
    reference_P: int = 5000
    _parameter_constraints: ClassVar = {
        **{
            k: _int() for k in ("D", "steps", "max_iter", "repeats", "reference_N", "reference_P")
        },  # fmt: skip
        "lam": _pos,
        "beta": _pos,
        "damping": _unit,
        "tol": _pos,
        "solver": _choice("amp", "amp-paper"),
        "laws": _seq(_choice("script", "normalized")),
    }


@dataclass(frozen=True)
class FigS4Preset(FigurePreset):
    """Supplement Fig. S4 (the authors' script): correlated tokens, c = 0.05, 0.10, ...,
    0.95, D = 20, N = 200, P = 10 000, 1000 test prompts, 20 repeats; SGD: Adam lr 1e-3,
    weight decay 0.01, 5000 epochs; AMP: beta 100, damping 0.9, 200 steps at lam = the
    weight decay (converged: residual below ``amp_tol``); ``chunk`` repeats per stored
    chunk; ``cpu_repeats``: the count run on a CPU in place of the authors' 20 (the
    2-hour budget; :func:`~spinglass_icl.experiments.supp.budget_count`)."""

    D: int = 20
    N: int = 200
    P: int = 10000
    test_prompts: int = 1000
    c_list: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
    repeats: int = 20
    cpu_repeats: int | None = 4
    chunk: int = 1
    weight_decay: float = 0.01
    lr: float = 1e-3
    epochs: int = 5000
    beta: float = 100.0
    damping: float = 0.9
    steps: int = 200
    amp_tol: float = 5e-6
    _parameter_constraints: ClassVar = {
        "cpu_repeats": _opt_int,
        **{
            k: _int()
            for k in ("D", "N", "P", "test_prompts", "repeats", "chunk", "epochs", "steps")
        },  # fmt: skip
        "c_list": _seq(_unit),
        "weight_decay": _pos,
        "lr": _pos,
        "beta": _pos,
        "damping": _unit,
        "amp_tol": _pos,
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
    "figS1": FigS1Preset(),
    "figS8": FigS8Preset(),
    "figS7": FigS7Preset(),
    "figS5": FigS5Preset(),
    "figS2": FigS2Preset(),
    "figS6": FigS6Preset(),
    "figS3": FigS3Preset(),
    "figS4": FigS4Preset(),
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
    "figS1": _r(
        _PAPER["figS1"],
        D=8,
        N=100,
        alphas=(0.25, 0.5, 0.75, 1.0, 1.125, 1.25, 1.5, 2.0),
        repeats=3,
        epochs=1500,
        test_tasks=500,
        curve_P=(20, 110),
        curve_epochs=200,
    ),  # fmt: skip
    "figS8": _r(
        _PAPER["figS8"],
        D=10,
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
        chunk=None,
        N_sla=(10, 20, 40, 80),
        N_fla=(20, 40),
        N_mhla=(20, 40),
        N_sa=(20, 40),
        N_tf=(20, 40),
    ),  # fmt: skip
    "figS7": _r(
        _PAPER["figS7"],
        spectra_repeats=50,
        map_D=(5, 10, 15),
        map_P=tuple(range(10, 301, 10)),
        repeats=3,
        chunk=50,
    ),  # fmt: skip
    "figS5": _r(_PAPER["figS5"], repeats=400, chunk=200),
    "figS2": _r(
        _PAPER["figS2"], D=10, P=500, N_list=(20, 21, 40, 80, 120, 200), repeats=60, chunk=20
    ),  # fmt: skip
    "figS6": _r(_PAPER["figS6"], repeats=200, chunk=100),
    "figS3": _r(_PAPER["figS3"], repeats=10),
    "figS4": _r(
        _PAPER["figS4"],
        D=10,
        N=50,
        P=1000,
        test_prompts=500,
        c_list=(0.05, 0.25, 0.5, 0.75, 0.95),
        repeats=3,
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
    "figS1": _r(
        _PAPER["figS1"],
        D=3,
        N=12,
        alphas=(0.5, 1.0, 1.33, 2.5),
        repeats=2,
        epochs=400,
        lr=0.02,
        test_tasks=300,
        curve_P=(6, 20),
        curve_epochs=60,
    ),  # fmt: skip
    "figS8": _r(
        _PAPER["figS8"],
        D=4,
        P=300,
        train_lam=0.01,
        H=8,
        M=2,
        trials=2,
        epochs=40,
        lr=2e-2,
        train_tol=None,
        train_window=1,
        dtype={},
        test_tasks=300,
        chunk=1,
        N_sla=(8, 16),
        N_fla=(16,),
        N_mhla=(16,),
        N_sa=(16,),
        N_tf=(16,),
    ),  # fmt: skip
    "figS7": _r(
        _PAPER["figS7"],
        D=4,
        N=10,
        spectra_P=(8, 40),
        spectra_repeats=6,
        map_D=(2, 4),
        map_P=(2, 6, 12, 20, 30),
        map_N=10,
        repeats=2,
        chunk=3,
    ),  # fmt: skip
    "figS5": _r(_PAPER["figS5"], D=20, N_list=(20, 100, 400), repeats=40, chunk=20),
    "figS2": _r(
        _PAPER["figS2"],
        D=5,
        P=200,
        base_N=10,
        N_list=(10, 11, 40, 80),
        repeats=20,
        chunk=10,
        bins=40,
    ),  # fmt: skip
    "figS6": _r(_PAPER["figS6"], D=4, N=20, epochs=200, repeats=4, chunk=4),
    "figS3": _r(_PAPER["figS3"], D=4, repeats=3),
    "figS4": _r(
        _PAPER["figS4"],
        D=4,
        N=10,
        P=200,
        test_prompts=200,
        c_list=(0.1, 0.5, 0.9),
        repeats=2,
        chunk=2,
        epochs=2000,
    ),  # fmt: skip
}
del _r

# --- task diversity (a finite task pool; Lu et al. 2024): not the paper's figures ---------


@dataclass(frozen=True)
class TaskDiversityPreset(FigurePreset):
    """``task-diversity``: g_task against kappa = K/D at alpha = N/D = 10, tau = P/D^2 = 10,
    rho = 0.01 (Lu et al. 2024), for each D of ``D_list``: the exact ground state
    (``averages[i]`` pools per kappa at ``D_list[i]``), AMP with the Onsager term at the
    D of ``amp_D`` (``amp_averages``), dMMSE and ridge (``n_test`` test prompts), a trained SLA at
    ``sla_kappa`` (D = ``sla_D``, ``sla_trials`` trials, ``sla_epochs`` full-batch Adam
    epochs at ``sla_lr``), and the theory. ``lam_prime`` is Lu et al.'s ridge (the
    package's lam is mapped per convention); pools of tasks of norm sqrt(D), each used
    P/K times."""

    D_list: tuple[int, ...] = (10, 32, 64)
    alpha: float = 10.0
    tau: float = 10.0
    rho: float = 0.01
    lam_prime: float = 1e-4
    kappa_list: tuple[float, ...] = (0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0, 4.0, 8.0, 16.0, 32.0)
    averages: tuple[int, ...] = (20, 20, 10)
    n_test: int = 500
    amp_D: tuple[int, ...] = (10,)
    amp_averages: int = 4
    sla_D: int = 10
    sla_kappa: tuple[float, ...] = (0.5, 1.0, 2.0, 8.0)
    sla_trials: int = 2
    sla_epochs: int = 3000
    sla_lr: float = 0.05
    _parameter_constraints: ClassVar = {
        **{k: _int() for k in ("n_test", "amp_averages", "sla_D", "sla_trials")},
        "averages": _seq(_int()),
        "sla_epochs": _int(),
        **{k: _pos for k in ("alpha", "tau", "lam_prime", "sla_lr")},
        "rho": _nonneg,
        "D_list": _seq(_int(2)),
        "amp_D": _seq(_int(2), minimum=0),
        "kappa_list": _seq(_pos, minimum=3),
        "sla_kappa": _seq(_pos, minimum=0),
    }

    def _check_together(self) -> None:
        if len(self.averages) != len(self.D_list):
            raise ParameterError(
                f"averages must hold one count per D of D_list ({len(self.D_list)}), "
                f"got {len(self.averages)}"
            )


@dataclass(frozen=True)
class ContextLengthPreset(FigurePreset):
    """``context-length``: e_ICL and e_IDG against alpha = N/D for the pool ratios of
    ``kappa_list`` (0: no pool, kappa = inf) in the settings ``(tau, rho)`` of Lu et al.'s
    Fig. 2 (``settings``); the theory on ``theory_points`` values of alpha in
    ``alpha_range``, the exact ground state at D = ``D`` for each alpha of ``alpha_list``
    (``averages`` pools each); ``lam_prime`` as in :class:`TaskDiversityPreset`."""

    D: int = 32
    settings: tuple[tuple[float, float], ...] = ((0.5, 0.5), (0.5, 0.1), (20.0, 0.1))
    kappa_list: tuple[float, ...] = (0.5, 1.0, 2.0, 0.0)
    alpha_list: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
    alpha_range: tuple[float, float] = (0.1, 20.0)
    theory_points: int = 80
    lam_prime: float = 1e-4
    averages: int = 10
    _parameter_constraints: ClassVar = {
        **{k: _int() for k in ("D", "averages")},
        "theory_points": _int(8),
        "lam_prime": _pos,
        "settings": _seq(_seq(_nonneg, length=2)),
        "kappa_list": _seq(_nonneg),
        "alpha_list": _seq(_pos, minimum=3),
        "alpha_range": _range,
    }


@dataclass(frozen=True)
class SpinGlassPoolPreset(FigurePreset):
    """``spin-glass-pool``: the ground state's contrast and the block laws of the fields
    and couplings (Fig. 1's blocks A-E, eq. 5) at fixed (D, N, P) = (20, 50, 1000) as the
    pool grows through ``K_list`` (0: no pool, the paper's setting), ``instances``
    instances per K (pools of Gaussian tasks drawn uniformly; ``lam`` the paper's ridge);
    block laws compared with the no-pool one by their KL divergence (``bins`` bins, at
    most ``per_instance`` entries per block and instance; a second no-pool sample gives
    the noise floor)."""

    D: int = 20
    N: int = 50
    P: int = 1000
    lam: float = 0.01
    K_list: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 0)
    instances: int = 100
    bins: int = 60
    per_instance: int = 4000
    _parameter_constraints: ClassVar = {
        **{k: _int() for k in ("D", "N", "P", "instances", "per_instance")},
        "bins": _int(8),
        "lam": _pos,
        "K_list": _seq(_int(0), minimum=3),
    }


_d = dataclasses.replace
_PAPER.update(
    {
        "task-diversity": TaskDiversityPreset(),
        "context-length": ContextLengthPreset(),
        "spin-glass-pool": SpinGlassPoolPreset(),
    }
)
_QUICK.update(
    {
        "task-diversity": _d(
            _PAPER["task-diversity"],
            D_list=(6, 10, 16),
            averages=(4, 4, 4),
            n_test=200,
            kappa_list=(0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 32.0),
            amp_D=(6,),
            amp_averages=2,
            sla_D=6,
            sla_kappa=(0.5, 2.0, 8.0),
            sla_epochs=1500,
        ),  # fmt: skip
        "context-length": _d(
            _PAPER["context-length"],
            D=10,
            averages=3,
            kappa_list=(0.5, 2.0, 0.0),
            alpha_list=(0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
            theory_points=50,
        ),  # fmt: skip
        "spin-glass-pool": _d(
            _PAPER["spin-glass-pool"],
            D=8,
            N=20,
            P=300,
            K_list=(1, 3, 10, 30, 100, 300, 0),
            instances=20,
            bins=40,
        ),  # fmt: skip
    }
)
_TINY.update(
    {
        "task-diversity": _d(
            _PAPER["task-diversity"],
            D_list=(4, 8),
            averages=(2, 2),
            n_test=100,
            kappa_list=(0.25, 1.0, 4.0, 16.0),
            amp_D=(4,),
            amp_averages=1,
            sla_D=4,
            sla_kappa=(1.0, 4.0),
            sla_trials=1,
            sla_epochs=300,
        ),  # fmt: skip
        "context-length": _d(
            _PAPER["context-length"],
            D=6,
            averages=2,
            settings=((0.5, 0.5), (20.0, 0.1)),
            kappa_list=(0.5, 0.0),
            alpha_list=(0.5, 2.0, 4.0, 16.0),
            theory_points=20,
        ),  # fmt: skip
        "spin-glass-pool": _d(
            _PAPER["spin-glass-pool"],
            D=4,
            N=10,
            P=60,
            K_list=(1, 4, 15, 60, 0),
            instances=6,
            bins=20,
        ),  # fmt: skip
    }
)
del _d

_ALL = {"tiny": _TINY, "quick": _QUICK, "paper": _PAPER}


def add_presets(figure: str, presets: dict[str, FigurePreset]) -> None:
    """Add the presets of a figure registered from outside the package, one per name of
    :data:`PRESETS` (:func:`spinglass_icl.experiments.figure.register_figure`)."""
    missing = [k for k in PRESETS if k not in presets]
    if missing or set(presets) - set(PRESETS):
        raise ParameterError(
            f"presets must have exactly the keys {', '.join(PRESETS)}, got {sorted(presets)}"
        )
    for k, p in presets.items():
        if not isinstance(p, FigurePreset):
            raise ParameterError(
                f"presets[{k!r}] must be a FigurePreset (a frozen dataclass), "
                f"got {type(p).__name__}"
            )
    for k, p in presets.items():
        _ALL[k][figure] = p


def get_preset(name: str, figure: str) -> FigurePreset:
    """The (frozen) parameters of ``figure`` under preset ``name``."""
    check_choice("preset", name, PRESETS)
    table = _ALL[name]
    if figure not in table:
        raise ParameterError(f"figure must be one of {', '.join(table)}; got {figure!r}")
    return table[figure]


def trial_key(name: str, params: FigurePreset) -> str | None:
    """The parameter holding figure ``name``'s trial count: ``trials`` (trained trials) or
    ``repeats`` (solver repeats), None when it has neither."""
    for key in ("trials", "repeats"):
        if key in params:
            return key
    return None

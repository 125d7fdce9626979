"""Gradient training of the paper's transformers, many independent trials at once.

The loss of every trial is eq. (2) exactly,

    L = 1/(2P) sum_mu (y~^mu - y^mu)^2 + lam/2 ||theta||^2,

where ``theta`` is *every* trainable weight of the model (biases included). Trials are
independent networks stacked along a leading dimension; the objective handed to autograd
is the *sum* of the trials' losses, so each trial's gradient is exactly its own
``dL/dtheta`` whatever the number of trials.

Relation to torch's ``weight_decay`` (the penalty is explicit here, no optimizer decay):

* SGD / Adam with ``weight_decay = wd`` add ``wd * theta`` to the gradient of the data term
  (L2 regularization, not AdamW's decoupled decay). On our data term ``1/(2P) sum (.)^2``
  this is eq. (2) with ``lam = wd``.
* The authors trained with ``MSELoss`` = ``1/P sum (.)^2`` (no 1/2) and Adam's
  ``weight_decay = wd``: their gradient is ``2/P sum (.) d y^ + wd theta
  = 2 [1/(2P) sum (.) d y^ + (wd/2) theta]``, i.e. twice the gradient of eq. (2) with
  ``lam = wd/2``. Adam is invariant to that factor 2 (up to its eps), so their runs are
  ours with ``lam = wd/2``; for SGD the factor 2 also doubles the effective learning rate.

Seeds (one integer makes everything): trial ``k`` (``k = first_trial, ...,
first_trial + trials - 1``) draws its training prompts, initial weights, test prompts and
mini-batch order from four CPU generators seeded with
``numpy.random.SeedSequence([seed, k, stream]).generate_state(1)[0]``, ``stream`` = 0
(data), 1 (init), 2 (test), 3 (shuffle); see :func:`trial_seed`. Trial k of a batched run
therefore equals the run ``replace(config, first_trial=k, trials=1)`` (tested), and a
large run can be split into chunks of trials.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from .conventions import DEFAULT_CONVENTION, get_convention
from .errors import (
    SEED_MAX,
    Check,
    Choice,
    InstanceOf,
    Int,
    OrNone,
    ParameterError,
    Real,
    check_int,
    validate_fields,
)
from .hamiltonian import Instance, gram_rank_one
from .models import Model, ModelConfig, SLAConfig, get_model, model_config, model_names
from .observables import TestError
from .seeds import trial_stream
from .tasks import DEVICE, TaskConfig, make_generator, sample_factors, sample_prompts

__all__ = [
    "OPTIMIZERS",
    "TRAINING_VERSION",
    "TrainConfig",
    "TrainResult",
    "train",
    "trial_seed",
    "trial_prompts",
    "trial_factors",
    "SAMPLERS",
    "sla_quadratic",
]

OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
#: how training and test data are drawn: whole prompts, or (SLA only) their factors
SAMPLERS: tuple[str, ...] = ("prompts", "factors")

#: bumped whenever a change moves trained numbers beyond rounding; part of every key of the
#: resumable trial store (:mod:`spinglass_icl.trials`), so stored trials of older code are
#: never mixed with new ones
TRAINING_VERSION: str = "3"
DTYPES = {"float64": torch.float64, "float32": torch.float32}

STREAM_DATA, STREAM_INIT, STREAM_TEST, STREAM_SHUFFLE = 0, 1, 2, 3
#: the task-pool fields of a TaskConfig (docs/theory.md#task-diversity)
_POOL_NAMES = ("tasks", "pool_seed", "assignment", "task_norm")
#: the test prompts of the in-distribution error (tasks drawn from the training pool)
STREAM_IDG = 4


def trial_seed(seed: int, trial: int, stream: int) -> int:
    """The seed of one random stream of one trial (see the module docstring;
    :func:`spinglass_icl.seeds.trial_stream`)."""
    return trial_stream(seed, trial, stream)


def _shared(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``params`` that model ``name`` also has."""
    own = {f.name for f in dataclasses.fields(get_model(name))}
    return {k: v for k, v in params.items() if k in own}


def _default_task() -> TaskConfig:
    return TaskConfig(D=20, N=20, P=10_000)


def _task_dict(task: TaskConfig) -> dict[str, Any]:
    """The task's public fields as a dict (every dataclass field, or the five of eq. 1)."""
    if dataclasses.is_dataclass(task):
        return {f.name: getattr(task, f.name) for f in dataclasses.fields(task)}
    return {k: getattr(task, k) for k in ("D", "N", "P", "convention", "noise")}


def _check_model(name: str, value: Any) -> ModelConfig:
    """A :class:`ModelConfig` of a registered model, or a registered model's name."""
    if isinstance(value, str):
        value = model_config(value)
    if not isinstance(value, ModelConfig):
        raise ParameterError(
            f"{name} must be a ModelConfig or one of {', '.join(model_names())}, "
            f"got {type(value).__name__}"
        )
    get_model(value.name)  # registered
    return value


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved with the weights): a task, a model and
    how to train it.

    Build it from its parts, ``TrainConfig(task=TaskConfig(D=20, N=20, P=1000),
    model=SAConfig(H=32), lam=0.01)``, or from flat names with :meth:`of`
    (``TrainConfig.of(model="sa", D=20, N=20, P=1000, H=32)``).

    Attributes
    ----------
    task : TaskConfig
        The prompt distribution (D, N, P, convention, noise; eq. 1): P training prompts
        per trial.
    model : ModelConfig
        The model and its own hyperparameters (:mod:`spinglass_icl.models`; any registered
        model, e.g. :func:`spinglass_icl.models.model_config`).
    lam : float
        Ridge lam >= 0 of eq. (2) on all trainable weights.
    trials : int
        Number of independent trials trained together.
    epochs : int
        Maximum number of passes over the training prompts.
    lr : float or None
        Learning rate (> 0); None takes the model's default for the optimizer
        (``ModelConfig.learning_rate``).
    optimizer : str
        ``"adam"`` (betas 0.9, 0.999, eps 1e-8, no decoupled decay) or ``"sgd"`` (plain).
    batch_size : int or None
        Prompts per step; None (default) is full batch (one step per epoch).
    seed : int
        Base seed (>= 0); every random stream of every trial derives from it.
    device : str
        ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"``.
    test_tasks : int
        Fresh test prompts per trial for the test error.
    tol : float or None
        Convergence stop: a trial stops when the relative change of its epoch loss over
        the last ``window`` epochs, ``|L_t - L_{t-w}| / |L_{t-w}|``, falls below ``tol``
        (the cap is ``epochs``); the run ends when all stopped. ``L_t`` is eq. (2) before
        epoch t's step (full batch) or the mean of the epoch's mini-batch losses (noisy:
        use a looser ``tol``). A stopped trial is frozen (weights and optimizer state), so
        it equals the same trial trained alone. None: run all epochs.
    window : int
        The ``w`` of the ``tol`` criterion (>= 1; default 1: change over one epoch). A
        window of tens of epochs keeps Adam's slow phases from stopping a trial early.
    eval_every : int or None
        Record train loss and test error every this many epochs (and at epoch 0 and at
        the end); None picks ``max(1, epochs // 100)``.
    first_trial : int
        Index of the first trial (trial k's streams depend on ``(seed, k)`` only).
    dtype : str
        ``"float64"`` (default) or ``"float32"``.
    sampler : str
        ``"prompts"`` (default): every trial's data are whole prompts (eq. 1,
        :func:`spinglass_icl.tasks.sample_prompts`). ``"factors"`` (spin models, SLA):
        the factors ``(u, q, y~)`` drawn from their exact law
        (:func:`spinglass_icl.tasks.sample_factors`; ``3D + N`` numbers per prompt instead
        of about ``N D``): the same distribution, a different draw for the same seed.
    restarts : int
        Initializations trained per trial (>= 1) on the trial's own data; the one with the
        lowest final training loss (eq. 2) is kept (``TrainResult.restart``). Restart 0 is
        the trial's usual initialization, restart r > 0 draws from
        ``SeedSequence([seed, k, 1, r])``, so ``restarts=1`` is the plain run.
    """

    task: TaskConfig = field(default_factory=_default_task)
    model: ModelConfig = field(default_factory=SLAConfig)
    lam: float = 0.01
    trials: int = 1
    epochs: int = 200
    lr: float | None = None
    optimizer: str = "adam"
    batch_size: int | None = None
    seed: int = 0
    device: str = "cpu"
    test_tasks: int = 2000
    tol: float | None = None
    window: int = 1
    eval_every: int | None = None
    first_trial: int = 0
    dtype: str = "float64"
    sampler: str = "prompts"
    restarts: int = 1

    _parameter_constraints: ClassVar[dict] = {
        "task": InstanceOf(TaskConfig),
        "model": Check(
            _check_model,
            "a ModelConfig or one of the registered models",
            [
                ("no-such-model", "'no-such-model'", "one of sla"),
                (3, "int", "a ModelConfig or one of sla"),
            ],
        ),
        "lam": Real(low=0.0),
        **{k: Int(1) for k in ("trials", "epochs", "test_tasks", "restarts", "window")},
        "lr": OrNone(Real(low=0.0, low_open=True)),
        "optimizer": Choice(OPTIMIZERS),
        "batch_size": OrNone(Int(1)),
        "seed": Int(0, SEED_MAX),
        "device": DEVICE,
        "tol": OrNone(Real(low=0.0, low_open=True)),
        "eval_every": OrNone(Int(1)),
        "first_trial": Int(0),
        "dtype": Choice(DTYPES),
        "sampler": Choice(SAMPLERS),
    }
    _cross_checks: ClassVar[tuple] = ("_check_together",)

    def __post_init__(self) -> None:
        validate_fields(self)

    def _check_together(self) -> None:
        """A pool with equal repetition needs K <= P; a batch of at most P prompts; factors
        only for a quadratic model."""
        self.task.check_sizes()
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1, self.task.P)
        if self.sampler == "factors" and not self.model.quadratic:
            raise ParameterError(
                f"sampler='factors' needs model='sla' (the other models see whole prompts), "
                f"got model={self.model.name!r}"
            )

    @classmethod
    def of(
        cls,
        model: str = "sla",
        D: int = 20,
        N: int = 20,
        P: int = 10_000,
        *,
        convention: str = DEFAULT_CONVENTION,
        noise: float = 0.0,
        model_params: dict[str, Any] | None = None,
        **train: Any,
    ) -> TrainConfig:
        """From flat names: the task's (D, N, P, convention, noise), the model's name and
        hyperparameters (``model_params``, e.g. ``{"H": 32}``; refused if the model has no
        such parameter) and the training fields (``lam``, ``trials``, ...)."""
        task = TaskConfig(D=D, N=N, P=P, convention=convention, noise=noise)
        return cls(task=task, model=model_config(model, **(model_params or {})), **train)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; also reads the flat dicts of earlier versions (every
        field at the top level, ``H`` and ``M`` for every model)."""
        d = dict(d)
        if isinstance(d.get("task"), dict) and isinstance(d.get("model"), dict):
            task, mod = TaskConfig(**d.pop("task")), dict(d.pop("model"))
            model = model_config(mod.pop("name"), **mod)
        else:  # the flat layout
            task = TaskConfig(**{k: d.pop(k) for k in ("D", "N", "P", "convention", "noise")})
            name = d.pop("model")
            own = {k: d.pop(k) for k in list(d) if k in ("H", "M", "d_k")}
            model = model_config(name, strict=False, **own)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(task=task, model=model, **{k: v for k, v in d.items() if k in names})

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` by flat name: the task's fields (``D``, ``N``, ``P``,
        ``convention``, ``noise``, and the pool's ``tasks``, ``pool_seed``,
        ``assignment``, ``task_norm``), ``model`` (a name or a :class:`ModelConfig`; a name
        keeps the hyperparameters the new model shares), the model's hyperparameters
        (``H``, ``M``, ...) and the training fields."""
        task_names = ("D", "N", "P", "convention", "noise", *_POOL_NAMES)
        task = {k: changes.pop(k) for k in task_names if k in changes}
        model = changes.pop("model", self.model)
        own = {f.name for f in dataclasses.fields(self)}
        mparams = {k: changes.pop(k) for k in list(changes) if k not in own}
        if isinstance(model, str):
            keep = {k: v for k, v in self.model.params().items() if k not in mparams}
            model = model_config(model, **mparams, **_shared(model, keep))
        elif mparams:
            model = model_config(model.name, **{**model.params(), **mparams})
        if task:
            task = dataclasses.replace(self.task, **task)
        else:
            task = self.task
        return dataclasses.replace(self, task=task, model=model, **changes)

    @property
    def learning_rate(self) -> float:
        """``lr``, or the model's default for the optimizer when ``lr`` is None."""
        return self.lr if self.lr is not None else self.model.learning_rate(self.optimizer)

    @property
    def trial_indices(self) -> range:
        """Global indices of the trials of this run."""
        return range(self.first_trial, self.first_trial + self.trials)

    def build_model(self) -> Model:
        """The model object (sizes only; weights live in ``TrainResult.state``)."""
        t = self.task
        return self.model.build(t.D, t.N, t.convention)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for JSON / checkpoints / store keys); ``lr`` resolved."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["task"] = _task_dict(self.task)
        d["model"] = self.model.to_dict()
        d["lr"] = self.learning_rate
        return d

    def __repr__(self) -> str:
        t = self.task
        return (
            f"TrainConfig(model={self.model!r}, D={t.D}, N={t.N}, P={t.P}, lam={self.lam:g}, "
            f"trials={self.trials}, epochs={self.epochs}, optimizer={self.optimizer}, "
            f"lr={self.learning_rate:g}, seed={self.seed})"
        )


def stream_law(task: TaskConfig, stream: int, n: int) -> TaskConfig:
    """The law of ``n`` prompts of a trial's ``stream``: the task's own for the training
    prompts (with its pool, if any: every trial trains on the config's pool); fresh tasks
    for the test prompts (e_ICL); tasks drawn uniformly from the pool for
    :data:`STREAM_IDG` (e_IDG). Without a pool every stream draws fresh tasks."""
    if stream == STREAM_TEST and task.tasks is not None:
        return dataclasses.replace(task, P=n, tasks=None)
    if stream == STREAM_IDG and task.tasks is not None:
        return dataclasses.replace(task, P=n, assignment="uniform")
    return dataclasses.replace(task, P=n)


def trial_prompts(config: TrainConfig, stream: int = STREAM_DATA, n: int | None = None):
    """Prompts of every trial of ``config``, stacked: X (T, n, D+1, N+1), y (T, n).

    ``stream`` 0 gives the training prompts (``n = P``), 2 the test prompts
    (``n = test_tasks``), 4 the in-distribution test prompts (:func:`stream_law`).
    Drawn per trial from its own generator, on the CPU in float64.
    """
    t = config.task
    n = t.P if n is None else n
    law = stream_law(t, stream, n)
    Xs, ys = [], []
    for k in config.trial_indices:
        g = make_generator(trial_seed(config.seed, k, stream))
        pr = sample_prompts(law, generator=g)
        Xs.append(pr.X)
        ys.append(pr.y)
    return torch.stack(Xs), torch.stack(ys)


def trial_factors(config: TrainConfig, stream: int = STREAM_DATA, n: int | None = None):
    """SLA data of every trial of ``config`` drawn as factors: u, q (T, n, D+1), y (T, n).

    As :func:`trial_prompts` (same streams, ``n = P`` or ``test_tasks``) with
    :func:`spinglass_icl.tasks.sample_factors` (``config.sampler == "factors"``).
    """
    t = config.task
    n = t.P if n is None else n
    law = stream_law(t, stream, n)
    us, qs, ys = [], [], []
    for k in config.trial_indices:
        g = make_generator(trial_seed(config.seed, k, stream))
        f = sample_factors(law, generator=g)
        us.append(f.u)
        qs.append(f.q)
        ys.append(f.y)
    return torch.stack(us), torch.stack(qs), torch.stack(ys)


def _trial_data(cfg: TrainConfig, model: Model, stream: int, n: int | None = None):
    """Prepared model inputs and labels of every trial (see :func:`trial_prompts`)."""
    if cfg.sampler == "factors":
        u, q, y = trial_factors(cfg, stream, n)
        return (u, q), y
    X, y = trial_prompts(cfg, stream, n)
    return model.prepare(X), y


# ------------------------------------------------------------------ optimizers
class _Optimizer:
    """Plain SGD or Adam (as torch.optim, weight_decay 0) with a per-trial active mask:
    trials that stopped keep their weights and optimizer state frozen."""

    def __init__(self, kind: str, lr: float, params: dict[str, torch.Tensor]):
        self.kind, self.lr, self.t = kind, lr, None
        self.b1, self.b2, self.eps = 0.9, 0.999, 1e-8
        if kind == "adam":
            self.m = {k: torch.zeros_like(v) for k, v in params.items()}
            self.v = {k: torch.zeros_like(v) for k, v in params.items()}

    @torch.no_grad()
    def step(self, params: dict, grads: dict, active: torch.Tensor) -> None:
        T = active.shape[0]
        if self.t is None:
            self.t = torch.zeros(T, dtype=torch.float64, device=active.device)
        self.t += active.double()
        for k, p in params.items():
            g = grads[k]
            mask = active.reshape(T, *([1] * (p.dim() - 1)))
            if self.kind == "sgd":
                new = p - self.lr * g
            else:
                m = torch.where(mask, self.b1 * self.m[k] + (1 - self.b1) * g, self.m[k])
                v = torch.where(mask, self.b2 * self.v[k] + (1 - self.b2) * g * g, self.v[k])
                self.m[k], self.v[k] = m, v
                t = self.t.clamp_min(1).reshape(mask.shape).to(p.dtype)
                bc1, bc2 = 1 - self.b1**t, 1 - self.b2**t
                new = p - self.lr * (m / bc1) / ((v / bc2).sqrt() + self.eps)
            p.copy_(torch.where(mask, new, p))


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    config : TrainConfig
    history : xarray.Dataset
        Dims ``(epoch, trial)``; variables ``train_loss`` (eq. 2 on the full training set,
        penalty included), ``test_error`` (mean squared error on the trial's test prompts)
        and ``relative_test_error`` (divided by ``E y~^2``), recorded at epoch 0, every
        ``eval_every`` epochs and at the last epoch run. A trial that stopped early
        (``tol``) keeps its final values.
    test_error : TestError
        At the end, on ``test_tasks`` fresh prompts per trial (stream 2 of its seed):
        ``absolute``, ``stderr`` (over the test prompts) and ``relative`` (divided by
        ``E y~^2``), each a tensor of shape (trials,). With a task pool
        (``config.task.tasks``) this is the in-context error e_ICL: fresh tasks.
    test_error_idg : TestError or None
        With a task pool: the in-distribution error e_IDG, on ``test_tasks`` prompts per
        trial whose tasks are drawn uniformly from the pool (stream 4 of its seed;
        ``relative`` divides by the pool's ``E y~^2``). None without a pool (a fresh
        task per prompt: the two errors are one).
    W : Tensor (trials, D+1, D+1) or None
        The spin model's (SLA's) weight matrix (= spins, row-major); None for other models.
    state : dict of Tensor
        All trained weights, leading trial dimension (CPU).
    epochs_run : Tensor (trials,)
        Epochs each trial trained before it stopped (``tol``) or ran out.
    converged : Tensor (trials,) of bool
        Whether the trial met ``tol`` (all False when ``tol`` is None).
    seconds : float
        Wall time of :func:`train` (data generation and evaluation included).
    step_seconds : float
        Wall time of the optimization steps alone (forward, backward, update; no data
        generation, no evaluation); ``step_seconds / epochs_run.max()`` is the time per epoch.
    grad_norm : Tensor (trials,) or None
        Euclidean norm of the gradient of eq. (2) over all weights, at the last step the
        trial took (full batch: the whole training set; mini-batch: the last batch).
    exact_W : Tensor (trials, D+1, D+1) or None
        SLA trained on the quadratic path only: the exact minimizer ``A^{-1} h`` of the
        same eq. (2) (the ground state of eq. 5; Cholesky solve of :func:`sla_quadratic`'s
        ``A``, float64, CPU), a by-product of the couplings built for training. None
        otherwise, and at lam = 0 (A may be singular; use ``solve(res.instances,
        "exact")``).
    restart : Tensor (trials,) of int
        Which initialization each trial kept (``config.restarts``; 0 when 1).
    restart_loss : Tensor (trials, restarts)
        Final training loss (eq. 2) of every restart of every trial.
    """

    config: TrainConfig
    history: Any
    test_error: TestError
    W: torch.Tensor | None
    state: dict[str, torch.Tensor]
    epochs_run: torch.Tensor
    converged: torch.Tensor
    seconds: float
    step_seconds: float = 0.0
    grad_norm: torch.Tensor | None = None
    exact_W: torch.Tensor | None = None
    restart: torch.Tensor | None = None
    restart_loss: torch.Tensor | None = None
    test_error_idg: TestError | None = None

    @property
    def gtask(self) -> torch.Tensor | None:
        """The task-generalization gap ``e_ICL - e_IDG`` per trial (None without a pool)."""
        if self.test_error_idg is None:
            return None
        return self.test_error.absolute - self.test_error_idg.absolute

    def __repr__(self) -> str:
        rel = self.test_error.relative.double()
        T = rel.numel()
        err = f"{float(rel.mean()):.4g}"
        if T > 1:
            err += f" ± {float(rel.std(unbiased=True)) / math.sqrt(T):.2g}"
        c = self.config
        pool = ""
        if self.test_error_idg is not None:
            idg = float(self.test_error_idg.relative.double().mean())
            pool = f"tasks={c.task.tasks}, "
            err += f", relative_test_error_idg={idg:.4g}"
        return (
            f"TrainResult(model={c.model.name}, D={c.task.D}, N={c.task.N}, P={c.task.P}, "
            f"{pool}trials={T}, epochs_run={int(self.epochs_run.max())}, "
            f"relative_test_error={err}, seconds={self.seconds:.3g})"
        )

    @property
    def model(self) -> Model:
        """The model object; ``model.predict(state, model.prepare(X))`` evaluates it."""
        return self.config.build_model()

    @property
    def instances(self) -> Instance | None:
        """Spin models (SLA) only: the training data as a batched spin-glass
        :class:`Instance` (leading trial dim), regenerated from the seeds, so that
        ``solve(res.instances[k], "exact")`` solves trial k's own problem. None otherwise."""
        cfg = self.config
        if not cfg.model.spins:
            return None
        (u, q), y = _trial_data(cfg, cfg.build_model(), STREAM_DATA)
        return Instance(u=u, q=q, y=y, config=cfg.task, lam=cfg.lam)

    def summary(self) -> dict[str, Any]:
        """Per-trial values, mean and standard error (over trials) of the test errors."""
        out: dict[str, Any] = {}
        T = self.config.trials
        values = [
            ("test_error", self.test_error.absolute),
            ("relative_test_error", self.test_error.relative),
        ]
        if self.test_error_idg is not None:  # a task pool: e_IDG and g_task too
            values += [
                ("test_error_idg", self.test_error_idg.absolute),
                ("relative_test_error_idg", self.test_error_idg.relative),
                ("gtask", self.gtask),
            ]
        for name, x in values:
            x = x.double()
            se = float(x.std(unbiased=True) / math.sqrt(T)) if T > 1 else float("nan")
            out[name] = {"per_trial": x.tolist(), "mean": float(x.mean()), "stderr": se}
        out["test_error_stderr_per_trial"] = self.test_error.stderr.tolist()
        if self.test_error_idg is not None:
            out["test_error_idg_stderr_per_trial"] = self.test_error_idg.stderr.tolist()
        out["epochs_run"] = self.epochs_run.tolist()
        out["converged"] = self.converged.tolist()
        if self.grad_norm is not None:
            out["grad_norm"] = self.grad_norm.tolist()
        if self.restart is not None and self.config.restarts > 1:
            out["restart"] = self.restart.tolist()
            out["restart_loss"] = self.restart_loss.tolist()
        out["seconds"] = self.seconds
        out["step_seconds"] = self.step_seconds
        out["config"] = self.config.to_dict()
        return out


# ------------------------------------------------------------------ training
def _loss(model: Model, params, data, y, lam: float) -> torch.Tensor:
    """Eq. (2) per trial, shape (T,)."""
    pred = model.predict(params, data)  # (T, B)
    mse = ((y - pred) ** 2).sum(-1) / (2 * y.shape[-1])
    pen = sum((p * p).flatten(1).sum(-1) for p in params.values())
    return mse + 0.5 * lam * pen


def sla_quadratic(
    model: Model, data: tuple[torch.Tensor, ...], y: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (2) of an SLA as a quadratic in its weights ``sigma = vec(W)`` (row-major).

    ``L(sigma) = 1/2 sigma^T (G + lam I) sigma - h^T sigma + const`` with the core's
    couplings ``G = (1/P) sum_mu s s^T`` and fields ``h = (1/P) sum_mu y~ s`` (eq. 5,
    :class:`spinglass_icl.hamiltonian.Instance`), ``s = vec(c u (x) q)`` and
    ``const = (1/2P) sum_mu y~^2`` (benchmarks/RESULTS.md, "## train"). ``G`` is built
    one trial at a time by :func:`spinglass_icl.hamiltonian.gram_rank_one` (O(P n^2 / 4)
    per trial, memory O(P n) per trial), once; every full-batch step after that costs
    O(n^2), whatever P.

    Parameters
    ----------
    model : SLA
    data : (u, q)
        ``SLA.prepare`` output, each (T, P, D+1).
    y : Tensor (T, P)
    lam : float

    Returns
    -------
    A, h, const : Tensor (T, n, n), (T, n), (T,)
        ``A = G + lam I``.
    """
    u, q = data
    T, P, K = u.shape
    A = torch.empty(T, K * K, K * K, dtype=u.dtype, device=u.device)
    for t in range(T):
        A[t] = gram_rank_one(model.c * u[t], q[t])
    A.diagonal(dim1=-2, dim2=-1).add_(lam)
    h = (model.c / P) * torch.einsum("tpa,tp,tpb->tab", u, y, q).reshape(T, K * K)
    return A, h, (y * y).sum(-1) / (2 * P)


def _chunked_sq_err(model: Model, params, data, y, chunk: int = 4096) -> torch.Tensor:
    """Squared errors (T, n) on prepared data, in chunks of prompts (bounded memory)."""
    out = []
    for i in range(0, y.shape[1], chunk):
        pred = model.predict(params, tuple(t[:, i : i + chunk] for t in data))
        out.append((y[:, i : i + chunk] - pred) ** 2)
    return torch.cat(out, dim=1)


def _check_train_memory(cfg: TrainConfig, quadratic: bool | None = None) -> None:
    """Refuse (ResourceError) before allocating when the trials cannot fit in memory."""
    from .resources import check_memory, train_bytes

    if quadratic is None:
        quadratic = _quadratic_default(cfg)
    t = cfg.task
    est = train_bytes(
        t.D, t.N, t.P, cfg.trials * cfg.restarts, cfg.test_tasks, cfg.batch_size,
        sampler=cfg.sampler, quadratic=bool(quadratic),
        itemsize=4 if cfg.dtype == "float32" else 8, model=cfg.model,
    )  # fmt: skip
    check_memory(
        est,
        f"train model={cfg.model.name} D={t.D} N={t.N} P={t.P} trials={cfg.trials}"
        + (f" restarts={cfg.restarts}" if cfg.restarts > 1 else ""),
        "use fewer --trials (run them in several calls with different seeds), a smaller "
        "--P or --test-tasks, or --batch-size",
        device=cfg.device,
    )


def _restart_generators(cfg: TrainConfig, stream: int) -> list[torch.Generator]:
    """One generator of ``stream`` per (trial, restart), trial-major: restart 0 is the
    trial's own stream (:func:`trial_seed`), restart r > 0 ``SeedSequence([seed, k,
    stream, r])``."""
    out = []
    for k in cfg.trial_indices:
        for r in range(cfg.restarts):
            if r == 0:
                out.append(make_generator(trial_seed(cfg.seed, k, stream)))
            else:
                out.append(make_generator(trial_stream(cfg.seed, k, stream, r)))
    return out


def _initial_params(cfg: TrainConfig, model: Model, init, dev, dtype) -> dict:
    """Each trial's (and restart's) initial weights: the model's random initialization
    from the trial's seed, or a checked copy of ``init`` (warm start)."""
    if init is not None and cfg.restarts > 1:
        raise ParameterError(f"init (a warm start) needs restarts=1, got restarts={cfg.restarts}")
    params = model.init_params(_restart_generators(cfg, STREAM_INIT), device=dev, dtype=dtype)
    if init is not None:
        if not isinstance(init, dict) or set(init) != set(params):
            got = sorted(init) if isinstance(init, dict) else type(init).__name__
            raise ParameterError(f"init must be a dict with keys {sorted(params)}, got {got}")
        for k, p in params.items():
            v = torch.as_tensor(init[k])
            if tuple(v.shape) != tuple(p.shape) or not bool(torch.isfinite(v).all()):
                raise ParameterError(
                    f"init must hold finite {k} of shape {tuple(p.shape)}, got shape "
                    f"{tuple(v.shape)}"
                )
            params[k] = v.detach().to(device=dev, dtype=dtype).clone()
    return params


def _quadratic_default(cfg: TrainConfig) -> bool:
    """The couplings path by default for a full-batch SLA (whose step is then the linear
    map ``A sigma - h``); other quadratic models (sla-separate) step through autograd
    either way and gain only when P is many times (D+1)^2, so they take it when asked."""
    return cfg.model.spins and cfg.model.quadratic and cfg.batch_size is None


def _use_quadratic(cfg: TrainConfig, quadratic: bool | None) -> bool:
    """Whether to step with the exact quadratic gradient (default: for a full-batch SLA)."""
    if quadratic is None:
        return _quadratic_default(cfg)
    if quadratic and (not cfg.model.quadratic or cfg.batch_size is not None):
        raise ParameterError(
            f"quadratic=True needs a full-batch SLA-like model (sla, sla-separate), got "
            f"model={cfg.model.name}, "
            f"batch_size={cfg.batch_size}"
        )
    return quadratic


def _batches(cfg: TrainConfig, shuffle_g, dev) -> list[torch.Tensor | None]:
    """One epoch's minibatches: prompt indices (trial, batch) per trial's shuffle, or
    ``[None]`` (full batch)."""
    if cfg.batch_size is None:
        return [None]
    perm = torch.stack([torch.randperm(cfg.task.P, generator=g) for g in shuffle_g]).to(dev)
    return list(perm.split(cfg.batch_size, dim=1))


def _merged_grads(model: Model):
    """The model's ``merged_grads`` where its prediction is the SLA's ``y^ = c u^T W q`` on
    ``(u, q)`` with W a function of the weights (SLA, sla-separate), or None (autograd; also
    for a subclass that changes ``predict`` or ``prepare``, whose gradient this is not)."""
    from .models import SLA, SeparateSLA

    cls = type(model)
    if cls.predict not in (SLA.predict, SeparateSLA.predict) or cls.prepare is not SLA.prepare:
        return None
    return getattr(model, "merged_grads", None)


@torch.no_grad()
def _merged_step(cfg, model, params, data, y, quad, merged_grads):
    """Eq. (2) and its exact gradient for an SLA-like model, without autograd.

    ``G = dL/dW`` of the merged ``W`` is ``A sigma - h`` on the couplings path (``quad``
    of :func:`sla_quadratic`) or ``(c/B) sum_mu (y^_mu - y_mu) u_mu q_mu^T`` on the
    prompts (``y^ = c u^T W q``); the weights' gradients follow by the model's chain rule
    (``merged_grads``), plus ``lam`` times the weights where the penalty is not inside
    ``A`` (the SLA's couplings hold it). The same numbers as autograd to rounding (tested).
    """
    W = model.merged(params)
    T, d = W.shape[0], W.shape[-1]
    lam_in_A = quad is not None and set(params) == {"W"}
    if quad is not None:
        A, h_q, const_q = quad
        sig = W.reshape(T, -1)
        As = (A @ sig[:, :, None])[..., 0]
        loss = 0.5 * (sig * As).sum(-1) - (h_q * sig).sum(-1) + const_q
        G = (As - h_q).reshape(T, d, d)
    else:
        u, q = data
        B = y.shape[-1]
        e = model.c * (u * (q @ W.transpose(1, 2))).sum(-1) - y  # (T, B): y^ - y
        loss = (e * e).sum(-1) / (2 * B)
        G = (model.c / B) * ((u * e[..., None]).transpose(1, 2) @ q)
    g = merged_grads(params, G)
    if not lam_in_A:
        loss = loss + 0.5 * cfg.lam * sum((p * p).flatten(1).sum(-1) for p in params.values())
        g = {k: g[k] + cfg.lam * p for k, p in params.items()}
    return loss, tuple(g[k] for k in params)


class _LiveTrials:
    """The active trials' rows of the full-batch data, so that a chunk whose trials stop
    one by one steps only the ones still training (a stopped trial's weights are frozen
    anyway): ``(idx, data, y)`` for the active trials ``idx``, copied once each time the
    set shrinks; None while all are active."""

    def __init__(self, data: tuple[torch.Tensor, ...], y: torch.Tensor) -> None:
        self.data, self.y = data, y
        self.key: tuple[int, ...] | None = None
        self.rows: tuple | None = None

    def __call__(self, active: torch.Tensor):
        idx = active.nonzero()[:, 0]
        if idx.numel() == active.numel():
            return None
        key = tuple(idx.tolist())
        if key != self.key:
            self.key, self.rows = None, None  # drop the last copy before the next one
            self.rows = (idx, tuple(t[idx] for t in self.data), self.y[idx])
            self.key = key
        return self.rows


def _autograd_step(cfg, model, params, d_b, y_b, live_idx):
    """Eq. (2) per trial and its gradients by autograd; with ``live_idx`` (the rows of
    ``d_b``, ``y_b``) only those trials' weights take part: the loss of the others is NaN
    and their gradients zero (their weights are frozen by the optimizer's mask)."""
    if live_idx is None:
        loss = _loss(model, params, d_b, y_b, cfg.lam)
        return loss, torch.autograd.grad(loss.sum(), list(params.values()))
    sub = {k: p.detach()[live_idx].requires_grad_() for k, p in params.items()}
    part = _loss(model, sub, d_b, y_b, cfg.lam)
    g_sub = torch.autograd.grad(part.sum(), list(sub.values()))
    loss = torch.full((cfg.trials,), float("nan"), dtype=part.dtype, device=part.device)
    loss[live_idx] = part.detach()
    grads = []
    for p, g in zip(params.values(), g_sub):
        full = torch.zeros_like(p)
        full[live_idx] = g
        grads.append(full)
    return loss, tuple(grads)


def _epoch(cfg, model, params, opt, data, y, batches, active, grad_norm, quad, live=None):
    """One epoch of optimizer steps over ``batches``; ``(epoch_loss, grad_norm)``.

    ``quad = (A, h, const)`` of :func:`sla_quadratic` steps with the exact gradient
    ``A sigma - h``; None with autograd on eq. 2, where ``live`` (a :class:`_LiveTrials`
    of the full-batch data; None with minibatches) restricts the step to the active trials
    (the epoch loss of a stopped trial is then NaN)."""
    T, P = cfg.trials, cfg.task.P
    dev = y.device
    epoch_loss = torch.zeros(T, dtype=torch.float64, device=dev)
    merged_grads = _merged_grads(model)
    rows_live = live(active) if live is not None and merged_grads is None and quad is None else None
    live_idx = None if rows_live is None else rows_live[0]
    for idx in batches:
        if idx is None:
            d_b, y_b = (data, y) if rows_live is None else rows_live[1:]
        else:
            rows = torch.arange(T, device=dev)[:, None]
            d_b, y_b = tuple(t[rows, idx] for t in data), y[rows, idx]
        if merged_grads is not None:  # SLA-like: dL/dW of the merged W, then the chain rule
            loss, grads = _merged_step(cfg, model, params, d_b, y_b, quad, merged_grads)
        elif quad is not None:  # W = model.merged(params): chain rule through W, penalty apart
            A, h_q, const_q = quad
            sig = model.merged(params).reshape(T, -1)
            pen = sum((p * p).flatten(1).sum(-1) for p in params.values())
            loss = (0.5 * (sig * (A @ sig[:, :, None])[..., 0]).sum(-1) - (h_q * sig).sum(-1)
                    + const_q + 0.5 * cfg.lam * pen)  # fmt: skip
            grads = torch.autograd.grad(loss.sum(), list(params.values()))
        else:
            loss, grads = _autograd_step(cfg, model, params, d_b, y_b, live_idx)
        gn = sum(g.double().pow(2).flatten(1).sum(-1) for g in grads).sqrt()
        grad_norm = torch.where(active, gn, grad_norm)
        opt.step(params, dict(zip(params, grads)), active)
        epoch_loss += loss.detach().double() * (y_b.shape[1] / P)
    return epoch_loss, grad_norm


def _history(cfg: TrainConfig, rec_epoch, rec_loss, rec_err, label_var: float):
    """The recorded losses and test errors as an ``xarray.Dataset`` (epoch, trial)."""
    import xarray as xr

    rec_err_np = torch.stack(rec_err).cpu().numpy()
    return xr.Dataset(
        {
            "train_loss": (("epoch", "trial"), torch.stack(rec_loss).cpu().numpy()),
            "test_error": (("epoch", "trial"), rec_err_np),
            "relative_test_error": (("epoch", "trial"), rec_err_np / label_var),
        },
        coords={"epoch": np.array(rec_epoch), "trial": np.array(list(cfg.trial_indices))},
        attrs={
            "model": cfg.model.name,
            "optimizer": cfg.optimizer,
            "lr": cfg.learning_rate,
            "label_variance": label_var,
        },
    )


def _exact_W(quad, shape) -> torch.Tensor | None:
    """The ground state ``A^{-1} h`` of the quadratic SLA loss (None if A is singular to
    rounding: then it is left to the solvers)."""
    A, h_q, _ = quad
    L, info = torch.linalg.cholesky_ex(A.double())
    if bool(info.any()):
        return None
    gs = torch.cholesky_solve(h_q.double()[..., None], L)[..., 0]
    return gs.reshape(shape).cpu()


def _device_data(cfg: TrainConfig, model: Model, dev, dtype):
    """``(data, y, data_te, yte)``: the trials' training and test sets on ``dev``."""
    data, y = _trial_data(cfg, model, STREAM_DATA)
    data = tuple(t.to(device=dev, dtype=dtype) for t in data)
    y = y.to(device=dev, dtype=dtype)
    data_te, yte = _trial_data(cfg, model, STREAM_TEST, cfg.test_tasks)
    data_te = tuple(t.to(device=dev, dtype=dtype) for t in data_te)
    yte = yte.to(device=dev, dtype=dtype)
    return data, y, data_te, yte


class _Recorder:
    """Records the training loss (eq. 2) and the test error at chosen epochs."""

    def __init__(self, model, params, data, y, data_te, yte, lam: float) -> None:
        self.model, self.params, self.lam = model, params, lam
        self.data, self.y, self.data_te, self.yte = data, y, data_te, yte
        self.epochs: list[int] = []
        self.losses: list[torch.Tensor] = []
        self.errors: list[torch.Tensor] = []
        self.last_err: torch.Tensor | None = None

    def __call__(self, epoch: int) -> None:
        with torch.no_grad():
            loss = _loss(self.model, self.params, self.data, self.y, self.lam)
            err = _chunked_sq_err(self.model, self.params, self.data_te, self.yte)
        self.last_err = err
        self.epochs.append(epoch)
        self.losses.append(loss.double().cpu())
        self.errors.append(err.double().mean(-1).cpu())


def _check_finite(cfg: TrainConfig, params: dict) -> None:
    bad = [k for k, p in params.items() if not bool(torch.isfinite(p).all())]
    if bad:
        raise ParameterError(
            f"lr must be smaller: training diverged (non-finite {', '.join(bad)}) with "
            f"lr={cfg.learning_rate:g}, optimizer={cfg.optimizer}, model={cfg.model.name}"
        )


def _loop(cfg, model, params, opt, data, y, shuffle_g, quad, rec, progress, dev):
    """The epochs, until each trial's loss stops moving (``cfg.tol``) or ``cfg.epochs``;
    ``(epochs_run, converged, grad_norm, step_seconds)``."""
    from tqdm.auto import tqdm

    T = cfg.trials
    every = cfg.eval_every or max(1, cfg.epochs // 100)
    active = torch.ones(T, dtype=torch.bool, device=dev)
    epochs_run = torch.zeros(T, dtype=torch.int64)
    converged = torch.zeros(T, dtype=torch.bool)
    window = cfg.window
    past = torch.full((window, T), float("nan"), dtype=torch.float64, device=dev)  # ring
    grad_norm = torch.full((T,), float("nan"), dtype=torch.float64, device=dev)
    rec(0)
    bar = tqdm(
        total=cfg.epochs, disable=not progress, desc=f"train {cfg.model.name} x{T}", leave=False
    )
    epoch = 0
    step_seconds = 0.0
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    live = _LiveTrials(data, y) if cfg.batch_size is None else None
    for epoch in range(1, cfg.epochs + 1):
        sync()
        t_step = time.perf_counter()
        epoch_loss, grad_norm = _epoch(
            cfg, model, params, opt, data, y, _batches(cfg, shuffle_g, dev), active, grad_norm,
            quad, live,
        )  # fmt: skip
        sync()
        step_seconds += time.perf_counter() - t_step
        epochs_run += active.cpu().long()
        if epoch == 1:
            first_loss = epoch_loss.clone()
        runaway = ~torch.isfinite(epoch_loss) | (epoch_loss > 1e6 * first_loss.clamp_min(1e-8))
        if bool((runaway & active).any()):
            _check_finite(cfg, params)
            raise ParameterError(
                f"lr must be smaller: the training loss diverged (grew more than 1e6-fold) with "
                f"lr={cfg.learning_rate:g}, optimizer={cfg.optimizer}, model={cfg.model.name}"
            )
        if cfg.tol is not None:
            ref = past[epoch % window]  # L_{t-w} (NaN for t <= w: never done)
            rel = (epoch_loss - ref).abs() / ref.abs().clamp_min(1e-300)
            done = active & (rel < cfg.tol)
            converged |= done.cpu()
            active &= ~done
        past[epoch % window] = torch.where(active, epoch_loss, past[epoch % window])
        bar.update(1)
        if progress and epoch % max(1, cfg.epochs // 100) == 0:
            bar.set_postfix(loss=f"{float(epoch_loss.nanmean()):.4g}")
        if not bool(active.any()):
            break
        if epoch % every == 0 and epoch != cfg.epochs:
            rec(epoch)
    bar.close()
    _check_finite(cfg, params)
    rec(epoch)
    return epochs_run, converged, grad_norm, step_seconds


def _repeat_restarts(batches: tuple, R: int) -> tuple:
    """Each trial's data repeated for its ``R`` restarts (every restart of a trial trains on
    the trial's own data); a tuple entry (the prompt factors) repeats elementwise."""
    return tuple(
        tuple(x.repeat_interleave(R, dim=0) for x in d) if isinstance(d, tuple)
        else d.repeat_interleave(R, dim=0)
        for d in batches
    )  # fmt: skip


def _prepare_params(
    cfg: TrainConfig,
    model: Model,
    init: dict[str, torch.Tensor] | None,
    data,
    y: torch.Tensor,
    quadratic: bool | None,
    dev: torch.device,
    dtype: torch.dtype,
) -> tuple[dict[str, torch.Tensor], bool, tuple | None]:
    """The initial weights, whether the quadratic step is used, and its couplings of eq. 2
    (:func:`sla_quadratic`; None on the prompt path); weights trained by autograd get
    ``requires_grad``."""
    params = _initial_params(cfg, model, init, dev, dtype)
    quadratic = _use_quadratic(cfg, quadratic)
    quad = None
    if quadratic:  # the penalty is in A only where the weight is W itself (SLA)
        quad = sla_quadratic(model, data, y, cfg.lam if set(params) == {"W"} else 0.0)
    if _merged_grads(model) is None:  # autograd steps
        for p in params.values():
            p.requires_grad_(True)
    return params, quadratic, quad


def _kept_test_error(rec: _Recorder, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean test error (eq. 3) of the kept restarts and its standard error over the test
    prompts (zero with a single test prompt)."""
    assert rec.last_err is not None
    err = rec.last_err.double()[keep.to(rec.last_err.device)]
    te = err.mean(-1).cpu()
    se = (err.var(-1, unbiased=True) / err.shape[-1]).sqrt().cpu() if err.shape[-1] > 1 else te * 0
    return te, se


def _kept_exact_W(
    cfg: TrainConfig,
    quadratic: bool,
    quad: tuple | None,
    keep: torch.Tensor,
    state: dict[str, torch.Tensor],
) -> torch.Tensor | None:
    """The exact minimizer of eq. 2 for the kept restarts (:func:`_exact_W`), where the
    quadratic path with a positive ``lam`` gives it; None otherwise."""
    if not (quadratic and cfg.lam > 0 and cfg.model.spins):
        return None
    if cfg.restarts > 1:
        kd = keep.to(quad[0].device)
        quad = tuple(x[kd] for x in quad)
    return _exact_W(quad, state["W"].shape)


def train(
    config: TrainConfig,
    progress: bool = False,
    init: dict[str, torch.Tensor] | None = None,
    *,
    quadratic: bool | None = None,
) -> TrainResult:
    """Train ``config.trials`` independent copies of ``config.model`` on eq. (2).

    Parameters
    ----------
    config
        The run (validated on construction).
    progress
        Show a tqdm bar (on stderr).
    init
        Warm start: initial weights (e.g. an earlier ``TrainResult.state``), a dict with the
        model's weight names and shapes (leading trial dimension ``config.trials``); copied,
        not modified. The optimizer state starts fresh. None (default): the model's random
        initialization from each trial's seed.
    quadratic
        Full-batch quadratic models only (``ModelConfig.quadratic``: SLA, sla-separate):
        step with the exact gradient of eq. 2 through the couplings of
        :func:`sla_quadratic`, ``(G + lam I) sigma - h`` for the SLA, the same form's
        chain rule through ``W = model.merged(params)`` otherwise (O(n^2) per epoch)
        instead of the prompt-by-prompt one (O(P n)); the same trajectory to rounding
        (tested to 1e-10). None (default): on for a full-batch SLA, off otherwise
        (sla-separate gains only for P many times (D+1)^2: pass True); False forces the
        prompt path.

    Returns
    -------
    TrainResult
    """
    if not isinstance(config, TrainConfig):
        raise ParameterError(f"config must be a TrainConfig, got {type(config).__name__}")
    _check_train_memory(config, quadratic)
    t0 = time.perf_counter()
    cfg = config
    T, R = cfg.trials, cfg.restarts
    dev, dtype = torch.device(cfg.device), DTYPES[cfg.dtype]
    model = cfg.build_model()
    data, y, data_te, yte = _device_data(cfg, model, dev, dtype)
    if R > 1:
        data, y, data_te, yte = _repeat_restarts((data, y, data_te, yte), R)
    run = dataclasses.replace(cfg, trials=T * R, restarts=1) if R > 1 else cfg
    params, quadratic, quad = _prepare_params(cfg, model, init, data, y, quadratic, dev, dtype)
    shuffle_g = _restart_generators(cfg, STREAM_SHUFFLE)
    opt = _Optimizer(cfg.optimizer, cfg.learning_rate, params)
    t = cfg.task
    label_var = get_convention(t.convention).label_variance(t.D, t.noise)
    rec = _Recorder(model, params, data, y, data_te, yte, cfg.lam)
    epochs_run, converged, grad_norm, step_seconds = _loop(
        run, model, params, opt, data, y, shuffle_g, quad, rec, progress, dev
    )
    # the kept restart of each trial: the lowest final training loss (eq. 2)
    final = rec.losses[-1].reshape(T, R)
    best = final.argmin(-1)
    keep = torch.arange(T) * R + best
    te, se = _kept_test_error(rec, keep)
    history = _history(
        cfg, rec.epochs, [x[keep] for x in rec.losses], [x[keep] for x in rec.errors], label_var
    )
    state = {k: v.detach().cpu()[keep] for k, v in params.items()}
    idg = _idg_error(cfg, model, params, keep, dev, dtype) if t.tasks is not None else None
    return TrainResult(
        config=cfg,
        history=history,
        test_error=TestError(te, se, te / label_var, cfg.test_tasks),
        W=state["W"].clone() if cfg.model.spins else None,
        state=state,
        epochs_run=epochs_run[keep],
        converged=converged[keep],
        seconds=time.perf_counter() - t0,
        step_seconds=step_seconds,
        grad_norm=grad_norm.cpu()[keep],
        exact_W=_kept_exact_W(cfg, quadratic, quad, keep, state),
        restart=best,
        restart_loss=final,
        test_error_idg=idg,
    )


def _idg_error(cfg: TrainConfig, model: Model, params: dict, keep, dev, dtype) -> TestError:
    """The in-distribution :class:`TestError` of the kept weights: ``test_tasks`` prompts
    per trial with tasks drawn uniformly from the training pool (:data:`STREAM_IDG`)."""
    data, y = _trial_data(cfg, model, STREAM_IDG, cfg.test_tasks)
    data = tuple(x.to(device=dev, dtype=dtype) for x in data)
    y = y.to(device=dev, dtype=dtype)
    kd = keep.to(dev)
    with torch.no_grad():
        kept = {k: v.detach()[kd] for k, v in params.items()}
        err = _chunked_sq_err(model, kept, data, y).double()
    te = err.mean(-1).cpu()
    se = (err.var(-1, unbiased=True) / err.shape[-1]).sqrt().cpu() if err.shape[-1] > 1 else te * 0
    return TestError(te, se, te / cfg.task.label_variance("idg"), cfg.test_tasks)

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
from typing import Any

import numpy as np
import torch

from .conventions import DEFAULT_CONVENTION, get_convention
from .errors import ParameterError, check_choice, check_float, check_int, check_seed
from .hamiltonian import Instance, gram_rank_one
from .models import MODELS, Model, build_model
from .tasks import TaskConfig, make_generator, resolve_device, sample_factors, sample_prompts

__all__ = [
    "OPTIMIZERS",
    "TRAINING_VERSION",
    "DEFAULT_LR",
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

#: default learning rates (used when ``TrainConfig.lr`` is None), from short scans of
#: full-batch training at the Fig. 6 setting (the scans: benchmarks/RESULTS.md, "## train").
#: With Adam, SLA/FLA/MHLA reach their plateau in about 100-200 epochs; SA/TF use a smaller
#: rate because larger first steps (plus the penalty) can shrink W_Q, W_K to the stationary
#: point W_Q = W_K = 0. SGD's stable rate depends on the curvature of eq. 2 (the largest
#: eigenvalue of A = G + lam I, which grows as D and N shrink): lower ``lr`` if train() says
#: so. MHLA's Adam rate is 3e-2: at the ``paper`` Fig. 6 setting 1e-1 oscillates and never
#: meets the convergence stop, 3e-2 reaches a lower loss and test error.
DEFAULT_LR: dict[tuple[str, str], float] = {
    ("sla", "adam"): 3e-2,
    ("fla", "adam"): 3e-2,
    ("mhla", "adam"): 3e-2,
    ("sa", "adam"): 3e-3,
    ("tf", "adam"): 3e-3,
    ("sla", "sgd"): 0.5,
    ("fla", "sgd"): 0.5,
    ("mhla", "sgd"): 0.2,
    ("sa", "sgd"): 0.1,
    ("tf", "sgd"): 0.05,
}

STREAM_DATA, STREAM_INIT, STREAM_TEST, STREAM_SHUFFLE = 0, 1, 2, 3


def trial_seed(seed: int, trial: int, stream: int) -> int:
    """The seed of one random stream of one trial (see the module docstring)."""
    ss = np.random.SeedSequence([int(seed), int(trial), int(stream)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved with the weights).

    Attributes
    ----------
    model : str
        One of ``sla, fla, mhla, sa, tf`` (:mod:`spinglass_icl.models`).
    D, N, P : int
        Input dimension, context length, task diversity (training prompts per trial).
    lam : float
        Ridge lam >= 0 of eq. (2) on all trainable weights.
    trials : int
        Number of independent trials trained together.
    epochs : int
        Maximum number of passes over the training prompts.
    lr : float or None
        Learning rate (> 0); None takes :data:`DEFAULT_LR` for (model, optimizer).
    optimizer : str
        ``"adam"`` (betas 0.9, 0.999, eps 1e-8, no decoupled decay) or ``"sgd"`` (plain).
    batch_size : int or None
        Prompts per step; None (default) is full batch (one step per epoch).
    convention : str
        Normalization convention (docs/conventions.md).
    noise : float
        Label-noise standard deviation (>= 0), in training and test prompts.
    seed : int
        Base seed (>= 0); every random stream of every trial derives from it.
    device : str
        ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"``.
    test_tasks : int
        Fresh test prompts per trial for the test error.
    H : int
        Inner size of the softmax attention (SA, TF) and hidden width of TF's MLP.
    M : int
        Number of heads of MHLA.
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
        :func:`spinglass_icl.tasks.sample_prompts`). ``"factors"`` (SLA only): the factors
        ``(u, q, y~)`` drawn from their exact law (:func:`spinglass_icl.tasks.sample_factors`;
        ``3D + N`` numbers per prompt instead of about ``N D``): the same distribution,
        a different draw for the same seed.
    """

    model: str = "sla"
    D: int = 20
    N: int = 20
    P: int = 10_000
    lam: float = 0.01
    trials: int = 1
    epochs: int = 200
    lr: float | None = None
    optimizer: str = "adam"
    batch_size: int | None = None
    convention: str = DEFAULT_CONVENTION
    noise: float = 0.0
    seed: int = 0
    device: str = "cpu"
    test_tasks: int = 2000
    H: int = 32
    M: int = 10
    tol: float | None = None
    window: int = 1
    eval_every: int | None = None
    first_trial: int = 0
    dtype: str = "float64"
    sampler: str = "prompts"

    def __post_init__(self) -> None:
        s = object.__setattr__
        check_choice("model", self.model, MODELS)
        for name in ("D", "N", "P", "trials", "epochs", "test_tasks", "H", "M"):
            s(self, name, check_int(name, getattr(self, name)))
        s(self, "lam", check_float("lam", self.lam, low=0.0))
        if self.lr is not None:
            s(self, "lr", check_float("lr", self.lr, low=0.0, low_open=True))
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.batch_size is not None:
            s(self, "batch_size", check_int("batch_size", self.batch_size, 1, self.P))
        s(self, "convention", get_convention(self.convention).name)
        s(self, "noise", check_float("noise", self.noise, low=0.0))
        s(self, "seed", check_seed(self.seed))
        s(self, "device", str(resolve_device(self.device)))
        if self.tol is not None:
            s(self, "tol", check_float("tol", self.tol, low=0.0, low_open=True))
        s(self, "window", check_int("window", self.window))
        if self.eval_every is not None:
            s(self, "eval_every", check_int("eval_every", self.eval_every))
        s(self, "first_trial", check_int("first_trial", self.first_trial, minimum=0))
        check_choice("dtype", self.dtype, tuple(DTYPES))
        check_choice("sampler", self.sampler, SAMPLERS)
        if self.sampler == "factors" and self.model != "sla":
            raise ParameterError(
                f"sampler='factors' needs model='sla' (the other models see whole prompts), "
                f"got model={self.model!r}"
            )

    @property
    def learning_rate(self) -> float:
        """``lr``, or the default of (model, optimizer) when ``lr`` is None."""
        return self.lr if self.lr is not None else DEFAULT_LR[(self.model, self.optimizer)]

    @property
    def task(self) -> TaskConfig:
        """The prompt distribution."""
        return TaskConfig(self.D, self.N, self.P, self.convention, self.noise)

    @property
    def trial_indices(self) -> range:
        """Global indices of the trials of this run."""
        return range(self.first_trial, self.first_trial + self.trials)

    def build_model(self) -> Model:
        """The model object (sizes only; weights live in ``TrainResult.state``)."""
        return build_model(
            self.model, self.D, self.N, convention=self.convention, H=self.H, M=self.M
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON / checkpoints); ``lr`` resolved."""
        d = dataclasses.asdict(self)
        d["lr"] = self.learning_rate
        return d


def trial_prompts(config: TrainConfig, stream: int = STREAM_DATA, n: int | None = None):
    """Prompts of every trial of ``config``, stacked: X (T, n, D+1, N+1), y (T, n).

    ``stream`` 0 gives the training prompts (``n = P``), 2 the test prompts
    (``n = test_tasks``). Drawn per trial from its own generator, on the CPU in float64.
    """
    n = config.P if n is None else n
    Xs, ys = [], []
    for k in config.trial_indices:
        g = make_generator(trial_seed(config.seed, k, stream))
        pr = sample_prompts(
            config.D,
            config.N,
            n,
            convention=config.convention,
            noise=config.noise,
            generator=g,
        )
        Xs.append(pr.X)
        ys.append(pr.y)
    return torch.stack(Xs), torch.stack(ys)


def trial_factors(config: TrainConfig, stream: int = STREAM_DATA, n: int | None = None):
    """SLA data of every trial of ``config`` drawn as factors: u, q (T, n, D+1), y (T, n).

    As :func:`trial_prompts` (same streams, ``n = P`` or ``test_tasks``) with
    :func:`spinglass_icl.tasks.sample_factors` (``config.sampler == "factors"``).
    """
    n = config.P if n is None else n
    us, qs, ys = [], [], []
    for k in config.trial_indices:
        g = make_generator(trial_seed(config.seed, k, stream))
        f = sample_factors(
            config.D, config.N, n, convention=config.convention, noise=config.noise, generator=g
        )
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
    test_error, relative_test_error, test_error_stderr : Tensor, shape (trials,)
        At the end, on ``test_tasks`` fresh prompts per trial (stream 2 of its seed).
    W : Tensor (trials, D+1, D+1) or None
        SLA's weight matrix (= spins, row-major); None for other models.
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
    """

    config: TrainConfig
    history: Any = field(repr=False)
    test_error: torch.Tensor
    relative_test_error: torch.Tensor
    test_error_stderr: torch.Tensor
    W: torch.Tensor | None
    state: dict[str, torch.Tensor] = field(repr=False)
    epochs_run: torch.Tensor
    converged: torch.Tensor
    seconds: float
    step_seconds: float = 0.0
    grad_norm: torch.Tensor | None = None
    exact_W: torch.Tensor | None = field(default=None, repr=False)

    @property
    def model(self) -> Model:
        """The model object; ``model.predict(state, model.prepare(X))`` evaluates it."""
        return self.config.build_model()

    @property
    def instances(self) -> Instance | None:
        """SLA only: the training data as a batched spin-glass :class:`Instance`
        (leading trial dim), regenerated from the seeds, so that
        ``solve(res.instances[k], "exact")`` solves trial k's own problem. None otherwise."""
        if self.config.model != "sla":
            return None
        cfg = self.config
        (u, q), y = _trial_data(cfg, cfg.build_model(), STREAM_DATA)
        return Instance(u=u, q=q, y=y, config=cfg.task, lam=cfg.lam)

    def summary(self) -> dict[str, Any]:
        """Per-trial values, mean and standard error (over trials) of the test errors."""
        out: dict[str, Any] = {}
        T = self.config.trials
        for name in ("test_error", "relative_test_error"):
            x = getattr(self, name).double()
            se = float(x.std(unbiased=True) / math.sqrt(T)) if T > 1 else float("nan")
            out[name] = {"per_trial": x.tolist(), "mean": float(x.mean()), "stderr": se}
        out["test_error_stderr_per_trial"] = self.test_error_stderr.tolist()
        out["epochs_run"] = self.epochs_run.tolist()
        out["converged"] = self.converged.tolist()
        if self.grad_norm is not None:
            out["grad_norm"] = self.grad_norm.tolist()
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
        quadratic = cfg.model == "sla" and cfg.batch_size is None
    est = train_bytes(
        cfg.D, cfg.N, cfg.P, cfg.trials, cfg.test_tasks, cfg.batch_size,
        sampler=cfg.sampler, quadratic=bool(quadratic),
        itemsize=4 if cfg.dtype == "float32" else 8,
    )  # fmt: skip
    check_memory(
        est,
        f"train model={cfg.model} D={cfg.D} N={cfg.N} P={cfg.P} trials={cfg.trials}",
        "use fewer --trials (run them in several calls with different seeds), a smaller "
        "--P or --test-tasks, or --batch-size",
        device=cfg.device,
    )


def _initial_params(cfg: TrainConfig, model: Model, init, dev, dtype) -> dict:
    """Each trial's initial weights: the model's random initialization from the trial's
    seed, or a checked copy of ``init`` (warm start)."""
    init_g = [make_generator(trial_seed(cfg.seed, k, STREAM_INIT)) for k in cfg.trial_indices]
    params = model.init_params(init_g, device=dev, dtype=dtype)
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


def _use_quadratic(cfg: TrainConfig, quadratic: bool | None) -> bool:
    """Whether to step with the exact quadratic gradient (default: for a full-batch SLA)."""
    if quadratic is None:
        return cfg.model == "sla" and cfg.batch_size is None
    if quadratic and (cfg.model != "sla" or cfg.batch_size is not None):
        raise ParameterError(
            f"quadratic=True needs a full-batch SLA, got model={cfg.model}, "
            f"batch_size={cfg.batch_size}"
        )
    return quadratic


def _batches(cfg: TrainConfig, shuffle_g, dev) -> list[torch.Tensor | None]:
    """One epoch's minibatches: prompt indices (trial, batch) per trial's shuffle, or
    ``[None]`` (full batch)."""
    if cfg.batch_size is None:
        return [None]
    perm = torch.stack([torch.randperm(cfg.P, generator=g) for g in shuffle_g]).to(dev)
    return list(perm.split(cfg.batch_size, dim=1))


def _epoch(cfg, model, params, opt, data, y, batches, active, grad_norm, quad):
    """One epoch of optimizer steps over ``batches``; ``(epoch_loss, grad_norm)``.

    ``quad = (A, h, const)`` of :func:`sla_quadratic` steps with the exact gradient
    ``A sigma - h``; None with autograd on eq. 2."""
    T, P = cfg.trials, cfg.P
    dev = y.device
    epoch_loss = torch.zeros(T, dtype=torch.float64, device=dev)
    for idx in batches:
        if idx is None:
            d_b, y_b = data, y
        else:
            rows = torch.arange(T, device=dev)[:, None]
            d_b, y_b = tuple(t[rows, idx] for t in data), y[rows, idx]
        if quad is not None:
            A, h_q, const_q = quad
            W = params["W"]
            sig = W.reshape(T, -1)
            As = (A @ sig[:, :, None])[..., 0]
            loss = 0.5 * (sig * As).sum(-1) - (h_q * sig).sum(-1) + const_q
            grads = ((As - h_q).reshape(W.shape),)
        else:
            loss = _loss(model, params, d_b, y_b, cfg.lam)
            grads = torch.autograd.grad(loss.sum(), list(params.values()))
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
            "model": cfg.model,
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
            f"lr={cfg.learning_rate:g}, optimizer={cfg.optimizer}, model={cfg.model}"
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
    bar = tqdm(total=cfg.epochs, disable=not progress, desc=f"train {cfg.model} x{T}", leave=False)
    epoch = 0
    step_seconds = 0.0
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for epoch in range(1, cfg.epochs + 1):
        sync()
        t_step = time.perf_counter()
        epoch_loss, grad_norm = _epoch(
            cfg, model, params, opt, data, y, _batches(cfg, shuffle_g, dev), active, grad_norm,
            quad,
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
                f"lr={cfg.learning_rate:g}, optimizer={cfg.optimizer}, model={cfg.model}"
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
            bar.set_postfix(loss=f"{float(epoch_loss.mean()):.4g}")
        if not bool(active.any()):
            break
        if epoch % every == 0 and epoch != cfg.epochs:
            rec(epoch)
    bar.close()
    _check_finite(cfg, params)
    rec(epoch)
    return epochs_run, converged, grad_norm, step_seconds


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
        Full-batch SLA only: step with the exact gradient ``(G + lam I) sigma - h`` of
        :func:`sla_quadratic` (O(n^2) per epoch) instead of the prompt-by-prompt one
        (O(P n)); the same trajectory to rounding (tested to 1e-10). None (default): on
        for a full-batch SLA, off otherwise; False forces the prompt path.

    Returns
    -------
    TrainResult
    """
    if not isinstance(config, TrainConfig):
        raise ParameterError(f"config must be a TrainConfig, got {type(config).__name__}")
    _check_train_memory(config, quadratic)
    t0 = time.perf_counter()
    cfg = config
    dev, dtype = torch.device(cfg.device), DTYPES[cfg.dtype]
    model = cfg.build_model()
    data, y, data_te, yte = _device_data(cfg, model, dev, dtype)
    params = _initial_params(cfg, model, init, dev, dtype)
    quadratic = _use_quadratic(cfg, quadratic)
    quad = None
    if quadratic:
        quad = sla_quadratic(model, data, y, cfg.lam)
    else:
        for p in params.values():
            p.requires_grad_(True)
    shuffle_g = [make_generator(trial_seed(cfg.seed, k, STREAM_SHUFFLE)) for k in cfg.trial_indices]

    opt = _Optimizer(cfg.optimizer, cfg.learning_rate, params)
    label_var = get_convention(cfg.convention).label_variance(cfg.D, cfg.noise)
    rec = _Recorder(model, params, data, y, data_te, yte, cfg.lam)
    epochs_run, converged, grad_norm, step_seconds = _loop(
        cfg, model, params, opt, data, y, shuffle_g, quad, rec, progress, dev
    )
    last_err = rec.last_err
    assert last_err is not None
    err = last_err.double()
    te = err.mean(-1).cpu()
    se = (err.var(-1, unbiased=True) / err.shape[-1]).sqrt().cpu() if err.shape[-1] > 1 else te * 0
    history = _history(cfg, rec.epochs, rec.losses, rec.errors, label_var)
    state = {k: v.detach().cpu() for k, v in params.items()}
    exact_W = _exact_W(quad, state["W"].shape) if quadratic and cfg.lam > 0 else None
    return TrainResult(
        config=cfg,
        history=history,
        test_error=te,
        relative_test_error=te / label_var,
        test_error_stderr=se,
        W=state["W"].clone() if cfg.model == "sla" else None,
        state=state,
        epochs_run=epochs_run,
        converged=converged,
        seconds=time.perf_counter() - t0,
        step_seconds=step_seconds,
        grad_norm=grad_norm.cpu(),
        exact_W=exact_W,
    )

"""In-context linear-regression prompts (paper eq. 1).

A task is ``w ~ N(0, I_D)``; a prompt holds N examples ``x_i ~ N(0, I_D)`` with labels
``y_i = scale * w.x_i (+ noise)`` and a query ``x~`` whose label is hidden (0) in the
prompt matrix

    X = [[x_1 ... x_N  x~],
         [y_1 ... y_N  0 ]]          shape (D+1, N+1)   (eq. 1)

``scale`` is set by the convention (docs/conventions.md). By default every prompt has its own
task, as in the authors' code; with a finite task pool (``TaskConfig(tasks=K)``) the prompts
take their tasks from K tasks drawn once from a pool seed (docs/theory.md#task-diversity).
Sampling is seeded: the numbers are drawn on the CPU in float64
with a :class:`torch.Generator` and then moved, so the same seed gives the same
prompts on every device and dtype.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .conventions import CONVENTION, DEFAULT_CONVENTION, Convention, get_convention
from .errors import (
    Check,
    Choice,
    Int,
    ParameterError,
    Real,
    check_choice,
    check_int,
    check_shape,
    validate_fields,
)
from .resources import check_prompt_memory
from .seeds import joined
from .storage import canonical_json, sha256_hex

__all__ = [
    "TaskConfig",
    "TaskMoments",
    "TASK_DISTRIBUTIONS",
    "TASK_NORMS",
    "ASSIGNMENTS",
    "register_task",
    "get_task_distribution",
    "Prompts",
    "sample_prompts",
    "sample_prompts_nested",
    "prompt_block",
    "concat_prompts",
    "Factors",
    "RankOneFactors",
    "sample_factors",
    "factors_range",
    "task_config",
    "sample_factors_nested",
    "SAMPLERS",
    "draw_factors",
    "NESTED_BLOCK",
    "make_generator",
    "resolve_device",
]

#: how instances are drawn: whole prompts (eq. 1), or their rank-one factors from their law
SAMPLERS: tuple[str, ...] = ("prompts", "factors")

#: laws of a fresh task: standard Gaussian, or Gaussian rescaled to norm sqrt(D) (Lu et al.)
TASK_NORMS: tuple[str, ...] = ("gaussian", "sphere")

#: how the prompts of a finite pool take their tasks: at random, or in turn (mu mod K)
ASSIGNMENTS: tuple[str, ...] = ("uniform", "equal")

#: registered task distributions by name (:func:`register_task`)
TASK_DISTRIBUTIONS: dict[str, type] = {}

#: prompts per block of the nested (prefix-consistent) stream of :func:`sample_prompts_nested`
NESTED_BLOCK = 64


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return a torch device; ``None`` means CPU. Unknown or absent devices raise ParameterError."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ParameterError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device must be 'cpu' here: CUDA is not available (got {device!r})")
    if dev.type not in ("cpu", "cuda"):
        raise ParameterError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return dev


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (an integer >= 0)."""
    seed = check_int("seed", seed, minimum=0, maximum=2**64 - 1)
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def task_config(
    D: int | TaskConfig,
    N: int | None = None,
    P: int | None = None,
    convention: str | Convention | None = None,
    noise: float | None = None,
) -> TaskConfig:
    """The :class:`TaskConfig` a sampler was called with: ``D`` itself if it is one (then
    N, P, convention and noise must not be given), else one built (and checked) from
    the numbers. Every sampler takes either form; below this point only the config
    travels."""
    if isinstance(D, TaskConfig):
        given = [
            k
            for k, v in dict(N=N, P=P, convention=convention, noise=noise).items()
            if v is not None
        ]
        if given:
            raise ParameterError(f"{given[0]} must not be given with a TaskConfig")
        return D
    return TaskConfig(
        D=D,
        N=N,
        P=P,
        convention=DEFAULT_CONVENTION if convention is None else convention,
        noise=0.0 if noise is None else noise,
    )


def _optional_pool_size(name: str, value: Any) -> int | None:
    """The pool size K: None (every prompt its own task) or an integer >= 1."""
    if value is None:
        return None
    try:
        return check_int(name, value)
    except ParameterError:
        raise ParameterError(
            f"{name} (the task pool size K) must be an integer >= 1 or None, got {value!r}"
        ) from None


#: the field constraint of a task pool size
POOL_SIZE = Check(
    _optional_pool_size, "an integer >= 1 or None", [(0, "0"), ("7", "'7'"), (2.5, "2.5")]
)

#: the field constraint of a device (kept as its name: ``cpu``, ``cuda``, ``cuda:1``)
DEVICE = Check(
    lambda name, value: str(resolve_device(value)),
    "'cpu', 'cuda' or 'cuda:N'",
    [("no-such-device", "'no-such-device'")],
)


@dataclass(frozen=True)
class TaskMoments:
    """The task moments the closed-form test error needs (docs/theory.md#task-diversity).

    Attributes
    ----------
    mean : Tensor, shape (D,)
        ``E w``.
    second : Tensor, shape (D, D)
        ``E w w^T``.
    third : Tensor, shape (D,)
        ``E |w|^2 w``.
    fourth : float
        ``E |w|^4``.
    """

    mean: torch.Tensor
    second: torch.Tensor
    third: torch.Tensor
    fourth: float

    def __repr__(self) -> str:
        D = self.mean.shape[-1]
        tr = float(self.second.diagonal().sum())
        return f"TaskMoments(D={D}, E|w|^2={tr:.4g}, E|w|^4={self.fourth:.4g})"

    @classmethod
    def of(cls, w: torch.Tensor) -> TaskMoments:
        """The empirical moments of the tasks ``w`` (K, D), each with weight 1/K."""
        w = w.to(torch.float64)
        n2 = (w * w).sum(-1)
        K = w.shape[0]
        return cls(w.mean(0), w.T @ w / K, (n2[:, None] * w).mean(0), float((n2 * n2).mean()))


def register_task(cls: type) -> type:
    """Register a task distribution (a subclass of :class:`TaskConfig` with its own
    ``name``) so that configs, sweeps and the CLI can refer to it by name; returns it
    (use as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, TaskConfig)):
        raise ParameterError(f"a task distribution must subclass TaskConfig, got {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not name:
        raise ParameterError(f"a task distribution needs a class attribute name, got {name!r}")
    if TASK_DISTRIBUTIONS.get(name, cls) is not cls:
        raise ParameterError(f"task distribution {name!r} is already registered")
    TASK_DISTRIBUTIONS[name] = cls
    return cls


def get_task_distribution(name: str) -> type:
    """The registered task distribution class called ``name``."""
    return TASK_DISTRIBUTIONS[check_choice("task distribution", name, TASK_DISTRIBUTIONS)]


@functools.lru_cache(maxsize=64)
def _pool(cls: type, D: int, K: int, pool_seed: int, task_norm: str) -> torch.Tensor:
    """The K tasks of a pool (float64, CPU), drawn from their own generator."""
    g = make_generator(pool_seed)
    return cls._fresh(D, task_norm, (K,), g)


@dataclass(frozen=True)
class TaskConfig:
    """A distribution of in-context regression prompts (eq. 1): the task distribution
    object that samples prompts and factors, knows its label variance, scores weights
    (in-context and in-distribution test errors) and gives the key that seeds and
    stores hash.

    Attributes
    ----------
    D : int
        Input dimension (>= 1).
    N : int
        Context length: number of labelled examples per prompt (>= 1).
    P : int
        Number of training prompts (>= 1); with ``tasks=None`` also the task
        diversity (each prompt its own task, the paper's setting).
    convention : str or Convention
        ``"authors"`` (default), ``"paper-text"`` or ``"normalized"``; kept as its name
        (what configs hash and print), the :class:`Convention` is :attr:`conv`.
    noise : float
        Standard deviation of Gaussian label noise added to every label (>= 0).
    tasks : int or None
        The task pool size K (>= 1): the prompts take their tasks from K tasks drawn
        once from ``pool_seed`` (Raventos et al. 2023; Lu et al. 2024). None (default):
        every prompt draws a fresh task.
    pool_seed : int
        Seed of the pool (used only with ``tasks``).
    assignment : str
        ``"uniform"`` (default): each prompt picks a pool task at random;
        ``"equal"``: prompt mu takes task ``mu mod K``, so every task is used
        ``P/K`` times (Lu et al.; needs ``K <= P``).
    task_norm : str
        ``"gaussian"`` (default): ``w ~ N(0, I_D)``; ``"sphere"``: the same rescaled to
        norm ``sqrt(D)`` (Lu et al.'s pools).
    """

    D: int
    N: int
    P: int
    convention: str = DEFAULT_CONVENTION
    noise: float = 0.0
    tasks: int | None = None
    pool_seed: int = 0
    assignment: str = "uniform"
    task_norm: str = "gaussian"

    #: the registry name of this distribution (:func:`register_task`)
    name: ClassVar[str] = "gaussian"

    _parameter_constraints: ClassVar[dict] = {
        "D": Int(1),
        "N": Int(1),
        "P": Int(1),
        "convention": CONVENTION,
        "noise": Real(low=0.0),
        "tasks": POOL_SIZE,
        "pool_seed": Int(0, 2**63 - 1),
        "assignment": Choice(ASSIGNMENTS),
        "task_norm": Choice(TASK_NORMS),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.key().items() if k not in ("D", "N", "P"))
        return f"{type(self).__name__}(D={self.D}, N={self.N}, P={self.P}{extra})"

    @property
    def conv(self) -> Convention:
        """The :class:`Convention` object (one shared instance per name)."""
        return get_convention(self.convention)

    @property
    def n_spins(self) -> int:
        """Number of spins ``(D+1)^2`` (entries of W)."""
        return (self.D + 1) ** 2

    @property
    def prefactor(self) -> float:
        """Attention prefactor c of this convention."""
        return self.conv.prefactor(self.D, self.N)

    @property
    def label_scale(self) -> float:
        """``s`` of ``y = s w.x + noise``."""
        return self.conv.label_scale(self.D)

    # ------------------------------------------------------------ identity
    def key(self) -> dict:
        """The fields that define this distribution, as a JSON-able dict: what seeds
        and stores hash. Fields at their defaults that older versions did not have
        (the pool, the task law, the distribution's name) are left out, so a config
        of the paper's setting has the key it always had and old stores resume."""
        k: dict[str, Any] = {
            "D": self.D,
            "N": self.N,
            "P": self.P,
            "convention": self.convention,
            "noise": self.noise,
        }
        if type(self).name != "gaussian":
            k["distribution"] = type(self).name
        if self.task_norm != "gaussian":
            k["task_norm"] = self.task_norm
        if self.tasks is not None:
            k.update(tasks=self.tasks, pool_seed=self.pool_seed, assignment=self.assignment)
        return k

    def key_hash(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`key`."""
        return sha256_hex(canonical_json(self.key()))

    def same_law(self, other: TaskConfig) -> bool:
        """Whether ``other`` draws prompts from the same law (equal keys but for P)."""
        a, b = dict(self.key()), dict(other.key())
        a.pop("P"), b.pop("P")
        return type(self) is type(other) and a == b

    # ------------------------------------------------------------ tasks
    @classmethod
    def _fresh(cls, D: int, task_norm: str, shape: tuple, g: torch.Generator) -> torch.Tensor:
        """Fresh tasks (*shape, D), float64: ``N(0, I_D)``, rescaled to norm sqrt(D) for
        ``task_norm="sphere"``. A new distribution overrides this (and
        :meth:`fresh_moments`)."""
        w = torch.randn(*shape, D, generator=g, dtype=torch.float64)
        if task_norm == "sphere":
            w = w * (D**0.5 / w.norm(dim=-1, keepdim=True).clamp_min(1e-300))
        return w

    def fresh_tasks(self, shape: tuple, generator: torch.Generator) -> torch.Tensor:
        """Fresh tasks (*shape, D) from the task law (the in-context test tasks)."""
        return type(self)._fresh(self.D, self.task_norm, tuple(shape), generator)

    def fresh_moments(self) -> TaskMoments:
        """Moments of a fresh task: ``E w = 0``, ``E w w^T = I``, ``E |w|^2 w = 0`` and
        ``E |w|^4 = D (D+2)`` (Gaussian) or ``D^2`` (sphere)."""
        D = self.D
        z = torch.zeros(D, dtype=torch.float64)
        fourth = float(D * D) if self.task_norm == "sphere" else float(D * (D + 2))
        return TaskMoments(z, torch.eye(D, dtype=torch.float64), z.clone(), fourth)

    @property
    def pool(self) -> torch.Tensor | None:
        """The K pool tasks (K, D), float64 on the CPU, or None without a pool."""
        if self.tasks is None:
            return None
        return _pool(type(self), self.D, self.tasks, self.pool_seed, self.task_norm)

    def moments(self, kind: str = "icl") -> TaskMoments:
        """Task moments of the test tasks: ``"icl"`` fresh tasks, ``"idg"`` the training
        tasks (the pool's empirical moments, each task weight 1/K; fresh without a pool)."""
        check_choice("kind", kind, ("icl", "idg"))
        if kind == "idg" and self.tasks is not None:
            return TaskMoments.of(self.pool)
        return self.fresh_moments()

    def check_sizes(self) -> None:
        """Refuse a pool that cannot be assigned: equal repetition needs ``K <= P``."""
        if self.tasks is not None and self.assignment == "equal" and self.tasks > self.P:
            raise ParameterError(
                f"tasks must be <= P = {self.P} with assignment 'equal' (each task used "
                f"P/K >= 1 times), got {self.tasks}"
            )

    def draw_tasks(
        self, batch_shape: tuple, generator: torch.Generator, offset: int = 0
    ) -> torch.Tensor:
        """The tasks of this config's P prompts (*batch_shape, P, D), float64: fresh
        ones, or pool tasks (drawn uniformly, or ``(offset + mu) mod K`` for ``equal``)."""
        shape = (*batch_shape, self.P)
        if self.tasks is None:
            return self.fresh_tasks(shape, generator)
        pool = self.pool
        if self.assignment == "equal":
            idx = (torch.arange(self.P) + offset) % self.tasks
            idx = idx.expand(shape)
        else:
            idx = torch.randint(self.tasks, shape, generator=generator)
        return pool[idx]

    def label_variance(self, kind: str = "icl") -> float:
        """``E y~^2 = s^2 E|w|^2 + noise^2`` over the test tasks of ``kind``."""
        m = self.moments(kind)
        return self.label_scale**2 * float(m.second.diagonal().sum()) + self.noise**2

    # ------------------------------------------------------------ sampling
    def sample_prompts(self, **kw) -> Prompts:
        """:func:`sample_prompts` of this distribution."""
        return sample_prompts(self, **kw)

    def sample_factors(self, **kw) -> Factors:
        """:func:`sample_factors` of this distribution."""
        return sample_factors(self, **kw)

    def draw_factors(self, **kw) -> Factors:
        """:func:`draw_factors` of this distribution (``sampler``, ``nested``, ...)."""
        return draw_factors(self, **kw)

    # ------------------------------------------------------------ test errors
    def exact_test_error(self, W: torch.Tensor, kind: str = "icl") -> torch.Tensor:
        """Closed-form ``E (y~ - y^)^2`` of weights W over test tasks of ``kind``
        (:func:`spinglass_icl.testerrors.moment_test_error`; for fresh Gaussian tasks
        :func:`~spinglass_icl.testerrors.exact_test_error` itself)."""
        from .testerrors import exact_test_error, moment_test_error

        check_choice("kind", kind, ("icl", "idg"))
        fresh = kind == "icl" or self.tasks is None
        gaussian = self.task_norm == "gaussian" and type(self)._fresh is TaskConfig._fresh
        if fresh and gaussian and type(self).fresh_moments is TaskConfig.fresh_moments:
            return exact_test_error(W, self.N, self.convention, self.noise)
        return moment_test_error(W, self.N, self.convention, self.noise, self.moments(kind))

    def test_error(
        self,
        W: torch.Tensor,
        kind: str = "icl",
        *,
        n_tasks: int = 10_000,
        seed: int = 12345,
        chunk: int = 20_000,
        exact: bool = False,
    ):
        """:class:`~spinglass_icl.testerrors.TestError` of W (spins or matrices, batch
        dims allowed) on fresh tasks (``kind="icl"``, e_ICL) or on tasks drawn uniformly
        from the training pool (``"idg"``, e_IDG; the same as ``"icl"`` without a pool):
        the Monte Carlo mean over ``n_tasks`` test prompts drawn from ``seed`` (the same
        prompts for every W), or with ``exact=True`` the closed form
        (:meth:`exact_test_error`, ``stderr = 0``, ``n_tasks = 0``)."""
        from .testerrors import TestError, _weights, mc_test_error

        check_choice("kind", kind, ("icl", "idg"))
        W = _weights("W", W)
        if W.shape[-1] - 1 != self.D:
            raise ParameterError(f"W must be ({self.D + 1}, {self.D + 1}) for D = {self.D}")
        var = self.label_variance(kind)
        if exact:
            err = self.exact_test_error(W, kind)
            return TestError(err, torch.zeros_like(err), err / var, 0)
        n_tasks = check_int("n_tasks", n_tasks)
        chunk = check_int("chunk", chunk)
        law = dataclasses.replace(self, P=1, tasks=None) if kind == "icl" else self
        if kind == "idg" and self.tasks is not None:
            law = dataclasses.replace(self, P=1, assignment="uniform")
        elif kind == "idg":
            law = dataclasses.replace(self, P=1)
        sets = _law_test_set(law, n_tasks, seed, chunk, W.device, W.dtype)
        return mc_test_error(W, sets, self.prefactor, var)


@functools.lru_cache(maxsize=32)
def _law_test_set(law: TaskConfig, n_tasks, seed, chunk, device, dtype):
    """Test prompts of a task law, drawn in chunks from one generator seeded with
    ``seed`` and kept as their factors (every W scored with the same arguments sees the
    same prompts, drawn once per process)."""
    g = make_generator(seed)
    out, done = [], 0
    while done < n_tasks:
        k = min(chunk, n_tasks - done)
        pr = sample_prompts(dataclasses.replace(law, P=k), generator=g, device=device, dtype=dtype)
        out.append((pr.u, pr.q, pr.y))
        done += k
    return tuple(out)


register_task(TaskConfig)


@dataclass(frozen=True)
class Prompts:
    """A batch of prompts.

    Attributes
    ----------
    X : Tensor, shape (*batch, P, D+1, N+1)
        Prompt matrices of eq. (1); the query label entry ``X[..., D, N]`` is 0.
    w : Tensor, shape (*batch, P, D)
        The task vector of each prompt.
    y : Tensor, shape (*batch, P)
        The hidden query labels ``y~`` (with noise if ``config.noise > 0``).
    config : TaskConfig
        What made them.
    """

    X: torch.Tensor
    w: torch.Tensor
    y: torch.Tensor
    config: TaskConfig = field(repr=False)

    @property
    def u(self) -> torch.Tensor:
        """``u = sum_i y_i [x_i; y_i]``, shape (*batch, P, D+1): row D+1 of ``X X^T`` (eq. 3)."""
        N = self.config.N
        ctx = self.X[..., :N]  # (*, P, D+1, N)
        return torch.einsum("...mi,...i->...m", ctx, ctx[..., -1, :])

    @property
    def q(self) -> torch.Tensor:
        """The query column ``[x~; 0]``, shape (*batch, P, D+1)."""
        return self.X[..., -1]

    #: the prompt axis of each tensor field (for slicing and concatenating)
    _DIMS: ClassVar[dict[str, int]] = {"X": -3, "w": -2, "y": -1}

    def __post_init__(self) -> None:
        # shapes agree with the config: a narrower X would count its query as context
        c = self.config
        if not isinstance(c, TaskConfig):
            raise ParameterError(f"config must be a TaskConfig, got {type(c).__name__}")
        b = tuple(self.X.shape[:-3])
        check_shape("X", self.X, (*b, c.P, c.D + 1, c.N + 1), "(*batch, P, D+1, N+1)")
        check_shape("w", self.w, (*b, c.P, c.D), "(*batch, P, D)")
        check_shape("y", self.y, (*b, c.P), "(*batch, P)")

    def head(self, P: int) -> Prompts:
        """The first ``P`` prompts (``1 <= P <=`` this batch's P), as a new :class:`Prompts`."""
        return _take(self, 0, check_int("P", P, maximum=self.config.P))

    def factors(self) -> Factors:
        """The rank-one factors ``(u, q, y~)`` of these prompts (all a spin glass needs)."""
        return Factors(u=self.u, q=self.q, y=self.y, config=self.config)

    def features(self) -> torch.Tensor:
        """Spin features ``s^mu = vec(S^mu)``, shape (*batch, P, (D+1)^2) (eq. 3).

        ``S^mu = c u (x) [x~; 0]`` (rank one), flattened row-major so that spin
        ``i = (D+1) m + n`` (0-based) is ``W[m, n]``; then ``y^ = s.sigma``.
        """
        return self.factors().features()


def sample_prompts(
    D: int | TaskConfig,
    N: int | None = None,
    P: int | None = None,
    *,
    convention: str | Convention | None = None,
    noise: float | None = None,
    seed: int = 0,
    batch_shape: tuple[int, ...] = (),
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
    task_offset: int = 0,
) -> Prompts:
    """Sample ``P`` in-context regression prompts (eq. 1), each with its own task.

    Parameters
    ----------
    D, N, P : int, or D a TaskConfig
        Dimension, context length, number of prompts (all >= 1), or the whole
        :class:`TaskConfig` (then N, P, convention and noise are not given).
    convention : str or Convention
        Normalization convention (default ``authors``); sets the label scale.
    noise : float
        Label-noise standard deviation (default 0; context and query labels).
    seed : int
        Seed of a fresh CPU generator (ignored when ``generator`` is given).
    batch_shape : tuple of int
        Leading batch dimensions: independent instances drawn in one call.
    device, dtype
        Where the result lives; numbers are drawn in float64 on the CPU first.
    generator : torch.Generator, optional
        A CPU generator to draw from (continues its stream).
    task_offset : int
        Index of the first prompt in its stream (a pool with ``assignment="equal"``
        gives prompt mu the task ``(task_offset + mu) mod K``).

    Returns
    -------
    Prompts
    """
    cfg = task_config(D, N, P, convention, noise)
    cfg.check_sizes()
    return _draw_prompts(cfg, seed, batch_shape, device, dtype, generator, task_offset)


def _check_draw(cfg, batch_shape, device, dtype):
    dev = resolve_device(device)
    for b in batch_shape:
        check_int("batch_shape entry", b)
    check_prompt_memory(cfg.D, cfg.N, cfg.P, batch_shape, dev)  # before allocating
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ParameterError(f"dtype must be a floating torch dtype, got {dtype!r}")
    return dev


def _draw_prompts(cfg, seed, batch_shape, device, dtype, generator, task_offset=0) -> Prompts:
    dev = _check_draw(cfg, batch_shape, device, dtype)
    g = generator if generator is not None else make_generator(seed)
    scale = cfg.conv.label_scale(cfg.D)
    shape = (*batch_shape, cfg.P)
    w = cfg.draw_tasks(tuple(batch_shape), g, task_offset)
    x = torch.randn(*shape, cfg.D, cfg.N + 1, generator=g, dtype=torch.float64)
    labels = scale * torch.einsum("...d,...dn->...n", w, x)
    if cfg.noise > 0:
        labels = labels + cfg.noise * torch.randn(
            *shape, cfg.N + 1, generator=g, dtype=torch.float64
        )
    y_query = labels[..., -1].clone()
    labels[..., -1] = 0.0
    X = torch.cat([x, labels[..., None, :]], dim=-2)
    return Prompts(
        X=X.to(device=dev, dtype=dtype),
        w=w.to(device=dev, dtype=dtype),
        y=y_query.to(device=dev, dtype=dtype),
        config=cfg,
    )


def _take(obj, lo: int, hi: int):
    """Prompts ``lo <= mu < hi`` of a :class:`Prompts` or :class:`Factors` (views)."""
    fields = {k: getattr(obj, k).narrow(d, lo, hi - lo) for k, d in obj._DIMS.items()}
    return dataclasses.replace(obj, **fields, config=dataclasses.replace(obj.config, P=hi - lo))


def _concat(parts: list):
    """Concatenate prompt batches (or their factors) of one distribution along the
    prompt axis."""
    if not parts:
        raise ValueError("concat_prompts needs at least one Prompts")
    c0 = parts[0].config
    for p in parts[1:]:
        if not p.config.same_law(c0):
            raise ValueError("concat_prompts: parts differ in D, N, convention, noise or task pool")
    cfg = dataclasses.replace(c0, P=sum(p.config.P for p in parts))
    dims = parts[0]._DIMS
    fields = {k: torch.cat([getattr(p, k) for p in parts], dim=d) for k, d in dims.items()}
    return dataclasses.replace(parts[0], **fields, config=cfg)


def concat_prompts(parts: list[Prompts]) -> Prompts:
    """Concatenate prompt batches of one distribution (same D, N, convention, noise)
    along the prompt axis."""
    return _concat(parts)


def _block_seed(seed: int, index: int) -> int:
    """63-bit seed of block ``index`` of the nested stream with base ``seed``
    (:func:`spinglass_icl.seeds.joined`, kept bit for bit)."""
    return joined("nested-prompts", seed, index)


def _block(draw, cfg: TaskConfig, index: int, *, seed, device, dtype):
    """Block ``index`` of the nested stream of ``seed``, drawn by ``draw``."""
    seed = check_int("seed", seed, minimum=0)
    index = check_int("index", index, minimum=0)
    cfg = dataclasses.replace(cfg, P=NESTED_BLOCK)
    off = index * NESTED_BLOCK
    return draw(cfg, _block_seed(seed, index), (), device, dtype, None, off)


def _nested_range(block, cfg: TaskConfig, start: int, stop: int, **kw):
    """Prompts ``start <= mu < stop`` of the nested stream made of ``block`` s: only the
    blocks that hold them are drawn."""
    b0, b1 = start // NESTED_BLOCK, -(-stop // NESTED_BLOCK)
    full = _concat([block(cfg, b, **kw) for b in range(b0, b1)])
    return _take(full, start - b0 * NESTED_BLOCK, stop - b0 * NESTED_BLOCK)


def _prompt_block(cfg: TaskConfig, index: int, **kw) -> Prompts:
    return _block(_draw_prompts, cfg, index, **kw)


def prompt_block(
    D: int,
    N: int,
    index: int,
    *,
    convention: str | Convention = DEFAULT_CONVENTION,
    noise: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> Prompts:
    """Block ``index`` (>= 0) of the nested prompt stream of ``seed``: prompts
    ``index * NESTED_BLOCK ... (index + 1) * NESTED_BLOCK - 1``, drawn by
    :func:`sample_prompts` from a generator of their own (seeded from ``seed`` and
    ``index``), so any block can be drawn without the ones before it."""
    cfg = task_config(D, N, NESTED_BLOCK, convention, noise)
    return _prompt_block(cfg, index, seed=seed, device=device, dtype=dtype)


def sample_prompts_nested(
    D: int | TaskConfig,
    N: int | None = None,
    P: int | None = None,
    *,
    convention: str | Convention | None = None,
    noise: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> Prompts:
    """Sample ``P`` prompts (eq. 1) from the *nested* stream of ``seed``.

    The same distribution as :func:`sample_prompts` (a different draw for the same
    seed), with one more property: the draw of ``P`` prompts is the first ``P`` prompts
    of the draw of any ``P' > P``. Sweeps over task diversity use it
    (``SweepSpec(nested_p=True)``) so that the instances of one repeat at increasing P
    share their prompts, and the couplings of the larger P are those of the smaller
    plus the new prompts' (common random numbers; :mod:`spinglass_icl.sweep.rows`).

    The prompts come in blocks of :data:`NESTED_BLOCK` (:func:`prompt_block`), each
    from its own generator; the last block is cut to ``P``.
    """
    cfg = task_config(D, N, P, convention, noise)
    cfg.check_sizes()
    return _nested_range(_prompt_block, cfg, 0, cfg.P, seed=seed, device=device, dtype=dtype)


class RankOneFactors:
    """What every holder of rank-one factors ``(u, q, y~)`` and a :class:`TaskConfig`
    shares: the features and slicing along the prompt axis (:class:`Factors`, and the
    spin-glass :class:`~spinglass_icl.hamiltonian.Instance`)."""

    u: torch.Tensor
    q: torch.Tensor
    y: torch.Tensor
    config: TaskConfig

    #: the prompt axis of each tensor field (for slicing and concatenating)
    _DIMS: ClassVar[dict[str, int]] = {"u": -2, "q": -2, "y": -1}

    def features(self) -> torch.Tensor:
        """``s^mu = vec(c u (x) q)``, shape (*batch, P, (D+1)^2), as :meth:`Prompts.features`."""
        s = self.config.prefactor * self.u[..., :, None] * self.q[..., None, :]
        return s.reshape(*s.shape[:-2], -1)

    def head(self, P: int):
        """The first ``P`` prompts' factors."""
        return _take(self, 0, check_int("P", P, maximum=self.config.P))


@dataclass(frozen=True)
class Factors(RankOneFactors):
    """The rank-one factors of P prompts: all that the spin glass (eq. 3-5) sees.

    ``S^mu = c u_mu (x) q_mu`` with ``u = sum_i y_i [x_i; y_i]`` and ``q = [x~; 0]``.

    Attributes
    ----------
    u, q : Tensor, shape (*batch, P, D+1)
    y : Tensor, shape (*batch, P)
        The query labels ``y~``.
    config : TaskConfig
    """

    u: torch.Tensor
    q: torch.Tensor
    y: torch.Tensor
    config: TaskConfig = field(repr=False)


def sample_factors(
    D: int | TaskConfig,
    N: int | None = None,
    P: int | None = None,
    *,
    convention: str | Convention | None = None,
    noise: float | None = None,
    seed: int = 0,
    batch_shape: tuple[int, ...] = (),
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
    task_offset: int = 0,
) -> Factors:
    """Draw the factors ``(u, q, y~)`` of ``P`` prompts from their exact law, without the
    prompts: ``3D + N`` Gaussian numbers per prompt (``3D + 2N + 1`` with noise) instead
    of ``(N + 2) D + N + 1``.

    With the task ``w = r e`` (``|e| = 1``), split every context input as
    ``x_i = z_i e + x_i^perp``: ``z_i ~ N(0, 1)`` and the ``x_i^perp`` are independent
    standard normals in the plane orthogonal to e, independent of the labels
    ``y_i = s r z_i + sigma eps_i``. Hence, exactly in law,

        sum_i y_i x_i = (sum_i y_i z_i) e + sqrt(sum_i y_i^2) (I - e e^T) g,  g ~ N(0, I_D)
        u = [sum_i y_i x_i ; sum_i y_i^2],   q = [x~; 0],   y~ = s w.x~ + sigma eps~

    (given the labels, ``sum_i y_i x_i^perp`` is Gaussian with covariance
    ``sum_i y_i^2 (I - e e^T)``). The same distribution as :func:`sample_prompts`'s
    factors (tested moment by moment and through the solved instances), a different
    draw for the same seed. Numbers are drawn in float64 on the CPU and then moved.
    """
    cfg = task_config(D, N, P, convention, noise)
    cfg.check_sizes()
    return _draw_factors(cfg, seed, batch_shape, device, dtype, generator, task_offset)


def _draw_factors(cfg, seed, batch_shape, device, dtype, generator, task_offset=0) -> Factors:
    dev = _check_draw(cfg, batch_shape, device, dtype)
    g = generator if generator is not None else make_generator(seed)
    scale = cfg.conv.label_scale(cfg.D)
    shape = (*batch_shape, cfg.P)
    f64 = torch.float64
    w = cfg.draw_tasks(tuple(batch_shape), g, task_offset)
    xq = torch.randn(*shape, cfg.D, generator=g, dtype=f64)  # the query x~
    gp = torch.randn(*shape, cfg.D, generator=g, dtype=f64)
    z = torch.randn(*shape, cfg.N, generator=g, dtype=f64)  # x_i . e
    r = w.norm(dim=-1, keepdim=True)
    e = w / r.clamp_min(torch.finfo(f64).tiny)
    yc = scale * r * z  # context labels
    yq = scale * (w * xq).sum(-1)
    if cfg.noise > 0:
        yc = yc + cfg.noise * torch.randn(*shape, cfg.N, generator=g, dtype=f64)
        yq = yq + cfg.noise * torch.randn(*shape, generator=g, dtype=f64)
    syz = (yc * z).sum(-1, keepdim=True)
    syy = (yc * yc).sum(-1, keepdim=True)
    perp = gp - e * (e * gp).sum(-1, keepdim=True)
    u = torch.cat([syz * e + syy.sqrt() * perp, syy], dim=-1)
    q = torch.cat([xq, torch.zeros(*shape, 1, dtype=f64)], dim=-1)
    return Factors(
        u=u.to(device=dev, dtype=dtype),
        q=q.to(device=dev, dtype=dtype),
        y=yq.to(device=dev, dtype=dtype),
        config=cfg,
    )


def _factor_block(cfg: TaskConfig, index: int, **kw) -> Factors:
    return _block(_draw_factors, cfg, index, **kw)


def factors_range(
    cfg: TaskConfig,
    start: int,
    stop: int,
    *,
    sampler: str = "prompts",
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> Factors:
    """The factors of prompts ``start <= mu < stop`` of the nested stream of ``seed`` for
    the distribution ``cfg`` (its P is not used): :func:`sample_prompts_nested`, or with
    ``sampler="factors"`` :func:`sample_factors_nested`, drawing only the blocks that
    hold them: how a sweep extends an instance from one P to the next."""
    check_choice("sampler", sampler, SAMPLERS)
    start = check_int("start", start, minimum=0)
    stop = check_int("stop", stop, minimum=start + 1)
    dataclasses.replace(cfg, P=stop).check_sizes()
    if sampler == "factors":
        block = _factor_block
    else:

        def block(*a, **k):
            return _prompt_block(*a, **k).factors()

    return _nested_range(block, cfg, start, stop, seed=seed, device=device, dtype=dtype)


def sample_factors_nested(
    D: int | TaskConfig,
    N: int | None = None,
    P: int | None = None,
    *,
    convention: str | Convention | None = None,
    noise: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> Factors:
    """:func:`sample_factors` with the prefix property of :func:`sample_prompts_nested`."""
    cfg = task_config(D, N, P, convention, noise)
    return factors_range(cfg, 0, cfg.P, sampler="factors", seed=seed, device=device, dtype=dtype)


def draw_factors(
    D: int | TaskConfig,
    N: int | None = None,
    P: int | None = None,
    *,
    sampler: str = "prompts",
    nested: bool = False,
    convention: str | Convention | None = None,
    noise: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> Factors:
    """The factors of an instance drawn by ``sampler`` (:data:`SAMPLERS`), from the
    nested stream if ``nested``: one entry point for every combination."""
    check_choice("sampler", sampler, SAMPLERS)
    cfg = task_config(D, N, P, convention, noise)
    kw = dict(seed=seed, device=device, dtype=dtype)
    if nested:
        return factors_range(cfg, 0, cfg.P, sampler=sampler, **kw)
    if sampler == "factors":
        return sample_factors(cfg, **kw)
    return sample_prompts(cfg, **kw).factors()

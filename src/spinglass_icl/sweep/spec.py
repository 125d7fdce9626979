"""Sweep specification: a grid over model parameters with deterministic seeds.

A :class:`SweepSpec` names a grid (the Cartesian product of value lists for any of
:data:`PARAMS`), fixed values for the other parameters, a number of repeats and one base
seed. It expands into :class:`Task` s, one per (point, repeat), each with

* ``seed``: the seed of its training prompts, a 63-bit integer hashed from the base seed,
  the parameters that define the *data* (D, N, P, convention, noise) and the repeat.
  With a task pool (``tasks`` = K) the data also include K, the repeat's pool seed
  and the assignment, with ``task_norm = "sphere"`` the task norm; in the paper's
  setting (no pool, Gaussian tasks) nothing is added, so its rows keep the seeds and
  keys they always had.
  Points that differ only in lam, beta or solver therefore see the same instances
  (common random numbers), and the seed never depends on the executor or on the order
  in which tasks run;
* ``test_seed``: the seed of the fresh test prompts, hashed from the base seed and
  (D, N, convention, noise): every row with the same data distribution is scored on
  the same test set, so test errors compare without extra noise (and batch); rows
  that differ only in their pool share it too (e_ICL compares along K);
* ``key``: a hash of the full configuration (point, fixed values, solver options,
  observables, repeat and seeds) -- the primary key of its row in the store.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .. import storage
from ..conventions import CONVENTIONS, DEFAULT_CONVENTION
from ..errors import (
    Check,
    Choice,
    ConfigError,
    Flag,
    Int,
    ParameterError,
    check_choice,
    check_float,
    check_int,
    validate_fields,
)
from ..observables import CONTRASTS
from ..seeds import derive
from ..solvers import (
    DEFAULT_SOLVER,
    PAPER_SETTINGS,
    Settings,
    check_auto_damping,
    get_solver,
    solver_names,
)
from ..tasks import (
    ASSIGNMENTS,
    SAMPLERS,
    TASK_DISTRIBUTIONS,
    TASK_NORMS,
    TaskConfig,
    get_task_distribution,
)

__all__ = [
    "PARAMS",
    "DATA_PARAMS",
    "OBSERVABLES",
    "TEST_ERRORS",
    "DEFAULTS",
    "SweepSpec",
    "Task",
    "derive_seed",
    "canonical_json",
    "NO_POOL",
    "check_pool_size",
]

#: parameters a sweep may vary (grid) or fix
PARAMS: tuple[str, ...] = (
    "D", "N", "P", "lam", "beta", "convention", "solver", "noise", "tasks",
)  # fmt: skip
#: parameters that define the training data, hence the instance seed
DATA_PARAMS: tuple[str, ...] = ("D", "N", "P", "convention", "noise", "tasks")
#: observables a sweep can record
OBSERVABLES: tuple[str, ...] = ("contrast", "test_error")
#: how the test error is computed: the closed form (no sampling) or Monte Carlo
TEST_ERRORS: tuple[str, ...] = ("exact", "mc")
#: values used for parameters that are neither in the grid nor fixed
DEFAULTS: dict[str, Any] = {
    "beta": 100.0,
    "convention": DEFAULT_CONVENTION,
    "solver": DEFAULT_SOLVER,
    "noise": 0.0,
    "tasks": None,
}
#: how a spec writes "no pool" (K = None: a fresh task per prompt, the paper's setting):
#: TOML has no null, so the string "none" (``inf``, the K -> infinity limit, is also read)
NO_POOL = "none"
#: solver options and their defaults: the authors' AMP settings
#: (:data:`~spinglass_icl.solvers.PAPER_SETTINGS`; docs/solvers.md#convergence-and-divergence)
SOLVER_OPTIONS: dict[str, Any] = PAPER_SETTINGS.as_dict()

#: fields of a task distribution's key that the test prompts do not depend on
_POOL_FIELDS = ("P", "tasks", "pool_seed", "assignment")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: the text that is hashed
    (:func:`spinglass_icl.storage.canonical_json`; NaN and non-JSON values refused)."""
    return storage.canonical_json(obj)


def _hash(obj: Any) -> str:
    return storage.sha256_hex(canonical_json(obj))


#: a 63-bit seed from the SHA-256 of the canonical JSON of its parts: the package's one
#: seed derivation (:func:`spinglass_icl.seeds.derive`)
derive_seed = derive


def check_pool_size(value: Any, name: str = "tasks") -> int | None:
    """The task pool size K of a spec, a CLI flag or a TOML file: None, ``"none"``
    (any case) or ``inf`` mean no pool (a fresh task per prompt); else an integer >= 1
    (an integral float such as 8.0 is read as 8). Anything else raises
    :class:`ParameterError` naming ``name``, the allowed values and the value as typed."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == NO_POOL:
        return None
    if isinstance(value, float) and value == math.inf:
        return None
    try:
        if isinstance(value, str):  # a CLI flag: "8"
            return check_int(name, int(value.strip()))
        return check_int(name, value)
    except (ValueError, ParameterError):
        pass
    raise ParameterError(
        f"{name} (the task pool size K) must be an integer >= 1 or {NO_POOL!r} "
        f"(a fresh task per prompt), got {value!r}"
    )


def _check_value(name: str, value: Any) -> Any:
    """Validate one parameter value and return it in canonical type (int / float / str)."""
    if name == "tasks":
        return check_pool_size(value)
    if name in ("D", "N", "P"):
        return check_int(name, value)
    if name == "lam":
        return check_float(name, value, low=0.0, low_open=True)
    if name == "beta":
        return check_float(name, value, low=0.0, low_open=True)
    if name == "noise":
        return check_float(name, value, low=0.0)
    if name == "convention":
        return check_choice(name, value, CONVENTIONS)
    if name == "solver":
        return get_solver(value).name
    raise ParameterError(f"sweep parameter must be one of {', '.join(PARAMS)}; got {name!r}")


@dataclass(frozen=True)
class Task:
    """One (point, repeat) of a sweep: what a worker needs to compute one row.

    Attributes
    ----------
    key : str
        SHA-256 of the full configuration; the row's primary key in the store.
    params : dict
        All of :data:`PARAMS` for this point.
    repeat : int
        Repeat index in ``range(spec.repeats)``.
    seed, test_seed : int
        Seeds of the training instance and of the test prompts (see module docstring).
    distribution : str
        The registered task distribution.
    law : tuple of (name, value)
        The other :class:`~spinglass_icl.tasks.TaskConfig` fields of the instance
        (``pool_seed``, ``assignment``, ``task_norm``) where they are not the defaults;
        ``pool_seed`` is this repeat's (:meth:`SweepSpec.pool_seed_of`).
    """

    key: str
    params: dict
    repeat: int
    seed: int
    test_seed: int
    distribution: str = "gaussian"
    law: tuple = ()

    @property
    def pool_seed(self) -> int | None:
        """The seed of this row's task pool; None without a pool."""
        return dict(self.law).get("pool_seed") if self.params.get("tasks") else None

    @property
    def family(self) -> tuple:
        """Tasks with equal families share their training prompts up to their P (a
        ``nested_p`` sweep): same D, N, convention, noise and instance seed."""
        p = self.params
        return (p["D"], p["N"], p["convention"], p["noise"], self.seed)

    @property
    def task_config(self) -> TaskConfig:
        """The prompt distribution of the task's instance (D, N, P, convention, noise,
        and the task pool K with its options)."""
        p = self.params
        cls = get_task_distribution(self.distribution)
        return cls(*(p[k] for k in DATA_PARAMS), **dict(self.law))

    @property
    def group(self) -> tuple:
        """Tasks with equal groups can be solved as one batch: same D, P, lam, beta,
        solver (hence same instance shape and solver), convention and noise."""
        p = self.params
        return (p["D"], p["P"], p["lam"], p["beta"], p["solver"], p["convention"], p["noise"])


def _table(what: str) -> Check:
    """A field constraint: a dict (``what``: its entries in words)."""

    def check(name: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise ParameterError(f"{name} must be a table {what}, got {value!r}")
        return value

    return Check(check, f"a table {what}", [("x", "'x'"), ([1], "[1]")])


def _check_observables(name: str, value: Any) -> tuple[str, ...]:
    """One of :data:`OBSERVABLES` or a list of them, as a tuple."""
    obs = (value,) if isinstance(value, str) or not hasattr(value, "__iter__") else value
    return tuple(check_choice(name, o, OBSERVABLES) for o in obs)


@dataclass(frozen=True)
class SweepSpec:
    """A parameter sweep.

    Attributes
    ----------
    grid : dict
        ``{param: [values]}`` for any of :data:`PARAMS`; the sweep is the Cartesian
        product. Values are kept in the given order for running and sorted on export.
    fixed : dict
        ``{param: value}`` for parameters not in the grid. D, N, P and lam must appear
        in ``grid`` or ``fixed``; beta (100), convention (authors), solver (amp),
        noise (0) and tasks (None) have defaults.

        ``tasks`` is the task pool size K (docs/theory.md#task-diversity): the P
        training prompts take their tasks from a pool of K tasks, so P and K are two
        axes (``grid = {"tasks": [8, 32, None]}``). None -- written ``"none"`` in
        TOML, which has no null -- is the paper's setting, a fresh task per prompt:
        its rows have the keys, seeds and numbers they had before the option. Rows
        with a pool also report the in-distribution test error (``test_error_idg``)
        and ``gtask = test_error - test_error_idg`` (``test_error`` is then e_ICL).
    repeats : int
        Independent instances per point (>= 1).
    seed : int
        Base seed (>= 0) from which every instance and test seed is derived.
    solver_options : dict
        ``damping`` (default 0.9), ``tol`` (1e-6), ``max_iter`` (2000): the authors'
        AMP settings (docs/solvers.md#convergence-and-divergence). ``damping = "auto"``: per batch
        of instances, the smallest damping predicted to converge
        (:func:`spinglass_icl.solvers.stability.batch_auto_damping`; docs/amp-stability.md).
    observables : tuple of str
        Any of :data:`OBSERVABLES`; NULL for runs that did not converge.
    test_error : str
        ``"exact"`` (default): the closed-form expectation ``E (y~ - y^)^2`` over fresh
        tasks (:func:`spinglass_icl.theory.exact_test_error`, eqs. 2 and 40; no sampling,
        ``test_error_stderr = 0``); ``"mc"``: the Monte Carlo mean over ``test_tasks``
        fresh prompts drawn from ``test_seed``
        (:func:`spinglass_icl.observables.test_error`), with its standard error. Specs
        stored before this option existed were Monte Carlo and are read back as ``"mc"``.
    test_tasks : int
        Fresh prompts used for the Monte Carlo test error (unused with ``"exact"``).
    store_arrays : bool
        Also store the marginals m and v of every row as blobs.
    contrast_kind : str
        ``"w11"`` (the text formula over W11, default), ``"full"`` or ``"cosine"``.
    matfree : bool
        Solve with the matrix-free solvers of :mod:`spinglass_icl.solvers.matfree` (large
        D, where dense couplings do not fit): ``exact`` by preconditioned CG (tolerance
        1e-10; the variances are not computed), ``amp`` / ``amp-paper`` with the
        block-uniform estimate of the variance term. ``rbp`` is not available. Prompts
        are drawn in chunks of 1024 (identical instances to the dense path for
        P <= 1024).
    nested_p : bool
        Nested task diversity (default false): the instances of one repeat at different
        P (and equal D, N, convention, noise) share their prompts -- the instance at P
        is the first P prompts of the one at any larger P
        (:func:`spinglass_icl.tasks.sample_prompts_nested`), and its seed does not
        depend on P. Every row is still an exact draw from the model (one more set of
        common random numbers, as between lam, beta and solver); the batched path then
        draws each repeat's prompts once and builds the couplings of every P from
        those of the P before it (:mod:`.rows`). A different draw from the default,
        so its rows have keys of their own.
    sampler : str
        ``"prompts"`` (default): draw every prompt (eq. 1) and form its factors;
        ``"factors"``: draw the factors ``(u, q, y~)`` directly from their exact law
        (:func:`spinglass_icl.tasks.sample_factors`; ``O(D + N)`` numbers per prompt
        instead of ``O(N D)``): the same distribution, another draw, so rows with their
        own keys. Combines with ``nested_p`` and ``matfree``.
    distribution : str
        A registered task distribution (:data:`~spinglass_icl.tasks.TASK_DISTRIBUTIONS`).
    pool_seed : int
        Base seed (>= 0) of the task pools (rows with ``tasks`` not None): repeat r
        draws its pools from the seed :meth:`pool_seed_of` ``(r)``: the pool of each K
        is shared by every point of the repeat (all P, N, lam, ...), and repeats
        average over pools as Lu et al.'s theory does.
    assignment : str
        ``"uniform"`` (default): each prompt takes a pool task at random; ``"equal"``:
        prompt mu takes task ``mu mod K`` (Lu et al.; needs K <= P at every point).
    task_norm : str
        ``"gaussian"`` (default): ``w ~ N(0, I_D)``; ``"sphere"``: rescaled to norm
        ``sqrt(D)`` (Lu et al.'s tasks; pool and fresh test tasks alike).
    """

    grid: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    repeats: int = 1
    seed: int = 0
    solver_options: dict = field(default_factory=dict)
    observables: tuple = ("contrast", "test_error")
    test_error: str = "exact"
    test_tasks: int = 2000
    store_arrays: bool = False
    contrast_kind: str = "w11"
    matfree: bool = False
    nested_p: bool = False
    sampler: str = "prompts"
    distribution: str = "gaussian"
    pool_seed: int = 0
    assignment: str = "uniform"
    task_norm: str = "gaussian"

    _parameter_constraints: ClassVar[dict] = {
        "grid": _table("{param: [values]}"),
        "fixed": _table("{param: value}"),
        "repeats": Int(1),
        "seed": Int(0),
        "solver_options": _table(f"of {', '.join(SOLVER_OPTIONS)}"),
        "observables": Check(
            _check_observables,
            f"one of {', '.join(OBSERVABLES)}",
            [("x", "'x'"), (3, "3")],
            label="observable",
        ),
        "test_error": Choice(TEST_ERRORS),
        "test_tasks": Int(1),
        "store_arrays": Flag(),
        "contrast_kind": Choice(CONTRASTS),
        "matfree": Flag(),
        "nested_p": Flag(),
        "sampler": Choice(SAMPLERS),
        "distribution": Choice(TASK_DISTRIBUTIONS),
        "pool_seed": Int(0),
        "assignment": Choice(ASSIGNMENTS),
        "task_norm": Choice(TASK_NORMS),
    }
    _cross_checks: ClassVar[tuple] = ("_check_params", "_check_solver_options", "_check_options")

    def __post_init__(self) -> None:
        validate_fields(self)

    def _check_params(self) -> None:
        """Check and normalize ``grid`` and ``fixed`` (with the defaults filled in)."""
        grid: dict[str, list] = {}
        for name, values in self.grid.items():
            if name not in PARAMS:
                raise ParameterError(
                    f"grid parameter must be one of {', '.join(PARAMS)}; got {name!r}"
                )
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                values = [values]
            vals = [_check_value(name, v) for v in values]
            if not vals:
                raise ParameterError(f"grid[{name!r}] must be a non-empty list, got []")
            if len(set(vals)) != len(vals):
                raise ParameterError(f"grid[{name!r}] must not repeat values, got {vals}")
            grid[name] = vals
        fixed: dict[str, Any] = {}
        for name, value in self.fixed.items():
            if name not in PARAMS:
                raise ParameterError(
                    f"fixed parameter must be one of {', '.join(PARAMS)}; got {name!r}"
                )
            if name in grid:
                raise ParameterError(f"{name} must be in grid or fixed, not both")
            fixed[name] = _check_value(name, value)
        for name, value in DEFAULTS.items():
            if name not in grid and name not in fixed:
                fixed[name] = value
        missing = [p for p in PARAMS if p not in grid and p not in fixed]
        if missing:
            raise ParameterError(
                f"{', '.join(missing)} must be given in grid or fixed (no default)"
            )
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "fixed", {k: fixed[k] for k in PARAMS if k in fixed})

    def _check_solver_options(self) -> None:
        """Check ``solver_options`` and fill in :data:`SOLVER_OPTIONS`' defaults."""
        opts = dict(SOLVER_OPTIONS)
        for k, v in self.solver_options.items():
            if k not in SOLVER_OPTIONS:
                raise ParameterError(
                    f"solver_options key must be one of {', '.join(SOLVER_OPTIONS)}; got {k!r}"
                )
            opts[k] = v
        if opts["damping"] == "auto":  # per batch, from the AMP stability analysis
            for s_ in self.grid.get("solver", [self.fixed.get("solver", DEFAULT_SOLVER)]):
                check_auto_damping(s_)
            if self.matfree:
                raise ParameterError("damping auto is not available with matfree = true")
        # the numbers are checked as every solver's settings are (Settings)
        numbers = {k: v for k, v in opts.items() if v != "auto"}
        checked = Settings(**{"damping": 0.5, **numbers})  # (auto: a placeholder)
        opts.update({k: getattr(checked, k) for k in numbers})
        object.__setattr__(self, "solver_options", opts)

    def _check_options(self) -> None:
        """Check the options that depend on each other (matfree, nested_p, solvers)."""
        if self.nested_p and self.matfree:
            raise ParameterError(
                "nested_p must be false when matfree = true (the matrix-free path draws "
                "its prompts in chunks of its own)"
            )
        if self.matfree and self.distribution != "gaussian":
            raise ParameterError("distribution must be 'gaussian' when matfree = true")
        self._check_pool()
        for s_ in self.grid.get("solver", [self.fixed.get("solver")]):
            if self.matfree and not get_solver(s_).matrix_free:
                raise ParameterError(
                    f"solver must be one of {', '.join(solver_names(matrix_free=True))} when "
                    f"matfree = true, got {s_!r}"
                )
            elif self.nested_p and "pair" not in get_solver(s_).backends:
                raise ParameterError(
                    f"solver must run on the pair backend when nested_p = true, got {s_!r}"
                )

    def _check_pool(self) -> None:
        """Check the task-pool options against the grid: K <= P with equal repetition,
        no pool on the matrix-free path, the law's fields."""
        if self.matfree and self.task_norm != "gaussian":
            raise ParameterError("task_norm must be 'gaussian' when matfree = true")
        pools = [K for K in self.pool_sizes if K is not None]
        if not pools:
            return
        if self.matfree:
            raise ParameterError(
                f"tasks must be {NO_POOL!r} when matfree = true (the matrix-free path draws "
                f"a fresh task per prompt), got {pools[0]}"
            )
        P = min(self.grid["P"] if "P" in self.grid else [self.fixed["P"]])
        if self.assignment == "equal" and max(pools) > P:
            raise ParameterError(
                f"tasks must be <= P = {P} with assignment 'equal' (each task used P/K >= 1 "
                f"times), got {max(pools)}"
            )

    @property
    def pool_sizes(self) -> list:
        """The values of ``tasks`` (the pool size K; None: no pool) the spec runs."""
        return list(self.grid["tasks"]) if "tasks" in self.grid else [self.fixed["tasks"]]

    def pool_seed_of(self, repeat: int) -> int:
        """The seed of repeat ``repeat``'s task pools: hashed from :attr:`pool_seed` and
        the repeat (one seed for every K of the repeat)."""
        return derive_seed("pool", self.pool_seed, repeat)

    def _law(self, repeat: int, K: int | None) -> tuple:
        """The :class:`Task.law` of a row of pool size ``K`` in repeat ``repeat``."""
        law = []
        if K is not None:
            law.append(("pool_seed", self.pool_seed_of(repeat)))
            law.append(("assignment", self.assignment))
        if self.task_norm != "gaussian":
            law.append(("task_norm", self.task_norm))
        return tuple(law)

    # ------------------------------------------------------------------ size
    @property
    def shape(self) -> tuple[int, ...]:
        """Number of values of each grid parameter (in grid order)."""
        return tuple(len(v) for v in self.grid.values())

    @property
    def n_points(self) -> int:
        return math.prod(self.shape)

    @property
    def n_tasks(self) -> int:
        """Rows of the sweep: points x repeats."""
        return self.n_points * self.repeats

    # ------------------------------------------------------------ expansion
    def points(self) -> list[dict]:
        """Every grid point as a full ``{param: value}`` dict (Cartesian product)."""
        names = list(self.grid)
        out = []
        for combo in itertools.product(*self.grid.values()):
            p = dict(self.fixed)
            p.update(zip(names, combo))
            out.append({k: p[k] for k in PARAMS})
        return out

    def tasks(self) -> list[Task]:
        """Every (point, repeat) as a :class:`Task`, points in grid order, repeats inner."""
        common = {
            "solver_options": self.solver_options,
            "observables": list(self.observables),
            "test_tasks": self.test_tasks,
            "contrast_kind": self.contrast_kind,
            "store_arrays": self.store_arrays,
        }
        if self.matfree:  # keys of dense sweeps do not change
            common["matfree"] = True
        if self.test_error != "mc":  # Monte Carlo rows keep the keys they had before
            common["test_error"] = self.test_error
        if self.nested_p:
            common["nested_p"] = True
        if self.sampler != "prompts":
            common["sampler"] = self.sampler
        if self.distribution != "gaussian":
            common["distribution"] = self.distribution
        out = []
        law = get_task_distribution(self.distribution)
        for p in self.points():
            values = [p[k] for k in DATA_PARAMS]
            # rows without a pool hash as before the option (no "tasks" entry)
            kp = p if p["tasks"] is not None else {k: v for k, v in p.items() if k != "tasks"}
            keys: dict[tuple, dict] = {}
            for r in range(self.repeats):
                items = self._law(r, p["tasks"])  # the repeat's pool seed, if any
                if items not in keys:
                    # the distribution's key: {D, N, P, convention, noise} for the paper's
                    # law, so the seeds (and keys) of the rows of before are unchanged
                    keys[items] = law(*values, **dict(items)).key()
                data = keys[items]
                # the test prompts of every K are the same (e_ICL compares across K)
                test_data = {k: v for k, v in data.items() if k not in _POOL_FIELDS}
                if self.nested_p:  # one prompt stream per (D, N, convention, noise, repeat)
                    data = {k: v for k, v in data.items() if k != "P"}
                seed = derive_seed(
                    "instance-nested" if self.nested_p else "instance", self.seed, data, r
                )
                test_seed = derive_seed("test", self.seed, test_data)
                body = {"params": kp, "repeat": r, "seed": seed, "test_seed": test_seed}
                if items:  # the pool (seed, assignment) and task law: explicit in the key
                    body["law"] = dict(items)
                key = _hash({**body, **common})
                out.append(Task(key, p, r, seed, test_seed, self.distribution, items))
        return out

    # --------------------------------------------------------- serialization
    def to_dict(self) -> dict:
        """Plain-data form (what TOML and the store hold)."""
        d = dataclasses.asdict(self)
        d["observables"] = list(self.observables)
        if not self.nested_p:  # specs (and their hashes) from before the option
            del d["nested_p"]
        if self.sampler == "prompts":
            del d["sampler"]
        if self.distribution == "gaussian":
            del d["distribution"]
        for k, v in (("pool_seed", 0), ("assignment", "uniform"), ("task_norm", "gaussian")):
            if d[k] == v:  # specs (and their hashes) from before the options
                del d[k]
        if d["fixed"].get("tasks", 0) is None:
            del d["fixed"]["tasks"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"unknown sweep spec key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(names))}"
            )
        d = dict(d)
        if "observables" in d and isinstance(d["observables"], list):
            d["observables"] = tuple(d["observables"])
        return cls(**d)

    def to_json(self) -> str:
        """JSON of :meth:`to_dict`, grid order kept (the hash uses sorted keys)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical JSON of the spec."""
        return _hash(self.to_dict())

    @classmethod
    def from_toml(cls, path: str | Path) -> SweepSpec:
        """Read a spec from a TOML file (top-level keys are the fields; ``[grid]``,
        ``[fixed]`` and ``[solver_options]`` are tables).

        Raises :class:`ConfigError` for a missing or unreadable file and
        :class:`ParameterError` (naming the field) for a bad value.
        """
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # Python 3.10: tomli is a dependency there (pyproject.toml)
            import tomli as tomllib
        path = Path(path)
        try:
            from ..safeio import check_input_file

            text = check_input_file(path, "sweep spec").read_text()  # no FIFO, no /dev/zero
        except FileNotFoundError:
            raise ConfigError(f"sweep spec file {str(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read sweep spec file {str(path)!r}: {exc}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"sweep spec file {str(path)!r} is not valid TOML: {exc}") from None
        data.pop("slurm", None)  # how the sweep runs, not what it computes (.slurm)
        try:
            return cls.from_dict(data)
        except ParameterError as exc:
            raise ParameterError(f"{path.name}: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"{path.name}: {exc}") from None

    def to_toml(self, path: str | Path | None = None) -> str:
        """Write the spec as TOML (to ``path`` if given) and return the text."""
        d = self.to_dict()
        lines = []
        for k in (
            "repeats",
            "seed",
            "observables",
            "test_error",
            "test_tasks",
            "store_arrays",
            "contrast_kind",
            "matfree",
            "nested_p",
            "sampler",
            "distribution",
            "pool_seed",
            "assignment",
            "task_norm",
        ):
            if k in d:
                lines.append(f"{k} = {_toml_value(d[k])}")
        for table in ("grid", "fixed", "solver_options"):
            lines.append("")
            lines.append(f"[{table}]")
            for k, v in d[table].items():
                lines.append(f"{k} = {_toml_value(v)}")
        text = "\n".join(lines) + "\n"
        if path is not None:
            from ..safeio import atomic_write_text

            atomic_write_text(path, text)
        return text


def _toml_value(v: Any) -> str:
    if v is None:  # the task pool size K = None (TOML has no null)
        return json.dumps(NO_POOL)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # round-trips exactly; inf/nan are rejected by validation
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} to TOML")

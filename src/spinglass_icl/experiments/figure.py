"""The figure template: what a figure module defines, and how :mod:`.runner` drives it.

A figure module (registered by name in :data:`spinglass_icl.experiments.FIGURES`)
defines

``TITLE``, ``CLAIM``, ``NOTES``
    Its title, what the paper says, and where we differ from the paper (a list of str).
``WHY`` (optional)
    One sentence: why a claim of the paper fails, shown beside its verdicts.
``IN_PAPER`` (optional, default True)
    False for a figure that is not the paper's: its verdicts stay out of the "where the
    paper is wrong" list of the report.

and four steps, one signature each (:data:`STEPS`):

``compute(ctx: Context) -> xarray.Dataset``
    Everything the figure needs: the data, and in its attrs the parameters that
    ``draw``, ``claims`` and ``summarize`` read. Every random draw is seeded by
    :func:`figure_seed`; :func:`record_attrs` puts the seeds used, and the files
    ``compute`` wrote itself (a sweep or trial store), into the attrs for ``result.json``.
    A ``budget_note`` attr (a str) becomes a note of the record.
``draw(ds) -> matplotlib.figure.Figure``
    The figure, drawn from the Dataset alone (use :func:`.plotting.new_figure`).
``claims(ds) -> list[Claim]``
    The paper's sentences, each with the measured number and its verdict (:mod:`.claims`).
``summarize(ds) -> tuple[dict, str]``
    The key numbers (JSON-able) and one or two sentences with numbers.

One optional hook: ``why(ds) -> str``, the ``WHY`` sentence with the numbers of this run
(it replaces ``WHY`` when not empty). A module defines no ``run``: :func:`make` calls the
steps in order, saves ``figure.png``/``figure.pdf`` and ``data.nc`` and returns the
:class:`Outcome`; :func:`check_module` lists where a module departs from this template
(the test suite checks every registered figure with it).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import __version__
from ..safeio import atomic_path
from ..seeds import derive
from .claims import Claim
from .plotting import save_figure
from .presets import FigurePreset

#: the steps of a figure module, each with its one parameter, in the order they run
STEPS: dict[str, str] = {"compute": "ctx", "draw": "ds", "claims": "ds", "summarize": "ds"}

#: optional hooks, each with its one parameter
HOOKS: dict[str, str] = {"why": "ds"}

#: module attributes every figure has
ATTRIBUTES: tuple[str, ...] = ("TITLE", "CLAIM", "NOTES")

#: Dataset attrs (JSON strings) that :func:`record_attrs` writes and :func:`make` reads
SEEDS_ATTR, FILES_ATTR = "record_seeds", "record_files"


@dataclass(frozen=True)
class Context:
    """Everything a figure's ``compute`` needs.

    Attributes
    ----------
    figure : str
        Figure name (a key of :data:`FIGURES`).
    out : Path
        The figure's own folder ``<DIR>/<figure>``.
    preset : str
        ``tiny``, ``quick`` or ``paper``.
    params : FigurePreset
        The preset's parameters of this figure (a frozen dataclass).
    seed : int
        Base seed; every random draw of the figure is derived from it.
    convention : str
        Normalization convention (docs/conventions.md).
    device : str
        ``cpu`` or ``cuda``.
    executor, workers
        How sweeps run (Fig. 4a).
    progress : bool
        Show tqdm bars.
    trials_override : int or None
        The trial count asked for (``reproduce --trials K``): it runs as given, also where
        it equals the authors' count (never replaced by a CPU count,
        :func:`.supp.budget_count`); None: the preset's.
    """

    figure: str
    out: Path
    preset: str
    params: FigurePreset
    seed: int = 0
    convention: str = "authors"
    device: str = "cpu"
    executor: str = "local"
    workers: int = 2
    progress: bool = True
    trials_override: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What :func:`make` returns for the record.

    Attributes
    ----------
    numbers : dict
        Key numbers (JSON-able) quoted in the report and ``results.json``.
    summary : str
        One or two sentences: what our figure shows, with numbers.
    claims : list of Claim
        The paper's claims, each with the measured number, threshold and verdict
        (:mod:`.claims`); the figure's verdict is :func:`.claims.overall` of them
        (``not comparable`` when there are none).
    seeds : dict
        Seeds used, by purpose.
    files : list of str
        Files written, relative to the figure folder.
    notes : list of str
        Extra notes (on top of the module's ``NOTES``).
    why : str
        Why a claim of the paper fails, with numbers measured in this run; replaces the
        module's ``WHY`` when given.
    """

    numbers: dict
    summary: str
    claims: list[Claim] = field(default_factory=list)
    seeds: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    why: str = ""


def figure_seed(ctx: Context, purpose: str, **config: Any) -> int:
    """The seed of one random draw of a figure: a 63-bit hash of the base seed, the
    figure, the draw's ``purpose`` and the point's ``config`` (as the sweeps derive their
    instance seeds, :func:`spinglass_icl.seeds.derive`), so no two draws share
    a stream and none depends on the order in which they run."""
    return derive("figure", ctx.figure, purpose, ctx.seed, ctx.convention, config)


def record_attrs(ds: Any, seeds: dict | None = None, files: list[str] | tuple = ()) -> Any:
    """``ds`` with the seeds used (by purpose) and the files ``compute`` wrote itself
    (e.g. ``trials.sqlite``) in its attrs, as JSON strings that NetCDF can hold; the
    runner copies them into ``result.json``. Returns ``ds`` (changed in place)."""
    ds.attrs[SEEDS_ATTR] = json.dumps(seeds or {})
    ds.attrs[FILES_ATTR] = json.dumps(list(files))
    return ds


def save_dataset(ds: Any, folder: Path, stem: str = "data") -> list[str]:
    """Write an xarray Dataset as NetCDF; return the file name.

    xarray picks the engine (netCDF4, else h5netcdf, else scipy's NetCDF3): h5netcdf
    alone cannot write without h5py, which is not a dependency.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.nc"
    ds = ds.assign_attrs(spinglass_icl_version=__version__)  # beside its convention attr
    with atomic_path(path) as tmp:  # the old file stays until the new one is complete
        ds.to_netcdf(tmp)
    return [path.name]


def check_module(mod: ModuleType | Any) -> list[str]:
    """Where figure module ``mod`` departs from the template (empty: it conforms):
    a missing attribute or step, a step or hook whose parameters are not exactly its one
    parameter of :data:`STEPS` / :data:`HOOKS`, or a ``run`` of its own."""
    problems = [f"no {a}" for a in ATTRIBUTES if not hasattr(mod, a)]
    for name, param in {**STEPS, **HOOKS}.items():
        fn = getattr(mod, name, None)
        if fn is None:
            if name in STEPS:
                problems.append(f"no {name}({param})")
            continue
        params = list(inspect.signature(fn).parameters)
        if params != [param]:
            problems.append(f"{name}({', '.join(params)}) is not {name}({param})")
    if hasattr(mod, "run"):
        problems.append("defines run(); the runner calls compute, draw, claims, summarize")
    return problems


#: figures registered from outside the package (:func:`register_figure`): name -> module
REGISTERED: dict[str, Any] = {}


def register_figure(name: str, module: ModuleType | Any, presets: Any) -> None:
    """Add figure ``name``, made by ``module`` (a module, or any object with the
    template's attributes and steps), to :data:`~spinglass_icl.experiments.FIGURES`, so
    that :func:`.runner.run_figure` and the report know it.

    ``presets``: one :class:`FigurePreset` used at every preset, or a dict with one per
    preset name (``tiny``, ``quick``, ``paper``). Raises :class:`ParameterError` if the
    name is taken, a preset is missing or not a :class:`FigurePreset`, or the module
    departs from the template (:func:`check_module`, every problem listed).
    """
    from ..errors import ParameterError
    from . import FIGURES
    from .presets import PRESETS, add_presets

    if not isinstance(name, str) or not name or name in FIGURES:
        raise ParameterError(
            f"name must be a new figure name (not one of {', '.join(FIGURES)}), got {name!r}"
        )
    problems = check_module(module)
    if problems:
        raise ParameterError(f"module of figure {name} departs from the template: "
                             + "; ".join(problems))  # fmt: skip
    table = presets if isinstance(presets, dict) else dict.fromkeys(PRESETS, presets)
    add_presets(name, table)
    REGISTERED[name] = module
    FIGURES[name] = getattr(module, "__name__", name)


def make(mod: ModuleType | Any, ctx: Context) -> Outcome:
    """Make one figure: ``compute`` -> Dataset -> ``draw`` (saved as ``figure.png`` and
    ``.pdf``) -> ``claims`` -> ``summarize``, the Dataset saved as ``data.nc``.

    Raises TypeError, naming the module and step, when a step returns the wrong kind of
    object (a module that passes :func:`check_module` can still do that at run time).
    """
    import xarray as xr
    from matplotlib.figure import Figure

    name = getattr(mod, "__name__", "figure module")
    ds = mod.compute(ctx)
    _expect(isinstance(ds, xr.Dataset), name, "compute", "an xarray.Dataset", ds)
    fig = mod.draw(ds)
    _expect(isinstance(fig, Figure), name, "draw", "a matplotlib Figure", fig)
    files = json.loads(ds.attrs.get(FILES_ATTR, "[]"))
    files += save_figure(fig, ctx.out) + save_dataset(ds, ctx.out)
    found = mod.claims(ds)
    _expect(
        isinstance(found, list) and all(isinstance(c, Claim) for c in found),
        name, "claims", "a list of Claim", found,
    )  # fmt: skip
    summary = mod.summarize(ds)
    _expect(
        isinstance(summary, tuple) and len(summary) == 2 and isinstance(summary[0], dict)
        and isinstance(summary[1], str),
        name, "summarize", "a (dict, str) tuple", summary,
    )  # fmt: skip
    note = ds.attrs.get("budget_note", "")
    return Outcome(
        numbers=summary[0],
        summary=summary[1],
        claims=found,
        seeds=json.loads(ds.attrs.get(SEEDS_ATTR, "{}")),
        files=files,
        notes=[note] if note else [],
        why=mod.why(ds) if hasattr(mod, "why") else "",
    )


def _expect(ok: bool, module: str, step: str, kind: str, got: Any) -> None:
    if not ok:
        raise TypeError(f"{module}.{step} must return {kind}, not {type(got).__name__}")

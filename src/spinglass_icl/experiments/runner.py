"""Running a figure: options checked once, parameters from the preset, the made-before
check (cache), the ``result.json`` record and its verification.

:func:`run_figure` times a figure module's steps, run in order by :func:`.figure.make`
(the template: :mod:`.figure`), writes
``<out>/<figure>/result.json`` (parameters, seeds, seconds, key numbers, the claims with
their verdicts, the overall verdict, files) and returns the record that :mod:`.report`
turns into a section of ``report.md`` / ``report.html``; a figure already made with the
same preset, seed, convention and parameters, whose files verify
(:func:`verify_figure`), is skipped.
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import __version__
from ..conventions import CONVENTION
from ..errors import SEED_MAX, Choice, Int, ParameterError, check_choice, check_int, validate_fields
from ..io import write_json
from ..sweep.executors import EXECUTORS
from ..tasks import DEVICE
from . import FIGURES
from .claims import overall
from .figure import REGISTERED, Context, Outcome, make
from .plotting import plot_style
from .presets import FigurePreset, get_preset, trial_key


def figure_module(name: str) -> Any:
    """The module that makes figure ``name`` (one of the package's, or one added by
    :func:`.figure.register_figure`)."""
    check_choice("figure", name, tuple(FIGURES))
    if name in REGISTERED:
        return REGISTERED[name]
    return importlib.import_module(f"{__package__}.{FIGURES[name]}")


def result_path(out: Path, name: str) -> Path:
    return out / name / "result.json"


@dataclass(frozen=True)
class RunOptions:
    """How a figure is run (the same for every figure of one ``reproduce`` call), checked
    once.

    Attributes
    ----------
    executor : str
        How the sweep figures run: one of :data:`~spinglass_icl.sweep.executors.EXECUTORS`.
    workers : int
        Sweep workers (>= 1).
    seed : int
        Base seed in ``[0, 2**64 - 1]``; every random draw of a figure is derived from it.
    convention : str
        Normalization convention (docs/conventions.md).
    device : str
        ``cpu`` or ``cuda``.
    """

    executor: str = "local"
    workers: int = 2
    seed: int = 0
    convention: str = "authors"
    device: str = "cpu"

    _parameter_constraints: ClassVar[dict] = {
        "executor": Choice(EXECUTORS),
        "workers": Int(1),
        "seed": Int(0, SEED_MAX),
        "convention": CONVENTION,
        "device": DEVICE,
    }

    def __post_init__(self) -> None:
        validate_fields(self)


def figure_params(
    name: str, preset: str, params: dict | None = None, trials: int | None = None
) -> FigurePreset:
    """The parameters figure ``name`` runs with: its ``preset`` with ``params`` and
    ``trials`` (its :func:`trial_key` entry) replaced; the preset checks every field.
    Raises :class:`ParameterError` if ``trials`` is given to a figure without trials."""
    p = get_preset(preset, name)
    if params:
        p = p.replace(**params)
    if trials is not None:
        key = trial_key(name, p)
        if key is None:
            raise ParameterError(
                f"trials: figure {name} has no trials to set (no 'trials' or 'repeats' "
                f"parameter); run it without --trials"
            )
        p = p.replace(**{key: check_int("trials", trials)})
    return p


def _made_before(out: Path, ctx: Context):
    """``(record, problem)`` of figure ``ctx.figure`` already in ``out``: the record if it
    was made with the same preset, seed, convention, parameters and trial count run
    (``--trials K`` against a CPU count, :func:`_trials_run`) and verifies, and the
    problem found if it does not verify (then it is redone)."""
    name = ctx.figure
    if not result_path(out, name).exists():
        return None, None
    old, problem = verify_figure(out, name)
    same = old is not None and (
        old.get("preset") == ctx.preset
        and old.get("seed") == ctx.seed
        and old.get("convention") == ctx.convention
        and old.get("params") == json.loads(json.dumps(ctx.params.to_dict()))
        and old.get("trials") == _trials_run(name, ctx)
        and "verdict" in old  # records from before the claims are redone
    )
    return (old if same and problem is None else None), problem


def _record(
    name: str, mod: Any, outcome: Outcome, ctx: Context, trials: int | None, seconds: float
) -> dict:
    """The JSON record of a figure just made (``result.json``)."""
    p = ctx.params
    return {
        "figure": name,
        "title": mod.TITLE,
        "claim": mod.CLAIM,
        "notes": list(mod.NOTES) + list(outcome.notes),
        "summary": outcome.summary,
        "claims": [c.to_dict() for c in outcome.claims],
        "why": outcome.why or getattr(mod, "WHY", ""),
        "in_paper": getattr(mod, "IN_PAPER", True),
        "verdict": _verdict(outcome),
        "preset": ctx.preset,
        "seed": ctx.seed,
        "seeds": outcome.seeds,
        "convention": ctx.convention,
        "version": __version__,
        "device": ctx.device,
        "executor": ctx.executor,
        "params": p.to_dict(),
        "numbers": outcome.numbers,
        "trials": _trials_run(name, ctx),
        "trials_override": trials,
        "files": outcome.files,
        "seconds": seconds,
        "machine": f"{platform.node()} ({platform.machine()}, {_cpu_count()} CPU cores)",
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _trials_run(name: str, ctx: Context) -> int | None:
    """The trial count the figure ran: its ``trials``/``repeats`` entry, or the CPU count
    that replaced it (``cpu_trials``/``cpu_repeats``; :func:`.supp.budget_count`)."""
    key = trial_key(name, ctx.params)
    if key is None:
        return None
    if ctx.params.get(f"cpu_{key}") is None:
        return ctx.params[key]
    from .supp import budget_count

    return budget_count(ctx, key, f"cpu_{key}")[0]


def run_figure(
    name: str,
    out: Path,
    *,
    preset: str = "quick",
    seed: int = 0,
    convention: str = "authors",
    device: str = "cpu",
    executor: str = "local",
    workers: int = 2,
    force: bool = False,
    progress: bool = True,
    params: dict | None = None,
    trials: int | None = None,
) -> dict:
    """Make figure ``name`` into ``out/name`` and write its ``result.json``.

    A figure whose ``result.json`` exists with the same preset, seed, convention and
    parameters is skipped (the record is returned with ``skipped=True``) unless
    ``force``. ``params`` overrides entries of the preset (for tests). ``trials``
    overrides the figure's trial count (its ``trials`` or ``repeats`` entry,
    :func:`trial_key`; ``reproduce --trials K``); the record says so (``trials_override``).
    ``seed``, ``convention``, ``device``, ``executor`` and ``workers`` are checked by
    :class:`RunOptions`, the preset's fields by the preset (:func:`figure_params`).

    Returns
    -------
    dict
        The JSON record of the figure.
    """
    opts = RunOptions(
        executor=executor, workers=workers, seed=seed, convention=convention, device=device
    )
    mod = figure_module(name)
    p = figure_params(name, preset, params, trials)
    rpath = result_path(out, name)
    ctx = Context(
        figure=name,
        out=out / name,
        preset=preset,
        params=p,
        seed=opts.seed,
        convention=convention,
        device=opts.device,
        executor=executor,
        workers=opts.workers,
        progress=progress,
        trials_override=trials,
    )
    old, redone = (None, None) if force else _made_before(out, ctx)
    if old is not None:
        old["skipped"] = True
        return old
    ctx.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with plot_style():
        outcome = make(mod, ctx)
    record = _record(name, mod, outcome, ctx, trials, time.perf_counter() - t0)
    if redone is not None:
        record["redone"] = redone
        record["notes"].append(f"Redone: the output found before could not be trusted ({redone}).")
    write_json(rpath, record)
    record = json.loads(rpath.read_text())
    record["skipped"] = False
    return record


def _verdict(outcome: Outcome) -> str:
    return overall(outcome.claims) if outcome.claims else "not comparable"


#: keys every ``result.json`` holds (written by :func:`run_figure`)
RECORD_KEYS: tuple[str, ...] = (
    "figure",
    "preset",
    "seed",
    "convention",
    "params",
    "numbers",
    "files",
    "summary",
)


def _check_file(path: Path) -> str | None:
    """Why ``path`` is not a usable output file (None: it is)."""
    if not path.is_file():
        return f"{path.name} is missing"
    suffix = path.suffix.lower()
    try:
        if suffix in (".png", ".pdf", ".sqlite"):
            magic = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF", ".sqlite": b"SQLite format 3"}
            with open(path, "rb") as fh:
                if not fh.read(len(magic[suffix])) == magic[suffix]:
                    return f"{path.name} is not a {suffix[1:].upper()} file"
        elif suffix == ".nc":
            import xarray as xr

            with xr.open_dataset(path) as ds:
                ds.load()
        elif suffix == ".json":
            json.loads(path.read_text())
    except Exception as exc:  # noqa: BLE001 - any failure to open means: redo
        return f"{path.name} does not open ({type(exc).__name__})"
    return None


def verify_figure(out: Path, name: str) -> tuple[dict | None, str | None]:
    """The record of figure ``name`` under ``out`` and why it cannot be trusted.

    A figure counts as made only if its ``result.json`` parses as a record of this
    figure (the keys of :data:`RECORD_KEYS`), every file it lists exists and opens (PNG /
    PDF by their magic bytes, NetCDF with xarray, a sweep store by its header), and it
    has ``figure.png``. Returns ``(record, None)`` if so, else ``(record or None, reason)``.
    """
    rpath = result_path(out, name)
    try:
        rec = json.loads(rpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"result.json does not parse ({type(exc).__name__})"
    if not isinstance(rec, dict):
        return None, f"result.json holds a {type(rec).__name__}, not a figure record"
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        return None, f"result.json lacks {', '.join(missing)}"
    if rec.get("figure") != name or not isinstance(rec.get("files"), list):
        return None, "result.json is not a record of this figure"
    files = [str(f) for f in rec["files"]]
    if not any(f.endswith(".png") for f in files):
        files.append("figure.png")
    for f in files:
        problem = _check_file(out / name / f)
        if problem is not None:
            return rec, problem
    return rec, None


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

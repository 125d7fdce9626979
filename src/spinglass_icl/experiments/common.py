"""Shared machinery of the figure runners: context, outcome, saving, timing.

A figure module defines ``TITLE``, ``CLAIM``, ``NOTES`` and ``run(ctx) -> Outcome``;
:func:`run_figure` times it, writes ``<out>/<figure>/result.json`` (parameters, seeds,
seconds, key numbers, files) and returns the record that :mod:`.report` turns into a
section of ``report.md`` / ``report.html``.
"""

from __future__ import annotations

import importlib
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ParameterError, SpinGlassError, check_choice, check_int, check_seed
from ..io import write_json
from ..safeio import atomic_path
from ..sweep.executors import EXECUTORS
from . import FIGURES
from .presets import get_preset


class MissingDependency(SpinGlassError):
    """A figure needs a module of spinglass-icl that is not installed / built yet."""


@dataclass(frozen=True)
class Context:
    """Everything a figure runner needs.

    Attributes
    ----------
    figure : str
        Figure name (a key of :data:`FIGURES`).
    out : Path
        The figure's own folder ``<DIR>/<figure>``.
    preset : str
        ``tiny``, ``quick`` or ``paper``.
    params : dict
        The preset's parameters of this figure.
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
    """

    figure: str
    out: Path
    preset: str
    params: dict
    seed: int = 0
    convention: str = "authors"
    device: str = "cpu"
    executor: str = "local"
    workers: int = 2
    progress: bool = True


@dataclass(frozen=True)
class Outcome:
    """What a figure runner returns.

    Attributes
    ----------
    numbers : dict
        Key numbers (JSON-able) quoted in the report and ``results.json``.
    summary : str
        One or two sentences: what our figure shows, with numbers.
    agrees : bool or None
        Whether our data support the paper's claim (None: not a claim to test).
    seeds : dict
        Seeds used, by purpose.
    files : list of str
        Files written, relative to the figure folder.
    notes : list of str
        Extra notes (on top of the module's ``NOTES``).
    """

    numbers: dict
    summary: str
    agrees: bool | None = None
    seeds: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def save_figure(fig: Any, folder: Path, stem: str = "figure") -> list[str]:
    """Save a matplotlib figure as PNG (120 dpi) and PDF; close it; return the file names."""
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    for suffix, kw in ((".png", {"dpi": 120}), (".pdf", {})):
        with atomic_path(folder / f"{stem}{suffix}") as tmp:
            fig.savefig(tmp, bbox_inches="tight", format=suffix[1:], **kw)
    plt.close(fig)
    return [f"{stem}.png", f"{stem}.pdf"]


def save_dataset(ds: Any, folder: Path, stem: str = "data") -> list[str]:
    """Write an xarray Dataset as NetCDF; return the file name.

    xarray picks the engine (netCDF4, else h5netcdf, else scipy's NetCDF3): h5netcdf
    alone cannot write without h5py, which is not a dependency.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.nc"
    with atomic_path(path) as tmp:  # the old file stays until the new one is complete
        ds.to_netcdf(tmp)
    return [path.name]


def new_figure(ncols: int, nrows: int = 1, width: float = 4.2, height: float = 3.6):
    """A matplotlib (Agg) figure with a grid of axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return fig, axes


def figure_module(name: str) -> Any:
    """The module that makes figure ``name``."""
    check_choice("figure", name, tuple(FIGURES))
    return importlib.import_module(f"{__package__}.{FIGURES[name]}")


def result_path(out: Path, name: str) -> Path:
    return out / name / "result.json"


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

    Returns
    -------
    dict
        The JSON record of the figure.
    """
    check_choice("executor", executor, EXECUTORS)
    workers = check_int("workers", workers)
    seed = check_seed(seed)
    mod = figure_module(name)
    p = get_preset(preset, name)
    if params:
        unknown = set(params) - set(p)
        if unknown:
            raise ParameterError(
                f"params must be keys of the {name} preset ({', '.join(p)}), got {sorted(unknown)}"
            )
        p.update(params)
    if trials is not None:
        key = trial_key(name, p)
        if key is None:
            raise ParameterError(
                f"trials: figure {name} has no trials to set (no 'trials' or 'repeats' "
                f"parameter); run it without --trials"
            )
        p[key] = check_int("trials", trials)
    folder = out / name
    rpath = result_path(out, name)
    redone = None
    if rpath.exists() and not force:
        old, problem = verify_figure(out, name)
        same = old is not None and (
            old.get("preset") == preset
            and old.get("seed") == seed
            and old.get("convention") == convention
            and old.get("params") == json.loads(json.dumps(p))
        )
        if same and problem is None:
            old["skipped"] = True
            return old
        if problem is not None:
            redone = problem
    ctx = Context(
        figure=name,
        out=folder,
        preset=preset,
        params=p,
        seed=seed,
        convention=convention,
        device=str(device),
        executor=executor,
        workers=workers,
        progress=progress,
    )
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    outcome: Outcome = mod.run(ctx)
    seconds = time.perf_counter() - t0
    record = {
        "figure": name,
        "title": mod.TITLE,
        "claim": mod.CLAIM,
        "notes": list(mod.NOTES) + list(outcome.notes),
        "summary": outcome.summary,
        "agrees": outcome.agrees,
        "preset": preset,
        "seed": seed,
        "seeds": outcome.seeds,
        "convention": convention,
        "device": str(device),
        "executor": executor,
        "params": p,
        "numbers": outcome.numbers,
        "trials": p.get(trial_key(name, p) or "", None),
        "trials_override": trials,
        "files": outcome.files,
        "seconds": seconds,
        "machine": f"{platform.node()} ({platform.machine()}, {_cpu_count()} CPU cores)",
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if redone is not None:
        record["redone"] = redone
        record["notes"].append(f"Redone: the output found before could not be trusted ({redone}).")
    write_json(rpath, record)
    record = json.loads(rpath.read_text())
    record["skipped"] = False
    return record


def trial_key(name: str, params: dict) -> str | None:
    """The parameter holding figure ``name``'s trial count: ``trials`` (trained trials) or
    ``repeats`` (solver repeats), None when it has neither."""
    for key in ("trials", "repeats"):
        if key in params:
            return key
    return None


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


def trial_chunks(
    trials: int, P: int, D: int, N: int, device: str = "cpu", max_floats: float | None = None
) -> list[tuple]:
    """Split ``trials`` into ``(first_trial, n)`` chunks whose prompts hold at most about
    ``max_floats`` numbers (``n P (D+1) (N+1)``; default 5e7 on CPU, 5e8 on CUDA), so
    paper-size runs fit in memory.

    The training module derives every stream of trial k from ``(seed, k)``, so chunked
    runs give the same numbers as one batched run.
    """
    if max_floats is None:
        max_floats = 5e8 if str(device).startswith("cuda") else 5e7
    per = max(1, int(max_floats // (P * (D + 1) * (N + 1))))
    return [(k, min(per, trials - k)) for k in range(0, trials, per)]

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

from ..errors import ParameterError, SpinGlassError, check_choice, check_int
from ..io import write_json
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
    fig.savefig(folder / f"{stem}.png", dpi=120, bbox_inches="tight")
    fig.savefig(folder / f"{stem}.pdf", bbox_inches="tight")
    plt.close(fig)
    return [f"{stem}.png", f"{stem}.pdf"]


def save_dataset(ds: Any, folder: Path, stem: str = "data") -> list[str]:
    """Write an xarray Dataset as NetCDF; return the file name.

    xarray picks the engine (netCDF4, else h5netcdf, else scipy's NetCDF3): h5netcdf
    alone cannot write without h5py, which is not a dependency.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.nc"
    if path.exists():
        path.unlink()
    ds.to_netcdf(path)
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
) -> dict:
    """Make figure ``name`` into ``out/name`` and write its ``result.json``.

    A figure whose ``result.json`` exists with the same preset, seed, convention and
    parameters is skipped (the record is returned with ``skipped=True``) unless
    ``force``. ``params`` overrides entries of the preset (for tests).

    Returns
    -------
    dict
        The JSON record of the figure.
    """
    check_choice("executor", executor, EXECUTORS)
    workers = check_int("workers", workers)
    seed = check_int("seed", seed, minimum=0)
    mod = figure_module(name)
    p = get_preset(preset, name)
    if params:
        unknown = set(params) - set(p)
        if unknown:
            raise ParameterError(
                f"params must be keys of the {name} preset ({', '.join(p)}), got {sorted(unknown)}"
            )
        p.update(params)
    folder = out / name
    rpath = result_path(out, name)
    if rpath.exists() and not force:
        try:
            old = json.loads(rpath.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        same = old is not None and (
            old.get("preset") == preset
            and old.get("seed") == seed
            and old.get("convention") == convention
            and old.get("params") == json.loads(json.dumps(p))
        )
        if same:
            old["skipped"] = True
            return old
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
        "files": outcome.files,
        "seconds": seconds,
        "machine": f"{platform.node()} ({platform.machine()}, {_cpu_count()} CPU cores)",
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(rpath, record)
    record = json.loads(rpath.read_text())
    record["skipped"] = False
    return record


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

"""What a figure module uses: its context and outcome, seeds, saving, plotting helpers.

A figure module defines ``TITLE``, ``CLAIM``, ``NOTES``, optionally ``WHY`` (one
sentence: why a claim of the paper fails, shown beside its verdicts), ``IN_PAPER``
(False for a figure that is not the paper's: its verdicts stay out of the "where the
paper is wrong" list) and ``run(ctx) -> Outcome``, made of small steps:
``compute(...) -> xarray.Dataset``, ``draw(ds) -> Figure``, ``summarize(ds) -> Outcome``
(numbers, claims, summary). :mod:`.runner` times it, writes
``<out>/<figure>/result.json`` and returns the record that :mod:`.report` turns into a
section of ``report.md`` / ``report.html``. Every random draw of a figure is seeded by
:func:`figure_seed`, hashed like the sweeps' seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..safeio import atomic_path
from ..seeds import derive
from .claims import Claim
from .presets import FigurePreset


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


@dataclass(frozen=True)
class Outcome:
    """What a figure runner returns.

    Attributes
    ----------
    numbers : dict
        Key numbers (JSON-able) quoted in the report and ``results.json``.
    summary : str
        One or two sentences: what our figure shows, with numbers.
    claims : list of Claim
        The paper's claims, each with the measured number, threshold and verdict
        (:mod:`.claims`); the figure's verdict is :func:`.claims.overall` of them.
    agrees : bool or None
        For a figure without claims only: its one-line verdict (True: ``agrees``, False:
        ``disagrees``, None: ``not comparable``).
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
    agrees: bool | None = None
    seeds: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    why: str = ""


def save_figure(fig: Any, folder: Path, stem: str = "figure") -> list[str]:
    """Save a matplotlib figure as PNG (120 dpi) and PDF; return the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    with plot_style():
        for suffix, kw in ((".png", {"dpi": 120}), (".pdf", {})):
            with atomic_path(folder / f"{stem}{suffix}") as tmp:
                fig.savefig(tmp, bbox_inches="tight", format=suffix[1:], **kw)
    return [f"{stem}.png", f"{stem}.pdf"]


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


#: font sizes of every figure: readable when report.html shows a figure about 1000 px wide
PLOT_RC: dict[str, Any] = {
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 9,
    "figure.titlesize": 12,
}


def plot_style():
    """A context in which figures are drawn and saved with :data:`PLOT_RC`."""
    import matplotlib

    return matplotlib.rc_context(PLOT_RC)


def new_figure(ncols: int, nrows: int = 1, width: float = 4.2, height: float = 3.6):
    """A matplotlib figure (no pyplot state) with an ``nrows x ncols`` grid of axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def plain_log_ticks(ax: Any, axis: str, values: Any, most: int = 8) -> None:
    """Put ticks of a log ``axis`` ("x" or "y") at ``values`` with plain labels (``20``,
    not ``2x10^1``) and no minor labels. Values closer than ``span / most`` decades to the
    last kept one are dropped (see :func:`spaced_log_values`), so that neighbouring labels
    never overlap (e.g. N = 20, 40, ..., 200 keeps 20, 40, 60, 100, 140, 200)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_locator(FixedLocator(spaced_log_values(values, most)))
    a.set_major_formatter(_PlainFormatter())
    a.set_minor_locator(NullLocator())
    a.set_minor_formatter(NullFormatter())


def spaced_log_values(values: Any, most: int = 8) -> list[float]:
    """The sorted positive ``values`` thinned so that consecutive kept values are at least
    ``log10(max/min) / most`` decades apart; the smallest and the largest are always kept
    (the largest replaces a kept neighbour that is too close)."""
    import math

    vals = sorted({float(v) for v in values if float(v) > 0})
    if len(vals) <= 2:
        return vals
    gap = math.log10(vals[-1] / vals[0]) / most
    kept = [vals[0]]
    for v in vals[1:-1]:
        if math.log10(v / kept[-1]) >= gap:
            kept.append(v)
    while len(kept) > 1 and math.log10(vals[-1] / kept[-1]) < gap:
        kept.pop()
    return kept + [vals[-1]]


def nice_log_ticks(lo: float, hi: float, most: int = 7) -> list[float]:
    """1-2-5 tick values inside [lo, hi] for a log axis (every other one if more than
    ``most``; at least the two ends' decades if none falls inside)."""
    import numpy as np

    e0, e1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    cand = [m * 10.0**e for e in range(e0, e1 + 1) for m in (1, 2, 5)]
    t = [c for c in cand if lo * 0.999 <= c <= hi * 1.001]
    while len(t) > most:
        t = t[::2]
    return t if len(t) >= 2 else [float(lo), float(hi)]


def plain_log_axis(ax: Any, axis: str) -> None:
    """Plain tick labels (``0.3``, not ``3x10^-1``) on a log ``axis`` of ``ax``, call after
    plotting: where fewer than two powers of ten fall inside the limits, the ticks are
    1-2-5 values (:func:`nice_log_ticks`); else minor ticks are labelled too when the axis
    spans under 1.5 decades, and left unlabelled otherwise (so labels never crowd)."""
    import numpy as np
    from matplotlib.ticker import FixedLocator, NullFormatter

    a = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    a.set_major_formatter(_PlainFormatter())
    if 0 < lo < hi and np.floor(np.log10(hi)) - np.ceil(np.log10(lo)) < 1:
        # fewer than two powers of ten inside: label 1-2-5 values instead of one lone tick
        a.set_major_locator(FixedLocator(nice_log_ticks(lo, hi)))
        a.set_minor_formatter(NullFormatter())
        return
    span = np.log10(hi / lo) if lo > 0 and hi > 0 else 99.0
    a.set_minor_formatter(_PlainFormatter() if span < 1.5 else NullFormatter())


def _PlainFormatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: plain_number(v))


def plain_number(v: float) -> str:
    """A tick label without exponent notation: ``1000``, ``0.3``, ``2.5`` (three
    significant digits; whole numbers up to 10^6 in full)."""
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3g}"


def figure_seed(ctx: Context, purpose: str, **config: Any) -> int:
    """The seed of one random draw of a figure: a 63-bit hash of the base seed, the
    figure, the draw's ``purpose`` and the point's ``config`` (as the sweeps derive their
    instance seeds, :func:`spinglass_icl.seeds.derive`), so no two draws share
    a stream and none depends on the order in which they run."""
    return derive("figure", ctx.figure, purpose, ctx.seed, ctx.convention, config)


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

"""Add a figure to spinglass-icl in one file: the contrast of the exact solution against the
task diversity, at one prompt length.

Fig. 4a maps the contrast C over (P/D^2, N/D); this figure, which the package does not
ship, cuts that map at one N and shows C of the exact ridge minimizer (the ground state
of eq. 5) against P/D^2 with error bars over instances, beside C of the cosine contrast.
A figure is a module (here: this file) with TITLE, CLAIM, NOTES and four steps, one
signature each (spinglass_icl.experiments.figure):

    compute(ctx) -> xarray.Dataset    everything the figure needs, seeds in its attrs
    draw(ds) -> matplotlib Figure     from the Dataset alone
    claims(ds) -> list[Claim]         the paper's sentence, a measured number, a verdict
    summarize(ds) -> (dict, str)      key numbers and one sentence

plus a frozen preset dataclass with its parameters at each of the presets tiny, quick and
paper. register_figure checks the module against the template and adds it to the figures
that reproduce's runner (run_figure) and the report know. Run it from the repository
root::

    python examples/extending/new_figure.py [--preset tiny|quick] [--out DIR]

It writes DIR/contrast-vs-P/ (figure.png, figure.pdf, data.nc, result.json) and
DIR/report.md, and prints the verdict.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from spinglass_icl import ParameterError, contrast, ground_state, make_instance
from spinglass_icl.experiments.claims import Claim, at_least
from spinglass_icl.experiments.common import (
    Context,
    figure_seed,
    new_figure,
    record_attrs,
    register_figure,
)
from spinglass_icl.experiments.presets import FigurePreset
from spinglass_icl.experiments.report import build_report
from spinglass_icl.experiments.runner import run_figure

NAME = "contrast-vs-P"
TITLE = "Contrast of the exact solution against the task diversity, at one prompt length"
CLAIM = (
    '"when the task diversity increases, a smooth transition to perfect generalization '
    'occurs" (main text, Fig. 4(a)): the contrast C of the ground state rises with P/D^2.'
)
NOTES = ["An example figure (examples/extending/new_figure.py): a cut of Fig. 4a at one N."]
IN_PAPER = False  # an example: its verdict stays out of the report's list of the paper's errors


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ParameterError(f"{name} must be an integer >= 1, got {v!r}")
    return v


@dataclass(frozen=True)
class ContrastPreset(FigurePreset):
    """D, N, lam; ``points`` values of P log-spaced over ``P_range``; ``repeats``
    instances per P."""

    D: int = 20
    N: int = 100
    lam: float = 0.01
    P_range: tuple[int, int] = (20, 4000)
    points: int = 12
    repeats: int = 20
    _constraints: ClassVar = {k: _positive_int for k in ("D", "N", "points", "repeats")}


PRESETS = {
    "tiny": ContrastPreset(D=4, N=16, P_range=(4, 200), points=5, repeats=4),
    "quick": ContrastPreset(D=10, N=40, P_range=(10, 1000), points=8, repeats=8),
    "paper": ContrastPreset(),
}


def compute(ctx: Context) -> xr.Dataset:
    """C (text and cosine) of the ground state per (P, repeat), one seed per P."""
    p = ctx.params
    Ps = np.unique(np.geomspace(*p.P_range, p.points).round().astype(int)).tolist()
    seeds = {f"P{P}": figure_seed(ctx, "instances", D=p.D, N=p.N, P=P) for P in Ps}
    C = np.zeros((2, len(Ps), p.repeats))
    for j, P in enumerate(Ps):
        inst = make_instance(p.D, p.N, P, p.lam, convention=ctx.convention,
                             seed=seeds[f"P{P}"], batch_shape=(p.repeats,))  # fmt: skip
        m = ground_state(inst)
        C[0, j] = contrast(m).numpy()
        C[1, j] = contrast(m, kind="cosine").numpy()
    ds = xr.Dataset(
        {"C": (("kind", "P", "repeat"), C)},
        coords={"kind": ["w11", "cosine"], "P": Ps, "repeat": np.arange(p.repeats)},
        attrs={"D": p.D, "N": p.N, "lam": p.lam, "convention": ctx.convention},
    )
    return record_attrs(ds, seeds=seeds)


def draw(ds: xr.Dataset):
    """C against P/D^2 (log x), mean and standard error over the instances."""
    fig, axes = new_figure(1)
    ax = axes[0, 0]
    x = ds["P"].values / ds.attrs["D"] ** 2
    for kind, label in (("w11", "text contrast"), ("cosine", "cosine (authors' code)")):
        c = ds["C"].sel(kind=kind)
        se = c.std("repeat") / np.sqrt(ds.sizes["repeat"])
        ax.errorbar(x, c.mean("repeat"), yerr=se, marker="o", ms=4, capsize=2, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("task diversity P / D$^2$")
    ax.set_ylabel("contrast C of the ground state")
    ax.legend(loc="lower right")
    ax.set_title(f"D = {ds.attrs['D']}, N = {ds.attrs['N']}, lam = {ds.attrs['lam']:g}")
    return fig


def claims(ds: xr.Dataset) -> list[Claim]:
    """C rises with P/D^2: the largest P's mean C minus the smallest P's."""
    c = ds["C"].sel(kind="w11").mean("repeat").values
    return [at_least(CLAIM, "mean C at the largest P minus at the smallest P",
                     float(c[-1] - c[0]), agree=0.5, partly=0.1)]  # fmt: skip


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    c = ds["C"].sel(kind="w11").mean("repeat").values
    x = (ds["P"].values / ds.attrs["D"] ** 2).tolist()
    numbers = {"P_over_D2": x, "C_mean": c.tolist()}
    return numbers, f"C rises from {c[0]:.2f} (P/D^2 = {x[0]:.2g}) to {c[-1]:.2f} ({x[-1]:.2g})."


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=("tiny", "quick"), default="tiny")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: temporary)")
    args = ap.parse_args(argv)
    register_figure(NAME, sys.modules[__name__], PRESETS)
    try:  # a second registration under the same name is refused
        register_figure(NAME, sys.modules[__name__], PRESETS)
    except ParameterError as exc:
        print(f"registered twice: ParameterError: {exc}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rec = run_figure(NAME, out, preset=args.preset, progress=False)
        build_report(out)
        print(f"{NAME}: {rec['verdict']}; {rec['summary']}")
        print(f"files: {', '.join(rec['files'])}; report: {(out / 'report.md').exists()}")
        again = run_figure(NAME, out, preset=args.preset, progress=False)
        print(f"second run skipped: {again['skipped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

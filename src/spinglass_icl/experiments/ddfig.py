"""Double descent in task diversity (extra figure), drawn by the theory module.

Calls :func:`spinglass_icl.experiments.double_descent.double_descent_data` and
:func:`~spinglass_icl.experiments.double_descent.plot_double_descent` with the preset's
parameters, and records key numbers and the verdicts on Lu et al.'s claims.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .claims import Claim, at_most
from .common import Context, Outcome, save_dataset, save_figure
from .double_descent import double_descent_data, plot_double_descent

TITLE = "Double descent in task diversity, with the large-D theory"
CLAIM = (
    "(Not in the paper; Lu et al. 2024.) Without ridge the test error vs task diversity "
    "tau = P/D^2 peaks at the interpolation threshold P = D(D+1) (tau ~ 1); a ridge lam "
    "tames the peak; the spin-glass ground state follows the large-D theory."
)
NOTES = [
    "The SLA's trainable weights number D(D+1) (W's last column is inert), so the "
    "interpolation peak sits at P = D(D+1), i.e. tau = 1 + 1/D at finite D.",
]
#: not a figure of the paper: its verdicts judge Lu et al.'s theory, not the paper
IN_PAPER = False


def compute(ctx: Context) -> xr.Dataset:
    """:func:`double_descent_data` at the preset's parameters."""
    p = ctx.params
    return double_descent_data(
        D=p.D,
        alphas=p.alphas,
        taus=np.geomspace(p.tau_range[0], p.tau_range[1], p.taus),
        lam=p.lam,
        solvers=p.solvers,
        sgd=False,
        repeats=p.repeats,
        seed=ctx.seed,
        convention=ctx.convention,
        device=ctx.device,
    )


def claims(ds: xr.Dataset) -> list[Claim]:
    """The peak sits at the interpolation threshold; the ground state follows the theory
    (both claims of Lu et al., not of the paper)."""
    ex = ds["error_mean"].sel(solver="exact")
    taus = ds["tau"].values
    D = int(ds.attrs["D"])
    # distance of each alpha's peak from P = D(D+1), in factors of tau (log10)
    off = max(abs(np.log10(taus[int(np.nanargmax(ex.sel(alpha=a).values))] / (1 + 1 / D)))
              for a in ds["alpha"].values)  # fmt: skip
    rel = np.abs(ex.values / ds["theory"].transpose(*ex.dims).values - 1)
    return [
        at_most(
            "(Lu et al. 2024, arXiv:2405.11751, the paper's ref. [21]; not a claim of the "
            "paper) At small ridge the test error peaks at the interpolation threshold "
            "P = D(D+1) (tau ~ 1).",
            "largest |log10(tau_peak / (1 + 1/D))| over alpha (grid resolution: "
            f"{np.log10(taus[1] / taus[0]):.2g})",
            float(off),
            agree=float(np.log10(taus[1] / taus[0])) * 1.01,
            partly=0.3,
        ),
        at_most(
            "(Lu et al. 2024, arXiv:2405.11751; not a claim of the paper) The finite-D ground "
            "state follows the large-D theory.",
            "median relative difference of the exact solution's error from the theory",
            float(np.nanmedian(rel)),
            agree=0.2,
            partly=0.5,
        ),
    ]


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    ex = ds["error_mean"].sel(solver="exact")
    taus = ds["tau"].values
    numbers: dict = {"taus": taus.tolist()}
    peaks = []
    for a in ds["alpha"].values:
        e = ex.sel(alpha=a).values
        peaks.append(float(taus[int(np.nanargmax(e))]))
        numbers[f"alpha{a:g}_exact_error"] = e.tolist()
        numbers[f"alpha{a:g}_peak_tau"] = peaks[-1]
    for s in ds["solver"].values:
        numbers[f"{s}_converged_fraction"] = float(ds["converged"].sel(solver=s).mean())
    summary = (
        "Exact-solution error peaks at tau = "
        + ", ".join(f"{t:.2g}" for t in peaks)
        + f" (alpha = {', '.join(f'{a:g}' for a in ds['alpha'].values)}), "
        f"lam = {ds.attrs['lam']:g}."
    )
    return numbers, summary


def run(ctx: Context) -> Outcome:
    ds = compute(ctx)
    files = save_figure(plot_double_descent(ds), ctx.out) + save_dataset(ds, ctx.out)
    numbers, summary = summarize(ds)
    return Outcome(
        numbers=numbers,
        summary=summary,
        claims=claims(ds),
        seeds={"base": ctx.seed, "points": "double_descent.point_seed(seed, D, N, P, ...)"},
        files=files,
    )

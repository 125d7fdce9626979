"""Double descent in task diversity (extra figure), drawn by the theory module.

Calls :func:`spinglass_icl.experiments.double_descent.double_descent_data` and
:func:`~spinglass_icl.experiments.double_descent.plot_double_descent` (written with the
theory module) with the preset's parameters, and records key numbers.
"""

from __future__ import annotations

import numpy as np

from . import double_descent as dd
from .common import Context, Outcome, save_dataset, save_figure

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


def run(ctx: Context) -> Outcome:
    p = ctx.params
    taus = np.geomspace(p["tau_range"][0], p["tau_range"][1], p["taus"])
    ds = dd.double_descent_data(
        D=p["D"],
        alphas=tuple(p["alphas"]),
        taus=taus,
        lam=p["lam"],
        solvers=tuple(p["solvers"]),
        sgd=False,
        repeats=p["repeats"],
        seed=ctx.seed,
        convention=ctx.convention,
        device=ctx.device,
    )
    fig = dd.plot_double_descent(ds)
    files = save_figure(fig, ctx.out)
    files += save_dataset(ds, ctx.out)
    ex = ds["error_mean"].sel(solver="exact")  # (alpha, tau) or (tau, alpha)
    numbers: dict = {"taus": taus.tolist()}
    peaks = []
    for a in ds["alpha"].values:
        e = ex.sel(alpha=a).values
        i = int(np.nanargmax(e))
        peaks.append(float(taus[i]))
        numbers[f"alpha{a:g}_exact_error"] = e.tolist()
        numbers[f"alpha{a:g}_peak_tau"] = float(taus[i])
    summary = (
        "Exact-solution error peaks at tau = "
        + ", ".join(f"{t:.2g}" for t in peaks)
        + f" (alpha = {', '.join(f'{a:g}' for a in ds['alpha'].values)}), lam = {p['lam']:g}."
    )
    return Outcome(
        numbers=numbers, summary=summary, agrees=None, seeds={"data": ctx.seed}, files=files
    )

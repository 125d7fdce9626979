"""Fig. 4a: phase diagram of the contrast C over (P/D^2, N/D), AMP and exact.

A sweep (:mod:`spinglass_icl.sweep`) over a log-spaced grid of P and a linear grid of N,
with ``solver`` in {AMP, exact} as a third grid axis (both solvers see the same instances:
the instance seed depends on the data parameters only), ``repeats`` instances per point.
The store lives at ``<out>/fig4a/sweep.sqlite``, so an interrupted ``paper`` run resumes.
Non-converged AMP runs are missing (NaN) in the averages, as in the authors' code, and
the cells where AMP failed in at least half the repeats are marked with a red x.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..sweep import SweepSpec, run_sweep
from .amp_stability import draw_stability_boundary, predicted_convergence, stability_numbers
from .claims import Claim, at_least, at_most
from .common import (
    Context,
    Outcome,
    new_figure,
    nice_log_ticks,
    plain_log_ticks,
    save_dataset,
    save_figure,
)
from .presets import Fig4aPreset

TITLE = "Phase diagram of the contrast ratio (AMP vs exact)"
CLAIM = (
    "The contrast C rises smoothly with task diversity P/D^2 (a continuous ICL transition) "
    "and further with prompt length N/D at large P; in the bottom-left corner (small P and "
    "N) AMP does not converge (text: D = 40, lam = 10, beta = 100; authors' data: D = 20, "
    "lam = 1)."
)
NOTES = [
    "Conventions (docs/conventions.md#contrast): the contrast ratio is scale-free, so the map does "
    "not depend on the "
    "convention, but where AMP converges at a given (lam, beta) does. We use the authors' "
    "setting (D = 20, lam = 1, beta = 100, damping 0.9, tol 1e-6) for `paper`; `quick` uses "
    "the printed caption's lam = 10 at D = 10.",
    "Where AMP converges depends strongly on lam, and not on beta or the damping: the corner "
    "is where the TAP variance equation (34b), which does not involve m, has no positive "
    "fixed point, below P ~ pi_c(N/D, lam) D (docs/amp-stability.md; drawn here as the "
    "closed-form line and, per instance, as circles). No damping removes it; an unstable "
    "damped mean iteration, which damping > 1 - 2/mu_max would remove, plays no part at "
    "damping 0.9. At the quick grid (D = 10, damping "
    "0.9, tol 1e-6, 3 repeats) amp-paper failed in 64% of the runs at lam = 1 (all of the "
    "small-P corner) and in 2% at lam = 10 (benchmarks/RESULTS.md). The exact map does not "
    "depend on convergence.",
    "Onsager term (docs/solvers.md#onsager-term): the AMP map uses eq. 34 verbatim (amp-paper) as "
    "the paper did; its mean is "
    "biased, the exact map (right) is the ridge minimizer A^{-1} h.",
    "Contrast (docs/conventions.md#contrast): C is the text formula over W11 (the authors' code "
    "used the cosine to I).",
]
WHY = (
    "The non-convergence corner is not a phase of the model: it is where the TAP variance "
    "equation (34b) has no positive fixed point, so no damping helps. Its location is "
    "predicted per instance and in closed form, P ~ pi_c(N/D, lam) D, which shrinks like "
    "1/D in P/D^2 (docs/amp-stability.md), and it depends strongly on lam: small at the "
    "caption's lam = 10, the whole small-P region at the authors' lam = 1."
)


def grid(p: Fig4aPreset) -> tuple[list[int], list[int]]:
    """The P (log-spaced) and N (linear) values of the sweep."""
    P = np.unique(np.round(np.geomspace(*p.P_range, p.grid)).astype(int)).tolist()
    N = np.unique(np.round(np.linspace(*p.N_range, p.grid)).astype(int)).tolist()
    return P, N


def sweep_spec(p: Fig4aPreset, convention: str, seed: int) -> SweepSpec:
    """The sweep: grid P x N x solver (AMP and exact see the same instances)."""
    Ps, Ns = grid(p)
    return SweepSpec(
        grid={"P": Ps, "N": Ns, "solver": [p.amp_solver, "exact"]},
        fixed={"D": p.D, "lam": p.lam, "beta": p.beta, "convention": convention},
        repeats=p.repeats,
        seed=seed,
        solver_options={"damping": p.damping, "tol": p.tol, "max_iter": p.max_iter},
        observables=("contrast", "test_error"),
        test_tasks=p.test_tasks,
    )


def compute(ctx: Context) -> xr.Dataset:
    """Run (or resume) the sweep into ``<out>/sweep.sqlite``; its rows as a Dataset
    (P, N, solver, repeat) with the contrast averaged over the converged repeats
    (``C``) and the converged fraction (``converged_fraction``)."""
    p = ctx.params
    spec = sweep_spec(p, ctx.convention, ctx.seed)
    store = run_sweep(spec, ctx.out / "sweep.sqlite", executor=ctx.executor,
                      workers=ctx.workers, device=ctx.device, progress=ctx.progress)  # fmt: skip
    ds = store.to_xarray(spec)  # this spec's rows (a store may hold several)
    ds["C"] = ds["contrast"].mean("repeat", skipna=True)
    ds["converged_fraction"] = ds["converged"].astype(float).mean("repeat")
    ds.attrs.update({"D": p.D, "lam": p.lam, "beta": p.beta, "repeats": p.repeats,
                     "amp_solver": p.amp_solver, "damping": p.damping})  # fmt: skip
    return ds


def predict(ctx: Context) -> dict:
    """The predicted AMP convergence on the sweep's own instances
    (:func:`.amp_stability.predicted_convergence`, docs/amp-stability.md)."""
    p = ctx.params
    return predicted_convergence(sweep_spec(p, ctx.convention, ctx.seed), p.amp_solver,
                                 device=ctx.device)  # fmt: skip


def draw(ds: xr.Dataset, pred: dict | None = None, convention: str = "authors"):
    """Two heat maps (AMP, exact) of C over (P/D^2, N/D); a cross where AMP failed in at
    least half the repeats; on the AMP map the predicted boundary (closed form, and per
    instance from ``pred``)."""
    a = ds.attrs
    D, amp = a["D"], a["amp_solver"]
    x = np.asarray(ds["P"].values, float) / D**2
    y = np.asarray(ds["N"].values, float) / D
    fig, axes = new_figure(2, 1, width=5.2, height=4.3)
    for ax, solver in zip(axes[0], [amp, "exact"]):
        Z = ds["C"].sel(solver=solver).transpose("N", "P").values
        im = ax.pcolormesh(x, y, Z, shading="nearest", cmap="viridis", vmin=0, vmax=1)
        ax.set_xscale("log")
        plain_log_ticks(ax, "x", nice_log_ticks(x.min(), x.max()))
        ax.set_xlabel("task diversity P / D$^2$")
        ax.set_ylabel("prompt length N / D")
        ax.set_title(f"AMP ({solver}): contrast C" if solver != "exact" else "exact: contrast C")
        fig.colorbar(im, ax=ax, label="contrast C")
    bad = ds["converged_fraction"].sel(solver=amp).transpose("N", "P").values < 0.5
    if bad.any():
        yy, xx = np.nonzero(bad)
        axes[0][0].scatter(x[xx], y[yy], marker="x", s=60, c="red", label="AMP not converged")
    if pred is not None:
        Ns = ds["N"].values
        draw_stability_boundary(axes[0][0], D, a["lam"], convention, (min(Ns), max(Ns)),
                                solver=amp, damping=a["damping"], predicted=pred)  # fmt: skip
        axes[0][0].set_xlim(x[0] / 1.3, x[-1] * 1.3)
        axes[0][0].set_ylim(y[0] - 0.05 * (y[-1] - y[0]), y[-1] * 1.05)
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(loc="upper left", fontsize=8)
    fig.suptitle(
        f"Fig. 4a: D = {D}, lam = {a['lam']:g}, beta = {a['beta']:g}, {a['repeats']} repeats; "
        "x: AMP not converged in >= half the repeats"
    )
    return fig


def _corner(ds: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray]:
    """The AMP failure fraction in the bottom-left quarter of the grid (the smaller half
    of the P values and of the N values) and outside it."""
    fail = 1 - ds["converged_fraction"].sel(solver=ds.attrs["amp_solver"])
    nP, nN = ds.sizes["P"], ds.sizes["N"]
    inside = np.zeros((nP, nN), bool)
    inside[: max(1, nP // 2), : max(1, nN // 2)] = True
    mask = xr.DataArray(inside, dims=("P", "N"), coords={"P": ds["P"], "N": ds["N"]})
    return fail.where(mask).mean(), fail.where(~mask).mean()


def claims(ds: xr.Dataset) -> list[Claim]:
    """C rises with P, smoothly; C rises with N at large P; AMP fails in the corner only."""
    Cx = ds["C"].sel(solver="exact")
    vsP = Cx.mean("N").values
    corner, rest = _corner(ds)
    return [
        at_least(
            '"when the task diversity increases, a smooth transition to perfect '
            'generalization occurs" (main text, Fig. 4(a)): C rises with P/D^2.',
            "exact C averaged over N: largest P minus smallest P",
            float(vsP[-1] - vsP[0]),
            agree=0.5,
            partly=0.1,
        ),
        at_most(
            'The transition is smooth: "a smooth transition" (main text, Fig. 4(a)), "a '
            'continuous ICL transition" (Conclusion).',
            "largest change of the N-averaged exact C between neighbouring P of the grid",
            float(np.max(np.abs(np.diff(vsP)))),
            agree=0.3,
            partly=0.5,
        ),
        at_least(
            '"while keeping a large value of task diversity, increasing the prompt length '
            'further lowers the generalization error" (main text, Fig. 4(a)): C rises with N/D '
            "at the largest P.",
            "exact C at the largest P: largest N minus smallest N",
            float(Cx.isel(P=-1, N=-1) - Cx.isel(P=-1, N=0)),
            agree=0.02,
            partly=0.0,
        ),
        at_least(
            '"In the left-bottom corner, AMP does not converge." (Fig. 4 caption).',
            "fraction of AMP runs not converged in the bottom-left quarter of the grid",
            float(corner),
            agree=0.5,
            partly=0.1,
        ),
        at_most(
            "Outside that corner AMP converges (the Fig. 4 caption names only the corner).",
            "fraction of AMP runs not converged outside the bottom-left quarter",
            float(rest),
            agree=0.1,
            partly=0.3,
        ),
    ]


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    D, amp = ds.attrs["D"], ds.attrs["amp_solver"]
    C, conv = ds["C"], ds["converged_fraction"]
    Cx = C.sel(solver="exact")
    c_lowP, c_highP = float(Cx.isel(P=0).mean()), float(Cx.isel(P=-1).mean())
    frac_bad = float(1 - conv.sel(solver=amp).mean())
    bad_corner = float(1 - conv.sel(solver=amp).isel(P=0, N=0))
    corner, rest = _corner(ds)
    numbers = {
        "P_values": ds["P"].values.tolist(),
        "N_values": ds["N"].values.tolist(),
        "exact_C_smallest_P": c_lowP,
        "exact_C_largest_P": c_highP,
        "exact_C_vs_P": Cx.mean("N").values.tolist(),
        "amp_C_largest_P": float(C.sel(solver=amp).isel(P=-1).mean()),
        "amp_nonconverged_fraction": frac_bad,
        "amp_nonconverged_fraction_corner": bad_corner,
        "amp_nonconverged_fraction_corner_quarter": float(corner),
        "amp_nonconverged_fraction_outside_quarter": float(rest),
        "amp_vs_exact_max_abs_C_diff": float(
            np.nanmax(np.abs(C.sel(solver=amp).values - Cx.values))
        ),  # fmt: skip
        "rows": int(ds["contrast"].size),
    }
    P0, P1 = ds["P"].values[0] / D**2, ds["P"].values[-1] / D**2
    summary = (
        f"Exact contrast averaged over N rises from {c_lowP:.2f} (P/D^2 = {P0:.2g}) to "
        f"{c_highP:.2f} (P/D^2 = {P1:.2g}); AMP ({amp}) failed to converge in "
        f"{100 * frac_bad:.0f}% of the runs ({100 * float(corner):.0f}% in the bottom-left "
        f"quarter of the grid, {100 * float(rest):.0f}% outside it); where it converged its "
        f"C is within {numbers['amp_vs_exact_max_abs_C_diff']:.2g} of the exact C."
    )
    return numbers, summary


def run(ctx: Context) -> Outcome:
    ds = compute(ctx)
    pred = predict(ctx)
    files = ["sweep.sqlite"] + save_dataset(ds.drop_vars(["C", "converged_fraction"]), ctx.out)
    files += save_figure(draw(ds, pred, ctx.convention), ctx.out)
    numbers, summary = summarize(ds)
    cv = ds["converged"].sel(solver=ctx.params.amp_solver)
    measured = {(P, N): cv.sel(P=P, N=N).values.astype(bool).tolist()
                for P in ds["P"].values.tolist() for N in ds["N"].values.tolist()}  # fmt: skip
    numbers["stability"] = stability_numbers(pred, measured, ds.attrs["D"], ds.attrs["lam"],
                                             ctx.convention)  # fmt: skip
    summary += " " + numbers["stability"]["sentence"]
    return Outcome(
        numbers=numbers,
        summary=summary,
        claims=claims(ds),
        seeds={"sweep_seed": ctx.seed, "instances": "derived from (seed, D, N, P, repeat)"},
        files=files,
    )

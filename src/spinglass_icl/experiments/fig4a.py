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

from .. import sweep
from .common import Context, Outcome, new_figure, save_figure

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


def grid(p: dict) -> tuple[list[int], list[int]]:
    """The P (log-spaced) and N (linear) values of the sweep."""
    k = p["grid"]
    P = np.unique(np.round(np.geomspace(*p["P_range"], k)).astype(int)).tolist()
    N = np.unique(np.round(np.linspace(*p["N_range"], k)).astype(int)).tolist()
    return P, N


def run(ctx: Context) -> Outcome:
    p = ctx.params
    D = p["D"]
    Ps, Ns = grid(p)
    amp_name = p["amp_solver"]
    spec = sweep.SweepSpec(
        grid={"P": Ps, "N": Ns, "solver": [amp_name, "exact"]},
        fixed={"D": D, "lam": p["lam"], "beta": p["beta"], "convention": ctx.convention},
        repeats=p["repeats"],
        seed=ctx.seed,
        solver_options={"damping": p["damping"], "tol": p["tol"], "max_iter": p["max_iter"]},
        observables=("contrast", "test_error"),
        test_tasks=p["test_tasks"],
    )
    store_path = ctx.out / "sweep.sqlite"
    store = sweep.run_sweep(
        spec,
        store_path,
        executor=ctx.executor,
        workers=ctx.workers,
        device=ctx.device,
        progress=ctx.progress,
    )
    ds = store.to_xarray(spec)  # this spec's rows (a store may hold several)
    files = ["sweep.sqlite"]
    nc = ctx.out / "data.nc"
    store.to_netcdf(nc, spec)  # atomic: replaces an old data.nc only when complete
    files.append("data.nc")
    C = ds["contrast"].mean("repeat", skipna=True)  # (P, N, solver)
    conv = ds["converged"].astype(float).mean("repeat")
    x = np.asarray(ds["P"].values, float) / D**2
    y = np.asarray(ds["N"].values, float) / D
    fig, axes = new_figure(2, 1, width=5.0, height=4.2)
    for ax, solver in zip(axes[0], [amp_name, "exact"]):
        Z = C.sel(solver=solver).transpose("N", "P").values
        im = ax.pcolormesh(x, y, Z, shading="nearest", cmap="viridis", vmin=0, vmax=1)
        ax.set_xscale("log")
        ax.set_xlabel("P / D^2")
        ax.set_ylabel("N / D")
        ax.set_title(f"{'AMP (' + solver + ')' if solver != 'exact' else 'exact'}: contrast C")
        fig.colorbar(im, ax=ax)
    bad = conv.sel(solver=amp_name).transpose("N", "P").values < 0.5
    if bad.any():
        yy, xx = np.nonzero(bad)
        axes[0][0].scatter(x[xx], y[yy], marker="x", s=60, c="red", label="AMP not converged")
    # the predicted boundary (docs/amp-stability.md): closed form and the same instances
    from .amp_stability import draw_stability_boundary, predicted_convergence, stability_numbers

    pred = predicted_convergence(spec, amp_name, device=ctx.device)
    draw_stability_boundary(
        axes[0][0], D, p["lam"], ctx.convention, (min(Ns), max(Ns)), solver=amp_name,
        damping=p["damping"], predicted=pred,
    )  # fmt: skip
    axes[0][0].set_xlim(x[0] / 1.3, x[-1] * 1.3)
    axes[0][0].set_ylim(y[0] - 0.05 * (y[-1] - y[0]), y[-1] * 1.05)
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.suptitle(
        f"Fig. 4a: D = {D}, lam = {p['lam']:g}, beta = {p['beta']:g}, {p['repeats']} repeats; "
        "x: AMP not converged in >= half the repeats"
    )
    files += save_figure(fig, ctx.out)
    Cx = C.sel(solver="exact")
    c_lowP = float(Cx.isel(P=0).mean())
    c_highP = float(Cx.isel(P=-1).mean())
    rises = bool(np.all(np.diff(Cx.mean("N").values) > -0.02) and c_highP > c_lowP)
    frac_bad = float(1 - conv.sel(solver=amp_name).mean())
    bad_corner = float(1 - conv.sel(solver=amp_name).isel(P=0, N=0))
    numbers = {
        "P_values": Ps,
        "N_values": Ns,
        "exact_C_smallest_P": c_lowP,
        "exact_C_largest_P": c_highP,
        "exact_C_vs_P": Cx.mean("N").values.tolist(),
        "amp_C_largest_P": float(C.sel(solver=amp_name).isel(P=-1).mean()),
        "amp_nonconverged_fraction": frac_bad,
        "amp_nonconverged_fraction_corner": bad_corner,
        "amp_vs_exact_max_abs_C_diff": float(
            np.nanmax(np.abs(C.sel(solver=amp_name).values - Cx.values))
        ),
        "rows": int(ds["contrast"].size),
    }
    cv = ds["converged"].sel(solver=amp_name)
    measured = {(P, N): cv.sel(P=P, N=N).values.astype(bool).tolist() for P in Ps for N in Ns}
    numbers["stability"] = stability_numbers(pred, measured, D, p["lam"], ctx.convention)
    summary = (
        f"Exact contrast averaged over N rises from {c_lowP:.2f} (P/D^2 = {x[0]:.2g}) to "
        f"{c_highP:.2f} (P/D^2 = {x[-1]:.2g}); AMP ({amp_name}) failed to converge in "
        f"{100 * frac_bad:.0f}% of the runs ({100 * bad_corner:.0f}% at the smallest P and N); "
        f"where it converged its C is within {numbers['amp_vs_exact_max_abs_C_diff']:.2g} of "
        "the exact C. " + numbers["stability"]["sentence"]
    )
    return Outcome(
        numbers=numbers,
        summary=summary,
        agrees=rises,
        seeds={"sweep_seed": ctx.seed, "instances": "derived from (seed, D, N, P, repeat)"},
        files=files,
    )

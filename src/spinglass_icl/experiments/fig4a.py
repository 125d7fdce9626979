"""Fig. 4a: phase diagram of the contrast C over (P/D^2, N/D), AMP and exact.

Two sweeps (:mod:`spinglass_icl.sweep`) over the same instances (the instance seed
depends on the data parameters only), ``solver`` in {AMP, exact} as a grid axis,
``repeats`` instances per point, on the authors' grid at the ``paper`` preset (linear P
and N, 50 x 50):

* as the authors made it: AMP capped at ``authors_cap`` = 100 steps, the contrast as the
  cosine of W11 with the identity (their code), store ``<out>/fig4a/sweep_authors.sqlite``;
* converged: AMP capped at ``max_iter`` (2000), the contrast of the text (before Fig. 4a),
  store ``<out>/fig4a/sweep.sqlite``.

An interrupted ``paper`` run resumes from the stores. Non-converged AMP runs are missing
(NaN) in the averages, as in the authors' code; the cells where AMP failed in at least
half the repeats are marked with a red x, and the stability prediction
(docs/amp-stability.md) is drawn over the converged-cap map.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import xarray as xr

from ..sweep import SweepSpec, run_sweep
from .amp_stability import draw_stability_boundary, predicted_convergence, stability_numbers
from .claims import Claim, at_least, at_most
from .common import Context, new_figure, nice_log_ticks, plain_log_ticks, record_attrs
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
    "Contrast (docs/conventions.md#contrast): the converged maps use the text's formula over "
    "W11; the maps at the authors' 100-step cap use the cosine of W11 with the identity. The "
    "authors' code takes the cosine of the whole (D+1) x (D+1) W with the identity, which for "
    "the solution (last row and column near 0) is sqrt(D/(D+1)) times ours (0.976 at D = 20).",
    "Grid: the authors' script uses P = 20, 40, ..., 1000 and N = 2, 4, ..., 100 (linear, "
    "50 x 50), D = 20, lam = 1, beta = 100, damping 0.9, 10 repeats, 100 AMP steps, "
    "converged when the mean-square change of m plus that of v is below 1e-6; the `paper` "
    "preset uses exactly that grid. The engine's stop is a relative max change (tol), so the "
    "runs at the authors' cap stop at authors_tol = 1e-3, three decades from an O(1) start "
    "as theirs (at 1e-6 none could stop within 100 damped steps: 0.9^100 = 2.7e-5); the "
    "converged maps use tol = 1e-6.",
]
WHY = (
    "The non-convergence corner is not a phase of the model: it is where the TAP variance "
    "equation (34b) has no positive fixed point, so no damping helps. Its location is "
    "predicted per instance and in closed form, P ~ pi_c(N/D, lam) D, which shrinks like "
    "1/D in P/D^2 (docs/amp-stability.md), and it depends strongly on lam: small at the "
    "caption's lam = 10, the whole small-P region at the authors' lam = 1."
)


def grid(p: Fig4aPreset) -> tuple[list[int], list[int]]:
    """The P and N values of the sweep: both linear (``grid_kind = "linear"``, the
    authors' ``np.linspace(20, 1000, 50, dtype=int)`` and ``np.linspace(2, 100, 50,
    dtype=int)`` at the paper preset) or P log-spaced and N linear (``"log"``)."""
    if p.grid_kind == "linear":
        P = np.unique(np.linspace(*p.P_range, p.grid).astype(int)).tolist()
    else:
        P = np.unique(np.round(np.geomspace(*p.P_range, p.grid)).astype(int)).tolist()
    N = np.unique(np.round(np.linspace(*p.N_range, p.grid)).astype(int)).tolist()
    return P, N


def sweep_spec(p: Fig4aPreset, convention: str, seed: int, authors: bool = False) -> SweepSpec:
    """The sweep: grid P x N x solver (AMP and exact see the same instances). With
    ``authors``, AMP stops at the authors' ``authors_cap`` steps and the contrast is the
    cosine of W11 with the identity (their code); else AMP runs to ``max_iter`` and the
    contrast is the text's."""
    Ps, Ns = grid(p)
    return SweepSpec(
        grid={"P": Ps, "N": Ns, "solver": [p.amp_solver, "exact"]},
        fixed={"D": p.D, "lam": p.lam, "beta": p.beta, "convention": convention},
        repeats=p.repeats,
        seed=seed,
        solver_options={
            "damping": p.damping,
            "tol": p.authors_tol if authors else p.tol,
            "max_iter": p.authors_cap if authors else p.max_iter,
        },  # fmt: skip
        observables=("contrast",) if authors else ("contrast", "test_error"),
        test_tasks=p.test_tasks,
        contrast_kind="cosine" if authors else "w11",
    )


def compute(ctx: Context) -> xr.Dataset:
    """Run (or resume) both sweeps (``<out>/sweep.sqlite``: converged cap, text contrast;
    ``<out>/sweep_authors.sqlite``: the authors' cap and cosine contrast); their rows as
    one Dataset (P, N, solver, repeat) with the contrast averaged over the converged
    repeats (``C``, ``C_authors``) and the converged fractions (``converged_fraction``,
    ``converged_fraction_authors``)."""
    p = ctx.params
    kw = dict(executor=ctx.executor, workers=ctx.workers, device=ctx.device,
              progress=ctx.progress)  # fmt: skip
    spec = sweep_spec(p, ctx.convention, ctx.seed)
    ds = run_sweep(spec, ctx.out / "sweep.sqlite", **kw).to_xarray(spec)
    aspec = sweep_spec(p, ctx.convention, ctx.seed, authors=True)
    da = run_sweep(aspec, ctx.out / "sweep_authors.sqlite", **kw).to_xarray(aspec)
    ds["C"] = ds["contrast"].mean("repeat", skipna=True)
    ds["converged_fraction"] = ds["converged"].astype(float).mean("repeat")
    ds["contrast_authors"] = da["contrast"]
    ds["converged_authors"] = da["converged"]
    ds["C_authors"] = da["contrast"].mean("repeat", skipna=True)
    ds["converged_fraction_authors"] = da["converged"].astype(float).mean("repeat")
    ds.attrs.update({"D": p.D, "lam": p.lam, "beta": p.beta, "repeats": p.repeats,
                     "amp_solver": p.amp_solver, "damping": p.damping,
                     "max_iter": p.max_iter, "authors_cap": p.authors_cap,
                     "authors_tol": p.authors_tol,
                     "grid_kind": p.grid_kind, "convention": ctx.convention,
                     "predict_every": p.predict_every,
                     "predicted": json.dumps(_pred_rows(predict(ctx)))})  # fmt: skip
    seeds = {"sweep_seed": ctx.seed, "instances": "derived from (seed, D, N, P, repeat)"}
    return record_attrs(ds, seeds=seeds, files=["sweep.sqlite", "sweep_authors.sqlite"])


def predict(ctx: Context) -> dict:
    """The predicted AMP convergence on the sweep's own instances
    (:func:`.amp_stability.predicted_convergence`, docs/amp-stability.md), at every
    ``predict_every``-th P and N of the grid (the prediction costs more than the solve)."""
    p = ctx.params
    spec = sweep_spec(p, ctx.convention, ctx.seed)
    k = p.predict_every
    if k > 1:  # every k-th P and N (always the last): the same instances, fewer of them
        Ps, Ns = spec.grid["P"], spec.grid["N"]
        sub = {"P": sorted(set(Ps[::k]) | {Ps[-1]}), "N": sorted(set(Ns[::k]) | {Ns[-1]})}
        spec = dataclasses.replace(spec, grid={**spec.grid, **sub})
    return predicted_convergence(spec, p.amp_solver, device=ctx.device)


def _pred_rows(pred: dict) -> list:
    """:func:`predict`'s dict as JSON-able rows ``[P, N, converges, kinds, damping_min]``."""
    return [[P, N, v["converges"], v["kinds"], v["damping_min"]] for (P, N), v in pred.items()]


def predicted(ds: xr.Dataset) -> dict:
    """The prediction stored by :func:`compute` (``predicted`` attr), as :func:`predict`
    returned it."""
    rows = json.loads(ds.attrs["predicted"])
    return {(P, N): {"converges": c, "kinds": k, "damping_min": d} for P, N, c, k, d in rows}


def _map(fig, ax, ds: xr.Dataset, var: str, solver: str, title: str, linear: bool):
    """One heat map of ``ds[var]`` for ``solver`` over (P/D^2, N/D)."""
    D = ds.attrs["D"]
    x = np.asarray(ds["P"].values, float) / D**2
    y = np.asarray(ds["N"].values, float) / D
    Z = ds[var].sel(solver=solver).transpose("N", "P").values
    im = ax.pcolormesh(x, y, Z, shading="nearest", cmap="viridis", vmin=0, vmax=1)
    if not linear:
        ax.set_xscale("log")
        plain_log_ticks(ax, "x", nice_log_ticks(x.min(), x.max()))
    ax.set_xlabel("task diversity P / D$^2$")
    ax.set_ylabel("prompt length N / D")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="contrast C")
    return x, y


def _crosses(ax, ds: xr.Dataset, var: str, x, y) -> None:
    """A red x on each cell where AMP converged in fewer than half the repeats."""
    bad = ds[var].sel(solver=ds.attrs["amp_solver"]).transpose("N", "P").values < 0.5
    if bad.any():
        yy, xx = np.nonzero(bad)
        ax.scatter(x[xx], y[yy], marker="x", s=24 if x.size > 25 else 60, c="red",
                   linewidths=1.0, label="AMP not converged")  # fmt: skip


def _legend_proxies() -> dict:
    """Legend handles that show on white (the drawn boundary and circles are white on black
    so that they show on the map)."""
    from matplotlib.lines import Line2D

    return {
        "AMP not converged": Line2D([], [], ls="none", marker="x", color="red", ms=7),
        "closed form (large D)": Line2D([], [], color="black", lw=2, ls="--"),
        "predicted not to converge": Line2D(
            [], [], ls="none", marker="o", mfc="none", mec="black", ms=10, mew=1.5
        ),  # fmt: skip
    }


def draw(ds: xr.Dataset):
    """Four heat maps of C over (P/D^2, N/D): AMP at the authors' step cap with their
    cosine contrast (as they made it), AMP at the converged cap with the text's contrast,
    and the exact solution with each contrast; a cross where AMP failed in at least half
    the repeats; the predicted boundary (closed form, and per instance from the stored
    prediction, :func:`predicted`) on both AMP maps. The legend sits below the maps, never
    over a cell."""
    a = ds.attrs
    D, amp = a["D"], a["amp_solver"]
    linear = a.get("grid_kind", "log") == "linear"
    fig, axes = new_figure(2, 2, width=5.4, height=4.3)
    (a1, a2), (a3, a4) = axes
    cap, full = a["authors_cap"], a["max_iter"]
    x, y = _map(fig, a1, ds, "C_authors", amp,
                f"AMP ({amp}), {cap} steps (authors): cosine contrast", linear)  # fmt: skip
    _map(fig, a2, ds, "C", amp, f"AMP ({amp}), up to {full} steps: text contrast", linear)
    _map(fig, a3, ds, "C", "exact", "exact: text contrast", linear)
    _map(fig, a4, ds, "C_authors", "exact", "exact: cosine contrast (authors')", linear)
    _crosses(a1, ds, "converged_fraction_authors", x, y)
    _crosses(a2, ds, "converged_fraction", x, y)
    Ns = ds["N"].values
    for ax, p in ((a1, None), (a2, predicted(ds))):
        draw_stability_boundary(ax, D, a["lam"], a["convention"], (min(Ns), max(Ns)), solver=amp,
                                damping=a["damping"], predicted=p)  # fmt: skip
    for ax in (a1, a2, a3, a4):  # the same limits on every map
        if linear:  # the cells' edges
            dx = np.diff(x).min() if x.size > 1 else 1.0
            dy = np.diff(y).min() if y.size > 1 else 1.0
            ax.set_xlim(x[0] - dx / 2, x[-1] + dx / 2)
            ax.set_ylim(y[0] - dy / 2, y[-1] + dy / 2)
        else:
            ax.set_xlim(x[0] / 1.3, x[-1] * 1.3)
            ax.set_ylim(y[0] - 0.05 * (y[-1] - y[0]), y[-1] * 1.05)
    labels = {lab for ax in (a1, a2) for lab in ax.get_legend_handles_labels()[1]}
    handles = {lab: h for lab, h in _legend_proxies().items() if lab in labels}
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=len(handles), frameon=False)  # fmt: skip
    fig.suptitle(
        f"Fig. 4a: D = {D}, lam = {a['lam']:g}, beta = {a['beta']:g}, {a['repeats']} repeats, "
        f"damping {a['damping']}; x: AMP not converged in >= half the repeats"
    )
    return fig


def _corner(ds: xr.Dataset, var: str = "converged_fraction") -> tuple[xr.DataArray, xr.DataArray]:
    """The AMP failure fraction (from ``var``) in the bottom-left quarter of the grid (the
    smaller half of the P values and of the N values) and outside it."""
    fail = 1 - ds[var].sel(solver=ds.attrs["amp_solver"])
    nP, nN = ds.sizes["P"], ds.sizes["N"]
    inside = np.zeros((nP, nN), bool)
    inside[: max(1, nP // 2), : max(1, nN // 2)] = True
    mask = xr.DataArray(inside, dims=("P", "N"), coords={"P": ds["P"], "N": ds["N"]})
    return fail.where(mask).mean(), fail.where(~mask).mean()


def _amp_claims(ds: xr.Dataset) -> list[Claim]:
    """AMP fails in the corner and converges outside it: at the authors' step cap (as the
    figure was made) and at the converged cap."""
    out = []
    for var, cap in (("converged_fraction_authors", ds.attrs["authors_cap"]),
                     ("converged_fraction", ds.attrs["max_iter"])):  # fmt: skip
        corner, rest = _corner(ds, var)
        out += [
            at_least(
                '"In the left-bottom corner, AMP does not converge." (Fig. 4 caption; AMP '
                f"capped at {cap} steps).",
                "fraction of AMP runs not converged in the bottom-left quarter of the grid",
                float(corner),
                agree=0.5,
                partly=0.1,
            ),
            at_most(
                "Outside that corner AMP converges (the Fig. 4 caption names only the corner; "
                f"AMP capped at {cap} steps).",
                "fraction of AMP runs not converged outside the bottom-left quarter",
                float(rest),
                agree=0.1,
                partly=0.3,
            ),
        ]
    return out


def claims(ds: xr.Dataset) -> list[Claim]:
    """C rises with P, smoothly; C rises with N at large P; AMP fails in the corner only."""
    Cx = ds["C"].sel(solver="exact")
    vsP = Cx.mean("N").values
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
        *_amp_claims(ds),
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
    ca, ra = _corner(ds, "converged_fraction_authors")
    amp_rows = ds.sel(solver=amp)
    within = amp_rows["converged"].astype(bool) & (amp_rows["n_iter"] <= ds.attrs["authors_cap"])
    numbers.update({
        "grid_kind": ds.attrs["grid_kind"],
        "authors_cap": ds.attrs["authors_cap"],
        "max_iter": ds.attrs["max_iter"],
        "amp_nonconverged_fraction_authors_cap": float(
            1 - ds["converged_fraction_authors"].sel(solver=amp).mean()),
        "amp_nonconverged_fraction_corner_quarter_authors_cap": float(ca),
        "amp_nonconverged_fraction_outside_quarter_authors_cap": float(ra),
        # the same instances, stopped within the cap at the strict tol (few or none)
        "authors_cap_converged_at_strict_tol": float(within.values.mean()),
        "exact_C_cosine_largest_P": float(ds["C_authors"].sel(solver="exact").isel(P=-1).mean()),
        "exact_C_cosine_vs_P": ds["C_authors"].sel(solver="exact").mean("N").values.tolist(),
        "amp_C_cosine_authors_cap_largest_P": float(
            ds["C_authors"].sel(solver=amp).isel(P=-1).mean()),
    })  # fmt: skip
    P0, P1 = ds["P"].values[0] / D**2, ds["P"].values[-1] / D**2
    summary = (
        f"Exact contrast averaged over N rises from {c_lowP:.2f} (P/D^2 = {P0:.2g}) to "
        f"{c_highP:.2f} (P/D^2 = {P1:.2g}); AMP ({amp}) failed to converge in "
        f"{100 * frac_bad:.0f}% of the runs ({100 * float(corner):.0f}% in the bottom-left "
        f"quarter of the grid, {100 * float(rest):.0f}% outside it); where it converged its "
        f"C is within {numbers['amp_vs_exact_max_abs_C_diff']:.2g} of the exact C. At the "
        f"authors' {ds.attrs['authors_cap']}-step cap (stop at {ds.attrs['authors_tol']:g}) "
        f"AMP failed in {100 * float(ca):.0f}% of "
        f"the corner runs and {100 * float(ra):.0f}% outside it; the exact cosine contrast "
        f"reaches {numbers['exact_C_cosine_largest_P']:.2f} at the largest P."
    )
    cv = ds["converged"].sel(solver=amp)
    measured = {(P, N): cv.sel(P=P, N=N).values.astype(bool).tolist()
                for P in ds["P"].values.tolist() for N in ds["N"].values.tolist()}  # fmt: skip
    numbers["stability"] = stability_numbers(predicted(ds), measured, D, ds.attrs["lam"],
                                             ds.attrs["convention"])  # fmt: skip
    numbers["stability"]["predict_every"] = ds.attrs["predict_every"]
    summary += " " + numbers["stability"]["sentence"]
    return numbers, summary

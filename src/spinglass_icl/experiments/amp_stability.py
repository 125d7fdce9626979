"""Where AMP converges, and why (docs/amp-stability.md): margin and spectral radius vs P/D^2.

For a few lam at fixed D and N, ``repeats`` instances per P: the variance margin
``min_i (lam_i - R_i)`` of eq. 34b (beta-free; negative: no positive fixed point) and the
spectral radius of the damped mean iteration ``theta I + (1 - theta) A(v*)``, at the
preset's damping and undamped, from :func:`spinglass_icl.amp_stability`; the large-D
closed form (:func:`~spinglass_icl.solvers.stability.closed_form_boundary`) marks the
predicted boundary. The same instances are then solved with AMP, and the prediction is
checked against the solver's status.

:func:`draw_stability_boundary` and :func:`predicted_convergence` are what Fig. 4a uses
to draw the predicted boundary over its measured non-convergence cells.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import xarray as xr

from .claims import Claim, at_least
from .common import Context, figure_seed, new_figure, record_attrs

TITLE = "Where AMP converges: variance margin and spectral radius of the damped iteration"
CLAIM = (
    "(Not in the paper, which reads Fig. 4a's non-convergence corner as part of the phase "
    "diagram.) The corner is where the damped AMP iteration is unstable: the variance "
    "equation (34b) has no positive fixed point there, and the prediction from the fixed "
    "point and the spectrum of the damped mean iteration matches the solver's status."
)
#: not a figure of the paper: its verdict stays out of the "where the paper is wrong" list
IN_PAPER = False

NOTES = [
    "Not a figure of the paper: it explains Fig. 4a's non-convergence corner. H is convex for "
    "lam > 0 and the Boltzmann measure exists everywhere; non-convergence is a property of "
    "the damped iteration. The variance equation (34b) does not involve m and has a positive "
    "fixed point only above a P of order D (no damping helps below it); given it, the mean "
    "update is affine and converges iff the damped Jacobian's spectral radius is < 1 "
    "(docs/amp-stability.md).",
]


def predicted_convergence(spec, amp_solver: str, device="cpu") -> dict:
    """Predicted converged fraction per (P, N) of a Fig. 4a sweep, same instances.

    Every task of ``spec`` with ``solver == amp_solver`` is rebuilt exactly as the sweep
    draws it (``make_instance(..., seed=task.seed)``) and given to
    :func:`~spinglass_icl.amp_stability` with the sweep's damping, tol and max_iter.
    Returns ``{(P, N): {"converges": fraction predicted to converge, "kinds": per
    instance one of "converges", "no_fixed_point" (no damping helps), "unstable" (radius
    >= 1 at this damping) or "slow" (radius < 1 but more than max_iter iterations),
    "damping_min": the largest ``damping_min`` of the unstable instances (None if none)}}``.
    """
    from ..hamiltonian import make_instance
    from ..solvers.stability import amp_stability, auto_damping

    opts = spec.solver_options
    hits: dict = {}
    for t in spec.tasks():
        p = t.params
        if p["solver"] != amp_solver:
            continue
        inst = make_instance(
            p["D"], p["N"], p["P"], p["lam"], convention=p["convention"], noise=p["noise"],
            seed=t.seed, device=device,
        )  # fmt: skip
        auto = opts["damping"] == "auto"
        st = amp_stability(
            inst, p["beta"], solver=amp_solver, damping=0.5 if auto else opts["damping"],
            tol=opts["tol"], max_iter=opts["max_iter"],
        )  # fmt: skip
        if bool(st.converges) if not auto else not math.isnan(float(auto_damping(st))):
            kind = "converges"
        elif not bool(st.has_fixed_point):
            kind = "no_fixed_point"
        elif float(st.radius) >= 1 or not bool(st.can_converge):
            kind = "unstable"
        else:
            kind = "slow"
        hits.setdefault((p["P"], p["N"]), []).append((kind, float(st.damping_min)))
    out = {}
    for k, v in hits.items():
        kinds = [a for a, _ in v]
        d = [b for a, b in v if a == "unstable" and math.isfinite(b)]
        out[k] = {
            "converges": kinds.count("converges") / len(kinds),
            "kinds": kinds,
            "damping_min": max(d) if d else None,
        }
    return out


def closed_form_curve(
    D: int, lam: float, convention: str, N_values, *, solver: str, damping: float | None
) -> np.ndarray:
    """Closed-form boundary P_c(N) / D^2 for each N (inf where never)."""
    from ..solvers.stability import closed_form_boundary

    return np.array(
        [
            closed_form_boundary(D, int(N), lam, convention, solver=solver, damping=damping) / D**2
            for N in N_values
        ]
    )


def draw_stability_boundary(
    ax,
    D: int,
    lam: float,
    convention: str,
    N_range: tuple[float, float],
    *,
    solver: str = "amp-paper",
    damping: float | None = None,
    predicted: dict | None = None,
) -> dict:
    """Draw the predicted AMP boundary on a (P/D^2, N/D) axis; return its numbers.

    A dashed line: the closed form (variance fixed point and, with ``damping``, the
    damped mean iteration) for N over ``N_range``; AMP is predicted to converge to its
    right. Circles: cells of ``predicted`` (from :func:`predicted_convergence`)
    where fewer than half the instances are predicted to converge.
    """
    Ns = np.unique(np.round(np.linspace(N_range[0], N_range[1], 24)).astype(int))
    Ns = Ns[Ns >= 1]
    damping = None if damping == "auto" else damping  # auto: only the variance bound stays
    xc = closed_form_curve(D, lam, convention, Ns, solver=solver, damping=damping)
    finite = np.isfinite(xc)
    ax.plot(xc[finite], Ns[finite] / D, color="black", lw=3.2)  # visible on white too
    ax.plot(xc[finite], Ns[finite] / D, color="white", lw=1.6, ls="--",
            label="closed form (large D)")  # fmt: skip
    out = {"closed_form_P_over_D2": dict(zip(Ns.tolist(), xc.tolist()))}
    if predicted:
        bad = [(P, N) for (P, N), f in predicted.items() if f["converges"] < 0.5]
        if bad:
            P_, N_ = np.array(bad, dtype=float).T
            ax.scatter(P_ / D**2, N_ / D, s=150, facecolors="none", edgecolors="black",
                       linewidths=2.4)  # fmt: skip
            ax.scatter(P_ / D**2, N_ / D, s=150, facecolors="none", edgecolors="white",
                       linewidths=1.0, label="predicted not to converge")  # fmt: skip
        out["predicted_nonconverged_cells"] = len(bad)
    return out


def _nanmedian(a: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN; NaN where a row is all NaN (no warning)."""
    out = np.full(a.shape[:-1], np.nan)
    ok = np.isfinite(a).any(-1)
    out[ok] = np.nanmedian(a[ok], -1)
    return out


def _measure(ctx: Context) -> dict:
    """Per (lam, P, instance): the predicted stability numbers and the solver's status."""
    import torch

    import spinglass_icl as sg

    from ..solvers.stability import closed_form_boundary

    p = ctx.params
    D, N, beta = p["D"], p["N"], p["beta"]
    solver, damping, tol, max_iter = p["solver"], p["damping"], p["tol"], p["max_iter"]
    lams = list(p["lam_list"])
    Ps = np.unique(np.round(np.geomspace(*p["P_range"], p["points"])).astype(int)).tolist()
    R = p["repeats"]
    shape = (len(lams), len(Ps), R)
    margin, rad, rad0, vrate = (np.zeros(shape) for _ in range(4))
    pred, actual = np.zeros(shape, bool), np.zeros(shape, bool)
    dmin = np.zeros(shape)
    for i, lam in enumerate(lams):
        for j, P in enumerate(Ps):
            seed = figure_seed(ctx, "instances", D=D, N=N, P=P)  # the same at every lam
            inst = sg.make_instance(
                D, N, P, lam, convention=ctx.convention, seed=seed, batch_shape=(R,),
                device=ctx.device,
            )  # fmt: skip
            st = sg.amp_stability(inst, beta, solver=solver, damping=damping, tol=tol,
                                  max_iter=max_iter)  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = sg.solve(inst, solver, beta=beta, damping=damping, tol=tol,
                               max_iter=max_iter, warn=False)  # fmt: skip
            margin[i, j] = (st.margin / beta).cpu().numpy()
            vrate[i, j] = st.variance_rate.cpu().numpy()
            rad[i, j] = st.radius.cpu().numpy()
            rad0[i, j] = st.radius_at(0.0).cpu().numpy()
            dmin[i, j] = st.damping_min.cpu().numpy()
            pred[i, j] = st.converges.cpu().numpy()
            actual[i, j] = torch.as_tensor(res.converged).cpu().numpy()
    closed = [closed_form_boundary(D, N, lam, ctx.convention, solver=solver) / D**2 for lam in lams]
    return dict(D=D, N=N, R=R, solver=solver, damping=damping, lams=lams, Ps=Ps, margin=margin,
                vrate=vrate, rad=rad, rad0=rad0, dmin=dmin, pred=pred, actual=actual,
                closed=closed)  # fmt: skip


def draw(ds: xr.Dataset):
    """The three panels: variance margin, Perron root of the variance map, radius."""
    a = _arrays(ds)
    D, lams, closed, damping = a["D"], a["lams"], a["closed"], a["damping"]
    margin, rad, rad0, vrate = a["margin"], a["rad"], a["rad0"], a["vrate"]
    x = np.array(a["Ps"], float) / D**2
    fig, axes = new_figure(3, 1, width=4.6, height=4.0)
    fig.get_layout_engine().set(w_pad=0.12, wspace=0.06)  # panels apart, labels clear
    a0, a2, a1 = axes[0]
    for i, lam in enumerate(lams):
        c = f"C{i}"
        a0.plot(x, np.median(margin[i], -1), "o-", color=c, ms=3, label=f"lam = {lam:g}")
        r = np.where(np.isfinite(rad[i]), rad[i], np.nan)
        r0 = np.where(np.isfinite(rad0[i]), rad0[i], np.nan)
        a1.plot(x, _nanmedian(r), "o-", color=c, ms=3)
        a1.plot(x, _nanmedian(r0), ":", color=c)
        a2.plot(x, _nanmedian(np.where(np.isfinite(vrate[i]), vrate[i], np.nan)), "o-",
                color=c, ms=3)  # fmt: skip
        for ax in (a0, a1, a2):
            if math.isfinite(closed[i]):
                ax.axvline(closed[i], color=c, ls="--", lw=0.8)
    a0.axhline(0, color="0.3", lw=0.8)
    a0.set_yscale("symlog", linthresh=1e-2)
    a0.set_ylabel("variance margin\nmin_i (lam_i - R_i)")
    a0.set_title("(a) eq. 34b: < 0 = no positive fixed point")
    a2.axhline(1, color="0.3", lw=0.8)
    a2.set_ylim(0, 1.05)
    a2.set_ylabel("Perron root of the\nvariance map at v*")
    a2.set_title("(b) -> 1 where the fixed point vanishes")
    a1.axhline(1, color="0.3", lw=0.8)
    a1.set_ylim(0, 2)
    a1.set_ylabel("spectral radius of the\ndamped mean Jacobian")
    a1.set_title("(c) convergence of the mean iteration")
    for ax in (a0, a1, a2):
        ax.set_xscale("log")
        ax.set_xlabel("P / D^2")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{i}", marker="o", ms=3) for i in range(len(lams))]
    labels = [f"lam = {lam:g}" for lam in lams]
    handles += [Line2D([], [], color="0.3", marker="o", ms=3), Line2D([], [], color="0.3", ls=":"),
                Line2D([], [], color="0.3", ls="--", lw=0.8)]  # fmt: skip
    labels += [f"(c) damping {damping:g}", "(c) undamped", "closed-form boundary"]
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    fig.suptitle(f"AMP stability ({a['solver']}), D = {D}, N = {a['N']}, {a['R']} instances "
                 "per point")  # fmt: skip
    return fig


def compute(ctx: Context) -> xr.Dataset:
    """Per (lam, P, repeat): variance margin, Perron root of the variance map, spectral
    radius (damped and undamped), smallest stable damping, predicted and measured status;
    the closed-form boundary per lam."""
    a = _measure(ctx)
    convention = ctx.convention
    margin, rad, rad0, vrate = a["margin"], a["rad"], a["rad0"], a["vrate"]
    dims = ("lam", "P", "repeat")
    ds = xr.Dataset(
        {
            "margin": (dims, margin),
            "variance_rate": (dims, np.where(np.isfinite(vrate), vrate, np.nan)),
            "radius": (dims, np.where(np.isfinite(rad), rad, np.nan)),
            "radius_undamped": (dims, np.where(np.isfinite(rad0), rad0, np.nan)),
            "predicted_converged": (dims, a["pred"]),
            "solver_converged": (dims, a["actual"]),
            "damping_min": (dims, a["dmin"]),
            "closed_form_P_over_D2": (("lam",), np.asarray(a["closed"], float)),
        },
        coords={"lam": a["lams"], "P": a["Ps"], "repeat": list(range(a["R"]))},
        attrs={"D": a["D"], "N": a["N"], "solver": a["solver"], "damping": a["damping"],
               "convention": convention},
    )  # fmt: skip
    seeds = {"instances": "figure_seed(seed, D, N, P), the same at every lam"}
    return record_attrs(ds, seeds=seeds)


def _arrays(ds: xr.Dataset) -> dict:
    """The Dataset of :func:`compute` as the arrays that :func:`draw` and
    :func:`summarize` read (non-finite radii and rates are NaN)."""
    return dict(
        D=int(ds.attrs["D"]), N=int(ds.attrs["N"]), R=int(ds.sizes["repeat"]),
        solver=ds.attrs["solver"], damping=ds.attrs["damping"],
        lams=[float(x) for x in ds["lam"].values], Ps=[int(x) for x in ds["P"].values],
        margin=ds["margin"].values, vrate=ds["variance_rate"].values, rad=ds["radius"].values,
        rad0=ds["radius_undamped"].values, dmin=ds["damping_min"].values,
        pred=ds["predicted_converged"].values.astype(bool),
        actual=ds["solver_converged"].values.astype(bool),
        closed=[float(x) for x in ds["closed_form_P_over_D2"].values],
    )  # fmt: skip


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    """Numbers and summary: where the variance fixed point appears, how often the
    prediction matches the solver."""
    a = _arrays(ds)
    D, lams, Ps, closed = a["D"], a["lams"], a["Ps"], a["closed"]
    pred, actual, margin, dmin = a["pred"], a["actual"], a["margin"], a["dmin"]
    agree = float((pred == actual).mean())
    numbers = {"agreement": agree, "instances": int(pred.size), "P_values": Ps}
    parts = []
    for i, lam in enumerate(lams):
        has = margin[i] > 0
        frac = has.mean(-1)
        first = next((Ps[j] for j in range(len(Ps)) if frac[j] >= 0.5), None)
        fin = dmin[i][np.isfinite(dmin[i])]
        numbers[f"lam{lam:g}"] = {
            "closed_form_P_over_D2": closed[i],
            "per_instance_P_over_D2": None if first is None else first / D**2,
            "predicted_converged_fraction": float(pred[i].mean()),
            "solver_converged_fraction": float(actual[i].mean()),
            "max_damping_min": float(fin.max()) if fin.size else None,
        }
        parts.append(
            f"lam = {lam:g}: a variance fixed point from P/D^2 = "
            + ("never" if first is None else f"{first / D**2:.3g}")
            + f" (closed form {closed[i]:.3g}), AMP converges in {100 * actual[i].mean():.0f}%"
        )
    summary = (
        "; ".join(parts)
        + f". Prediction vs the solver's status: {100 * agree:.1f}% of {pred.size} instances."
    )
    return numbers, summary


def claims(ds: xr.Dataset) -> list[Claim]:
    """The stability analysis predicts which AMP runs converge."""
    a = _arrays(ds)
    agree = float((a["pred"] == a["actual"]).mean())
    return [
        at_least(
            '(Not in the paper, whose Fig. 4 caption only says "In the left-bottom corner, AMP '
            'does not converge") The stability analysis predicts which AMP runs converge.',
            "fraction of instances whose predicted status matches the solver's",
            float(agree),
            agree=0.95,
            partly=0.8,
        )
    ]


def stability_numbers(pred: dict, measured: dict, D: int, lam: float, convention: str) -> dict:
    """Compare the prediction with the measured status, per cell and per instance.

    ``pred`` from :func:`predicted_convergence`; ``measured`` ``{(P, N): [converged per
    repeat]}`` (the sweep's repeats, in the order of ``pred``'s kinds). A cell counts as
    converging when at least half its repeats do. Also: how many predicted failures no
    damping can remove (no variance fixed point), and the damping that removes the others.
    """
    cells = sorted(pred)
    p_ok = np.array([pred[c]["converges"] >= 0.5 for c in cells])
    m_ok = np.array([np.mean(measured[c]) >= 0.5 for c in cells])
    pairs = [
        (k == "converges", bool(m)) for c in cells for k, m in zip(pred[c]["kinds"], measured[c])
    ]
    inst_agree = float(np.mean([a == b for a, b in pairs]))
    kinds = [k for c in cells for k in pred[c]["kinds"]]
    n_fail = len(kinds) - kinds.count("converges")
    counts = {k: kinds.count(k) for k in ("no_fixed_point", "unstable", "slow")}
    dm = [pred[c]["damping_min"] for c in cells if pred[c]["damping_min"] is not None]
    sentence = (
        f"The stability prediction (docs/amp-stability.md) marks {int((~p_ok).sum())} of "
        f"{len(cells)} cells as non-converging, the measurement {int((~m_ok).sum())}; they "
        f"agree on {int((p_ok == m_ok).sum())} cells and on {100 * inst_agree:.1f}% of the "
        f"{len(pairs)} instances. "
    )
    if n_fail:
        sentence += (
            f"Of the {n_fail} instances predicted to fail, {counts['no_fixed_point']} have no "
            "positive variance fixed point (eq. 34b), which no damping removes, "
            f"{counts['unstable']} an unstable damped mean iteration"
            + (f" (removed by damping > {max(dm):.3g})" if dm else "")
            + f" and {counts['slow']} converge too slowly for the iteration cap."
        )
    else:
        sentence += "No instance is predicted to fail."
    return {
        "cells": len(cells),
        "cells_predicted_nonconverged": int((~p_ok).sum()),
        "cells_measured_nonconverged": int((~m_ok).sum()),
        "cells_agree": int((p_ok == m_ok).sum()),
        "instance_level_agreement": inst_agree,
        "instances_predicted_to_fail": n_fail,
        "failures_by_kind": counts,
        "damping_needed": max(dm) if dm else None,
        "sentence": sentence,
    }

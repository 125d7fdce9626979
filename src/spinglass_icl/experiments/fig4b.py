"""Fig. 4b: test error vs context length N for AMP (both variants), exact, SGD and theory.

The solvers run as a sweep (grid N x solver, ``trials`` repeats; store
``<out>/fig4b/sweep.sqlite``, resumable). SGD (full-batch Adam on eq. 2 at the same lam)
trains ``trials`` SLA per N with :mod:`spinglass_icl.training`; for each trained trial we
also solve its own training set exactly, so "SGD vs exact" is a paired comparison on the
same data (closed-form test errors, :func:`spinglass_icl.theory.relative_exact_test_error`).
The line is the large-D theory (:func:`spinglass_icl.theory.asymptotic_error`).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import sweep, theory, training
from .common import Context, Outcome, new_figure, save_dataset, save_figure, trial_chunks

TITLE = "Test error vs prompt length: AMP, exact, SGD and theory"
CLAIM = (
    "The test error decreases with the context length N, and the AMP result coincides "
    "with SGD training (D = 20, lam = 0.01, P = 10 000, beta = 100, 100 trials)."
)
NOTES = [
    "Onsager term (docs/solvers.md#onsager-term): eq. 34a (amp-paper, used by the paper) lacks the "
    "Onsager reaction term; its "
    "mean is biased, so its test error sits above the exact one at moderate P. `amp` adds "
    "the term and matches the exact ridge minimizer.",
    "Non-converged AMP runs are missing (NaN) in the averages, as in the authors' code; "
    "error bars are standard errors over the converged trials.",
    "Conventions (docs/conventions.md#relative-test-error): absolute errors depend on the "
    "convention; we plot the relative error "
    "E(y~ - y^)^2 / E y~^2.",
]


def run(ctx: Context) -> Outcome:
    p = ctx.params
    D, P, lam = p["D"], p["P"], p["lam"]
    Ns = list(p["N_list"])
    solvers = ["exact", "amp", "amp-paper"]
    spec = sweep.SweepSpec(
        grid={"N": Ns, "solver": solvers},
        fixed={"D": D, "P": P, "lam": lam, "beta": p["beta"], "convention": ctx.convention},
        repeats=p["trials"],
        seed=ctx.seed,
        solver_options={"damping": p["damping"], "tol": p["tol"], "max_iter": p["max_iter"]},
        observables=("test_error",),
        test_tasks=p["test_tasks"],
    )
    store = sweep.run_sweep(
        spec,
        ctx.out / "sweep.sqlite",
        executor=ctx.executor,
        workers=ctx.workers,
        device=ctx.device,
        progress=ctx.progress,
    )
    ds = store.to_xarray(spec)  # this spec's rows (a store may hold several)
    raw = ctx.out / "sweep.nc"
    if raw.exists():
        raw.unlink()
    store.to_netcdf(raw, spec)  # every row of the solver sweep, status included
    files = ["sweep.sqlite", "sweep.nc"]
    err = ds["relative_test_error"]  # (N, solver, repeat)
    mean = err.mean("repeat", skipna=True)
    n_ok = err.notnull().sum("repeat")
    se = err.std("repeat", skipna=True, ddof=1) / np.sqrt(n_ok.clip(min=1))
    numbers: dict = {"N": Ns}
    for s in solvers:
        numbers[f"{s}_relative_error"] = mean.sel(solver=s).values.tolist()
        numbers[f"{s}_converged_fraction"] = (n_ok.sel(solver=s) / p["trials"]).values.tolist()
    sgd_mean, sgd_se, pair_sgd, pair_exact = [], [], [], []
    if p.get("sgd", True):
        from ..solvers import ground_state

        for k, N in enumerate(Ns):
            xs, es, ee = [], [], []
            for first, n in trial_chunks(p["trials"], P, D, N, device=ctx.device):
                cfg = training.TrainConfig(
                    model="sla",
                    D=D,
                    N=N,
                    P=P,
                    lam=lam,
                    trials=n,
                    first_trial=first,
                    epochs=p["epochs"],
                    lr=p["lr"],
                    optimizer=p["optimizer"],
                    convention=ctx.convention,
                    seed=ctx.seed + 7919 * (k + 1),
                    device=ctx.device,
                    test_tasks=p["test_tasks"],
                    eval_every=p["epochs"],
                )
                res = training.train(cfg, progress=ctx.progress)
                xs.append(res.relative_test_error.double().cpu().numpy())
                W_sgd = res.W.double()
                W_ex = ground_state(res.instances.to(device=W_sgd.device)).reshape(W_sgd.shape)
                es.append(theory.relative_exact_test_error(W_sgd.cpu(), N, ctx.convention))
                ee.append(theory.relative_exact_test_error(W_ex.cpu(), N, ctx.convention))
            x = np.concatenate(xs)
            sgd_mean.append(float(x.mean()))
            sgd_se.append(float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0)
            pair_sgd.append(float(torch.cat(es).mean()))
            pair_exact.append(float(torch.cat(ee).mean()))
        numbers["sgd_relative_error"] = sgd_mean
        numbers["sgd_closed_form_error"] = pair_sgd
        numbers["exact_same_data_closed_form_error"] = pair_exact
        numbers["sgd_over_exact_max"] = float(np.max(np.array(pair_sgd) / np.array(pair_exact)))
    Nf = np.unique(np.round(np.geomspace(min(Ns), max(Ns), 60)).astype(int))
    th = [theory.asymptotic_error(D, int(n), P, lam, ctx.convention) for n in Nf]
    numbers["theory_at_N"] = [theory.asymptotic_error(D, n, P, lam, ctx.convention) for n in Ns]
    fig, axes = new_figure(1, 1, width=6.2, height=4.4)
    ax = axes[0][0]
    style = {"exact": ("o", "k"), "amp": ("s", "C0"), "amp-paper": ("^", "C1")}
    for s in solvers:
        mk, col = style[s]
        ax.errorbar(
            Ns,
            mean.sel(solver=s).values,
            yerr=np.nan_to_num(se.sel(solver=s).values),
            marker=mk,
            color=col,
            mfc="none",
            capsize=3,
            ls="none",
            label=s,
        )
    if sgd_mean:
        ax.errorbar(
            Ns,
            sgd_mean,
            yerr=sgd_se,
            marker="x",
            color="C2",
            capsize=3,
            ls="none",
            label=f"SGD ({p['optimizer']})",
        )
    ax.plot(Nf, th, "-", color="0.5", label="large-D theory")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("context length N")
    ax.set_ylabel("relative test error")
    ax.set_title(
        f"Fig. 4b: D = {D}, P = {P}, lam = {lam:g}, beta = {p['beta']:g}, {p['trials']} trials",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    files += save_figure(fig, ctx.out)
    import xarray as xr

    out = xr.Dataset(
        {
            "solver_mean": mean,
            "solver_stderr": se,
            "theory": (("N_fine",), np.asarray(th)),
        },
        coords={"N_fine": Nf},
        attrs={"D": D, "P": P, "lam": lam, "convention": ctx.convention},
    )
    if sgd_mean:
        out["sgd_mean"] = (("N",), np.asarray(sgd_mean))
        out["sgd_stderr"] = (("N",), np.asarray(sgd_se))
    files += save_dataset(out, ctx.out)
    ex = np.asarray(numbers["exact_relative_error"])
    falls = bool(ex[-1] < ex[0] and np.all(np.diff(ex) < 0.05 * ex[:-1]))
    close = (not sgd_mean) or numbers["sgd_over_exact_max"] < 1.2
    summary = (
        f"Exact relative error falls from {ex[0]:.3g} (N = {Ns[0]}) to {ex[-1]:.3g} "
        f"(N = {Ns[-1]}); amp {numbers['amp_relative_error'][-1]:.3g}, amp-paper "
        f"{numbers['amp-paper_relative_error'][-1]:.3g} at N = {Ns[-1]}"
        + (
            f"; SGD {sgd_mean[-1]:.3g}, at most {numbers['sgd_over_exact_max']:.3f} x the exact "
            "error on the same training data"
            if sgd_mean
            else ""
        )
        + f"; theory {numbers['theory_at_N'][-1]:.3g}."
    )
    return Outcome(
        numbers=numbers,
        summary=summary,
        agrees=bool(falls and close),
        seeds={"sweep_seed": ctx.seed, "sgd": [ctx.seed + 7919 * (k + 1) for k in range(len(Ns))]},
        files=files,
    )

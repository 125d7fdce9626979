"""Fig. 4b: test error vs context length N for AMP (both variants), exact, SGD and theory.

The solvers run as a sweep (grid N x solver, ``trials`` repeats; store
``<out>/fig4b/sweep.sqlite``, resumable) at the figure's lam. SGD (full-batch Adam on
eq. 2) trains ``trials`` SLA per N at each lam of ``sgd_lams`` (the ``paper`` preset: 0.005,
the authors' Adam ``weight_decay = 0.01`` on the MSE, and the matched 0.01), stopping each
trial on its loss change (``train_tol`` over ``train_window`` epochs, cap ``epochs``); trained
chunks are stored in ``<out>/fig4b/trials.sqlite`` (resumable). For each trained trial we
also solve its own training set exactly at the lam it trained with, so "SGD vs exact" is a
paired comparison on the same data (closed-form test errors,
:func:`spinglass_icl.theory.relative_exact_test_error`). ``numbers["gaps"]`` holds how far
each solver curve is from each SGD curve (relative, and in standard errors). The line is
the large-D theory (:func:`spinglass_icl.theory.asymptotic_error`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

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
        sampler=p.get("sampler", "prompts"),
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
    sgd_runs: dict = {}
    if p.get("sgd", True):
        sgd_runs = sgd_curves(ctx, Ns)
        for lam_t, r in sgd_runs.items():
            tag = f"sgd_lam{lam_t:g}"
            for key in ("relative_error", "stderr", "closed_form_error",
                        "exact_same_data_closed_form_error", "over_exact_max",
                        "epochs_run_mean", "epochs_run_max", "converged_fraction",
                        "grad_norm_max"):  # fmt: skip
                numbers[f"{tag}_{key}"] = r[key]
        main = lam if lam in sgd_runs else next(iter(sgd_runs))
        r = sgd_runs[main]
        numbers["sgd_relative_error"] = r["relative_error"]
        numbers["sgd_closed_form_error"] = r["closed_form_error"]
        numbers["exact_same_data_closed_form_error"] = r["exact_same_data_closed_form_error"]
        numbers["sgd_over_exact_max"] = r["over_exact_max"]
        numbers["gaps"] = curve_gaps(numbers, mean, se, sgd_runs, solvers)
    numbers["lam_solved"] = lam
    numbers["lam_trained"] = list(sgd_runs)
    numbers["trials"] = p["trials"]
    sgd_mean = sgd_runs[main]["relative_error"] if sgd_runs else []
    sgd_se = sgd_runs[main]["stderr"] if sgd_runs else []
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
    for i, (lam_t, r) in enumerate(sgd_runs.items()):
        ax.errorbar(
            Ns,
            r["relative_error"],
            yerr=r["stderr"],
            marker="x" if i == 0 else "+",
            color=f"C{2 + i}",
            capsize=3,
            ls="none",
            label=f"SGD ({p['optimizer']}, lam = {lam_t:g})",
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
    for lam_t, r in sgd_runs.items():
        tag = f"sgd_lam{lam_t:g}"
        for key in ("relative_error_per_trial", "epochs_run", "grad_norm", "converged"):
            out[f"{tag}_{key}"] = (("N", "trial"), np.asarray(r[key]))
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
        seeds={"sweep_seed": ctx.seed, "sgd": [sgd_seed(ctx.seed, k) for k in range(len(Ns))]},
        files=files,
    )


def sgd_seed(seed: int, k: int) -> int:
    """Training seed of the k-th N (the same for every SGD lam: paired data)."""
    return seed + 7919 * (k + 1)


def _chunks(p: dict, N: int, device: str) -> list[tuple[int, int]]:
    """Chunks of trials: ``p["chunk"]`` trials each, or as many as memory allows."""
    if p.get("chunk"):
        c = int(p["chunk"])
        return [(k, min(c, p["trials"] - k)) for k in range(0, p["trials"], c)]
    return trial_chunks(p["trials"], p["P"], p["D"], N, device=device)


def sgd_curves(ctx: Context, Ns: list[int]) -> dict[float, dict]:
    """Train ``trials`` SLA per N and per training lam (``p["sgd_lams"]``, default the
    solver's lam) and score them; chunks of trials are stored in ``<out>/trials.sqlite`` as
    they finish (:mod:`spinglass_icl.trials`), so an interrupted run resumes.

    Each trained trial's own training set is also solved exactly at the lam it trained
    with, so "SGD vs exact" is paired (closed-form test errors,
    :func:`spinglass_icl.theory.relative_exact_test_error`). Training stops per trial on
    ``train_tol`` over ``train_window`` epochs (:class:`spinglass_icl.training.TrainConfig`),
    capped at ``epochs``.

    Returns
    -------
    dict
        lam -> per-N means, standard errors (over the trials), closed-form errors, and per
        trial relative errors, epochs run, converged flags and final gradient norms.
    """
    from .. import trials as trials_mod
    from ..solvers import ground_state

    p = ctx.params
    D, P = p["D"], p["P"]
    store = trials_mod.TrialStore(ctx.out / "trials.sqlite")
    out: dict[float, dict] = {}
    for lam_t in p.get("sgd_lams") or [p["lam"]]:
        lam_t = float(lam_t)
        rows: dict[str, list] = {}
        for k, N in enumerate(Ns):
            base = training.TrainConfig(
                model="sla", D=D, N=N, P=P, lam=lam_t, trials=1, epochs=p["epochs"],
                lr=p["lr"], optimizer=p["optimizer"], convention=ctx.convention,
                seed=sgd_seed(ctx.seed, k), device=ctx.device, test_tasks=p["test_tasks"],
                eval_every=p["epochs"], tol=p.get("train_tol"),
                window=p.get("train_window", 1), sampler=p.get("sampler", "prompts"),
            )  # fmt: skip

            def compute(first: int, n: int, base=base, N=N) -> dict:
                cfg = replace(base, trials=n, first_trial=first)
                res = training.train(cfg, progress=ctx.progress)
                W_sgd = res.W.double()
                if res.exact_W is not None:  # A^{-1} h from the couplings built for training
                    W_ex = res.exact_W.double()
                else:
                    inst = res.instances.to(device=W_sgd.device)
                    W_ex = ground_state(inst).reshape(W_sgd.shape)
                return {
                    "relative_error": res.relative_test_error.double().cpu().numpy(),
                    "closed_sgd": theory.relative_exact_test_error(
                        W_sgd.cpu(), N, ctx.convention).numpy(),
                    "closed_exact": theory.relative_exact_test_error(
                        W_ex.cpu(), N, ctx.convention).numpy(),
                    "epochs_run": res.epochs_run.numpy(),
                    "converged": res.converged.numpy(),
                    "grad_norm": res.grad_norm.numpy(),
                }  # fmt: skip

            spec = {"figure": "fig4b-sgd", **base.to_dict()}
            spec.pop("trials"), spec.pop("first_trial")
            got = trials_mod.run_chunks(
                store, spec, p["trials"], _chunks(p, N, ctx.device), compute
            )
            for key, v in got.items():
                rows.setdefault(key, []).append(v)
        x = np.stack(rows["relative_error"])  # (N, trials)
        T = x.shape[1]
        ratio = np.stack(rows["closed_sgd"]).mean(1) / np.stack(rows["closed_exact"]).mean(1)
        out[lam_t] = {
            "relative_error": x.mean(1).tolist(),
            "stderr": (x.std(1, ddof=1) / np.sqrt(T)).tolist() if T > 1 else [0.0] * len(Ns),
            "closed_form_error": np.stack(rows["closed_sgd"]).mean(1).tolist(),
            "exact_same_data_closed_form_error": np.stack(rows["closed_exact"]).mean(1).tolist(),
            "over_exact_max": float(ratio.max()),
            "epochs_run_mean": np.stack(rows["epochs_run"]).mean(1).tolist(),
            "epochs_run_max": int(np.stack(rows["epochs_run"]).max()),
            "converged_fraction": float(np.stack(rows["converged"]).mean()),
            "grad_norm_max": float(np.stack(rows["grad_norm"]).max()),
            "relative_error_per_trial": x,
            "epochs_run": np.stack(rows["epochs_run"]),
            "grad_norm": np.stack(rows["grad_norm"]),
            "converged": np.stack(rows["converged"]),
        }
    return out


def curve_gaps(numbers: dict, mean, se, sgd_runs: dict, solvers: list[str]) -> dict:
    """How far each solver curve (AMP, exact; solved at the figure's lam) is from each SGD
    curve: per N the gap ``solver - SGD`` relative to SGD and in standard errors
    ``sqrt(se_solver^2 + se_SGD^2)`` (different data: unpaired), with the max and mean of
    their absolute values over N. Keys ``<solver>_vs_sgd_lam<lam>``."""
    gaps: dict = {}
    for s in solvers:
        a = np.asarray(mean.sel(solver=s).values, dtype=float)
        sa = np.asarray(se.sel(solver=s).values, dtype=float)
        for lam_t, r in sgd_runs.items():
            b, sb = np.asarray(r["relative_error"]), np.asarray(r["stderr"])
            rel = (a - b) / b
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (a - b) / np.sqrt(np.nan_to_num(sa) ** 2 + sb**2)
            fin = np.isfinite(rel)
            zf = np.isfinite(z)
            gaps[f"{s}_vs_sgd_lam{lam_t:g}"] = {
                "relative_gap": [None if not np.isfinite(v) else float(v) for v in rel],
                "gap_in_stderr": [None if not np.isfinite(v) else float(v) for v in z],
                "max_abs_relative_gap": float(np.abs(rel[fin]).max()) if fin.any() else None,
                "mean_abs_relative_gap": float(np.abs(rel[fin]).mean()) if fin.any() else None,
                "max_abs_gap_in_stderr": float(np.abs(z[zf]).max()) if zf.any() else None,
                "mean_abs_gap_in_stderr": float(np.abs(z[zf]).mean()) if zf.any() else None,
            }
    return gaps

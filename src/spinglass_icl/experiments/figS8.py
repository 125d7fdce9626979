"""Fig. S8 (supplement): every model's test error against the context length N.

Fig. 6 at one N (:mod:`.fig6`) repeated over each model's own N grid (the authors'):
AMP (with the reaction term, at lam = 0.01 on the SLA trials' own training sets, scored
on their own test prompts) and SLA at N = 10, 20, ..., 200; FLA at 30, 50, ..., 190;
MHLA at 20, 40, ..., 200; SA at 40, 60, ..., 200; TF at 50, 70, ..., 190. Training as
Fig. 6 (full-batch Adam at lam = 0.005, the convergence stop, H = 32, M = 10); error bars
are standard deviations across trials, as the authors plot them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from . import fig6
from .claims import Claim, at_least, at_most
from .common import Context, new_figure, record_attrs
from .presets import Fig6Preset, TrainedModelsPreset
from .supp import budget_count

TITLE = "Every model against the context length N (supplement, Fig. S8)"
CLAIM = (
    "Fig. S8 of the published supplement: the test errors of AMP, SLA, FLA, MHLA, SA and TF "
    "against N (D = 20, P = 10 000, lam = 0.01 for AMP, H = 32, M = 10): AMP follows the "
    "trained SLA at every N, the linear models reach the SLA's error, SA and TF stay above it."
)
NOTES = [
    "Trials: the paper preset trains 10 trials per (model, N) on a GPU and 4 on a CPU (the "
    "2-hour budget of the supplementary figures: TF alone costs about 5 min per trial over "
    "its N grid on 2 cores; `--trials K` runs K; the authors' count is not stated in their "
    "script); training is Fig. 6's (lam = 0.005 = the authors' Adam weight "
    "decay 0.01, docs/conventions.md#lam-mapping; AMP solved at lam = 0.01).",
    "Error bars are standard deviations across trials (not standard errors), as in the "
    "authors' plot.",
]
WHY = "The supplement gives no numbers; the claims compare the models at every N measured."

#: the trained models and their N grid field in the preset; AMP runs on the SLA's grid
MODELS: tuple[str, ...] = ("sla", "fla", "mhla", "sa", "tf")


def _grid(p, m: str) -> tuple[int, ...]:
    return tuple(getattr(p, f"N_{'sla' if m == 'amp' else m}"))


def _fig6_params(p, N: int, models: list[str]) -> Fig6Preset:
    """The Fig. 6 parameters of one N (the models trained there; every model the same
    trial count: Fig. S8 sets its own, :func:`compute`)."""
    shared = {f.name: getattr(p, f.name) for f in dataclasses.fields(TrainedModelsPreset)}
    return Fig6Preset(**shared, N=N, models=tuple(models), cpu_model_trials={})


def compute(ctx: Context) -> xr.Dataset:
    """Relative test error per (model, N, trial); NaN where a model has no point at N or
    AMP did not converge. Chunks are stored in ``<out>/trials.sqlite`` (resumable)."""
    R, notes = budget_count(ctx, "trials", "cpu_trials")  # the CPU count (2-hour budget)
    ctx = dataclasses.replace(ctx, params=ctx.params.replace(trials=R))
    p = ctx.params
    Ns = sorted({N for m in MODELS for N in _grid(p, m)})
    names = list(MODELS) + ["amp"]
    err = np.full((len(names), len(Ns), p.trials), np.nan)
    for j, N in enumerate(Ns):
        here = [m for m in MODELS if N in _grid(p, m)]
        sub = dataclasses.replace(ctx, params=_fig6_params(p, N, here))
        per_trial, _ = fig6.train_models(sub)
        for m in here:
            err[names.index(m), j] = per_trial[m]
        if N in _grid(p, "amp"):
            ok = per_trial["amp_converged"].astype(bool)
            err[names.index("amp"), j] = np.where(ok, per_trial["amp"], np.nan)
    seeds = {
        f"train_N{N}": fig6.train_seed(dataclasses.replace(ctx, params=_fig6_params(p, N, ["sla"])))
        for N in Ns
    }
    ds = xr.Dataset(
        {"relative_test_error": (("model", "N", "trial"), err)},
        coords={"model": names, "N": Ns, "trial": np.arange(p.trials)},
        attrs={
            "D": p.D,
            "P": p.P,
            "lam": p.lam,
            "train_lam": p.train_lam,
            "trials": p.trials,
            "epochs": p.epochs,
            "budget_note": " ".join(notes),
        },  # fmt: skip
    )
    return record_attrs(ds, seeds=seeds, files=["trials.sqlite"])


def _series(ds: xr.Dataset, m: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, mean, sd over trials) at the N where model m has a point (AMP: where at least
    one repeat converged)."""
    x = ds["relative_test_error"].sel(model=m).values  # (N, trial)
    has = np.isfinite(x).any(-1)
    xs = x[has]
    n_ok = np.isfinite(xs).sum(-1)
    mean = np.nanmean(xs, -1)
    sd = np.array([np.nanstd(r, ddof=1) if k > 1 else 0.0 for r, k in zip(xs, n_ok)])
    return ds["N"].values[has], mean, sd


def draw(ds: xr.Dataset):
    fig, axes = new_figure(1, 1, width=7.5, height=4.6)
    ax = axes[0][0]
    for i, m in enumerate(ds["model"].values):
        N, mean, sd = _series(ds, str(m))
        if len(N):
            ax.errorbar(N, mean, yerr=sd, marker="o", ms=3, capsize=2, color=f"C{i}",
                        label=str(m).upper())  # fmt: skip
    ax.set_xlabel("context length N")
    ax.set_ylabel("relative test error")
    a = ds.attrs
    ax.set_title(f"Fig. S8: D = {a['D']}, P = {a['P']}, lam = {a['lam']:g} (training "
                 f"{a['train_lam']:g}), {a['trials']} trials, mean ± sd")  # fmt: skip
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return fig


def _ratio(ds: xr.Dataset, m: str, ref: str = "sla") -> np.ndarray:
    """Mean of m over mean of ref at the N both have."""
    a = ds["relative_test_error"].sel(model=m).mean("trial", skipna=True).values
    b = ds["relative_test_error"].sel(model=ref).mean("trial", skipna=True).values
    r = a / b
    return r[np.isfinite(r)]


def claims(ds: xr.Dataset) -> list[Claim]:
    out = []
    r = _ratio(ds, "amp")
    out.append(
        at_most(
            "Fig. S8 (supplement): AMP follows the trained SLA at every N.",
            "largest |AMP / SLA - 1| of the mean relative test error over N",
            float(np.abs(r - 1).max()) if len(r) else None,
            agree=0.05,
            partly=0.2,
        )
    )
    for m in ("fla", "mhla"):
        r = _ratio(ds, m)
        out.append(
            at_most(
                f"Fig. S8 (supplement): {m.upper()} reaches the SLA's test error at every N "
                "(the theory's robustness across the linear models).",
                f"largest mean relative test error of {m.upper()} / SLA's over N",
                float(r.max()) if len(r) else None,
                agree=fig6.COMPARABLE[0],
                partly=fig6.COMPARABLE[1],
            )
        )
    for m in fig6.SOFTMAX:
        r = _ratio(ds, m)
        out.append(
            at_least(
                f"Fig. S8 (supplement): {m.upper()}'s test error is higher than the SLA's at "
                "every N.",
                f"smallest mean relative test error of {m.upper()} / SLA's over N",
                float(r.min()) if len(r) else None,
                agree=fig6.HIGHER[0],
                partly=fig6.HIGHER[1],
            )
        )
    return out


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    numbers: dict = {}
    parts = []
    for m in ds["model"].values:
        m = str(m)
        N, mean, sd = _series(ds, m)
        numbers[f"N_{m}"] = [int(x) for x in N]
        numbers[m] = [float(x) for x in mean]
        numbers[f"{m}_sd"] = [float(x) for x in sd]
        if len(N):
            parts.append(f"{m.upper()} {mean[0]:.3g} (N = {N[0]}) to {mean[-1]:.3g} (N = {N[-1]})")
    amp = ds["relative_test_error"].sel(model="amp").values
    on = np.isin(ds["N"].values, numbers["N_sla"])
    numbers["amp_converged_fraction"] = [float(x) for x in np.isfinite(amp[on]).mean(-1)]
    numbers["trials"] = ds.attrs["trials"]
    summary = "Mean relative test error: " + "; ".join(parts) + "."
    return numbers, summary

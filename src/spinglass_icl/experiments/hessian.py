"""Hessian spectrum of H (the author's slides): ``A = G + lam I``.

``G = (1/P) S^T S`` has rank at most ``min(P, D (D+1))`` (the D+1 spins of W's last
column have no features), so at least ``n - min(P, D(D+1))`` eigenvalues of A equal
lam exactly: at P = 10 the landscape is a valley that is flat (curvature lam) in about
n - 10 directions, not a set of separate minima (docs/solvers.md#errata, Fig. 3).
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from ..hamiltonian import make_instance
from .claims import Claim, at_least, at_most
from .common import Context, figure_seed, new_figure, record_attrs
from .presets import HessianPreset

TITLE = "Hessian spectrum of the spin-glass Hamiltonian"
CLAIM = (
    "(Slides) The Hessian (1/P) sum_mu s s^T + lam I of H describes the landscape: at small "
    "P most of its eigenvalues sit at lam (flat directions), at large P the spectrum lifts."
)
NOTES = [
    "H is a convex quadratic for lam > 0: a single minimum at every P (docs/solvers.md#errata). "
    "The "
    "eigenvalues at lam are exact flat directions (up to the ridge), not separate minima.",
]


def spectra(
    D: int, N: int, P: int, lam: float, instances: int, convention: str, seed: int, device="cpu"
) -> np.ndarray:
    """Eigenvalues of the Hessian A for ``instances`` instances, shape (instances, n)."""
    inst = make_instance(
        D, N, P, lam, convention=convention, seed=seed, batch_shape=(instances,), device=device
    )
    return torch.linalg.eigvalsh(inst.hessian).cpu().numpy()


def count_near_lam(ev: np.ndarray, lam: float, rtol: float = 1e-6) -> np.ndarray:
    """Number of eigenvalues within ``rtol * max(lam, max eig)`` of lam, per instance."""
    tol = rtol * np.maximum(lam, ev.max(-1, keepdims=True))
    return (np.abs(ev - lam) <= tol).sum(-1)


def plot_spectra(ax, evs: dict[int, np.ndarray], lam: float) -> None:
    """Histogram of log10 eigenvalues per P on one axis."""
    lo = np.log10(min(e.min() for e in evs.values()) * 0.5)
    hi = np.log10(max(e.max() for e in evs.values()) * 2)
    edges = np.linspace(lo, hi, 60)
    for k, (P, ev) in enumerate(sorted(evs.items())):
        ax.hist(
            np.log10(ev.ravel()),
            edges,
            weights=np.full(ev.size, 1.0 / ev.shape[0]),
            histtype="step",
            lw=1.5,
            color=f"C{k}",
            label=f"P = {P}",
        )
    ax.axvline(np.log10(lam), color="0.4", ls=":", label="lam")
    ax.set_yscale("log")
    ax.set_xlabel("log10 (eigenvalue of A = G + lam I)")
    ax.set_ylabel("eigenvalues per instance")
    ax.legend()


def hessian_data(
    p: HessianPreset, convention: str, seeds: dict[int, int], device="cpu"
) -> xr.Dataset:
    """Eigenvalues of A for ``p.instances`` instances at each P (seed ``seeds[P]``)."""
    evs = [spectra(p.D, p.N, P, p.lam, p.instances, convention, seeds[P], device) for P in p.P_list]
    n = (p.D + 1) ** 2
    near = np.stack([count_near_lam(ev, p.lam) for ev in evs])
    return xr.Dataset(
        {
            "eig": (("P", "instance", "k"), np.stack(evs)),
            "near_lam": (("P", "instance"), near, {"long_name": "eigenvalues at lam"}),
            "near_lam_expected": (("P",), [n - min(P, p.D * (p.D + 1)) for P in p.P_list]),
        },
        coords={"P": list(p.P_list)},
        attrs={"D": p.D, "N": p.N, "lam": p.lam, "convention": convention, "n_spins": n},
    )


def compute(ctx: Context) -> xr.Dataset:
    """:func:`hessian_data` at the preset's parameters, one instance seed per P."""
    p = ctx.params
    seeds = {P: figure_seed(ctx, "instances", D=p.D, N=p.N, P=P) for P in p.P_list}
    ds = hessian_data(p, ctx.convention, seeds, ctx.device)
    return record_attrs(ds, seeds={f"P{P}": s for P, s in seeds.items()})


def draw(ds: xr.Dataset):
    """The spectra of every P on one log-log histogram."""
    fig, axes = new_figure(1, 1, width=7, height=4.5)
    evs = {int(P): ds["eig"].sel(P=P).values for P in ds["P"].values}
    plot_spectra(axes[0][0], evs, float(ds.attrs["lam"]))
    a = ds.attrs
    axes[0][0].set_title(f"Hessian spectrum, D = {a['D']}, N = {a['N']}, lam = {a['lam']:g}")
    return fig


def claims(ds: xr.Dataset) -> list[Claim]:
    """Most eigenvalues at lam at the smallest P; the spectrum lifts at the largest P."""
    n = int(ds.attrs["n_spins"])
    lo, hi = ds.sel(P=ds["P"].min()), ds.sel(P=ds["P"].max())
    return [
        at_least(
            "(Slides, 'The Properties of Equilibrium State': the Hessian (1/P) sum_mu s s^T "
            "beside the energy landscape; our reading, the slide states no number) At small P "
            f"(P = {int(lo['P'])}) most Hessian eigenvalues sit at lam: flat directions.",
            "fraction of the eigenvalues within 1e-6 of lam, mean over instances",
            float(lo["near_lam"].mean()) / n,
            agree=0.5,
            partly=0.2,
        ),
        at_most(
            "(Slides, 'The Properties of Equilibrium State'; our reading) At large P "
            f"(P = {int(hi['P'])}) the spectrum lifts off lam.",
            "fraction of the eigenvalues at lam beyond W's inert last column, (count - (D+1)) / n",
            (float(hi["near_lam"].mean()) - (ds.attrs["D"] + 1)) / n,
            agree=0.01,
            partly=0.2,
        ),
    ]


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    n = int(ds.attrs["n_spins"])
    numbers: dict = {"n_spins": n}
    for P in ds["P"].values:
        d = ds.sel(P=P)
        numbers[f"P{P}_near_lam_mean"] = float(d["near_lam"].mean())
        numbers[f"P{P}_near_lam_expected"] = int(d["near_lam_expected"])
        numbers[f"P{P}_max_eig"] = float(d["eig"].max())
    summary = "; ".join(
        f"P = {P}: {numbers[f'P{P}_near_lam_mean']:.1f} of {n} eigenvalues at lam "
        f"(n - min(P, D(D+1)) = {numbers[f'P{P}_near_lam_expected']})"
        for P in ds["P"].values
    )
    return numbers, summary + "."

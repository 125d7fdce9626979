"""Hessian spectrum of H (the author's slides): ``A = G + lam I``.

``G = (1/P) S^T S`` has rank at most ``min(P, D (D+1))`` (the D+1 spins of W's last
column have no features), so at least ``n - min(P, D(D+1))`` eigenvalues of A equal
lam exactly: at P = 10 the landscape is a valley that is flat (curvature lam) in about
n - 10 directions, not a set of separate minima (docs/solvers.md#errata, Fig. 3).
"""

from __future__ import annotations

import numpy as np
import torch

from ..hamiltonian import make_instance
from .common import Context, Outcome, new_figure, save_dataset, save_figure

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
    ax.set_xlabel("log10 eigenvalue of A = G + lam I")
    ax.set_ylabel("count per instance")
    ax.legend(fontsize=8)


def run(ctx: Context) -> Outcome:
    p = ctx.params
    D, N, lam = p["D"], p["N"], p["lam"]
    n = (D + 1) ** 2
    evs, numbers = {}, {"n_spins": n}
    for k, P in enumerate(p["P_list"]):
        ev = spectra(D, N, P, lam, p["instances"], ctx.convention, ctx.seed + k, ctx.device)
        evs[P] = ev
        near = count_near_lam(ev, lam)
        numbers[f"P{P}_near_lam_mean"] = float(near.mean())
        numbers[f"P{P}_near_lam_expected"] = n - min(P, D * (D + 1))
        numbers[f"P{P}_max_eig"] = float(ev.max())
    fig, axes = new_figure(1, 1, width=6, height=4)
    plot_spectra(axes[0][0], evs, lam)
    axes[0][0].set_title(f"Hessian spectrum, D={D}, N={N}, lam={lam:g}")
    files = save_figure(fig, ctx.out)
    import xarray as xr

    ds = xr.Dataset(
        {f"eig_P{P}": (("instance", "k"), ev) for P, ev in evs.items()},
        attrs={"D": D, "N": N, "lam": lam, "convention": ctx.convention},
    )
    files += save_dataset(ds, ctx.out)
    ok = all(
        abs(numbers[f"P{P}_near_lam_mean"] - numbers[f"P{P}_near_lam_expected"]) <= 0.5
        for P in p["P_list"]
    )
    summary = "; ".join(
        f"P = {P}: {numbers[f'P{P}_near_lam_mean']:.1f} of {n} eigenvalues at lam "
        f"(n - min(P, D(D+1)) = {numbers[f'P{P}_near_lam_expected']})"
        for P in p["P_list"]
    )
    return Outcome(
        numbers=numbers,
        summary=summary + ".",
        agrees=ok,
        seeds={f"P{P}": ctx.seed + k for k, P in enumerate(p["P_list"])},
        files=files,
    )

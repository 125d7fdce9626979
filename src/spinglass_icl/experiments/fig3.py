"""Fig. 3: the energy landscape by t-SNE, beside the Hessian spectrum (docs/solvers.md#errata).

Random weights ``sigma = sigma* + r |sigma*| xi / |xi|`` (``xi ~ N(0, I)``, r uniform in
[0, 2]) around the target ``sigma*`` (the ground state ``A^{-1} h``), their energies
H(sigma) (eq. 5/12), and a 2-D t-SNE (scikit-learn) of the ``(D+1)^2``-dimensional
points with the target marked. The rank correlation between the energy and the
distance to the target measures how "bowl-like" the landscape is.
"""

from __future__ import annotations

import numpy as np
import torch

from ..hamiltonian import make_instance
from ..solvers import ground_state
from ..tasks import make_generator
from .common import Context, Outcome, new_figure, save_dataset, save_figure
from .hessian import count_near_lam, plot_spectra

TITLE = "Energy landscape (t-SNE) and Hessian spectrum"
CLAIM = (
    "For large P (1000) the landscape has one global minimum that learning reaches easily; "
    "for small P (10) 'multiple local minima' emerge and learning gets trapped "
    "(D = 10, N = 50, lam = 0.01, 2000 random W)."
)
NOTES = [
    "Convexity (docs/solvers.md#errata): H is a convex quadratic for lam > 0, so it has exactly "
    "one minimum at every P. "
    "What looks like many minima at small P in a t-SNE picture is a nearly flat valley of "
    "dimension about n - P: the Hessian panel shows about n - P eigenvalues at lam.",
    "The paper does not say how its random W were drawn; we sample around the target "
    "(sigma* + r |sigma*| xi/|xi|, r ~ U[0, 2]) so that low and high energies both appear.",
]


def run(ctx: Context) -> Outcome:
    from scipy.stats import spearmanr
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    p = ctx.params
    D, N, lam, K = p["D"], p["N"], p["lam"], p["points"]
    n = (D + 1) ** 2
    fig, axes = new_figure(3, 1, width=4.3, height=3.8)
    numbers: dict = {"n_spins": n}
    evs = {}
    data = {}
    for k, P in enumerate(p["P_list"]):
        inst = make_instance(D, N, P, lam, convention=ctx.convention, seed=ctx.seed + k)
        star = ground_state(inst)  # (n,)
        g = make_generator(ctx.seed + 100 + k)
        xi = torch.randn(K, n, generator=g, dtype=torch.float64)
        r = 2.0 * torch.rand(K, 1, generator=g, dtype=torch.float64)
        sig = star + r * star.norm() * xi / xi.norm(dim=1, keepdim=True)
        pts = torch.cat([sig, star[None]])  # target is the last point
        E = inst.energy(pts).cpu().numpy()
        dist = (pts - star).norm(dim=1).cpu().numpy()
        rho = float(spearmanr(E[:-1], dist[:-1]).correlation)
        with threadpool_limits(1):  # OpenMP threads thrash on a busy small machine
            emb = TSNE(
                n_components=2,
                perplexity=min(p["perplexity"], (K - 1) / 3),
                init="pca",
                max_iter=p["tsne_iter"],
                random_state=ctx.seed + k,
            ).fit_transform(pts.cpu().numpy())
        ax = axes[0][k]
        dE = E - E[-1]
        sc = ax.scatter(
            emb[:-1, 0], emb[:-1, 1], c=np.log10(dE[:-1] + 1e-12), s=6, cmap="viridis_r"
        )
        ax.scatter(
            emb[-1, 0],
            emb[-1, 1],
            marker="*",
            s=250,
            c="red",
            edgecolors="k",
            label="target (ground state)",
        )
        fig.colorbar(sc, ax=ax, label="log10 (H - H*)")
        ax.set_title(f"P = {P}\nrank corr(H, |sigma - sigma*|) = {rho:.2f}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, loc="lower right")
        ev = torch.linalg.eigvalsh(inst.hessian).cpu().numpy()
        evs[P] = ev[None]
        numbers[f"P{P}_spearman_energy_distance"] = rho
        numbers[f"P{P}_near_lam"] = int(count_near_lam(ev[None], lam)[0])
        numbers[f"P{P}_min_energy_random"] = float(E[:-1].min())
        numbers[f"P{P}_energy_target"] = float(E[-1])
        data[f"tsne_P{P}"] = (("point", "xy"), emb)
        data[f"energy_P{P}"] = (("point",), E)
        data[f"distance_P{P}"] = (("point",), dist)
    plot_spectra(axes[0][2], evs, lam)
    axes[0][2].set_title("Hessian spectrum")
    fig.suptitle(f"Fig. 3: landscape, D={D}, N={N}, lam={lam:g}, {K} random W")
    files = save_figure(fig, ctx.out)
    import xarray as xr

    files += save_dataset(xr.Dataset(data, attrs={"D": D, "N": N, "lam": lam}), ctx.out)
    Ps = sorted(p["P_list"])
    lo, hi = Ps[0], Ps[-1]
    bowl = numbers[f"P{hi}_spearman_energy_distance"] > numbers[f"P{lo}_spearman_energy_distance"]
    summary = (
        f"Energy-distance rank correlation {numbers[f'P{hi}_spearman_energy_distance']:.2f} at "
        f"P = {hi} vs {numbers[f'P{lo}_spearman_energy_distance']:.2f} at P = {lo}; the "
        f"Hessian has {numbers[f'P{lo}_near_lam']} of {n} eigenvalues at lam at P = {lo} "
        f"({numbers[f'P{hi}_near_lam']} at P = {hi}): one minimum in a flat valley, not many "
        "minima. Every random W has higher energy than the target."
    )
    ok = bowl and all(
        numbers[f"P{P}_min_energy_random"] >= numbers[f"P{P}_energy_target"] for P in Ps
    )
    return Outcome(
        numbers=numbers,
        summary=summary,
        agrees=None if not ok else True,
        seeds={
            "instances": [ctx.seed + k for k in range(len(Ps))],
            "points": [ctx.seed + 100 + k for k in range(len(Ps))],
        },
        files=files,
    )

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
import xarray as xr

from ..hamiltonian import make_instance
from ..solvers import ground_state
from ..tasks import make_generator
from .claims import Claim, at_least, holds
from .common import Context, figure_seed, new_figure, record_attrs
from .hessian import count_near_lam, plot_spectra
from .presets import Fig3Preset

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
WHY = (
    "H is a convex quadratic for lam > 0: one minimum at every P. At P = 10 its Hessian has "
    "n - 10 eigenvalues at lam, a flat valley that t-SNE shows as many basins (the "
    "spectrum is beside the picture)."
)


def landscape(
    inst, K: int, point_seed: int, perplexity: float, tsne_iter: int, tsne_seed: int
) -> dict[str, np.ndarray]:
    """``K`` random weights around the ground state, their energies, distances to it and
    a 2-D t-SNE embedding (the ground state is the last point)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    star = ground_state(inst)  # (n,)
    n = star.shape[-1]
    g = make_generator(point_seed)
    xi = torch.randn(K, n, generator=g, dtype=torch.float64)
    r = 2.0 * torch.rand(K, 1, generator=g, dtype=torch.float64)
    sig = star + r * star.norm() * xi / xi.norm(dim=1, keepdim=True)
    pts = torch.cat([sig, star[None]])
    with threadpool_limits(1):  # OpenMP threads thrash on a busy small machine
        emb = TSNE(
            n_components=2,
            perplexity=min(perplexity, (K - 1) / 3),
            init="pca",
            max_iter=tsne_iter,
            random_state=tsne_seed % 2**32,
        ).fit_transform(pts.cpu().numpy())
    return {
        "energy": inst.energy(pts).cpu().numpy(),
        "distance": (pts - star).norm(dim=1).cpu().numpy(),
        "tsne": emb,
    }


def landscapes(p: Fig3Preset, convention: str, seeds: dict[str, dict[int, int]]) -> xr.Dataset:
    """Per P: the landscape sample (:func:`landscape`), the Hessian spectrum and the
    rank correlation between energy and distance to the ground state."""
    from scipy.stats import spearmanr

    parts: dict[str, list] = {"energy": [], "distance": [], "tsne": [], "eig": [], "rho": []}
    for P in p.P_list:
        inst = make_instance(p.D, p.N, P, p.lam, convention=convention, seed=seeds["instance"][P])
        ls = landscape(inst, p.points, seeds["points"][P], p.perplexity, p.tsne_iter,
                       seeds["tsne"][P])  # fmt: skip
        for k in ("energy", "distance", "tsne"):
            parts[k].append(ls[k])
        parts["eig"].append(torch.linalg.eigvalsh(inst.hessian).cpu().numpy())
        parts["rho"].append(spearmanr(ls["energy"][:-1], ls["distance"][:-1]).correlation)
    return xr.Dataset(
        {
            "energy": (("P", "point"), np.stack(parts["energy"])),
            "distance": (("P", "point"), np.stack(parts["distance"])),
            "tsne": (("P", "point", "xy"), np.stack(parts["tsne"])),
            "eig": (("P", "k"), np.stack(parts["eig"])),
            "spearman": (("P",), np.asarray(parts["rho"], float)),
        },
        coords={"P": list(p.P_list)},
        attrs={
            "D": p.D,
            "N": p.N,
            "lam": p.lam,
            "points": p.points,
            "convention": convention,
            "target": "last point",
        },  # fmt: skip
    )


def compute(ctx: Context) -> xr.Dataset:
    """:func:`landscapes` at the preset's parameters, with seeds derived from the context."""
    p = ctx.params
    seeds = {
        purpose: {P: figure_seed(ctx, purpose, D=p.D, N=p.N, P=P) for P in p.P_list}
        for purpose in ("instance", "points", "tsne")
    }
    ds = landscapes(p, ctx.convention, seeds)
    return record_attrs(ds, seeds={k: {f"P{P}": s for P, s in v.items()} for k, v in seeds.items()})


def draw(ds: xr.Dataset):
    """One t-SNE panel per P (colour: log10 (H - H*), star: the ground state) and the
    Hessian spectra."""
    Ps = ds["P"].values
    fig, axes = new_figure(len(Ps) + 1, 1, width=3.9, height=3.7)
    logs = {P: np.log10(ds["energy"].sel(P=P).values[:-1] - ds["energy"].sel(P=P).values[-1]
                        + 1e-12) for P in Ps}  # fmt: skip
    lo = min(float(np.nanmin(v)) for v in logs.values())
    hi = max(float(np.nanmax(v)) for v in logs.values())
    for ax, P in zip(axes[0], Ps):
        d = ds.sel(P=P)
        emb = d["tsne"].values
        sc = ax.scatter(emb[:-1, 0], emb[:-1, 1], c=logs[P], s=6, cmap="viridis_r", vmin=lo,
                        vmax=hi)  # fmt: skip
        ax.scatter(emb[-1, 0], emb[-1, 1], marker="*", s=250, c="red", edgecolors="k")
        ax.set_title(f"P = {P}: rank corr(H, distance) = {float(d['spearman']):.2f}\n"
                     "red star: the target (ground state)")  # fmt: skip
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_xticks([])
        ax.set_yticks([])
    # one colour scale for every P, so equal colours are equal energies
    fig.colorbar(sc, ax=list(axes[0][:-1]), label="log10 (H - H*), common scale")
    plot_spectra(axes[0][-1], {int(P): ds["eig"].sel(P=P).values[None] for P in Ps},
                 float(ds.attrs["lam"]))  # fmt: skip
    axes[0][-1].set_title("Hessian spectrum")
    a = ds.attrs
    fig.suptitle(f"Fig. 3: landscape, D = {a['D']}, N = {a['N']}, lam = {a['lam']:g}, "
                 f"{a['points']} random W")  # fmt: skip
    return fig


def claims(ds: xr.Dataset) -> list[Claim]:
    """One minimum at large P; 'multiple local minima' at small P (tested on the
    Hessian: a quadratic with a positive-definite Hessian has exactly one minimum)."""
    lo, hi = ds.sel(P=ds["P"].min()), ds.sel(P=ds["P"].max())
    lam = float(ds.attrs["lam"])
    min_lo = float(lo["eig"].min())
    return [
        holds(
            f'"When the task diversity P is large enough, there is only one global minimum in '
            f'the energy landscape" (main text, Fig. 3(a); P = {int(hi["P"])}).',
            "smallest eigenvalue of the Hessian A = G + lam I",
            float(hi["eig"].min()),
            float(hi["eig"].min()) > 0,
            "agrees if > 0 (a quadratic with a positive-definite Hessian has one minimum)",
        ),
        at_least(
            '"... and the learning can easily reach the lowest energy" (main text, Fig. 3(a); '
            f"P = {int(hi['P'])}): the energy falls towards the target.",
            "rank correlation between H and the distance to the ground state",
            float(hi["spearman"]),
            agree=0.9,
            partly=0.5,
        ),
        holds(
            '"When P is small, there emerge multiple local minima in the energy landscape" '
            f"(main text, Fig. 3(b); P = {int(lo['P'])}).",
            "smallest eigenvalue of the Hessian A = G + lam I",
            min_lo,
            min_lo <= 0,
            "agrees if <= 0: H is a quadratic, with exactly one minimum when its Hessian is "
            f"positive definite (its eigenvalues are >= lam = {lam:g})",
        ),
    ]


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    n = (int(ds.attrs["D"]) + 1) ** 2
    lam = float(ds.attrs["lam"])
    numbers: dict = {"n_spins": n}
    for P in ds["P"].values:
        d = ds.sel(P=P)
        E = d["energy"].values
        numbers[f"P{P}_spearman_energy_distance"] = float(d["spearman"])
        numbers[f"P{P}_near_lam"] = int(count_near_lam(d["eig"].values[None], lam)[0])
        numbers[f"P{P}_min_eig"] = float(d["eig"].min())
        numbers[f"P{P}_min_energy_random"] = float(E[:-1].min())
        numbers[f"P{P}_energy_target"] = float(E[-1])
    lo, hi = int(ds["P"].min()), int(ds["P"].max())
    above = all(numbers[f"P{P}_min_energy_random"] >= numbers[f"P{P}_energy_target"]
                for P in (lo, hi))  # fmt: skip
    summary = (
        f"Energy-distance rank correlation {numbers[f'P{hi}_spearman_energy_distance']:.2f} at "
        f"P = {hi} vs {numbers[f'P{lo}_spearman_energy_distance']:.2f} at P = {lo}; the "
        f"Hessian has {numbers[f'P{lo}_near_lam']} of {n} eigenvalues at lam at P = {lo} "
        f"({numbers[f'P{hi}_near_lam']} at P = {hi}), none below lam: one minimum in a flat "
        "valley, not many minima. "
        + ("Every random W has higher energy than the target." if above else "")
    )
    return numbers, summary.strip()

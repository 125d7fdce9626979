"""Supplementary Fig. S6: eq. 39 as a learning problem.

Fit ``W11`` (D x D) and ``W21`` (1 x D), initialized N(0, 1), so that
``(w W21 / sqrt D + W11) C = 1_D`` for P task vectors ``w ~ N(0, I_D)``, with
``C = X X^T / N`` of one D x N Gaussian token matrix (the appendix's eq. 38c-39 with the
token Gram kept); MSE over the P x D x D outputs, full-batch Adam. Tracked per epoch:
the loss, the authors' distance to ``W11 = 1, W21 = 0`` (``MSE(W11, 1) + MSE(W21, 0)``),
and the distance to the unique solution of the fitted equations, ``W11 = C^-1``,
``W21 = 0`` (for P > 1 and w's spanning more than one direction). At P = 1 the equations
have a family of solutions, so the fit ends wherever its start leads.

The repeats train together as one batch: every repeat's parameters get exactly its own
gradient (the summed loss), and Adam acts element by element, so the batch is the same
as training them one by one. The loss is evaluated in closed form (:func:`eq39_mse`, the
same function of W as the literal product, tested), at a cost independent of P.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import xarray as xr

from ..tasks import make_generator
from .claims import Claim, at_least, at_most
from .common import Context, new_figure, plain_log_axis, record_attrs
from .supp import repeated

TITLE = "Eq. 39 as a learning problem: is W11 = 1, W21 = 0 reached? (supplement Fig. S6)"
CLAIM = (
    "For P > 1 the linear equations (39) have a unique solution, W11 = 1_D and W21 = 0; "
    "a gradient-based fit reaches it."
)
NOTES = [
    "With the token Gram C = X X^T / N kept, as in the authors' script, the unique "
    "solution of (w W21 / sqrt D + W11) C = 1 is W11 = C^-1, W21 = 0: equal to the paper's "
    "W11 = 1 only as N / D -> infinity (C -> 1, supplement Fig. S5). The distance to "
    "W11 = 1 therefore stops at MSE(C^-1, 1), which we predict per repeat and show.",
    "P = 1 (not in the authors' script) is shown for contrast: a family of solutions.",
]

WHY = (
    "With the token Gram C = X X^T / N kept, the unique solution of eq. 39 is W11 = C^-1, "
    "which the fit reaches; it equals 1 only as N / D grows."
)

QUOTE = (
    "'as long as P > 1, the set of equations has a unique solution, which can be readily "
    "deduced as W11* = 1_D and W21* = 0' (Appendix, Derivation of the unique optimal "
    "solution, after eq. 39)"
)


def record_epochs(epochs: int, points: int = 80) -> np.ndarray:
    """Log-spaced epochs 1 .. ``epochs`` (unique integers) at which the curves are kept."""
    return np.unique(np.round(np.geomspace(1, epochs, points)).astype(int))


def forward(w: torch.Tensor, W11: torch.Tensor, W21: torch.Tensor, C: torch.Tensor):
    """``(w W21 / sqrt D + W11) C`` for every task, shape (R, P, D, D), computed as
    ``w (W21 C) / sqrt D + W11 C``: the same numbers with two products per repeat instead
    of one per task (P times fewer multiply-adds)."""
    D = W11.shape[-1]
    return w * (W21 @ C)[:, None] / math.sqrt(D) + (W11 @ C)[:, None]


def eq39_mse(w2, wsum, P: int, W11, W21, C, eye) -> torch.Tensor:
    """The MSE of :func:`forward` against the identity, per repeat, in closed form:
    with ``a = W21 C / sqrt D`` and ``B = W11 C - 1``,
    ``sum_p ||w_p a^T + B||^2 = (sum_p |w_p|^2) |a|^2 + 2 (sum_p w_p)^T B a + P ||B||^2``,
    divided by ``P D^2``: O(D^3) per repeat and epoch whatever P (``w2 = sum_p |w_p|^2``,
    ``wsum = sum_p w_p``, shape (R, D, 1))."""
    D = W11.shape[-1]
    a = (W21 @ C).squeeze(-2) / math.sqrt(D)  # (R, D)
    B = W11 @ C - eye
    cross = (wsum.squeeze(-1) * (B @ a.unsqueeze(-1)).squeeze(-1)).sum(-1)
    total = w2 * (a * a).sum(-1) + 2 * cross + P * (B * B).sum((-2, -1))
    return total / (P * D * D)


def fit_eq39(
    D: int, N: int, P: int, repeats: int, epochs: int, lr: float, seed: int, device="cpu"
) -> dict[str, np.ndarray]:
    """Fit eq. 39 for ``repeats`` independent draws (C, w, initial W) at once.

    Returns per-repeat arrays: ``loss``, ``dist_identity`` and ``dist_solution`` at
    :func:`record_epochs` (after the update of that epoch), and ``floor`` =
    ``MSE(C^-1, 1)``, the distance to W11 = 1 of the unique solution.
    """
    g = make_generator(seed)
    f64 = torch.float64
    X = torch.randn(repeats, D, N, generator=g, dtype=f64)
    C = X @ X.transpose(-1, -2) / N
    w = torch.randn(repeats, P, D, 1, generator=g, dtype=f64)
    W11 = torch.randn(repeats, D, D, generator=g, dtype=f64)
    W21 = torch.randn(repeats, 1, D, generator=g, dtype=f64)
    C, w, W11, W21 = (t.to(device) for t in (C, w, W11, W21))
    W11.requires_grad_(True)
    W21.requires_grad_(True)
    eye = torch.eye(D, dtype=f64, device=device)
    Cinv = torch.linalg.inv(C)
    w2, wsum = (w * w).sum((-3, -2, -1)), w.sum(-3)  # sum_p |w_p|^2, sum_p w_p
    opt = torch.optim.Adam([W11, W21], lr=lr)
    keep = set(record_epochs(epochs).tolist())
    rec: dict[str, list] = {"loss": [], "dist_identity": [], "dist_solution": []}
    for epoch in range(1, epochs + 1):
        per = eq39_mse(w2, wsum, P, W11, W21, C, eye)  # the authors' MSE, per repeat
        opt.zero_grad()
        per.sum().backward()
        opt.step()
        if epoch in keep:
            with torch.no_grad():
                a, b = W11.detach(), W21.detach()
                r2 = (b**2).mean((-2, -1))
                rec["loss"].append(per.detach())
                rec["dist_identity"].append(((a - eye) ** 2).mean((-2, -1)) + r2)
                rec["dist_solution"].append(((a - Cinv) ** 2).mean((-2, -1)) + r2)
    out = {k: torch.stack(v, -1).cpu().numpy() for k, v in rec.items()}
    out["floor"] = ((Cinv - eye) ** 2).mean((-2, -1)).cpu().numpy()
    return out


def compute(ctx: Context) -> xr.Dataset:
    p = ctx.params
    ep = record_epochs(p.epochs)
    per: dict[str, list] = {}
    for P in p.P_list:

        def f(seed, first, n, P=P):
            return fit_eq39(p.D, p.N, P, n, p.epochs, p.lr, seed, ctx.device)

        got = repeated(ctx, "fit", p.repeats, p.chunk,
                       {"D": p.D, "N": p.N, "P": P, "epochs": p.epochs, "lr": p.lr}, f)  # fmt: skip
        for k, v in got.items():
            per.setdefault(k, []).append(v)
    curves = ("P", "repeat", "epoch")
    ds = xr.Dataset(
        {
            "loss": (curves, np.stack(per["loss"])),
            "dist_identity": (curves, np.stack(per["dist_identity"])),
            "dist_solution": (curves, np.stack(per["dist_solution"])),
            "floor": (
                ("P", "repeat"),
                np.stack(per["floor"]),
                {"long_name": "MSE(C^-1, 1): distance of the unique solution to W11 = 1"},
            ),
        },  # fmt: skip
        coords={"P": list(p.P_list), "repeat": np.arange(p.repeats), "epoch": ep},
        attrs={"D": p.D, "N": p.N, "lr": p.lr, "epochs": p.epochs, "repeats": p.repeats},
    )
    return record_attrs(ds, files=["trials.sqlite"])


def draw(ds: xr.Dataset):
    """Loss and the two distances against epochs (median and 10-90% band over repeats)."""
    fig, axes = new_figure(3, 1, width=4.4, height=3.6)
    ep = ds["epoch"].values
    titles = {
        "loss": "(a) loss",
        "dist_identity": "(b) MSE(W11, 1) + MSE(W21, 0)",
        "dist_solution": "(c) distance to W11 = C^-1, W21 = 0",
    }
    for ax, (var, title) in zip(axes[0], titles.items(), strict=True):
        for k, P in enumerate(ds["P"].values):
            x = ds[var].sel(P=P).values
            lo, med, hi = np.quantile(x, [0.1, 0.5, 0.9], axis=0)
            ax.plot(ep, med, color=f"C{k}", label=f"P = {P}")
            ax.fill_between(ep, lo, hi, color=f"C{k}", alpha=0.2, lw=0)
            if var == "dist_identity":
                ax.axhline(float(np.median(ds["floor"].sel(P=P))), color=f"C{k}", ls=":",
                           lw=1, label=f"MSE(C^-1, 1), P = {P}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        plain_log_axis(ax, "x")
    axes[0][0].legend()
    axes[0][1].legend(fontsize=8)
    a = ds.attrs
    fig.suptitle(f"Eq. 39 fitted by Adam (lr {a['lr']:g}): D = {a['D']}, N = {a['N']}, "
                 f"{a['repeats']} repeats; median and 10-90% band")  # fmt: skip
    return fig


def _final(ds: xr.Dataset, var: str, P: int) -> np.ndarray:
    return ds[var].sel(P=P).isel(epoch=-1).values


def claims(ds: xr.Dataset) -> list[Claim]:
    Ps = [int(P) for P in ds["P"].values]
    big = [P for P in Ps if P > 1]
    out = []
    if big:
        P = max(big)
        sol = ds["dist_solution"].sel(P=P).values
        first, last = float(np.median(sol[:, 0])), float(np.median(sol[:, -1]))
        out.append(
            at_most(
                QUOTE + f": at P = {P} the fit converges to the unique solution of the equations.",
                f"median distance to the unique solution W11 = C^-1, W21 = 0 after the last "
                f"epoch over that after the first (P = {P}; {last:.2g} / {first:.2g})",
                last / first,
                agree=1e-2,
                partly=1e-1,
            )
        )
        dI = _final(ds, "dist_identity", P)
        floor = float(np.median(ds["floor"].sel(P=P)))
        out.append(
            at_most(
                QUOTE + f": the solution reached at P = {P} is W11 = 1, W21 = 0.",
                f"median final MSE(W11, 1) + MSE(W21, 0) at P = {P} (the unique solution's "
                f"own value MSE(C^-1, 1): median {floor:.3g})",
                float(np.median(dI)),
                agree=1e-3,
                partly=1e-2,
            )
        )
    if 1 in Ps:
        sol1 = _final(ds, "dist_solution", 1)
        out.append(
            at_least(
                "'when the number of input matrices P = 1, the weight matrix W has infinitely "
                "many solutions' (Appendix, after eq. 39): the fit ends away from C^-1.",
                "median final distance to W11 = C^-1, W21 = 0 at P = 1",
                float(np.median(sol1)),
                agree=1e-2,
                partly=1e-4,
            )
        )
    return out


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    numbers: dict = {"P": [int(P) for P in ds["P"].values], "epoch": ds["epoch"].values.tolist()}
    parts = []
    for P in numbers["P"]:
        for var in ("loss", "dist_identity", "dist_solution"):
            numbers[f"{var}_median_P{P}"] = np.median(ds[var].sel(P=P).values, 0).tolist()
            numbers[f"{var}_final_median_P{P}"] = float(np.median(_final(ds, var, P)))
        numbers[f"floor_median_P{P}"] = float(np.median(ds["floor"].sel(P=P)))
        parts.append(
            f"P = {P}: final loss {numbers[f'loss_final_median_P{P}']:.2g}, distance to "
            f"W11 = 1 {numbers[f'dist_identity_final_median_P{P}']:.3g} (MSE(C^-1, 1) "
            f"{numbers[f'floor_median_P{P}']:.3g}), to W11 = C^-1 "
            f"{numbers[f'dist_solution_final_median_P{P}']:.2g}"
        )
    return numbers, "Medians over repeats after the last epoch: " + "; ".join(parts) + "."

"""Supplementary Fig. S7: the spectrum of the Hessian ``G = (1/P) sum_mu s s^T`` of H at
lam = 0 (eq. 5) and the fraction of its zero eigenvalues on a (D, P) grid.

The features ``s^mu = c u_mu (x) q_mu`` (``u`` the label row of ``X X^T``, ``q`` the
query column, whose last entry is the hidden label 0) span at most ``D (D + 1)``
directions: the ``D + 1`` spins of W's last column never enter the prediction. So G has
rank ``min(P, D (D + 1))`` and the fraction of zero eigenvalues is
``(n - min(P, D (D + 1))) / n`` with ``n = (D + 1)^2``: the number of unknowns of eq. 39
(``D^2 + D``) is the number of tasks beyond which the landscape has no flat direction
left. Below ``n`` prompts the nonzero eigenvalues are those of the ``P x P`` kernel
``K = (c^2 / P) (U U^T) o (Q Q^T)`` (same nonzero spectrum as ``S^T S / P``, exactly), which
is what makes the paper-size map cheap.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from ..hamiltonian import make_instance
from .claims import Claim, at_least, at_most
from .common import Context, new_figure, record_attrs
from .supp import budget_count, repeated

TITLE = "Hessian spectra and the fraction of zero eigenvalues (supplement Fig. S7)"
CLAIM = (
    "Eq. 39 has D^2 + D unknowns, so the transformer (and the spin-glass model) needs "
    "many tasks to pin W down: the Hessian of H has zero eigenvalues (flat directions) "
    "until P reaches D(D + 1)."
)
NOTES = [
    "The Hessian is G = (1/P) S^T S at lam = 0, as in the authors' script; an eigenvalue "
    "counts as zero when it is below 1e-9 times the largest one (the authors: below 1e-5 "
    "absolute), the rounding floor being ~1e-16 relative in float64.",
    "Below P = (D+1)^2 prompts the nonzero eigenvalues come from the P x P kernel "
    "(c^2/P)(U U^T) o (Q Q^T), which has the same nonzero spectrum as G, exactly; the zero "
    "count is then n minus its nonzero count.",
]

#: the paper's text this figure tests (appendix, after eq. 39)
QUOTE = (
    "'The number of variables in the equations is D^2 + D. [...] In practice, the "
    "transformer or our spin glass model needs a larger value of P to identify this "
    "optimal matrix.' (Appendix, Derivation of the unique optimal solution, after eq. 39)"
)

#: log10 bins of the spectra's histogram, relative to the mean nonzero eigenvalue
_LOG_EDGES = np.linspace(-5.0, 2.5, 91)


def hessian_spectrum(
    D: int, N: int, P: int, repeats: int, convention: str, seed: int, rtol: float = 1e-9
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of G for ``repeats`` instances: ``(ev, zeros)``.

    ``ev`` has shape (repeats, n), ascending, with the zero eigenvalues set to exactly 0
    (those below ``rtol`` times the largest); ``zeros`` is their count per instance.
    Below ``n`` prompts the spectrum is computed from the P x P kernel.
    """
    inst = make_instance(D, N, P, 0.0, convention=convention, seed=seed, batch_shape=(repeats,))
    n = (D + 1) ** 2
    if P < n:
        u, q, c = inst.u, inst.q, inst.c
        K = (c * c / P) * (u @ u.transpose(-1, -2)) * (q @ q.transpose(-1, -2))
        nz = torch.linalg.eigvalsh(K).cpu().numpy()
        ev = np.concatenate([np.zeros((repeats, n - P)), nz], axis=-1)
    else:
        ev = torch.linalg.eigvalsh(inst.gram).cpu().numpy()
    tol = rtol * np.abs(ev).max(-1, keepdims=True)
    ev = np.where(np.abs(ev) <= tol, 0.0, ev)
    return np.sort(ev, -1), (ev == 0).sum(-1)


def identity_ratio(D: int, P: int) -> float:
    """``(n - min(P, D (D + 1))) / n``: the zero fraction implied by rank G."""
    n = (D + 1) ** 2
    return (n - min(P, D * (D + 1))) / n


def compute(ctx: Context) -> xr.Dataset:
    """Histograms of the spectra at ``spectra_P`` and the zero-eigenvalue map."""
    p = ctx.params
    R, notes = budget_count(ctx)
    R_sp, notes_sp = budget_count(ctx, "spectra_repeats", "cpu_spectra_repeats")
    notes = notes_sp + notes
    n = (p.D + 1) ** 2

    def spec_chunk(P):
        def f(seed, first, k):
            ev, z = hessian_spectrum(p.D, p.N, P, k, ctx.convention, seed, p.zero_rtol)
            return {"ev": ev, "zeros": z}

        return f

    hist, zero_sp, scale = [], [], []
    for P in p.spectra_P:
        cfg = {"D": p.D, "N": p.N, "P": P, "rtol": p.zero_rtol}
        got = repeated(ctx, "spectrum", R_sp, p.chunk, cfg, spec_chunk(P))
        ev = got["ev"]
        nz = ev[ev > 0]
        s = float(nz.mean())
        h = np.histogram(np.log10(nz / s), _LOG_EDGES)[0] / ev.shape[0]
        hist.append(h)
        zero_sp.append(float(got["zeros"].mean()) / n)
        scale.append(s)
    ratio = np.zeros((len(p.map_D), len(p.map_P)))
    for i, D in enumerate(p.map_D):
        for j, P in enumerate(p.map_P):

            def f(seed, first, k, D=D, P=P):
                return {"zeros": hessian_spectrum(D, p.map_N, P, k, ctx.convention, seed,
                                                  p.zero_rtol)[1]}  # fmt: skip

            got = repeated(ctx, "map", R, R,
                           {"D": D, "N": p.map_N, "P": P, "rtol": p.zero_rtol}, f)  # fmt: skip
            ratio[i, j] = float(got["zeros"].mean()) / (D + 1) ** 2
    ident = np.array([[identity_ratio(D, P) for P in p.map_P] for D in p.map_D])
    centers = 0.5 * (_LOG_EDGES[1:] + _LOG_EDGES[:-1])
    ds = xr.Dataset(
        {
            "spectrum_hist": (
                ("P_spectrum", "log10_rel_eig"),
                np.array(hist),
                {"long_name": "nonzero eigenvalues per instance per bin"},
            ),
            "spectrum_zero_ratio": (("P_spectrum",), zero_sp),
            "spectrum_mean_nonzero": (("P_spectrum",), scale),
            "zero_ratio": (("D", "P"), ratio, {"long_name": "fraction of zero eigenvalues"}),
            "identity": (("D", "P"), ident, {"long_name": "(n - min(P, D(D+1))) / n"}),
        },  # fmt: skip
        coords={
            "P_spectrum": list(p.spectra_P),
            "log10_rel_eig": centers,
            "D": list(p.map_D),
            "P": list(p.map_P),
        },
        attrs={
            "D_spectrum": p.D,
            "N": p.N,
            "map_N": p.map_N,
            "convention": ctx.convention,
            "spectra_repeats": R_sp,
            "repeats": R,
            "budget_note": " ".join(notes),
        },  # fmt: skip
    )
    return record_attrs(ds, files=["trials.sqlite"])


def draw(ds: xr.Dataset):
    """(a) spectra per P (log axis, relative to the mean nonzero eigenvalue); (b) the
    zero-ratio map; (c) zero ratio against P per D beside the identity."""
    fig, axes = new_figure(3, 1, width=4.6, height=3.8)
    a, b, c = axes[0]
    x = ds["log10_rel_eig"].values
    for k, P in enumerate(ds["P_spectrum"].values):
        zr = float(ds["spectrum_zero_ratio"].sel(P_spectrum=P))
        a.step(x, ds["spectrum_hist"].sel(P_spectrum=P), where="mid", color=f"C{k}",
               label=f"P = {P} (zero: {zr:.2f})")  # fmt: skip
    a.set_yscale("log")
    a.set_xlabel("log10 (eigenvalue / mean nonzero)")
    a.set_ylabel("nonzero eigenvalues per instance")
    a.set_title(f"(a) spectra, D = {ds.attrs['D_spectrum']}, N = {ds.attrs['N']}")
    a.legend()
    Ps, Ds = ds["P"].values, ds["D"].values
    im = b.pcolormesh(Ps, Ds, ds["zero_ratio"].values, shading="nearest", cmap="viridis")
    b.plot([d * (d + 1) for d in Ds if d * (d + 1) <= Ps.max()],
           [d for d in Ds if d * (d + 1) <= Ps.max()], "w--", label="P = D(D+1)")  # fmt: skip
    fig.colorbar(im, ax=b, label="zero-eigenvalue fraction")
    b.set_xlabel("P")
    b.set_ylabel("D")
    b.set_title(f"(b) zero fraction, N = {ds.attrs['map_N']}")
    b.legend(loc="upper right")
    for k, D in enumerate(Ds):
        c.plot(Ps, ds["zero_ratio"].sel(D=D), "o", ms=2.5, color=f"C{k}", label=f"D = {D}")
        c.plot(Ps, ds["identity"].sel(D=D), "-", lw=0.8, color=f"C{k}")
    c.set_xlabel("P")
    c.set_ylabel("zero-eigenvalue fraction")
    c.set_title("(c) dots: measured; lines: (n - min(P, D(D+1)))/n")
    c.legend(ncols=2, fontsize=8)
    return fig


def claims(ds: xr.Dataset) -> list[Claim]:
    """The map equals the rank identity; past D(D+1) only W's last column stays flat."""
    dev = float(np.abs(ds["zero_ratio"] - ds["identity"]).max())
    D = int(ds.attrs["D_spectrum"])
    n = (D + 1) ** 2
    big = [P for P in ds["P_spectrum"].values if P >= D * (D + 1)]
    small = [P for P in ds["P_spectrum"].values if P < D * (D + 1)]
    out = [
        at_most(
            QUOTE + ": the Hessian has (n - min(P, D(D+1))) / n zero eigenvalues, flat "
            "directions until P reaches the D^2 + D unknowns.",
            "largest |measured zero fraction - (n - min(P, D(D+1)))/n| over the (D, P) grid",
            dev,
            agree=1e-12,
            partly=0.01,
        )
    ]
    if small:
        P0 = int(min(small))
        out.append(
            at_least(
                f"At P = {P0} < D(D+1) = {D * (D + 1)} most directions are flat.",
                f"fraction of zero eigenvalues at D = {D}, P = {P0}",
                float(ds["spectrum_zero_ratio"].sel(P_spectrum=P0)),
                agree=identity_ratio(D, P0) - 1e-9,
                partly=0.5 * identity_ratio(D, P0),
            )
        )
    if big:
        P1 = int(max(big))
        out.append(
            at_most(
                f"At P = {P1} >= D(D+1) only W's inert last column (D+1 of {n} spins) is flat.",
                f"fraction of zero eigenvalues at D = {D}, P = {P1}, minus (D+1)/n",
                float(ds["spectrum_zero_ratio"].sel(P_spectrum=P1)) - (D + 1) / n,
                agree=1e-12,
                partly=0.05,
            )
        )
    return out


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    dev = float(np.abs(ds["zero_ratio"] - ds["identity"]).max())
    numbers = {
        "D": [int(d) for d in ds["D"].values],
        "P": [int(p) for p in ds["P"].values],
        "zero_ratio": ds["zero_ratio"].values.tolist(),
        "identity_max_abs_deviation": dev,
        "spectrum_P": [int(p) for p in ds["P_spectrum"].values],
        "spectrum_zero_ratio": ds["spectrum_zero_ratio"].values.tolist(),
    }
    summary = (
        "Zero-eigenvalue fraction of the Hessian at "
        + ", ".join(
            f"P = {P}: {z:.3f}"
            for P, z in zip(numbers["spectrum_P"], numbers["spectrum_zero_ratio"], strict=True)
        )
        + f" (D = {ds.attrs['D_spectrum']}); over the {ds['D'].size} x {ds['P'].size} (D, P) map "
        f"the measured fraction differs from (n - min(P, D(D+1)))/n by at most {dev:.2g}."
    )
    return numbers, summary

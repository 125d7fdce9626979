"""Supplementary Fig. S5: the spectrum of ``X X^T / N`` (D x N standard Gaussian tokens)
beside the Marchenko-Pastur law, for a growing context length N.

The appendix's eq. 38c -> 38d replaces ``X_0 X_0^T / N`` by the identity (i.i.d.
tokens). For ratio ``q = D / N <= 1`` the eigenvalues of ``X X^T / N`` follow, as D grows,
the Marchenko-Pastur density

    rho_q(x) = sqrt((b - x)(x - a)) / (2 pi q x),   a, b = (1 -+ sqrt q)^2,

whose width ``sqrt q`` shrinks to 0 only when N >> D: at N = D the spectrum fills
[0, 4]. ``X X^T`` is a Wishart(N, I_D) matrix; by default it is drawn with Bartlett's
decomposition (``L L^T``, L lower triangular with ``L_ii^2 ~ chi^2_(N-i+1)`` and standard
normal entries below the diagonal: the same law exactly, at O(D^2) numbers instead of
D N), or (``sampler = "tokens"``) from the tokens themselves, as the authors' script.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from .claims import Claim, at_most
from .common import Context, new_figure, record_attrs
from .supp import repeated

TITLE = "Spectrum of X X^T / N against Marchenko-Pastur (supplement Fig. S5)"
CLAIM = (
    "Eq. 38c-d use X_0 X_0^T / N = identity for i.i.d. tokens: the eigenvalues of "
    "X X^T / N follow the Marchenko-Pastur law of ratio D / N and concentrate at 1 only "
    "when N >> D."
)
NOTES = [
    "X X^T is drawn as a Wishart(N, I_D) matrix by Bartlett's decomposition (the same law "
    "as the product of D x N Gaussian tokens, exactly; sampler = 'tokens' draws the tokens "
    "as the authors' script does). The Kolmogorov-Smirnov distance to the Marchenko-Pastur "
    "CDF is taken at the edges of a 2000-bin histogram of every eigenvalue of every matrix.",
]

QUOTE = (
    "'To derive the above prediction, we have used 2x2 block matrix form of X, the task "
    "y = w^T x, and the fact of i.i.d. {x_l}' (main text, after eq. 10; the appendix's "
    "eq. 38c-d)"
)

#: histogram bins per N; the range is [0, 1.25 b] with b the Marchenko-Pastur upper edge
BINS = 2000


def mp_edges(q: float) -> tuple[float, float]:
    """Support ``[(1 - sqrt q)^2, (1 + sqrt q)^2]`` of the Marchenko-Pastur law."""
    return (1 - np.sqrt(q)) ** 2, (1 + np.sqrt(q)) ** 2


def mp_density(x: np.ndarray, q: float) -> np.ndarray:
    """Marchenko-Pastur density of ratio ``0 < q <= 1`` at ``x`` (0 outside the support)."""
    a, b = mp_edges(q)
    x = np.asarray(x, dtype=float)
    inside = (x > a) & (x < b)
    out = np.zeros_like(x)
    xi = x[inside]
    out[inside] = np.sqrt((b - xi) * (xi - a)) / (2 * np.pi * q * xi)
    return out


def mp_cdf(x: np.ndarray, q: float, grid: int = 20001) -> np.ndarray:
    """Marchenko-Pastur CDF at ``x``: the density integrated in ``x = m - r cos(theta)``
    (``m = 1 + q``, ``r = 2 sqrt q``), where the integrand ``r^2 sin^2 / (2 pi q x)`` is
    smooth even at q = 1 (trapezoid rule on ``grid`` angles; error ~1e-8)."""
    m, r = 1 + q, 2 * np.sqrt(q)
    th = np.linspace(0.0, np.pi, grid)
    xs = m - r * np.cos(th)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(xs > 0, r * r * np.sin(th) ** 2 / (2 * np.pi * q * xs), 0.0)
    if q == 1.0:
        f[0] = 2 / np.pi  # the limit of sin^2(t) / (2 - 2 cos t) * 4 / (2 pi), t -> 0
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(th))])
    cum /= cum[-1]
    t = np.arccos(np.clip((m - np.asarray(x, dtype=float)) / r, -1.0, 1.0))
    return np.interp(t, th, cum)


def wishart_eigs(
    D: int, N: int, k: int, seed: int, sampler: str = "bartlett", max_floats: float = 5e7
) -> np.ndarray:
    """Eigenvalues of ``X X^T / N`` for ``k`` independent ``D x N`` standard Gaussian X,
    shape (k, D), ascending, drawn from NumPy's ``default_rng(seed)`` (``bartlett``: needs
    N >= D; ``tokens``: X itself, in batches of at most ``max_floats`` numbers)."""
    rng = np.random.default_rng(seed)
    if sampler == "bartlett":
        L = np.tril(rng.standard_normal((k, D, D)), -1)
        i = np.arange(D)
        L[:, i, i] = np.sqrt(rng.chisquare(N - i, size=(k, D)))
        return _eigs(torch.from_numpy(L), N)
    per = max(1, int(max_floats // (D * N)))
    out = []
    for s in range(0, k, per):
        X = rng.standard_normal((min(per, k - s), D, N))
        out.append(_eigs(torch.from_numpy(X), N))
    return np.concatenate(out)


def _eigs(X: torch.Tensor, N: int) -> np.ndarray:
    """Eigenvalues of ``X X^T / N`` (torch: NumPy's batched matmul and eigvalsh are an
    order of magnitude slower here)."""
    return torch.linalg.eigvalsh(X @ X.transpose(-1, -2) / N).numpy()


def hist_edges(D: int, N: int) -> np.ndarray:
    return np.linspace(0.0, 1.25 * mp_edges(D / N)[1], BINS + 1)


def compute(ctx: Context) -> xr.Dataset:
    """Histogram of every eigenvalue per N (chunks of ``p.chunk`` matrices stored as they
    finish), the KS distance to Marchenko-Pastur, and the moments of the spectrum."""
    p = ctx.params
    hist, ks, mean, std, above = [], [], [], [], []
    n_chunks = -(-p.repeats // p.chunk)
    for N in p.N_list:
        edges = hist_edges(p.D, N)

        def f(seed, first, n, N=N, edges=edges):
            counts, m1, m2, over = [], [], [], []
            for c in range(first, first + n):
                k = min(p.chunk, p.repeats - c * p.chunk)
                ev = wishart_eigs(p.D, N, k, seed + c - first, p.sampler)
                counts.append(np.histogram(ev, edges)[0])
                m1.append(ev.sum())
                m2.append((ev**2).sum())
                over.append((ev >= edges[-1]).sum())
            return {"counts": np.array(counts), "s1": np.array(m1), "s2": np.array(m2),
                    "over": np.array(over)}  # fmt: skip

        got = repeated(ctx, "spectrum", n_chunks, 1,
                       {"D": p.D, "N": N, "repeats": p.repeats, "per_chunk": p.chunk,
                        "sampler": p.sampler}, f)  # fmt: skip
        counts = got["counts"].sum(0)
        total = p.repeats * p.D
        ecdf = np.concatenate([[0.0], np.cumsum(counts)]) / total
        ks.append(float(np.abs(ecdf - mp_cdf(edges, p.D / N)).max()))
        width = np.diff(edges)[0]
        hist.append(counts / total / width)
        mu = got["s1"].sum() / total
        mean.append(float(mu))
        std.append(float(np.sqrt(got["s2"].sum() / total - mu**2)))
        above.append(int(got["over"].sum()))
    ds = xr.Dataset(
        {
            "density": (("N", "bin"), np.array(hist), {"long_name": "eigenvalue density"}),
            "ks": (("N",), ks, {"long_name": "KS distance to Marchenko-Pastur"}),
            "mean": (("N",), mean),
            "std": (("N",), std),
            "mp_std": (("N",), [np.sqrt(p.D / N) for N in p.N_list]),
            "beyond_range": (("N",), above),
        },
        coords={"N": list(p.N_list), "bin": np.arange(BINS)},
        attrs={"D": p.D, "repeats": p.repeats, "sampler": p.sampler, "bins": BINS},
    )
    return record_attrs(ds, files=["trials.sqlite"])


def draw(ds: xr.Dataset):
    """One panel per N: the eigenvalue histogram and the Marchenko-Pastur density."""
    Ns = [int(n) for n in ds["N"].values]
    cols = min(3, len(Ns))
    rows = -(-len(Ns) // cols)
    fig, axes = new_figure(cols, rows, width=4.0, height=3.2)
    D = int(ds.attrs["D"])
    for k, N in enumerate(Ns):
        ax = axes[k // cols][k % cols]
        edges = hist_edges(D, N)
        # 50 display bins from the 2000 stored ones
        dens = ds["density"].sel(N=N).values.reshape(50, -1).mean(-1)
        e = edges[:: BINS // 50]
        ax.stairs(dens, e, fill=True, alpha=0.4, color="C0", label="X X^T / N")
        x = np.linspace(edges[0], edges[-1], 800)
        ax.plot(x, mp_density(x, D / N), "C3", lw=1.2, label="Marchenko-Pastur")
        ax.set_title(f"N = {N} (D/N = {D / N:.3g}); KS {float(ds['ks'].sel(N=N)):.3f}")
        ax.set_xlabel("eigenvalue")
        if k == 0:
            ax.legend()
        if N == D:
            ax.set_ylim(0, 1.5)
    for k in range(len(Ns), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    fig.suptitle(f"Spectrum of X X^T / N, D = {D}, {ds.attrs['repeats']} matrices per N")
    return fig


def claims(ds: xr.Dataset) -> list[Claim]:
    ks = float(ds["ks"].max())
    Nmax = int(ds["N"].max())
    dev = float(np.abs(ds["std"] / ds["mp_std"] - 1).max())
    return [
        at_most(
            QUOTE + ": with i.i.d. tokens the eigenvalues of X X^T / N follow the "
            "Marchenko-Pastur law of ratio D/N.",
            "largest Kolmogorov-Smirnov distance between the eigenvalues and the "
            "Marchenko-Pastur CDF over N",
            ks,
            agree=0.02,
            partly=0.05,
        ),
        at_most(
            "X X^T / N approaches the identity as N grows: the spread of its eigenvalues is "
            "sqrt(D/N) (Marchenko-Pastur).",
            "largest |std of the eigenvalues / sqrt(D/N) - 1| over N",
            dev,
            agree=0.05,
            partly=0.15,
        ),
        at_most(
            f"At the longest prompt (N = {Nmax}) X X^T / N is close to the identity.",
            f"standard deviation of the eigenvalues at N = {Nmax}",
            float(ds["std"].sel(N=Nmax)),
            agree=0.2,
            partly=0.5,
        ),
    ]


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    numbers = {
        "D": int(ds.attrs["D"]),
        "N": [int(n) for n in ds["N"].values],
        "ks": ds["ks"].values.tolist(),
        "eig_mean": ds["mean"].values.tolist(),
        "eig_std": ds["std"].values.tolist(),
        "mp_std": ds["mp_std"].values.tolist(),
    }
    summary = (
        "KS distance to Marchenko-Pastur "
        + ", ".join(f"N = {N}: {k:.3g}" for N, k in zip(numbers["N"], numbers["ks"], strict=True))
        + f"; eigenvalue spread {numbers['eig_std'][0]:.3g} at N = {numbers['N'][0]} down to "
        f"{numbers['eig_std'][-1]:.3g} at N = {numbers['N'][-1]} (sqrt(D/N): "
        f"{numbers['mp_std'][-1]:.3g})."
    )
    return numbers, summary

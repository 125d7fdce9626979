"""Supplementary Fig. S2: how the block laws of the fields and couplings move with the
prompt length, measured from the shortest prompt (base N = 20).

As Fig. 5 (:mod:`.fig5`, whose block sampler this uses), but from a fixed base N to every
N of a grid: for each block (A, B of the fields; C, D, E of the couplings, eq. 5) the
entries of ``repeats`` instances at N are pooled and histogrammed, and
``D_KL[P_base || P_N]`` is computed from the counts (0.5 pseudo-count per bin, in bits as
the authors). The bins are fixed per block from the 0.1% / 99.9% quantiles of the first
chunk of the base sample (plus two outer bins), so each chunk's counts can be stored as
it finishes and the figure resumes. A second, independent base sample gives the KL
noise floor (the row ``N = base`` of the dataset).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .claims import Claim, at_least, at_most
from .common import Context, figure_seed, new_figure, record_attrs
from .fig5 import BLOCKS, block_samples, kl_counts, quantile_edges
from .supp import budget_count, repeated

TITLE = "KL divergence of the block laws from the shortest prompt (supplement Fig. S2)"
CLAIM = (
    "The distributions of blocks A, B and E are almost unchanged when the prompt grows, "
    "while blocks C and D are sensitive to the prompt length (a weaker effect for D); "
    "here from N = 20 to N = 200."
)
NOTES = [
    "The instances are drawn with the factor sampler by default: each prompt's rank-one "
    "factors (u, q, y~) from their exact law, the same distribution as whole prompts at a "
    "cost independent of N (sampler = 'prompts' draws the prompts).",
    "Pooled histograms over all repeats with bins fixed from the base sample (the authors "
    "histogram each repeat on fixed ranges and average the per-repeat KL); the noise floor "
    "is the KL between two independent base samples.",
]

QUOTE = (
    "'the distributions of blocks A, B and E before and after increasing the prompt length "
    "are almost the same, while the blocks C and D seem sensitive to the change of the "
    "prompt length (see Fig. 5, but a weaker effect for D)' (Appendix, Statistics of "
    "elements in different blocks of the S matrix and the Interaction matrix J)"
)


def kl_bits(p: np.ndarray, q: np.ndarray) -> float:
    """``D_KL[p || q]`` in bits of two count vectors (0.5 pseudo-count per bin,
    :func:`.fig5.kl_counts`)."""
    return kl_counts(p, q, np.log2)


def block_edges(sample: dict[str, np.ndarray], bins: int) -> dict[str, np.ndarray]:
    """Per block: ``bins - 1`` inner edges on the 0.1% / 99.9% quantiles and two outer
    bins to +-inf (:func:`.fig5.quantile_edges`)."""
    return {b: quantile_edges(sample[b], bins) for b in BLOCKS}


def compute(ctx: Context) -> xr.Dataset:
    """Block histograms at every N (and an independent base sample), their KL to the
    base sample."""
    p = ctx.params
    R, notes = budget_count(ctx)
    n_chunks = -(-R // p.chunk)

    def sample(N: int, seed: int, k: int) -> dict[str, np.ndarray]:
        return block_samples(p.D, N, p.P, p.lam, k, k, ctx.convention, [seed], seed + 1,
                             per_instance=p.per_instance, device=ctx.device,
                             sampler=p.sampler)  # fmt: skip

    # the bins: from the first chunk of the base sample (recomputed, not stored)
    pilot_seed = figure_seed(ctx, "base", first=0, D=p.D, N=p.base_N, P=p.P)
    edges = block_edges(sample(p.base_N, pilot_seed, min(p.chunk, R)), p.bins)

    def counts(purpose: str, N: int) -> dict[str, np.ndarray]:
        def f(seed, first, n):
            k = min(p.chunk, R - first * p.chunk)
            s = sample(N, seed, k)
            return {b: np.histogram(s[b], edges[b])[0][None] for b in BLOCKS}

        cfg = {"D": p.D, "N": N, "P": p.P}
        extra = {"lam": p.lam, "repeats": R, "per_chunk": p.chunk, "bins": p.bins,
                 "per_instance": p.per_instance, "base_N": p.base_N,
                 "sampler": p.sampler}  # fmt: skip
        got = repeated(ctx, purpose, n_chunks, 1, cfg, f, extra=extra)
        return {b: got[b].sum(0) for b in BLOCKS}

    base = counts("base", p.base_N)
    floor = counts("floor", p.base_N)
    kl = np.zeros((len(p.N_list), len(BLOCKS)))
    for i, N in enumerate(p.N_list):
        other = floor if N == p.base_N else counts("grid", N)
        kl[i] = [kl_bits(base[b], other[b]) for b in BLOCKS]
    fl = np.array([kl_bits(base[b], floor[b]) for b in BLOCKS])
    ds = xr.Dataset(
        {
            "kl": (("N", "block"), kl, {"long_name": "D_KL[P_base || P_N] (bits)"}),
            "floor": (("block",), fl, {"long_name": "KL of two independent base samples"}),
            "kl_over_floor": (("N", "block"), kl / fl),
        },
        coords={"N": list(p.N_list), "block": list(BLOCKS)},
        attrs={
            "D": p.D,
            "P": p.P,
            "base_N": p.base_N,
            "lam": p.lam,
            "repeats": R,
            "budget_note": " ".join(notes),
            "bins": p.bins,
            "convention": ctx.convention,
        },  # fmt: skip
    )
    return record_attrs(ds, files=["trials.sqlite"])


def draw(ds: xr.Dataset):
    """KL against N per block (log y), each block's noise floor dotted."""
    fig, axes = new_figure(1, 1, width=7, height=4.6)
    ax = axes[0][0]
    Ns = ds["N"].values
    base = int(ds.attrs["base_N"])
    keep = Ns != base
    for c, b in enumerate(BLOCKS):
        ax.plot(Ns[keep], ds["kl"].sel(block=b).values[keep], "o-", color=f"C{c}",
                label=f"block {b}")  # fmt: skip
        ax.axhline(float(ds["floor"].sel(block=b)), color=f"C{c}", ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("prompt length N")
    ax.set_ylabel(f"D$_{{KL}}$[P$_{{N={base}}}$ || P$_N$] (bits)")
    a = ds.attrs
    ax.set_title(f"Fig. S2: D = {a['D']}, P = {a['P']}, {a['repeats']} repeats; "
                 "dotted: noise floor")  # fmt: skip
    ax.legend(ncols=2)
    return fig


def claims(ds: xr.Dataset) -> list[Claim]:
    """At the largest N: A, B, E within a few floors; C, D well above; D below C."""
    last = ds["kl_over_floor"].isel(N=-1)
    r = {b: float(last.sel(block=b)) for b in BLOCKS}
    N = int(ds["N"].values[-1])
    base = int(ds.attrs["base_N"])
    kl = {b: float(ds["kl"].isel(N=-1).sel(block=b)) for b in BLOCKS}
    return [
        at_most(
            QUOTE + ": blocks A, B and E almost unchanged.",
            f"largest KL / noise floor of A, B, E from N = {base} to N = {N}",
            max(r["A"], r["B"], r["E"]),
            agree=3.0,
            partly=10.0,
        ),
        at_least(
            "Blocks C and D are sensitive to the prompt length.",
            f"smaller KL / noise floor of C, D from N = {base} to N = {N}",
            min(r["C"], r["D"]),
            agree=3.0,
            partly=1.5,
        ),
        at_most(
            "The effect is weaker for D than for C.",
            f"KL of D divided by KL of C from N = {base} to N = {N}",
            kl["D"] / kl["C"],
            agree=1.0,
        ),
    ]


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    numbers: dict = {"N": [int(n) for n in ds["N"].values], "base_N": int(ds.attrs["base_N"])}
    for b in BLOCKS:
        numbers[f"kl_{b}"] = ds["kl"].sel(block=b).values.tolist()
        numbers[f"floor_{b}"] = float(ds["floor"].sel(block=b))
    N = numbers["N"][-1]
    last = ds["kl"].isel(N=-1)
    summary = (
        f"KL (bits) from N = {numbers['base_N']} to N = {N}: "
        + ", ".join(f"{b} {float(last.sel(block=b)):.3g}" for b in BLOCKS)
        + " (noise floor "
        + ", ".join(f"{numbers[f'floor_{b}']:.2g}" for b in BLOCKS)
        + ")."
    )
    return numbers, summary

"""Fig. 5 (supplement): KL divergence of the block laws between N and N + dN.

For each block (A, B of the fields h; C, D, E of the couplings J, eq. 5; blocks as in
Fig. 1) we pool the entries of ``instances`` instances at context length N and at
N + dN, histogram both on common bins (from the pooled 0.1% / 99.9% quantiles, plus
the two tails as outer bins, 0.5 pseudo-count per bin) and compute
``D_KL[P_N || P_{N+dN}]``. An independent second sample at the same N (dN = 0) gives
the estimator's noise floor; blocks are compared by their KL divided by that floor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from ..hamiltonian import build_instance, make_instance
from ..tasks import make_generator, sample_factors
from .claims import Claim, at_least, at_most
from .common import Context, figure_seed, new_figure, record_attrs
from .presets import Fig5Preset

TITLE = "KL divergence of block laws when the prompt grows (supplement Fig. 5)"
CLAIM = (
    "The distributions of blocks A, B and E are almost unchanged when the prompt length "
    "grows from N to N + dN, while blocks C and D are sensitive to it (a weaker effect for "
    "D); (P, D, N) = (1000, 20, 50), averaged over 1000 instances."
)
NOTES = [
    "We use the instance-level fields h and couplings J (averages over the P prompts, as "
    "in Fig. 1's H and J matrices) and pool all instances into one histogram per block; "
    "the paper does not give its estimator. The dN = 0 row is an independent sample at "
    "the same N: the KL noise floor of the histogram estimator.",
    "Under the authors' convention (prefactor 1/(N+1)) the entries have an N-independent "
    "scale; under paper-text (1/(DN)) the scale itself changes with N and every block's "
    "KL grows.",
]

BLOCKS = ("A", "B", "C", "D", "E")


def block_samples(
    D: int,
    N: int,
    P: int,
    lam: float,
    instances: int,
    chunk: int,
    convention: str,
    seeds: Sequence[int],
    subsample_seed: int,
    per_instance: int = 4000,
    device: str = "cpu",
    sampler: str = "prompts",
) -> dict[str, np.ndarray]:
    """Pooled entries of the blocks A, B (fields) and C, D, E (couplings).

    The instances are drawn in chunks of ``chunk``; chunk k from seed ``seeds[k]``. At
    most ``per_instance`` random entries per instance are kept from each block (chosen
    by the stream of ``subsample_seed``). ``sampler``: ``prompts`` (whole prompts, eq. 1)
    or ``factors`` (their rank-one factors drawn from their exact law,
    :func:`~spinglass_icl.tasks.sample_factors`: the same law at a cost independent of N).
    """
    g = make_generator(subsample_seed)
    out: dict[str, list] = {b: [] for b in BLOCKS}
    done = 0
    for s in seeds:
        if done >= instances:
            break
        k = min(chunk, instances - done)
        if sampler == "factors":
            f = sample_factors(D, N, P, convention=convention, seed=s, batch_shape=(k,),
                               device=device)  # fmt: skip
            inst = build_instance(f, lam)
        else:
            inst = make_instance(
                D, N, P, lam, convention=convention, seed=s, batch_shape=(k,), device=device
            )
        fb, cb = inst.field_blocks(), inst.coupling_blocks()
        parts = {
            "A": fb.A.reshape(k, -1),
            "B": fb.B.reshape(k, -1),
            "C": cb.C,
            "D": cb.D,
            "E": cb.E,
        }
        for b, x in parts.items():
            if x.shape[-1] > per_instance:
                idx = torch.randint(x.shape[-1], (per_instance,), generator=g).to(x.device)
                x = x[:, idx]
            out[b].append(x.reshape(-1).cpu().numpy())
        done += k
    return {b: np.concatenate(v) for b, v in out.items()}


def quantile_edges(x: np.ndarray, bins: int) -> np.ndarray:
    """``bins`` histogram bins for ``x``: ``bins - 2`` equal bins between its 0.1% and
    99.9% quantiles and the two tails as outer bins to -inf and +inf (Fig. 5, Fig. S2)."""
    lo, hi = np.quantile(x, [0.001, 0.999])
    return np.concatenate([[-np.inf], np.linspace(lo, hi, bins - 1), [np.inf]])


def kl_counts(cx: np.ndarray, cy: np.ndarray, log=np.log) -> float:
    """``D_KL[p || q]`` of two histograms' counts on the same bins, 0.5 pseudo-count per
    bin; ``log``: ``np.log`` (nats) or ``np.log2`` (bits)."""
    px, py = cx + 0.5, cy + 0.5
    px, py = px / px.sum(), py / py.sum()
    return float(np.sum(px * log(px / py)))


def kl_hist(x: np.ndarray, y: np.ndarray, bins: int) -> float:
    """Histogram estimate of ``D_KL[P_x || P_y]`` on common bins (:func:`quantile_edges`
    of the pooled sample, :func:`kl_counts`).

    The number of bins is ``min(bins, 2 n^(1/3))`` (Rice's rule, n the smaller sample)
    so that blocks with few entries (B, E) do not get a large small-sample bias.
    """
    bins = int(max(8, min(bins, 2 * min(len(x), len(y)) ** (1 / 3))))
    edges = quantile_edges(np.concatenate([x, y]), bins)
    return kl_counts(np.histogram(x, edges)[0], np.histogram(y, edges)[0])


def n_chunks(p: Fig5Preset) -> int:
    return -(-p.instances // p.chunk)


def kl_data(p: Fig5Preset, convention: str, seeds: dict, device="cpu", progress=False):
    """KL of every block between N and N + dN (row dN = 0: an independent sample at N,
    the estimator's noise floor); ``seeds[dN]`` holds the chunk and subsample seeds."""
    from tqdm.auto import tqdm

    def sample(N: int, s: dict) -> dict[str, np.ndarray]:
        return block_samples(p.D, N, p.P, p.lam, p.instances, p.chunk, convention,
                             s["chunks"], s["subsample"], device=device)  # fmt: skip

    base = sample(p.N, seeds["base"])
    dNs = [0, *p.dN_list]
    kl = np.zeros((len(dNs), len(BLOCKS)))
    for r, dN in enumerate(tqdm(dNs, desc="fig5 dN", disable=not progress, leave=False)):
        other = sample(p.N + dN, seeds[f"dN={dN}"])
        kl[r] = [kl_hist(base[b], other[b], p.bins) for b in BLOCKS]
    return xr.Dataset(
        {
            "kl": (("dN", "block"), kl, {"long_name": "D_KL[P_N || P_(N+dN)]"}),
            "kl_over_floor": (("dN", "block"), kl / kl[0], {"long_name": "KL / KL at dN = 0"}),
        },
        coords={"dN": dNs, "block": list(BLOCKS)},
        attrs={"D": p.D, "N": p.N, "P": p.P, "lam": p.lam, "convention": convention},
    )


def compute(ctx: Context) -> xr.Dataset:
    """:func:`kl_data` at the preset's parameters: the base prompt length and each longer
    one draw their instances in seeded chunks."""
    p = ctx.params

    def draw_seeds(which: str, N: int) -> dict:
        return {
            "chunks": [
                figure_seed(ctx, "instances", which=which, D=p.D, N=N, P=p.P, chunk=k)
                for k in range(n_chunks(p))
            ],  # fmt: skip
            "subsample": figure_seed(ctx, "subsample", which=which, N=N),
        }

    seeds = {"base": draw_seeds("base", p.N)}
    seeds |= {f"dN={dN}": draw_seeds("other", p.N + dN) for dN in [0, *p.dN_list]}
    return record_attrs(kl_data(p, ctx.convention, seeds, ctx.device, ctx.progress), seeds=seeds)


def draw(ds: xr.Dataset):
    """KL vs dN per block (log y), with each block's dN = 0 noise floor dotted."""
    fig, axes = new_figure(1, 1, width=7, height=4.6)
    ax = axes[0][0]
    dNs = ds["dN"].values[1:]
    for c, b in enumerate(BLOCKS):
        ax.plot(dNs, ds["kl"].sel(block=b).values[1:], "o-", label=f"block {b}", color=f"C{c}")
        ax.axhline(float(ds["kl"].sel(block=b, dN=0)), color=f"C{c}", ls=":", lw=0.8)
    ax.set_xlabel("prompt length increment dN")
    ax.set_ylabel("D$_{KL}$[P$_N$ || P$_{N+dN}$]")
    ax.set_yscale("log")
    a = ds.attrs
    ax.set_title(f"Fig. 5: (P, D, N) = ({a['P']}, {a['D']}, {a['N']}); dotted: dN = 0 floor")
    ax.legend(ncols=2)
    return fig


def claims(ds: xr.Dataset) -> list[Claim]:
    """A, B, E unchanged; C, D sensitive; D less than C (KL / floor at the largest dN)."""
    last = ds["kl_over_floor"].isel(dN=-1)
    r = {b: float(last.sel(block=b)) for b in BLOCKS}
    dN = int(ds["dN"].values[-1])
    return [
        at_most(
            '"the distributions of blocks A, B and E before and after increasing the prompt '
            'length are almost the same" (supplement, Fig. 5).',
            f"largest KL / noise floor of A, B, E at dN = {dN}",
            max(r["A"], r["B"], r["E"]),
            agree=3.0,
            partly=10.0,
        ),
        at_least(
            '"the blocks C and D seem sensitive to the change of the prompt length" '
            "(supplement, Fig. 5).",
            f"smaller KL / noise floor of C, D at dN = {dN}",
            min(r["C"], r["D"]),
            agree=3.0,
            partly=1.5,
        ),
        at_most(
            '"but a weaker effect for D" (supplement, Fig. 5).',
            f"KL / noise floor of D divided by that of C at dN = {dN}",
            r["D"] / r["C"],
            agree=1.0,
        ),
    ]


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    kl, dNs = ds["kl"].values, ds["dN"].values.tolist()
    numbers = {
        f"KL_{b}_dN{dN}": float(kl[r, c]) for r, dN in enumerate(dNs) for c, b in enumerate(BLOCKS)
    }
    last = ds["kl_over_floor"].isel(dN=-1).values
    for c, b in enumerate(BLOCKS):
        numbers[f"KL_over_floor_{b}_dNmax"] = float(last[c])
    order = sorted(BLOCKS, key=lambda b: -last[BLOCKS.index(b)])
    numbers["ranking_at_max_dN"] = order
    summary = (
        f"At dN = {dNs[-1]}: KL "
        + ", ".join(f"{b} {kl[-1, c]:.3g}" for c, b in enumerate(BLOCKS))
        + f" (noise floor at dN = 0: {kl[0].min():.2g}..{kl[0].max():.2g}); ranking of the "
        "KL / floor: " + " > ".join(f"{b} ({last[BLOCKS.index(b)]:.2g})" for b in order) + "."
    )
    return numbers, summary

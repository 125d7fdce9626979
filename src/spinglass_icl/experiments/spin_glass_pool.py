"""The spin-glass view of a finite task pool: at fixed (D, N, P), how the ground state's
contrast and the laws of the fields and couplings change as the pool of tasks grows.

The paper calls P the task diversity because every prompt has its own task. Here the P
training prompts take their tasks from a pool of K Gaussian tasks (uniformly; K = 0 in
the preset: no pool, the paper's setting), so K is the task diversity and P the data.
Per K, ``instances`` instances (each its own pool): the ground state of eq. 2
(:func:`spinglass_icl.diversity.exact_weights`), its contrast ratio (the text's formula
over W11, :func:`spinglass_icl.observables.contrast`), its e_ICL and e_IDG in closed
form, and the entries of the blocks A, B (fields) and C, D, E (couplings) of eq. 5
(Fig. 1's blocks), histogrammed on bins fixed from the no-pool sample; their KL
divergence from the no-pool law, in bits (0.5 pseudo-count per bin), beside the KL of two
independent no-pool samples (the noise floor), as in Fig. S2. Chunks of instances are
stored as they finish (``trials.sqlite``).
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from ..diversity import exact_weights, sample_pool_factors
from ..hamiltonian import Instance
from ..observables import contrast
from ..tasks import TaskConfig
from .claims import Claim, at_least, at_most
from .common import (
    Context,
    figure_seed,
    new_figure,
    plain_log_axis,
    record_attrs,
)
from .fig5 import BLOCKS
from .figS2 import block_edges, kl_bits
from .supp import repeated
from .task_diversity import _wrap

TITLE = "The spin glass with a task pool: contrast and block laws against K at fixed P"
CLAIM = (
    "The paper's question asked with a pool (not a figure of the paper): the paper finds "
    "that 'when the task diversity increases, a smooth transition to perfect "
    "generalization occurs' (main text, Fig. 4a), with P prompts each of its own task. "
    "At fixed P, with the prompts' tasks from a pool of K, does the ground state's "
    "contrast rise with K to its value without a pool, and which blocks of the disorder "
    "(fields A, B; couplings C, D, E) carry the pool?"
)
NOTES = [
    "Pools of K Gaussian tasks, a task drawn uniformly from the pool for each prompt (the "
    "paper's task law); K = 0 in the preset means no pool. The instances' factors are "
    "drawn from their exact law (spinglass_icl.diversity.sample_pool_factors); the ground "
    "state is the ridge minimizer at the paper's lam.",
    "Block laws: every entry of every instance pooled per block and K, histogrammed on "
    "bins fixed from the first no-pool chunk (0.1% / 99.9% quantiles plus two outer "
    "bins), KL in bits from the no-pool law; the noise floor is a second, independent "
    "no-pool sample (as Fig. S2).",
    "Run time: quick 10 s on the shared 2-core VM at load average 6-12. Paper preset "
    "(D = 20, P = 1000, 11 values of K and a floor sample x 100 instances) estimated at 2 "
    "minutes of CPU time (0.09 s per instance, measured).",
]
IN_PAPER = False

QUOTE = (
    "'when the task diversity increases, a smooth transition to perfect generalization "
    "occurs' (main text, on Fig. 4a)"
)

#: instances solved together per stored chunk
CHUNK = 10


def _instances(ctx: Context, K: int, seed: int, n: int):
    """``n`` instances at pool size K (0: none): their task configs and batched factors."""
    p = ctx.params
    cfgs, facs = [], []
    for j in range(n):
        task = TaskConfig(p.D, p.N, p.P, ctx.convention, 0.0, tasks=K or None,
                          pool_seed=_wrap(seed + 2 * j + 1))  # fmt: skip
        cfgs.append(task)
        facs.append(sample_pool_factors(task, _wrap(seed + 2 * j)))
    u = torch.stack([f.u for f in facs])
    q = torch.stack([f.q for f in facs])
    y = torch.stack([f.y for f in facs])
    return cfgs, u, q, y


def _blocks(cfgs, u, q, y, lam) -> dict[str, np.ndarray]:
    """Entries of the blocks A, B (fields) and C, D, E (couplings), per instance."""
    inst = Instance(u=u, q=q, y=y, lam=lam, config=cfgs[0])
    fb, cb = inst.field_blocks(), inst.coupling_blocks()
    n = u.shape[0]
    parts = {"A": fb.A.reshape(n, -1), "B": fb.B.reshape(n, -1), "C": cb.C, "D": cb.D,
             "E": cb.E}  # fmt: skip
    return {b: x.numpy() for b, x in parts.items()}


def compute(ctx: Context) -> xr.Dataset:
    """The figure's data (:func:`_compute`); its curves are stored in
    ``<out>/trials.sqlite`` as they finish (resumable)."""
    return record_attrs(_compute(ctx), files=["trials.sqlite"])


def _compute(ctx: Context) -> xr.Dataset:
    """Per K: contrast, e_ICL, e_IDG (mean, std over instances), block histograms and
    their KL from the no-pool law."""
    p = ctx.params
    R = p.instances
    n_chunks = -(-R // CHUNK)
    pilot = _instances(ctx, 0, figure_seed(ctx, "pilot", D=p.D, N=p.N, P=p.P), min(CHUNK, R))
    edges = block_edges(_blocks(*pilot, p.lam), p.bins)

    def chunked(purpose: str, K: int) -> dict[str, np.ndarray]:
        def f(seed, first, n):
            k = min(CHUNK, R - first * CHUNK)
            cfgs, u, q, y = _instances(ctx, K, seed, k)
            W = exact_weights(u, q, y, cfgs[0].prefactor, p.lam)
            c = contrast(W).numpy()
            icl = np.array([float(t.exact_test_error(W[j], "icl")) for j, t in enumerate(cfgs)])
            idg = np.array([float(t.exact_test_error(W[j], "idg")) for j, t in enumerate(cfgs)])
            out = {f"hist_{b}": np.histogram(x, edges[b])[0][None]
                   for b, x in _blocks(cfgs, u, q, y, p.lam).items()}  # fmt: skip
            for name, v in (("contrast", c), ("icl", icl), ("idg", idg)):
                out[f"{name}_s1"] = np.array([v.sum()])
                out[f"{name}_s2"] = np.array([(v * v).sum()])
            out["count"] = np.array([k])
            return out

        cfg = {"D": p.D, "N": p.N, "P": p.P, "K": K}
        extra = {"lam": p.lam, "instances": R, "per_chunk": CHUNK, "bins": p.bins}
        got = repeated(ctx, purpose, n_chunks, 1, cfg, f, extra=extra)
        return {k: v.sum(0) for k, v in got.items()}

    base = chunked("pool", 0)
    floor = chunked("floor", 0)
    Ks = list(p.K_list)
    nK = len(Ks)
    stats = {f"{s}_{m}": np.zeros(nK) for s in ("contrast", "icl", "idg") for m in ("mean", "std")}
    kl = np.zeros((nK, len(BLOCKS)))
    for i, K in enumerate(Ks):
        got = base if K == 0 else chunked("pool", K)
        n = float(got["count"])
        for s in ("contrast", "icl", "idg"):
            mu = got[f"{s}_s1"] / n
            stats[f"{s}_mean"][i] = mu
            stats[f"{s}_std"][i] = np.sqrt(max(got[f"{s}_s2"] / n - mu * mu, 0.0))
        other = floor if K == 0 else got
        kl[i] = [kl_bits(base[f"hist_{b}"], other[f"hist_{b}"]) for b in BLOCKS]
    fl = np.array([kl_bits(base[f"hist_{b}"], floor[f"hist_{b}"]) for b in BLOCKS])
    return xr.Dataset(
        {k: (("K",), v) for k, v in stats.items()}
        | {
            "kl": (("K", "block"), kl, {"long_name": "D_KL[P_no pool || P_K] (bits)"}),
            "floor": (("block",), fl, {"long_name": "KL of two independent no-pool samples"}),
            "kl_over_floor": (("K", "block"), kl / np.maximum(fl, 1e-12)),
        },
        coords={"K": Ks, "block": list(BLOCKS)},
        attrs={
            "D": p.D,
            "N": p.N,
            "P": p.P,
            "lam": p.lam,
            "instances": R,
            "bins": p.bins,
            "convention": ctx.convention,
            "K_zero_means": "no pool",
        },  # fmt: skip
    )


def _split(ds: xr.Dataset):
    """Finite pool sizes (sorted as given) and the no-pool index, if any."""
    Ks = [int(k) for k in ds["K"].values]
    fin = [i for i, k in enumerate(Ks) if k > 0]
    none = [i for i, k in enumerate(Ks) if k == 0]
    return Ks, fin, (none[0] if none else None)


def draw(ds: xr.Dataset):
    """Left: contrast against K (no pool as a dashed line); middle: e_ICL and e_IDG;
    right: each block's KL from the no-pool law (dotted: noise floors)."""
    fig, axes = new_figure(3, 1, width=4.3, height=3.8)
    Ks, fin, none = _split(ds)
    x = np.array([Ks[i] for i in fin], float)
    ax = axes[0][0]
    ax.errorbar(x, ds["contrast_mean"].values[fin], ds["contrast_std"].values[fin], fmt="o-",
                ms=4, capsize=2, color="0.35", label="contrast, pool of K tasks")  # fmt: skip
    if none is not None:
        ax.axhline(float(ds["contrast_mean"][none]), color="k", ls="--", lw=1, label="no pool")
    ax.set_xscale("log")
    ax.set_xlabel("pool size K")
    ax.set_ylabel("contrast of the ground state")
    ax.set_title(f"D = {ds.attrs['D']}, N = {ds.attrs['N']}, P = {ds.attrs['P']}")
    plain_log_axis(ax, "x")
    ax = axes[0][1]
    for c, (e, name) in enumerate((("icl", "e_ICL"), ("idg", "e_IDG"))):
        ax.errorbar(x, ds[f"{e}_mean"].values[fin], ds[f"{e}_std"].values[fin], fmt="o-",
                    ms=4, capsize=2, color=f"C{c}", label=name)  # fmt: skip
        if none is not None and e == "icl":
            ax.axhline(float(ds["icl_mean"][none]), color="k", ls="--", lw=1,
                       label="no pool")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("pool size K")
    ax.set_ylabel("test error of the ground state")
    ax.set_title("in-context and in-distribution")
    plain_log_axis(ax, "x")
    ax = axes[0][2]
    for c, b in enumerate(BLOCKS):
        ax.plot(x, ds["kl"].sel(block=b).values[fin], "o-", ms=4, color=f"C{c}",
                label=f"block {b}")  # fmt: skip
        ax.axhline(float(ds["floor"].sel(block=b)), color=f"C{c}", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("pool size K")
    ax.set_ylabel("D$_{KL}$[no pool || pool K] (bits)")
    ax.set_title("block laws; dotted: noise floor")
    plain_log_axis(ax, "x")
    handles, labels = [], []
    for a in axes[0]:
        h, lab = a.get_legend_handles_labels()
        for hh, ll in zip(h, lab, strict=True):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    fig.legend(handles, labels, loc="outside lower center", ncols=5)
    return fig


def claims(ds: xr.Dataset) -> list[Claim]:
    """The contrast rises with K toward its no-pool value; the pool's fingerprint in the
    block laws fades as K grows."""
    Ks, fin, none = _split(ds)
    c = ds["contrast_mean"].values
    i0 = min(fin, key=lambda i: Ks[i])
    i1 = max(fin, key=lambda i: Ks[i])
    out = []
    if none is not None:
        span = c[none] - c[i0]
        out.append(
            at_least(
                QUOTE + ", read with K as the task diversity at fixed P: the ground state's "
                "contrast rises with the pool size K to its value without a pool.",
                f"(C(K = {Ks[i1]}) - C(K = {Ks[i0]})) / (C(no pool) - C(K = {Ks[i0]})), "
                f"contrast C of the ground state, P = {ds.attrs['P']}",
                (c[i1] - c[i0]) / span if abs(span) > 1e-12 else float("nan"),
                agree=0.8,
                partly=0.5,
            )
        )
    r = ds["kl_over_floor"].values
    out.append(
        at_most(
            "The disorder of the spin glass forgets the pool as K grows: at the largest K "
            "every block's law is the no-pool one within the estimator's noise (our "
            "measurement; the paper's setting is K = None).",
            f"largest KL / noise floor over the blocks A-E at K = {Ks[i1]} "
            f"(at K = {Ks[i0]}: {np.nanmax(r[i0]):.3g})",
            float(np.nanmax(r[i1])),
            agree=3.0,
            partly=10.0,
        )
    )
    return out


def summarize(ds: xr.Dataset) -> tuple[dict, str]:
    Ks, fin, none = _split(ds)
    numbers: dict = {"K": Ks, "P": int(ds.attrs["P"]), "D": int(ds.attrs["D"])}
    for s in ("contrast", "icl", "idg"):
        numbers[f"{s}_mean"] = ds[f"{s}_mean"].values.tolist()
        numbers[f"{s}_std"] = ds[f"{s}_std"].values.tolist()
    for b in BLOCKS:
        numbers[f"kl_{b}"] = ds["kl"].sel(block=b).values.tolist()
        numbers[f"floor_{b}"] = float(ds["floor"].sel(block=b))
    c = numbers["contrast_mean"]
    i0, i1 = min(fin, key=lambda i: Ks[i]), max(fin, key=lambda i: Ks[i])
    r0 = ds["kl_over_floor"].values[i0]
    summary = (
        f"Contrast of the ground state at P = {numbers['P']}: {c[i0]:.3g} at K = {Ks[i0]}, "
        f"{c[i1]:.3g} at K = {Ks[i1]}"
        + (f", {c[none]:.3g} without a pool" if none is not None else "")
        + f"; e_ICL {numbers['icl_mean'][i0]:.3g} -> {numbers['icl_mean'][i1]:.3g}. "
        f"At K = {Ks[i0]} the block laws' KL / noise floor: "
        + ", ".join(f"{b} {v:.3g}" for b, v in zip(BLOCKS, r0, strict=True))
        + "."
    )
    return numbers, summary

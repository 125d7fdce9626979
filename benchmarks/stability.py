"""Benchmark of the AMP stability prediction (docs/amp-stability.md).

    python benchmarks/stability.py [--sections speed agreement closed] [--quick]

- ``speed``: :func:`spinglass_icl.amp_stability` vs :func:`spinglass_icl.solve` run to
  its verdict, on instances next to the boundary (the iteration needs many steps),
  interleaved (A, B, A, B), minimum of 3; columns: D, instance, solver iterations and
  status, predicted status, solve s, stability s, ratio.
- ``agreement``: predicted vs actual status on a grid around the boundary (D = 8, both
  AMP variants, dampings 0.5 and 0.9, tol 1e-6, max_iter 2000).
- ``closed``: the smallest P with a variance fixed point: the D -> inf limit
  (:func:`asymptotic_boundary`, P = pi_c D), the finite-D closed form
  (:func:`closed_form_boundary`, exact block moments) and the per-instance prediction (the
  P where half of 8 instances have one, 4 at D = 40, log-interpolated on a grid), for
  D = 10, 20, 40 and lam = 0.3, 1, 3.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
import warnings

import numpy as np
import torch

import spinglass_icl as sg
from spinglass_icl.solvers.amp import amp_operators
from spinglass_icl.solvers.stability import (
    _variance_fixed_point,
    asymptotic_boundary,
    closed_form_boundary,
)

warnings.simplefilter("ignore")


def speed(quick: bool) -> None:
    rows = [
        # (D, N, P, lam, solver, damping): next to the boundary, slow to converge or fail
        (10, 10, 60, 1.0, "amp-paper", 0.9),
        (10, 10, 60, 1.0, "amp", 0.9),
        (20, 20, 200, 1.0, "amp-paper", 0.9),
        (20, 5, 1600, 0.3, "amp", 0.9),
    ]
    if quick:
        rows = rows[:2]
    print(
        "| D | N | P | lam | solver | damping | solver status (iters) | predicted "
        "| solve s | stability s | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for D, N, P, lam, solver, d in rows:
        inst = sg.make_instance(D, N, P, lam, seed=0)
        _ = inst.gram
        ts, tp = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            res = sg.solve(inst, solver, beta=100.0, damping=d, tol=1e-6, max_iter=2000, warn=False)
            ts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            st = sg.amp_stability(inst, 100.0, solver=solver, damping=d, tol=1e-6, max_iter=2000)
            tp.append(time.perf_counter() - t0)
        pred = "converged" if bool(st.converges) else "not converged"
        print(
            f"| {D} | {N} | {P} | {lam:g} | {solver} | {d:g} | {res.status} ({res.n_iter}) | "
            f"{pred} (radius {float(st.radius):.4g}) | {min(ts):.3f} | {min(tp):.3f} | "
            f"{min(ts) / min(tp):.1f} |"
        )


def agreement(quick: bool) -> None:
    D, B = 8, 4
    lams = (0.5, 1.0, 3.0) if not quick else (1.0,)
    Ps = (8, 16, 32, 64, 128, 256)
    Ns = (2, 4, 8, 16, 32)
    print("| solver | damping | instances | agree | % | disagreements |")
    print("|---|---|---|---|---|---|")
    for solver in ("amp-paper", "amp"):
        for d in (0.5, 0.9):
            tot = agree = 0
            dis = []
            for lam in lams:
                for P in Ps:
                    for N in Ns:
                        inst = sg.make_instance(D, N, P, lam, seed=7 * P + N, batch_shape=(B,))
                        st = sg.amp_stability(inst, 100.0, solver=solver, damping=d, tol=1e-6)
                        r = sg.solve(inst, solver, beta=100.0, damping=d, tol=1e-6, warn=False)
                        for k in range(B):
                            tot += 1
                            if bool(st.converges[k]) == bool(r.converged[k]):
                                agree += 1
                            else:
                                dis.append(
                                    f"P={P} N={N} lam={lam:g}: {r.status[k]} ({int(r.n_iter[k])}),"
                                    f" radius {float(st.radius[k]):.3f}, pred. iters "
                                    f"{float(st.iterations[k]):.0f}"
                                )
            print(
                f"| {solver} | {d:g} | {tot} | {agree} | {100 * agree / tot:.1f} "
                f"| {'; '.join(dis) or '-'} |"
            )


def per_instance_P50(D: int, N: int, lam: float, P0: float, n_seeds: int) -> float:
    """P where half of n_seeds instances have a variance fixed point (log-interpolated)."""
    grid = np.unique(np.round(P0 * np.geomspace(0.25, 3.0, 15)).astype(int))
    fr = []
    for P in grid:
        inst = sg.make_instance(D, N, int(P), lam, seed=int(P), batch_shape=(n_seeds,))
        _, _, J2 = amp_operators(inst)
        _, conv, _, _, _, _ = _variance_fixed_point(J2, inst.lam_i, 100.0, 1e-6, 2000)
        fr.append(float(conv.double().mean()))
    fr = np.array(fr)
    above = np.nonzero(fr >= 0.5)[0]
    if len(above) == 0:
        return math.inf
    k = above[0]
    if k == 0:
        return float(grid[0])
    f0, f1 = fr[k - 1], fr[k]
    t = (0.5 - f0) / (f1 - f0)
    return float(np.exp(np.log(grid[k - 1]) + t * (np.log(grid[k]) - np.log(grid[k - 1]))))


def closed(quick: bool) -> None:
    Ds = (10, 20) if quick else (10, 20, 40)
    print(
        "| D | lam | N/D | asymptotic pi_c/D | closed form P_c/D^2 | per-instance P_50/D^2 "
        "| per-instance / closed form |"
    )
    print("|---|---|---|---|---|---|---|")
    for lam in (0.3, 1.0, 3.0):
        for D in Ds:
            for nu in (0.25, 1.0, 4.0):
                N = max(1, round(nu * D))
                Pc = closed_form_boundary(D, N, lam)
                P50 = per_instance_P50(D, N, lam, Pc, 8 if D < 40 else 4)
                print(
                    f"| {D} | {lam:g} | {nu:g} | {asymptotic_boundary(N / D, lam) / D:.4g} "
                    f"| {Pc / D**2:.4g} | {P50 / D**2:.4g} | {P50 / Pc:.2f} |"
                )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sections", nargs="+", default=["speed", "agreement", "closed"])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    for s in args.sections:
        print(f"\n## {s}\n")
        {"speed": speed, "agreement": agreement, "closed": closed}[s](args.quick)


if __name__ == "__main__":
    main()

"""Benchmark of the AMP stability prediction (docs/amp-stability.md).

    python benchmarks/stability.py [--sections speed agreement closed] [--quick]

- ``speed``: :func:`spinglass_icl.amp_stability` vs :func:`spinglass_icl.solve` run to
  its verdict, on instances next to the boundary where the solver needs 600-1800
  iterations (``SPEED_ROWS``; D = 10, 20, 40, both variants), interleaved (A, B, A, B),
  minimum of 3; columns: D, n = (D+1)^2 spins, P, instance, solver, damping, solver
  status and iterations, predicted status, iterations and radius, solve s, stability s,
  ratio. ``--quick`` drops D = 40.
- ``eig``: the eigenvalue step alone on the speed rows' ``M`` (D = 20, 40): full
  ``torch.linalg.eigvalsh`` vs :func:`extreme_eigenvalues` (Lanczos from n = 1000 on,
  residual bound 1e-10), the Lanczos steps (counted at every n), errors and one matvec.
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
from spinglass_icl.solvers import DenseOperators
from spinglass_icl.solvers.stability import (
    _variance_fixed_point,
    asymptotic_boundary,
    closed_form_boundary,
    extreme_eigenvalues,
)

warnings.simplefilter("ignore")


#: near-boundary instances: make_instance(D, N = D, P, lam = 1, seed=0, batch_shape=(B,))[k],
#: found by scanning P at damping 0.9 for the first instances whose predicted
#: iteration count is 600-1800 (amp-paper) or that sit next to the variance boundary
#: (amp; its damped radius there is ~0.91 at damping 0.9, so 0.95 is used)
SPEED_ROWS = [
    # (D, P, B, k, solver, damping)
    (10, 70, 8, 7, "amp-paper", 0.9),
    (10, 70, 8, 7, "amp", 0.95),
    (20, 121, 8, 3, "amp-paper", 0.9),
    (20, 150, 8, 5, "amp", 0.95),
    (40, 200, 4, 0, "amp-paper", 0.9),
    (40, 165, 4, 3, "amp", 0.95),
]


def speed(quick: bool) -> None:
    rows = [r for r in SPEED_ROWS if r[0] < 40] if quick else SPEED_ROWS
    print(
        "| D | n | P | instance | solver | damping | solver status (iters) | predicted "
        "(iters, radius) | solve s | stability s | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for D, P, B, k, solver, d in rows:
        inst = sg.make_instance(D, D, P, 1.0, seed=0, batch_shape=(B,))[k]
        _ = inst.gram
        n = inst.gram.shape[-1]
        ts, tp = [], []
        for _ in range(3):  # interleaved A, B, A, B
            t0 = time.perf_counter()
            res = sg.solve(inst, solver, beta=100.0, damping=d, tol=1e-6, max_iter=2000, warn=False)
            ts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            st = sg.amp_stability(inst, 100.0, solver=solver, damping=d, tol=1e-6, max_iter=2000)
            tp.append(time.perf_counter() - t0)
        pred = "converged" if bool(st.converges) else "not converged"
        print(
            f"| {D} | {n} | {P} | seed 0, [{k}] of {B} | {solver} | {d:g} | {res.status} "
            f"({res.n_iter}) | {pred} ({float(st.iterations):.0f}, {float(st.radius):.4f}) "
            f"| {min(ts):.3f} | {min(tp):.4f} | {min(ts) / min(tp):.1f} |"
        )


def lanczos_extremes(M: torch.Tensor, rtol: float = 1e-10, check: int = 10):
    """The Lanczos of :func:`extreme_eigenvalues` (same start and stopping rule, one
    instance, no step budget), written out to count its steps. Returns (min, max, steps)."""
    n = M.shape[-1]
    q = torch.randn(n, dtype=M.dtype, generator=torch.Generator().manual_seed(0))
    Q = torch.empty(n + 1, n, dtype=M.dtype)
    Q[0] = q / q.norm()
    al, be = [], []
    for k in range(n):
        w = M @ Q[k]
        al.append(float(w @ Q[k]))
        Qk = Q[: k + 1]
        for _ in range(2):
            w = w - Qk.T @ (Qk @ w)
        b = float(w.norm())
        be.append(b)
        Q[k + 1] = w / max(b, 1e-300)
        if (k + 1) % check == 0 or k + 1 == n:
            T = torch.diag(torch.tensor(al, dtype=M.dtype))
            off = torch.tensor(be[:-1], dtype=M.dtype)
            T = T + torch.diag(off, 1) + torch.diag(off, -1)
            th, Y = torch.linalg.eigh(T)
            r = b * Y[-1].abs()
            if max(float(r[0]), float(r[-1])) <= rtol * float(th.abs().max()):
                break
    return float(th[0]), float(th[-1]), k + 1


def mean_matrix(inst, solver: str) -> torch.Tensor:
    """M = W^1/2 K W^1/2 at the variance fixed point (docs/amp-stability.md, eq. 34a)."""
    ops = DenseOperators.of(inst)
    G, J2 = ops.gram, ops.j2
    v = _variance_fixed_point(J2, inst.lam_i, 100.0, 1e-6, 2000)[0]
    w = 100.0 * v
    diag = torch.full_like(w, inst.lam)
    if solver == "amp-paper":
        diag = diag - 100.0 * (J2 @ v)
    K = G + torch.diag(diag)
    sw = w.sqrt()
    return sw.unsqueeze(-1) * K * sw.unsqueeze(-2)


def eig(quick: bool) -> None:
    rows = [r for r in SPEED_ROWS if r[0] >= 20] if not quick else SPEED_ROWS[2:4]
    print(
        "| D | n | solver | eigvalsh s | extreme_eigenvalues s | ratio | Lanczos steps "
        "| rel. error min / max | one matvec s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for D, P, B, k, solver, _ in rows:
        inst = sg.make_instance(D, D, P, 1.0, seed=0, batch_shape=(B,))[k]
        M = mean_matrix(inst, solver)
        te, tl = [], []
        for _ in range(2):
            t0 = time.perf_counter()
            mu = torch.linalg.eigvalsh(M)
            te.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            lo, hi = map(float, extreme_eigenvalues(M))
            tl.append(time.perf_counter() - t0)
        steps = lanczos_extremes(M)[2]
        x = torch.randn(M.shape[-1], dtype=M.dtype)
        t0 = time.perf_counter()
        for _ in range(20):
            M @ x
        tm = (time.perf_counter() - t0) / 20
        e0 = abs(lo - float(mu[0])) / float(mu[-1])
        e1 = abs(hi - float(mu[-1])) / float(mu[-1])
        print(
            f"| {D} | {M.shape[-1]} | {solver} | {min(te):.4f} | {min(tl):.4f} "
            f"| {min(te) / min(tl):.1f} | {steps} "
            f"| {e0:.1e} / {e1:.1e} | {tm:.5f} |"
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
        J2 = DenseOperators.of(inst).j2
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
    ap.add_argument("--sections", nargs="+", default=["speed", "eig", "agreement", "closed"])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    for s in args.sections:
        print(f"\n## {s}\n")
        {"speed": speed, "eig": eig, "agreement": agreement, "closed": closed}[s](args.quick)


if __name__ == "__main__":
    main()

"""Benchmark of the task-diversity curve: exact ground state, e_ICL and e_IDG per pool size.

    python benchmarks/task_diversity.py [--D 32 64] [--averages 20] [--ref-instances 2]

For each D: alpha = N/D = 10, tau = P/D^2 = 10, noise 0.1 (rho = 0.01), lam = 1e-6,
``normalized`` convention, sphere-normalized pools with equal repetition (Lu et al.'s
setting), 12 pool sizes K = kappa D for kappa in 0.2 ... 32. Columns:

- ``ours``: :func:`spinglass_icl.diversity.task_diversity` with ``solver="exact"`` and no
  baselines: the whole curve (12 K x ``--averages`` instances: sampling, exact ground
  state, closed-form e_ICL and e_IDG), wall seconds;
- ``ours/inst``: that divided by the number of instances;
- ``numpy/inst``: a straightforward float64 NumPy implementation of the same
  computation, per instance: draw the P full prompts, form their ``D (D+1)`` features,
  the dense normal equations ``F^T F / P + lam I`` and solve them, then the closed-form
  errors; timed on ``--ref-instances`` instances (it is too slow to run the whole curve)
  and extrapolated (``numpy (est.)``) to the curve (``--ref-instances 0`` skips it);
- ``speedup``: numpy/inst over ours/inst;
- ``|dW|``: max relative difference of W between our solver and the NumPy one on the
  same factors (the NumPy instance's), a correctness check;
- ``cpu s``: the process's CPU seconds for ``ours`` (all threads; with ``--threads 1``
  a load-independent measure of the work, where a shared machine inflates wall time);
- ``load``: the 1-minute load average when the row started.

``--precision double`` times the float64 CG instead of the default mixed precision.

The machine may be shared: read the times as rough, and see the load average printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from spinglass_icl.diversity import exact_weights, task_diversity
from spinglass_icl.tasks import TaskConfig

KAPPAS = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.6, 2.0, 4.0, 8.0, 16.0, 32.0)
NOISE, LAM, CONV = 0.1, 1e-6, "normalized"


def pool_sizes(D: int) -> list[int]:
    return sorted({max(1, round(k * D)) for k in KAPPAS})


def numpy_instance(D: int, N: int, P: int, K: int, seed: int):
    """A straightforward NumPy exact solution of one instance: returns (W, u, q, y, pool)."""
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal((K, D))
    pool *= np.sqrt(D) / np.linalg.norm(pool, axis=1, keepdims=True)
    w = pool[np.arange(P) % K]
    s = 1 / np.sqrt(D)
    x = rng.standard_normal((P, N + 1, D))
    y = s * np.einsum("pnd,pd->pn", x, w) + NOISE * rng.standard_normal((P, N + 1))
    u = np.concatenate([(y[:, :N, None] * x[:, :N]).sum(1), (y[:, :N] ** 2).sum(1)[:, None]], 1)
    q = x[:, N]
    c = 1 / N
    F = (c * u[:, :, None] * q[:, None, :]).reshape(P, -1)  # (P, (D+1) D)
    A = F.T @ F / P + LAM * np.eye(F.shape[1])
    b = F.T @ y[:, N] / P
    Wa = np.linalg.solve(A, b).reshape(D + 1, D)
    W = np.zeros((D + 1, D + 1))
    W[:, :D] = Wa
    # closed-form e_ICL (fresh sphere tasks) and e_IDG (pool moments), as in the package
    cfg = TaskConfig(D, N, P, CONV, NOISE, tasks=K, task_norm="sphere")
    Wt = torch.from_numpy(W)
    _ = cfg.exact_test_error(Wt, "icl"), cfg.exact_test_error(Wt, "idg")
    qq = np.concatenate([q, np.zeros((P, 1))], 1)
    return W, u, qq, y[:, N]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--D", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--averages", type=int, default=20)
    ap.add_argument("--ref-instances", type=int, default=2)
    ap.add_argument("--precision", choices=("mixed", "double"), default="mixed")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    head = (
        "D",
        "K values",
        "inst",
        "ours s",
        "ours/inst",
        "numpy/inst",
        "numpy (est.)",
        "speedup",
        "|dW|",
        "cpu s",
        "load",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for D in args.D:
        N, P = 10 * D, 10 * D * D
        Ks = pool_sizes(D)
        n_inst = len(Ks) * args.averages
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        task_diversity(
            D, N, P, Ks, noise=NOISE, lam=LAM, convention=CONV, task_norm="sphere",
            assignment="equal", averages=args.averages, seed=0, baselines=False,
            precision=args.precision,
        )  # fmt: skip
        ours, cpu = time.perf_counter() - t0, time.process_time() - c0
        ref_t, dw = [], 0.0
        for j in range(args.ref_instances):
            t1 = time.perf_counter()
            W, u, q, y = numpy_instance(D, N, P, Ks[j % len(Ks)], seed=j)
            ref_t.append(time.perf_counter() - t1)
            T = torch.from_numpy
            Wo = exact_weights(
                T(u)[None], T(q)[None], T(y)[None], 1 / N, LAM, precision=args.precision
            )[0].numpy()
            dw = max(dw, float(np.abs(Wo - W).max() / np.abs(W).max()))
        if not ref_t:  # the reference skipped (too large)
            print(
                f"| {D} | {len(Ks)} | {n_inst} | {ours:.1f} | {ours / n_inst:.3f} | - | - | - | - "
                f"| {cpu:.1f} | {load:.1f} |",
                flush=True,
            )
            continue
        per_ref = float(np.mean(ref_t))
        print(
            f"| {D} | {len(Ks)} | {n_inst} | {ours:.1f} | {ours / n_inst:.3f} | {per_ref:.2f} "
            f"| {per_ref * n_inst:.0f} | {per_ref / (ours / n_inst):.1f}x | {dw:.1e} "
            f"| {cpu:.1f} | {load:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

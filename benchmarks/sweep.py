"""Sweep throughput and the largest D. Prints markdown tables.

Fig. 4a grid (docs/experiments.md#fig-4a): D = 40, lam = 10, beta = 100, AMP (damping 0.9, tol
1e-6), 20 x 20 points x 10 repeats with P/D^2 in [0.05, 2.5] and N/D in [0.1, 5] (the ranges of
the authors' D = 20 data, P in [20, 1000], N in [2, 100]); here P in [80, 4000] and
N in [4, 200]. On a small CPU the whole grid (4000 solves of 1681 spins) takes too long
for every mode, so each mode runs a subset -- by default all 20 P values at one N
(index 5, N = 56) with 3 repeats, 60 rows -- and the full-grid time is extrapolated as
``rows_in_grid / (rows per second)`` x (grid mean P / subset mean P) -- marked
"extrapolated" (the cost of a row grows with N only through drawing the prompts).

Modes: ``loop`` (per-instance core ``solve``, serial, 1 thread), ``batched`` (same-shape
instances stacked, the factor-based AMP kernel, serial, 1 thread), ``batched-mixed``
(the same with its dense matrices and factor products in float32, the rest float64:
agrees to ~1e-7, not bit-identical), ``batched-float32`` (all float32: stalls near a
residual of 1e-6, so at tol 1e-6 it mostly hits max_iter; not run unless named),
``local`` / ``local+batched`` (process pool, one process per core), and the *nested*
modes, which run the same grid with ``nested_p = true`` (each repeat's prompts shared
across P, couplings accumulated over P): ``loop-nested`` (the per-instance loop on that
spec: same cost as ``loop``; not run unless named), ``nested`` (the chain kernel,
float64, the same numbers as ``loop-nested`` to rounding, tested), ``nested-mixed``,
``local+nested`` and ``local+nested-mixed``. With CUDA: ``cuda`` float64 / float32
batched, ``cuda-nested`` and ``cuda-nested-mixed``.
Every mode writes a real SQLite store (end-to-end timing). With ``--rounds R`` the modes
run interleaved R times (loop, batched, ..., loop, batched, ...) and the table gives
medians, and the speed-up as the median (min-max) of the per-round ratios: on a shared
machine the load changes between runs, and ratios within a round are what compares.

Large D: the matrix-free exact mean (PCG) at D = 200 (40 401 spins), P = 2 D^2, N = 100,
in a subprocess whose peak RSS is reported; the dense couplings would need 13 GB (J)
+ 13 GB (J^2).

    python benchmarks/sweep.py                       # default subset, CPU, and D = 200
    python benchmarks/sweep.py --quick               # tiny smoke run
    python benchmarks/sweep.py --large-D 0 --rounds 2          # the table in RESULTS.md
    python benchmarks/sweep.py --p-idx 2 9 16 --repeats 10 --modes loop batched
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spinglass_icl.sweep import SweepSpec, run_sweep

MODES = (
    "loop",
    "batched",
    "batched-mixed",
    "batched-float32",
    "local",
    "local+batched",
    "loop-nested",
    "nested",
    "nested-mixed",
    "local+nested",
    "local+nested-mixed",
    "cuda",
    "cuda-float32",
    "cuda-nested",
    "cuda-nested-mixed",
)
#: what each nested mode runs, on the spec with ``nested_p = true``
NESTED_BASE = {
    "loop-nested": "loop",
    "nested": "batched",
    "nested-mixed": "batched-mixed",
    "local+nested": "local+batched",
    "local+nested-mixed": "local+batched-mixed",
    "cuda-nested": "cuda",
    "cuda-nested-mixed": "cuda-mixed",
}
#: modes run by default on the CPU (the others only when named)
DEFAULT_MODES = (
    "loop",
    "batched",
    "batched-mixed",
    "nested",
    "nested-mixed",
    "local+nested",
    "local+nested-mixed",
)


def fig4a_axes(D: int, n: int = 20) -> tuple[list[int], list[int]]:
    """P and N values of the Fig. 4a grid at dimension D (n values each)."""
    P = sorted({int(round(x * D * D)) for x in np.linspace(0.05, 2.5, n)})
    N = sorted({max(1, int(round(x * D))) for x in np.linspace(0.1, 5.0, n)})
    return P, N


def run_mode(mode: str, spec: SweepSpec, workers: int) -> dict:
    kw: dict = {"progress": False}
    if "nested" in mode:  # the same grid with nested task diversity (nested_p)
        spec = dataclasses.replace(spec, nested_p=True)
        mode = NESTED_BASE[mode]
    if mode == "loop":
        kw.update(executor="serial", batched=False, threads=1)
    elif mode == "batched":
        kw.update(executor="serial", batched=True, threads=1)
    elif mode == "batched-mixed":
        kw.update(executor="serial", batched=True, threads=1, dtype="mixed")
    elif mode == "batched-float32":
        kw.update(executor="serial", batched=True, threads=1, dtype="float32")
    elif mode == "local":
        kw.update(executor="local", batched=False, workers=workers)
    elif mode == "local+batched":
        kw.update(executor="local", batched=True, workers=workers)
    elif mode == "cuda":
        kw.update(executor="serial", batched=True, device="cuda")
    elif mode == "cuda-float32":
        kw.update(executor="serial", batched=True, device="cuda", dtype="float32")
    elif mode == "cuda-mixed":
        kw.update(executor="serial", batched=True, device="cuda", dtype="mixed")
    elif mode == "local+batched-mixed":
        kw.update(executor="local", batched=True, workers=workers, dtype="mixed")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = run_sweep(spec, Path(tmp) / "bench.sqlite", **kw)
        if mode.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        rows = store.rows()
        store.close()
    conv = sum(r["converged"] for r in rows)
    return {"mode": mode, "rows": len(rows), "seconds": seconds, "converged": conv}


LARGE_D_CODE = r"""
import json, resource, sys, time
import torch
from spinglass_icl.solvers.matfree import make_lowrank_instance, solve_cg
D, N, ratio, lam = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
sampler = sys.argv[5]
P = int(round(ratio * D * D))
t0 = time.perf_counter()
inst = make_lowrank_instance(D, N, P, lam, seed=0, chunk=256, sampler=sampler)
t1 = time.perf_counter()
res = solve_cg(inst, tol=1e-8)
t2 = time.perf_counter()
r = (inst.hessian_matvec(res.m) - inst.fields).norm() / inst.fields.norm()
print(json.dumps({"D": D, "N": N, "P": P, "spins": (D + 1) ** 2, "lam": lam, "sampler": sampler,
    "status": res.status, "cg_iter": res.n_iter, "rel_residual": float(r),
    "sample_s": t1 - t0, "solve_s": t2 - t1,
    "peak_rss_GB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def large_d(D: int, N: int, ratio: float, lam: float, sampler: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", LARGE_D_CODE, str(D), str(N), str(ratio), str(lam), sampler],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--D", type=int, default=40)
    ap.add_argument("--lam", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--p-idx",
        type=int,
        nargs="+",
        default=[-1],
        help="P indices (0-19); -1 (default): all 20, which nested modes need to pay off",
    )
    ap.add_argument("--n-idx", type=int, nargs="+", default=[5], help="N indices (0-19)")
    ap.add_argument("--modes", nargs="+", default=None, help=f"subset of {MODES}")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--test-tasks", type=int, default=2000)
    ap.add_argument(
        "--test-error", default="exact", choices=("exact", "mc"), help="the spec's test_error"
    )
    ap.add_argument("--rounds", type=int, default=1, help="interleaved repetitions of all modes")
    ap.add_argument(
        "--sampler",
        default="prompts",
        choices=("prompts", "factors"),
        help="the spec's sampler (every mode)",
    )
    ap.add_argument("--large-D", type=int, default=200, help="0 to skip the large-D run")
    ap.add_argument("--large-ratio", type=float, default=2.0, help="P / D^2 of the large-D run")
    ap.add_argument("--large-N", type=int, default=100)
    ap.add_argument(
        "--large-samplers",
        nargs="+",
        default=["factors", "prompts"],
        help="how the large-D instance is drawn (SweepSpec.sampler values)",
    )
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = ap.parse_args()
    if args.quick:
        args.D, args.repeats, args.p_idx, args.n_idx = 10, 2, [2, 9], [5]
        args.large_D = min(args.large_D, 30)  # --large-D 0 still skips it
        args.test_tasks = 500
    modes = args.modes or [
        *DEFAULT_MODES,
        *(
            ("cuda", "cuda-float32", "cuda-nested", "cuda-nested-mixed")
            if torch.cuda.is_available()
            else ()
        ),
    ]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"unknown mode(s) {bad}; choose from {', '.join(MODES)}")
    if args.p_idx == [-1]:
        args.p_idx = list(range(20))
    Ps, Ns = fig4a_axes(args.D)
    grid = {"P": [Ps[i] for i in args.p_idx], "N": [Ns[i] for i in args.n_idx]}
    spec = SweepSpec(
        grid=grid,
        fixed={"D": args.D, "lam": args.lam, "beta": 100.0, "solver": "amp"},
        repeats=args.repeats,
        seed=0,
        solver_options={"damping": 0.9, "tol": 1e-6, "max_iter": 2000},
        test_tasks=args.test_tasks,
        test_error=args.test_error,
        sampler=args.sampler,
    )
    full_rows = len(Ps) * len(Ns) * 10  # the Fig. 4a grid: 20 x 20 points x 10 repeats
    print(
        f"# sweep benchmark  {platform.node()}  {os.cpu_count()} CPUs  torch "
        f"{torch.__version__}  cuda={torch.cuda.is_available()}"
    )
    print(
        f"Fig. 4a grid at D={args.D}, lam={args.lam:g}, beta=100, amp (damping 0.9, tol 1e-6): "
        f"P in {Ps[0]}..{Ps[-1]}, N in {Ns[0]}..{Ns[-1]}, {full_rows} rows in the full grid"
    )
    print(
        f"measured subset: P={grid['P']} (mean {np.mean(grid['P']):.0f}; grid mean "
        f"{np.mean(Ps):.0f}), N={grid['N']}, repeats={args.repeats}: {spec.n_tasks} rows; "
        f"sampler {args.sampler}; "
        f"test error {args.test_error}; {args.rounds} interleaved round(s)\n"
    )
    results: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            results[mode].append(run_mode(mode, spec, args.workers))
    print(
        "| mode | rows | seconds | rows/s | speed-up vs loop (per-round range) "
        "| full grid (extrapolated) |"
    )
    print("|---|---|---|---|---|---|")
    scale = np.mean(Ps) / np.mean(grid["P"])  # cost ~ linear in P
    for mode in modes:
        rs = results[mode]
        rates = [r["rows"] / r["seconds"] for r in rs]
        rate = float(np.median(rates))
        if "loop" in results:
            ratios = [a / (b["rows"] / b["seconds"]) for a, b in zip(rates, results["loop"])]
            sp = f"{np.median(ratios):.2f}x"
            if len(ratios) > 1:
                sp += f" ({min(ratios):.2f}-{max(ratios):.2f})"
        else:
            sp = "-"
        full = full_rows / rate * scale
        conv = min(r["converged"] for r in rs)
        secs = float(np.median([r["seconds"] for r in rs]))
        print(
            f"| {mode} | {rs[0]['rows']} ({conv} conv.) | {secs:.1f} | {rate:.3f} | {sp} | "
            f"{full / 60:.1f} min |",
            flush=True,
        )
    if args.large_D:
        print("\nLarge D, matrix-free exact mean (PCG, Jacobi preconditioner, tol 1e-8):\n")
        print(
            "| D | spins | P | N | lam | sampler | CG iterations | sample s | solve s | peak RSS |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for sampler in args.large_samplers:
            r = large_d(args.large_D, args.large_N, args.large_ratio, 1.0, sampler)
            print(
                f"| {r['D']} | {r['spins']} | {r['P']} | {r['N']} | {r['lam']:g} | {sampler} | "
                f"{r['cg_iter']} ({r['status']}, residual {r['rel_residual']:.1e}) | "
                f"{r['sample_s']:.1f} | {r['solve_s']:.1f} | {r['peak_rss_GB']:.2f} GB |",
                flush=True,
            )
        dense = 2 * r["spins"] ** 2 * 8 / 1e9
        print(f"\n(dense J and J^2 in float64 would need {dense:.1f} GB)")


if __name__ == "__main__":
    main()

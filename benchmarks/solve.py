"""Benchmark of the core: build couplings and solve (AMP, exact) for D = 10, 20, 40, 80.

    python benchmarks/solve.py [--D 10 20 40 80] [--repeat 3] [--no-float32] [--clock cpu]
                               [--blas-spin]

For each D: N = D, P = 2 D^2, n = (D+1)^2 spins, one instance (seed 0) in the
``authors`` convention with lam = 1 and beta = 100, AMP with the Onsager term, damping
0.5 (at N = D and small lam AMP does not converge in the authors convention; lam = 1
converges for every D here). Columns:

- ``build``: ``Instance.gram``, ``fields`` and ``lam_i`` from the features (eq. 5);
- ``amp``: :func:`spinglass_icl.solve` with ``"amp"`` (forms ``J^2`` and iterates);
- ``exact``: Cholesky mean and variances (docs/solvers.md#exact);
- ``numpy build`` / ``numpy amp``: :mod:`numpy_reference`, a straightforward float64
  NumPy implementation of the same equations (same instance, init, damping, tolerance);
- ``speedup``: numpy amp / torch amp (float64 rows), the target was >= 2 at D=80;
- ``|dm|``: max relative difference of the AMP means, torch vs NumPy (float64), or
  torch float32 vs float64.

float32 rows use tol = 1e-5 (1e-8 is below float32 resolution). Times are the minimum
over ``--repeat`` runs, torch and NumPy interleaved; the machine may be shared, so read
them as rough. ``--clock cpu`` times the process's CPU seconds (all threads) instead of
the wall clock: the work done, which other jobs on a shared machine disturb far less.
"""

from __future__ import annotations

# before NumPy: OpenBLAS reads its thread wait when it loads (benchmarks/openblas_wait.py)
from openblas_wait import add_flag, blas_line

# isort: split

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy_reference as ref  # noqa: E402

from spinglass_icl import solve  # noqa: E402
from spinglass_icl.hamiltonian import make_instance  # noqa: E402

LAM, BETA, DAMPING, TOL64, TOL32 = 1.0, 100.0, 0.5, 1e-8, 1e-5


CLOCK = time.perf_counter


def timed(fn):
    t0 = CLOCK()
    out = fn()
    return CLOCK() - t0, out


def build_torch(inst, device, dtype):
    """Copy the features to (device, dtype) and build ``G``, ``h``, ``lam_i`` (eq. 5)."""
    fresh = inst.to(device=device, dtype=dtype)
    _ = fresh.gram, fresh.fields, fresh.lam_i
    if device.type == "cuda":
        torch.cuda.synchronize()
    return fresh


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_D(D, configs, repeat):
    """Times of one D: numpy and every torch config, AMP runs interleaved, min over repeats.

    Building the couplings and the exact solve are repeated only while cheap (n < 2000).
    """
    inst = make_instance(D, D, 2 * D * D, LAM, seed=0)
    S, y = inst.s.numpy(), inst.y.numpy()
    n_build = repeat if inst.n < 2000 else 1
    np_times = []
    for _ in range(n_build):
        t, (J, h, lam_i) = timed(lambda: ref.couplings(S, y, LAM))
        np_times.append(t)
    t_np_build = min(np_times)
    built, t_build = {}, {}
    for cfg in configs:
        times = []
        for _ in range(n_build):
            t, built[cfg] = timed(lambda cfg=cfg: build_torch(inst, *cfg))
            times.append(t)
        t_build[cfg] = min(times)
    t_np, t_amp, t_exact, res = [], {c: [] for c in configs}, {c: [] for c in configs}, {}
    np_res = None
    for rep in range(repeat):
        t, np_res = timed(lambda: ref.amp(J, h, lam_i, BETA, damping=DAMPING, tol=TOL64))
        t_np.append(t)
        for cfg in configs:
            tol = TOL64 if cfg[1] == torch.float64 else TOL32
            inst_c = built[cfg]

            def run_amp(inst_c=inst_c, tol=tol, dev=cfg[0]):
                r = solve(inst_c, "amp", beta=BETA, damping=DAMPING, tol=tol)
                sync(dev)
                return r

            t, res[cfg] = timed(run_amp)
            t_amp[cfg].append(t)

            def run_exact(inst_c=inst_c, dev=cfg[0]):
                r = solve(inst_c, "exact", beta=BETA)
                sync(dev)
                return r

            if rep < n_build:  # the O(n^3) exact solve once for large n
                t_exact[cfg].append(timed(run_exact)[0])
    rows = []
    m64 = None
    for cfg in configs:
        device, dtype = cfg
        r = res[cfg]
        m = r.m.double().cpu().numpy()
        it = int(r.n_iter)
        ta = min(t_amp[cfg])
        if dtype == torch.float64:
            dm = np.abs(m - np_res.m).max() / np.abs(np_res.m).max()
            assert np_res.status == "converged" and r.status == "converged", (np_res, r.status)
            assert it == np_res.n_iter, (it, np_res.n_iter)
            assert dm < 1e-10, dm
            if device.type == "cpu":
                m64 = m
            extra = (
                f"{t_np_build:>13.3f} | {min(t_np):>11.3f} | {min(t_np) / ta:>7.2f} | {dm:>8.1e}"
            )
        else:
            dm = np.abs(m - m64).max() / np.abs(m64).max() if m64 is not None else float("nan")
            extra = f"{'':>13} | {'':>11} | {'':>7} | {dm:>8.1e}"
        dt = str(dtype).replace("torch.", "")
        rows.append(
            f"| {D:>3} | {inst.n:>5} | {inst.P:>6} | {device.type:>6} | {dt:>7} | "
            f"{t_build[cfg]:>8.3f} | {ta:>7.3f} | {it:>5} | {min(t_exact[cfg]):>8.3f} | {extra} |"
        )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--D", type=int, nargs="+", default=[10, 20, 40, 80])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-float32", action="store_true")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    add_flag(p)
    args = p.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    dtypes = [torch.float64] + ([] if args.no_float32 else [torch.float32])
    print(
        f"# solve benchmark: authors convention, N = D, P = 2 D^2, lam = {LAM:g}, beta = {BETA:g}, "
        f"damping = {DAMPING}, tol = {TOL64:g} (float64) / {TOL32:g} (float32)"
    )
    print(
        f"# torch {torch.__version__}, numpy {np.__version__}, "
        f"{platform.processor() or platform.machine()}, "
        f"torch threads {torch.get_num_threads()}, repeat {args.repeat} (min), "
        f"{args.clock} clock, {blas_line()}"
    )
    head = (
        f"| {'D':>3} | {'spins':>5} | {'P':>6} | {'device':>6} | {'dtype':>7} | {'build s':>8} | "
        f"{'amp s':>7} | {'iters':>5} | {'exact s':>8} | {'numpy build s':>13} | "
        f"{'numpy amp s':>11} | "
        f"{'speedup':>7} | {'rel dm':>8} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    configs = [(dev, dt) for dev in devices for dt in dtypes]
    for D in args.D:
        for row in bench_D(D, configs, args.repeat):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

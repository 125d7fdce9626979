"""The dense AMP solve with each matrix-vector kernel, beside the NumPy reference.

    python benchmarks/amp_kernels.py [--D 40 80] [--repeat 5] [--blas-spin]

Same instance and settings as benchmarks/solve.py (authors convention, N = D,
P = 2 D^2, lam = 1, beta = 100, damping 0.5, tol 1e-8, AMP with the Onsager term).
Columns: ``row`` is :func:`spinglass_icl.solve` with the general (row) product for
``G m`` and ``J^2 v`` (what the dense AMP used before the symmetric kernel), ``symv``
with the symmetric BLAS product (one triangle read) taking the two products in turn,
``pair`` the two ``symv`` at once on two threads (what the dense operators use on the
CPU when torch may use two threads), ``numpy`` the reference of :mod:`numpy_reference`.
They run interleaved in one process, minimum over ``--repeat`` runs, so a shared machine
disturbs them alike; every run is checked to take the reference's iterations and give its
mean to 1e-10.
"""

from __future__ import annotations

# before NumPy: OpenBLAS reads its thread wait when it loads (benchmarks/openblas_wait.py)
from openblas_wait import add_flag, blas_line

# isort: split

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy_reference as ref  # noqa: E402

import spinglass_icl.solvers.operators as ops_module  # noqa: E402
from spinglass_icl import solve  # noqa: E402
from spinglass_icl.hamiltonian import make_instance  # noqa: E402


def bench(D: int, repeat: int) -> str:
    inst = make_instance(D, D, 2 * D * D, 1.0, seed=0)
    _ = inst.gram, inst.fields, inst.lam_i
    J, h, lam_i = ref.couplings(inst.s.numpy(), inst.y.numpy(), 1.0)
    kernel, paired = ops_module.symv_kernel, ops_module.DenseOperators.amp_products
    in_turn = ops_module.Operators.amp_products
    variants = {
        "row": (lambda M: None, in_turn),
        "symv": (kernel, in_turn),
        "pair": (kernel, paired),
    }
    best = dict.fromkeys(("numpy", *variants), np.inf)
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = ref.amp(J, h, lam_i, 100.0, damping=0.5, tol=1e-8)
            best["numpy"] = min(best["numpy"], time.perf_counter() - t0)
            for name, (k, products) in variants.items():
                ops_module.symv_kernel, ops_module.DenseOperators.amp_products = k, products
                t0 = time.perf_counter()
                res = solve(inst, "amp", damping=0.5, tol=1e-8)
                best[name] = min(best[name], time.perf_counter() - t0)
                dm = np.abs(res.m.numpy() - r.m).max() / np.abs(r.m).max()
                assert int(res.n_iter) == r.n_iter and dm < 1e-10, (name, dm)
    finally:
        ops_module.symv_kernel, ops_module.DenseOperators.amp_products = kernel, paired
    t = best
    return (
        f"| {D:>3} | {inst.n:>5} | {r.n_iter:>5} | {t['row']:>7.3f} | {t['symv']:>7.3f} | "
        f"{t['pair']:>7.3f} | {t['numpy']:>7.3f} | {t['numpy'] / t['row']:>6.2f} | "
        f"{t['numpy'] / t['symv']:>6.2f} | {t['numpy'] / t['pair']:>6.2f} |"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--D", type=int, nargs="+", default=[40, 80])
    p.add_argument("--repeat", type=int, default=5)
    add_flag(p)
    args = p.parse_args(argv)
    print(f"# torch {torch.__version__}, numpy {np.__version__}, torch threads "
          f"{torch.get_num_threads()}, repeat {args.repeat} (min, wall clock)")  # fmt: skip
    print(
        f"# load average {os.getloadavg()[0]:.1f} at the start; speedup = numpy s / that s; "
        f"{blas_line()}"
    )
    print(
        "|   D | spins | iters |   row s |  symv s |  pair s | numpy s |  row x | symv x | pair x |"
    )
    print(
        "|-----|-------|-------|---------|---------|---------|---------|--------|--------|--------|"
    )
    for D in args.D:
        print(bench(D, args.repeat), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

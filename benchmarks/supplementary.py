"""Cost of the supplementary figures at the paper preset: measured time per unit x count.

Each figure's paper-preset work is a count of independent units (a chunk of repeats at
one parameter point, one AMP solve, one training repeat); this script times a few units
of each kind with the package's own functions and prints the estimated wall time of
``reproduce <figure> --preset paper`` on a CPU (with the presets' CPU counts,
``cpu_repeats``) beside the units' counts. Plotting and the store's overhead (seconds) are
not included.

Usage: ``python benchmarks/supplementary.py [--threads 2] [--figures figS7 ...]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from spinglass_icl.experiments.presets import get_preset


def timed(f: Callable[[], object], repeat: int = 1) -> float:
    """Smallest wall time of ``repeat`` calls of ``f`` (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def figS7() -> list[tuple[str, float, int]]:
    """Spectra: one chunk per P; map: one repeat at every (D, P) of a subsample of P
    (times interpolated linearly in between, summed over the grid)."""
    import numpy as np

    from spinglass_icl.experiments.figS7 import hessian_spectrum

    p = get_preset("paper", "figS7")
    rows = []
    for P in p.spectra_P:
        t = timed(lambda P=P: hessian_spectrum(p.D, p.N, P, p.chunk, "authors", 0))
        reps = p.cpu_spectra_repeats or p.spectra_repeats
        rows.append((f"spectrum chunk ({p.chunk} repeats), P = {P}", t,
                     -(-reps // p.chunk)))  # fmt: skip
    for D in p.map_D:
        sample = [P for P in p.map_P[::8]] + [p.map_P[-1]]
        ts = [timed(lambda D=D, P=P: hessian_spectrum(D, p.map_N, P, 1, "authors", 0))
              for P in sample]  # fmt: skip
        total = float(np.interp(p.map_P, sample, ts).sum())
        rows.append((f"map, D = {D}: one repeat at every P (sum of {len(p.map_P)})", total,
                     p.cpu_repeats or p.repeats))  # fmt: skip
    return rows


def figS5() -> list[tuple[str, float, int]]:
    """One stored chunk of matrices per N."""
    from spinglass_icl.experiments.figS5 import wishart_eigs

    p = get_preset("paper", "figS5")
    return [
        (f"chunk of {p.chunk} matrices, N = {N} ({p.sampler})",
         timed(lambda N=N: wishart_eigs(p.D, N, p.chunk, 0, p.sampler)),
         -(-p.repeats // p.chunk))
        for N in p.N_list
    ]  # fmt: skip


def figS2() -> list[tuple[str, float, int]]:
    """One stored chunk of instances at the smallest and largest N (linear in N between;
    the factor sampler's cost hardly depends on N)."""
    from spinglass_icl.experiments.fig5 import block_samples

    p = get_preset("paper", "figS2")
    n_chunks = -(-(p.cpu_repeats or p.repeats) // p.chunk)

    def unit(N: int) -> float:
        return timed(lambda: block_samples(p.D, N, p.P, p.lam, p.chunk, p.chunk, "authors",
                                           [0], 1, per_instance=p.per_instance,
                                           sampler=p.sampler))  # fmt: skip

    lo, hi = min(p.N_list), max(p.N_list)
    t_lo, t_hi = unit(lo), unit(hi)
    rows = [(f"chunk of {p.chunk} instances, N = {lo} (base, floor, pilot)", t_lo,
             2 * n_chunks + 1)]  # fmt: skip
    for N in p.N_list:
        if N != p.base_N:
            t = t_lo + (t_hi - t_lo) * (N - lo) / (hi - lo)
            rows.append((f"chunk of {p.chunk} instances, N = {N}", t, n_chunks))
    return rows


def figS6() -> list[tuple[str, float, int]]:
    """One stored chunk per P, timed over 100 of its epochs (times epochs / 100)."""
    from spinglass_icl.experiments.figS6 import fit_eq39

    p = get_preset("paper", "figS6")
    n_chunks = -(-p.repeats // p.chunk)
    return [
        (f"chunk of {p.chunk} repeats x {p.epochs} epochs, P = {P}",
         timed(lambda P=P: fit_eq39(p.D, p.N, P, p.chunk, 100, p.lr, 0)) * p.epochs / 100,
         n_chunks)
        for P in p.P_list
    ]  # fmt: skip


def figS3() -> list[tuple[str, float, int]]:
    """One synthetic instance solved, per law and repeat."""
    import numpy as np

    from spinglass_icl.experiments.figS3 import solve, synthetic_instance

    p = get_preset("paper", "figS3")
    J, h = synthetic_instance(p.D, "script", np.random.default_rng(0))
    t = timed(lambda: solve(J, h, p, onsager=False))
    return [("one synthetic instance, AMP to its fixed point", t, len(p.laws) * p.repeats)]


def figS4() -> list[tuple[str, float, int]]:
    """One repeat (sampling, Gram, 5000 Adam epochs, two AMPs, exact) at the smallest
    and the largest c."""
    from spinglass_icl.experiments.figS4 import one_repeat

    p = get_preset("paper", "figS4")
    reps = p.cpu_repeats or p.repeats
    t = sum(timed(lambda c=c: one_repeat(p, c, "authors", 0)) for c in
            (p.c_list[0], p.c_list[-1])) / 2  # fmt: skip
    return [(f"one repeat (mean of c = {p.c_list[0]} and {p.c_list[-1]}), CPU count {reps}",
             t, len(p.c_list) * reps)]  # fmt: skip


FIGURES = {"figS7": figS7, "figS5": figS5, "figS2": figS2, "figS6": figS6, "figS3": figS3,
           "figS4": figS4}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--figures", nargs="*", default=list(FIGURES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, threads {args.threads}")
    print("| figure | unit | s per unit | units | estimated s |")
    print("|---|---|---|---|---|")
    grand = 0.0
    for name in args.figures:
        total = 0.0
        for unit, t, count in FIGURES[name]():
            total += t * count
            print(f"| {name} | {unit} | {t:.3f} | {count} | {t * count:.0f} |", flush=True)
        print(f"| {name} | **total** | | | **{total:.0f}** |", flush=True)
        grand += total
    print(f"| all | **total** | | | **{grand:.0f}** ({grand / 60:.1f} min) |")


if __name__ == "__main__":
    main()

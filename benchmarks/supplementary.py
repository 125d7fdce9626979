"""Cost of the supplementary figures at the paper preset: measured time per unit x count.

Each figure's paper-preset work is a count of independent units (a chunk of repeats at
one parameter point, one AMP solve, one training repeat); this script times a few units
of each kind with the package's own functions and prints the estimated wall time of
``reproduce <figure> --preset paper`` on a CPU (with the presets' CPU counts,
``cpu_repeats``, ``cpu_trials``) beside the units' counts. Plotting and the store's
overhead (seconds) are not included.

Usage: ``python benchmarks/supplementary.py [--threads 2] [--figures figS7 ...]
[--clock wall|cpu]`` (``--clock cpu --threads 1`` on a shared machine: the process's CPU
time, close to the idle machine's one-thread wall time).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable

import torch

from spinglass_icl.experiments.presets import get_preset
from spinglass_icl.training import train

#: the clock of :func:`timed`: ``wall`` (time.perf_counter) or ``cpu`` (time.process_time,
#: every thread of this process): on a shared machine the CPU time of a one-thread run
#: is close to what the same run takes on the idle machine, the wall time is not
CLOCK = {"clock": time.perf_counter}


def timed(f: Callable[[], object], repeat: int = 1) -> float:
    """Smallest time of ``repeat`` calls of ``f`` (seconds, on the :data:`CLOCK`)."""
    clock = CLOCK["clock"]
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        f()
        best = min(best, clock() - t0)
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


def _train_seconds(cfg, epochs: int, timed_epochs: int) -> float:
    """Seconds of ``train(cfg)`` at ``epochs`` epochs, from a run of ``timed_epochs``: its
    whole time (data, evaluation, steps) plus the steps of the epochs not run."""
    from spinglass_icl.training import train

    k = min(epochs, timed_epochs)
    clock = CLOCK["clock"]
    t0 = clock()
    res = train(dataclasses.replace(cfg, epochs=k, eval_every=k))
    t = clock() - t0  # the steps' share of it as in wall time (step_seconds / seconds)
    return t + (epochs - k) * t * (res.step_seconds / res.seconds) / k


def figS1() -> list[tuple[str, float, int]]:
    """Per model: one chunk of the CPU count of repeats (one train() call) at the smallest
    and largest P, timed over 300 of its epochs, linear in P between; the learning curves."""
    import numpy as np

    from spinglass_icl.models import model_config
    from spinglass_icl.tasks import TaskConfig
    from spinglass_icl.training import TrainConfig

    p = get_preset("paper", "figS1")
    reps = p.cpu_repeats or p.repeats
    Ps = [max(1, round(a * p.D**2)) for a in p.alphas]
    rows = []
    for m in p.models:

        def cfg(P, trials, m=m):
            task = TaskConfig(D=p.D, N=p.N, P=P)
            return TrainConfig(task=task, model=model_config(m), lam=p.lam, trials=trials,
                               lr=p.lr, test_tasks=p.test_tasks)  # fmt: skip

        ends = [min(Ps), max(Ps)]
        ts = [_train_seconds(cfg(P, reps), p.epochs, 300) for P in ends]
        total = float(np.interp(Ps, ends, ts).sum())
        rows.append((f"{m}: {reps} repeats x {p.epochs} epochs at each of {len(Ps)} P "
                     f"(timed at P = {ends[0]}, {ends[1]})", total, 1))  # fmt: skip
        for P, lr in zip(p.curve_P, p.curve_lr):
            c = dataclasses.replace(cfg(P, p.curve_trials), lr=lr, epochs=p.curve_epochs,
                                    eval_every=1)  # fmt: skip
            rows.append((f"{m}: learning curve at P = {P}", timed(lambda c=c: train(c)), 1))
    return rows


#: mean epochs to the convergence stop per trial in the idle Fig. 6 paper run (N = 50;
#: benchmarks/RESULTS.md, "reproduce --preset paper"); FLA from the 2-trial stop runs
STOP_EPOCHS = {"sla": 221, "fla": 375, "sa": 762, "tf": 1868, "mhla": 1586}


def figS8() -> list[tuple[str, float, int]]:
    """Per model: one trial (data, steps, evaluation) at the smallest and largest N of its
    grid, timed over 10 epochs and scaled to the Fig. 6 run's mean epochs to the stop
    (:data:`STOP_EPOCHS`), linear in N between, summed over the grid; AMP on the SLA's
    data at the two ends as well. Units: the CPU count of trials per point."""
    import numpy as np

    from spinglass_icl.models import model_config
    from spinglass_icl.solvers import solve
    from spinglass_icl.tasks import TaskConfig
    from spinglass_icl.training import TrainConfig

    p = get_preset("paper", "figS8")
    trials = p.cpu_trials or p.trials
    rows = []
    for m in ("sla", "fla", "mhla", "sa", "tf"):
        grid = list(getattr(p, f"N_{m}"))
        ends = [min(grid), max(grid)]
        ts = []
        for N in ends:
            cfg = TrainConfig(
                task=TaskConfig(D=p.D, N=N, P=p.P), model=model_config(m, strict=False, H=p.H,
                M=p.M), lam=p.train_lam, trials=1, lr=p.lr, optimizer=p.optimizer,
                test_tasks=p.test_tasks, tol=None, dtype=dict(p.dtype).get(m, "float64"),
            )  # fmt: skip
            t = _train_seconds(cfg, STOP_EPOCHS[m], 10)
            if m == "sla":  # AMP on the trial's training set, as fig6
                inst = dataclasses.replace(train(dataclasses.replace(cfg, epochs=1)).instances,
                                           lam=p.lam)  # fmt: skip
                kw = dict(beta=p.beta, damping=p.damping, tol=1e-8, max_iter=5000, warn=False)
                t += timed(lambda inst=inst, kw=kw: solve(inst, "amp", **kw))
            ts.append(t)
        total = float(np.interp(grid, ends, ts).sum())
        rows.append((f"{m}{' + AMP' if m == 'sla' else ''}: one trial at each of {len(grid)} N "
                     f"({STOP_EPOCHS[m]} epochs; timed at N = {ends[0]}, {ends[1]})", total,
                     trials))  # fmt: skip
    return rows


FIGURES = {"figS1": figS1, "figS8": figS8, "figS7": figS7, "figS5": figS5, "figS2": figS2,
           "figS6": figS6, "figS3": figS3, "figS4": figS4}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--figures", nargs="*", default=list(FIGURES))
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or the process's CPU time (for a shared machine, with "
                    "--threads 1)")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    CLOCK["clock"] = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"# torch {torch.__version__}, threads {args.threads}, clock {args.clock}, load "
          f"average {os.getloadavg()[0]:.1f} at start")  # fmt: skip
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

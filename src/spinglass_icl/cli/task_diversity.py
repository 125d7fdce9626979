"""``spinglass-icl task-diversity``: e_ICL, e_IDG and g_task against the pool size K."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from ..errors import ParameterError, check_float, check_int
from ..tasks import ASSIGNMENTS, TASK_NORMS
from .common import add_common, add_safety, jsonable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "task-diversity",
        help="in-context vs in-distribution error against the task pool size K",
        description="Train on P prompts whose tasks come from a pool of K tasks, for each "
        "K of --tasks, and print per K the in-context error e_ICL (fresh tasks), the "
        "in-distribution error e_IDG (tasks of the pool) and g_task = e_ICL - e_IDG, mean "
        "and standard deviation over --averages draws of pool and training set, for the "
        "solver's ground state, the Bayes baselines dMMSE (posterior mean over the pool) "
        "and ridge (Bayes for Gaussian tasks), and the finite-kappa theory of Lu et al. "
        "(2024), kappa = K/D. Errors are absolute mean squared errors, noise floor "
        "included (docs/theory.md#task-diversity).",
    )
    p.add_argument("--D", type=int, default=32, help="input dimension (default 32)")
    p.add_argument("--N", type=int, default=320, help="context length (default 320)")
    p.add_argument("--P", type=int, default=10240, help="training prompts (default 10240)")
    p.add_argument(
        "--tasks",
        nargs="+",
        required=True,
        help="pool sizes K (integers >= 1; 'none' = a fresh task per prompt)",
    )
    p.add_argument("--noise", type=float, default=0.0, help="label-noise std (default 0)")
    p.add_argument("--lam", type=float, default=1e-6, help="ridge lam of eq. 2 (default 1e-6)")
    p.add_argument(
        "--task-norm",
        default="sphere",
        choices=TASK_NORMS,
        help="pool tasks Gaussian or rescaled to norm sqrt(D) (default sphere, Lu et al.)",
    )
    p.add_argument(
        "--assignment",
        default="equal",
        choices=ASSIGNMENTS,
        help="prompts take pool tasks in turn (equal, default, Lu et al.) or at random",
    )
    p.add_argument("--averages", type=int, default=20, help="draws per K (default 20)")
    p.add_argument("--solver", default="exact", choices=("exact", "amp"), help="default exact")
    p.add_argument(
        "--test-prompts",
        type=int,
        default=500,
        help="Monte Carlo test prompts per kind for dMMSE and ridge (default 500)",
    )
    p.add_argument("--no-baselines", action="store_true", help="skip dMMSE and ridge")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_common(p, device=False)
    add_safety(p, force=False)
    p.set_defaults(func=run)


def _pool_size(text: str) -> int | None:
    if text.lower() in ("none", "inf"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ParameterError(f"tasks must be integers >= 1 or 'none', got {text!r}") from None
    if not value.is_integer():
        raise ParameterError(f"tasks must be integers >= 1 or 'none', got {text!r}")
    return check_int("tasks", int(value))


def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..diversity import task_diversity
    from ..resources import memory_check

    tasks = [_pool_size(t) for t in args.tasks]
    D, N, P = check_int("D", args.D), check_int("N", args.N), check_int("P", args.P)
    noise = check_float("noise", args.noise, low=0.0)
    lam = check_float("lam", args.lam, low=0.0, low_open=True)
    averages = check_int("averages", args.averages)
    n_test = check_int("test-prompts", args.test_prompts)
    if args.assignment == "equal":
        for K in tasks:
            if K is not None and K > P:
                raise ParameterError(f"tasks must be <= P = {P} with --assignment equal, got {K}")
    t0 = time.perf_counter()

    def progress(done, total):
        if not args.json and sys.stderr.isatty():
            print(f"\r  pool sizes done: {done}/{total}", end="", file=sys.stderr)

    with memory_check(not args.no_memory_check):
        rows = task_diversity(
            D, N, P, tasks, noise=noise, lam=lam, convention=args.convention,
            task_norm=args.task_norm, assignment=args.assignment, averages=averages,
            seed=args.seed, solver=args.solver, baselines=not args.no_baselines,
            n_test=n_test, progress=progress,
        )  # fmt: skip
    wall = time.perf_counter() - t0
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    meta = {
        "D": D, "N": N, "P": P, "noise": noise, "lam": lam, "convention": args.convention,
        "task_norm": args.task_norm, "assignment": args.assignment, "averages": averages,
        "seed": args.seed, "solver": args.solver, "test_prompts": n_test,
        "alpha": N / D, "tau": P / D**2, "version": __version__, "wall_s": round(wall, 2),
    }  # fmt: skip
    if args.json:
        out = dict(meta, rows=[r.to_dict() for r in rows])
        print(json.dumps(jsonable(out), indent=1))
        return 0
    print(
        f"spinglass-icl task-diversity  D={D} N={N} P={P} (alpha={N / D:g}, tau={P / D**2:g}) "
        f"noise={noise:g} lam={lam:g} convention={args.convention} task-norm={args.task_norm} "
        f"assignment={args.assignment} averages={averages} seed={args.seed}  "
        f"[{wall:.1f} s, spinglass-icl {__version__}]"
    )
    print("absolute errors E(y~-y^)^2 (noise floor included): mean ± std over the averages")
    current = object()
    for r in rows:
        if r.tasks != current:
            current = r.tasks
            kap = "inf" if math.isinf(r.kappa) else f"{r.kappa:.4g}"
            print(f"\nK = {r.tasks}  (kappa = {kap})")
            print(f"  {'estimator':<9} {'e_ICL':>22} {'e_IDG':>22} {'g_task':>22}")
        cells = [
            f"{m:.5g} ± {s:.2g}"
            for m, s in ((r.icl, r.icl_std), (r.idg, r.idg_std), (r.gtask, r.gtask_std))
        ]
        print(f"  {r.estimator:<9} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}")
    return 0

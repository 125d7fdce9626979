"""``spinglass-icl solve``: one instance, one solver, results on disk."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import SEED_MAX, ParameterError, check_int
from ..hamiltonian import Instance, make_instance
from ..observables import contrast, spins_to_W, test_error
from ..resources import check_memory, dense_solve_bytes, memory_check
from ..safeio import atomic_path, check_output_dir
from ..solvers import DEFAULT_SOLVER, SolverConfig, solve, solver_names
from ..solvers.stability import parse_damping, resolve_auto_damping
from ..tasks import TaskConfig, resolve_device
from .common import add_common, add_pool, add_safety, add_solver_settings, pool_fields, write_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "solve",
        help="solve one spin-glass instance (exact, AMP, AMP-paper or r-BP)",
        description="Sample one instance, solve it, print a summary and write "
        "instance.npz, solution.npz and summary.json into --out (replacing only files "
        "spinglass-icl wrote there, unless --force).",
    )
    p.add_argument("--D", type=int, default=10, help="input dimension (>= 1; default 10)")
    p.add_argument("--N", type=int, default=100, help="context length (>= 1; default 100)")
    p.add_argument("--P", type=int, default=1000, help="task diversity (>= 1; default 1000)")
    p.add_argument(
        "--lam", type=float, default=0.01, help="ridge lam (> 0 for the solvers; default 0.01)"
    )
    p.add_argument(
        "--beta", type=float, default=100.0, help="inverse temperature (> 0; default 100)"
    )
    p.add_argument(
        "--solver",
        default=DEFAULT_SOLVER,
        help=f"one of {', '.join(solver_names())} (default {DEFAULT_SOLVER})",
    )
    add_solver_settings(p, damping_type=parse_damping, auto=True)
    p.add_argument("--noise", type=float, default=0.0, help="label-noise std (default 0)")
    p.add_argument(
        "--test-tasks", type=int, default=10_000, help="fresh prompts for the test error"
    )
    add_pool(p)
    add_common(p)
    add_safety(p)
    p.add_argument("--out", type=Path, default=Path("out/solve"), help="output folder")
    p.set_defaults(func=run)


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def _savez(path: Path, **arrays) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def run(args: argparse.Namespace) -> int:
    with memory_check(not args.no_memory_check):
        return _run(args)


def _configs(args: argparse.Namespace) -> tuple[TaskConfig, SolverConfig, int]:
    """The task and solver configs of ``args`` (each checks its own fields) and the number
    of test prompts."""
    task = TaskConfig(
        D=args.D, N=args.N, P=args.P, convention=args.convention, noise=args.noise,
        **pool_fields(args),
    )  # fmt: skip
    task.check_sizes()  # K <= P with --assignment equal
    cfg = SolverConfig(
        solver=args.solver,
        beta=args.beta,
        damping=None if args.damping == "auto" else args.damping,
        tol=args.tol,
        max_iter=args.max_iter,
    )
    return task, cfg, check_int("test_tasks", args.test_tasks)


def _observables(inst: Instance, res, test_tasks: int, seed: int) -> dict:
    """Contrast, test error and energy of a converged solution (None where not finite);
    all None if the solver did not converge (a physics result: reported, but no
    meaningless numbers handed downstream)."""
    names = ("contrast", "test_error", "relative_test_error", "test_error_stderr", "energy")
    task = inst.config
    if task.tasks is not None:  # with a pool: e_IDG and g_task too
        names += _POOL_OBSERVABLES
    if not res.converged:
        return dict.fromkeys(names)
    W = spins_to_W(res.m)
    test_seed = (seed + 1) % (SEED_MAX + 1)
    if task == TaskConfig(task.D, task.N, task.P, task.convention, task.noise):
        err = test_error(
            W, inst.N, convention=task.convention, noise=task.noise, n_tasks=test_tasks,
            seed=test_seed,
        )  # fmt: skip
    else:  # the task law's own fresh tasks (e_ICL)
        err = task.test_error(W, "icl", n_tasks=test_tasks, seed=test_seed)
    try:
        C = contrast(W)
    except ParameterError:  # W11 = 0 to float64 precision (a huge lam): 0/0, no contrast
        C = float("nan")
    values = [C, err.absolute, err.relative, err.stderr, inst.energy(res.m)]
    if task.tasks is not None:  # the same test inputs, tasks drawn from the pool
        idg = task.test_error(W, "idg", n_tasks=test_tasks, seed=test_seed)
        values += [idg.absolute, idg.relative, idg.stderr, err.absolute - idg.absolute]
    return {k: _finite(float(x)) for k, x in zip(names, values)}


def _write(out: Path, inst: Instance, res, cfg: SolverConfig) -> None:
    """``instance.npz`` and ``solution.npz``."""
    check_output_dir(out)
    task = inst.config
    _savez(
        out / "instance.npz",
        S=inst.s.cpu().numpy(),
        y=inst.y.cpu().numpy(),
        D=task.D,
        N=task.N,
        P=task.P,
        lam=inst.lam,
        beta=cfg.beta,
        convention=task.convention,
        version=__version__,
    )
    _savez(
        out / "solution.npz",
        m=res.m.cpu().numpy(),
        v=res.v.cpu().numpy(),
        converged=res.converged,
        iterations=res.n_iter,
        residuals=res.residuals.cpu().numpy(),
    )


def _print(summary: dict, out: Path, auto_note: str | None) -> None:
    conf = summary["config"]
    D, N, P = conf["D"], conf["N"], conf["P"]
    fmt = lambda x: "n/a" if x is None else f"{x:.6g}"  # noqa: E731
    pool = f" tasks={conf['tasks']}" if conf.get("tasks") is not None else ""
    print(
        f"spinglass-icl solve  D={D} N={N} P={P}{pool} lam={conf['lam']:g} "
        f"beta={conf['beta']:g} solver={conf['solver']} convention={conf['convention']} "
        f"seed={conf['seed']}"
    )
    print(f"  spins           {(D + 1) ** 2}")
    if auto_note is not None:
        print(f"  damping auto    {auto_note}")
    print(
        f"  status          {summary['status']} ({summary['iterations']} iterations, "
        f"{summary['seconds']:.2f} s)"
    )
    print(f"  contrast C      {fmt(summary['contrast'])}")
    print(
        f"  test error      {fmt(summary['test_error'])}  "
        f"(relative {fmt(summary['relative_test_error'])})"
    )
    if "test_error_idg" in summary:
        print(
            f"  e_IDG (pool)    {fmt(summary['test_error_idg'])}  "
            f"(relative {fmt(summary['relative_test_error_idg'])}; the test error above "
            "is e_ICL, fresh tasks)"
        )
        print(f"  g_task          {fmt(summary['gtask'])}  (e_ICL - e_IDG)")
    print(f"  energy H        {fmt(summary['energy'])}")
    print(f"  wrote           {out}/instance.npz, solution.npz, summary.json")
    if not summary["converged"]:
        print(
            "  note: the solver did not converge; observables are not reported"
            " (null in summary.json)"
        )
    elif None in (summary[k] for k in _OBSERVABLES):
        print(
            "  note: some observables are not finite at these parameters (e.g. W = 0 to"
            " float64 precision at a huge lam); they are n/a here and null in summary.json"
        )


#: the files ``solve`` writes into ``--out`` (it replaces only its own earlier ones)
OUTPUTS = ("instance.npz", "solution.npz", "summary.json")
_OBSERVABLES = ("contrast", "test_error", "test_error_stderr", "relative_test_error", "energy")
#: what ``solve`` adds with a task pool (``--tasks K``): e_IDG and g_task = e_ICL - e_IDG
_POOL_OBSERVABLES = ("test_error_idg", "relative_test_error_idg", "test_error_idg_stderr", "gtask")


def _pool_config(task: TaskConfig) -> dict:
    """The pool's fields for summary.json (none without a pool and with Gaussian tasks:
    the summary of before)."""
    if task.tasks is None and task.task_norm == "gaussian":
        return {}
    return {
        "tasks": task.tasks, "pool_seed": task.pool_seed, "assignment": task.assignment,
        "task_norm": task.task_norm,
    }  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    task, cfg, test_tasks = _configs(args)
    D, N, P = task.D, task.N, task.P
    device = resolve_device(args.device)
    out: Path = check_output_dir(args.out, create=False, outputs=OUTPUTS)
    check_memory(
        dense_solve_bytes(D, N, P, cfg.solver, test_tasks),
        f"solve D={D} N={N} P={P} ({(D + 1) ** 2} spins, dense n^2 Gram)",
        "use a smaller D or P, or a sweep spec with matfree = true (matrix-free solvers)",
        device=device,
    )
    t0 = time.perf_counter()
    inst = make_instance(task, lam=args.lam, seed=args.seed, device=device)  # checks lam, seed
    seed = int(args.seed)
    auto_note = None
    if args.damping == "auto":
        damping, auto_note = resolve_auto_damping(
            inst, cfg.solver, beta=cfg.beta, tol=cfg.tol, max_iter=cfg.max_iter
        )
        cfg = dataclasses.replace(cfg, damping=damping)
    res = solve(inst, cfg, warn=False)
    seconds = time.perf_counter() - t0
    obs = _observables(inst, res, test_tasks, seed)
    _write(out, inst, res, cfg)
    summary = {
        **{k: obs[k] for k in _OBSERVABLES},
        **{k: obs[k] for k in _POOL_OBSERVABLES if k in obs},
        "converged": res.converged,
        "status": res.status,
        "iterations": res.n_iter,
        "seconds": seconds,
        "config": {
            "D": D,
            "N": N,
            "P": P,
            "lam": inst.lam,
            "noise": task.noise,
            **_pool_config(task),
            "convention": task.convention,
            "version": __version__,
            "seed": seed,
            "device": str(device),
            "dtype": "float64",
            **vars(cfg),
            **({"damping_auto": auto_note} if auto_note is not None else {}),
        },
    }
    write_json(out / "summary.json", summary)
    _print(summary, out, auto_note)
    return 0

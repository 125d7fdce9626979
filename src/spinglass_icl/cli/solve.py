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
from .common import add_common, add_safety, add_solver_settings, write_json


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
    task = TaskConfig(D=args.D, N=args.N, P=args.P, convention=args.convention, noise=args.noise)
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
    if not res.converged:
        return dict.fromkeys(names)
    W = spins_to_W(res.m)
    err = test_error(
        W,
        inst.N,
        convention=inst.config.convention,
        noise=inst.config.noise,
        n_tasks=test_tasks,
        seed=(seed + 1) % (SEED_MAX + 1),
    )
    try:
        C = contrast(W)
    except ParameterError:  # W11 = 0 to float64 precision (a huge lam): 0/0, no contrast
        C = float("nan")
    values = (C, err.absolute, err.relative, err.stderr, inst.energy(res.m))
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
    print(
        f"spinglass-icl solve  D={D} N={N} P={P} lam={conf['lam']:g} beta={conf['beta']:g} "
        f"solver={conf['solver']} convention={conf['convention']} seed={conf['seed']}"
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

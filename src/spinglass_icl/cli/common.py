"""Argument helpers and output writers shared by the CLI commands."""

from __future__ import annotations

import argparse

from ..conventions import CONVENTIONS, DEFAULT_CONVENTION
from ..io import jsonable, write_json  # noqa: F401 (re-exported for the commands)


def add_safety(p: argparse.ArgumentParser, *, force: bool = True) -> None:
    """``--no-memory-check`` (and ``--force``): run a size the memory check refuses;
    overwrite existing plain output files."""
    p.add_argument(
        "--no-memory-check",
        action="store_true",
        help="run even when the memory estimate exceeds the memory available",
    )
    if force:
        p.add_argument("--force", action="store_true", help="overwrite existing output files")


def add_common(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    """``--convention``, ``--seed`` and ``--device`` flags, identical in every command."""
    p.add_argument(
        "--convention",
        default=DEFAULT_CONVENTION,
        choices=CONVENTIONS,
        help="normalization convention (docs/conventions.md; default: authors)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="base random seed in [0, 2**64 - 1] (default 0)"
    )
    if device:
        p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")


def _defaults_text(field: str) -> str:
    """``"amp 0.5, amp-paper 0.5, ..."``: each solver's default of ``field``, grouped."""
    from ..solvers import get_solver, solver_names

    names = solver_names(uses_damping=True) if field == "damping" else solver_names()
    by_value: dict[str, list[str]] = {}
    for n in names:
        by_value.setdefault(f"{getattr(get_solver(n).defaults, field):g}", []).append(n)
    return "; ".join(f"{v} for {', '.join(ns)}" for v, ns in by_value.items())


def add_solver_settings(p: argparse.ArgumentParser, *, damping_type, auto: bool) -> None:
    """``--damping``, ``--tol`` and ``--max-iter``, defaulting to the solver's own
    (:attr:`~spinglass_icl.solvers.Solver.defaults`, shown in the help)."""
    extra = (
        ", or auto: the smallest predicted to converge (solvers with the stability "
        "analysis; docs/amp-stability.md)"
        if auto
        else ""
    )
    p.add_argument(
        "--damping",
        type=damping_type,
        default=None,
        help=f"damping in [0, 1){extra} (default: the solver's, {_defaults_text('damping')})",
    )
    p.add_argument(
        "--tol",
        type=float,
        default=None,
        help=f"tolerance on the undamped residual (default: {_defaults_text('tol')})",
    )
    p.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help=f"iteration cap (default: {_defaults_text('max_iter')})",
    )


def add_pool(p: argparse.ArgumentParser) -> None:
    """``--tasks K`` (the task pool size; docs/theory.md#task-diversity) with the pool's
    ``--pool-seed``, ``--assignment`` and ``--task-norm``, as in every command."""
    from ..tasks import ASSIGNMENTS, TASK_NORMS

    p.add_argument(
        "--tasks",
        default=None,
        metavar="K",
        help="task pool size K: the P prompts take their tasks from K tasks drawn once "
        "(an integer >= 1; default none: a fresh task per prompt, the paper's setting)",
    )
    p.add_argument(
        "--pool-seed", type=int, default=0, help="seed of the task pool (>= 0; default 0)"
    )
    p.add_argument(
        "--assignment",
        default="uniform",
        choices=ASSIGNMENTS,
        help="prompts take pool tasks at random (uniform, default) or in turn (equal, K <= P)",
    )
    p.add_argument(
        "--task-norm",
        default="gaussian",
        choices=TASK_NORMS,
        help="tasks N(0, I) (gaussian, default) or rescaled to norm sqrt(D) (sphere)",
    )


def pool_fields(args: argparse.Namespace) -> dict:
    """The :class:`~spinglass_icl.tasks.TaskConfig` fields of :func:`add_pool`'s flags
    (``--tasks`` checked here: ``none`` or an integer >= 1, quoted as typed if not)."""
    from ..sweep.spec import check_pool_size

    return {
        "tasks": check_pool_size(args.tasks),
        "pool_seed": args.pool_seed,
        "assignment": args.assignment,
        "task_norm": args.task_norm,
    }

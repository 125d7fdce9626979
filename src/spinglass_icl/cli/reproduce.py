"""``spinglass-icl reproduce``: remake the paper's figures, with data and a report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ParameterError, check_int
from ..experiments import DIVERSITY, FIGURES, SUPPLEMENTARY
from ..resources import memory_check
from ..safeio import check_output_dir
from ..solvers.stability import parse_damping
from ..tasks import resolve_device
from .common import add_common
from .slurmopts import add_slurm_args, slurm_options

#: names that stand for several figures: the main text's, the supplement's, every one
_GROUPS = ("main", "supplementary", "diversity", "all")
#: every registered figure, then the groups
_NAMES = (*FIGURES, *_GROUPS)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``spinglass-icl reproduce`` and its options to the subcommands ``sub``."""
    p = sub.add_parser(
        "reproduce",
        help="remake the paper's figures (PNG, PDF, data) and report.md / report.html",
        description="Remake one figure of the paper, or all of them, into --out: "
        "<out>/<figure>/figure.png|pdf, its data (NetCDF), result.json, and "
        "<out>/report.md, report.html, results.json rebuilt from every figure present. "
        "A figure already made with the same preset, seed and convention is skipped "
        "unless --force; an interrupted run resumes: the solver sweeps (Fig. 4a, 4b) from their "
        "sweep.sqlite, the trained trials (Fig. 4b, 6) from their trials.sqlite, chunk by chunk.",
    )
    p.add_argument(
        "figure",
        choices=_NAMES,
        help="which figure (main: the main text's; supplementary: figS1..figS8; diversity: the "
        "task-pool figures after Lu et al. 2024; all: every one)",
    )
    p.add_argument(
        "--preset",
        default="quick",
        choices=("tiny", "quick", "paper"),
        help="quick (default; all figures in minutes on 2 CPU cores), paper (docs/experiments.md), "
        "tiny (seconds; tests)",
    )
    p.add_argument("--out", type=Path, default=Path("out/reproduce"), help="output folder")
    _add_execution_args(p)
    _add_run_options(p)
    add_common(p)
    add_slurm_args(p)
    p.set_defaults(func=run)


def _add_execution_args(p: argparse.ArgumentParser) -> None:
    """``--executor``, ``--workers``, ``--force`` and ``--threads``: how the figures run."""
    p.add_argument(
        "--executor",
        default="local",
        choices=("serial", "local", "dask", "slurm"),
        help="how the solver sweeps (Fig. 4a, 4b) run (default local; slurm: worker jobs "
        "submitted with the --slurm-* options)",
    )
    p.add_argument("--workers", type=int, default=2, help="sweep workers (default 2)")
    p.add_argument(
        "--force",
        action="store_true",
        help="redo figures already made (and replace files in --out that spinglass-icl "
        "did not write)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1 for tiny/quick, whose tensors are small and "
        "suffer from oversubscription; torch's default for paper)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """``--trials``, ``--no-progress``, ``--no-memory-check``, ``--damping`` and
    ``--restarts``: overrides of the presets and the run's safety and display options."""
    p.add_argument(
        "--trials",
        default=None,
        metavar="K",
        help="override the trial count (>= 1) of every figure that has one (trials or "
        "repeats; with 'all', the others run as the preset); recorded in result.json",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument(
        "--no-memory-check",
        action="store_true",
        help="run even when a memory estimate exceeds the memory available",
    )
    p.add_argument(
        "--damping",
        type=parse_damping,
        default=None,
        help="override the AMP damping of the sweep figures (fig4a, fig4b): a number in "
        "[0, 1) or auto (the smallest predicted to converge, per batch; "
        "docs/amp-stability.md). Default: the preset's",
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=None,
        metavar="R",
        help="train R initializations per trial and keep the lowest training loss, in every "
        "figure that trains with restarts (fig6, figS8; default: the preset's, 1)",
    )


#: figures whose AMP runs as a sweep, where ``--damping`` (and ``auto``) applies
DAMPING_FIGURES = ("fig4a", "fig4b")
DAMPING_FIGURES_SET = frozenset(DAMPING_FIGURES)


def _damping_override(name: str, damping, restarts: int | None = None, preset=None) -> dict | None:
    """``--damping`` (and ``--restarts``) as a preset override of figure ``name`` (the preset
    checks them); ``--restarts`` goes to the figures whose preset has ``restarts``."""
    out = {}
    if damping is not None and name in DAMPING_FIGURES:
        out["damping"] = damping
    if restarts is not None and preset is not None and "restarts" in preset:
        out["restarts"] = restarts
    return out or None


def _overrides(args: argparse.Namespace, name: str) -> dict | None:
    from ..experiments.presets import get_preset

    return _damping_override(name, args.damping, args.restarts, get_preset(args.preset, name))


def _trials(text: str | None) -> int | None:
    """``--trials K`` as an integer (the figure's preset checks its range)."""
    if text is None:
        return None
    try:
        return int(str(text).strip())
    except ValueError:
        raise ParameterError(f"trials must be an integer >= 1, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from ..sweep.slurm import use_options

    slurm = slurm_options(args)
    with memory_check(not args.no_memory_check), use_options(slurm):
        return _run(args)


def _check(args: argparse.Namespace) -> tuple[Any, int | None, list[str], set[str]]:
    """The run options, ``--trials``, the figures to make and those with trials; every
    figure's preset checks its parameters (with ``--trials`` and ``--damping``) here,
    before any work."""
    from ..experiments.presets import get_preset, trial_key
    from ..experiments.runner import RunOptions, figure_params

    opts = RunOptions(
        executor=args.executor,
        workers=args.workers,
        seed=args.seed,
        convention=args.convention,
        device=str(resolve_device(args.device)),
    )
    trials = _trials(args.trials)
    names = _group(args.figure)
    with_trials = {n for n in names if trial_key(n, get_preset(args.preset, n))}
    restart_figures = [n for n in names if "restarts" in get_preset(args.preset, n)]
    if args.restarts is not None and not restart_figures:
        raise ParameterError(
            f"restarts: figure {args.figure} does not train from several initializations "
            f"(figures that do: fig6, figS8); run it without --restarts"
        )
    for n in names:
        figure_params(
            n,
            args.preset,
            _overrides(args, n),
            trials if n in with_trials or args.figure not in _GROUPS else None,
        )
    if args.damping is not None and not DAMPING_FIGURES_SET.intersection(names):
        figure_params(DAMPING_FIGURES[0], args.preset, {"damping": args.damping})
    return opts, trials, names, with_trials


def _group(figure: str) -> list[str]:
    """The figures ``figure`` stands for: every registered one (``all``), the main
    text's (``main``: every one not in the supplement nor a task-diversity figure), the
    registered supplementary ones (``supplementary``), the task-diversity ones
    (``diversity``), else itself."""
    if figure == "all":
        return list(FIGURES)
    if figure == "main":
        return [n for n in FIGURES if n not in SUPPLEMENTARY and n not in DIVERSITY]
    if figure == "supplementary":
        return [n for n in SUPPLEMENTARY if n in FIGURES]
    if figure == "diversity":
        return [n for n in DIVERSITY if n in FIGURES]
    return [figure]


def _print_record(name: str, rec: dict, seconds: float) -> None:
    if rec.get("skipped"):
        print(f"  {name:15s} skipped (already made; --force to redo)", flush=True)
        return
    if rec.get("redone"):
        print(f"  {name:15s} redone: {rec['redone']}", flush=True)
    verdict = rec.get("verdict", "-")
    print(f"  {name:15s} {seconds:7.1f} s  {verdict:14s} {rec['summary']}", flush=True)


def _run(args: argparse.Namespace) -> int:
    from ..errors import SpinGlassError
    from ..experiments.report import build_report
    from ..experiments.runner import run_figure

    opts, trials, names, with_trials = _check(args)
    threads = args.threads
    if threads is None and args.preset != "paper":
        threads = 1
    if threads is not None:
        import torch

        torch.set_num_threads(check_int("threads", threads))
    out: Path = check_output_dir(args.out, outputs=("report.md", "report.html", "results.json"))
    t0 = time.perf_counter()
    missing = []
    print(
        f"spinglass-icl reproduce {args.figure}  preset={args.preset} "
        f"convention={opts.convention} seed={opts.seed} device={opts.device} out={out}"
        + (f" trials={trials}" if trials is not None else "")
        + ("" if args.damping is None else f" damping={args.damping} (fig4a, fig4b)")
        + ("" if args.restarts is None else f" restarts={args.restarts}")
    )
    for name in names:
        t1 = time.perf_counter()
        try:
            rec = run_figure(
                name,
                out,
                preset=args.preset,
                seed=opts.seed,
                convention=opts.convention,
                device=opts.device,
                executor=opts.executor,
                workers=opts.workers,
                force=args.force,
                progress=not args.no_progress,
                trials=trials if name in with_trials else None,
                params=_overrides(args, name),
            )
        except SpinGlassError as exc:  # one figure's failure never blocks the others
            if args.figure not in _GROUPS:
                raise
            missing.append(name)
            print(f"  {name:15s} not made: {' '.join(str(exc).split())}", flush=True)
            continue
        _print_record(name, rec, time.perf_counter() - t1)
    paths = build_report(out)
    print(f"  total           {time.perf_counter() - t0:7.1f} s")
    print(f"  wrote           {paths['md']}, {paths['html']}, {paths['json']}")
    if missing:
        print(f"  missing         {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0

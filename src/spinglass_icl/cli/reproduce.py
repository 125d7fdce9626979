"""``spinglass-icl reproduce``: remake the paper's figures, with data and a report."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import check_int
from ..tasks import resolve_device
from .common import add_common

_NAMES = (
    "fig1",
    "fig2",
    "fig3",
    "fig4a",
    "fig4b",
    "fig5",
    "fig6",
    "hessian",
    "double-descent",
    "all",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="remake the paper's figures (PNG, PDF, data) and report.md / report.html",
        description="Remake one figure of the paper, or all of them, into --out: "
        "<out>/<figure>/figure.png|pdf, its data (NetCDF), result.json, and "
        "<out>/report.md, report.html, results.json rebuilt from every figure present. "
        "A figure already made with the same preset, seed and convention is skipped "
        "unless --force; the Fig. 4a sweep store resumes if interrupted.",
    )
    p.add_argument("figure", choices=_NAMES, help="which figure (all: every one)")
    p.add_argument(
        "--preset",
        default="quick",
        choices=("tiny", "quick", "paper"),
        help="quick (default; all figures in minutes on 2 CPU cores), paper (docs/experiments.md), "
        "tiny (seconds; tests)",
    )
    p.add_argument("--out", type=Path, default=Path("out/reproduce"), help="output folder")
    p.add_argument(
        "--executor",
        default="local",
        choices=("serial", "local", "dask"),
        help="how the Fig. 4a sweep runs (default local)",
    )
    p.add_argument("--workers", type=int, default=2, help="sweep workers (default 2)")
    p.add_argument("--force", action="store_true", help="redo figures already made")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1 for tiny/quick, whose tensors are small and "
        "suffer from oversubscription; torch's default for paper)",
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import FIGURES
    from ..experiments.common import MissingDependency, run_figure
    from ..experiments.report import build_report

    check_int("seed", args.seed, minimum=0)
    check_int("workers", args.workers)
    device = resolve_device(args.device)
    threads = args.threads
    if threads is None and args.preset != "paper":
        threads = 1
    if threads is not None:
        import torch

        torch.set_num_threads(check_int("threads", threads))
    names = list(FIGURES) if args.figure == "all" else [args.figure]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    missing = []
    print(
        f"spinglass-icl reproduce {args.figure}  preset={args.preset} "
        f"convention={args.convention} seed={args.seed} device={device} out={out}"
    )
    for name in names:
        t1 = time.perf_counter()
        try:
            rec = run_figure(
                name,
                out,
                preset=args.preset,
                seed=args.seed,
                convention=args.convention,
                device=str(device),
                executor=args.executor,
                workers=args.workers,
                force=args.force,
                progress=not args.no_progress,
            )
        except MissingDependency as exc:
            if args.figure != "all":
                raise
            missing.append(name)
            print(f"  {name:15s} not made: {exc}", flush=True)
            continue
        if rec.get("skipped"):
            print(f"  {name:15s} skipped (already made; --force to redo)", flush=True)
        else:
            verdict = {True: "agrees", False: "DIFFERS"}.get(rec.get("agrees"), "-")
            print(
                f"  {name:15s} {time.perf_counter() - t1:7.1f} s  {verdict:8s} {rec['summary']}",
                flush=True,
            )
    paths = build_report(out)
    print(f"  total           {time.perf_counter() - t0:7.1f} s")
    print(f"  wrote           {paths['md']}, {paths['html']}, {paths['json']}")
    if missing:
        print(f"  missing         {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0

"""``spinglass-icl sweep run|status|export``: parameter sweeps into a resumable store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError, check_choice
from ..resources import memory_check
from .common import add_safety
from .slurmopts import add_slurm_args, slurm_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a parameter sweep into a resumable SQLite store, show progress, export",
        description="Parameter sweeps (grid x repeats) written row by row to an SQLite "
        "store; rerunning skips finished rows.",
    )
    ssub = p.add_subparsers(dest="sweep_command", required=True, parser_class=type(p))

    r = ssub.add_parser("run", help="run or resume a sweep from a TOML spec")
    r.add_argument("spec", type=Path, help="sweep spec (TOML; see docs/cluster.md)")
    r.add_argument("--store", type=Path, required=True, help="SQLite store (created if missing)")
    r.add_argument(
        "--executor",
        default="local",
        help="serial, local (process pool; default), dask or slurm (worker jobs via sbatch)",
    )
    r.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        metavar="K",
        help="task pool sizes: replace the spec's tasks by a grid over these (integers >= 1 "
        "or none: a fresh task per prompt; docs/theory.md#task-diversity)",
    )
    r.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    r.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:port)")
    r.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    r.add_argument(
        "--dtype",
        default="float64",
        help="float64 (default), float32, or mixed (batched AMP: float32 matrices, float64 state)",
    )
    r.add_argument(
        "--no-batch", action="store_true", help="solve instances one by one (no batching)"
    )
    r.add_argument("--max-batch", type=int, default=None, help="cap on instances per batch")
    r.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the serial executor (default 1, as every worker: results are "
        "then bit-identical across executors; another count may change the last bits)",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument(
        "--yes",
        action="store_true",
        help="confirm a sweep of more than a million rows (grid points x repeats)",
    )
    add_safety(r, force=False)
    add_slurm_args(r)
    r.set_defaults(func=run)

    s = ssub.add_parser(
        "status",
        help="rows done / total for every spec in a store: converged, not converged, errored",
    )
    s.add_argument("--store", type=Path, required=True, help="SQLite store")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=status)

    e = ssub.add_parser("export", help="export a store to NetCDF or CSV")
    e.add_argument("--store", type=Path, required=True, help="SQLite store")
    e.add_argument("--format", default="netcdf", help="netcdf (default) or csv")
    e.add_argument("--out", type=Path, required=True, help="output file")
    e.add_argument("--spec", default=None, help="spec hash prefix (default: the latest spec)")
    e.add_argument(
        "--force", action="store_true", help="overwrite an existing output file (never a store)"
    )
    e.set_defaults(func=export)


def run(args: argparse.Namespace) -> int:
    from ..sweep import SweepSpec, run_sweep

    spec = SweepSpec.from_toml(args.spec)
    if args.tasks is not None:
        spec = with_pool_sizes(spec, args.tasks)
    slurm = slurm_options(args, args.spec)
    with memory_check(not args.no_memory_check):
        store = run_sweep(
            spec,
            args.store,
            executor=args.executor,
            workers=args.workers,
            device=args.device,
            batched=not args.no_batch,
            progress=not args.no_progress,
            scheduler=args.scheduler,
            dtype=args.dtype,
            max_batch=args.max_batch,
            threads=args.threads,
            confirm=args.yes,
            slurm=slurm,
        )
    try:
        for st in store.status():
            if st["spec"] == spec.hash[:12]:
                print(
                    f"spinglass-icl sweep: {st['done']}/{st['total']} rows in {args.store} "
                    f"({_outcomes(st)}), spec {st['spec']}"
                )
    finally:
        store.close()
    return 0


def with_pool_sizes(spec, values: list[str]):
    """``spec`` with its ``tasks`` replaced by a grid over ``values`` (as typed on the
    command line: each checked by :func:`~spinglass_icl.sweep.spec.check_pool_size`)."""
    from ..sweep import SweepSpec
    from ..sweep.spec import check_pool_size

    d = spec.to_dict()
    d["fixed"].pop("tasks", None)
    d["grid"]["tasks"] = [check_pool_size(v) for v in values]
    return SweepSpec.from_dict(d)


def status(args: argparse.Namespace) -> int:
    from ..sweep import open_store

    with open_store(args.store, readonly=True) as store:
        rows = store.status()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'spec':<14}{'grid':<32}{'repeats':>8}{'done':>8}{'total':>8}"
        f"{'converged':>11}{'not conv.':>11}{'errored':>9}"
    )
    for r in rows:
        grid = " x ".join(f"{k}:{n}" for k, n in r["grid"].items())
        if r.get("nested_p"):
            grid += " (nested P)"
        print(
            f"{r['spec']:<14}{grid:<32}{r['repeats']:>8}{r['done']:>8}{r['total']:>8}"
            f"{r['converged']:>11}{r['not_converged']:>11}{r['errored']:>9}"
        )
    print(
        "done = converged + not conv. (the solver stopped at max_iter or diverged: a result, "
        "kept with empty observables) + errored (the point itself failed; see its status)"
    )
    return 0


def _outcomes(st: dict) -> str:
    """``"22 converged, 2 not converged"`` (and ``", 1 errored"`` when any did)."""
    text = f"{st['converged']} converged, {st['not_converged']} not converged"
    return text + (f", {st['errored']} errored" if st["errored"] else "")


def export(args: argparse.Namespace) -> int:
    from ..safeio import check_output_file
    from ..sweep import open_store

    fmt = check_choice("format", args.format, ("netcdf", "csv"))
    with open_store(args.store, readonly=True) as store:
        check_output_file(args.out, name="out", force=args.force, inputs=[args.store])
        if fmt == "netcdf":
            path = store.to_netcdf(args.out, spec=args.spec)
        else:
            path = store.to_csv(args.out, spec=args.spec)
    if not path.exists():  # pragma: no cover - defensive
        raise ConfigError(f"export to {str(path)!r} failed")
    print(f"spinglass-icl sweep: wrote {path}")
    return 0

"""The ``--slurm-*`` flags of ``sweep run`` and ``reproduce`` (``--executor slurm``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_slurm_args(p: argparse.ArgumentParser) -> None:
    """Flags of the ``slurm`` executor; each overrides the ``[slurm]`` table of a spec."""
    g = p.add_argument_group(
        "SLURM (--executor slurm; docs/cluster.md)",
        "worker jobs submitted through dask-jobqueue; each flag overrides the spec's [slurm] table",
    )
    g.add_argument("--slurm-partition", default=None, help="partition (sbatch -p)")
    g.add_argument("--slurm-account", default=None, help="account (sbatch -A)")
    g.add_argument("--slurm-walltime", default=None, help="time limit per job (default 01:00:00)")
    g.add_argument("--slurm-cores", type=int, default=None, help="cores per job (default 1)")
    g.add_argument("--slurm-memory", default=None, help="memory per job (default 4GB)")
    g.add_argument("--slurm-jobs", type=int, default=None, help="worker jobs (default 1)")
    g.add_argument(
        "--slurm-extra",
        action="append",
        default=None,
        metavar="OPTION",
        help="another #SBATCH option, e.g. --slurm-extra=--gres=gpu:1 (repeatable)",
    )
    g.add_argument(
        "--slurm-log-dir", type=Path, default=None, help="folder of the jobs' .out/.err files"
    )


_FLAGS = (
    "slurm_partition",
    "slurm_account",
    "slurm_walltime",
    "slurm_cores",
    "slurm_memory",
    "slurm_jobs",
    "slurm_extra",
    "slurm_log_dir",
)


def slurm_options(args: argparse.Namespace, spec_path: Path | None = None):
    """:class:`~spinglass_icl.sweep.slurm.SlurmOptions` from the spec's ``[slurm]``
    table (if any) and the flags, which win; None unless ``--executor slurm`` (a
    ``--slurm-*`` flag with another executor is a ParameterError)."""
    from ..errors import ParameterError
    from ..sweep.slurm import SlurmOptions, options_from_toml

    if args.executor != "slurm":
        given = [k for k in _FLAGS if getattr(args, k) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ParameterError(f"{flag} needs --executor slurm, got --executor {args.executor}")
        return None
    base = (options_from_toml(spec_path) if spec_path is not None else None) or SlurmOptions()
    return base.replace(
        partition=args.slurm_partition,
        account=args.slurm_account,
        walltime=args.slurm_walltime,
        cores=args.slurm_cores,
        memory=args.slurm_memory,
        jobs=args.slurm_jobs,
        extra=None if args.slurm_extra is None else tuple(args.slurm_extra),
        log_directory=None if args.slurm_log_dir is None else str(args.slurm_log_dir),
    )

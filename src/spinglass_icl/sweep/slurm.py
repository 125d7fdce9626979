"""Running a sweep on a SLURM cluster: the ``slurm`` executor.

``run_sweep(spec, store, executor="slurm", slurm=SlurmOptions(...))`` (or
``spinglass-icl sweep run spec.toml --store s.sqlite --executor slurm --slurm-jobs 4``)
starts a Dask scheduler in the calling process, submits ``jobs`` SLURM batch jobs
through dask-jobqueue's ``SLURMCluster`` (each runs ``cores`` single-threaded Dask
worker processes, so the numbers are bit-identical to the ``serial`` executor's), sends
them the same chunks as every other executor and writes each finished chunk to the
store from the calling process, which is the only one touching the store file.

Before anything is queued the worker job script is checked with ``sbatch --test-only``
(a wrong partition, account or walltime stops with one line quoting SLURM). A worker
job that ends early (``scancel``, node failure, walltime) is replaced, at most
``resubmits`` times in all; the chunks it was running go to the other workers. When
replacements run out, or a chunk's workers die three times (Dask's ``allowed-failures``),
the sweep stops with one line; the rows finished so far are in the store and a rerun
computes only the rest.

Options come from :class:`SlurmOptions`: the CLI's ``--slurm-*`` flags, a ``[slurm]``
table of the sweep's TOML file (:func:`options_from_toml`), or the API. ``reproduce
--executor slurm`` sets them for the sweeps it runs with :func:`use_options`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import (
    Check,
    ConfigError,
    Int,
    OrNone,
    ParameterError,
    ResourceError,
    validate_fields,
)

__all__ = [
    "SlurmOptions",
    "check_submission",
    "current_options",
    "options_from_toml",
    "run_chunks",
    "slurm_cluster",
    "use_options",
]

#: seconds between two looks at the worker jobs while chunks are pending
POLL_SECONDS = 1.0

_WALLTIME = re.compile(r"^(\d+-\d{1,2}(:\d{2}){0,2}|\d+(:\d{2}){0,2})$")
_NAME = re.compile(r"^[A-Za-z0-9_.,+-]+$")


def _check_name(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise ParameterError(
            f"{name} must be a SLURM name (letters, digits, _ . , + -), got {value!r}"
        )
    return value


def _check_walltime(value: Any) -> str:
    if not isinstance(value, str) or not _WALLTIME.match(value.strip()):
        raise ParameterError(
            "slurm walltime must be minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]] "
            f"(e.g. 01:00:00), got {value!r}"
        )
    return value.strip()


def _check_memory(value: Any) -> str:
    from dask.utils import parse_bytes

    try:
        n = parse_bytes(str(value))
    except (ValueError, TypeError):
        n = 0
    if isinstance(value, bool) or n < (16 << 20):
        raise ParameterError(
            f"slurm memory must be a size of at least 16MB per job (e.g. 4GB), got {value!r}"
        )
    return str(value).strip()


def _check_extra(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ParameterError(f"slurm extra must be a list of sbatch options, got {value!r}")
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or "\n" in item:
            raise ParameterError(
                f"slurm extra must hold one-line sbatch options (e.g. --gres=gpu:1), got {item!r}"
            )
        item = item.strip()
        if item.startswith("#SBATCH"):
            item = item[len("#SBATCH") :].strip()
        out.append(item)
    return tuple(out)


def _check_path(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, (str, Path)) or not str(value)):
        raise ParameterError(f"{name} must be a path, got {value!r}")
    return None if value is None else str(value)


@dataclass(frozen=True)
class SlurmOptions:
    """How the ``slurm`` executor asks SLURM for workers.

    Attributes
    ----------
    partition : str or None
        ``sbatch -p`` (default: the cluster's default partition).
    account : str or None
        ``sbatch -A`` (default: none; the user's default account).
    walltime : str
        ``sbatch -t`` of each worker job (default ``01:00:00``). A job that reaches
        it is replaced (see ``resubmits``), so a long sweep does not need one long job.
    cores : int
        CPU cores per job (default 1); the job runs that many single-threaded Dask
        worker processes.
    memory : str
        Memory per job (default ``4GB``; ``sbatch --mem``); each worker process gets
        ``memory / cores``.
    jobs : int
        Worker jobs kept in the queue (default 1).
    extra : tuple of str
        More ``#SBATCH`` lines, e.g. ``("--gres=gpu:1", "--exclusive")``.
    log_directory : str or None
        Folder of the jobs' ``.out``/``.err`` files (default: SLURM's, the directory
        ``sbatch`` runs in).
    python : str or None
        Python of the workers (default: the one running the sweep, ``sys.executable``).
    resubmits : int or None
        Worker jobs submitted in all beyond ``jobs`` to replace jobs that ended early
        (default: ``jobs``); past it the sweep stops with one line.
    """

    partition: str | None = None
    account: str | None = None
    walltime: str = "01:00:00"
    cores: int = 1
    memory: str = "4GB"
    jobs: int = 1
    extra: tuple[str, ...] = ()
    log_directory: str | None = None
    python: str | None = None
    resubmits: int | None = None

    _parameter_constraints: ClassVar[dict] = {
        **{
            k: Check(_check_name, "a SLURM name", [("a b", "'a b'")], label=f"slurm {k}")
            for k in ("partition", "account")
        },
        "walltime": Check(
            lambda _, v: _check_walltime(v),
            "minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]]",
            [("1 hour", "'1 hour'"), (60, "60")],
            label="slurm walltime",
        ),
        "cores": Int(1, label="slurm cores"),
        "memory": Check(
            lambda _, v: _check_memory(v),
            "a size of at least 16MB per job",
            [("lots", "'lots'"), ("1MB", "'1MB'")],
            label="slurm memory",
        ),
        "jobs": Int(1, label="slurm jobs"),
        "extra": Check(
            lambda _, v: _check_extra(v),
            "one-line sbatch options",
            [
                (3, "3", "a list of sbatch options"),
                (["--a\n--b"], "'--a\\n--b'", "hold one-line sbatch options"),
            ],
            label="slurm extra",
        ),
        **{
            k: Check(_check_path, "a path", [(3, "3"), ("", "''")], label=f"slurm {k}")
            for k in ("log_directory", "python")
        },
        "resubmits": OrNone(Int(0), state_none=False, label="slurm resubmits"),
    }

    def __post_init__(self) -> None:
        validate_fields(self)

    def __repr__(self) -> str:
        where = f"partition={self.partition!r}, " if self.partition else ""
        return (
            f"SlurmOptions({where}jobs={self.jobs}, cores={self.cores}, "
            f"memory={self.memory!r}, walltime={self.walltime!r})"
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "slurm") -> SlurmOptions:
        """Options from a mapping (a ``[slurm]`` TOML table); unknown keys raise
        :class:`ConfigError` naming them."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a table of options, got {data!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown {where} option(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(names)}"
            )
        return cls(**dict(data))

    def replace(self, **changes: Any) -> SlurmOptions:
        """A copy with the options in ``changes`` that are not None changed."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def max_jobs(self) -> int:
        """Worker jobs submitted at most over the sweep (``jobs + resubmits``)."""
        return self.jobs + (self.jobs if self.resubmits is None else self.resubmits)

    def cluster_kwargs(self) -> dict:
        """Keyword arguments of ``dask_jobqueue.SLURMCluster``."""
        kw = dict(
            queue=self.partition,
            account=self.account,
            walltime=self.walltime,
            cores=self.cores,
            processes=self.cores,  # single-threaded workers: bit-identical numbers
            memory=self.memory,
            job_extra_directives=list(self.extra),
            python=self.python or sys.executable,
            job_name="spinglass-icl",
            scheduler_options={"dashboard_address": ":0"},  # any free port: no clash
        )
        if self.log_directory is not None:
            kw["log_directory"] = self.log_directory
        return kw


_CURRENT: contextvars.ContextVar[SlurmOptions | None] = contextvars.ContextVar(
    "spinglass_icl_slurm_options", default=None
)


def current_options() -> SlurmOptions:
    """The options a ``slurm`` sweep uses when ``run_sweep`` gets none: those set by
    :func:`use_options`, else the defaults."""
    return _CURRENT.get() or SlurmOptions()


@contextlib.contextmanager
def use_options(options: SlurmOptions | Mapping | None) -> Iterator[SlurmOptions]:
    """Within the block, ``slurm`` sweeps started without options use ``options``
    (how ``reproduce --executor slurm`` passes its flags to the figures' sweeps)."""
    opts = as_options(options)
    token = _CURRENT.set(opts)
    try:
        yield opts
    finally:
        _CURRENT.reset(token)


def as_options(options: SlurmOptions | Mapping | None) -> SlurmOptions:
    """``options`` as :class:`SlurmOptions` (None: :func:`current_options`)."""
    if options is None:
        return current_options()
    if isinstance(options, SlurmOptions):
        return options
    if isinstance(options, Mapping):
        return SlurmOptions.from_mapping(options)
    raise ParameterError(f"slurm must be SlurmOptions or a dict, got {type(options).__name__}")


def options_from_toml(path: str | Path) -> SlurmOptions | None:
    """The ``[slurm]`` table of a sweep's TOML file as options (None: no table).

    The table holds how the sweep runs, not what it computes: it is not part of the
    spec or its hash (:meth:`~.spec.SweepSpec.from_toml` skips it)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read sweep spec file {str(path)!r}: {exc}") from None
    if "slurm" not in data:
        return None
    try:
        return SlurmOptions.from_mapping(data["slurm"], where=f"{path.name}: [slurm]")
    except ParameterError as exc:
        raise ParameterError(f"{path.name}: [slurm]: {exc}") from None


def _require_slurm() -> Any:
    """dask_jobqueue's ``SLURMCluster``, or ConfigError saying what is missing."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ConfigError(
            "executor slurm needs dask-jobqueue: pip install 'spinglass-icl[slurm]'"
        ) from None
    if shutil.which("sbatch") is None:
        raise ConfigError(
            "executor slurm: no sbatch on PATH (run it on a SLURM login node, or use "
            "--executor dask --scheduler with workers started by hand)"
        )
    return SLURMCluster


def _test_only(script: str) -> None:
    """``sbatch --test-only`` the worker job script: ConfigError with SLURM's words if
    SLURM would refuse it (nothing is queued either way)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as fh:
        fh.write(script)
    try:
        proc = subprocess.run(
            ["sbatch", "--test-only", fh.name], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"executor slurm: sbatch --test-only failed: {exc}") from None
    finally:
        Path(fh.name).unlink(missing_ok=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ConfigError(f"executor slurm: SLURM refuses the worker job: {why}")


def _check_worker_memory(opts: SlurmOptions, batch: int) -> None:
    from dask.utils import parse_bytes

    from ..resources import WORKER_BYTES, format_bytes

    share = parse_bytes(opts.memory) // opts.cores
    need = batch + WORKER_BYTES
    if need > share:
        raise ResourceError(
            f"executor slurm: a worker needs about {format_bytes(need)} (one batch "
            f"{format_bytes(batch)} plus the process) but gets {format_bytes(share)} "
            f"(slurm memory {opts.memory} / cores {opts.cores}): ask for more memory "
            "(--slurm-memory) or fewer cores per job, or use smaller batches (--max-batch)"
        )


def check_submission(
    options: SlurmOptions | Mapping | None = None, worker_bytes: int | None = None
) -> SlurmOptions:
    """Check, before anything is written or queued, that one batch of ``worker_bytes``
    (the sweep's estimate) fits a worker's share of the job's memory (else
    :class:`ResourceError`), and that SLURM would accept the worker job (dask-jobqueue
    and ``sbatch`` present; ``sbatch --test-only`` of its script; else ConfigError with
    SLURM's words). Returns the options."""
    opts = as_options(options)
    if worker_bytes is not None:
        _check_worker_memory(opts, int(worker_bytes))
    _require_slurm()
    from dask_jobqueue.slurm import SLURMJob

    kw = opts.cluster_kwargs()
    kw.pop("scheduler_options")
    kw.pop("log_directory", None)  # nothing is written by the check
    job = SLURMJob(scheduler="tcp://127.0.0.1:8786", name="spinglass-icl-check", **kw)
    _test_only(job.job_script())
    return opts


@contextlib.contextmanager
def slurm_cluster(options: SlurmOptions | Mapping | None = None) -> Iterator[Any]:
    """A started ``SLURMCluster`` with ``options.jobs`` worker jobs submitted, closed
    (its jobs cancelled) on exit."""
    opts = as_options(options)
    SLURMCluster = _require_slurm()
    if opts.log_directory is not None:
        Path(opts.log_directory).mkdir(parents=True, exist_ok=True)
    cluster = SLURMCluster(**opts.cluster_kwargs())
    try:
        _test_only(cluster.job_script())
        cluster.scale(jobs=opts.jobs)
        yield cluster
    finally:
        cluster.close()


def job_ids(cluster: Any) -> set[str]:
    """SLURM ids of the cluster's current worker jobs."""
    return {str(j.job_id) for j in list(cluster.workers.values()) if getattr(j, "job_id", None)}


def _lost(what: str, opts: SlurmOptions) -> ResourceError:
    return ResourceError(
        f"executor slurm: {what}; the rows finished so far are in the store: rerun to "
        f"resume (job logs: {opts.log_directory or 'slurm-<id>.out where sbatch ran'})"
    )


def run_chunks(chunks, fields, kw, options: SlurmOptions | Mapping | None = None, notify=None):
    """The rows of ``chunks``, chunk by chunk, computed by SLURM worker jobs (the
    :func:`~.rows.run_chunk` of every executor). ``notify(text)`` is told which jobs
    were submitted."""
    from distributed import Client, wait
    from distributed.scheduler import KilledWorker

    from .rows import RowFetcher, run_chunk

    opts = as_options(options)
    chunks = list(chunks)
    with slurm_cluster(opts) as cluster, Client(cluster) as client:
        seen = job_ids(cluster)
        if notify is not None:
            where = f" on partition {opts.partition}" if opts.partition else ""
            notify(
                f"submitted {opts.jobs} SLURM job(s){where} ({opts.cores} core(s), "
                f"{opts.memory}, {opts.walltime} each); the sweep starts when they do"
            )
        pending = {
            client.submit(run_chunk, chunk, fields, threads=1, pure=False, **kw) for chunk in chunks
        }
        fetch_rows = RowFetcher()
        while pending:
            try:
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
            except (TimeoutError, asyncio.TimeoutError):  # distinct before Python 3.11
                done = set()
            for f in done:
                try:
                    rows = fetch_rows(f)
                except KilledWorker:
                    why = "worker jobs died three times while running one chunk"
                    raise _lost(why, opts) from None
                if rows is None:  # its job ended before the rows came: recomputed
                    pending.add(f)
                    continue
                yield rows
            if pending:
                seen |= job_ids(cluster)
                if len(seen) > opts.max_jobs:
                    raise _lost(
                        f"{len(seen) - opts.jobs} worker job(s) ended early (scancel, failure "
                        "or walltime), more than the replacements allowed "
                        f"(resubmits = {opts.max_jobs - opts.jobs})",
                        opts,
                    )
                cluster.scale(jobs=opts.jobs)  # replaces jobs that ended (after Dask notices)

"""Running a sweep: the serial, local (process pool) and Dask executors.

All three run the same function (:func:`~.rows.run_chunk`) on the same chunks
(:func:`~.plan.plan_chunks`, planned from the full task list), with the same derived
seeds, so they give the same numbers; only the parent process writes to the store,
one transaction per finished chunk (with ``serial``, per finished P of a ``nested_p``
chunk), so a killed sweep loses at most the chunks in flight and a rerun computes
exactly those.

Every executor solves with ``torch.set_num_threads(1)`` by default (one process per
core is faster than torch's intra-op threads for these sizes and avoids
oversubscription), so the numbers are bit-identical whichever executor and however many
cores; ``serial`` takes another count with ``threads`` (the last bits of the results may
then differ, as CPU reductions split differently).

Before any work, :func:`run_sweep` refuses a sweep of more than
:data:`~spinglass_icl.resources.MAX_SWEEP_ROWS` rows without ``confirm``, caps the
worker count at the CPU cores (with a warning), and checks its memory estimate
(:mod:`spinglass_icl.resources`). Local workers exit when the parent process dies, even
by SIGKILL (``PR_SET_PDEATHSIG`` on Linux, and a thread watching the parent's pid).
"""

from __future__ import annotations

import ast
import contextlib
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..errors import ConfigError, ParameterError, ResourceError, check_choice, check_int
from ..precision import Precision
from ..resources import (
    cap_workers,
    check_grid_size,
    check_memory,
    dense_solve_bytes,
    format_bytes,
    matfree_solve_bytes,
    sweep_bytes,
)
from ..solvers import get_solver
from ..tasks import resolve_device
from .plan import CPU_BATCH_BYTES, DEFAULT_BATCH_BYTES, plan_chunks
from .rows import RowFetcher, iter_chunk_rows, run_chunk, spec_fields
from .spec import SweepSpec, Task
from .store import Store, create_or_open_store

__all__ = [
    "EXECUTORS",
    "ClusterError",
    "ScriptGuardWarning",
    "run_sweep",
    "default_batch_bytes",
    "unguarded_script",
]

EXECUTORS: tuple[str, ...] = ("serial", "local", "dask", "slurm")


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=not enabled,
        file=sys.stderr,
        unit="pt",
        desc="sweep",
        dynamic_ncols=True,
        mininterval=0.5,
    )


def _serial(chunks, fields, kw) -> Iterator[list[dict]]:
    import torch

    n = torch.get_num_threads()
    try:
        for chunk in chunks:
            yield from iter_chunk_rows(chunk, fields, **kw)  # nested chunks: row by P
    finally:
        torch.set_num_threads(n)  # leave the caller's setting as it was


#: seconds between two looks of a worker's watchdog at its parent's pid
WATCHDOG_INTERVAL = 0.5
#: seconds the Dask client waits for a scheduler before giving up
SCHEDULER_TIMEOUT = 3


#: what a local worker runs first (as its pool initializer): exit as soon as the parent
#: is gone. On Linux the kernel sends SIGKILL when the parent dies (PR_SET_PDEATHSIG);
#: everywhere a daemon thread polls the parent pid as a fallback (a reparented worker
#: sees another ``getppid()``). Plain stdlib code run by ``exec``, so that unpickling the
#: initializer imports nothing: the watch starts before the worker imports torch.
_WATCH_PARENT = """
import os, sys, threading, time
if sys.platform.startswith("linux"):
    try:
        import ctypes, signal
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except Exception:
        pass
if os.getppid() != {parent}:
    os._exit(1)
def _watch():
    while True:
        time.sleep({interval})
        if os.getppid() != {parent}:
            os._exit(1)
threading.Thread(target=_watch, name="spinglass-icl-watchdog", daemon=True).start()
"""


def _die_with_parent_initializer(parent: int):
    """The pool initializer of :data:`_WATCH_PARENT` for parent pid ``parent``."""
    import functools

    code = _WATCH_PARENT.format(parent=int(parent), interval=float(WATCHDOG_INTERVAL))
    return functools.partial(exec, code, {})


def _death_cause(procs: dict) -> str:
    """How the first dead one of the worker processes ``procs`` ended (exit code or
    signal), read from the processes themselves -- not assumed."""
    import signal as _signal
    import time

    def exit_codes() -> list[tuple[int, int]]:
        out = []
        for proc in list(procs.values()):
            with contextlib.suppress(Exception):
                proc.join(timeout=1.0)
            code = getattr(proc, "exitcode", None)
            if code is not None:
                out.append((proc.pid, code))
        return out

    # the pool's own thread may be reaping a process at the moment we ask (its exit code
    # then reads None here for a moment): ask again, briefly, until the cause is known
    deadline = time.monotonic() + 3.0
    codes = exit_codes()
    while time.monotonic() < deadline and not any(c[1] != -_signal.SIGTERM for c in codes):
        if len(codes) == len(procs):
            break  # every worker's status is known: all were terminated
        time.sleep(0.05)
        codes = exit_codes()
    # the pool terminates (SIGTERM) the others once one died: prefer another cause
    real = [c for c in codes if c[1] != -_signal.SIGTERM] or codes
    if not real:
        return "a local worker process died (its exit status is unknown)"
    pid, code = real[0]
    if code < 0:
        try:
            name = _signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = f"was killed by {name}"
        if -code == _signal.SIGKILL:
            why += (
                " (sent by a user, a job scheduler, or the kernel's out-of-memory killer:"
                " `dmesg` says which)"
            )
    else:
        why = f"exited with code {code}"
    return f"local worker process {pid} {why}"


def _local(chunks, fields, kw, workers: int) -> Iterator[list[dict]]:
    ctx = mp.get_context("spawn")  # safe with torch's thread pools (no fork after init)
    procs: dict = {}  # every worker process the pool started, for the cause of a death
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_die_with_parent_initializer(os.getpid()),
    ) as pool:

        def submit(chunk):
            fut = pool.submit(run_chunk, chunk, fields, threads=1, **kw)
            procs.update(getattr(pool, "_processes", None) or {})
            return fut

        pending = set()
        it = iter(chunks)
        # keep at most 2 chunks per worker in flight so results stream back in order
        for chunk in it:
            pending.add(submit(chunk))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                try:
                    rows = f.result()
                except BrokenProcessPool:
                    raise ResourceError(
                        f"{_death_cause(procs)}; the rows finished so far are in the store: "
                        "rerun to resume"
                    ) from None
                yield rows
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(submit(nxt))


#: seconds a Dask sweep waits with no worker connected to its scheduler before it ends
#: (all lost, none started); Dask config ``spinglass-icl.worker-wait`` (environment
#: variable ``DASK_SPINGLASS_ICL__WORKER_WAIT``) sets another
WORKER_WAIT = 60.0
#: seconds between two looks of the Dask executor at its futures and workers
DASK_POLL = 0.25


class ClusterError(ResourceError):
    """The Dask cluster of a sweep failed (scheduler lost, no worker left, a task's
    workers died): the rows finished so far are in the store and a rerun resumes."""


_RESUME = "the rows finished so far are in the store: rerun the same command to resume"


@contextlib.contextmanager
def _quiet_distributed():
    """Silence ``distributed``'s loggers (multi-line reconnect and shutdown logs on
    stderr) while the executor runs: what happened is reported once, as one error.
    After a failure they stay silent: a lost scheduler's reconnect task still logs its
    cancellation when the interpreter shuts down."""
    import logging

    roots = ("distributed", "tornado", "asyncio")
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in roots]
    # each logger, not only the roots: Dask's config gives some their own levels
    loggers = [logging.getLogger(n) for n in {*roots, *names}]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    yield
    for lg, lvl in zip(loggers, levels):  # not reached on an error
        lg.setLevel(lvl)


def _worker_wait() -> float:
    import dask

    try:
        return float(dask.config.get("spinglass-icl.worker-wait", WORKER_WAIT))
    except (TypeError, ValueError):
        return WORKER_WAIT


def _n_workers(client) -> int | None:
    """Workers connected to the scheduler now (None if it cannot be asked)."""
    try:
        return len(client.scheduler_info(n_workers=-1).get("workers", {}))
    except TypeError:  # older distributed: no n_workers argument
        return len(client.scheduler_info().get("workers", {}))
    except Exception:  # noqa: BLE001 - the scheduler is gone: the caller's status check says so
        return None


def _dask_results(client, futures, where: str) -> Iterator[list[dict]]:
    """The rows of ``futures`` as they finish; ends (ClusterError, one line) when the
    scheduler is lost, when no worker has been connected for :data:`WORKER_WAIT` s, or
    when a task's workers keep dying (``KilledWorker``)."""
    import time

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    wait_s = _worker_wait()
    pending = list(futures)
    fetch_rows = RowFetcher()
    alone_since: float | None = None
    last_look = 0.0
    while pending:
        # "lost": its result was on a worker that died; the scheduler recomputes it
        done = [f for f in pending if f.status not in ("pending", "lost")]
        if done:
            done_ids = {id(f) for f in done}
            pending = [f for f in pending if id(f) not in done_ids]
            stalled = False
            for i, f in enumerate(done):
                if f.status == "cancelled" or client.status != "running":
                    raise ClusterError(
                        f"lost the Dask scheduler {where} mid-run (task {f.status}); "
                        f"{len(pending) + len(done) - i} chunk(s) not finished; {_RESUME}"
                    )
                try:
                    row = fetch_rows(f)
                except KilledWorker as exc:
                    raise ClusterError(
                        f"Dask workers died while running one chunk, more often than the "
                        f"scheduler retries it ({' '.join(str(exc).split())[:160]}); "
                        f"{_RESUME}, with more memory per worker or a smaller --max-batch"
                    ) from None
                except CommClosedError as exc:  # the scheduler died while we asked
                    raise ClusterError(
                        f"lost the Dask scheduler {where} mid-run "
                        f"({' '.join(str(exc).split())[:120]}); "
                        f"{len(pending) + len(done) - i} chunk(s) not finished; {_RESUME}"
                    ) from None
                if row is None:  # its worker died before the rows came: recomputed
                    pending.append(f)
                    stalled = True
                    continue
                yield row
            if not stalled:
                continue
        if client.status != "running":
            raise ClusterError(
                f"lost the Dask scheduler {where} mid-run (client {client.status}); "
                f"{len(pending)} chunk(s) not finished; {_RESUME}"
            )
        now = time.monotonic()
        if now - last_look >= 1.0:
            last_look = now
            n = _n_workers(client)
            if n == 0:
                alone_since = now if alone_since is None else alone_since
                if now - alone_since >= wait_s:
                    raise ClusterError(
                        f"no Dask worker connected to the scheduler {where} for "
                        f"{wait_s:g} s (all lost, or none started); {len(pending)} chunk(s) "
                        f"not finished; {_RESUME} once workers are running"
                    )
            elif n is not None:
                alone_since = None
        time.sleep(DASK_POLL)


def _dask(chunks, fields, kw, workers: int, scheduler: str | None) -> Iterator[list[dict]]:
    from distributed import Client, LocalCluster

    cluster = None
    with _quiet_distributed():
        if scheduler:
            try:
                client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, bad address, ...
                msg = " ".join(str(exc).split())[:200] or type(exc).__name__
                raise ConfigError(
                    f"scheduler: cannot connect to {scheduler!r} within {SCHEDULER_TIMEOUT} s "
                    f"({msg})"
                ) from None
            where = repr(scheduler)
        else:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=40,
            )
            client = Client(cluster)
            where = "of the local Dask cluster"
        try:
            futures = [
                client.submit(run_chunk, chunk, fields, threads=1, pure=False, **kw)
                for chunk in chunks
            ]
            yield from _dask_results(client, futures, where)
        finally:
            with contextlib.suppress(Exception):
                client.close(timeout=SCHEDULER_TIMEOUT)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close(timeout=SCHEDULER_TIMEOUT)


def default_batch_bytes(device) -> int:
    """Memory budget of one batch: :data:`~.plan.DEFAULT_BATCH_BYTES` on the CPU; on a
    CUDA device half of its free memory (at least the CPU default), so that a GPU
    solves as many same-shape instances at once as it holds."""
    import torch

    dev = resolve_device(device)
    if dev.type != "cuda":
        return DEFAULT_BATCH_BYTES
    free, _ = torch.cuda.mem_get_info(dev)
    return max(DEFAULT_BATCH_BYTES, int(free) // 2)


def _check_sweep_memory(spec, executor, workers, scheduler, batched, batch_bytes, dev) -> int:
    """Refuse (ResourceError) a sweep whose parent bookkeeping plus one batch per worker
    exceeds the memory available (see :func:`~spinglass_icl.resources.sweep_bytes`);
    return the estimate of one worker's batch (bytes)."""

    def values(k):
        return list(spec.grid[k]) if k in spec.grid else [spec.fixed[k]]

    D, N, P = max(values("D")), max(values("N")), max(values("P"))
    solvers = values("solver")
    worst = max(solvers, key=lambda s: get_solver(s).dense_matrices)
    if spec.matfree:
        one = matfree_solve_bytes(D, N, P, spec.test_tasks)
    else:
        one = dense_solve_bytes(D, N, P, worst, spec.test_tasks)
    batch = one
    if batched and not spec.matfree:
        cap = batch_bytes if dev.type == "cuda" else min(batch_bytes, 4 * CPU_BATCH_BYTES)
        batch = max(one, cap)
    remote = (executor == "dask" and scheduler) or executor == "slurm"
    in_process = executor == "serial"
    n_workers = 0 if remote else (1 if in_process else workers)
    hint = (
        "set matfree = true in the spec (matrix-free solvers, no n^2 matrices)"
        if not spec.matfree and one > (1 << 30)
        else "use fewer workers (--workers), a smaller grid or fewer repeats"
    )
    check_memory(
        sweep_bytes(spec.n_tasks, batch, n_workers, in_process=in_process),
        f"sweep of {spec.n_tasks:,} rows (largest point D={D} N={N} P={P}: "
        f"{format_bytes(one)} per instance) on {max(n_workers, 1)} process(es)",
        hint,
        device=dev,
        device_estimate=batch,
    )
    return batch


def _options(executor, dtype, batched, device, workers, scheduler, max_batch, threads, batch_bytes):
    """:func:`run_sweep`'s execution options, checked and resolved: ``(precision,
    device, workers, max_batch, threads, batch_bytes)``."""
    check_choice("executor", executor, EXECUTORS)
    prec = Precision.of(dtype)
    if prec.name == "mixed" and not batched:
        raise ParameterError(
            "dtype must be float64 or float32 when batched is false, got 'mixed' "
            "(mixed precision is a property of the batched AMP kernel)"
        )
    dev = resolve_device(device)
    from ..resources import cpu_count

    if workers is None:
        workers = min(cpu_count(), 8)
    workers = check_int("workers", workers)
    if executor == "local" or (executor == "dask" and not scheduler):
        workers = cap_workers(workers)
    if max_batch is not None:
        max_batch = check_int("max_batch", max_batch)
    threads = 1 if threads is None else check_int("threads", threads)
    if batch_bytes is None:
        batch_bytes = default_batch_bytes(dev)
    batch_bytes = check_int("batch_bytes", batch_bytes)
    return prec, dev, workers, max_batch, threads, batch_bytes


def _todo(spec, st, batched, max_batch, batch_bytes, prec, dev):
    """``(tasks, done keys, chunks still to run)`` of a sweep and its store."""
    tasks: list[Task] = spec.tasks()
    chunks = plan_chunks(
        tasks,
        batched=batched,
        max_batch=max_batch,
        budget=batch_bytes,
        itemsize=prec.itemsize,  # mixed: float32 matrices
        cache_bytes=CPU_BATCH_BYTES if dev.type == "cpu" else None,
        nested=spec.nested_p,
    )
    done = st.done_keys(t.key for t in tasks)
    return tasks, done, [c for c in chunks if any(t.key not in done for t in c)]


def run_sweep(
    spec: SweepSpec,
    store: str | Path | Store,
    *,
    executor: str = "local",
    workers: int | None = None,
    device: str = "cpu",
    batched: bool = True,
    progress: bool = True,
    scheduler: str | None = None,
    dtype: str = "float64",
    max_batch: int | None = None,
    batch_bytes: int | None = None,
    threads: int | None = None,
    confirm: bool = False,
    slurm=None,
) -> Store:
    """Run (or resume) a sweep and return its store.

    Parameters
    ----------
    spec
        The sweep.
    store
        Path of the SQLite store (created if missing; an existing file must be a sweep
        store, else :class:`~spinglass_icl.errors.ConfigError` and it is left untouched),
        or an open :class:`Store`.
    executor
        ``"serial"``, ``"local"`` (process pool; default), ``"dask"`` or ``"slurm"``
        (worker jobs submitted to SLURM; :mod:`.slurm`).
    workers
        Processes for ``local`` / a Dask LocalCluster (default: CPU count, at most 8;
        more than the CPU count is capped to it, with a warning).
    device
        ``"cpu"`` or ``"cuda[:k]"``; CUDA sweeps should use ``serial`` (one process
        feeding the GPU with large batches).
    batched
        Solve same-shape instances as one batch (:mod:`.rows`).
    progress
        Show a tqdm bar (points done / total, rate, ETA) on stderr.
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``); without it the
        ``dask`` executor starts a LocalCluster.
    dtype
        ``"float64"`` (default), ``"float32"``, or ``"mixed"`` (batched AMP only: its
        dense matrices in float32, everything else in float64; agrees with float64 to
        ~1e-7 relative and meets the authors' tol = 1e-6, where float32 AMP stalls
        near 1e-6; see :func:`~spinglass_icl.solvers.lowrank.solve_amp_batched`).
    max_batch, batch_bytes
        Cap on instances per batch, and the memory budget per batch (bytes; default
        :data:`~.plan.DEFAULT_BATCH_BYTES` on the CPU, on a GPU half of its free
        memory, at least that). On the CPU batches are further capped to keep their
        matrices in cache (:data:`~.plan.CPU_BATCH_BYTES`).
    threads
        ``torch.set_num_threads`` for the ``serial`` executor (default 1, as the
        ``local`` and ``dask`` workers always use: results are then bit-identical across
        executors and machines' core counts).
    confirm
        Run a sweep of more than :data:`~spinglass_icl.resources.MAX_SWEEP_ROWS` rows
        (otherwise :class:`~spinglass_icl.errors.ResourceError` before anything starts).
    slurm
        Options of the ``slurm`` executor: a :class:`~.slurm.SlurmOptions` or a dict of
        its fields (default: :func:`~.slurm.current_options`).

    Returns
    -------
    Store
        The store, open, holding one row per finished (point, repeat).
    """
    if not isinstance(spec, SweepSpec):
        raise ParameterError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    executor, prec, dev, workers, max_batch, threads, batch_bytes, slurm = _checked_run(
        spec, executor, dtype, batched, device, workers, scheduler, max_batch, threads,
        batch_bytes, confirm, slurm,
    )  # fmt: skip
    st = store if isinstance(store, Store) else create_or_open_store(store)
    st.add_spec(spec)
    tasks, done, todo = _todo(spec, st, batched, max_batch, batch_bytes, prec, dev)
    kw = {"device": dev, "dtype": prec, "batched": batched}
    results = _chunk_results(executor, todo, spec, kw, workers, scheduler, threads, slurm, progress)
    with _progress(len(tasks), len(done), progress) as bar:
        for rows in results:
            bar.update(st.write(rows))
    return st


def _checked_run(
    spec: SweepSpec,
    executor: str,
    dtype: str,
    batched: bool,
    device: str,
    workers: int | None,
    scheduler: str | None,
    max_batch: int | None,
    threads: int | None,
    batch_bytes: int | None,
    confirm: bool,
    slurm,
) -> tuple:
    """:func:`run_sweep`'s options checked and resolved before any store is touched: the
    grid size, the memory of one batch per worker, a SLURM submission that would be taken,
    and the script guard. Returns ``(executor, precision, device, workers, max_batch,
    threads, batch_bytes, slurm)``."""
    prec, dev, workers, max_batch, threads, batch_bytes = _options(
        executor, dtype, batched, device, workers, scheduler, max_batch, threads, batch_bytes
    )
    check_grid_size(spec.n_tasks, bool(confirm))
    batch = _check_sweep_memory(spec, executor, workers, scheduler, batched, batch_bytes, dev)
    if executor == "slurm":  # fits a worker, and SLURM would take the job, before a store
        from .slurm import check_submission

        slurm = check_submission(slurm, worker_bytes=batch)
    executor = _check_script_guard(executor, scheduler)
    return executor, prec, dev, workers, max_batch, threads, batch_bytes, slurm


def _chunk_results(
    executor: str,
    todo: list,
    spec: SweepSpec,
    kw: dict,
    workers: int | None,
    scheduler: str | None,
    threads: int | None,
    slurm,
    progress: bool,
):
    """The rows of the chunks ``todo``, chunk by chunk: from SLURM jobs
    (:func:`~.slurm.run_chunks`) or from :func:`_results`; the spec's solver options
    travel as plain data (:func:`~.rows.spec_fields`)."""
    if executor == "slurm" and todo:
        from .slurm import run_chunks

        return run_chunks(todo, spec_fields(spec), kw, slurm, _notify if progress else None)
    return _results(executor, todo, spec_fields(spec), kw, workers, scheduler, threads)


def _notify(text: str) -> None:
    """A line on stderr above the progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(f"spinglass-icl: {text}", file=sys.stderr)


class ScriptGuardWarning(UserWarning):
    """A sweep was started from a script's top-level code without a main guard; its
    worker processes would re-run the script, so it runs serially instead."""


def _is_main_test(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either order)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    sides = [test.left, *test.comparators]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return isinstance(test.ops[0], ast.Eq) and bool(names) and bool(consts)


def unguarded_script() -> str | None:
    """The path of the script (``__main__``) whose top-level code is running this call
    outside an ``if __name__ == "__main__":`` block, or None (a guarded call, a function
    called from elsewhere, an interactive session). Worker processes started with
    ``spawn`` import the script again, and would run such a call again."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path:
        return None
    name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if name == "__main__" or name.endswith(".__main__"):
        return None  # ``python -m package``: spawn never re-runs a package's __main__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            break
        frame = frame.f_back
    if frame is None:
        return None
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(path).read_text(), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test):
            if node.lineno <= line <= (node.end_lineno or node.lineno):
                return None
    return str(path)


_GUARD = 'if __name__ == "__main__":'


def _check_script_guard(executor: str, scheduler: str | None) -> str:
    """``executor``, or ``"serial"`` (with a :class:`ScriptGuardWarning` that shows the
    guard) when worker processes would re-run the calling script."""
    if executor in ("serial", "slurm") or (executor == "dask" and scheduler):
        return executor  # SLURM's workers are jobs of their own: they never run the script
    script = unguarded_script()
    if script is None:
        return executor
    import warnings

    warnings.warn(
        f"run_sweep is called at the top level of {script!r} without a main guard; "
        f"its {executor!r} worker processes would start by running the script again, so "
        f"this sweep runs serially in this process. To use several processes, put the "
        f"call under `{_GUARD}` (see docs/cluster.md)",
        ScriptGuardWarning,
        stacklevel=4,  # run_sweep > _checked_run > here
    )
    return "serial"


def _results(executor, todo, fields, kw, workers, scheduler, threads):
    """The rows of the chunks ``todo``, chunk by chunk, from the chosen executor."""
    if executor == "serial" or not todo:
        return _serial(todo, fields, {**kw, "threads": threads})
    if executor == "local":
        return _local(todo, fields, kw, workers)
    return _dask(todo, fields, kw, workers, scheduler)

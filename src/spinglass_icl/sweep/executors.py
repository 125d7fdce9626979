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
from .rows import iter_chunk_rows, run_chunk, spec_fields
from .spec import SweepSpec, Task
from .store import Store, create_or_open_store

__all__ = ["EXECUTORS", "run_sweep", "default_batch_bytes"]

EXECUTORS: tuple[str, ...] = ("serial", "local", "dask")


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


def _local(chunks, fields, kw, workers: int) -> Iterator[list[dict]]:
    ctx = mp.get_context("spawn")  # safe with torch's thread pools (no fork after init)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_die_with_parent_initializer(os.getpid()),
    ) as pool:
        pending = set()
        it = iter(chunks)
        # keep at most 2 chunks per worker in flight so results stream back in order
        for chunk in it:
            pending.add(pool.submit(run_chunk, chunk, fields, threads=1, **kw))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                try:
                    rows = f.result()
                except BrokenProcessPool:
                    raise ResourceError(
                        "a local worker process died (killed by a signal, e.g. the kernel's "
                        "out-of-memory killer); the rows finished so far are in the store: "
                        "rerun to resume, with fewer --workers or a smaller --max-batch"
                    ) from None
                yield rows
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(run_chunk, nxt, fields, threads=1, **kw))


def _dask(chunks, fields, kw, workers: int, scheduler: str | None) -> Iterator[list[dict]]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, bad address, ...
            msg = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ConfigError(
                f"scheduler: cannot connect to {scheduler!r} within {SCHEDULER_TIMEOUT} s ({msg})"
            ) from None
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        )
        client = Client(cluster)
    try:
        futures = [
            client.submit(run_chunk, chunk, fields, threads=1, pure=False, **kw) for chunk in chunks
        ]
        for f in as_completed(futures):
            yield f.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


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


def _check_sweep_memory(spec, executor, workers, scheduler, batched, batch_bytes, dev) -> None:
    """Refuse (ResourceError) a sweep whose parent bookkeeping plus one batch per worker
    exceeds the memory available (see :func:`~spinglass_icl.resources.sweep_bytes`)."""

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
    remote = executor == "dask" and scheduler
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
        ``"serial"``, ``"local"`` (process pool; default) or ``"dask"``.
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

    Returns
    -------
    Store
        The store, open, holding one row per finished (point, repeat).
    """
    if not isinstance(spec, SweepSpec):
        raise ParameterError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    prec, dev, workers, max_batch, threads, batch_bytes = _options(
        executor, dtype, batched, device, workers, scheduler, max_batch, threads, batch_bytes
    )
    check_grid_size(spec.n_tasks, bool(confirm))
    _check_sweep_memory(spec, executor, workers, scheduler, batched, batch_bytes, dev)
    st = store if isinstance(store, Store) else create_or_open_store(store)
    st.add_spec(spec)
    tasks, done, todo = _todo(spec, st, batched, max_batch, batch_bytes, prec, dev)
    kw = {"device": dev, "dtype": prec, "batched": batched}
    results = _results(executor, todo, spec_fields(spec), kw, workers, scheduler, threads)
    with _progress(len(tasks), len(done), progress) as bar:
        for rows in results:
            bar.update(st.write(rows))
    return st


def _results(executor, todo, fields, kw, workers, scheduler, threads):
    """The rows of the chunks ``todo``, chunk by chunk, from the chosen executor."""
    if executor == "serial" or not todo:
        return _serial(todo, fields, {**kw, "threads": threads})
    if executor == "local":
        return _local(todo, fields, kw, workers)
    return _dask(todo, fields, kw, workers, scheduler)

"""Running a sweep: the serial, local (process pool) and Dask executors.

All three run the same function (:func:`~.rows.run_chunk`) on the same chunks
(:func:`~.plan.plan_chunks`, planned from the full task list), with the same derived
seeds, so they give the same numbers; only the parent process writes to the store,
one transaction per finished chunk (with ``serial``, per finished P of a ``nested_p``
chunk), so a killed sweep loses at most the chunks in flight and a rerun computes
exactly those.

``local`` and ``dask`` workers run with ``torch.set_num_threads(1)`` (one process per
core is faster than torch's intra-op threads for these sizes and avoids
oversubscription); ``serial`` uses torch's default thread count.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from ..errors import ParameterError, check_choice, check_int
from ..precision import Precision
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


def _local(chunks, fields, kw, workers: int) -> Iterator[list[dict]]:
    ctx = mp.get_context("spawn")  # safe with torch's thread pools (no fork after init)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
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
                yield f.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(run_chunk, nxt, fields, threads=1, **kw))


def _dask(chunks, fields, kw, workers: int, scheduler: str | None) -> Iterator[list[dict]]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
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
        Processes for ``local`` / a Dask LocalCluster (default: CPU count, at most 8).
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
        ``torch.set_num_threads`` for the ``serial`` executor (default: leave torch's
        setting). ``local`` and ``dask`` workers always use 1.

    Returns
    -------
    Store
        The store, open, holding one row per finished (point, repeat).
    """
    if not isinstance(spec, SweepSpec):
        raise ParameterError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    check_choice("executor", executor, EXECUTORS)
    prec = Precision.of(dtype)
    if prec.name == "mixed" and not batched:
        raise ParameterError(
            "dtype must be float64 or float32 when batched is false, got 'mixed' "
            "(mixed precision is a property of the batched AMP kernel)"
        )
    dev = resolve_device(device)
    if workers is None:
        import os

        workers = min(os.cpu_count() or 1, 8)
    workers = check_int("workers", workers)
    if max_batch is not None:
        max_batch = check_int("max_batch", max_batch)
    if threads is not None:
        threads = check_int("threads", threads)
    if batch_bytes is None:
        batch_bytes = default_batch_bytes(dev)
    batch_bytes = check_int("batch_bytes", batch_bytes)
    st = store if isinstance(store, Store) else create_or_open_store(store)
    st.add_spec(spec)
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
    todo = [c for c in chunks if any(t.key not in done for t in c)]
    fields = spec_fields(spec)
    kw = {"device": dev, "dtype": prec, "batched": batched}
    if executor == "serial" or not todo:
        results = _serial(todo, fields, {**kw, "threads": threads})
    elif executor == "local":
        results = _local(todo, fields, kw, workers)
    else:
        results = _dask(todo, fields, kw, workers, scheduler)
    with _progress(len(tasks), len(done), progress) as bar:
        for rows in results:
            new = st.write(rows)
            bar.update(new)
    return st

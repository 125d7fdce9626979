"""Planning a sweep: which tasks are solved together, deterministically.

A *chunk* is a list of :class:`~.spec.Task` with the same :attr:`Task.group` (same D, P,
lam, beta, solver, convention, noise), solved as one batch (:mod:`.rows`).
:func:`plan_chunks` splits a task list into chunks from the full task list, before any
is skipped, so a resumed sweep recomputes exactly the batches an uninterrupted one
would and gets bit-identical numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ..solvers import get_solver
from ..solvers.operators import use_lowrank_matvec
from .spec import Task

__all__ = ["CPU_BATCH_BYTES", "DEFAULT_BATCH_BYTES", "batch_size_for", "plan_chunks"]

#: default memory budget of one batch (dense G, J^2 and temporaries) on a GPU
DEFAULT_BATCH_BYTES = 1 << 30
#: on the CPU, AMP is bound by memory bandwidth (one pass over J^2, and G unless P <= n,
#: per iteration): batches whose matrices stay in cache are fastest, so CPU batches are
#: capped at this many bytes of n x n matrices (at least one instance). Measured at
#: D = 20 (2-core AMD EPYC VM, 32 MB L3 shared with other jobs; noisy): 4-12 MB batches
#: run 1.4-1.9x the rows/s of a per-instance loop, 25 MB batches fall back to ~1.1x
CPU_BATCH_BYTES = 8 << 20


def batch_size_for(
    D: int, P: int, solver: str, itemsize: int = 8, budget: int = DEFAULT_BATCH_BYTES
) -> int:
    """Largest batch whose dense solver state fits ``budget`` bytes (at least 1).

    Per instance: ``P n`` features plus the solver's
    :attr:`~spinglass_icl.solvers.Solver.batch_matrices` ``n x n`` matrices (4 for exact
    and AMP, 6 for rbp: messages on every pair), ``n = (D+1)^2``.
    """
    n = (D + 1) ** 2
    mats = get_solver(solver).batch_matrices
    per = itemsize * (P * n + mats * n * n)
    return max(1, int(budget // per))


def plan_chunks(
    tasks: Sequence[Task],
    *,
    batched: bool = True,
    max_batch: int | None = None,
    budget: int = DEFAULT_BATCH_BYTES,
    itemsize: int = 8,
    cache_bytes: int | None = None,
    nested: bool = False,
) -> list[list[Task]]:
    """Split tasks into chunks (lists of tasks solved together), deterministically.

    ``batched=False`` gives one task per chunk. Otherwise tasks are grouped by
    :attr:`Task.group` (in first-appearance order) and each group is cut into chunks of
    at most :func:`batch_size_for` (and ``max_batch``) tasks of equal size. With
    ``cache_bytes`` (the CPU, see :data:`CPU_BATCH_BYTES`) a batch also holds at most
    ``cache_bytes`` of its ``n x n`` matrices (J^2, and G unless the AMP kernel applies G
    through the factors, ``P <= n``), at least one instance.

    ``nested=True`` (a ``nested_p`` spec) makes a chunk of whole families
    (:attr:`Task.family`: every P, lam, beta and solver of one repeat's prompt
    stream), as many families per chunk as fit at their largest P.
    """
    if not batched:
        return [[t] for t in tasks]
    if nested:
        return _plan_nested(tasks, max_batch, budget, itemsize, cache_bytes)
    groups: dict[tuple, list[Task]] = defaultdict(list)
    for t in tasks:
        groups[t.group].append(t)
    chunks = []
    for group, ts in groups.items():
        D, P, solver = group[0], group[1], group[4]
        low = use_lowrank_matvec(P, (D + 1) ** 2, itemsize)
        mats = 1 if get_solver(solver).factor_matvec and low else 2
        b = _batch_cap(D, P, solver, mats, itemsize, budget, cache_bytes, max_batch)
        chunks.extend(_balanced(ts, b))
    return chunks


def _batch_cap(D, P, solver, mats, itemsize, budget, cache_bytes, max_batch) -> int:
    """Instances per batch: :func:`batch_size_for`, at most ``max_batch`` and, on the
    CPU, at most ``cache_bytes`` of ``mats`` n x n matrices each (at least one)."""
    b = batch_size_for(D, P, solver, itemsize, budget)
    if cache_bytes is not None:
        n = (D + 1) ** 2
        b = min(b, max(1, cache_bytes // (mats * itemsize * n * n)))
    if max_batch is not None:
        b = min(b, max_batch)
    return b


def _balanced(items: list, b: int) -> list[list]:
    """``items`` cut into the fewest pieces of at most ``b``, of balanced sizes."""
    k = -(-len(items) // b)  # number of pieces
    size = -(-len(items) // k)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _plan_nested(tasks, max_batch, budget, itemsize, cache_bytes) -> list[list[Task]]:
    """Chunks of whole families for a ``nested_p`` sweep (see :func:`plan_chunks`)."""
    fams: dict[tuple, list[Task]] = defaultdict(list)
    for t in tasks:
        fams[t.family].append(t)
    # families with the same points (all of them, in a Cartesian grid) stack into batches
    kinds: dict[tuple, list[list[Task]]] = defaultdict(list)
    for ts in fams.values():
        p = ts[0].params
        pts = tuple(
            sorted(
                (t.params["P"], t.params["lam"], t.params["beta"], t.params["solver"]) for t in ts
            )
        )
        # families of any N stack: the kernel sees only the factors (c folded into u)
        kinds[(p["D"], p["convention"], p["noise"], pts)].append(ts)
    chunks = []
    for key, fs in kinds.items():
        D, pts = key[0], key[-1]
        Pmax = max(x[0] for x in pts)
        solver = max((x[3] for x in pts), key=lambda s: get_solver(s).batch_matrices)
        b = _batch_cap(D, Pmax, solver, 1, itemsize, budget, cache_bytes, max_batch)
        chunks.extend([t for f in part for t in f] for part in _balanced(fs, b))
    return chunks

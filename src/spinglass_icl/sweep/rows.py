"""Computing rows: one task at a time, or a chunk of same-shape tasks as one batch.

Every task's instance is drawn from its own derived seed exactly as
:func:`~spinglass_icl.hamiltonian.make_instance` would draw it alone. With
``batched=True`` a chunk (:mod:`.plan`) is solved as one batch on its pair-Gram
operators (:class:`~spinglass_icl.solvers.PairOperators`): the factors of its
instances are stacked (the prefactor of each task's own N folded into ``u``, so tasks
of different N share a batch) and every path hands back one
:class:`~spinglass_icl.solvers.SolverResult` for the chunk. Rows then get their
observables from :mod:`spinglass_icl.observables`: the contrast, and the test error of
all converged rows of equal N in one call (the closed form by default, or Monte Carlo
on the shared test prompts).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..hamiltonian import build_instance
from ..observables import contrast, spins_to_W, test_error
from ..precision import Precision
from ..solvers import (
    Operators,
    PairOperators,
    SolverConfig,
    SolverResult,
    get_solver,
    operators_for,
    solve,
)
from ..solvers.lowrank import PairSystem
from ..solvers.matfree import make_lowrank_instance
from ..tasks import Factors, draw_factors, factors_range
from .spec import SweepSpec, Task

__all__ = ["RowOptions", "RowFetcher", "iter_chunk_rows", "run_chunk", "spec_fields"]

#: seconds the first look waits for a finished chunk's rows (they take milliseconds;
#: :class:`RowFetcher` doubles it on each miss): a chunk seen finished whose worker died
#: before its rows were fetched is recomputed by the scheduler, and an unbounded fetch
#: would wait for that with no worker left
RESULT_WAIT = 2.0


@dataclass(frozen=True)
class RowOptions:
    """The part of a :class:`~.spec.SweepSpec` that computing rows needs (validated by
    the spec; plain data, so a worker needs no spec object)."""

    solver_options: dict
    observables: tuple
    test_tasks: int
    store_arrays: bool
    contrast_kind: str
    matfree: bool
    test_error: str
    nested_p: bool
    sampler: str

    def solver_config(self, params: dict, damping: float | None = None) -> SolverConfig:
        """The :class:`SolverConfig` of a task's parameters and the spec's options.

        A direct solver (not :attr:`~spinglass_icl.solvers.Solver.iterative`: ``exact``)
        takes its own settings, not the spec's iteration options. With
        ``damping = "auto"`` in the options the paths of solvers that use damping pass
        the damping they resolved (:func:`_auto_damping`)."""
        solver = get_solver(params["solver"])
        if not solver.iterative:
            return SolverConfig(solver.name, beta=params["beta"])
        opts = dict(self.solver_options)
        if damping is not None:
            opts["damping"] = damping
        elif opts["damping"] == "auto":
            if solver.uses_damping:
                raise ValueError("damping auto must be resolved before making the config")
            opts["damping"] = None  # not used: the solver's default
        return SolverConfig(solver.name, beta=params["beta"], **opts)


def _auto_damping(opts: RowOptions, params: dict, ops: Operators) -> float | None:
    """``damping = "auto"``: one damping for a batch given by its operators, from the
    AMP stability analysis (docs/amp-stability.md); None when the options give a number
    or the solver does not use damping."""
    solver = get_solver(params["solver"])
    if opts.solver_options["damping"] != "auto" or not solver.uses_damping:
        return None
    from ..solvers.stability import batch_auto_damping, stability_from_operators

    st = stability_from_operators(
        ops, params["beta"], solver=solver.name, damping=0.5,
        tol=opts.solver_options["tol"], max_iter=opts.solver_options["max_iter"],
    )  # fmt: skip
    return batch_auto_damping(st)[0]


def spec_fields(spec: SweepSpec) -> RowOptions:
    """The :class:`RowOptions` of a spec."""
    return RowOptions(
        solver_options=dict(spec.solver_options),
        observables=tuple(spec.observables),
        test_tasks=spec.test_tasks,
        store_arrays=spec.store_arrays,
        contrast_kind=spec.contrast_kind,
        matfree=spec.matfree,
        test_error=spec.test_error,
        nested_p=spec.nested_p,
        sampler=spec.sampler,
    )


def _factors(task: Task, device, dtype, nested: bool = False, sampler: str = "prompts") -> Factors:
    """The factors of the task's training instance: exactly those of
    ``make_instance(..., seed=task.seed)`` by default; of the nested stream if
    ``nested``; drawn directly from their law with ``sampler="factors"``."""
    return draw_factors(
        task.task_config, sampler=sampler, nested=nested, seed=task.seed, device=device,
        dtype=dtype,
    )  # fmt: skip


def _nested_steps(
    tasks: Sequence[Task], opts: RowOptions, dev, prec: Precision
) -> Iterator[tuple[list[int], SolverResult]]:
    """Solve a ``nested_p`` chunk -- the tasks of one or more families (same D,
    convention, noise and grid points; any N and repeat; :attr:`Task.family`) -- one P
    at a time, yielding ``(task indices, result)`` per P.

    Every family's prompts are drawn once, in order of P; the pair Gram matrix and the
    fields are accumulated over the prompts ``P_prev <= mu < P`` between consecutive P
    of the chunk (:class:`~spinglass_icl.solvers.lowrank.PairSystem`; always the same
    segments, so a resumed run gets bit-identical numbers), and at each P the tasks of
    every (lam, beta, solver) are solved as one batch over the families. The numbers
    agree with the per-instance path (which draws each instance alone) to rounding."""
    fams: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        fams[t.family].append(i)
    fam_keys = list(fams)
    B = len(fam_keys)
    D = tasks[0].params["D"]
    # at each P: the (lam, beta, solver) points, each with its task in every family
    points: dict[int, dict[tuple, list[int]]] = defaultdict(lambda: defaultdict(list))
    for f in fam_keys:
        for i in fams[f]:
            p = tasks[i].params
            points[p["P"]][(p["lam"], p["beta"], p["solver"])].append(i)
    for P, pts in points.items():
        for pt, idx in pts.items():
            if len(idx) != B:
                raise ValueError(
                    f"nested chunk: point P={P}, {pt} is not in every family of the chunk"
                )
    first = [tasks[fams[f][0]] for f in fam_keys]
    system = PairSystem.empty(B, D + 1, device=dev, dtype=prec.dtype)
    for P in sorted(points):
        seg = []
        for t in first:  # rows prev:P of each family's stream, c folded into u
            f = factors_range(
                t.task_config, system.P, P, sampler=opts.sampler, seed=t.seed, device=dev,
                dtype=prec.dtype,
            )  # fmt: skip
            seg.append((f.u * f.config.prefactor, f.q, f.y))
        system.extend(*(torch.stack([x[j] for x in seg]) for j in range(3)))
        del seg
        # one set of operators per P: every (lam, beta, solver) shares their matrices
        ops = system.operators(tasks[0].params["lam"], matrix_dtype=prec.matrix_dtype)
        step: list[int] = []
        parts: list[SolverResult] = []
        for (lam, beta, solver), idx in points[P].items():
            pt = {"solver": solver, "beta": beta}
            ops_lam = ops.with_lam(lam)
            cfg = opts.solver_config(pt, _auto_damping(opts, pt, ops_lam))
            parts.append(solve(ops_lam, cfg, warn=False))
            step.extend(idx)
        del ops
        yield step, SolverResult.cat(parts)


def _matfree_result(tasks, opts: RowOptions, dev, prec: Precision) -> SolverResult:
    """Solve each task with the matrix-free solvers (one at a time: large D)."""
    parts = []
    for t in tasks:
        p = t.params
        inst = make_lowrank_instance(
            p["D"], p["N"], p["P"], p["lam"], convention=p["convention"], noise=p["noise"],
            seed=t.seed, device=dev, dtype=prec.dtype, sampler=opts.sampler,
        )  # fmt: skip
        parts.append(solve(inst, opts.solver_config(p), backend="matfree", warn=False))
    return SolverResult.cat(parts)


def _batched_result(tasks, opts: RowOptions, dev, prec: Precision) -> SolverResult:
    """Solve a chunk of one :attr:`Task.group` as one batch on the stacked factors."""
    if len({t.group for t in tasks}) != 1:
        raise ValueError("a batched chunk must hold tasks of one group")
    prs = [_factors(t, dev, prec.dtype, sampler=opts.sampler) for t in tasks]
    # S^mu = c u (x) q with c of each task's own N (tasks may differ in N): fold c
    # into u so that one batch holds them all
    u = torch.stack([pr.u * pr.config.prefactor for pr in prs])
    q = torch.stack([pr.q for pr in prs])
    y = torch.stack([pr.y for pr in prs])
    del prs
    p = tasks[0].params
    ops = PairOperators.of_factors(u, q, y, 1.0, p["lam"], matrix_dtype=prec.matrix_dtype)
    cfg = opts.solver_config(p, _auto_damping(opts, p, ops))
    return solve(ops, cfg, warn=False)


def _per_instance_result(tasks, opts: RowOptions, dev, prec: Precision) -> SolverResult:
    """Solve each task alone with :func:`~spinglass_icl.solvers.solve` (the reference)."""
    parts = []
    for t in tasks:
        f = _factors(t, dev, prec.dtype, opts.nested_p, opts.sampler)
        inst = build_instance(f, t.params["lam"])
        ops = operators_for(inst, get_solver(t.params["solver"]))
        d = _auto_damping(opts, t.params, ops)
        parts.append(solve(ops, opts.solver_config(t.params, d), warn=False))
    return SolverResult.cat(parts)


def iter_chunk_rows(
    tasks: Sequence[Task],
    spec_fields: RowOptions,
    *,
    device: str | torch.device = "cpu",
    dtype: str | Precision = "float64",
    batched: bool = True,
    threads: int | None = None,
) -> Iterator[list[dict]]:
    """Compute the rows of a chunk of tasks (all of one :attr:`Task.group` if batched),
    yielding them as they finish: all at once, or, for a ``nested_p`` chunk, the rows of
    each P as soon as that P is solved (so a serial sweep stores them at once).

    Parameters
    ----------
    tasks
        The tasks; with ``batched=True`` they are solved as one batch.
    spec_fields
        The spec's :class:`RowOptions` (:func:`spec_fields`).
    device, dtype
        Where and in which :class:`~spinglass_icl.precision.Precision` to solve:
        "float64" (default), "float32", or "mixed" (float64 everywhere except the dense
        matrices of the batched AMP kernel, float32; see
        :func:`~spinglass_icl.solvers.lowrank.solve_amp_batched`).
    batched
        Stack the instances and solve them in one call.
    threads
        If given, ``torch.set_num_threads(threads)`` first (pool and Dask workers use 1).

    Yields
    ------
    list of dict
        Rows (store columns), one per task in all; ``seconds`` is the wall time of the
        rows' batch (the chunk, or one P of a nested chunk) divided by its size
        (amortized), drawing the instances and the observables included.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    prec = Precision.of(dtype)
    opts = spec_fields
    t0 = time.perf_counter()
    if opts.matfree:
        res = _matfree_result(tasks, opts, dev, prec)
    elif batched and opts.nested_p:
        for idx, res in _nested_steps(tasks, opts, dev, prec):
            yield _make_rows([tasks[i] for i in idx], res, opts, batched, t0)
            t0 = time.perf_counter()
        return
    elif batched and _pair_batch(tasks):
        res = _batched_result(tasks, opts, dev, prec)
    else:
        res = _per_instance_result(tasks, opts, dev, prec)
    yield _make_rows(tasks, res, opts, batched, t0)


def _pair_batch(tasks: Sequence[Task]) -> bool:
    """Whether a chunk is solved as one batch on pair operators: its solver runs on them,
    and it has more than one task or the solver's kernel gains even for one (it applies
    ``G`` through the factors)."""
    solver = get_solver(tasks[0].params["solver"])
    return "pair" in solver.backends and (len(tasks) > 1 or solver.factor_matvec)


def run_chunk(
    tasks: Sequence[Task],
    spec_fields: RowOptions,
    *,
    device: str | torch.device = "cpu",
    dtype: str | Precision = "float64",
    batched: bool = True,
    threads: int | None = None,
) -> list[dict]:
    """All rows of a chunk (:func:`iter_chunk_rows`, collected): what pool and Dask
    workers return."""
    return [
        row
        for part in iter_chunk_rows(
            tasks, spec_fields, device=device, dtype=dtype, batched=batched, threads=threads
        )
        for row in part
    ]


def _test_errors(W, idx, tasks, opts: RowOptions, batched: bool) -> list[tuple]:
    """``(absolute, stderr, relative, idg, idg_stderr)`` test errors of rows ``idx`` (one
    N, test seed and task law): one :func:`~spinglass_icl.observables.test_error` call
    per kind on the batched path, one per row on the per-instance path (the same
    numbers). ``absolute`` is over fresh tasks (e_ICL); ``idg`` over the tasks of the
    rows' pool (e_IDG, the closed form of the pool's moments with ``exact``), None
    without a pool."""
    t0 = tasks[idx[0]]
    p = t0.params
    kw = dict(convention=p["convention"], noise=p["noise"])
    if t0.distribution != "gaussian" or t0.law:  # its own tasks: fresh, and its pool
        kw = dict(task=t0.task_config)
    if opts.test_error == "exact":
        kw["exact"] = True
    else:
        kw.update(n_tasks=opts.test_tasks, seed=t0.test_seed)
    parts = [W[idx]] if batched else [W[i] for i in idx]
    vals = []
    for w in parts:
        e = test_error(w, p["N"], **kw)
        cols = [e.absolute.reshape(-1).tolist(), e.stderr.reshape(-1).tolist()]
        cols.append(e.relative.reshape(-1).tolist())
        if p["tasks"] is None:
            cols += [[None] * len(cols[0])] * 2
        else:  # the in-distribution error, on tasks drawn from the training pool
            ei = test_error(w, p["N"], **kw, kind="idg")
            cols += [ei.absolute.reshape(-1).tolist(), ei.stderr.reshape(-1).tolist()]
        vals.extend(zip(*cols))
    return vals


def _make_rows(tasks, res: SolverResult, opts: RowOptions, batched: bool, t0) -> list[dict]:
    """Store rows of solved tasks: parameters, seeds, solver outcome and observables
    (NULL where the solver did not converge); ``seconds`` amortized from ``t0``."""
    ms = res.m
    conv = res.converged.reshape(-1).tolist()
    status = res.status.reshape(-1).tolist()
    n_iter = res.n_iter.reshape(-1).tolist()
    rows = [
        {
            "key": t.key,
            **t.params,
            "repeat": t.repeat,
            "seed": t.seed,
            "test_seed": t.test_seed,
            "pool_seed": t.pool_seed,
            "contrast": None,
            "test_error": None,
            "test_error_stderr": None,
            "relative_test_error": None,
            "test_error_idg": None,
            "test_error_idg_stderr": None,
            "gtask": None,
            "converged": bool(conv[i]),
            "status": str(status[i]),
            "n_iter": int(n_iter[i]),
        }
        for i, t in enumerate(tasks)
    ]
    ok = [i for i in range(len(tasks)) if conv[i] and bool(torch.isfinite(ms[i]).all())]
    W = spins_to_W(ms)
    if ok and "contrast" in opts.observables:
        C = contrast(W[ok], opts.contrast_kind).double().cpu().tolist()
        for i, c in zip(ok, C):
            rows[i]["contrast"] = c
    if ok and "test_error" in opts.observables:
        by_n: dict[tuple, list[int]] = defaultdict(list)
        for i in ok:  # one test set (and, with a pool, one pool) per group
            t = tasks[i]
            by_n[(t.params["N"], t.test_seed, t.params["tasks"], t.law)].append(i)
        for idx in by_n.values():
            for i, (a, s, r, ia, si) in zip(idx, _test_errors(W, idx, tasks, opts, batched)):
                rows[i]["test_error"], rows[i]["test_error_stderr"] = a, s
                rows[i]["relative_test_error"] = r
                if ia is not None:  # g_task = e_ICL - e_IDG
                    rows[i]["test_error_idg"], rows[i]["test_error_idg_stderr"] = ia, si
                    rows[i]["gtask"] = a - ia
    if opts.store_arrays:
        for i, row in enumerate(rows):
            row["m"] = ms[i].detach().double().cpu().numpy()
            row["v"] = None if res.v is None else res.v[i].detach().double().cpu().numpy()
    seconds = (time.perf_counter() - t0) / len(tasks)
    for row in rows:
        row["seconds"] = seconds
    return rows


class RowFetcher:
    """Fetches the rows of finished Dask futures, never waiting unboundedly: a call
    gives a future's rows, or None when they do not come within the wait (they were on a
    worker that has died since the chunk finished, and the scheduler recomputes it once a
    worker runs). The caller keeps such a future pending and goes on watching its
    workers: with no worker left, a plain ``future.result()`` waits forever. The wait
    starts at ``wait_s`` and doubles with each miss of the same future (to 32 times), so
    rows that are merely slow to arrive still arrive."""

    def __init__(self, wait_s: float = RESULT_WAIT) -> None:
        self.wait_s = wait_s
        self._misses: dict[int, int] = {}

    def __call__(self, future: Any) -> list[dict] | None:
        misses = self._misses.get(id(future), 0)
        try:
            rows = future.result(timeout=self.wait_s * 2 ** min(misses, 5))
        except (TimeoutError, asyncio.TimeoutError):  # distinct before Python 3.11
            self._misses[id(future)] = misses + 1
            return None
        self._misses.pop(id(future), None)
        return rows

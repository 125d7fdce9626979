"""Computing rows: one task at a time, or a chunk of same-shape tasks as one batch.

A *chunk* is a list of :class:`~.spec.Task` with the same :attr:`Task.group` (same D, P,
lam, beta, solver, convention, noise). Every task's instance is drawn from its own
derived seed exactly as :func:`~spinglass_icl.hamiltonian.make_instance` would draw it
alone; with ``batched=True`` the features ``s`` and labels ``y`` are then stacked into
one batched :class:`~spinglass_icl.hamiltonian.Instance` and solved in one call (the
solvers act on a leading batch dimension). Tasks of different N may share a batch: the
solvers see only ``s``, ``y``, lam and P, and N enters only through ``s`` (prefactor)
and the test error, which is computed per N. Test errors of one chunk are computed
for all its converged rows of equal N in one call: the closed form (spec default
``test_error = "exact"``) or, with ``"mc"``, on the shared test prompts.

:func:`plan_chunks` splits a task list into chunks deterministically (from the full
task list, before any is skipped), so a resumed sweep recomputes exactly the batches an
uninterrupted one would and gets bit-identical numbers.
"""

from __future__ import annotations

import functools
import math
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch

from ..conventions import get_convention
from ..hamiltonian import Instance
from ..observables import contrast, spins_to_W, test_error
from ..solvers import SolverResult, solve
from ..solvers.amp import run_amp
from ..solvers.exact import solve_exact_hessian
from ..tasks import Factors, TaskConfig, draw_factors, nested_factors, sample_prompts
from .spec import SweepSpec, Task

__all__ = [
    "CPU_BATCH_BYTES",
    "plan_chunks",
    "run_chunk",
    "iter_chunk_rows",
    "batch_size_for",
    "solve_amp_batched",
    "DEFAULT_BATCH_BYTES",
]

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

    Per instance: ``P n`` features plus about 4 (exact, amp) or more (rbp: messages on
    every pair, 6) ``n x n`` matrices, ``n = (D+1)^2``.
    """
    n = (D + 1) ** 2
    mats = 6 if solver == "rbp" else 4
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
        mats = 1 if solver in ("amp", "amp-paper") and low else 2
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
        solver = "rbp" if any(x[3] == "rbp" for x in pts) else pts[0][3]
        b = _batch_cap(D, Pmax, solver, 1, itemsize, budget, cache_bytes, max_batch)
        chunks.extend([t for f in part for t in f] for part in _balanced(fs, b))
    return chunks


def use_lowrank_matvec(P: int, n: int, itemsize: int = 8) -> bool:
    """Whether the AMP kernel applies ``G`` through the factors (``O(P n)`` flops on
    ``O(P D)`` data) rather than as a dense ``n x n`` matrix: for ``P <= n`` in float64,
    ``P <= 3 n`` with float32 matrices (mixed precision; the factors' GEMMs in float32).
    Measured at D = 40 (1 thread, 2-core AMD EPYC VM): float64 breaks even at P ~ n;
    float32 factors beat a float32 dense G up to P = 2.3 n (1.63 vs 1.84 ms/iteration)."""
    return P <= (n if itemsize >= 8 else 3 * n)


@functools.lru_cache(maxsize=4)
def _pair_index(k: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs ``a <= a'`` of ``range(k)`` (``ia``, ``ib``) and, for every ordered pair
    ``(a, a')`` (row-major, ``k^2`` of them), the index ``p(a, a')`` of its unordered pair."""
    ia, ib = torch.triu_indices(k, k, device=device)
    pair = torch.empty(k, k, dtype=torch.long, device=device)
    ar = torch.arange(ia.numel(), device=device)
    pair[ia, ib] = ar
    pair[ib, ia] = ar
    return ia, ib, pair.reshape(-1)


def expand_pairs(Gs: torch.Tensor, k: int) -> torch.Tensor:
    """The ``n x n`` matrix ``G[(a,b),(a',b')] = Gs[p(a,a'), p(b,b')]`` from the
    pair-by-pair matrix ``Gs`` (*batch, k2, k2), ``k2 = k(k+1)/2``, ``n = k^2``.

    Two contiguous row/column selections and one permuted copy (a flat gather of ``n^2``
    indices is 1.5-2x slower on the CPU); a pure copy, so bit-identical to the gather.
    """
    pf = _pair_index(k, Gs.device)[2]  # (a, a') -> p(a, a')
    X = Gs.index_select(-2, pf).index_select(-1, pf)  # (*, (a, a'), (b, b'))
    nb = X.dim() - 2
    X = X.reshape(*X.shape[:-2], k, k, k, k)
    X = X.permute(*range(nb), nb, nb + 2, nb + 1, nb + 3)  # (*, a, b, a', b')
    return X.reshape(*X.shape[:nb], k * k, k * k)


def pair_gram(u: torch.Tensor, q: torch.Tensor, c: float) -> torch.Tensor:
    """``Gs[p(a,a'), p(b,b')] = (c^2/P) sum_mu u_a u_a' q_b q_b'``: the Gram matrix
    ``G = (1/P) S^T S`` of ``S^mu = c u_mu (x) q_mu`` on unordered index pairs.

    One GEMM of size ``(k(k+1)/2)^2 x P`` (k = D+1) -- 4x fewer flops than ``S^T S``.
    u, q: (*batch, P, k); returns (*batch, k2, k2).
    """
    return (c * c / u.shape[-2]) * pair_products(u, q)  # (*, k2, k2)


def pair_products(u: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``sum_mu u_a u_a' q_b q_b'`` on unordered pairs (unnormalized :func:`pair_gram`):
    sums over disjoint sets of prompts add up. u, q: (*batch, P, k)."""
    ia, ib, _ = _pair_index(u.shape[-1], u.device)
    UU = u[..., ia] * u[..., ib]  # (*, P, k2)
    QQ = q[..., ia] * q[..., ib]
    return UU.transpose(-1, -2) @ QQ


def lowrank_couplings(u: torch.Tensor, q: torch.Tensor, c: float, squared: bool = False):
    """``G = (1/P) S^T S`` (or ``G o G`` if ``squared``) from the rank-one factors.

    ``S^mu = c u_mu (x) q_mu`` makes ``G[(a,b),(a',b')] = (c^2/P) sum_mu u_a u_a' q_b q_b'``
    a function of the unordered pairs ``{a, a'}`` and ``{b, b'}``: :func:`pair_gram`
    then :func:`expand_pairs`. u, q: (*batch, P, k); returns (*batch, n, n).
    """
    Gs = pair_gram(u, q, c)
    if squared:
        Gs = Gs * Gs
    return expand_pairs(Gs, u.shape[-1])


def solve_amp_batched(
    u: torch.Tensor,
    q: torch.Tensor,
    y: torch.Tensor,
    c: float,
    lam: float,
    beta: float,
    *,
    onsager: bool = True,
    damping: float = 0.9,
    tol: float = 1e-6,
    max_iter: int = 2000,
    lowrank_matvec: bool | None = None,
    matrix_dtype: torch.dtype | None = None,
) -> SolverResult:
    """AMP (eq. 34; with the Onsager term if ``onsager``) for a batch of instances given
    by their rank-one factors ``u, q`` (*batch, P, D+1) and labels ``y`` (*batch, P).

    The update rule, start point and iteration engine are those of
    :func:`spinglass_icl.solvers.solve_amp`; the sweep-specific savings are in the
    linear algebra (results agree with the per-instance solver to rounding, tested):

    * ``J^2 = G o G`` is built by :func:`lowrank_couplings` (4x fewer flops than
      ``S^T S``), and ``J^2 v`` is the row product ``v^T J^2`` (symmetric), 2-3x faster on
      the CPU than the batched column product ``J^2 @ v[..., None]``;
    * ``G m = (1/P) S^T (S m)`` is applied through the factors,
      ``(S m)_mu = c u_mu^T M q_mu`` (O(P n) flops on O(P D) data), when
      :func:`use_lowrank_matvec` (or ``lowrank_matvec=True``); otherwise from dense G
      (row product).

    ``matrix_dtype=torch.float32`` with float64 factors is *mixed precision*: the dense
    ``n x n`` matrices (J^2, and G if used) are rounded to float32 and their products
    taken in float32, while the state (m, v), fields, diagonal and the iteration stay in
    float64. Halving the bytes of the bandwidth-bound passes makes an iteration ~2-3x
    faster on the CPU at D = 40, and the fixed point moves by ~1e-7 (relative; the
    matrices' rounding), where all-float32 AMP stalls at a residual of ~1e-6 (damped
    updates below float32 resolution) and never meets the authors' tol = 1e-6.
    """
    k, P = u.shape[-1], u.shape[-2]
    n = k * k
    bs = tuple(u.shape[:-2])
    if lowrank_matvec is None:
        lowrank_matvec = use_lowrank_matvec(P, n, 8 if matrix_dtype in (None, torch.float64) else 4)
    c2P = c * c / P
    gd = c2P * ((u * u).transpose(-1, -2) @ (q * q)).reshape(*bs, n)  # diag(G)
    h = (c / P) * ((u * y[..., None]).transpose(-1, -2) @ q).reshape(*bs, n)
    Gs = pair_gram(u, q, c)  # one GEMM for both G and J^2 = G o G
    ops = amp_pair_operators(Gs, lowrank_matvec=lowrank_matvec, matrix_dtype=matrix_dtype)
    del Gs
    return amp_from_operators(
        ops, gd, h, u, q, c2P, lam, beta, onsager=onsager, damping=damping, tol=tol,
        max_iter=max_iter,
    )  # fmt: skip


def amp_pair_operators(
    Gs: torch.Tensor, *, lowrank_matvec: bool, matrix_dtype: torch.dtype | None = None
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The dense AMP matrices ``(G or None, J^2)`` from the pair Gram matrix ``Gs``
    (:func:`pair_gram`, normalized): ``G`` only if ``not lowrank_matvec``; ``J^2 = G o G``
    with a zero diagonal, in ``matrix_dtype`` (default: that of ``Gs``)."""
    k = math.isqrt(2 * Gs.shape[-1])  # k2 = k (k + 1) / 2
    mdt = Gs.dtype if matrix_dtype is None else matrix_dtype
    G = None if lowrank_matvec else expand_pairs(Gs.to(mdt), k)
    if G is not None and mdt == Gs.dtype:
        J2 = G * G  # the same numbers as expanding Gs o Gs, one pass fewer
    else:  # (mixed: J^2 rounded once from float64)
        J2 = expand_pairs((Gs * Gs).to(mdt), k)
    J2.diagonal(dim1=-2, dim2=-1).zero_()
    return G, J2


def amp_from_operators(
    ops: tuple[torch.Tensor | None, torch.Tensor],
    gd: torch.Tensor,
    h: torch.Tensor,
    u: torch.Tensor,
    q: torch.Tensor,
    c2P: float,
    lam: float,
    beta: float,
    *,
    onsager: bool,
    damping: float,
    tol: float,
    max_iter: int,
) -> SolverResult:
    """Run AMP (:func:`~spinglass_icl.solvers.amp.run_amp`) on the operators of
    :func:`amp_pair_operators`: ``G m`` from dense ``G`` (row product) if present, else
    through the factors ``(1/P) S^T (S m)``, ``(S m)_mu = c u_mu^T M q_mu`` with
    ``c2P = c^2 / P`` (u, q: (*batch, P, k)); ``gd = diag(G)``, ``h`` the fields."""
    G, J2 = ops
    mdt = J2.dtype
    k = u.shape[-1]
    n = k * k
    bs = tuple(h.shape[:-1])
    if damping == "auto":  # docs/amp-stability.md: one damping for the batch
        from ..solvers.stability import batch_auto_damping, stability_from_matrices

        Gd = G
        if Gd is None:  # dense G from the factors, for the eigenvalue problem only
            s = (u[..., :, None] * q[..., None, :]).reshape(*bs, -1, n).to(torch.float64)
            Gd = c2P * (s.transpose(-1, -2) @ s)
        st = stability_from_matrices(
            Gd, J2, lam + gd, lam, beta, solver="amp" if onsager else "amp-paper",
            damping=0.5, tol=tol, max_iter=max_iter,
        )  # fmt: skip
        damping = batch_auto_damping(st)[0]
    if G is None and mdt != u.dtype:  # mixed precision: the factors' products too
        u, q = u.to(mdt), q.to(mdt)

    def j2_matvec(v: torch.Tensor) -> torch.Tensor:
        return (v.to(mdt).unsqueeze(-2) @ J2).squeeze(-2).to(v.dtype)

    def gram_matvec(m: torch.Tensor) -> torch.Tensor:
        if G is not None:
            return (m.to(mdt).unsqueeze(-2) @ G).squeeze(-2).to(m.dtype)
        M = m.to(mdt).reshape(*bs, k, k)
        r = ((u @ M) * q).sum(-1)  # (*, P): (S m) / c
        return c2P * ((u * r[..., None]).transpose(-1, -2) @ q).reshape(*bs, n).to(m.dtype)

    return run_amp(
        gram_matvec,
        j2_matvec,
        gd,
        h,
        lam + gd,
        beta=beta,
        onsager=onsager,
        batch_shape=bs,
        damping=damping,
        tol=tol,
        max_iter=max_iter,
    )


def _nested_factors(task: Task, start: int, stop: int, dev, dt, sampler: str = "prompts"):
    """Rows ``start:stop`` of the task's nested stream as ``(c u, q, y)``
    (:func:`~spinglass_icl.tasks.nested_factors`)."""
    p = task.params
    f = nested_factors(
        p["D"], p["N"], start, stop, sampler=sampler, convention=p["convention"],
        noise=p["noise"], seed=task.seed, device=dev, dtype=dt,
    )  # fmt: skip
    return f.u * f.config.prefactor, f.q, f.y


def _nested_steps(tasks: Sequence[Task], opts: dict, dev, dt, mdt, sampler: str = "prompts"):
    """Solve a ``nested_p`` chunk -- the tasks of one or more families (same D,
    convention, noise and grid points; any N and repeat; :attr:`Task.family`) -- one P
    at a time, yielding ``(task indices, m, v, converged, status, n_iter)`` per P.

    Every family's prompts are drawn once, in order of P; the pair Gram matrix and the
    fields are accumulated over the prompts ``P_prev <= mu < P`` between consecutive P
    of the chunk (always the same segments, so a resumed run gets bit-identical
    numbers), and at each P the tasks of every (lam, beta, solver) are solved as one
    batch over the families: AMP on the pair operators, exact by Cholesky of
    ``G + lam I`` with ``G`` expanded from the pair Gram matrix, rbp on the instance
    built from the prompt prefix. The numbers agree with the per-instance path (which
    draws each instance alone) to rounding (tested)."""
    fams: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(tasks):
        fams[t.family].append(i)
    fam_keys = list(fams)
    B = len(fam_keys)
    t0 = tasks[fams[fam_keys[0]][0]]
    D, N, conv_name, noise = (t0.params[x] for x in ("D", "N", "convention", "noise"))
    # (N of the first family for the rbp instance's config: the solvers do not use N)
    k = D + 1
    n = k * k
    pd = _pair_index(k, dev)[2].reshape(k, k).diagonal()  # p(a, a)
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
    u = q = y = None
    k2 = k * (k + 1) // 2
    Gsum = torch.zeros(B, k2, k2, device=dev, dtype=dt)
    hsum = torch.zeros(B, k, k, device=dev, dtype=dt)
    prev = 0
    for P in sorted(points):
        seg = [_nested_factors(t, prev, P, dev, dt, sampler) for t in first]
        us = torch.stack([x[0] for x in seg])
        qs = torch.stack([x[1] for x in seg])
        ys = torch.stack([x[2] for x in seg])
        del seg
        Gsum += pair_products(us, qs)
        hsum += (us * ys[..., None]).transpose(-1, -2) @ qs
        u = us if u is None else torch.cat([u, us], dim=-2)
        q = qs if q is None else torch.cat([q, qs], dim=-2)
        y = ys if y is None else torch.cat([y, ys], dim=-1)
        prev = P
        Gs = Gsum / P
        gd = Gs[..., pd, :][..., pd].reshape(B, n)
        h = hsum.reshape(B, n) / P
        ops: dict[bool, tuple] = {}
        step: list[int] = []
        out_m, out_v, conv, status, n_iter = [], [], [], [], []
        for (lam, beta, solver), idx in points[P].items():
            if solver in ("amp", "amp-paper"):
                low = use_lowrank_matvec(P, n, 8 if mdt in (None, torch.float64) else 4)
                if low not in ops:
                    ops = {low: amp_pair_operators(Gs, lowrank_matvec=low, matrix_dtype=mdt)}
                res = amp_from_operators(
                    ops[low], gd, h, u, q, 1.0 / P, lam, beta, onsager=solver == "amp", **opts
                )
            elif solver == "exact":  # Cholesky of A = G + lam I, G from the pair Gram
                A = expand_pairs(Gs, k)
                A.diagonal(dim1=-2, dim2=-1).add_(lam)
                res = solve_exact_hessian(A, h, beta)
                del A
            else:
                cfg = TaskConfig(D=D, N=N, P=P, convention=conv_name, noise=noise)
                inst = Instance(
                    s=(u[..., :, None] * q[..., None, :]).reshape(B, P, n), y=y, lam=lam,
                    config=cfg,
                )  # fmt: skip
                res = solve(inst, solver, beta=beta, warn=False, **opts)
                del inst
            cs = res.converged.reshape(-1).tolist()
            its = res.n_iter.reshape(-1).tolist()
            step.extend(idx)
            out_m.append(res.m)
            out_v.append(res.v)
            conv.extend(bool(c) for c in cs)
            status.extend(str(x) for x in res.status)
            n_iter.extend(int(x) for x in its)
        del ops
        yield step, torch.cat(out_m), torch.cat(out_v), conv, status, n_iter


def _matfree_rows(tasks, opts, dev, dt, sampler: str = "prompts"):
    """Solve each task with the matrix-free solvers (one at a time: large D)."""
    from ..solvers.matfree import make_lowrank_instance, solve_amp_matfree, solve_cg

    ms_l, vs_l, conv, status, n_iter = [], [], [], [], []
    for t in tasks:
        p = t.params
        lr = make_lowrank_instance(
            p["D"], p["N"], p["P"], p["lam"], convention=p["convention"], noise=p["noise"],
            seed=t.seed, device=dev, dtype=dt, sampler=sampler,
        )  # fmt: skip
        if p["solver"] == "exact":
            r = solve_cg(lr, p["beta"], tol=1e-10)
        else:
            r = solve_amp_matfree(lr, p["beta"], onsager=p["solver"] == "amp", **opts)
        ms_l.append(r.m)
        vs_l.append(r.v)
        conv.append(bool(r.converged))
        status.append(str(r.status))
        n_iter.append(int(r.n_iter))
    return torch.stack(ms_l), torch.stack(vs_l), conv, status, n_iter


@functools.lru_cache(maxsize=64)
def _test_set(D, N, convention, noise, n_tasks, seed, device, dtype):
    """The fresh test prompts of :func:`spinglass_icl.observables.test_error` (same seed,
    same draw), kept as their factors ``u, q, y~``: every row of a sweep with the same
    (D, N, convention, noise) is scored on them, so they are drawn once per process."""
    pr = sample_prompts(
        D, N, n_tasks, convention=convention, noise=noise, seed=seed, device=device,
        dtype=dtype,
    )  # fmt: skip
    return pr.u, pr.q, pr.y


def _test_error_cached(W, N, convention, noise, n_tasks, seed):
    """``test_error(W, N, ...)`` for a batch of W (B, D+1, D+1) on cached test prompts;
    the same numbers as the core function (one draw of ``n_tasks`` prompts; tested)."""
    if n_tasks > 20_000:  # the core draws in chunks beyond this: use it as is
        e = test_error(W, N, convention=convention, noise=noise, n_tasks=n_tasks, seed=seed)
        return list(zip(e.absolute.tolist(), e.stderr.tolist(), e.relative.tolist()))
    D = W.shape[-1] - 1
    conv = get_convention(convention)
    u, q, y = _test_set(D, N, convention, noise, n_tasks, seed, str(W.device), W.dtype)
    pred = conv.prefactor(D, N) * torch.einsum("pa,...ab,pb->...p", u, W, q)
    err = (y - pred).double() ** 2  # (B, n_tasks)
    mean = err.sum(-1) / n_tasks
    var = ((err * err).sum(-1) / n_tasks - mean * mean).clamp_min(0.0)
    stderr = (var / max(n_tasks - 1, 1)).sqrt()
    rel = mean / conv.label_variance(D, noise)
    return list(zip(mean.tolist(), stderr.tolist(), rel.tolist()))


def _factors(
    task: Task,
    device: torch.device,
    dtype: torch.dtype,
    nested: bool = False,
    sampler: str = "prompts",
) -> Factors:
    """The factors of the task's training instance: exactly those of
    ``make_instance(..., seed=task.seed)`` by default; of the nested stream if
    ``nested``; drawn directly from their law with ``sampler="factors"``
    (:func:`~spinglass_icl.tasks.draw_factors`)."""
    p = task.params
    return draw_factors(
        p["D"], p["N"], p["P"], sampler=sampler, nested=nested, convention=p["convention"],
        noise=p["noise"], seed=task.seed, device=device, dtype=dtype,
    )  # fmt: skip


def _instance(
    task: Task,
    device: torch.device,
    dtype: torch.dtype,
    nested: bool = False,
    sampler: str = "prompts",
) -> Instance:
    f = _factors(task, device, dtype, nested, sampler)
    return Instance(s=f.features(), y=f.y, lam=task.params["lam"], config=f.config)


def iter_chunk_rows(
    tasks: Sequence[Task],
    spec_fields: dict,
    *,
    device: str = "cpu",
    dtype: str = "float64",
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
        ``solver_options``, ``observables``, ``test_error``, ``test_tasks``,
        ``store_arrays``, ``contrast_kind`` of the spec (plain data, so a worker needs
        no spec object).
    device, dtype
        Where and in which precision to solve: "float64" (default), "float32", or
        "mixed" (float64 everywhere except the dense matrices of the batched AMP kernel,
        float32; see :func:`solve_amp_batched`; other solvers and the per-instance
        path run in float64).
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
    dt = {"float64": torch.float64, "float32": torch.float32, "mixed": torch.float64}[dtype]
    mdt = torch.float32 if dtype == "mixed" else None  # the AMP kernel's matrices
    opts = spec_fields["solver_options"]
    t0 = time.perf_counter()
    nested = bool(spec_fields.get("nested_p"))
    sampler = spec_fields.get("sampler", "prompts")
    if spec_fields.get("matfree"):
        ms, vs, conv, status, n_iter = _matfree_rows(tasks, opts, dev, dt, sampler)
    elif batched and nested:
        for idx, ms, vs, conv, status, n_iter in _nested_steps(tasks, opts, dev, dt, mdt, sampler):
            sub = [tasks[i] for i in idx]
            yield _make_rows(sub, ms, vs, conv, status, n_iter, spec_fields, batched, t0)
            t0 = time.perf_counter()
        return
    elif batched and (len(tasks) > 1 or tasks[0].params["solver"] in ("amp", "amp-paper")):
        # a batch of one AMP task still gains from the factor-based kernel
        groups = {t.group for t in tasks}
        if len(groups) != 1:
            raise ValueError("a batched chunk must hold tasks of one group")
        p = tasks[0].params
        if p["solver"] in ("amp", "amp-paper"):
            prs = [_factors(t, dev, dt, sampler=sampler) for t in tasks]
            # S^mu = c u (x) q with c of each task's own N (tasks may differ in N): fold
            # c into u so that one batch holds them all
            u = torch.stack([pr.u * pr.config.prefactor for pr in prs])
            q = torch.stack([pr.q for pr in prs])
            y = torch.stack([pr.y for pr in prs])
            del prs
            res = solve_amp_batched(
                u, q, y, 1.0, p["lam"], p["beta"], onsager=p["solver"] == "amp",
                matrix_dtype=mdt, **opts,
            )  # fmt: skip
        else:
            insts = [_instance(t, dev, dt, sampler=sampler) for t in tasks]
            stacked = Instance(
                s=torch.stack([i.s for i in insts]),
                y=torch.stack([i.y for i in insts]),
                lam=insts[0].lam,
                config=insts[0].config,  # N of the first task; the solvers do not use N
            )
            del insts
            o = dict(opts, damping=0.5) if opts["damping"] == "auto" else opts  # exact: unused
            res = solve(stacked, p["solver"], beta=p["beta"], warn=False, **o)
        ms, vs = res.m, res.v
        conv = [bool(c) for c in res.converged.reshape(-1).tolist()]
        status = list(res.status)
        n_iter = [int(k) for k in res.n_iter.reshape(-1).tolist()]
    else:
        ms_l, vs_l, conv, status, n_iter = [], [], [], [], []
        for t in tasks:
            p = t.params
            inst = _instance(t, dev, dt, nested, sampler)
            o = dict(opts)
            if o["damping"] == "auto":  # docs/amp-stability.md
                from ..solvers.stability import resolve_auto_damping

                o["damping"] = resolve_auto_damping(
                    inst, p["solver"], beta=p["beta"], tol=o["tol"], max_iter=o["max_iter"]
                )[0]
            r = solve(inst, p["solver"], beta=p["beta"], warn=False, **o)
            ms_l.append(r.m)
            vs_l.append(r.v)
            conv.append(bool(r.converged))
            status.append(str(r.status))
            n_iter.append(int(r.n_iter))
        ms, vs = torch.stack(ms_l), torch.stack(vs_l)
    yield _make_rows(tasks, ms, vs, conv, status, n_iter, spec_fields, batched, t0)


def run_chunk(
    tasks: Sequence[Task],
    spec_fields: dict,
    *,
    device: str = "cpu",
    dtype: str = "float64",
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


def _make_rows(tasks, ms, vs, conv, status, n_iter, spec_fields, batched, t0) -> list[dict]:
    """Store rows of solved tasks: parameters, seeds, solver outcome and observables
    (NULL where the solver did not converge); ``seconds`` amortized from ``t0``."""
    rows = [
        {
            "key": t.key,
            **t.params,
            "repeat": t.repeat,
            "seed": t.seed,
            "test_seed": t.test_seed,
            "contrast": None,
            "test_error": None,
            "test_error_stderr": None,
            "relative_test_error": None,
            "converged": conv[i],
            "status": status[i],
            "n_iter": n_iter[i],
        }
        for i, t in enumerate(tasks)
    ]
    ok = [i for i in range(len(tasks)) if conv[i] and bool(torch.isfinite(ms[i]).all())]
    W = spins_to_W(ms)
    if ok and "contrast" in spec_fields["observables"]:
        C = contrast(W[ok], spec_fields["contrast_kind"]).double().cpu().tolist()
        for i, c in zip(ok, C):
            rows[i]["contrast"] = c
    if ok and "test_error" in spec_fields["observables"]:
        by_n: dict[tuple, list[int]] = defaultdict(list)
        for i in ok:
            by_n[(tasks[i].params["N"], tasks[i].test_seed)].append(i)
        for (N, test_seed), idx in by_n.items():
            p = tasks[idx[0]].params
            if spec_fields.get("test_error", "mc") == "exact":
                # closed form (eqs. 2, 40): no test prompts; one call per row on the
                # per-instance path, one per N on the batched path (same numbers)
                parts = [idx] if batched else [[i] for i in idx]
                vals = []
                for part in parts:
                    e = test_error(
                        W[part], N, convention=p["convention"], noise=p["noise"], exact=True
                    )
                    vals.extend(zip(e.absolute.tolist(), e.stderr.tolist(), e.relative.tolist()))
            elif batched:
                vals = _test_error_cached(
                    W[idx], N, p["convention"], p["noise"], spec_fields["test_tasks"], test_seed
                )
            else:
                vals = []
                for i in idx:
                    e = test_error(
                        W[i],
                        N,
                        convention=p["convention"],
                        noise=p["noise"],
                        n_tasks=spec_fields["test_tasks"],
                        seed=test_seed,
                    )
                    vals.append((float(e.absolute), float(e.stderr), float(e.relative)))
            for i, (a, s, r) in zip(idx, vals):
                rows[i]["test_error"], rows[i]["test_error_stderr"] = a, s
                rows[i]["relative_test_error"] = r
    if spec_fields.get("store_arrays"):
        for i, row in enumerate(rows):
            row["m"] = ms[i].detach().double().cpu().numpy()
            row["v"] = vs[i].detach().double().cpu().numpy()
    seconds = (time.perf_counter() - t0) / len(tasks)
    for row in rows:
        row["seconds"] = seconds
    return rows


def spec_fields(spec: SweepSpec) -> dict:
    """The plain-data part of a spec that :func:`run_chunk` needs."""
    return {
        "solver_options": dict(spec.solver_options),
        "observables": tuple(spec.observables),
        "test_tasks": spec.test_tasks,
        "store_arrays": spec.store_arrays,
        "contrast_kind": spec.contrast_kind,
        "matfree": spec.matfree,
        "test_error": spec.test_error,
        "nested_p": spec.nested_p,
        "sampler": spec.sampler,
    }

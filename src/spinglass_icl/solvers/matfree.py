"""Matrix-free solvers for large D: never form the ``n x n`` couplings.

Every feature vector is rank one (eq. 3; docs/solvers.md#model): ``S^mu = c u_mu (x) q_mu`` with
``u_mu = sum_i y_i [x_i; y_i]`` and ``q_mu = [x~_mu; 0]``, so with ``M = m`` reshaped to
``(D+1) x (D+1)``

    (S m)_mu   = c u_mu^T M q_mu                       O(P D^2)
    S^T r      = c sum_mu r_mu u_mu q_mu^T = c U^T diag(r) Q     O(P D^2)
    G m        = (1/P) S^T (S m),    A m = G m + lam m
    h          = (1/P) S^T y~,       lam_i = lam + (c^2/P) (U o U)^T (Q o Q)

cost ``O(P D^2)`` time and ``O(P D)`` memory, against ``O(D^4)`` memory for dense J
(13 GB at D = 200 in float64). :class:`~spinglass_icl.hamiltonian.Instance` holds
``U, Q, y~`` and these products.

Solvers
-------
``exact`` (:func:`solve_cg`)
    The exact mean ``A^{-1} h`` (docs/solvers.md#exact) by conjugate gradients on
    ``(G + lam I) m = h``, Jacobi-preconditioned by ``lam_i = diag(A)``. Marginal variances
    ``diag((beta A)^{-1})`` are not computed (``v`` is NaN and the message says so):
    they need ``n`` solves.
``amp`` / ``amp-paper`` (:func:`solve_amp_matfree`)
    AMP of eq. 34 (with / without the Onsager reaction term) with ``J m = -G m +
    diag(G) m``. The variance term ``V_i = beta^2 sum_j J_ij^2 v_j`` is the hard part:
    ``J^2`` has no low-rank form. Two estimates:

    * ``variance_term="exact"``: ``sum_j G_ij^2 v_j = (1/P^2) [S^T K S]_ii`` with
      ``K = S diag(v) S^T`` (P x P) -- exact, ``O(P^2 n)`` per iteration, for checks at
      small D (equals the dense AMP iteration to rounding, tested);
    * ``variance_term="scalar"`` (default): a block-uniform-variance approximation (as in
      the scalar-variance GAMP): ``sum_j J_ij^2 v_j ~= sum_X r_i^X <v>_X`` over the two
      coupled spin blocks X = A (W11) and B (W's last row; the last column is uncoupled,
      docs/solvers.md#spin-index), whose variances differ most, with ``r_i^X = sum_{j in X, j != i}
      J_ij^2`` estimated once by Hutchinson's estimator ``diag(G P_X G) ~= mean_k z_k o
      G P_X G z_k`` over ``n_probes`` seeded Rademacher probes (``4 n_probes`` matvecs in
      all) and ``<v>_X`` the current mean of v over X. Checked against dense AMP
      (D = 4-10, 4 seeds each): variances off by 0.2-9 % on average over spins, up to
      38 % for single spins at lam = 0.1 (tested: mean < 10 %, max < 50 %).

    For ``amp`` the reaction term cancels at the fixed point (``lam_i m_i - (J m)_i =
    h_i``), so *any* estimate of V gives the exact mean there; it only changes the path
    (and whether the iteration converges) and the variances, which are approximate
    (TAP) anyway. ``amp-paper`` has no such cancellation: its biased mean depends on V.
"""

from __future__ import annotations

import dataclasses

import torch

from ..errors import ParameterError, check_choice, check_float, check_int
from ..hamiltonian import Instance, block_masks, build_instance
from ..tasks import (
    SAMPLERS,
    TaskConfig,
    make_generator,
    resolve_device,
    sample_factors,
    sample_prompts,
)
from .amp import run_amp
from .result import SolverResult

__all__ = [
    "LowRankInstance",
    "lowrank_instance",
    "make_lowrank_instance",
    "solve_cg",
    "solve_amp_matfree",
    "solve_matfree",
    "MATFREE_SOLVERS",
]

MATFREE_SOLVERS: tuple[str, ...] = ("exact", "amp", "amp-paper")


#: the matrix-free solvers take the one :class:`~spinglass_icl.hamiltonian.Instance`
#: (its factors and matrix-vector products); the old name is kept
LowRankInstance = Instance
#: :func:`~spinglass_icl.hamiltonian.build_instance` under its old name
lowrank_instance = build_instance


def make_lowrank_instance(
    D: int,
    N: int,
    P: int,
    lam: float,
    *,
    convention: str = "authors",
    noise: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    chunk: int = 1024,
    sampler: str = "prompts",
) -> Instance:
    """Sample P prompts in chunks of ``chunk`` (memory ``O(chunk D N)``) and keep only
    their factors (memory ``O(P D)``).

    The chunks are drawn one after another from one generator seeded with ``seed``, so
    for ``P <= chunk`` the instance is exactly ``make_instance(..., seed=seed)``'s; for
    larger P it is a different (equally valid, equally seeded) draw.
    ``sampler="factors"`` draws the factors directly from their law
    (:func:`~spinglass_icl.tasks.sample_factors`, ``O(P (D + N))`` numbers instead of
    ``O(P N D)``; the same distribution, another draw).
    """
    cfg = TaskConfig(D=D, N=N, P=P, convention=convention, noise=noise)
    chunk = check_int("chunk", chunk)
    dev = resolve_device(device)
    check_choice("sampler", sampler, SAMPLERS)
    draw = sample_factors if sampler == "factors" else sample_prompts
    g = make_generator(seed)
    us, qs, ys = [], [], []
    done = 0
    while done < cfg.P:
        k = min(chunk, cfg.P - done)
        pr = draw(cfg.D, cfg.N, k, convention=cfg.convention, noise=cfg.noise, generator=g)
        # clone: q is a view into the chunk's X, which must not stay alive
        us.append(pr.u.to(device=dev, dtype=dtype).clone())
        qs.append(pr.q.to(device=dev, dtype=dtype).clone())
        ys.append(pr.y.to(device=dev, dtype=dtype).clone())
        del pr
        done += k
    return Instance(u=torch.cat(us), q=torch.cat(qs), y=torch.cat(ys), config=cfg, lam=lam)


def solve_cg(
    instance: Instance,
    beta: float = 100.0,
    *,
    tol: float = 1e-10,
    max_iter: int = 10_000,
    precondition: bool = True,
) -> SolverResult:
    """Exact mean ``A^{-1} h`` by (Jacobi-preconditioned) conjugate gradients.

    Stops when ``|A m - h| <= tol |h|`` per instance. ``v`` is NaN (variances are not
    computed matrix-free); ``n_iter`` counts CG steps; ``residuals`` holds the relative
    residual per step.
    """
    if instance.lam <= 0:
        raise ParameterError(f"lam must be > 0 for the matrix-free solvers, got {instance.lam:g}")
    tol = check_float("tol", tol, low=0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter)
    h = instance.fields
    Minv = 1.0 / instance.lam_i if precondition else torch.ones_like(h)
    m = torch.zeros_like(h)
    r = h.clone()
    z = Minv * r
    p = z.clone()
    rz = (r * z).sum(-1, keepdim=True)
    hnorm = h.norm(dim=-1).clamp_min(torch.finfo(h.dtype).tiny)
    bs = instance.batch_shape
    active = torch.ones(bs, dtype=torch.bool, device=h.device)
    n_iter = torch.zeros(bs, dtype=torch.int64, device=h.device)
    history = []
    for _ in range(max_iter):
        rel = r.norm(dim=-1) / hnorm
        active = active & (rel > tol)
        history.append(torch.where(active, rel, torch.full_like(rel, float("nan"))))
        if not bool(active.any()):
            break
        n_iter = n_iter + active.long()
        Ap = instance.hessian_matvec(p)
        alpha = rz / (p * Ap).sum(-1, keepdim=True)
        a = active[..., None]
        m = torch.where(a, m + alpha * p, m)
        r = torch.where(a, r - alpha * Ap, r)
        z = Minv * r
        rz_new = (r * z).sum(-1, keepdim=True)
        p = torch.where(a, z + (rz_new / rz) * p, p)
        rz = torch.where(a, rz_new, rz)
    conv = (r.norm(dim=-1) / hnorm) <= tol
    res = SolverResult.build(
        "exact-cg", beta, m, torch.full_like(m, float("nan")), converged=conv, n_iter=n_iter,
        residuals=torch.stack(history), message="",
    )  # fmt: skip
    what = str(res.status) if not bs else "batch"
    msg = f"exact-cg: {what}; mean only (v not computed matrix-free, NaN)"
    return dataclasses.replace(res, message=msg)


def _onsager_exact(inst: Instance, v: torch.Tensor, gd: torch.Tensor) -> torch.Tensor:
    """``sum_{j != i} G_ij^2 v_j`` exactly, O(P^2 n): ``(1/P^2) diag(S^T K S) - G_ii^2 v_i``
    with ``K = S diag(v) S^T``."""
    s = inst.s  # (*, P, n)
    K = (s * v[..., None, :]) @ s.transpose(-1, -2)  # (*, P, P)
    full = ((K @ s) * s).sum(-2) / inst.P**2
    return full - gd * gd * v


def hutchinson_row_sums(
    inst: Instance, n_probes: int = 64, seed: int = 0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Estimate ``r_i = sum_{j != i, j in mask} G_ij^2 = diag(G P G)_i - [i in mask] G_ii^2``
    (``P`` the projector on the spins of ``mask``; all spins if None) with ``n_probes``
    Rademacher probes (Hutchinson): ``diag(G P G) ~= mean_k z_k o G P G z_k``.

    The probes come from a CPU generator seeded with ``seed`` (reproducible on any
    device). Negative estimates are clipped at 0.
    """
    n_probes = check_int("n_probes", n_probes)
    g = make_generator(seed)
    bs = inst.batch_shape
    acc = torch.zeros(*bs, inst.n, dtype=inst.u.dtype, device=inst.u.device)
    for _ in range(n_probes):
        z = torch.randint(0, 2, (*bs, inst.n), generator=g, dtype=torch.int64) * 2 - 1
        z = z.to(device=inst.u.device, dtype=inst.u.dtype)
        Gz = inst.gram_matvec(z)
        if mask is not None:
            Gz = Gz * mask
        acc += z * inst.gram_matvec(Gz)
    gd = inst.gram_diag
    self_term = gd * gd if mask is None else gd * gd * mask
    return (acc / n_probes - self_term).clamp_min(0.0)


def solve_amp_matfree(
    instance: Instance,
    beta: float = 100.0,
    *,
    onsager: bool = True,
    variance_term: str = "scalar",
    n_probes: int = 64,
    probe_seed: int = 0,
    damping: float = 0.5,
    tol: float = 1e-8,
    max_iter: int = 2000,
) -> SolverResult:
    """AMP (eq. 34, with the reaction term if ``onsager``) without dense couplings.

    ``variance_term`` is ``"exact"`` (O(P^2 n) per step; small D) or ``"scalar"`` (the
    block-uniform-variance estimate of the module docstring; O(P D^2) per step after
    ``4 n_probes`` matvecs once). Same engine, damping and statuses as
    :func:`~spinglass_icl.solvers.solve`.
    """
    if instance.lam <= 0:
        raise ParameterError(f"lam must be > 0 for the matrix-free solvers, got {instance.lam:g}")
    check_choice("variance_term", variance_term, ("exact", "scalar"))
    beta = check_float("beta", beta, low=0.0, low_open=True)
    damping = check_float("damping", damping, low=0.0, high=1.0, high_open=True)
    h = instance.fields
    gd = instance.gram_diag
    lam_i = instance.lam + gd
    if variance_term == "scalar":
        masks = block_masks(instance.D, h.device)
        groups = [masks["A"].to(h.dtype), masks["B"].to(h.dtype)]
        rows = [
            hutchinson_row_sums(instance, n_probes, probe_seed + k, g) for k, g in enumerate(groups)
        ]
        sizes = [g.sum() for g in groups]

        def vterm(v):
            return sum(
                r * ((v * g).sum(-1, keepdim=True) / k) for r, g, k in zip(rows, groups, sizes)
            )

    else:

        def vterm(v):
            return _onsager_exact(instance, v, gd)

    res = run_amp(
        instance.gram_matvec,
        vterm,
        gd,
        h,
        lam_i,
        beta=beta,
        onsager=onsager,
        batch_shape=instance.batch_shape,
        damping=damping,
        tol=tol,
        max_iter=max_iter,
    )
    extras = {"variance_term": variance_term, "n_probes": n_probes}
    return dataclasses.replace(
        res, message=res.message + f" (matrix-free, V {variance_term})", extras=extras
    )


def solve_matfree(
    instance: Instance,
    solver: str = "exact",
    *,
    beta: float = 100.0,
    **options,
) -> SolverResult:
    """Dispatch to :func:`solve_cg` (``"exact"``) or :func:`solve_amp_matfree`."""
    check_choice("solver", solver, MATFREE_SOLVERS)
    if solver == "exact":
        return solve_cg(instance, beta, **options)
    return solve_amp_matfree(instance, beta, onsager=solver == "amp", **options)

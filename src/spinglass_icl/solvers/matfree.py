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
Every registered solver with the ``matfree`` backend runs on
:class:`~spinglass_icl.solvers.operators.MatrixFreeOperators`
(``solve(instance, config, backend="matfree")``; :func:`solve_matfree` is that call):

``exact``
    The exact mean ``A^{-1} h`` (docs/solvers.md#exact) by conjugate gradients on
    ``(G + lam I) m = h``, Jacobi-preconditioned by ``lam_i = diag(A)``, run by the
    iteration engine. Marginal variances ``diag((beta A)^{-1})`` are not computed
    (``v`` is None and the message says so): they need ``n`` solves.
``amp`` / ``amp-paper``
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

import torch

from ..errors import ParameterError, check_choice, check_int
from ..hamiltonian import Instance
from ..tasks import (
    SAMPLERS,
    TaskConfig,
    make_generator,
    resolve_device,
    sample_factors,
    sample_prompts,
)
from .config import SolverConfig
from .exact import CG_MAX_ITER, CG_TOL
from .operators import hutchinson_row_sums
from .result import SolverResult

__all__ = [
    "CG_MAX_ITER",
    "CG_TOL",
    "hutchinson_row_sums",
    "make_lowrank_instance",
    "solve_amp_matfree",
    "solve_cg",
    "solve_matfree",
]


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


def solve_matfree(
    instance: Instance, config: SolverConfig | str = "exact", **options
) -> SolverResult:
    """``solve(instance, config, backend="matfree", warn=False, **options)``: any
    registered solver with the matrix-free backend (``exact``: CG; ``amp``,
    ``amp-paper``: AMP with the estimated variance term). ``options``: those of
    :func:`~spinglass_icl.solvers.solve` with a solver name, and ``variance_term``,
    ``n_probes``, ``probe_seed``."""
    from . import solve

    return solve(instance, config, backend="matfree", warn=False, **options)


def _beta_form(config, solver: str, options: dict) -> SolverConfig | str:
    """A bare ``beta`` (the keyword form) as ``beta`` in ``options``."""
    if isinstance(config, SolverConfig):
        return config
    if "beta" in options:
        raise ParameterError("beta must be given once, got it as config and as beta")
    options["beta"] = config
    return solver


def solve_cg(instance: Instance, config: SolverConfig | float = 100.0, **options) -> SolverResult:
    """The matrix-free ``exact`` solver
    (:func:`~spinglass_icl.solvers.exact.conjugate_gradients`): ``config`` a
    :class:`~spinglass_icl.solvers.SolverConfig`, or a bare ``beta`` with
    ``tol`` (default :data:`CG_TOL`) and ``max_iter`` (default :data:`CG_MAX_ITER`)."""
    if isinstance(config, SolverConfig):
        check_choice("solver", config.solver, ("exact",))
    return solve_matfree(instance, _beta_form(config, "exact", options), **options)


def solve_amp_matfree(
    instance: Instance,
    config: SolverConfig | float = 100.0,
    *,
    onsager: bool | None = None,
    **options,
) -> SolverResult:
    """The matrix-free ``amp`` (``onsager`` True, the default) or ``amp-paper``:
    ``config`` a :class:`~spinglass_icl.solvers.SolverConfig`, or a bare ``beta`` with
    the options of :func:`solve_matfree`."""
    if isinstance(config, SolverConfig):
        check_choice("solver", config.solver, ("amp", "amp-paper"))
        if onsager is not None and onsager != (config.solver == "amp"):
            raise ParameterError(
                f"onsager must match the SolverConfig's solver {config.solver!r}, got {onsager}"
            )
    solver = "amp-paper" if onsager is False else "amp"
    return solve_matfree(instance, _beta_form(config, solver, options), **options)

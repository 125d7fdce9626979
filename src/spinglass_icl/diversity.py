"""Task diversity with a finite task pool: in-context versus in-distribution error, the
Bayes baselines and the memorization-to-ICL transition (docs/theory.md#task-diversity).

The training prompts take their tasks from a pool of K tasks
(:class:`~spinglass_icl.tasks.TaskConfig` with ``tasks=K``). A weight matrix W then has
two test errors: e_ICL on fresh tasks and e_IDG on the pool's tasks, with the
task-generalization gap ``g_task = e_ICL - e_IDG`` (Lu, Letey, Zavatone-Veth, Maiti &
Pehlevan 2024). This module computes, per pool size:

* the exact ground state of eq. 2 (the ridge minimizer; :func:`exact_weights`), fast:
  the training set's rank-one factors are drawn from their exact law with the context
  sums as a 2 x 2 Wishart draw (:func:`sample_pool_factors`, ``2D + 5`` numbers per
  prompt), and the normal equations are solved in their dual form for ``P`` at most the
  number of weights, else by conjugate gradients on the matrix-free operator with a
  Kronecker preconditioner ``c^2 C_u (x) C_q + lam`` (``O(P D^2)`` per step, never the
  ``(D(D+1))^2`` Gram);
* its e_ICL, e_IDG in closed form (:meth:`TaskConfig.exact_test_error`);
* the baselines: dMMSE, the posterior mean over the pool given the context with the
  label noise (:func:`dmmse_predict`), and ridge, the Bayes estimator for Gaussian tasks
  (:func:`ridge_predict`), scored by Monte Carlo;
* Lu et al.'s finite-kappa theory (:func:`spinglass_icl.theory.pool_theory`).

:func:`task_diversity` runs the whole curve; the ``spinglass-icl task-diversity``
command prints it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ConvergenceWarning, ParameterError, check_choice, check_float, check_int
from .resources import check_memory
from .seeds import joined
from .tasks import Factors, TaskConfig

__all__ = [
    "ESTIMATORS",
    "sample_pool_factors",
    "exact_weights",
    "dmmse_predict",
    "ridge_predict",
    "baseline_errors",
    "TestContexts",
    "DiversityRow",
    "task_diversity",
]

#: estimators a task-diversity curve reports
ESTIMATORS: tuple[str, ...] = ("exact", "amp", "dmmse", "ridge", "theory")

#: up to this many weights D (D+1) the exact solution forms the normal equations densely
DENSE_MAX_WEIGHTS = 420


def _seed(*parts) -> int:
    """A task-diversity seed (:func:`spinglass_icl.seeds.joined`, kept bit for bit)."""
    return joined("task-diversity", *parts)


# ------------------------------------------------------------------ sampling


def sample_pool_factors(task: TaskConfig, seed: int = 0) -> Factors:
    """The factors ``(u, q, y~)`` of ``task.P`` training prompts, drawn from their exact
    law with the context sums in closed form (the ``"factors"`` law of
    :func:`~spinglass_icl.tasks.sample_factors`, another draw).

    Given the task ``w = r e``, the context enters u only through
    ``sum_i y_i z_i`` and ``sum_i y_i^2`` with ``y_i = s r z_i + sigma eps_i``; both are
    linear in the 2 x 2 scatter matrix of the i.i.d. pairs ``(z_i, eps_i)``, which is
    Wishart(N, I_2): ``L L^T`` with ``L = [[c1, 0], [n, c2]]``, ``c1^2 ~ chi^2_N``,
    ``c2^2 ~ chi^2_{N-1}``, ``n ~ N(0, 1)`` (Bartlett). So a prompt costs ``2D + 5``
    numbers however long its context. Drawn with NumPy's PCG64 from ``seed``
    (float64, CPU).
    """
    task.check_sizes()
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    D, N, P = task.D, task.N, task.P
    s = task.label_scale
    sig = task.noise
    if task.tasks is None:
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        w = task.fresh_tasks((P,), g).numpy()
    elif task.assignment == "equal":
        w = task.pool.numpy()[np.arange(P) % task.tasks]
    else:
        w = task.pool.numpy()[rng.integers(task.tasks, size=P)]
    xq = rng.standard_normal((P, D))
    gp = rng.standard_normal((P, D))
    c1 = np.sqrt(rng.chisquare(N, size=P))
    c2 = np.sqrt(rng.chisquare(N - 1, size=P)) if N > 1 else np.zeros(P)
    nn = rng.standard_normal(P)
    Szz, Sze, See = c1 * c1, c1 * nn, nn * nn + c2 * c2
    r = np.linalg.norm(w, axis=1)
    e = w / np.maximum(r, 1e-300)[:, None]
    syz = s * r * Szz + sig * Sze
    syy = (s * r) ** 2 * Szz + 2 * s * r * sig * Sze + sig * sig * See
    perp = gp - e * (e * gp).sum(1, keepdims=True)
    yq = s * (w * xq).sum(1)
    if sig > 0:
        yq = yq + sig * rng.standard_normal(P)
    u = np.concatenate([syz[:, None] * e + np.sqrt(syy)[:, None] * perp, syy[:, None]], 1)
    q = np.concatenate([xq, np.zeros((P, 1))], 1)
    return Factors(
        u=torch.from_numpy(u), q=torch.from_numpy(q), y=torch.from_numpy(yq), config=task
    )


# ------------------------------------------------------------------ exact solution


def _kron_precond(u, q, c, lam):
    """The inverse of ``c^2 C_u (x) C_q + lam`` (``C_u = U^T U / P``, ``C_q`` alike) as a
    function of a residual R (*B, D+1, D)."""
    P = u.shape[-2]
    lu, Vu = torch.linalg.eigh(u.transpose(-1, -2) @ u / P)
    lq, Vq = torch.linalg.eigh(q.transpose(-1, -2) @ q / P)
    den = c * c * lu.clamp_min(0)[..., :, None] * lq.clamp_min(0)[..., None, :] + lam
    den = den.clamp_min(1e-300)

    def apply(R):
        return Vu @ ((Vu.transpose(-1, -2) @ R @ Vq) / den) @ Vq.transpose(-1, -2)

    return apply


def exact_weights(
    u: torch.Tensor,
    q: torch.Tensor,
    y: torch.Tensor,
    c: float,
    lam: float,
    *,
    tol: float = 1e-11,
    max_iter: int = 1000,
) -> torch.Tensor:
    """The ground state (ridge minimizer of eq. 2) as the matrix W (*B, D+1, D+1) of the
    rank-one instance ``S^mu = c u_mu (x) q_mu`` with ``q = [x~; 0]``.

    Only the ``D (D+1)`` weights ``W[:, :D]`` enter (the last column is 0). With
    ``n = D (D+1)``: for ``P <= n`` the dual form ``W = c sum_mu a_mu u_mu q_mu^T``,
    ``(K + P lam) a = y``, ``K_{mu nu} = c^2 (u_mu.u_nu)(q_mu.q_nu)`` (one Cholesky of
    size P); for ``P > n`` and ``n <= DENSE_MAX_WEIGHTS`` the ``n x n`` normal
    equations (Cholesky); else conjugate gradients on the normal equations
    ``(c^2/P) sum_mu (u^T M q) u q^T + lam M = (c/P) sum_mu y u q^T`` with the Kronecker
    preconditioner (``O(P D^2)`` per iteration), stopped at relative residual ``tol``.
    Agrees with :func:`spinglass_icl.solvers.ground_state` to rounding (tested).
    """
    lam = check_float("lam", lam, low=0.0, low_open=True)
    D = u.shape[-1] - 1
    P = u.shape[-2]
    qa = q[..., :D]
    n = D * (D + 1)
    W = torch.zeros(*u.shape[:-2], D + 1, D + 1, dtype=u.dtype, device=u.device)
    if P <= n:
        K = c * c * (u @ u.transpose(-1, -2)) * (qa @ qa.transpose(-1, -2))
        K.diagonal(dim1=-2, dim2=-1).add_(P * lam)
        L = torch.linalg.cholesky(K)
        a = torch.cholesky_solve(y[..., None], L)[..., 0]
        W[..., :D] = c * (u * a[..., None]).transpose(-1, -2) @ qa
        return W

    if n <= DENSE_MAX_WEIGHTS:  # small: the n x n normal equations, one Cholesky
        F = (c * u[..., :, None] * qa[..., None, :]).flatten(-2)  # (*B, P, n)
        A = F.transpose(-1, -2) @ F / P
        A.diagonal(dim1=-2, dim2=-1).add_(lam)
        rhs = F.transpose(-1, -2) @ y[..., None] / P
        X = torch.cholesky_solve(rhs, torch.linalg.cholesky(A))[..., 0]
        W[..., :D] = X.reshape(*X.shape[:-1], D + 1, D)
        return W

    def op(M):
        pred = ((u @ M) * qa).sum(-1)  # u^T M q per prompt
        return (c * c / P) * (u * pred[..., None]).transpose(-1, -2) @ qa + lam * M

    b = (c / P) * (u * y[..., None]).transpose(-1, -2) @ qa
    pre = _kron_precond(u, qa, c, lam)
    X = pre(b)
    R = b - op(X)
    Z = pre(R)
    Pd = Z.clone()
    rz = (R * Z).sum((-2, -1))
    bn = b.flatten(-2).norm(dim=-1).clamp_min(1e-300)
    for _ in range(max_iter):
        if bool((R.flatten(-2).norm(dim=-1) <= tol * bn).all()):
            break
        Ap = op(Pd)
        alpha = rz / (Pd * Ap).sum((-2, -1)).clamp_min(1e-300)
        X = X + alpha[..., None, None] * Pd
        R = R - alpha[..., None, None] * Ap
        Z = pre(R)
        rz_new = (R * Z).sum((-2, -1))
        Pd = Z + (rz_new / rz.clamp_min(1e-300))[..., None, None] * Pd
        rz = rz_new
    W[..., :D] = X
    return W


# ------------------------------------------------------------------ baselines


@dataclass(frozen=True)
class TestContexts:
    """Test prompts' inputs and noise, shared by every task set scored on them (common
    random numbers across pool sizes, averages and the two kinds of test task):
    ``C = sum_i x_i x_i^T`` (n, D, D), ``Xe = sum_i eps_i x_i`` (n, D),
    ``ee = sum_i eps_i^2`` (n,), the queries ``xq`` (n, D) and their noise ``eq`` (n,)."""

    __test__ = False  # not a pytest class

    C: torch.Tensor
    Xe: torch.Tensor
    ee: torch.Tensor
    xq: torch.Tensor
    eq: torch.Tensor

    @classmethod
    def draw(cls, D: int, N: int, n: int, seed: int) -> TestContexts:
        g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
        f64 = torch.float64
        x = torch.randn(n, D, N, generator=g, dtype=f64)
        e = torch.randn(n, N, generator=g, dtype=f64)
        xq = torch.randn(n, D, generator=g, dtype=f64)
        eq = torch.randn(n, generator=g, dtype=f64)
        return cls(x @ x.transpose(-1, -2), (x * e[:, None, :]).sum(-1), (e * e).sum(-1), xq, eq)

    def stats(self, w: torch.Tensor, scale: float, noise: float):
        """``(a, b, y~)`` of these contexts labelled by tasks w (n, D):
        ``a = sum y x = s C w + sigma Xe``, ``b = sum y^2``, ``y~ = s w.x~ + sigma eps~``."""
        Cw = (self.C @ w[..., None])[..., 0]
        a = scale * Cw + noise * self.Xe
        b = scale * scale * (w * Cw).sum(-1) + 2 * scale * noise * (w * self.Xe).sum(-1)
        b = b + noise * noise * self.ee
        return a, b, scale * (w * self.xq).sum(-1) + noise * self.eq


def dmmse_predict(
    pool: torch.Tensor,
    C: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    xq: torch.Tensor,
    scale: float,
    noise: float,
) -> torch.Tensor:
    """dMMSE: the posterior mean of the label given the context for a uniform prior
    over the pool's K tasks (Raventos et al. 2023), with label noise ``noise``:
    ``p(k | ctx) ~ exp(-sum_i (y_i - s w_k.x_i)^2 / (2 noise^2))`` and
    ``y^ = s (sum_k p_k w_k).x~``; at ``noise = 0`` the task of least residual.
    From the context's sufficient statistics ``C = sum x x^T``, ``a = sum y x``,
    ``b = sum y^2`` (n, ...); pool (K, D)."""
    wCw = ((C @ pool.T) * pool.T).sum(-2)  # (n, K): w_k^T C w_k
    resid = b[:, None] - 2 * scale * a @ pool.T + scale * scale * wCw
    if noise > 0:
        p = torch.softmax(-resid / (2 * noise * noise), dim=-1)
    else:
        p = torch.nn.functional.one_hot(resid.argmin(-1), pool.shape[0]).to(pool.dtype)
    return scale * ((p @ pool) * xq).sum(-1)


def ridge_predict(
    C: torch.Tensor,
    a: torch.Tensor,
    xq: torch.Tensor,
    scale: float,
    noise: float,
) -> torch.Tensor:
    """Ridge on the context: the posterior mean for Gaussian tasks ``w ~ N(0, I)``,
    ``w^ = s (s^2 C + noise^2 I)^-1 a`` and ``y^ = s w^.x~`` (the Bayes estimator on
    fresh Gaussian tasks); at ``noise = 0`` the minimum-norm least-squares fit."""
    D = C.shape[-1]
    eye = torch.eye(D, dtype=C.dtype)
    reg = noise * noise if noise > 0 else 1e-12 * float(C.diagonal(dim1=-2, dim2=-1).mean())
    w = scale * torch.linalg.solve(scale * scale * C + reg * eye, a[..., None])[..., 0]
    return scale * (w * xq).sum(-1)


def baseline_errors(task: TaskConfig, contexts: TestContexts, seed: int = 0) -> dict:
    """Monte Carlo e_ICL and e_IDG of dMMSE (over ``task``'s pool) and ridge, on the
    test ``contexts`` labelled by fresh tasks (drawn from ``seed``) and by pool tasks
    (uniform over the pool): ``{"dmmse": (icl, idg), "ridge": (icl, idg)}`` as absolute
    mean squared errors."""
    if task.tasks is None:
        raise ParameterError("dMMSE needs a task pool: give tasks (the pool size K)")
    n = contexts.xq.shape[0]
    g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    fresh = task.fresh_tasks((n,), g)
    pooled = task.pool[torch.randint(task.tasks, (n,), generator=g)]
    out = {"dmmse": [], "ridge": []}
    s, sig = task.label_scale, task.noise
    for w in (fresh, pooled):
        a, b, yq = contexts.stats(w, s, sig)
        yd = dmmse_predict(task.pool, contexts.C, a, b, contexts.xq, s, sig)
        yr = ridge_predict(contexts.C, a, contexts.xq, s, sig)
        out["dmmse"].append(float(((yq - yd) ** 2).mean()))
        out["ridge"].append(float(((yq - yr) ** 2).mean()))
    return {k: tuple(v) for k, v in out.items()}


# ------------------------------------------------------------------ the curve

#: instances solved together are limited to about this many bytes of working memory
CHUNK_BYTES = 1 << 30


def instance_bytes(D: int, N: int, P: int, solver: str = "exact") -> int:
    """Working memory of one instance of :func:`task_diversity` (bytes, float64): the
    factors and the operator's temporaries ``~8 P (D+1)`` numbers, plus the dual
    ``P x P`` system, the dense ``n x n`` one or, for AMP, the package's dense couplings."""
    n = D * (D + 1)
    b = 8 * 8 * P * (D + 1)
    if solver == "amp":
        return b + 8 * 6 * (D + 1) ** 4
    if P <= n:
        return b + 8 * 2 * P * P
    if n <= DENSE_MAX_WEIGHTS:
        return b + 8 * (P * n + 2 * n * n)
    return b


@dataclass(frozen=True)
class DiversityRow:
    """One (pool size, estimator) row of a task-diversity curve: absolute mean squared
    errors (noise floor included), mean and standard deviation over the averages."""

    tasks: int | None
    kappa: float
    estimator: str
    icl: float
    icl_std: float
    idg: float
    idg_std: float
    gtask: float
    gtask_std: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _row(K, D, est, icl, idg) -> DiversityRow:
    """Mean and standard deviation over the averages (NaN ones, unconverged, left out)."""
    icl, idg = np.asarray(icl, float), np.asarray(idg, float)
    g = icl - idg
    kappa = math.inf if K is None else K / D
    ok = np.isfinite(g)
    if not ok.any():
        nan = float("nan")
        return DiversityRow(K, kappa, est, nan, nan, nan, nan, nan, nan)
    icl, idg, g = icl[ok], idg[ok], g[ok]
    return DiversityRow(
        K, kappa, est, float(icl.mean()), float(icl.std()), float(idg.mean()),
        float(idg.std()), float(g.mean()), float(g.std()),
    )  # fmt: skip


def task_diversity(
    D: int,
    N: int,
    P: int,
    tasks: list,
    *,
    noise: float = 0.0,
    lam: float = 1e-6,
    convention: str = "authors",
    task_norm: str = "sphere",
    assignment: str = "equal",
    averages: int = 20,
    seed: int = 0,
    solver: str = "exact",
    baselines: bool = True,
    n_test: int = 500,
    progress=None,
) -> list[DiversityRow]:
    """The task-diversity curve: for every pool size K in ``tasks`` (None: no pool) and
    ``averages`` draws of (pool, training set), the solver's e_ICL, e_IDG and g_task in
    closed form, dMMSE's and ridge's by Monte Carlo (``n_test`` prompts of each kind),
    and Lu et al.'s theory. Average j of pool size K uses pool seed and training seed
    derived from ``(seed, K, j)``. ``solver``: ``"exact"`` (:func:`exact_weights`) or
    ``"amp"`` (the package's AMP with the Onsager term, beta 1e4). ``progress`` is
    called with ``(done, total)`` after each pool size."""
    from .theory import pool_theory

    D, N, P = check_int("D", D), check_int("N", N), check_int("P", P)
    averages = check_int("averages", averages)
    check_choice("solver", solver, ("exact", "amp"))
    if not tasks:
        raise ParameterError("tasks must list at least one pool size K")
    rows: list[DiversityRow] = []
    contexts = None
    for i, K in enumerate(tasks):
        cfgs = [
            TaskConfig(
                D,
                N,
                P,
                convention,
                noise,
                tasks=K,
                pool_seed=_seed(seed, K, j, "pool"),
                assignment=assignment,
                task_norm=task_norm,
            )
            for j in range(averages)
        ]
        cfgs[0].check_sizes()
        per = instance_bytes(D, N, P, solver)
        if i == 0:
            check_memory(per, f"task-diversity D={D} N={N} P={P}", "use a smaller D or P")
        step = max(1, min(averages, int(CHUNK_BYTES // per)))
        Ws = []
        for lo in range(0, averages, step):
            part = range(lo, min(averages, lo + step))
            facs = [sample_pool_factors(cfgs[j], _seed(seed, K, j, "train")) for j in part]
            u = torch.stack([f.u for f in facs])
            q = torch.stack([f.q for f in facs])
            y = torch.stack([f.y for f in facs])
            del facs
            if solver == "exact":
                Ws.append(exact_weights(u, q, y, cfgs[0].prefactor, lam))
            else:
                Ws.append(_amp_weights(u, q, y, cfgs[0], lam))
        W = torch.cat(Ws)
        icl = [float(t.exact_test_error(W[j], "icl")) for j, t in enumerate(cfgs)]
        idg = [float(t.exact_test_error(W[j], "idg")) for j, t in enumerate(cfgs)]
        rows.append(_row(K, D, solver, icl, idg))
        if baselines and K is not None:
            if contexts is None:
                contexts = TestContexts.draw(D, N, n_test, _seed(seed, "contexts"))
            bl = [
                baseline_errors(t, contexts, _seed(seed, K, j, "test")) for j, t in enumerate(cfgs)
            ]
            for name in ("dmmse", "ridge"):
                rows.append(_row(K, D, name, [b[name][0] for b in bl], [b[name][1] for b in bl]))
        th = pool_theory(D, N, P, K, lam, convention, noise)
        rows.append(_row(K, D, "theory", [th.icl], [th.idg]))
        if progress is not None:
            progress(i + 1, len(tasks))
    return rows


def _amp_weights(u, q, y, task, lam) -> torch.Tensor:
    """W of the package's AMP (with the Onsager term) on each instance of the batch."""
    from .hamiltonian import Instance
    from .observables import spins_to_W
    from .solvers import solve

    inst = Instance(u=u, q=q, y=y, lam=lam, config=task)
    res = solve(inst, "amp", beta=1e4, damping=0.5, tol=1e-9, max_iter=5000, warn=False)
    W = spins_to_W(res.m)
    bad = ~res.converged.reshape(-1)
    if bool(bad.any()):
        warnings.warn(
            f"AMP did not converge on {int(bad.sum())} of {bad.numel()} instances at "
            f"K = {task.tasks} (left out of the means; a larger lam helps)",
            ConvergenceWarning,
            stacklevel=3,
        )
        W[bad] = float("nan")
    return W

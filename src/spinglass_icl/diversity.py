"""Task diversity with a finite task pool: in-context versus in-distribution error, the
Bayes baselines and the memorization-to-ICL transition (docs/theory.md#task-diversity).

The training prompts take their tasks from a pool of K tasks
(:class:`~spinglass_icl.tasks.TaskConfig` with ``tasks=K``). A weight matrix W then has
two test errors: e_ICL on fresh tasks and e_IDG on the pool's tasks, with the
task-generalization gap ``g_task = e_ICL - e_IDG`` (Lu, Letey, Zavatone-Veth, Maiti &
Pehlevan 2024). This module computes, per pool size:

* the exact ground state of eq. 2 (the ridge minimizer; :func:`exact_weights`), fast:
  the training set's rank-one factors are drawn from their exact law with the context
  sums as a 2 x 2 Wishart draw (:func:`sample_pool_factors`, ``2D + 5`` numbers and
  ``O(D)`` work per prompt, written straight into the batch of averages, on threads),
  and the normal equations are solved in their dual form for ``P`` at most the number
  of weights ``n = D (D+1)``; densely (one GEMM ``F^T F`` with P as the long dimension,
  one Cholesky) where a cost model says that is cheaper (:func:`dense_is_cheaper`: at
  tau = 10 up to D = 11); else by conjugate gradients on the matrix-free operator
  (``_RankOneOperator``: three batched products per step over all the averages
  of a chunk, ``O(P D^2)``, never the ``n^2`` Gram) with the Kronecker preconditioner
  ``c^2 C_u (x) C_q + lam``. The curve runs the CG in mixed precision: float32 CG
  solves for corrections of a float64 solution, the float64 residual recomputed after
  each (iterative refinement), stopped at the same relative residual 1e-11 on that
  float64 residual as the float64 CG (``precision="double"``); e_ICL and e_IDG agree
  with the float64 solution to 1e-10 (tested);
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

#: the exact solution never forms the dense normal equations beyond this many weights
#: ``n = D (D+1)`` (their ``P x n`` features would dominate the memory)
DENSE_MAX_WEIGHTS = 420

#: CG steps the cost model assumes (22-24 measured at tau = 10, tolerance 1e-11)
CG_STEPS = 24

#: how many times faster per multiply-add the dense route's GEMM and Cholesky run than
#: CG's batched skinny products (1.4-1.7 measured on the 2-core development CPU, one
#: thread, D = 10-24, 10 instances per batch; benchmarks/RESULTS.md, task diversity)
GEMM_ADVANTAGE = 1.6


def dense_is_cheaper(D: int, P: int) -> bool:
    """The cost model of :func:`exact_weights` for ``P > n = D (D+1)``: the dense normal
    equations (Gram ``F^T F`` of the ``P x n`` features by one GEMM with P as the long
    dimension, ``P n^2`` multiply-adds, then a Cholesky, ``n^3 / 3``) when that is
    cheaper than ``CG_STEPS`` conjugate-gradient steps of ``4 P n`` each, counting the
    GEMM's advantage per multiply-add; never beyond ``DENSE_MAX_WEIGHTS``. At tau = 10
    the switch falls between D = 11 (dense) and D = 12 (CG)."""
    n = D * (D + 1)
    if P <= n or n > DENSE_MAX_WEIGHTS:
        return False
    return P * n * n + n**3 / 3 < GEMM_ADVANTAGE * CG_STEPS * 4 * P * n


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
    numbers however long its context, and ``O(P D)`` work. Drawn with NumPy's PCG64
    from ``seed`` (float64, CPU).
    """
    task.check_sizes()
    seed = check_int("seed", seed, minimum=0)
    P, D = task.P, task.D
    u = np.empty((P, D + 1))
    q = np.zeros((P, D + 1))
    y = np.empty(P)
    xq = np.empty((P, D))
    _draw_pool_factors(task, seed, u, xq, y)
    q[:, :D] = xq
    return Factors(u=torch.from_numpy(u), q=torch.from_numpy(q), y=torch.from_numpy(y), config=task)


def _draw_pool_factors(task: TaskConfig, seed: int, u, xq, y) -> None:
    """:func:`sample_pool_factors`'s draw written into ``u`` (P, D+1), the queries ``xq``
    (P, D, C-contiguous) and ``y`` (P,): NumPy arrays or views, as the batched path of
    :func:`task_diversity` fills one slice of its batch per instance (the same numbers)."""
    rng = np.random.default_rng(seed)
    D, N, P = task.D, task.N, task.P
    s = task.label_scale
    sig = task.noise
    if task.tasks is None:
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        w = task.fresh_tasks((P,), g).numpy()
        r = np.linalg.norm(w, axis=1)
        e = w / np.maximum(r, 1e-300)[:, None]
    else:  # unit directions and norms of the K pool tasks, then one gather each
        pool = task.pool.numpy()
        rk = np.linalg.norm(pool, axis=1)
        ek = pool / np.maximum(rk, 1e-300)[:, None]
        idx = (
            np.arange(P) % task.tasks
            if task.assignment == "equal"
            else rng.integers(task.tasks, size=P)
        )
        r, e = rk[idx], ek[idx]
    rng.standard_normal(out=xq)
    gp = rng.standard_normal((P, D))
    c1 = np.sqrt(rng.chisquare(N, size=P))
    c2 = np.sqrt(rng.chisquare(N - 1, size=P)) if N > 1 else np.zeros(P)
    nn = rng.standard_normal(P)
    Szz, Sze, See = c1 * c1, c1 * nn, nn * nn + c2 * c2
    sr = s * r
    syz = sr * Szz + sig * Sze
    syy = sr * sr * Szz + 2 * sr * sig * Sze + sig * sig * See
    # y~ = s w.x~ (+ noise); u = [syz e + sqrt(syy) (g - e (e.g)); syy], as
    # sqrt(syy) g + (syz - sqrt(syy) e.g) e without a (P, D) temporary for the projection
    np.multiply(sr, np.einsum("ij,ij->i", e, xq), out=y)
    if sig > 0:
        y += sig * rng.standard_normal(P)
    root = np.sqrt(syy)
    coef = syz - root * np.einsum("ij,ij->i", e, gp)
    ua = u[:, :D]
    np.multiply(gp, root[:, None], out=ua)
    e *= coef[:, None]
    ua += e
    u[:, D] = syy


# ------------------------------------------------------------------ exact solution


class _RankOneOperator:
    """The normal operator ``M -> (c^2/P) sum_mu (u_mu^T M q_mu) u_mu q_mu^T + lam M`` of
    a batch of rank-one instances (B, P, D+1) x (B, P, D), in ``dtype``, as three batched
    matrix products and one broadcast multiply into preallocated buffers: ``T = U M``
    (B, P, D), the per-prompt predictions ``pred = rowsum(T * Q)`` as a batched product of
    1 x D by D x 1 blocks (faster on CPUs than a multiply-and-sum), then
    ``U^T (pred * Q)``. Cost ``4 P D (D+1)`` multiply-adds per instance, no allocation
    of size P per call."""

    def __init__(self, u, qa, c: float, lam: float, dtype):
        B, P, D1 = u.shape
        D = qa.shape[-1]
        self.shape = (B, P, D)
        self.u = u.to(dtype).contiguous()
        self.uT = self.u.transpose(1, 2).contiguous()
        self.q = qa.to(dtype).contiguous()
        self.T = torch.empty(B, P, D, dtype=dtype, device=u.device)
        self.pred = torch.empty(B, P, 1, dtype=dtype, device=u.device)
        self.scale = c * c / P
        self.lam = lam

    def __call__(self, M):
        B, P, D = self.shape
        torch.bmm(self.u, M, out=self.T)
        torch.bmm(
            self.T.view(B * P, 1, D), self.q.view(B * P, D, 1), out=self.pred.view(B * P, 1, 1)
        )
        torch.mul(self.q, self.pred, out=self.T)
        out = torch.bmm(self.uT, self.T)
        return out.mul_(self.scale).add_(M, alpha=self.lam)


def _kron_precond(u, q, c, lam, dtype=None):
    """The inverse of ``c^2 C_u (x) C_q + lam`` (``C_u = U^T U / P``, ``C_q`` alike) as a
    function of a residual R (*B, D+1, D); the eigendecompositions in u's dtype, applied
    in ``dtype`` (default u's)."""
    P = u.shape[-2]
    lu, Vu = torch.linalg.eigh(u.transpose(-1, -2) @ u / P)
    lq, Vq = torch.linalg.eigh(q.transpose(-1, -2) @ q / P)
    den = c * c * lu.clamp_min(0)[..., :, None] * lq.clamp_min(0)[..., None, :] + lam
    den = den.clamp_min(1e-300)
    if dtype is not None:
        Vu, Vq, den = Vu.to(dtype), Vq.to(dtype), den.to(dtype)
    VuT, VqT = Vu.transpose(-1, -2).contiguous(), Vq.transpose(-1, -2).contiguous()

    def apply(R):
        return Vu @ ((VuT @ R @ Vq) / den) @ VqT

    return apply


def _pcg(op, pre, b, tol, max_iter: int):
    """Preconditioned conjugate gradients from 0 on a batch (B, D+1, D), in b's dtype,
    until every instance's (recursive) residual is at most ``tol`` (a number or one per
    instance) times its ``|b|``; returns ``(X, steps)``."""
    X = torch.zeros_like(b)
    R = b.clone()
    Z = pre(R)
    Pd = Z.clone()
    rz = (R * Z).sum((-2, -1))
    lim = tol * b.flatten(-2).norm(dim=-1)
    steps = 0
    while steps < max_iter:
        if bool((R.flatten(-2).norm(dim=-1) <= lim).all()):
            break
        Ap = op(Pd)
        alpha = rz / (Pd * Ap).sum((-2, -1)).clamp_min(torch.finfo(b.dtype).tiny)
        X.add_(alpha[:, None, None] * Pd)
        R.sub_(alpha[:, None, None] * Ap)
        Z = pre(R)
        rz_new = (R * Z).sum((-2, -1))
        Pd = Z.add_((rz_new / rz.clamp_min(torch.finfo(b.dtype).tiny))[:, None, None] * Pd)
        rz = rz_new
        steps += 1
    return X, steps


#: relative residual each float32 correction solve of the mixed-precision CG aims at
MIXED_INNER_TOL = 1e-5


def _cg_weights(u, qa, y, c, lam, tol, max_iter, precision):
    """X (B, D+1, D) of the normal equations by preconditioned CG (see
    :func:`exact_weights`); ``precision="mixed"``: iterative refinement, float32 CG on
    the float64 residual ``R = b - A X`` until the float64 residual is below ``tol``."""
    P = u.shape[-2]
    f64 = u.dtype
    b = (c / P) * torch.bmm((u * y[..., None]).transpose(-1, -2), qa)
    op = _RankOneOperator(u, qa, c, lam, f64)
    if precision == "double":
        X, _ = _pcg(op, _kron_precond(u, qa, c, lam), b, tol, max_iter)
        return X
    op32 = _RankOneOperator(u, qa, c, lam, torch.float32)
    pre32 = _kron_precond(u, qa, c, lam, torch.float32)
    bn = b.flatten(-2).norm(dim=-1)
    X = torch.zeros_like(b)
    R = b
    rn = rn_new = bn
    used = 0
    while used < max_iter:
        if bool((rn <= tol * bn).all()):
            return X
        s = rn.clamp_min(1e-300)[:, None, None]
        # each correction solves only as far as needed (0.5 for the rounding of X + d)
        inner = (0.5 * tol * bn / rn.clamp_min(1e-300)).clamp_min(MIXED_INNER_TOL)
        d, k = _pcg(op32, pre32, (R / s).to(torch.float32), inner.float(), max_iter - used)
        used += max(k, 1)
        X = X + d.to(f64) * s
        R = b - op(X)
        rn_new = R.flatten(-2).norm(dim=-1)
        if bool((rn_new > 0.5 * rn).any()):  # float32 no longer helps: finish in float64
            break
        rn = rn_new
    del op32, pre32
    pre = _kron_precond(u, qa, c, lam)
    d, _ = _pcg(op, pre, R, tol * float((bn / rn_new.clamp_min(1e-300)).min()), max_iter)
    return X + d


def exact_weights(
    u: torch.Tensor,
    q: torch.Tensor,
    y: torch.Tensor,
    c: float,
    lam: float,
    *,
    tol: float = 1e-11,
    max_iter: int = 1000,
    precision: str = "double",
) -> torch.Tensor:
    """The ground state (ridge minimizer of eq. 2) as the matrix W (*B, D+1, D+1) of the
    rank-one instance ``S^mu = c u_mu (x) q_mu`` with ``q = [x~; 0]``.

    Only the ``D (D+1)`` weights ``W[:, :D]`` enter (the last column is 0). With
    ``n = D (D+1)``: for ``P <= n`` the dual form ``W = c sum_mu a_mu u_mu q_mu^T``,
    ``(K + P lam) a = y``, ``K_{mu nu} = c^2 (u_mu.u_nu)(q_mu.q_nu)`` (one Cholesky of
    size P); for ``P > n`` where the cost model :func:`dense_is_cheaper` says so, the
    ``n x n`` normal equations (one GEMM, one Cholesky); else conjugate gradients on
    the normal equations ``(c^2/P) sum_mu (u^T M q) u q^T + lam M = (c/P) sum_mu y u q^T``
    with the Kronecker preconditioner (``O(P D^2)`` per iteration), stopped at relative
    residual ``tol``.
    ``precision`` (CG only): ``"double"`` runs CG in float64; ``"mixed"`` runs it in
    float32 as corrections to a float64 solution (iterative refinement on the float64
    residual, stopped at the same ``tol`` on that residual), about twice as fast on CPUs.
    Agrees with :func:`spinglass_icl.solvers.ground_state` to rounding (tested).
    """
    lam = check_float("lam", lam, low=0.0, low_open=True)
    check_choice("precision", precision, ("double", "mixed"))
    return _exact_weights(u, q[..., : u.shape[-1] - 1], y, c, lam, tol, max_iter, precision)


def _exact_weights(u, qa, y, c, lam, tol=1e-11, max_iter=1000, precision="double"):
    """:func:`exact_weights` from the queries ``qa`` (*B, P, D) without q's zero column."""
    D = u.shape[-1] - 1
    P = u.shape[-2]
    n = D * (D + 1)
    W = torch.zeros(*u.shape[:-2], D + 1, D + 1, dtype=u.dtype, device=u.device)
    if P <= n:
        K = c * c * (u @ u.transpose(-1, -2)) * (qa @ qa.transpose(-1, -2))
        K.diagonal(dim1=-2, dim2=-1).add_(P * lam)
        L = torch.linalg.cholesky(K)
        a = torch.cholesky_solve(y[..., None], L)[..., 0]
        W[..., :D] = c * (u * a[..., None]).transpose(-1, -2) @ qa
        return W

    if dense_is_cheaper(D, P):  # small: the n x n normal equations, one Cholesky
        F = (c * u[..., :, None] * qa[..., None, :]).flatten(-2)  # (*B, P, n)
        A = F.transpose(-1, -2) @ F / P
        A.diagonal(dim1=-2, dim2=-1).add_(lam)
        rhs = F.transpose(-1, -2) @ y[..., None] / P
        X = torch.cholesky_solve(rhs, torch.linalg.cholesky(A))[..., 0]
        W[..., :D] = X.reshape(*X.shape[:-1], D + 1, D)
        return W

    batch = u.shape[:-2]
    X = _cg_weights(
        u.reshape(-1, P, D + 1), qa.reshape(-1, P, D), y.reshape(-1, P), c, lam, tol,
        max_iter, precision,
    )  # fmt: skip
    W[..., :D] = X.reshape(*batch, D + 1, D)
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
#: (a batch that stays near the CPU's cache runs faster per instance than one batch of all)
CHUNK_BYTES = 1 << 28


def instance_bytes(D: int, N: int, P: int, solver: str = "exact", precision: str = "double") -> int:
    """Working memory of one instance of :func:`task_diversity` (bytes): the float64
    factors ``u, q~`` and the CG operator's copies and buffers (``U^T``, ``U M``; with
    ``precision="mixed"`` also their float32 copies), ``~8 P (4 D + 4)`` bytes (``+ 4 P
    (4 D + 2)``), plus the dual ``P x P`` system, the dense ``n x n`` one or, for AMP,
    the package's dense couplings."""
    n = D * (D + 1)
    b = 8 * P * (4 * D + 4)
    if solver == "amp":
        return b + 8 * 6 * (D + 1) ** 4
    if P <= n:
        return b + 8 * 2 * P * P
    if dense_is_cheaper(D, P):
        return b + 8 * (P * n + 2 * n * n)
    return b + (4 * P * (4 * D + 2) if precision == "mixed" else 0)


def _draw_batch(cfgs: list, seeds: list):
    """The factors of several instances drawn straight into one batch: ``u`` (B, P,
    D+1), the queries ``qa`` (B, P, D) and ``y`` (B, P), float64 tensors; instance j is
    ``sample_pool_factors(cfgs[j], seeds[j])`` (the same numbers). The draws run on up
    to ``torch.get_num_threads()`` threads (NumPy's samplers release the GIL)."""
    B, t = len(cfgs), cfgs[0]
    u = np.empty((B, t.P, t.D + 1))
    qa = np.empty((B, t.P, t.D))
    y = np.empty((B, t.P))

    def one(j):
        cfgs[j].check_sizes()
        _draw_pool_factors(cfgs[j], check_int("seed", seeds[j], minimum=0), u[j], qa[j], y[j])

    workers = max(1, min(B, torch.get_num_threads()))
    if workers == 1:
        for j in range(B):
            one(j)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(one, range(B)))
    return torch.from_numpy(u), torch.from_numpy(qa), torch.from_numpy(y)


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
    precision: str = "mixed",
) -> list[DiversityRow]:
    """The task-diversity curve: for every pool size K in ``tasks`` (None: no pool) and
    ``averages`` draws of (pool, training set), the solver's e_ICL, e_IDG and g_task in
    closed form, dMMSE's and ridge's by Monte Carlo (``n_test`` prompts of each kind),
    and Lu et al.'s theory. Average j of pool size K uses pool seed and training seed
    derived from ``(seed, K, j)``. ``solver``: ``"exact"`` (:func:`exact_weights`) or
    ``"amp"`` (the package's AMP with the Onsager term, beta 1e4). ``progress`` is
    called with ``(done, total)`` after each pool size. ``precision``: the exact
    solution's CG (:func:`exact_weights`): ``"mixed"`` (default; float32 corrections
    of a float64 solution, the same stopping rule on the float64 residual) or
    ``"double"``."""
    from .theory import pool_theory

    D, N, P = check_int("D", D), check_int("N", N), check_int("P", P)
    averages = check_int("averages", averages)
    check_choice("solver", solver, ("exact", "amp"))
    check_choice("precision", precision, ("double", "mixed"))
    if not tasks:
        raise ParameterError("tasks must list at least one pool size K")
    rows: list[DiversityRow] = []
    contexts = None
    for i, K in enumerate(tasks):
        cfgs = _pool_configs(
            D, N, P, K, noise, convention, task_norm, assignment, averages, seed
        )  # fmt: skip
        cfgs[0].check_sizes()
        per = instance_bytes(D, N, P, solver, precision)
        if i == 0:
            check_memory(per, f"task-diversity D={D} N={N} P={P}", "use a smaller D or P")
        W = _pool_weights(cfgs, K, seed, solver, lam, precision, per)
        icl = [float(t.exact_test_error(W[j], "icl")) for j, t in enumerate(cfgs)]
        idg = [float(t.exact_test_error(W[j], "idg")) for j, t in enumerate(cfgs)]
        rows.append(_row(K, D, solver, icl, idg))
        if baselines and K is not None:
            if contexts is None:
                contexts = TestContexts.draw(D, N, n_test, _seed(seed, "contexts"))
            rows += _baseline_rows(cfgs, K, D, contexts, seed)
        th = pool_theory(D, N, P, K, lam, convention, noise)
        rows.append(_row(K, D, "theory", [th.icl], [th.idg]))
        if progress is not None:
            progress(i + 1, len(tasks))
    return rows


def _pool_configs(
    D: int,
    N: int,
    P: int,
    K: int | None,
    noise: float,
    convention: str,
    task_norm: str,
    assignment: str,
    averages: int,
    seed: int,
) -> list[TaskConfig]:
    """The ``averages`` task configurations of pool size ``K``: average j draws its pool
    from the seed derived from ``(seed, K, j, "pool")``."""
    return [
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


def _pool_weights(
    cfgs: list[TaskConfig],
    K: int | None,
    seed: int,
    solver: str,
    lam: float,
    precision: str,
    per: int,
) -> torch.Tensor:
    """The solver's weights for every average of one pool size, solved in equal chunks
    of at most :data:`CHUNK_BYTES` (``per``: bytes of one instance); average j trains on
    the seed derived from ``(seed, K, j, "train")``."""
    averages = len(cfgs)
    step = max(1, min(averages, int(CHUNK_BYTES // per)))
    step = -(-averages // -(-averages // step))  # equal chunks: 10 + 10, not 16 + 4
    Ws = []
    for lo in range(0, averages, step):
        part = range(lo, min(averages, lo + step))
        u, qa, y = _draw_batch([cfgs[j] for j in part], [_seed(seed, K, j, "train") for j in part])
        if solver == "exact":
            Ws.append(_exact_weights(u, qa, y, cfgs[0].prefactor, lam, precision=precision))
        else:
            q = torch.cat([qa, qa.new_zeros(*qa.shape[:-1], 1)], -1)
            Ws.append(_amp_weights(u, q, y, cfgs[0], lam))
        del u, qa, y
    return torch.cat(Ws)


def _baseline_rows(
    cfgs: list[TaskConfig], K: int, D: int, contexts: TestContexts, seed: int
) -> list[DiversityRow]:
    """dMMSE's and ridge's rows of one pool size, by Monte Carlo on ``contexts``; average
    j tests on the seed derived from ``(seed, K, j, "test")``."""
    bl = [baseline_errors(t, contexts, _seed(seed, K, j, "test")) for j, t in enumerate(cfgs)]
    return [
        _row(K, D, name, [b[name][0] for b in bl], [b[name][1] for b in bl])
        for name in ("dmmse", "ridge")
    ]


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
            stacklevel=4,  # task_diversity > _pool_weights > here
        )
        W[bad] = float("nan")
    return W

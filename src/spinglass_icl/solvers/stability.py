"""Where AMP converges, and why: linear stability of the damped AMP iteration (eq. 34).

The derivation is in docs/amp-stability.md. In short, with ``w = beta v`` and
``R_i = beta sum_j J_ij^2 v_j = V_i / beta``:

1. The variance equation (34b) does not involve ``m``. Its damped map
   ``v <- d v + (1 - d) / (beta lam_i - beta^2 J^2 v)`` is monotone from
   ``v0 = 1/(beta lam_i)``: it either converges to the smallest positive fixed point
   ``v*`` or a denominator ``beta lam_i - V_i`` reaches zero, which proves that no
   positive fixed point exists. ``beta`` cancels: ``w`` solves
   ``w_i = 1 / (lam_i - sum_j J_ij^2 w_j)`` whatever ``beta`` is.
2. Given ``v*``, the mean update (34a) is affine, ``m <- b + A m``, with
   ``I - A = diag(w) K``, ``K = G + lam I`` for ``amp`` (Onsager term) and
   ``K = G + lam I - diag(R)`` for ``amp-paper``. ``A`` is similar to the symmetric
   ``I - M``, ``M = W^1/2 K W^1/2``: its eigenvalues ``1 - mu`` are real.
3. The damped mean iteration ``theta I + (1 - theta) A`` has eigenvalues
   ``1 - (1 - theta) mu``; it converges iff ``mu_min > 0`` and
   ``(1 - theta) mu_max < 2``, i.e. ``theta > 1 - 2 / mu_max``. If ``mu_min <= 0`` (an
   eigenvalue of ``A`` >= 1) no damping converges. For ``amp``, ``mu_min >= lam min w > 0``
   always: some damping always works when ``v*`` exists.

:func:`amp_stability` computes all of it, batched, from the variance fixed point and
the extreme eigenvalues of ``M`` (:func:`extreme_eigenvalues`); it never runs the mean
iteration.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ParameterError
from ..hamiltonian import Instance
from .config import DEFAULT_SOLVER, SolverConfig
from .operators import DenseOperators, Operators
from .registry import check_auto_damping, get_solver

__all__ = [
    "AUTO_DAMPING_GRID",
    "StabilityResult",
    "amp_stability",
    "auto_damping",
    "damped_radius",
    "extreme_eigenvalues",
]

#: ``--damping auto`` searches this grid (floor 0.0, step 0.05, cap 0.99)
AUTO_DAMPING_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(20)) + (0.99,)


def damped_radius(mu_min: torch.Tensor, mu_max: torch.Tensor, damping) -> torch.Tensor:
    """Spectral radius ``max |1 - (1 - theta) mu|`` of ``theta I + (1 - theta) A``.

    ``mu`` are the eigenvalues of ``M = I - A`` (real, see docs/amp-stability.md);
    the extreme ones decide the radius. ``damping`` is a float or a tensor that
    broadcasts against ``mu_min``.
    """
    s = 1.0 - torch.as_tensor(damping, dtype=mu_min.dtype, device=mu_min.device)
    return torch.maximum((1.0 - s * mu_max).abs(), (1.0 - s * mu_min).abs())


def _iterations(rate: torch.Tensor, tol: float) -> torch.Tensor:
    """Iterations ``log(tol) / log(rate)`` a linear contraction needs (inf if rate >= 1)."""
    rate = rate.clamp_min(1e-300)
    n = math.log(tol) / torch.log(rate)
    return torch.where(rate < 1, n.clamp_min(1.0), torch.full_like(n, math.inf))


@dataclass(frozen=True)
class StabilityResult:
    """Predicted outcome of damped AMP on an instance, without running the mean iteration.

    Per-instance fields have the instance's batch shape (0-dimensional for one
    instance): tensors, and numpy arrays of str for ``variance_status`` and ``reason``
    (as :attr:`SolverResult.status`). No field is NaN: where there is no variance
    fixed point the mean quantities are ``inf`` (radius) or ``nan``-free sentinels, and
    ``variance_status`` says why.

    Attributes
    ----------
    solver : str
        A registered solver with the stability capability (``"amp"``, ``"amp-paper"``).
    damping : float
        The damping the prediction is for (``new = damping old + (1 - damping) update``).
    has_fixed_point : Tensor (bool)
        The variance map (eq. 34b) reached a positive fixed point within the solver's
        ``tol`` and ``max_iter`` (iterated undamped: the same fixed point, faster).
    variance_status : numpy array of str, batch shape
        Per instance: ``"converged"`` (the damped map reaches
        ``tol`` within ``max_iter``), ``"no_fixed_point"`` (a denominator
        ``beta lam_i - V_i`` reached zero: no positive fixed point exists) or
        ``"max_iter"`` (no verdict within the cap, or the damped map too slow for it).
    variance_iterations : Tensor (int64)
        Iterations the damped variance map needs, ``log(tol) / log(damping +
        (1 - damping) nu)`` with ``nu`` the larger of ``variance_rate`` and the undamped
        run's mean rate ``tol^(1/count)`` (capped at ``max_iter + 1``).
    margin : Tensor
        ``min_i (beta lam_i - V_i)`` at the last variance iterate (> 0 at a fixed point;
        ``<= 0`` where none exists).
    variance_rate : Tensor
        Perron root of the variance map's Jacobian ``beta^2 diag(v*^2) J^2`` at ``v*``
        (< 1 at the smallest fixed point; -> 1 where the fixed point disappears); inf
        without a fixed point.
    mu_min, mu_max : Tensor
        Extreme eigenvalues of ``M = I - A(v*)`` (``A`` the affine mean update; for
        ``amp`` with the Onsager diagonal). ``A`` has an eigenvalue >= 1 iff
        ``mu_min <= 0``. ``nan``-free: 0 and inf without a fixed point.
    radius : Tensor
        Spectral radius of the damped mean Jacobian ``damping I + (1 - damping) A(v*)``
        (inf without a fixed point).
    iterations : Tensor
        Predicted iterations to ``tol``: the variance map's count or
        ``log(tol) / log(radius)``, whichever is larger (inf if not contracting).
    converges : Tensor (bool)
        Predicted solver status is ``"converged"``: a variance fixed point, ``radius < 1``
        and ``iterations <= max_iter``.
    can_converge : Tensor (bool)
        Some damping in [0, 1) converges: a variance fixed point and ``mu_min > 0``.
    damping_min : Tensor
        Infimum of the dampings that converge, ``max(0, 1 - 2 / mu_max)`` (every damping
        above it converges); inf where no damping can.
    damping_opt, radius_opt : Tensor
        The damping minimizing the radius, ``max(0, 1 - 2 / (mu_min + mu_max))``, and
        that radius (inf where no damping can).
    reason : numpy array of str, batch shape
        One sentence per instance.
    """

    solver: str
    damping: float
    beta: float
    tol: float
    max_iter: int
    has_fixed_point: torch.Tensor
    variance_status: np.ndarray
    variance_iterations: torch.Tensor
    margin: torch.Tensor
    variance_rate: torch.Tensor
    mu_min: torch.Tensor
    mu_max: torch.Tensor
    radius: torch.Tensor
    iterations: torch.Tensor
    converges: torch.Tensor
    can_converge: torch.Tensor
    damping_min: torch.Tensor
    damping_opt: torch.Tensor
    radius_opt: torch.Tensor
    reason: np.ndarray

    @property
    def batched(self) -> bool:
        return self.converges.dim() > 0

    def radius_at(self, damping) -> torch.Tensor:
        """Spectral radius of the damped mean Jacobian at another ``damping``."""
        r = damped_radius(self.mu_min, self.mu_max, damping)
        return torch.where(self.has_fixed_point, r, torch.full_like(r, math.inf))

    def summary(self) -> dict:
        """Plain-Python dict of one (unbatched) result, for JSON and the CLI."""
        if self.batched:
            raise ValueError("summary() needs an unbatched result; index the batch first")
        f = lambda t: float(t)  # noqa: E731
        return {
            "solver": self.solver,
            "damping": self.damping,
            "beta": self.beta,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "converges": bool(self.converges),
            "has_fixed_point": bool(self.has_fixed_point),
            "variance_status": str(self.variance_status),
            "variance_iterations": int(self.variance_iterations),
            "margin": f(self.margin),
            "variance_rate": f(self.variance_rate),
            "mu_min": f(self.mu_min),
            "mu_max": f(self.mu_max),
            "radius": f(self.radius),
            "iterations": f(self.iterations),
            "can_converge": bool(self.can_converge),
            "damping_min": f(self.damping_min),
            "damping_opt": f(self.damping_opt),
            "radius_opt": f(self.radius_opt),
            "reason": str(self.reason),
        }

    def __getitem__(self, i: int) -> StabilityResult:
        """The ``i``-th instance of a result with one batch dimension."""
        if self.converges.dim() != 1:
            raise IndexError("indexing needs a result with exactly one batch dimension")
        i = range(int(self.converges.shape[0]))[i]
        kw = {}
        for f in dataclasses.fields(self):
            x = getattr(self, f.name)
            if isinstance(x, np.ndarray):
                x = x[i : i + 1].reshape(())
            elif isinstance(x, torch.Tensor):
                x = x[i]
            kw[f.name] = x
        return StabilityResult(**kw)

    def __repr__(self) -> str:
        """One line: solver, damping and how many instances are predicted to converge."""
        n = self.converges.numel()
        what = (
            f"converges={bool(self.converges)}, radius={float(self.radius):.4g}"
            if not self.batched
            else f"converges {int(self.converges.sum())} of {n}"
        )
        return (
            f"StabilityResult(solver={self.solver!r}, damping={self.damping:g}, "
            f"beta={self.beta:g}, {what})"
        )


#: ``extreme_eigenvalues`` uses Lanczos from this many spins on (below, ``eigvalsh`` is
#: cheaper; benchmarks/stability.py ``--sections eig``)
LANCZOS_MIN_N = 1000
#: Ritz residual bound at which Lanczos stops, relative to the largest |Ritz value|
LANCZOS_RTOL = 1e-10


def lanczos_max_steps(n: int) -> int:
    """Lanczos step budget for ``n`` spins: past ``n / 10`` steps ``eigvalsh`` is cheaper."""
    return min(n, max(30, n // 10))


def extreme_eigenvalues(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest and largest eigenvalue of the symmetric ``M`` (*batch, n, n).

    Below ``LANCZOS_MIN_N`` spins: ``torch.linalg.eigvalsh``. From there on: Lanczos with
    full reorthogonalization (two Gram-Schmidt passes), batched, from a seeded random
    start, checked every 10 steps. An instance stops when the Ritz residuals
    ``beta_k |y_k|`` of both extreme Ritz pairs are at most ``LANCZOS_RTOL`` times the
    largest ``|Ritz value|``: each is then within that distance of an eigenvalue of
    ``M`` (in practice the error is the square of it: ~1e-16 relative), and the Ritz
    values lie inside the spectrum. Instances that have not stopped within
    :func:`lanczos_max_steps` fall back to ``eigvalsh``. At the variance fixed point
    the extremes of ``M`` are well separated: 40-90 steps at D = 40 (n = 1681), 2-3x
    cheaper than ``eigvalsh`` (benchmarks/RESULTS.md). See docs/amp-stability.md for
    why only the extremes matter.
    """
    batch, n = M.shape[:-2], M.shape[-1]
    if n < LANCZOS_MIN_N:
        mu = torch.linalg.eigvalsh(M)
        return mu[..., 0], mu[..., -1]
    Mf = M.reshape(-1, n, n)
    B, dt, dev = Mf.shape[0], M.dtype, M.device
    lo = torch.zeros(B, dtype=dt, device=dev)
    hi = torch.zeros(B, dtype=dt, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    k_max = lanczos_max_steps(n)
    q = torch.randn(n, dtype=dt, generator=torch.Generator().manual_seed(0)).to(dev)
    Q = torch.empty(B, k_max + 1, n, dtype=dt, device=dev)
    Q[:, 0] = q / q.norm()
    alpha = torch.zeros(B, k_max, dtype=dt, device=dev)
    beta = torch.zeros(B, k_max, dtype=dt, device=dev)
    for k in range(k_max):
        w = (Mf @ Q[:, k].unsqueeze(-1)).squeeze(-1)
        alpha[:, k] = (w * Q[:, k]).sum(-1)
        Qk = Q[:, : k + 1]
        for _ in range(2):
            w = w - (Qk.transpose(1, 2) @ (Qk @ w.unsqueeze(-1))).squeeze(-1)
        b = w.norm(dim=-1)
        beta[:, k] = b
        Q[:, k + 1] = w / b.clamp_min(1e-300).unsqueeze(-1)
        if (k + 1) % 10 and k + 1 < k_max:
            continue
        T = torch.diag_embed(alpha[:, : k + 1])
        T = T + torch.diag_embed(beta[:, :k], 1) + torch.diag_embed(beta[:, :k], -1)
        th, Y = torch.linalg.eigh(T)
        r = b.unsqueeze(-1) * Y[:, -1, :].abs()  # residual bounds of all Ritz pairs
        tol = LANCZOS_RTOL * th.abs().amax(-1)
        ok = ~done & (r[:, 0] <= tol) & (r[:, -1] <= tol)
        lo = torch.where(ok, th[:, 0], lo)
        hi = torch.where(ok, th[:, -1], hi)
        done |= ok
        if bool(done.all()):
            break
    if not bool(done.all()):  # the fallback: the full eigenvalue problem
        mu = torch.linalg.eigvalsh(Mf[~done])
        lo[~done], hi[~done] = mu[..., 0], mu[..., -1]
    return lo.reshape(batch), hi.reshape(batch)


def _variance_fixed_point(J2, lam_i, beta, tol, max_iter):
    """The variance map (eq. 34b) alone, undamped, with the engine's residual and stops.

    The map is monotone from ``v0 = 1/(beta lam_i)``, damped or not, so the damped and
    the undamped iterations reach the same smallest fixed point ``v*`` or both hit a
    non-positive denominator (docs/amp-stability.md); the undamped one is the faster.
    Returns ``v, converged, no_fixed_point, iterations, margin, rate`` where ``rate``
    estimates the Perron root of the map's Jacobian at ``v*`` (power iteration started
    from the last increment, which the monotone iteration has already aligned with it,
    stopped when the estimate changes by less than 1e-14 relative, at most 30 steps).
    """
    v = 1.0 / (beta * lam_i)
    batch = lam_i.shape[:-1]
    active = torch.ones(batch, dtype=torch.bool, device=v.device)
    conv = torch.zeros_like(active)
    bad = torch.zeros_like(active)
    n_it = torch.zeros(batch, dtype=torch.int64, device=v.device)
    beta_lam = beta * lam_i
    margin = beta_lam.amin(-1)
    step = torch.ones_like(v)
    for _ in range(max_iter):
        denom = beta_lam - beta * beta * (v.unsqueeze(-2) @ J2).squeeze(-2)
        dmin = denom.amin(-1)
        margin = torch.where(active, dmin, margin)
        ok = dmin > 0
        f = 1.0 / torch.where(denom > 0, denom, torch.ones_like(denom))
        res = (f - v).abs().amax(-1) / torch.maximum(f.abs().amax(-1), v.abs().amax(-1))
        good = active & ok
        n_it += active
        bad |= active & ~ok
        step = torch.where(good.unsqueeze(-1) & (f != v), f - v, step)
        v = torch.where(good.unsqueeze(-1), f, v)
        done = good & (res < tol)
        conv |= done
        active &= ~(done | ~ok)
        if not bool(active.any()):
            break
    # Perron root of beta^2 diag(v^2) J^2 ~ diag(w) J^2 diag(w), w = beta v (symmetric, >= 0)
    w = beta * v
    x = step.abs() / w.clamp_min(1e-300) + 1e-300  # similarity: Jacobian -> symmetric form
    x = x / x.norm(dim=-1, keepdim=True)
    rate = torch.zeros(batch, dtype=v.dtype, device=v.device)
    for _ in range(30):
        y = w * (((w * x).unsqueeze(-2) @ J2).squeeze(-2))
        prev, rate = rate, (x * y).sum(-1)
        x = y / y.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        # stop once the Rayleigh quotient has settled (to 1e-14) on every instance with a
        # fixed point; the start vector is already aligned, so this takes ~3-15 steps
        if not bool((conv & ((rate - prev).abs() > 1e-14 * rate.abs())).any()):
            break
    return v, conv, bad, n_it, margin, rate


def amp_stability(
    instance: Instance,
    beta: float = 100.0,
    *,
    solver: str = DEFAULT_SOLVER,
    damping: float | None = None,
    tol: float | None = None,
    max_iter: int | None = None,
) -> StabilityResult:
    """Predict whether damped AMP (eq. 34) converges on ``instance``, without iterating m.

    Parameters
    ----------
    instance
        A (batched) :class:`~spinglass_icl.hamiltonian.Instance` with ``lam > 0``.
    beta
        Inverse temperature (> 0). The prediction does not depend on it (it cancels in
        ``w = beta v``); it is used so that the variance iterates match the solver's.
    solver
        A registered solver with the stability capability: ``"amp"`` (with the Onsager
        term; the default, as for :func:`~spinglass_icl.solvers.solve`) or
        ``"amp-paper"`` (eq. 34 verbatim).
    damping, tol, max_iter
        The solver's settings (None: its defaults, those :func:`solve` uses); damping in
        [0, 1), the engine's convention ``new = damping old + (1 - damping) update``.

    Returns
    -------
    StabilityResult
        See its attributes; the derivation is in docs/amp-stability.md.

    Notes
    -----
    Cost: the variance map (one ``J^2`` product per step) plus the two extreme
    eigenvalues of a symmetric matrix of size ``(D+1)^2`` per instance
    (:func:`extreme_eigenvalues`: ``eigvalsh``, or Lanczos from 1000 spins on).
    """
    cfg = SolverConfig(solver, beta=beta, damping=damping, tol=tol, max_iter=max_iter)
    get_solver(solver, need="stability")
    if not isinstance(instance, Instance):
        raise ParameterError(
            f"instance must be a spinglass_icl Instance, got {type(instance).__name__}"
        )
    return stability_from_operators(
        DenseOperators.of(instance), cfg.beta, solver=cfg.solver, damping=cfg.damping,
        tol=cfg.tol, max_iter=cfg.max_iter,
    )  # fmt: skip


def _degenerate(solver, damping, beta, tol, max_iter, batch, dev, dt) -> StabilityResult:
    """The result at lam = 0: the zero-column spins have no precision."""
    inf = torch.full(batch, math.inf, dtype=dt, device=dev)
    zero = torch.zeros(batch, dtype=dt, device=dev)
    no = torch.zeros(batch, dtype=torch.bool, device=dev)
    return StabilityResult(
        solver, damping, beta, tol, max_iter, no, np.full(batch, "no_fixed_point"),
        torch.zeros(batch, dtype=torch.int64, device=dev), zero, inf, zero, inf, inf,
        inf, no, no, inf, inf, inf,
        np.full(batch, "lam = 0: the spins of W's last column have zero precision "
                "(beta lam_i - V_i = 0); no positive variance fixed point"),
    )  # fmt: skip


def _damped_variance_iterations(n_v0, vrate, has_fp, tol, damping, max_iter, dt):
    """Iterations of the *damped* variance map: ``log(tol) / log(damping + (1 - damping)
    nu)`` with nu the undamped run's effective rate, at least ``tol^(1 / its count)``
    (which keeps the transient: the formula gives the undamped count back at damping 0)."""
    n0 = n_v0.to(dt).clamp_min(1.0)
    nu = torch.maximum(vrate.clamp(0.0, 1 - 1e-16), torch.exp(math.log(tol) / n0))
    n_d = torch.ceil(math.log(tol) / torch.log(damping + (1 - damping) * nu))
    n_v = torch.where(has_fp, torch.maximum(n_d, n0) if damping else n0, n0)
    return n_v.clamp(max=float(max_iter) + 1).to(torch.int64)


def _jacobian_spectrum(G, J2, lam_i, v, beta, solver, has_fp, batch):
    """``(mu_min, mu_max)``: the extreme eigenvalues of ``M = W^1/2 K W^1/2`` where the
    variance fixed point ``v*`` exists (0 and inf elsewhere)."""
    dev, dt = G.device, G.dtype
    w = beta * v  # = 1 / (lam_i - R_i), independent of beta
    K = G.clone()
    diag = lam_i - G.diagonal(dim1=-2, dim2=-1)  # = lam (exactly: lam_i = lam + G_ii)
    if not get_solver(solver).reaction_term:  # eq. 34a without -V_i m_i
        R = beta * (v.unsqueeze(-2) @ J2).squeeze(-2)
        diag = diag - R
    K.diagonal(dim1=-2, dim2=-1).add_(diag)
    sw = w.clamp_min(0).sqrt()
    M = sw.unsqueeze(-1) * K * sw.unsqueeze(-2)
    n = M.shape[-1]
    fp = has_fp.reshape(-1)
    lo = torch.zeros(fp.shape, dtype=dt, device=dev)
    hi = torch.full(fp.shape, math.inf, dtype=dt, device=dev)
    if bool(fp.any()):  # only where v* exists (elsewhere M is not the Jacobian's)
        lo[fp], hi[fp] = extreme_eigenvalues(M.reshape(-1, n, n)[fp])
    zero = torch.zeros(batch, dtype=dt, device=dev)
    inf = torch.full(batch, math.inf, dtype=dt, device=dev)
    return torch.where(has_fp, lo.reshape(batch), zero), torch.where(has_fp, hi.reshape(batch), inf)


def _reason(hf, vo, nf, c, ok, cv, r, d0, mg, mn, max_iter) -> str:
    """Why one instance is predicted to converge or not (one sentence)."""
    if hf and not vo:
        return (
            f"the damped variance map (eq. 34b) needs more than max_iter = {max_iter} "
            "iterations to reach tol"
        )
    if not hf:
        return (
            f"no positive variance fixed point (eq. 34b): the margin "
            f"min(beta lam_i - V_i) reached {mg:.3g}; no damping can converge"
            if nf
            else f"the variance map (eq. 34b) did not reach tol within {max_iter} iterations"
        )
    if not c:
        return f"A(v*) has an eigenvalue 1 - mu_min = {1 - mn:.4g} >= 1: no damping can converge"
    if ok:
        return f"converges: damped radius {r:.4g} < 1 (~{cv:.0f} iterations)"
    if r >= 1:
        return (
            f"damped mean iteration unstable: radius {r:.4g} >= 1; converges for damping > {d0:.4g}"
        )
    return f"radius {r:.6g} < 1 but ~{cv:.3g} iterations > max_iter = {max_iter}"


def stability_from_operators(
    ops: Operators,
    beta: float,
    *,
    solver: str,
    damping: float,
    tol: float,
    max_iter: int,
) -> StabilityResult:
    """:func:`amp_stability` from the :class:`~spinglass_icl.solvers.operators.Operators`
    of a batch (dense ``G``, ``J^2`` and ``lam_i``; dense or pair backend): for callers
    that hold them already (sweeps). Arguments are not validated here."""
    lam = ops.lam
    G = ops.gram.to(torch.float64)
    J2 = ops.j2.to(torch.float64)
    lam_i = ops.lam_i.to(torch.float64)
    batch = tuple(lam_i.shape[:-1])
    dev, dt = G.device, G.dtype
    if lam <= 0:  # degenerate: the zero-column spins have no precision
        return _degenerate(solver, damping, beta, tol, max_iter, batch, dev, dt)
    inf = torch.full(batch, math.inf, dtype=dt, device=dev)
    v, has_fp, no_fp, n_v0, margin, vrate = _variance_fixed_point(J2, lam_i, beta, tol, max_iter)
    n_v = _damped_variance_iterations(n_v0, vrate, has_fp, tol, damping, max_iter, dt)
    v_ok = has_fp & (n_v <= max_iter)
    mu_min, mu_max = _jacobian_spectrum(G, J2, lam_i, v, beta, solver, has_fp, batch)
    vrate = torch.where(has_fp, vrate, inf)
    can = has_fp & (mu_min > 0)
    radius = torch.where(has_fp, damped_radius(mu_min, mu_max, damping), inf)
    n_pred = torch.maximum(_iterations(radius, tol), n_v.to(dt))
    n_pred = torch.where(has_fp, n_pred, inf)
    converges = v_ok & (radius < 1) & (n_pred <= max_iter)
    mm = mu_max.clamp_min(1e-300)
    dmin = torch.where(can, (1.0 - 2.0 / mm).clamp_min(0.0), inf)
    dopt = torch.where(can, (1.0 - 2.0 / (mu_min + mm)).clamp_min(0.0), inf)
    ropt = torch.where(can, damped_radius(mu_min, mu_max, dopt.clamp_max(1.0)), inf)
    flat = lambda t: t.reshape(-1).tolist()  # noqa: E731
    vstat, reasons = [], []
    for hf, vo, nf, c, ok, cv, r, d0, mg, mn in zip(
        *map(flat, (has_fp, v_ok, no_fp, can, converges, n_pred, radius, dmin, margin, mu_min))
    ):
        vstat.append("converged" if vo else ("no_fixed_point" if nf else "max_iter"))
        reasons.append(_reason(hf, vo, nf, c, ok, cv, r, d0, mg, mn, max_iter))
    return StabilityResult(
        solver=solver,
        damping=damping,
        beta=beta,
        tol=tol,
        max_iter=max_iter,
        has_fixed_point=has_fp,
        variance_status=np.asarray(vstat, dtype=str).reshape(batch),
        variance_iterations=n_v,
        margin=margin,
        variance_rate=vrate,
        mu_min=mu_min,
        mu_max=mu_max,
        radius=radius,
        iterations=n_pred,
        converges=converges,
        can_converge=can,
        damping_min=dmin,
        damping_opt=dopt,
        radius_opt=ropt,
        reason=np.asarray(reasons, dtype=str).reshape(batch),
    )


def auto_damping(
    stab: StabilityResult, grid: tuple[float, ...] = AUTO_DAMPING_GRID, safety: float = 2.0
) -> torch.Tensor:
    """Smallest damping on ``grid`` (floor 0.0, cap 0.99) predicted to converge, per instance.

    A damping qualifies when the damped mean iteration and the damped variance map
    both contract fast enough to reach ``tol`` within ``max_iter / safety`` predicted
    iterations (``log(tol) / log(rate)``; the factor 2 absorbs the transient). Returns a
    tensor of the batch shape; ``nan`` where no grid damping qualifies (then
    ``stab.reason`` says why: no variance fixed point, an eigenvalue of ``A(v*)`` >= 1,
    or convergence slower than the cap allows even at 0.99).
    """
    budget = stab.max_iter / safety
    out = torch.full(stab.converges.shape, math.nan, dtype=stab.mu_max.dtype)
    for d in sorted(grid, reverse=True):
        r = stab.radius_at(d).cpu()
        vr = d + (1 - d) * stab.variance_rate.cpu()
        n = torch.maximum(_iterations(r, stab.tol), _iterations(vr, stab.tol))
        ok = stab.can_converge.cpu() & (n <= budget)
        out = torch.where(ok, torch.full_like(out, d), out)
    return out


def parse_damping(text: str) -> float | str:
    """``--damping`` value: a float, or the string ``"auto"`` (argparse ``type``)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise ParameterError(f"damping must be a number in [0, 1) or auto, got {text!r}") from None


def resolve_auto_damping(
    instance: Instance, solver: str, *, beta: float, tol: float, max_iter: int
) -> tuple[float, str]:
    """``--damping auto``: one damping for ``instance`` (all of a batch) and a sentence.

    The largest over the batch of :func:`auto_damping` (so that every instance is
    predicted to converge); where no grid damping qualifies for some instance, the cap
    0.99 is used and the sentence says so. Solvers other than AMP: damping is then
    meaningless (``exact``) or not analysed (``rbp``), and a ParameterError is raised
    for ``rbp``.
    """
    if not check_auto_damping(solver).uses_damping:
        return 0.0, f"not used by the {solver} solver"
    st = amp_stability(instance, beta, solver=solver, damping=0.5, tol=tol, max_iter=max_iter)
    return batch_auto_damping(st)


def batch_auto_damping(st: StabilityResult) -> tuple[float, str]:
    """One damping for a whole batch from :func:`auto_damping`, and a sentence: the
    largest over the batch, or the cap 0.99 where no instance can converge."""
    d = auto_damping(st).reshape(-1)
    n_bad = int(torch.isnan(d).sum())
    if n_bad == d.numel():
        why = (
            str(st.reason.reshape(-1)[0]) if d.numel() == 1 else f"{n_bad} of {d.numel()} instances"
        )
        return AUTO_DAMPING_GRID[-1], f"{AUTO_DAMPING_GRID[-1]:g} (no damping can converge: {why})"
    chosen = float(d[~torch.isnan(d)].max())
    note = f"{chosen:g} (smallest on the grid 0, 0.05, ..., 0.95, 0.99 predicted to converge)"
    if n_bad:
        note += f"; {n_bad} of {d.numel()} instances cannot converge at any damping"
    return chosen, note


parse_damping.__name__ = "damping"  # argparse: "invalid damping value: 'foo'"


# --------------------------------------------------------------- large-D closed form
def _m(N: int, k: int) -> float:
    """``E (chi^2_N)^k = N (N + 2) ... (N + 2k - 2)``."""
    return math.prod(N + 2 * i for i in range(k))


def block_moments(D: int, N: int, convention: str = "authors") -> dict:
    """Exact prompt moments behind the block equations (docs/amp-stability.md).

    With ``w = r e`` (``r^2 ~ chi^2_D``), ``Q = sum_i (e.x_i)^2 ~ chi^2_N`` and
    ``K ~ chi^2_{D-1}``: ``|u_A|^2 = s^2 r^2 Q (Q + K)``, ``u_D = s^2 r^2 Q`` (``s`` the
    label scale), so every moment is a product of chi-square moments. Returns
    ``g_A = c^2 E u_a^2``, ``g_B = c^2 E u_D^2`` (the mean diagonal of ``G`` on the W11 and
    W21 spins) and the coefficients ``a_XY`` of the mean row sums
    ``E sum_j J_ij^2 w_j = (a_XA x + a_XB y) / P`` for ``i`` in block X, ``w = x`` on W11
    and ``y`` on W21: ``a_XY = c^4 (D + 2) E[u_X^2 |u_Y|^2]`` (per W11 spin: over D), less
    the self term ``E s_i^4`` (``J_ii = 0``).
    """
    from ..conventions import get_convention

    cv = get_convention(convention)
    s, c = cv.label_scale(D), cv.prefactor(D, N)
    r = lambda k: _m(D, k)  # noqa: E731  E r^2k
    uA2 = s**2 * r(1) * (_m(N, 2) + N * (D - 1))
    uD2 = s**4 * r(2) * _m(N, 2)
    uA4 = s**4 * r(2) * (_m(N, 4) + 2 * _m(N, 3) * (D - 1) + _m(N, 2) * (D - 1) * (D + 1))
    uAuD = s**6 * r(3) * (_m(N, 4) + _m(N, 3) * (D - 1))
    uD4 = s**8 * r(4) * _m(N, 4)
    k = c**4 * (D + 2)  # sum_d E q_b^2 q_d^2 = D + 2
    ua4 = 3 * uA4 / (D * (D + 2))  # E u_a^4 of an isotropic vector, for the self term
    return {
        "g_A": c * c * uA2 / D,
        "g_B": c * c * uD2,
        "a_AA": k * uA4 / D - 3 * c**4 * ua4,  # J_ii = 0: the self term E s_i^4 is out
        "a_AB": k * uAuD / D,
        "a_BA": k * uAuD,
        "a_BB": c**4 * (D - 1) * uD4,
    }


def closed_form(
    D: int, N: int, P: float, lam: float, convention: str = "authors", solver: str = "amp"
) -> dict:
    """Large-D prediction for (D, N, P, lam) from exact block moments, no sampling.

    Variance (eq. 34b) with block-uniform ``w = beta v`` (``x`` on the D^2 W11 spins,
    ``y`` on the D W21 spins) and the row sums replaced by their expectations
    (:func:`block_moments`; ``E J_ij^2 = E s_i^2 s_j^2 / P`` exactly)::

        x = 1 / (lam + g_A - (a_AA x + a_AB y) / P)
        y = 1 / (lam + g_B - (a_BA x + a_BB y) / P)

    iterated from ``x = y = 0`` (monotone; no solution = no positive fixed point).
    Mean iteration: the top of the spectrum of ``M = W^1/2 (G + lam I) W^1/2`` from the
    Marchenko-Pastur edges of the two blocks (ratios ``D^2 / P`` and ``D / P``),
    ``mu_max = max(x (lam + g_A (1 + D / sqrt P)^2), y (lam + g_B (1 + sqrt(D / P))^2))``
    (``- R`` inside the brackets for ``amp-paper``). Leading order: the fluctuations of
    the row sums about their means (the boundary is set by the worst spin) and the
    coupling between the blocks in the spectrum are dropped.
    Returns ``{"has_fixed_point", "x", "y", "mu_max"}``.
    """
    bm = block_moments(D, N, convention)
    gA, gB = bm["g_A"], bm["g_B"]
    x = y = 0.0
    ok = False
    for _ in range(200_000):
        RA = (bm["a_AA"] * x + bm["a_AB"] * y) / P
        RB = (bm["a_BA"] * x + bm["a_BB"] * y) / P
        dA, dB = lam + gA - RA, lam + gB - RB
        if dA <= 0 or dB <= 0:
            break
        xn, yn = 1 / dA, 1 / dB
        if abs(xn - x) <= 1e-13 * xn and abs(yn - y) <= 1e-13 * yn:
            ok = True
            break
        x, y = xn, yn
    if not ok:
        return {"has_fixed_point": False, "x": math.inf, "y": math.inf, "mu_max": math.inf}
    sA = sB = 0.0
    if not get_solver(solver, need="stability").reaction_term:
        sA, sB = -RA, -RB
    mu_A = x * (lam + sA + gA * (1 + D / math.sqrt(P)) ** 2)
    mu_B = y * (lam + sB + gB * (1 + math.sqrt(D / P)) ** 2)
    return {"has_fixed_point": True, "x": x, "y": y, "mu_max": max(mu_A, mu_B)}


def closed_form_boundary(
    D: int,
    N: int,
    lam: float,
    convention: str = "authors",
    *,
    solver: str = "amp",
    damping: float | None = None,
    P_range: tuple[float, float] = (1.0, 1e7),
) -> float:
    """Smallest P (real) at which :func:`closed_form` predicts convergence, by bisection.

    With ``damping=None`` only the variance fixed point counts (no damping can help
    below it); otherwise also ``(1 - damping) mu_max < 2``. Returns ``P_range[0]`` if
    it converges there already, ``inf`` if not even at ``P_range[1]``.
    """

    def good(P: float) -> bool:
        cf = closed_form(D, N, P, lam, convention, solver)
        if not cf["has_fixed_point"]:
            return False
        return damping is None or (1 - damping) * cf["mu_max"] < 2

    lo, hi = P_range
    if good(lo):
        return lo
    if not good(hi):
        return math.inf
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if good(mid) else (mid, hi)
        if hi / lo < 1 + 1e-6:
            break
    return hi


def asymptotic_boundary(nu: float, lam: float, convention: str = "authors") -> float:
    """``pi_c = lim P_c / D`` as D -> inf at fixed ``nu = N / D`` (docs/amp-stability.md).

    The variance fixed point exists iff ``P > pi_c D``, with ``gamma = 1 + 1/nu``
    (``authors``, ``normalized``) or ``gamma = 0`` (``paper-text``, where the W11 block
    drops out) and::

        pi_c = gamma^2 / (lam^2 (sqrt(1 + gamma (1 + lam) / lam) - 1)^2)
             -> 4 / (1 + lam)^2   as gamma -> 0.

    So in the (P/D^2, N/D) plane the boundary is ``P/D^2 = pi_c(N/D, lam) / D``: it moves
    towards P/D^2 = 0 like 1/D. beta does not enter.
    """
    from ..conventions import get_convention

    name = get_convention(convention).name
    if lam <= 0:
        return math.inf
    gamma = 0.0 if name == "paper-text" else 1.0 + 1.0 / nu
    if gamma == 0.0:
        return 4.0 / (1.0 + lam) ** 2
    return gamma**2 / (lam**2 * (math.sqrt(1.0 + gamma * (1.0 + lam) / lam) - 1.0) ** 2)

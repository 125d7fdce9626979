"""Theory beside simulation: asymptotic learning curves and the exact finite-D test error.

Two kinds of oracle live here (derivations in ``docs/theory.md``):

* The large-D theory of Lu, Letey, Zavatone-Veth, Maiti & Pehlevan (arXiv:2405.11751,
  PNAS 2025) for ridge regression on linear-attention features, in the proportional
  limit ``N = alpha D``, ``P = tau D^2``, with every prompt carrying its own task (their
  ``kappa -> inf``): :func:`ridgeless_error`, :func:`ridge_error`, and the map from our
  finite parameters to theirs, :func:`theory_params` / :func:`asymptotic_error`; and
  their finite task pool of ``K = kappa D`` tasks (docs/theory.md#task-diversity):
  :func:`ridgeless_icl`, :func:`ridgeless_idg`, :func:`ridge_icl` through the Stieltjes
  transform of the Wishart law, :func:`wishart_stieltjes`, and :func:`pool_theory`.
  Their error is in units of the signal variance (``E (w.x~)^2 = 1`` in their scaling).

* :func:`exact_test_error`: the test error ``E (y~ - y^)^2`` of *any* weight matrix W
  of the SLA ``y^ = c (X X^T W X)[D+1, N+1]`` (paper eq. 2, 40) over Gaussian tasks,
  inputs and label noise, in closed form (a fourth-moment Gaussian computation). It is
  what :func:`spinglass_icl.observables.test_error` estimates by Monte Carlo, without
  the sampling noise.

The paper's ground state (eq. 10-11; docs/conventions.md#ground-states) is the ridge minimizer of
eq. 2 over the
``D (D+1)`` weights ``W11, W21`` that enter ``y^`` (W's last column never does), which is
the model of Lu et al. with ``Gamma = W11^T`` up to a convention-dependent scale; hence
the interpolation peak at ``P = D (D+1)``, ``tau -> 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .conventions import DEFAULT_CONVENTION, get_convention
from .errors import ParameterError, check_float, check_int, finite_derived
from .observables import exact_test_error, relative_exact_test_error  # re-exported

__all__ = [
    "TheoryParams",
    "ridgeless_error",
    "ridge_error",
    "theory_params",
    "lam_prime",
    "asymptotic_error",
    "exact_test_error",
    "relative_exact_test_error",
    "wishart_stieltjes",
    "wishart_stieltjes_derivative",
    "ridgeless_icl",
    "ridgeless_idg",
    "ridge_icl",
    "PoolTheory",
    "pool_theory",
]


def _positive_array(name: str, value: object) -> np.ndarray:
    """``value`` as a float64 array of finite numbers > 0, or ParameterError."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a real number > 0, got {value!r}") from None
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = arr[~(np.isfinite(arr) & (arr > 0))].flat[0]
        raise ParameterError(f"{name} must be a finite number > 0, got {bad:g}")
    return arr


def _nonneg_array(name: str, value: object) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a real number >= 0, got {value!r}") from None
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        bad = arr[~(np.isfinite(arr) & (arr >= 0))].flat[0]
        raise ParameterError(f"{name} must be a finite number >= 0, got {bad:g}")
    return arr


def _out(x: np.ndarray) -> np.ndarray | float:
    return float(x) if x.ndim == 0 else x


def ridgeless_error(alpha: object, tau: object) -> np.ndarray | float:
    """Asymptotic relative test error of the ridgeless (min-norm) SLA, no label noise.

    Lu et al. (2024), ``kappa -> inf``, with ``x = 1 / alpha``::

        tau < 1:  e = (x + (1 - tau)^2) / ((1 - tau) (1 + x))
        tau > 1:  e = tau / ((tau - 1) (1 + alpha))

    and ``e = inf`` at ``tau = 1`` (the interpolation peak, ``P = D (D+1)``).

    Parameters
    ----------
    alpha : float or array
        Context length per dimension ``N / D`` (> 0).
    tau : float or array
        Task diversity per weight ``P / D^2`` (> 0). Broadcasts against ``alpha``.

    Returns
    -------
    float or ndarray
        ``E (y~ - y^)^2 / E y~^2``.
    """
    a = _positive_array("alpha", alpha)
    t = _positive_array("tau", tau)
    a, t = np.broadcast_arrays(a, t)
    x = 1.0 / a
    with np.errstate(divide="ignore", invalid="ignore"):
        below = (x + (1 - t) ** 2) / ((1 - t) * (1 + x))
        above = t / ((t - 1) * (1 + a))
    e = np.where(t < 1, below, np.where(t > 1, above, np.inf))
    return _out(e)


def _eps_root(tau: np.ndarray, lam: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The positive root of ``1 - tau + tau lam / eps - eps / (1 + eps + x*) = 0``.

    Times ``eps (1 + eps + x*)`` it is ``tau eps^2 - B eps - tau lam (1 + x*) = 0``
    with ``B = (1 - tau)(1 + x*) + tau lam``; the product of the roots is
    ``-lam (1 + x*) <= 0``, so there is exactly one root ``> 0`` (for lam > 0), and
    ``max(B, 0) / tau`` at lam = 0. Written without cancellation for either sign of B.
    """
    B = (1 - tau) * (1 + xs) + tau * lam
    root = np.sqrt(B * B + 4 * tau * tau * lam * (1 + xs))
    with np.errstate(divide="ignore", invalid="ignore"):
        plus = (B + root) / (2 * tau)
        minus = np.where(root - B > 0, 2 * tau * lam * (1 + xs) / (root - B), 0.0)
    return np.where(B >= 0, plus, minus)


def ridge_error(
    alpha: object, tau: object, lam_prime: object, rho: object = 0.0
) -> np.ndarray | float:
    """Asymptotic test error of ridge-trained linear attention (Lu et al. 2024, kappa -> inf).

    With ``x* = (1 + rho) / alpha``, ``S(z) = 1 / (1 + z)`` and ``S'(z) = -S(z)^2``:
    ``eps`` is the positive root of ``1 - tau + tau lam'/eps - eps S(eps + x*) = 0``,
    ``nu = x* + eps``, and with ``S, S'`` at ``nu``::

        c = [rho + nu - nu^2 S - eps (1 - 2 nu S - nu^2 S')] / [1 - 2 eps S - eps^2 S' - tau]
        e = (x* + 1) [1 - 2 nu S - nu^2 S' - c (S + eps S')] - 2 (1 - nu S) + 1 + rho

    ``lam' -> 0`` reproduces :func:`ridgeless_error` (checked in the tests to 1e-6).

    Parameters
    ----------
    alpha, tau : float or array
        ``N / D`` and ``P / D^2`` (> 0).
    lam_prime : float or array
        Their ridge parameter (>= 0); see :func:`lam_prime` for the map from our lam.
    rho : float or array
        Label-noise variance relative to the signal variance (>= 0); it enters the
        context labels and the query label.

    Returns
    -------
    float or ndarray
        ``E (y~ - y^)^2`` in units of the signal variance ``E (scale w.x~)^2``, so that
        ``e -> rho`` is the floor; for rho = 0 it is the relative error. Divide by
        ``1 + rho`` for the error relative to ``E y~^2`` (what :func:`asymptotic_error`
        returns). ``inf`` at the ridgeless peak ``tau = 1, lam' = 0``.
    """
    a = _positive_array("alpha", alpha)
    t = _positive_array("tau", tau)
    lam = _nonneg_array("lam_prime", lam_prime)
    r = _nonneg_array("rho", rho)
    a, t, lam, r = np.broadcast_arrays(a, t, lam, r)
    xs = (1 + r) / a
    eps = _eps_root(t, lam, xs)
    nu = xs + eps
    S = 1.0 / (1.0 + nu)
    dS = -S * S
    with np.errstate(divide="ignore", invalid="ignore"):
        num = r + nu - nu * nu * S - eps * (1 - 2 * nu * S - nu * nu * dS)
        den = 1 - 2 * eps * S - eps * eps * dS - t
        c = num / den
        e = (xs + 1) * (1 - 2 * nu * S - nu * nu * dS - c * (S + eps * dS)) - 2 * (1 - nu * S)
        e = e + 1 + r
    e = np.where(np.isfinite(e) & (den != 0), e, np.inf)
    return _out(e)


@dataclass(frozen=True)
class TheoryParams:
    """Our finite parameters in the units of Lu et al. (2024).

    Attributes
    ----------
    alpha : float
        ``N / D``.
    tau : float
        ``P / D^2``.
    lam_prime : float
        Their ridge parameter; see :func:`lam_prime`.
    rho : float
        Label-noise variance over signal variance, ``noise^2 / (scale^2 D)``.
    """

    alpha: float
    tau: float
    lam_prime: float
    rho: float = 0.0


def lam_prime(D: int, N: int, lam: float, convention: str = DEFAULT_CONVENTION) -> float:
    """Map our ridge lam (eq. 2, ``+ lam/2 ||W||^2``) to the lam' of Lu et al.

    Our SLA reads ``y^ = c sum_i y_i x~^T W11^T x_i (+ W21 term)``; theirs (inputs of
    variance 1/D, labels of variance 1) reads ``(1/N) sum_i y_i x~^T Gamma x_i`` in terms
    of unit-variance inputs, with the loss ``(1/P) sum (y~ - y^)^2 + (lam'/D) ||Gamma||_F^2``.
    Matching predictions and losses (``docs/theory.md`` section 2):

    ============== ========================= =========================
    convention     Gamma                      lam'
    ============== ========================= =========================
    ``authors``    ``N/(N+1) W11^T``          ``D lam ((N+1)/N)^2``
    ``normalized`` ``W11^T``                  ``D lam``
    ``paper-text`` ``W11^T / D``              ``D^2 lam``
    ============== ========================= =========================

    Confirmed by simulation (``tests/test_theory.py``, ``docs/theory.md``).
    """
    D = check_int("D", D)
    N = check_int("N", N)
    lam = check_float("lam", lam, low=0.0)
    name = get_convention(convention).name
    if name == "authors":
        return D * lam * ((N + 1) / N) ** 2
    if name == "normalized":
        return D * lam
    return D * D * lam


def theory_params(
    D: int,
    N: int,
    P: int,
    lam: float,
    convention: str = DEFAULT_CONVENTION,
    noise: float = 0.0,
) -> TheoryParams:
    """``(alpha, tau, lam', rho)`` of Lu et al. for our ``(D, N, P, lam, convention, noise)``."""
    D = check_int("D", D)
    N = check_int("N", N)
    P = check_int("P", P)
    noise = check_float("noise", noise, low=0.0)
    conv = get_convention(convention)
    rho = finite_derived(
        "noise",
        noise,
        "rho = noise^2 / (scale^2 D)",
        lambda: noise**2 / (conv.label_scale(D) ** 2 * D),
    )
    return TheoryParams(
        alpha=N / D, tau=P / D**2, lam_prime=lam_prime(D, N, lam, conv.name), rho=rho
    )


def asymptotic_error(
    D: int,
    N: int,
    P: int,
    lam: float,
    convention: str = DEFAULT_CONVENTION,
    noise: float = 0.0,
) -> float:
    """Large-D relative test error ``E (y~ - y^)^2 / E y~^2`` predicted for these parameters.

    The ridge (or, at lam = 0, ridgeless) theory of Lu et al. at ``alpha = N/D``,
    ``tau = P/D^2`` and the mapped lam' (:func:`theory_params`), divided by
    ``1 + rho`` so that it compares with ``TestError.relative`` of
    :func:`spinglass_icl.observables.test_error` (whose ``E y~^2`` includes the noise).
    """
    p = theory_params(D, N, P, lam, convention, noise)
    return float(ridge_error(p.alpha, p.tau, p.lam_prime, p.rho)) / (1.0 + p.rho)


# ---------------------------------------------------------------- finite task pool


def _kappa_array(kappa: object) -> np.ndarray:
    """``kappa`` as a float64 array of numbers > 0 (``inf`` allowed: no pool)."""
    try:
        arr = np.asarray(kappa, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"kappa must be a real number > 0 or inf, got {kappa!r}") from None
    if np.any(np.isnan(arr)) or np.any(arr <= 0):
        bad = arr[np.isnan(arr) | (arr <= 0)].flat[0]
        raise ParameterError(f"kappa must be a real number > 0 or inf, got {bad:g}")
    return arr


def wishart_stieltjes(x: object, kappa: object) -> np.ndarray | float:
    """``M_kappa(x) = lim (1/D) tr (R + x I)^-1`` for the sample second moment
    ``R = (1/K) sum_k w_k w_k^T`` of ``K = kappa D`` standard Gaussian tasks (the
    Marchenko-Pastur law of ratio ``1/kappa``), ``x > 0``; Lu et al. (2024)::

        M_kappa(x) = 2 / (b + sqrt(b^2 + 4 x / kappa)),   b = x + 1 - 1/kappa

    (computed as ``kappa (sqrt(...) - b) / (2 x)`` when ``b < 0``, without
    cancellation). ``kappa = inf`` gives ``1 / (1 + x)``.
    """
    x = _positive_array("x", x)
    k = _kappa_array(kappa)
    x, k = np.broadcast_arrays(x, k)
    inv = np.where(np.isinf(k), 0.0, 1.0 / k)
    b = x + 1 - inv
    R = np.sqrt(b * b + 4 * x * inv)
    with np.errstate(divide="ignore", invalid="ignore"):
        neg = (R - b) / (2 * x * inv)
    return _out(np.where(b >= 0, 2.0 / (b + R), neg))


def wishart_stieltjes_derivative(x: object, kappa: object) -> np.ndarray | float:
    """``d M_kappa / dx = -M^2 (1 + (x + 1 + 1/kappa) / sqrt(b^2 + 4x/kappa)) / 2``
    (``-1/(1+x)^2`` at ``kappa = inf``)."""
    x = _positive_array("x", x)
    k = _kappa_array(kappa)
    x, k = np.broadcast_arrays(x, k)
    inv = np.where(np.isinf(k), 0.0, 1.0 / k)
    b = x + 1 - inv
    R = np.sqrt(b * b + 4 * x * inv)
    M = np.asarray(wishart_stieltjes(x, k))
    return _out(-0.5 * M * M * (1 + (x + 1 + inv) / R))


def _ridgeless_pool_terms(alpha: object, kappa: object, tau: object, rho: object):
    """The checked, broadcast ``(kappa, tau, rho)`` and the terms both ridgeless pool
    errors are written in: ``x* = (1 + rho)/alpha``, ``m* = M_kappa(x*)``,
    ``mu* = x* M_{kappa/tau}(x*)``."""
    a = _positive_array("alpha", alpha)
    k = _kappa_array(kappa)
    t = _positive_array("tau", tau)
    r = _nonneg_array("rho", rho)
    a, k, t, r = np.broadcast_arrays(a, k, t, r)
    xs = (1 + r) / a
    m = np.asarray(wishart_stieltjes(xs, k))
    mu = xs * np.asarray(wishart_stieltjes(xs, k / t))
    return k, t, r, xs, m, mu


def ridgeless_icl(alpha: object, kappa: object, tau: object, rho: object = 0.0):
    """Asymptotic in-context error e_ICL of the ridgeless SLA trained on a pool of
    ``K = kappa D`` tasks (Lu et al. 2024, finite kappa), in units of the signal
    variance (the floor is rho). With ``x* = (1 + rho)/alpha``, ``m* = M_kappa(x*)``,
    ``mu* = x* M_{kappa/tau}(x*)``::

        tau < 1:  e = tau (1 + x*)/(1 - tau) [1 - tau (1 - mu*)^2 - (x* - rho)/x* mu*]
                      - 2 tau (1 - mu*) + rho + 1
        tau > 1:  k* = 1 / (1 - kappa (m*/(kappa + m*))^2)
                  e = (k* - 1/(tau - 1)) (1 + x*) (x* m*)^2 + (3 - 2 tau)/(tau - 1) m* x*^2
                      + ((1 + rho)/(tau - 1) m* + 1) x* + rho m*/(tau - 1) + rho

    ``inf`` at ``tau = 1``. ``kappa = inf`` is :func:`ridgeless_error` (times ``1 + rho``
    conventions aside; tested).
    """
    k, t, r, xs, m, mu = _ridgeless_pool_terms(alpha, kappa, tau, rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = (
            t * (1 + xs) / (1 - t) * (1 - t * (1 - mu) ** 2 - (xs - r) / xs * mu)
            - 2 * t * (1 - mu)
            + r
            + 1
        )
        kst = 1.0 / (1 - np.where(np.isinf(k), 0.0, k * (m / (k + m)) ** 2))
        above = (
            (kst - 1 / (t - 1)) * (1 + xs) * (xs * m) ** 2
            + (3 - 2 * t) / (t - 1) * m * xs**2
            + ((1 + r) / (t - 1) * m + 1) * xs
            + r * m / (t - 1)
            + r
        )
    return _out(np.where(t < 1, below, np.where(t > 1, above, np.inf)))


def ridgeless_idg(alpha: object, kappa: object, tau: object, rho: object = 0.0):
    """Asymptotic in-distribution error e_IDG (test tasks from the training pool) of
    the ridgeless SLA, Lu et al. (2024), in units of the signal variance. With
    ``x* = (1 + rho)/alpha``, ``m* = M_kappa(x*)``, ``mu* = x* M_{kappa/tau}(x*)``::

        tau < 1:  eps = (1 - tau) x* / (tau mu*),  c = 1 / (1 - kappa/(1 + kappa eps/(1 - tau))^2)
                  e = tau [(x* + eps)^2/eps
                           + (rho + x* - 2 x* (1 - tau)(x*/eps + 1)) / (1 - tau - c (1 - tau)^2)]
        tau > 1:  e = tau (rho + x* (1 - x* m*)) / (tau - 1)
    """
    k, t, r, xs, m, mu = _ridgeless_pool_terms(alpha, kappa, tau, rho)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        eps = (1 - t) * xs / (t * mu)
        kk = np.where(np.isinf(k), 0.0, k / (1 + k * eps / (1 - t)) ** 2)
        c = 1.0 / (1 - kk)
        below = t * (
            (xs + eps) ** 2 / eps
            + (r + xs - 2 * xs * (1 - t) * (xs / eps + 1)) / (1 - t - c * (1 - t) ** 2)
        )
        above = t * (r + xs * (1 - xs * m)) / (t - 1)
    return _out(np.where(t < 1, below, np.where(t > 1, above, np.inf)))


def _eps_root_kappa(t, lam, xs, k) -> np.ndarray:
    """The positive root of ``1 - tau + tau lam'/eps - eps M_kappa(eps + x*) = 0``
    (strictly decreasing in eps from +inf to -tau for lam' > 0): bisection in log eps."""
    lo = np.full(t.shape, -60.0)
    hi = np.full(t.shape, 60.0)

    def f(le):
        e = np.exp(le)
        return 1 - t + t * lam / e - e * np.asarray(wishart_stieltjes(e + xs, k))

    for _ in range(200):
        mid = 0.5 * (lo + hi)
        pos = f(mid) > 0
        lo = np.where(pos, mid, lo)
        hi = np.where(pos, hi, mid)
    return np.exp(0.5 * (lo + hi))


def ridge_icl(
    alpha: object, kappa: object, tau: object, lam_prime: object, rho: object = 0.0
) -> np.ndarray | float:
    """Asymptotic in-context error e_ICL of ridge-trained linear attention on a pool of
    ``K = kappa D`` tasks (Lu et al. 2024), in units of the signal variance: the
    formula of :func:`ridge_error` with the Stieltjes transform ``S = M_kappa``
    (:func:`wishart_stieltjes`) and its derivative, ``eps`` solving
    ``1 - tau + tau lam'/eps - eps M_kappa(eps + x*) = 0`` (bisection). ``kappa = inf``
    is :func:`ridge_error` exactly; ``lam' = 0`` is :func:`ridgeless_icl`.
    """
    a = _positive_array("alpha", alpha)
    k = _kappa_array(kappa)
    t = _positive_array("tau", tau)
    lam = _nonneg_array("lam_prime", lam_prime)
    r = _nonneg_array("rho", rho)
    a, k, t, lam, r = np.broadcast_arrays(a, k, t, lam, r)
    if np.all(np.isinf(k)):
        return ridge_error(a, t, lam, r)
    if np.all(lam == 0):
        return ridgeless_icl(a, k, t, r)
    xs = (1 + r) / a
    eps = _eps_root_kappa(t, lam, xs, k)
    nu = xs + eps
    S = np.asarray(wishart_stieltjes(nu, k))
    dS = np.asarray(wishart_stieltjes_derivative(nu, k))
    with np.errstate(divide="ignore", invalid="ignore"):
        num = r + nu - nu * nu * S - eps * (1 - 2 * nu * S - nu * nu * dS)
        den = 1 - 2 * eps * S - eps * eps * dS - t
        c = num / den
        e = (xs + 1) * (1 - 2 * nu * S - nu * nu * dS - c * (S + eps * dS)) - 2 * (1 - nu * S)
        e = e + 1 + r
    e = np.where(lam == 0, np.asarray(ridgeless_icl(a, k, t, r)), e)
    return _out(np.where(np.isfinite(e), e, np.inf))


@dataclass(frozen=True)
class PoolTheory:
    """Lu et al.'s finite-kappa errors for our parameters, as absolute mean squared
    errors (noise floor included), comparable with :meth:`TaskConfig.exact_test_error`.

    Attributes
    ----------
    kappa, alpha, tau, rho, lam_prime : float
        Their parameters (:func:`pool_theory_params`).
    icl, idg : float
        e_ICL (ridge, at lam') and e_IDG (ridgeless) times the signal variance.
    gtask : float
        ``icl - idg``.
    """

    kappa: float
    alpha: float
    tau: float
    rho: float
    lam_prime: float
    icl: float
    idg: float
    gtask: float


def pool_theory(
    D: int,
    N: int,
    P: int,
    tasks: int | None,
    lam: float,
    convention: str = DEFAULT_CONVENTION,
    noise: float = 0.0,
) -> PoolTheory:
    """Lu et al.'s e_ICL, e_IDG and g_task for ``(D, N, P, K = tasks, lam, convention,
    noise)``: ``kappa = K/D`` (inf for ``tasks=None``), ``alpha = N/D``,
    ``tau = P/D^2``, ``rho = noise^2/(s^2 D)``, lam' from :func:`lam_prime`; errors
    times the signal variance ``s^2 D`` (docs/theory.md#task-diversity)."""
    p = theory_params(D, N, P, lam, convention, noise)
    kappa = math.inf if tasks is None else check_int("tasks", tasks) / D
    sig = get_convention(convention).label_scale(D) ** 2 * D
    icl = float(ridge_icl(p.alpha, kappa, p.tau, p.lam_prime, p.rho)) * sig
    if math.isinf(kappa):
        idg = icl
    else:
        idg = float(ridgeless_idg(p.alpha, kappa, p.tau, p.rho)) * sig
    return PoolTheory(kappa, p.alpha, p.tau, p.rho, p.lam_prime, icl, idg, icl - idg)

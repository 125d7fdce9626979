"""Test errors of the SLA (eq. 2, 40): the result type and the closed forms.

:class:`TestError` (what every Monte Carlo or closed-form estimate returns),
:func:`exact_test_error` (fresh Gaussian tasks, docs/theory.md section 4) and
:func:`moment_test_error` (any task law given four of its moments; a pool's empirical
moments give the in-distribution error, docs/theory.md#task-diversity). Re-exported by
:mod:`spinglass_icl.observables`; kept apart so that task distributions
(:mod:`spinglass_icl.tasks`) can score weights without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .conventions import DEFAULT_CONVENTION, get_convention
from .errors import (
    ParameterError,
    as_float_tensor,
    check_finite_batch,
    check_float,
    check_int,
    finite_derived,
)
from .weights import spins_to_W

__all__ = ["TEST_KINDS", "TestError", "exact_test_error", "moment_test_error", "mc_test_error"]

#: test tasks: fresh tasks (in-context error e_ICL) or the training pool's (e_IDG)
TEST_KINDS: tuple[str, ...] = ("icl", "idg")


def _weights(name: str, W) -> torch.Tensor:
    """``W`` as a floating tensor of matrices (*, D+1, D+1), from spins or matrices."""
    W = as_float_tensor(name, W, min_ndim=1)
    if W.dim() == 1 or W.shape[-1] != W.shape[-2]:
        W = spins_to_W(W)
    if W.shape[-1] < 2:
        raise ParameterError(f"{name} must be at least 2 x 2 (D >= 1), got {tuple(W.shape)}")
    return W


@dataclass(frozen=True)
class TestError:
    """Generalization error ``eps_g = E (y~ - y^)^2`` over fresh tasks (eq. 2;
    docs/conventions.md#relative-test-error).

    Attributes
    ----------
    absolute : Tensor
        Monte Carlo mean of ``(y~ - y^)^2``.
    stderr : Tensor
        Its standard error.
    relative : Tensor
        ``absolute / E y~^2`` (comparable across conventions).
    n_tasks : int
        Number of fresh prompts used.
    """

    __test__ = False  # not a pytest class

    absolute: torch.Tensor
    stderr: torch.Tensor
    relative: torch.Tensor
    n_tasks: int

    def __str__(self) -> str:
        a, e = float(self.absolute.mean()), float(self.stderr.mean())
        return f"{a:.4g} ± {e:.2g} (relative {float(self.relative.mean()):.4g})"


def exact_test_error(
    W: torch.Tensor,
    N: int,
    convention: str = DEFAULT_CONVENTION,
    noise: float = 0.0,
) -> torch.Tensor:
    """Closed-form test error ``E (y~ - y^)^2`` of the SLA with weights W (eq. 2, 40).

    Over ``w ~ N(0, I_D)``, ``x_i, x~ ~ N(0, I_D)``, ``y = s w.x + noise * eps`` (context
    and query), with ``s`` the label scale and ``c`` the prefactor of the convention,
    ``y^ = c u^T W [x~; 0]``, ``u = sum_i y_i [x_i; y_i]``. Only ``A = W[:D, :D]`` (W11)
    and ``r = W[D, :D]`` (W21) enter; with ``sigma = noise`` (Isserlis, docs/theory.md)::

        E = s^2 D + sigma^2 - 2 c s^2 N tr(A)
            + c^2 N (s^2 (N + D + 1) + sigma^2) ||A||_F^2
            + c^2 N (N + 2) ((s^2 D + sigma^2)^2 + 2 s^4 D) ||r||^2

    Parameters
    ----------
    W : Tensor, shape (*batch, D+1, D+1) or spins (*batch, (D+1)^2)
        Weights; computed in float64.
    N : int
        Context length (>= 1).
    convention : str
        Sets ``s`` and ``c`` (docs/conventions.md).
    noise : float
        Label-noise standard deviation (>= 0).

    Returns
    -------
    Tensor, shape (*batch,)
        The exact test error (float64). Divide by ``Convention.label_variance`` for the
        relative error (:func:`relative_exact_test_error`).
    """
    if not isinstance(W, torch.Tensor):
        raise ParameterError(f"W must be a torch.Tensor, got {type(W).__name__}")
    if W.dim() == 0:
        raise ParameterError("W must be a (D+1) x (D+1) matrix or a spin vector, got a scalar")
    if W.dim() == 1 or W.shape[-1] != W.shape[-2]:
        try:
            W = spins_to_W(W)
        except ValueError as exc:
            raise ParameterError(f"W must be square or a spin vector: {exc}") from None
    D = W.shape[-1] - 1
    if D < 1:
        raise ParameterError(f"W must be at least 2 x 2 (D >= 1), got shape {tuple(W.shape)}")
    N = check_int("N", N)
    noise = check_float("noise", noise, low=0.0)
    conv = get_convention(convention)
    check_finite_batch("W", W, batch_dims=W.dim() - 2, what="test error")
    v = conv.label_variance(D, noise)  # the fourth moment below holds its square
    finite_derived("noise", noise, "the label variance squared", lambda: v * v)
    s2 = conv.label_scale(D) ** 2
    c = conv.prefactor(D, N)
    var = noise**2
    W = W.to(torch.float64)
    A = W[..., :D, :D]
    r = W[..., D, :D]
    tr = A.diagonal(dim1=-2, dim2=-1).sum(-1)
    fro2 = (A * A).sum((-2, -1))
    r2 = (r * r).sum(-1)
    return (
        s2 * D
        + var
        - 2 * c * s2 * N * tr
        + c * c * N * (s2 * (N + D + 1) + var) * fro2
        + c * c * N * (N + 2) * ((s2 * D + var) ** 2 + 2 * s2 * s2 * D) * r2
    )


def moment_test_error(
    W: torch.Tensor,
    N: int,
    convention: str,
    noise: float,
    moments: Any,
) -> torch.Tensor:
    """Closed-form ``E (y~ - y^)^2`` of the SLA with weights W (eq. 2, 40) over test
    tasks with the given moments (docs/theory.md#task-diversity).

    Given the task w, the query average and Isserlis' theorem give (``A = W11``,
    ``r = W21``, ``v = s^2 |w|^2 + sigma^2``)::

        e(w) = s^2 |w|^2 + sigma^2 - 2 c s^2 N w.A w - 2 c s N v w.r
               + c^2 [N v ||A||_F^2 + N (N+1) s^2 |A^T w|^2
                      + 2 N (N+2) s v r.A^T w + N (N+2) v^2 |r|^2]

    which is quadratic in ``w w^T`` except for the ``v w`` and ``v^2`` terms, so its
    mean needs ``E w``, ``E w w^T``, ``E |w|^2 w`` and ``E |w|^4`` only. With Gaussian
    moments it is :func:`exact_test_error`; with a pool's empirical moments it is the
    exact in-distribution error e_IDG of that pool. ``moments`` is a
    :class:`~spinglass_icl.tasks.TaskMoments` (or anything with its four fields).
    """
    W = _weights("W", W).to(torch.float64)
    D = W.shape[-1] - 1
    N = check_int("N", N)
    noise = check_float("noise", noise, low=0.0)
    if moments.mean.shape[-1] != D:
        raise ParameterError(f"moments must be of tasks of dimension D = {D}")
    conv = get_convention(convention)
    s2 = conv.label_scale(D) ** 2
    s = s2**0.5
    c = conv.prefactor(D, N)
    var = noise**2
    dev = W.device
    m1 = moments.mean.to(dev, torch.float64)
    M2 = moments.second.to(dev, torch.float64)
    T3 = moments.third.to(dev, torch.float64)
    t2 = M2.diagonal().sum()
    A = W[..., :D, :D]
    r = W[..., D, :D]
    trAM = (A * M2).sum((-2, -1))  # E w.A w = tr(A M2) (M2 symmetric)
    AAM = ((A.transpose(-1, -2) @ M2) * A.transpose(-1, -2)).sum((-2, -1))  # E |A^T w|^2
    vw = s2 * T3 + var * m1  # E v w
    Ev = s2 * t2 + var
    Ev2 = s2 * s2 * moments.fourth + 2 * s2 * var * t2 + var * var
    Ar = (A @ r[..., None])[..., 0]  # A r, so that r.A^T w = (A r).w
    fro2 = (A * A).sum((-2, -1))
    return (
        s2 * t2
        + var
        - 2 * c * s2 * N * trAM
        - 2 * c * s * N * (r * vw).sum(-1)
        + c * c * N * Ev * fro2
        + c * c * N * (N + 1) * s2 * AAM
        + 2 * c * c * N * (N + 2) * s * (Ar * vw).sum(-1)
        + c * c * N * (N + 2) * Ev2 * (r * r).sum(-1)
    )


def mc_test_error(W: torch.Tensor, batches, prefactor: float, label_variance: float) -> TestError:
    """Monte Carlo :class:`TestError` of W over test prompts given as factor batches
    ``(u, q, y~)`` (each (k, D+1), (k, D+1), (k,))."""
    eq = "pa,...ab,pb->...p" if W.dim() > 2 else "...pa,...ab,...pb->...p"
    sums = torch.zeros(W.shape[:-2], dtype=torch.float64, device=W.device)
    sq = torch.zeros_like(sums)
    n = 0
    for u, q, y in batches:
        err = (y - prefactor * torch.einsum(eq, u, W, q)).double() ** 2
        sums += err.sum(-1)
        sq += (err * err).sum(-1)
        n += y.shape[-1]
    mean = sums / n
    stderr = ((sq / n - mean * mean).clamp_min(0.0) / max(n - 1, 1)).sqrt()
    return TestError(mean, stderr, mean / label_variance, n)

"""Observables of a solution (eq. 9, Fig. 4a): weights from spins, contrast, test error, energy.

All functions accept leading batch dimensions.
"""

from __future__ import annotations

import functools
import math

import torch

from .conventions import DEFAULT_CONVENTION, get_convention
from .errors import (
    ParameterError,
    as_float_tensor,
    check_choice,
    check_finite_batch,
    check_int,
    refuse_zero_batch,
)
from .tasks import TaskConfig, make_generator, sample_prompts
from .testerrors import TEST_KINDS, TestError, exact_test_error, moment_test_error
from .weights import W_to_spins, WBlocks, blocks, spins_to_W

__all__ = [
    "spins_to_W",
    "W_to_spins",
    "WBlocks",
    "blocks",
    "CONTRASTS",
    "contrast",
    "TestError",
    "predict",
    "test_error",
    "exact_test_error",
    "relative_exact_test_error",
    "moment_test_error",
    "TEST_KINDS",
]

#: contrast-ratio variants: text formula over W11 (default), over the whole W, cosine to I
CONTRASTS: tuple[str, ...] = ("w11", "full", "cosine")


def _weights(name: str, W) -> torch.Tensor:
    """``W`` as a floating tensor of matrices (*, D+1, D+1), from spins or matrices."""
    W = as_float_tensor(name, W, min_ndim=1)
    if W.dim() == 1 or W.shape[-1] != W.shape[-2]:
        W = spins_to_W(W)
    if W.shape[-1] < 2:
        raise ParameterError(f"{name} must be at least 2 x 2 (D >= 1), got {tuple(W.shape)}")
    # a non-finite W: an error (one W), NaN with a NonFiniteWarning (some of a batch)
    return check_finite_batch(name, W, batch_dims=W.dim() - 2, what="result")


def contrast(W: torch.Tensor, kind: str = "w11") -> torch.Tensor:
    """Contrast ratio of a weight matrix (Fig. 4a; docs/conventions.md#contrast).

    ``kind="w11"`` (default): the text formula ``C = (<m_ii^2> - <m_ij^2>) / <m_ii^2>``,
    ``i != j``, over the D x D block W11. ``"full"``: the same over the whole W.
    ``"cosine"``: the authors' code, cosine similarity between W11 and ``I_D``.
    C = 1 for a multiple of the identity; W may be spins or a matrix, with batch dims.

    A W whose ratio is 0/0 (a zero diagonal; for ``"cosine"`` a zero W11) or a non-finite
    W raises :class:`~spinglass_icl.errors.ParameterError`; in a batch, such instances
    are NaN and a :class:`~spinglass_icl.errors.NonFiniteWarning` says how many.
    """
    check_choice("contrast kind", kind, CONTRASTS)
    W = _weights("W", W)
    M = W if kind == "full" else W[..., :-1, :-1]
    # the denominator: <m_ii^2> (cosine: the norm of W11); 0 makes the ratio 0/0
    den = M.diagonal(dim1=-2, dim2=-1) if kind != "cosine" else M.flatten(-2)
    refuse_zero_batch("W" if kind == "full" else "W11", (den == 0).all(-1), "contrast")
    k = M.shape[-1]
    eye = torch.eye(k, dtype=torch.bool, device=M.device)
    if kind == "cosine":
        diag_sum = M.diagonal(dim1=-2, dim2=-1).sum(-1)
        return diag_sum / (M.flatten(-2).norm(dim=-1) * math.sqrt(k))
    sq = M * M
    d = sq.diagonal(dim1=-2, dim2=-1).mean(-1)
    if k == 1:
        return torch.ones_like(d)
    off = sq.masked_fill(eye, 0.0).flatten(-2).sum(-1) / (k * k - k)
    return (d - off) / d


def predict(W: torch.Tensor, X: torch.Tensor, prefactor: float) -> torch.Tensor:
    """SLA prediction ``y^ = c (X X^T W X)[D+1, N+1]`` (eq. 2, 40) for prompts X.

    Computed without forming ``X X^T``: ``y^ = c u^T W [x~; 0]`` with
    ``u = sum_i y_i [x_i; y_i]``. ``W`` (*wb, D+1, D+1) broadcasts against the prompt
    batch: X has shape (*wb, M, D+1, N+1) or (M, D+1, N+1).
    """
    ctx = X[..., :-1]
    u = torch.einsum("...mi,...i->...m", ctx, ctx[..., -1, :])
    q = X[..., -1]
    if W.dim() > 2 and X.dim() == 3:
        return prefactor * torch.einsum("pa,...ab,pb->...p", u, W, q)
    return prefactor * torch.einsum("...pa,...ab,...pb->...p", u, W, q)


def test_error(
    W: torch.Tensor,
    N: int,
    *,
    convention: str = DEFAULT_CONVENTION,
    noise: float = 0.0,
    n_tasks: int = 10_000,
    seed: int = 12345,
    chunk: int = 20_000,
    exact: bool = False,
    task: TaskConfig | None = None,
    kind: str = "icl",
) -> TestError:
    """Test error of W (spins or matrix, batch dims allowed) on fresh tasks.

    By default a Monte Carlo mean over ``n_tasks`` fresh prompts; the same ``seed``
    gives the same test prompts, so errors of different W compare without extra noise.
    With ``exact=True`` the closed form of :func:`spinglass_icl.theory.exact_test_error`
    (a fourth-moment Gaussian computation, docs/theory.md) is returned instead, with
    ``stderr = 0`` and ``n_tasks = 0``: no sampling noise at all.
    ``E y~^2 = scale^2 D + noise^2`` sets ``relative``. A non-finite W raises
    :class:`~spinglass_icl.errors.ParameterError` (in a batch: those instances are NaN,
    with a :class:`~spinglass_icl.errors.NonFiniteWarning`).

    With a task distribution ``task`` (a :class:`~spinglass_icl.tasks.TaskConfig`; then
    its N, convention and noise are used), ``kind`` picks the test tasks: ``"icl"``
    fresh tasks of its law (the in-context error e_ICL), ``"idg"`` tasks drawn
    uniformly from its training pool (the in-distribution error e_IDG; the same as
    ``"icl"`` without a pool); ``exact=True`` then uses :meth:`TaskConfig.exact_test_error`.
    """
    W = _weights("W", W)
    D = W.shape[-1] - 1
    check_choice("kind", kind, TEST_KINDS)
    if task is not None:
        if not isinstance(task, TaskConfig):
            raise ParameterError(f"task must be a TaskConfig, got {type(task).__name__}")
        return task.test_error(W, kind, n_tasks=n_tasks, seed=seed, chunk=chunk, exact=exact)
    N = check_int("N", N)
    conv = get_convention(convention)
    if exact:
        err = exact_test_error(W, N, conv.name, noise)
        return TestError(err, torch.zeros_like(err), err / conv.label_variance(D, noise), 0)
    n_tasks = check_int("n_tasks", n_tasks)
    c = conv.prefactor(D, N)
    sums = torch.zeros(W.shape[:-2], dtype=torch.float64, device=W.device)
    sq = torch.zeros_like(sums)
    eq = "pa,...ab,pb->...p" if W.dim() > 2 else "...pa,...ab,...pb->...p"  # as predict
    for u, q, y in _test_set(D, N, conv.name, noise, n_tasks, seed, chunk, W.device, W.dtype):
        err = (y - c * torch.einsum(eq, u, W, q)).double() ** 2  # (*wb, k)
        sums += err.sum(-1)
        sq += (err * err).sum(-1)
    mean = sums / n_tasks
    var = (sq / n_tasks - mean * mean).clamp_min(0.0)
    stderr = (var / max(n_tasks - 1, 1)).sqrt()
    return TestError(mean, stderr, mean / conv.label_variance(D, noise), n_tasks)


@functools.lru_cache(maxsize=32)
def _test_set(D, N, convention, noise, n_tasks, seed, chunk, device, dtype):
    """The fresh test prompts of :func:`test_error` (drawn in chunks of ``chunk`` from
    one generator seeded with ``seed``), kept as their factors ``(u, q, y~)``: every W
    scored with the same arguments (all rows of a sweep with the same D, N, convention
    and noise) sees the same prompts, drawn once per process."""
    g = make_generator(seed)
    out, done = [], 0
    while done < n_tasks:
        k = min(chunk, n_tasks - done)
        pr = sample_prompts(
            D, N, k, convention=convention, noise=noise, generator=g, device=device, dtype=dtype
        )
        out.append((pr.u, pr.q, pr.y))
        done += k
    return tuple(out)


def relative_exact_test_error(
    W: torch.Tensor,
    N: int,
    convention: str = DEFAULT_CONVENTION,
    noise: float = 0.0,
) -> torch.Tensor:
    """:func:`exact_test_error` divided by ``E y~^2 = s^2 D + noise^2``.

    Comparable across conventions; what ``TestError.relative`` estimates.
    """
    err = exact_test_error(W, N, convention, noise)
    n = W.shape[-1]
    square = W.dim() > 1 and W.shape[-2] == n
    D = n - 1 if square else math.isqrt(n) - 1
    return err / get_convention(convention).label_variance(D, noise)

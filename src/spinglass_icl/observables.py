"""Observables of a solution (eq. 9, Fig. 4a): weights from spins, contrast, test error, energy.

All functions accept leading batch dimensions.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from .conventions import DEFAULT_CONVENTION, get_convention
from .errors import ParameterError, as_float_tensor, check_choice, check_float, check_int
from .tasks import TaskConfig, TaskMoments, make_generator, sample_prompts
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

#: test tasks: fresh tasks (in-context error e_ICL) or the training pool's (e_IDG)
TEST_KINDS: tuple[str, ...] = ("icl", "idg")

#: contrast-ratio variants: text formula over W11 (default), over the whole W, cosine to I
CONTRASTS: tuple[str, ...] = ("w11", "full", "cosine")


def _weights(name: str, W) -> torch.Tensor:
    """``W`` as a floating tensor of matrices (*, D+1, D+1), from spins or matrices."""
    W = as_float_tensor(name, W, min_ndim=1)
    if W.dim() == 1 or W.shape[-1] != W.shape[-2]:
        W = spins_to_W(W)
    if W.shape[-1] < 2:
        raise ParameterError(f"{name} must be at least 2 x 2 (D >= 1), got {tuple(W.shape)}")
    return W


def contrast(W: torch.Tensor, kind: str = "w11") -> torch.Tensor:
    """Contrast ratio of a weight matrix (Fig. 4a; docs/conventions.md#contrast).

    ``kind="w11"`` (default): the text formula ``C = (<m_ii^2> - <m_ij^2>) / <m_ii^2>``,
    ``i != j``, over the D x D block W11. ``"full"``: the same over the whole W.
    ``"cosine"``: the authors' code, cosine similarity between W11 and ``I_D``.
    C = 1 for a multiple of the identity; W may be spins or a matrix, with batch dims.
    """
    check_choice("contrast kind", kind, CONTRASTS)
    W = _weights("W", W)
    M = W if kind == "full" else W[..., :-1, :-1]
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
    ``E y~^2 = scale^2 D + noise^2`` sets ``relative``.

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
        return _task_test_error(W, task, kind, n_tasks, seed, chunk, exact)
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


def _task_test_error(W, task, kind, n_tasks, seed, chunk, exact) -> TestError:
    """:func:`test_error` over the test tasks of ``kind`` of a task distribution."""
    if not isinstance(task, TaskConfig):
        raise ParameterError(f"task must be a TaskConfig, got {type(task).__name__}")
    if W.shape[-1] - 1 != task.D:
        raise ParameterError(f"W must be ({task.D + 1}, {task.D + 1}) for D = {task.D}")
    var = task.label_variance(kind)
    if exact:
        err = task.exact_test_error(W, kind)
        return TestError(err, torch.zeros_like(err), err / var, 0)
    n_tasks = check_int("n_tasks", n_tasks)
    law = _test_law(task, kind)
    c = task.prefactor
    sums = torch.zeros(W.shape[:-2], dtype=torch.float64, device=W.device)
    sq = torch.zeros_like(sums)
    eq = "pa,...ab,pb->...p" if W.dim() > 2 else "...pa,...ab,...pb->...p"
    for u, q, y in _law_test_set(law, n_tasks, seed, chunk, W.device, W.dtype):
        err = (y - c * torch.einsum(eq, u, W, q)).double() ** 2
        sums += err.sum(-1)
        sq += (err * err).sum(-1)
    mean = sums / n_tasks
    stderr = ((sq / n_tasks - mean * mean).clamp_min(0.0) / max(n_tasks - 1, 1)).sqrt()
    return TestError(mean, stderr, mean / var, n_tasks)


def _test_law(task: TaskConfig, kind: str) -> TaskConfig:
    """The prompt law of the test tasks of ``kind`` (P = 1; the sampler sets P)."""
    import dataclasses

    if kind == "icl" or task.tasks is None:
        return dataclasses.replace(task, P=1, tasks=None)
    return dataclasses.replace(task, P=1, assignment="uniform")


@functools.lru_cache(maxsize=32)
def _law_test_set(law, n_tasks, seed, chunk, device, dtype):
    """Test prompts of a task law (as :func:`_test_set`), kept as their factors."""
    import dataclasses

    g = make_generator(seed)
    out, done = [], 0
    while done < n_tasks:
        k = min(chunk, n_tasks - done)
        pr = sample_prompts(dataclasses.replace(law, P=k), generator=g, device=device, dtype=dtype)
        out.append((pr.u, pr.q, pr.y))
        done += k
    return tuple(out)


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


def moment_test_error(
    W: torch.Tensor,
    N: int,
    convention: str,
    noise: float,
    moments: TaskMoments,
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
    exact in-distribution error e_IDG of that pool.
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

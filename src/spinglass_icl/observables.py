"""Observables of a solution (eq. 9, Fig. 4a): weights from spins, contrast, test error, energy.

All functions accept leading batch dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .conventions import DEFAULT_CONVENTION, get_convention
from .errors import check_choice, check_int
from .tasks import sample_prompts

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
]

#: contrast-ratio variants: text formula over W11 (default), over the whole W, cosine to I
CONTRASTS: tuple[str, ...] = ("w11", "full", "cosine")


def _D_from_n(n: int) -> int:
    D = math.isqrt(n) - 1
    if (D + 1) ** 2 != n:
        raise ValueError(f"spin vector length must be a square (D+1)^2, got {n}")
    return D


def spins_to_W(sigma: torch.Tensor) -> torch.Tensor:
    """``W`` ((D+1) x (D+1)) from spins ``sigma = vec(W)`` row-major
    (docs/solvers.md#spin-index)."""
    D = _D_from_n(sigma.shape[-1])
    return sigma.reshape(*sigma.shape[:-1], D + 1, D + 1)


def W_to_spins(W: torch.Tensor) -> torch.Tensor:
    """Spins ``sigma = vec(W)``, row-major: spin ``(D+1) m + n`` is ``W[m, n]``."""
    return W.reshape(*W.shape[:-2], -1)


@dataclass(frozen=True)
class WBlocks:
    """The blocks of eq. 9: ``W11`` (D x D), ``W12`` (D x 1), ``W21`` (1 x D), ``W22`` (1 x 1)."""

    W11: torch.Tensor
    W12: torch.Tensor
    W21: torch.Tensor
    W22: torch.Tensor


def blocks(W: torch.Tensor) -> WBlocks:
    """Split W (or spins, if 1-D in the last dim) into the blocks of eq. 9."""
    if W.dim() == 1 or W.shape[-1] != W.shape[-2]:
        W = spins_to_W(W)
    D = W.shape[-1] - 1
    return WBlocks(W[..., :D, :D], W[..., :D, D:], W[..., D:, :D], W[..., D:, D:])


def contrast(W: torch.Tensor, kind: str = "w11") -> torch.Tensor:
    """Contrast ratio of a weight matrix (Fig. 4a; docs/conventions.md#contrast).

    ``kind="w11"`` (default): the text formula ``C = (<m_ii^2> - <m_ij^2>) / <m_ii^2>``,
    ``i != j``, over the D x D block W11. ``"full"``: the same over the whole W.
    ``"cosine"``: the authors' code, cosine similarity between W11 and ``I_D``.
    C = 1 for a multiple of the identity; W may be spins or a matrix, with batch dims.
    """
    check_choice("contrast kind", kind, CONTRASTS)
    if W.dim() == 1 or W.shape[-1] != W.shape[-2]:
        W = spins_to_W(W)
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
) -> TestError:
    """Test error of W (spins or matrix, batch dims allowed) on fresh tasks.

    By default a Monte Carlo mean over ``n_tasks`` fresh prompts; the same ``seed``
    gives the same test prompts, so errors of different W compare without extra noise.
    With ``exact=True`` the closed form of :func:`spinglass_icl.theory.exact_test_error`
    (a fourth-moment Gaussian computation, docs/theory.md) is returned instead, with
    ``stderr = 0`` and ``n_tasks = 0``: no sampling noise at all.
    ``E y~^2 = scale^2 D + noise^2`` sets ``relative``.
    """
    if W.dim() == 1 or W.shape[-1] != W.shape[-2]:
        W = spins_to_W(W)
    D = W.shape[-1] - 1
    N = check_int("N", N)
    conv = get_convention(convention)
    if exact:
        from .theory import exact_test_error

        err = exact_test_error(W, N, conv.name, noise)
        return TestError(err, torch.zeros_like(err), err / conv.label_variance(D, noise), 0)
    n_tasks = check_int("n_tasks", n_tasks)
    c = conv.prefactor(D, N)
    from .tasks import make_generator

    g = make_generator(seed)
    sums = torch.zeros(W.shape[:-2], dtype=torch.float64, device=W.device)
    sq = torch.zeros_like(sums)
    done = 0
    while done < n_tasks:
        k = min(chunk, n_tasks - done)
        pr = sample_prompts(
            D, N, k, convention=conv.name, noise=noise, generator=g, device=W.device, dtype=W.dtype
        )
        err = (pr.y - predict(W, pr.X, c)).double() ** 2  # (*wb, k)
        sums += err.sum(-1)
        sq += (err * err).sum(-1)
        done += k
    mean = sums / n_tasks
    var = (sq / n_tasks - mean * mean).clamp_min(0.0)
    stderr = (var / max(n_tasks - 1, 1)).sqrt()
    return TestError(mean, stderr, mean / conv.label_variance(D, noise), n_tasks)

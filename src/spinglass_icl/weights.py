"""Weights from spins and back, and the blocks of W (eq. 9).

Spins are ``sigma = vec(W)``, row-major: spin ``i = (D+1) m + n`` is ``W[m, n]``
(eq. 9). All functions accept leading batch dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import ParameterError, as_float_tensor

__all__ = ["spins_to_W", "W_to_spins", "WBlocks", "blocks"]


def _D_from_n(n: int) -> int:
    D = math.isqrt(n) - 1
    if n < 4 or (D + 1) ** 2 != n:
        raise ParameterError(f"spin vector length must be a square (D+1)^2 >= 4, got {n}")
    return D


def spins_to_W(sigma: torch.Tensor) -> torch.Tensor:
    """``W`` ((D+1) x (D+1)) from spins ``sigma = vec(W)`` row-major (eq. 9); integer
    spins are converted to float64 (never truncated)."""
    sigma = as_float_tensor("sigma", sigma, min_ndim=1)
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

"""One damped fixed-point iteration engine for every message-passing solver.

Each algorithm supplies only its update rule ``F: state -> (state', ok)`` (STYLE.md §6,
after tramp). The engine applies damping (``x <- d x + (1 - d) F(x)``, the authors'
``new = 0.9 old + 0.1 update`` is ``damping = 0.9``), measures the *undamped* residual
``r = max|F(x) - x| / max(|F(x)|, |x|)`` per instance, stops instances that reached
``tol`` and flags those whose update is invalid (``ok`` False: a non-positive
denominator), non-finite, or grown by more than :data:`BLOWUP` over its size after the
first iteration as ``diverged``, keeping their last valid iterate.
Batched states (leading batch dimensions) are iterated together; finished instances
are frozen while the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

State = tuple[torch.Tensor, ...]
Update = Callable[[State], tuple[State, torch.Tensor]]

#: growth of an iterate's size over its first-iteration size that counts as blown up
BLOWUP = 1e8


@dataclass(frozen=True)
class EngineOutput:
    """What :func:`iterate` returns: final state and per-instance bookkeeping."""

    state: State
    converged: torch.Tensor  # bool, batch shape
    diverged: torch.Tensor  # bool, batch shape
    n_iter: torch.Tensor  # int64, batch shape
    residuals: torch.Tensor  # (T, *batch)


def _reduce_to_batch(x: torch.Tensor, batch_ndim: int) -> torch.Tensor:
    """Max of |x| over all non-batch dimensions."""
    x = x.abs()
    if x.dim() == batch_ndim:
        return x
    return x.flatten(batch_ndim).amax(-1)


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(*mask.shape, *([1] * (like.dim() - mask.dim())))


def iterate(
    update: Update,
    state: Sequence[torch.Tensor],
    *,
    batch_shape: tuple[int, ...],
    damping: float = 0.0,
    tol: float = 1e-8,
    max_iter: int = 1000,
    callback: Callable[[int, State, torch.Tensor], None] | None = None,
) -> EngineOutput:
    """Iterate ``state <- damping * state + (1 - damping) * F(state)`` to a fixed point.

    Parameters
    ----------
    update
        ``F``: maps a state tuple to ``(new_state, ok)``, ``ok`` a bool tensor of the
        batch shape (False where the update is invalid, e.g. a non-positive denominator).
    state
        Initial state; each tensor has the batch shape as its leading dimensions.
    batch_shape
        Leading batch dimensions shared by every state tensor.
    damping
        In [0, 1); 0 means no damping.
    tol
        Tolerance on the relative undamped residual.
    max_iter
        Iteration cap (>= 1).
    callback
        Called as ``callback(it, state, residual)`` after each iteration.
    """
    state = tuple(state)
    bnd = len(batch_shape)
    device = state[0].device
    active = torch.ones(batch_shape, dtype=torch.bool, device=device)
    converged = torch.zeros_like(active)
    diverged = torch.zeros_like(active)
    n_iter = torch.zeros(batch_shape, dtype=torch.int64, device=device)
    history: list[torch.Tensor] = []
    tiny = torch.finfo(state[0].dtype).tiny
    scale0: list[torch.Tensor] | None = None
    for it in range(1, max_iter + 1):
        new, ok = update(state)
        res = torch.zeros(batch_shape, dtype=state[0].dtype, device=device)
        finite = torch.ones_like(active)
        sizes = [_reduce_to_batch(torch.nan_to_num(x, nan=0.0), bnd) for x in new]
        if scale0 is None:
            scale0 = [sz.clamp_min(tiny) for sz in sizes]
        for old_x, new_x, sz, sz0 in zip(state, new, sizes, scale0):
            diff = _reduce_to_batch(new_x - old_x, bnd)
            scale = torch.maximum(_reduce_to_batch(new_x, bnd), _reduce_to_batch(old_x, bnd))
            r = diff / scale.clamp_min(tiny)
            r = torch.where(scale == 0, torch.zeros_like(r), r)
            res = torch.maximum(res, torch.nan_to_num(r, nan=float("inf")))
            finite &= (
                torch.isfinite(new_x).flatten(bnd).all(-1)
                if new_x.dim() > bnd
                else torch.isfinite(new_x)
            )
            finite &= sz < BLOWUP * sz0
        bad = active & (~ok | ~finite)
        good = active & ~bad
        n_iter = n_iter + active.long()
        history.append(torch.where(active, res, torch.full_like(res, float("nan"))))
        state = tuple(
            torch.where(_expand(good, o), damping * o + (1.0 - damping) * n if damping else n, o)
            for o, n in zip(state, new)
        )
        done = good & (res < tol)
        converged |= done
        diverged |= bad
        active &= ~(done | bad)
        if callback is not None:
            callback(it, state, res)
        if not bool(active.any()):
            break
    residuals = torch.stack(history) if history else torch.zeros((0, *batch_shape))
    return EngineOutput(state, converged, diverged, n_iter, residuals)

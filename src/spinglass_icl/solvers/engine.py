"""One damped fixed-point iteration engine for every message-passing solver.

Each algorithm supplies only its update rule ``F: state -> (state', ok)`` (the design of
tramp; docs/solvers.md#convergence-and-divergence). The engine applies damping
(``x <- d x + (1 - d) F(x)``, the authors'
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

    def __repr__(self) -> str:
        n, c, d = self.converged.numel(), int(self.converged.sum()), int(self.diverged.sum())
        return (
            f"EngineOutput(batch={tuple(self.converged.shape)}, converged {c} of {n}, "
            f"diverged {d}, iterations <= {int(self.n_iter.max()) if n else 0})"
        )


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
    residual: Callable[[State, State], torch.Tensor] | None = None,
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
    residual
        ``residual(old, new)``: the per-instance residual to compare with ``tol``
        (batch shape), in place of the relative undamped change (e.g. ``|A m - h| / |h|``
        for conjugate gradients). NaN counts as diverged.
    """
    state = tuple(state)
    bnd = len(batch_shape)
    device = state[0].device
    active = torch.ones(batch_shape, dtype=torch.bool, device=device)
    converged = torch.zeros_like(active)
    diverged = torch.zeros_like(active)
    n_iter = torch.zeros(batch_shape, dtype=torch.int64, device=device)
    history: list[torch.Tensor] = []
    actives: list[torch.Tensor] = []
    tiny = torch.finfo(state[0].dtype).tiny
    limit: list[torch.Tensor] | None = None  # BLOWUP x each tensor's first-iteration size
    for it in range(1, max_iter + 1):
        new, ok = update(state)
        res, finite, limit = _check_step(state, new, limit, bnd, tiny, residual)
        bad = active & ~(ok & finite)
        good = active & ~bad
        n_iter += active
        history.append(res)
        actives.append(active.clone())
        state = _damped(state, new, good, damping)
        done = good & (res < tol)
        converged |= done
        diverged |= bad
        active &= ~(done | bad)
        if callback is not None:
            callback(it, state, res)
        if not bool(active.any()):
            break
    return EngineOutput(
        state, converged, diverged, n_iter, _residuals(history, actives, batch_shape)
    )


def _check_step(
    state: State,
    new: State,
    limit: list[torch.Tensor] | None,
    bnd: int,
    tiny: float,
    residual: Callable[[State, State], torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """``(res, finite, limit)`` of one step: the residual to compare with ``tol`` (the
    caller's ``residual``, NaN read as inf, or the relative undamped change) and whether
    the step stayed finite and below the blow-up limit (set on the first step)."""
    # per tensor: max|new| (NaN if any entry is NaN, inf if any is inf), max|new - old|
    # and max|old|; "finite" is max|new| < BLOWUP x its first size, which is False
    # for NaN and inf as well (so it also tests that every entry is finite)
    size = [_reduce_to_batch(x, bnd) for x in new]
    if limit is None:
        limit = [BLOWUP * sz.clamp_min(tiny) for sz in size]
    res, finite = _residual(state, new, size, limit, bnd, tiny)
    if residual is not None:
        r = residual(state, new)
        finite = finite & ~torch.isnan(r)
        res = torch.nan_to_num(r, nan=float("inf"))
    return res, finite, limit


def _damped(state: State, new: State, good: torch.Tensor, damping: float) -> State:
    """The damped update ``damping * old + (1 - damping) * new`` where ``good``; the old
    state elsewhere (a finished, diverged or invalid instance keeps its last state)."""
    return tuple(
        torch.where(_expand(good, o), damping * o + (1.0 - damping) * n if damping else n, o)
        for o, n in zip(state, new)
    )


def _residual(state, new, size, limit, bnd: int, tiny: float):
    """``(res, finite)`` per batch entry: the largest relative undamped change over the
    state's tensors, and whether every tensor stayed below its blow-up limit."""
    res = None
    finite = None
    for old_x, new_x, sz, lim in zip(state, new, size, limit):
        diff = _reduce_to_batch(new_x - old_x, bnd)
        scale = torch.maximum(sz, _reduce_to_batch(old_x, bnd))
        # scale == 0 only if new = old = 0, where diff = 0 and r = 0
        r = torch.nan_to_num(diff / scale.clamp_min(tiny), nan=float("inf"))
        res = r if res is None else torch.maximum(res, r)
        f = sz < lim
        finite = f if finite is None else finite & f
    return res, finite


def _residuals(history: list, actives: list, batch_shape: tuple[int, ...]) -> torch.Tensor:
    """The residual per iteration (iteration, *batch), NaN once an entry has stopped."""
    if not history:
        return torch.zeros((0, *batch_shape))
    residuals = torch.stack(history)
    return torch.where(torch.stack(actives), residuals, float("nan"))

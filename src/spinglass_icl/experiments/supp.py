"""Chunking of a figure's random draws: resumable repeats, trained trials in chunks that fit
in memory, and the CPU budget of the supplementary figures.

A supplementary figure that repeats a random draw many times (Hessian spectra, coupling
histograms, fits) runs its repeats in chunks through :func:`spinglass_icl.trials.run_chunks`:
each finished chunk is written to ``<figure>/trials.sqlite`` at once, keyed by everything
that defines its numbers, so an interrupted ``reproduce`` resumes at the first missing
chunk (as Fig. 4b and Fig. 6 resume their trained trials).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..trials import TrialStore, run_chunks
from .figure import Context, figure_seed
from .presets import trial_key


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """``(first, n)`` pieces of ``total`` repeats, ``size`` at a time."""
    return [(k, min(size, total - k)) for k in range(0, total, size)]


def trial_chunks(
    trials: int, P: int, D: int, N: int, device: str = "cpu", max_floats: float | None = None
) -> list[tuple]:
    """Split ``trials`` into ``(first_trial, n)`` chunks whose prompts hold at most about
    ``max_floats`` numbers (``n P (D+1) (N+1)``; default 5e7 on CPU, 5e8 on CUDA), so
    paper-size runs fit in memory.

    The training module derives every stream of trial k from ``(seed, k)``, so chunked
    runs give the same numbers as one batched run.
    """
    if max_floats is None:
        max_floats = 5e8 if str(device).startswith("cuda") else 5e7
    per = max(1, int(max_floats // (P * (D + 1) * (N + 1))))
    return [(k, min(per, trials - k)) for k in range(0, trials, per)]


def repeated(
    ctx: Context,
    purpose: str,
    total: int,
    size: int,
    config: dict[str, Any],
    compute: Callable[[int, int, int], dict[str, np.ndarray]],
    extra: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Per-repeat arrays of ``total`` repeats of one draw, in chunks of ``size``.

    ``compute(seed, first, n)`` returns arrays with ``n`` leading entries for repeats
    ``first .. first + n - 1``; ``seed`` is :func:`figure_seed` of the figure, the
    ``purpose``, the ``config`` and ``first``, so a chunk's numbers do not depend on
    which chunks ran before it. Chunks are stored in ``<figure>/trials.sqlite`` (the key
    holds the figure, purpose, config, chunk size, base seed, convention and ``extra``:
    settings that change the stored numbers but not the draws' seeds).
    """
    store = TrialStore(ctx.out / "trials.sqlite")
    spec = {"figure": ctx.figure, "purpose": purpose, "chunk": size, "seed": ctx.seed,
            "convention": ctx.convention, **config, **(extra or {})}  # fmt: skip
    return run_chunks(
        store,
        spec,
        total,
        chunks(total, size),
        lambda first, n: compute(figure_seed(ctx, purpose, first=first, **config), first, n),
    )


def cpu_count_applies(ctx: Context, name: str) -> bool:
    """Whether a CPU count may replace the count ``name`` (``trials``, ``repeats``, ...):
    on a CPU (not CUDA), while ``name`` holds the authors' value (the preset class's
    default) and is not the trial count asked for (``reproduce --trials K``,
    ``ctx.trials_override``; also K equal to the authors' count)."""
    p = ctx.params
    asked = ctx.trials_override is not None and name == trial_key(ctx.figure, p)
    script = getattr(type(p)(), name)
    return not (asked or str(ctx.device).startswith("cuda") or int(p[name]) != script)


def budget_count(ctx: Context, name: str = "repeats", cap: str = "cpu_repeats"):
    """The count of parameter ``name`` to run, and a note when it was scaled down.

    On a CPU, a preset's ``cap`` (e.g. ``cpu_repeats``) replaces ``name`` when ``name``
    still holds the authors' value (the preset class's default) and was not asked for:
    the supplementary figures then fit the 2-hour budget on 2 cores. On CUDA, when
    ``name`` was set to anything else (a ``quick``/``tiny`` preset), or when it is the
    trial count asked for (``reproduce --trials K``, ``ctx.trials_override``; also K equal
    to the authors' count), the count is ``name`` itself.
    """
    p = ctx.params
    n, limit = int(p[name]), p.get(cap)
    if limit is None or limit >= n or not cpu_count_applies(ctx, name):
        return n, []
    return int(limit), [
        f"{name}: {limit} of the authors' {n} on this CPU, to fit the 2-hour budget of the "
        f"supplementary figures (on a GPU the authors' {n}; reproduce --trials sets any count)"
    ]

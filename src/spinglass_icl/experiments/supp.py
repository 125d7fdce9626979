"""Shared pieces of the supplementary figures (``figS2`` ... ``figS7``): resumable
repeats.

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
from .common import Context, figure_seed


def chunks(total: int, size: int) -> list[tuple[int, int]]:
    """``(first, n)`` pieces of ``total`` repeats, ``size`` at a time."""
    return [(k, min(size, total - k)) for k in range(0, total, size)]


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


def budget_count(ctx: Context, name: str = "repeats", cap: str = "cpu_repeats"):
    """The count of parameter ``name`` to run, and a note when it was scaled down.

    On a CPU, a preset's ``cap`` (e.g. ``cpu_repeats``) replaces ``name`` when ``name``
    still holds the authors' value (the preset class's default): the supplementary
    figures then fit the 2-hour budget on 2 cores. On CUDA, or when ``name`` was set to
    anything else (``reproduce --trials K``, a ``quick``/``tiny`` preset), the count is
    ``name`` itself.
    """
    p = ctx.params
    n, limit = int(p[name]), p.get(cap)
    script = getattr(type(p)(), name)
    if limit is None or str(ctx.device).startswith("cuda") or n != script or limit >= n:
        return n, []
    return int(limit), [
        f"{name}: {limit} of the authors' {n} on this CPU, to fit the 2-hour budget of the "
        f"supplementary figures (on a GPU the authors' {n}; reproduce --trials sets any count)"
    ]

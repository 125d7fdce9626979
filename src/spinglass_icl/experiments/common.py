"""What a figure module imports, in one place.

The pieces live by concern: the template, its :class:`Context` and :class:`Outcome`,
seeds and saving the data in :mod:`.figure` (read it first: it says what a figure module
defines); plotting helpers and saving a figure in :mod:`.plotting`; chunked, resumable
repeats and trials in :mod:`.supp`; running a figure and its ``result.json`` in
:mod:`.runner`.
"""

from __future__ import annotations

from .figure import (
    Context,
    Outcome,
    check_module,
    figure_seed,
    make,
    record_attrs,
    register_figure,
    save_dataset,
)
from .plotting import (
    PLOT_RC,
    new_figure,
    nice_log_ticks,
    plain_log_axis,
    plain_log_ticks,
    plain_number,
    plot_style,
    save_figure,
    spaced_log_values,
)
from .supp import budget_count, chunks, repeated, trial_chunks

__all__ = [
    "PLOT_RC",
    "Context",
    "Outcome",
    "budget_count",
    "check_module",
    "chunks",
    "figure_seed",
    "make",
    "new_figure",
    "nice_log_ticks",
    "plain_log_axis",
    "plain_log_ticks",
    "plain_number",
    "plot_style",
    "record_attrs",
    "register_figure",
    "repeated",
    "save_dataset",
    "save_figure",
    "spaced_log_values",
    "trial_chunks",
]

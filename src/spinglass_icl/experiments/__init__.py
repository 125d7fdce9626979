"""Experiments: the paper's figures, remade from scratch (docs/experiments.md).

Each figure lives in its own module ``spinglass_icl.experiments.<module>`` (named as the
figure) that follows one template (:mod:`.figure`): ``TITLE``, ``CLAIM`` (what the paper
says), ``NOTES`` (where we differ from the paper, and why; docs/experiments.md) and four
steps, ``compute(ctx) -> xarray.Dataset``, ``draw(ds) -> Figure``, ``claims(ds) ->
list[Claim]`` (the paper's sentences with verdicts, :mod:`.claims`) and ``summarize(ds) ->
(numbers, summary)``; its parameters are a frozen dataclass of :mod:`.presets`.
``spinglass-icl reproduce`` runs the steps in order through :func:`.runner.run_figure` and
rebuilds the report with :mod:`.report`; :func:`.figure.register_figure` adds a figure
from outside the package.

Nothing heavy is imported here.
"""

from __future__ import annotations

#: figure name -> module name, in report order
FIGURES: dict[str, str] = {
    "fig1": "fig1",
    "fig2": "fig2",
    "fig3": "fig3",
    "hessian": "hessian",
    "fig4a": "fig4a",
    "amp-stability": "amp_stability",
    "fig4b": "fig4b",
    "fig5": "fig5",
    "fig6": "fig6",
    "double-descent": "double_descent",
    "figS1": "figS1",
    "figS2": "figS2",
    "figS3": "figS3",
    "figS4": "figS4",
    "figS5": "figS5",
    "figS6": "figS6",
    "figS7": "figS7",
    "figS8": "figS8",
    "task-diversity": "task_diversity",
    "context-length": "context_length",
    "spin-glass-pool": "spin_glass_pool",
}

#: the paper's supplementary figures, in order; ``reproduce supplementary`` runs those
#: of them that are registered in :data:`FIGURES`
SUPPLEMENTARY: tuple[str, ...] = tuple(f"figS{k}" for k in range(1, 9))

#: the task-diversity figures (a finite task pool, Lu et al. 2024; not the paper's own):
#: ``reproduce diversity`` runs them, ``reproduce all`` includes them, ``main`` does not
DIVERSITY: tuple[str, ...] = ("task-diversity", "context-length", "spin-glass-pool")

__all__ = ["FIGURES", "SUPPLEMENTARY", "DIVERSITY"]

"""The readability checks of tests/figure_checks.py catch what they are meant to: two
overlapping text elements and a legend over data points; a clean figure passes."""

from __future__ import annotations

from matplotlib.figure import Figure

from figure_checks import figure_problems


def _fig():
    fig = Figure(figsize=(4, 3), layout="constrained")
    ax = fig.subplots()
    ax.set_title("a title")
    return fig, ax


def test_a_clean_figure_passes():
    fig, ax = _fig()
    ax.plot([0, 1, 2], [0, 1, 4], "o-", label="data")
    ax.legend(loc="upper left")
    assert figure_problems(fig) == []


def test_overlapping_text_is_caught():
    fig, ax = _fig()
    ax.plot([0, 1], [0, 1])
    ax.text(0.5, 0.5, "10/10", transform=ax.transAxes)
    ax.text(0.51, 0.5, "10/10", transform=ax.transAxes)
    bad = figure_problems(fig)
    assert len(bad) == 1 and "'10/10' overlaps '10/10'" in bad[0]


def test_a_legend_over_data_points_is_caught():
    fig, ax = _fig()
    ax.plot([0.05, 0.5, 0.95], [0.95, 0.5, 0.05], "x", label="not converged")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    bad = figure_problems(fig)
    assert bad == ["the legend of 'a title' covers 1 data points"]


def test_tick_labels_outside_the_view_are_ignored():
    fig, ax = _fig()
    ax.semilogy([1, 2], [1, 2])
    ax.set_ylim(1, 2)
    assert figure_problems(fig) == []

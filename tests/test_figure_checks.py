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


def test_double_descent_at_the_paper_scale_is_readable():
    """The paper preset's double descent (20 tau, 10 repeats, AMP converging only at the
    largest tau, partly), drawn from a synthetic dataset of that shape: no converged-count
    labels run together ("10/1010/10") and both verticals are in the legend."""
    import numpy as np

    from spinglass_icl.experiments.double_descent import _to_dataset, plot_double_descent
    from spinglass_icl.theory import ridgeless_error

    D, R, alphas = 20, 10, (1.0, 2.0, 4.0)
    taus = np.geomspace(0.1, 10, 20)
    names = ["exact", "amp", "amp-paper"]
    rng = np.random.default_rng(0)
    base = np.array([[0.3 + 1 / (0.2 + abs(np.log(t))) / a for t in taus] for a in alphas])
    err = np.repeat(base[None, :, :, None], 3, 0) * rng.uniform(0.95, 1.05, (3, 3, 20, R))
    ok = np.ones(err.shape, bool)
    ok[1:, :, :-3] = False  # amp and amp-paper converge only at the three largest tau
    ok[1, :, -3, 3:] = False  # amp: 3 of 10 there
    err = np.where(ok, err, np.nan)
    theory = base.copy()
    ridgeless = np.array([[ridgeless_error(a, t) for t in taus] for a in alphas])
    arrays = (err, ok, theory, ridgeless, np.full(3, 0.021), np.zeros((3, 20), np.int64))
    attrs = {"D": D, "repeats": R, "lam": 0.001, "convention": "authors", "noise": 0.0}
    ds = _to_dataset(D, alphas, taus, names, R, arrays, attrs)
    fig = plot_double_descent(ds)
    assert figure_problems(fig) == []
    labels = fig.legends[0].get_texts()
    assert {"tau = 1", "P = D(D+1): tau = 1 + 1/D"} <= {t.get_text() for t in labels}

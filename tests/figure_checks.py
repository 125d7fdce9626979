"""Readability checks of a drawn matplotlib figure, from the renderer's bounding boxes:
no two text elements overlap, and no legend covers a data point (a marker or a scatter
point) of its own axes; :func:`keeping_drawn`, which keeps what the runner draws; and
:func:`fake_figure`, a figure module made in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch


@contextmanager
def keeping_drawn(drawn: dict, threads: int | None = None) -> Iterator[None]:
    """Inside the block the runner's ``save_figure`` also keeps each figure it saves in
    ``drawn`` under its folder's name (the figure name), for :func:`figure_problems`;
    torch runs on ``threads`` threads if given, and on as many as before after it."""
    from spinglass_icl.experiments import figure
    from spinglass_icl.experiments.plotting import save_figure

    def keep(fig, folder, stem="figure"):
        drawn[Path(folder).name] = fig
        return save_figure(fig, folder, stem)

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(figure, "save_figure", keep)  # the runner saves every figure
            yield
    finally:
        torch.set_num_threads(before)


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _hidden_tick_labels(fig) -> set[int]:
    """Ids of the tick labels matplotlib does not draw (ticks outside the view limits)."""
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            drawn = {id(t) for t in axis._update_ticks()}
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if id(tick) not in drawn:
                    hidden |= {id(tick.label1), id(tick.label2)}
                elif not tick.label1.get_visible():
                    hidden.add(id(tick.label1))
    return hidden


def _texts(fig, renderer):
    from matplotlib.text import Text

    out = []
    hidden = _hidden_tick_labels(fig)
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or id(t) in hidden:
            continue
        bb = t.get_window_extent(renderer)
        if bb.width > 0 and bb.height > 0:
            out.append((t, bb))
    return out


def _overlap(a, b, tol: float = 1.0) -> bool:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w > tol and h > tol


def _data_points(ax) -> np.ndarray:
    """Display coordinates of every marker and scatter point drawn in ``ax``."""
    pts = []
    for line in ax.get_lines():
        if line.get_visible() and line.get_marker() not in (None, "None", "", " ", ","):
            xy = np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float)
            pts.append(line.get_transform().transform(xy))
    for coll in ax.collections:
        offs = coll.get_offsets() if hasattr(coll, "get_offsets") else None
        if coll.get_visible() and offs is not None and len(offs) and coll.get_label() != "":
            if type(coll).__name__ == "PathCollection":
                pts.append(coll.get_offset_transform().transform(np.asarray(offs, float)))
    if not pts:
        return np.zeros((0, 2))
    p = np.concatenate(pts)
    return p[np.isfinite(p).all(axis=1)]


def figure_problems(fig) -> list[str]:
    """What makes ``fig`` hard to read: overlapping text elements, legends over data."""
    renderer = _renderer(fig)
    bad = []
    texts = _texts(fig, renderer)
    for i, (t, a) in enumerate(texts):
        for u, b in texts[i + 1 :]:
            if _overlap(a, b):
                bad.append(f"text {t.get_text()!r} overlaps {u.get_text()!r}")
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None or not leg.get_visible():
            continue
        box = leg.get_window_extent(renderer)
        pts = _data_points(ax)
        clip = ax.get_window_extent(renderer)
        inside_ax = (pts[:, 0] >= clip.x0) & (pts[:, 0] <= clip.x1)
        inside_ax &= (pts[:, 1] >= clip.y0) & (pts[:, 1] <= clip.y1)
        under = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1)
        under &= (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
        n = int((under & inside_ax).sum())
        if n:
            bad.append(f"the legend of {ax.get_title()!r} covers {n} data points")
    return bad


def fake_figure():
    """A figure module that makes a real PNG, PDF and NetCDF file in milliseconds."""
    import types

    import xarray as xr

    from spinglass_icl.experiments.claims import at_least
    from spinglass_icl.experiments.common import new_figure

    calls = []

    def compute(ctx):
        calls.append(1)
        return xr.Dataset({"x": ("i", np.arange(3.0))})

    def draw(ds):
        fig, axes = new_figure(1)
        axes[0, 0].plot([0, 1], [0, 1])
        return fig

    def claims(ds):
        return [at_least("fake", "x", 1.0, agree=0.5, partly=0.1)]

    def summarize(ds):
        return {"x": 1.0}, "fake"

    mod = types.SimpleNamespace(TITLE="t", CLAIM="c", NOTES=[], compute=compute, draw=draw,
                                claims=claims, summarize=summarize)  # fmt: skip
    return mod, calls

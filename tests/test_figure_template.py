"""Every registered figure follows the one template of spinglass_icl.experiments.figure:
compute(ctx) -> Dataset, draw(ds) -> Figure, claims(ds) -> list[Claim],
summarize(ds) -> (dict, str), no run() of its own; and the runner refuses a step that
returns the wrong kind of object."""

from __future__ import annotations

import inspect
import types

import numpy as np
import pytest

from spinglass_icl.experiments import FIGURES
from spinglass_icl.experiments.figure import STEPS, check_module
from spinglass_icl.experiments.runner import figure_module, run_figure

#: the return annotation each step declares (modules use ``from __future__ import annotations``)
RETURNS = {
    "compute": "xr.Dataset",
    "claims": "list[Claim]",
    "summarize": "tuple[dict, str]",
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_registered_figure_follows_the_template(name):
    mod = figure_module(name)
    assert check_module(mod) == []
    for step, param in STEPS.items():
        sig = inspect.signature(getattr(mod, step))
        assert list(sig.parameters) == [param], (name, step)
        if step in RETURNS:
            assert sig.return_annotation == RETURNS[step], (name, step, sig.return_annotation)


def test_module_names_match_figure_names():
    """figS1 lives in figS1.py: a module is named as its figure (dashes become _)."""
    for name, module in FIGURES.items():
        assert module == name.replace("-", "_"), (name, module)


def _module(**over):
    import xarray as xr

    from spinglass_icl.experiments.claims import at_most
    from spinglass_icl.experiments.common import new_figure

    def draw(ds):
        fig, axes = new_figure(1)
        axes[0, 0].plot(ds["x"].values)
        return fig

    steps = {
        "compute": lambda ctx: xr.Dataset({"x": ("i", np.arange(3.0))}),
        "draw": draw,
        "claims": lambda ds: [at_most("c", "q", 0.0, agree=0.1)],
        "summarize": lambda ds: ({"x": 1.0}, "s"),
    }
    steps.update(over)
    return types.SimpleNamespace(TITLE="t", CLAIM="c", NOTES=[], **steps)


def test_check_module_names_every_departure():
    bad = _module(claims=lambda ds, n: [], summarize=None)
    del bad.summarize
    bad.run = lambda ctx: None
    problems = check_module(bad)
    assert "claims(ds, n) is not claims(ds)" in problems
    assert "no summarize(ds)" in problems
    assert any("defines run()" in p for p in problems)
    assert check_module(_module()) == []


@pytest.mark.parametrize(
    ("step", "value", "message"),
    [
        ("compute", lambda ctx: {"x": 1}, "compute must return an xarray.Dataset, not dict"),
        ("draw", lambda ds: None, "draw must return a matplotlib Figure, not NoneType"),
        ("claims", lambda ds: ["agrees"], "claims must return a list of Claim, not list"),
        ("summarize", lambda ds: {"x": 1.0}, "summarize must return a (dict, str) tuple"),
    ],
)
def test_the_runner_refuses_a_step_of_the_wrong_kind(tmp_path, monkeypatch, step, value, message):
    import spinglass_icl.experiments.runner as runner

    mod = _module(**{step: value})
    monkeypatch.setattr(runner, "figure_module", lambda n: mod)
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_figure("fig1", tmp_path, preset="tiny", progress=False)


def test_the_record_holds_seeds_and_files_from_the_dataset(tmp_path, monkeypatch):
    """record_attrs puts seeds and store files in the Dataset; the record and data.nc keep
    them; a why(ds) hook replaces WHY; a budget_note attr becomes a note."""
    import xarray as xr

    import spinglass_icl.experiments.runner as runner
    from spinglass_icl.experiments.common import record_attrs

    def compute(ctx):
        (ctx.out / "store.sqlite").write_bytes(b"SQLite format 3\x00")
        ds = xr.Dataset({"x": ("i", np.arange(3.0))}, attrs={"budget_note": "scaled down"})
        return record_attrs(ds, seeds={"draw": {"P10": 7}}, files=["store.sqlite"])

    mod = _module(compute=compute, why=lambda ds: f"x sums to {float(ds['x'].sum()):g}")
    monkeypatch.setattr(runner, "figure_module", lambda n: mod)
    rec = run_figure("fig1", tmp_path, preset="tiny", progress=False)
    assert rec["seeds"] == {"draw": {"P10": 7}}
    assert rec["files"] == ["store.sqlite", "figure.png", "figure.pdf", "data.nc"]
    assert rec["why"] == "x sums to 3"
    assert "scaled down" in rec["notes"]
    assert rec["verdict"] == "agrees" and rec["numbers"] == {"x": 1.0}
    with xr.open_dataset(tmp_path / "fig1" / "data.nc") as ds:
        assert "draw" in ds.attrs["record_seeds"]

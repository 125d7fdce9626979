"""examples/extending/new_figure.py: a figure the package does not have, registered from one
file with public names only, made by reproduce's runner at the tiny preset; and the
refusals of register_figure."""

from __future__ import annotations

import types

import pytest

from spinglass_icl import ParameterError
from spinglass_icl.experiments import FIGURES
from spinglass_icl.experiments.figure import register_figure
from spinglass_icl.experiments.presets import get_preset
from test_extending import EXAMPLES, _private_names, _run


def test_new_figure_example_is_short_and_uses_public_names():
    path = EXAMPLES / "new_figure.py"
    assert len(path.read_text().splitlines()) < 200
    assert _private_names(path) == []


def test_new_figure_example_registers_runs_reports_and_skips():
    out = _run("new_figure.py")
    assert "registered twice: ParameterError: name must be a new figure name" in out
    # the exact solution's contrast rises with P at the tiny preset (D = 4, N = 16)
    assert "contrast-vs-P: agrees; C rises from" in out
    assert "files: figure.png, figure.pdf, data.nc; report: True" in out
    assert "second run skipped: True" in out


def _module(**over):
    steps = {k: (lambda ctx: None) if k == "compute" else (lambda ds: None)
             for k in ("compute", "draw", "claims", "summarize")}  # fmt: skip
    steps.update(over)
    return types.SimpleNamespace(TITLE="t", CLAIM="c", NOTES=[], **steps)


@pytest.mark.parametrize(
    ("name", "module", "presets", "message"),
    [
        ("fig1", _module(), get_preset("tiny", "fig1"), "name must be a new figure name"),
        ("", _module(), get_preset("tiny", "fig1"), "name must be a new figure name"),
        ("x", _module(draw=lambda ds, ax: None), get_preset("tiny", "fig1"),
         r"departs from the template: draw\(ds, ax\) is not draw\(ds\)"),
        ("x", _module(), {"tiny": get_preset("tiny", "fig1")}, "presets must have exactly"),
        ("x", _module(), {"tiny": 1, "quick": 1, "paper": 1}, "must be a FigurePreset"),
    ],
)  # fmt: skip
def test_register_figure_refuses_and_registers_nothing(name, module, presets, message):
    before = dict(FIGURES)
    with pytest.raises(ParameterError, match=message):
        register_figure(name, module, presets)
    assert FIGURES == before
    with pytest.raises(ParameterError):
        get_preset("tiny", "x")

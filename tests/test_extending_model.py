"""examples/extending/new_model.py: a model added in one file (public names only) registers,
trains through the public API beside SLA, and matches the SLA it implies."""

from __future__ import annotations

import ast
import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "extending" / "new_model.py"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_example_is_short_and_uses_public_names_only():
    text = EXAMPLE.read_text()
    assert len(text.splitlines()) < 200
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("spinglass_icl"):
            assert all(not a.name.startswith("_") for a in node.names), node.module


def test_new_model_registers_and_trains(capsys):
    from spinglass_icl.models import _REGISTRY, model_names

    before = dict(_REGISTRY)
    try:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
        out = capsys.readouterr().out
        assert "sla-tied" in model_names()
    finally:  # leave the registry as the other tests expect it
        _REGISTRY.clear()
        _REGISTRY.update(before)
    rows = {
        line.split("|")[1].strip(): float(line.split("|")[3])
        for line in out.splitlines()
        if line.startswith("| sla")
    }
    assert set(rows) == {"sla", "sla-separate", "sla-tied"}
    # all three learned (the trivial predictor has relative error 1), to within 10% of SLA's
    for name, err in rows.items():
        assert err < 0.5, (name, err)
        assert abs(err / rows["sla"] - 1) < 0.1, (name, err)
    gap = float(out.split("max |difference| = ")[1].split()[0])
    assert gap < 1e-12
    assert "refused: model must be one of" in out and "refused: r must be" in out
    assert "TrainResult(model=sla-tied" in out

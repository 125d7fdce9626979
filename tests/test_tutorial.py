"""docs/tutorial.ipynb runs from top to bottom on the CPU, and its stored outputs are current.

The notebook is executed with nbclient in the ``python3`` kernel of ipykernel (jupyter_client
launches it with this interpreter). Its stored outputs (what a code host shows) must match a
fresh run up to 3 significant digits, so a change that moves the tutorial's numbers shows up
here. To refresh them after such a change: ``cd docs && jupyter-execute --inplace tutorial.ipynb``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"

_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _round(match: re.Match) -> str:
    x = float(match.group())
    if abs(x) < 1e-5:  # residuals and rounding-level differences: machine dependent
        return "~0"
    return f"{x:.3g}"


def _text_raw(nb) -> list[str]:
    """The stdout of every code cell."""
    return [
        "".join(o.get("text", "") for o in c.outputs if o.get("name") == "stdout")
        for c in nb.cells
        if c.cell_type == "code"
    ]


def _text(nb) -> list[str]:
    """The stdout of every code cell, numbers rounded to 3 significant digits."""
    return [_FLOAT.sub(_round, t) for t in _text_raw(nb)]


def _images(nb) -> int:
    return sum(
        "image/png" in o.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
    )


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cwd = tmp_path_factory.mktemp("tutorial")
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def test_tutorial_runs_and_says_what_it_claims(executed):
    out = "\n".join(_text_raw(executed))
    # amp (with the Onsager term) has the exact mean, amp-paper (eq. 34 verbatim) does not
    m = re.search(r"amp ([0-9.e+-]+)\s+amp-paper ([0-9.e+-]+)", out)
    assert m and float(m.group(1)) < 1e-6 < 1e-2 < float(m.group(2))
    # the trained SLA lands on the exact ground state
    dists = [float(x) for x in re.findall(r"\|W_trained - W_ground\| / \|W_ground\| = (\S+),", out)]
    assert len(dists) == 2 and max(dists) < 1e-3
    # H = L - const
    h = re.search(r"H\(sigma\) - L\(sigma\) \+ const = (\S+)", out)
    assert h and abs(float(h.group(1))) < 1e-10
    assert _images(executed) == 6


def test_stored_outputs_are_current(executed):
    """The outputs saved in the file (shown on a code host) are those of a fresh run."""
    stored = nbformat.read(NOTEBOOK, as_version=4)
    assert all(c.outputs for c in stored.cells if c.cell_type == "code"), "unexecuted cells"
    assert not any(
        o.output_type == "error" for c in stored.cells if c.cell_type == "code" for o in c.outputs
    )
    assert _images(stored) == _images(executed)
    assert _text(stored) == _text(executed)

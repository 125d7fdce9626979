"""The documentation site builds with warnings as errors: ``mkdocs build --strict``.

A broken link or anchor, a cross-reference to nothing, a public name of
``spinglass_icl.__all__`` on no API page, or a public function or class without a
docstring fails the build (docs_hooks.py). Skipped only where MkDocs and its plugins are
not installed (``pip install -e ".[docs]"``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import spinglass_icl as sg

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter")


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs_hooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    for name in PLUGINS:
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            found = None
        if found is None:
            pytest.skip(f"{name} is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")]
    proc = subprocess.run(
        [*cmd, "-d", str(out / "site")],
        cwd=out,  # mkdocs-jupyter's cache goes here, not into the repository
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out / "site"


def test_site_builds_strict_with_every_page(site):
    for page in ("index.html", "solvers/index.html", "cluster/index.html", "benchmarks/index.html",
                 "paper/report/index.html", "api/index.html", "api/sweep/index.html"):  # fmt: skip
        assert (site / page).is_file(), page


def test_tutorial_is_rendered_with_its_stored_outputs(site):
    html = (site / "tutorial" / "index.html").read_text()
    assert "spinglass-icl in ten minutes" in html
    assert html.count("data:image/png;base64") >= 3  # the notebook's figures


def test_api_reference_lists_every_public_name(site):
    html = (site / "api" / "index.html").read_text()
    for name in sg.__all__:
        assert f"sg.{name}</code>" in html, name
    sweep = (site / "api" / "sweep" / "index.html").read_text()
    assert 'id="spinglass_icl.sweep.run_sweep"' in sweep
    assert (
        'id="spinglass_icl.sweep.slurm.SlurmOptions"'
        in (site / "api" / "slurm" / "index.html").read_text()
    )


def test_links_out_of_docs_are_pointed_at_their_pages():
    h = _hooks()
    anchor = "#reproduce---preset-paper-wall-time-per-figure"
    md = (
        f"[m](../benchmarks/RESULTS.md{anchor}) [s](theory.md) [r](../README.md) [w](https://x.org)"
    )
    out = h._rewrite_links(md, h.DOCS, h.DOCS)
    assert out == f"[m](benchmarks.md{anchor}) [s](theory.md) [r](../README.md) [w](https://x.org)"
    nested = h._rewrite_links(
        "[m](../../benchmarks/RESULTS.md)", h.DOCS / "paper", h.DOCS / "paper"
    )
    assert nested == "[m](../benchmarks.md)"
    # RESULTS.md's own links into docs/, seen from the page benchmarks.md
    res = h._rewrite_links("[p](../docs/paper/README.md)", h.ROOT / "benchmarks", h.DOCS)
    assert res == "[p](paper/README.md)"


def test_report_anchor_shim_adds_only_anchors_that_are_linked():
    h = _hooks()
    md = "[a](#fig1) [b](#nope)\n\n## fig1: Title\n\n## fig2: Other\n"
    out = h._report_anchors(md)
    assert '<a id="fig1"></a>\n\n## fig1: Title' in out
    assert '<a id="fig2"' not in out and '<a id="nope"' not in out
    assert h._report_anchors(out) == out  # an anchor already there is not doubled


def test_api_check_warns_on_missing_docstrings_and_undocumented_names(caplog, monkeypatch):
    h = _hooks()
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.spinglass_icl"):
        table = h._public_table()
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert table.count("\n") == len(sg.__all__) + 2  # header, rule, one row per name

    mod = types.ModuleType("fake")

    def documented():
        """Does something."""

    def bare():
        pass

    for f in (documented, bare):
        f.__module__ = "fake"
        setattr(mod, f.__name__, f)
    mod.LIMIT = 3
    mod._private = 4
    assert sorted(h._public(mod)) == ["LIMIT", "bare", "documented"]
    monkeypatch.setitem(sys.modules, "fake", mod)
    monkeypatch.setattr(h, "_documented_modules", lambda: ["fake"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.spinglass_icl"):
        h._public_table()
    msgs = [r.getMessage() for r in caplog.records]
    assert "API: fake.bare has no docstring" in msgs
    assert "API: spinglass_icl.solve is documented on no API page" in msgs
    assert not any("documented has no" in m for m in msgs)

"""Every link and anchor of a report works: in ``report.md`` as a Markdown renderer reads it
(in-page links to explicit anchors or heading slugs, files relative to the report's folder,
anchors of linked docs pages) and in ``report.html``; checked on a report generated into a
fresh folder and on the committed ``docs/paper/`` copy."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from spinglass_icl.experiments.report import build_report, collect, report_markdown
from spinglass_icl.safeio import MANIFEST
from test_repo_hygiene import anchors, slug

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "docs" / "paper"
MD_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HTML_LINK = re.compile(r"""(?:href|src)=["']([^"']+)["']""")


def _md_anchors(text: str) -> set[str]:
    ids = set(re.findall(r"""<a id=["']([^"']+)["']""", text))
    heads = {slug(m) for m in re.findall(r"^#{1,6}\s+(.*?)\s*$", text, re.M)}
    return ids | heads


def link_problems(md: Path) -> list[str]:
    """Broken links of the Markdown file ``md`` and of the HTML beside it (same stem)."""
    bad = []
    text = md.read_text()
    own = _md_anchors(text)
    for target in MD_LINK.findall(text):
        bad += _target_problem(md, target, own)
    page = md.with_suffix(".html")
    if page.exists():
        h = page.read_text()
        ids = set(re.findall(r"""\bid=["']([^"']+)["']""", h))
        for target in HTML_LINK.findall(h):
            if not target.startswith("data:"):
                bad += _target_problem(page, target, ids)
        if re.search(r"\[[^\]]+\]\([^)]+\)", re.sub(r"<[^>]+>", "", h)):
            bad.append(f"{page.name}: a raw Markdown link is shown")
    return bad


def _target_problem(doc: Path, target: str, own: set[str]) -> list[str]:
    if re.match(r"[a-z]+://", target):
        return [f"{doc.name}: external link {target}"]  # the report is self-contained
    path, _, anchor = target.partition("#")
    if not path:
        return [] if anchor in own else [f"{doc.name}: no anchor #{anchor}"]
    f = (doc.parent / path).resolve()
    if not f.exists():
        return [f"{doc.name}: {target} does not exist (relative to {doc.parent})"]
    if anchor and f.suffix == ".md" and anchor not in anchors(f):
        return [f"{doc.name}: no anchor #{anchor} in {path}"]
    return []


def test_the_committed_paper_report_links_all_resolve():
    assert (PAPER / "report.md").exists() and (PAPER / "report.html").exists()
    assert link_problems(PAPER / "report.md") == []
    assert link_problems(PAPER / "README.md") == []
    h = (PAPER / "report.html").read_text()
    wrong = h.split('id="wrong"', 1)[1].split("<h2", 2)[1]
    assert "</ul>\n</li>" in wrong  # each figure's claims are a sub-list of its item


def test_the_committed_paper_report_is_the_one_its_results_json_gives(tmp_path):
    """docs/paper/report.md is rebuilt, byte for byte, from docs/paper/results.json."""
    assert report_markdown(collect(PAPER), PAPER) == (PAPER / "report.md").read_text()


def test_a_report_generated_elsewhere_links_relative_to_its_own_folder(tmp_path):
    out = tmp_path / "deep" / "reproduce"
    out.mkdir(parents=True)
    shutil.copy(PAPER / "results.json", out / "results.json")
    shutil.copy(PAPER / MANIFEST, out / MANIFEST)  # a folder the package wrote, copied
    for r in collect(PAPER):
        (out / r["figure"]).mkdir()
        shutil.copy(PAPER / r["figure"] / "figure.png", out / r["figure"] / "figure.png")
    paths = build_report(out)
    md = paths["md"].read_text()
    assert "](docs/" not in md  # nothing relative to the repository root
    assert link_problems(paths["md"]) == []
    h = paths["html"].read_text()
    assert h.count("data:image/png;base64,") == len(collect(PAPER))
    assert "images loaded" not in h and 'id="img-status" hidden' in h


def test_a_broken_link_is_caught(tmp_path):
    md = tmp_path / "r.md"
    md.write_text('<a id="a"></a>\n\n## x: y\n\n[a](#a) [b](#b) [c](c.md) [d](#x-y)\n')
    bad = link_problems(md)
    assert len(bad) == 2 and any("#b" in b for b in bad) and any("c.md" in b for b in bad)


def test_verdicts_that_differ_between_presets_are_listed(tmp_path):
    """``--compare``: a claim whose verdict differs in another report is named, with both
    verdicts and both measured numbers."""
    import json

    from spinglass_icl.experiments.report import main

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        shutil.copy(PAPER / "results.json", d / "results.json")
        shutil.copy(PAPER / MANIFEST, d / MANIFEST)  # a folder the package wrote, copied
    res = json.loads((b / "results.json").read_text())
    c = res["figures"]["fig3"]["claims"][0]
    c["verdict"], c["measured"] = "disagrees", -1.0
    res["figures"]["fig3"]["preset"] = "quick"
    (b / "results.json").write_text(json.dumps(res))
    assert main([str(a), "--compare", str(b)]) == 0
    md = (a / "report.md").read_text()
    sec = md.split("## Verdicts that differ between presets", 1)[1].split("\n## ", 1)[0]
    rows = [x for x in sec.splitlines() if x.startswith("| [")]
    assert len(rows) == 1 and "fig3" in rows[0]
    assert "paper: **agrees**" in rows[0] and "quick: **disagrees** (-1)" in rows[0]
    assert link_problems(a / "report.md") == []  # no PNGs here: no image links either
    assert "![" not in md

"""The repository explains itself: no citations of files that do not ship, no dated lab notes in
the code, and every link to a docs page (with its anchor) resolves.

What the code relies on is written in docs/ (conventions.md, solvers.md, experiments.md,
theory.md, cluster.md) and cited by paper equation number or docs page; measurements with
dates belong in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: where the citations must not appear
CHECKED = ("src", "docs", "README.md", "benchmarks", "examples")
SUFFIXES = {".py", ".md", ".toml", ".ipynb", ".txt", ".cfg", ".html"}

FORBIDDEN = {
    "the planning spec": re.compile(r"(?<![\w])SPEC(?![\w])"),
    "the style notes": re.compile(r"(?<![\w])STYLE(?:\.md)?(?![\w])"),
    "a path outside the repo": re.compile(r"\.\./shared"),
    "an issue number": re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE),
}
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
LINK = re.compile(r"(?:docs/)?\b([\w-]+\.md)#([\w-]+)")


def _files(*roots: str) -> list[Path]:
    out = []
    for r in roots:
        p = ROOT / r
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(
                f
                for f in p.rglob("*")
                if f.is_file() and f.suffix in SUFFIXES and "__pycache__" not in f.parts
            )
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading (github-slugger): lowercase, drop punctuation
    other than hyphens and underscores, spaces to hyphens."""
    s = heading.strip().lower()
    s = "".join(
        ch
        for ch in s
        if ch in " -_" or unicodedata.category(ch)[0] in "LMN" or unicodedata.category(ch) == "Pc"
    )
    return s.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    """All anchors of a markdown file (headings outside code fences, with -1, -2 for repeats)."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not m:
            continue
        s = slug(m.group(1))
        k = seen.get(s, 0)
        seen[s] = k + 1
        out.add(s if k == 0 else f"{s}-{k}")
    return out


def test_slug_matches_github():
    assert slug("2. Mapping our parameters to theirs") == "2-mapping-our-parameters-to-theirs"
    assert slug("Fig. 4a") == "fig-4a"
    assert slug("Lam mapping") == "lam-mapping"
    assert slug("The `authors` convention (default)") == "the-authors-convention-default"


def test_the_checked_tree_is_not_empty():
    files = _files(*CHECKED)
    assert len(files) > 40
    assert ROOT / "src" / "spinglass_icl" / "solvers" / "amp.py" in files


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_no_citations_of_files_that_do_not_ship(what):
    pattern = FORBIDDEN[what]
    hits = []
    for f in _files(*CHECKED):
        for no, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{no}: {line.strip()[:100]}")
    assert not hits, f"{what} cited (write it into docs/ and cite that):\n" + "\n".join(hits)


def test_no_dated_lab_notes_in_the_code():
    hits = []
    for f in _files("src"):
        for no, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if DATE.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{no}: {line.strip()[:100]}")
    assert not hits, "dated notes belong in benchmarks/RESULTS.md:\n" + "\n".join(hits)


def test_every_docs_link_resolves():
    """``docs/NAME.md#anchor`` (or ``NAME.md#anchor`` inside docs/) names a heading there."""
    docs = ROOT / "docs"
    known = {p.name: anchors(p) for p in docs.glob("*.md")}
    known["RESULTS.md"] = anchors(ROOT / "benchmarks" / "RESULTS.md")
    known["README.md"] = anchors(ROOT / "README.md")
    bad, n = [], 0
    for f in _files(*CHECKED, "tests"):
        if f == Path(__file__).resolve():
            continue
        for no, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            for name, anchor in LINK.findall(line):
                n += 1
                if name not in known:
                    bad.append(f"{f.relative_to(ROOT)}:{no}: no such page {name}")
                elif anchor not in known[name]:
                    bad.append(f"{f.relative_to(ROOT)}:{no}: no anchor #{anchor} in {name}")
    assert n > 20, "expected the code and docs to link to docs pages"
    assert not bad, "\n".join(bad)


def test_docs_pages_are_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in ("conventions.md", "solvers.md", "experiments.md", "theory.md", "tutorial.ipynb"):
        assert f"docs/{page}" in readme, page

"""MkDocs hooks of the documentation site (``mkdocs.yml``: ``hooks``).

- ``benchmarks/RESULTS.md`` becomes the page ``benchmarks.md``; links to it from the
  docs pages (``../benchmarks/RESULTS.md#...``, right on GitHub) are pointed at that page,
  and its own links into ``docs/`` at their pages. Any other link leaving ``docs/``
  stays as written and fails the strict build.
- A report written before the report carried explicit anchors (``[fig1](#fig1)`` to a
  heading ``## fig1: ...``, whose GitHub id is longer) gets an ``<a id="fig1">`` before
  that heading; a link to a name that no heading starts with still fails.
- The API overview (``docs/api/index.md``) gets the table of ``spinglass_icl.__all__``,
  each name cross-referenced to where its page documents it.
- Every public name of the modules the API pages render (``::: module``; their
  ``__all__``, else their own public functions, classes and constants) is checked: a
  top-level name no page documents, or a public function or class without a
  docstring, is a warning, so ``mkdocs build --strict`` fails.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DOCS = ROOT / "docs"
#: files outside docs/ published as pages: repository path -> page (relative to docs/)
OUTSIDE_PAGES = {"benchmarks/RESULTS.md": "benchmarks.md"}
MARKER = "<!-- public-names -->"

log = logging.getLogger("mkdocs.hooks.spinglass_icl")
_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def _src() -> None:
    src = str(ROOT / "src")
    if src not in sys.path:
        sys.path.insert(0, src)


def _rewrite_links(markdown: str, source_dir: Path, page_dir: Path) -> str:
    """Links of a page whose source lives in ``source_dir``, as seen from the site
    folder ``page_dir``: targets in docs/ or in :data:`OUTSIDE_PAGES` are rewritten."""

    def fix(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"^[a-z]+:|^#", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        repo = os.path.normpath(source_dir / path)
        rel = Path(repo).relative_to(ROOT).as_posix() if repo.startswith(str(ROOT)) else None
        if rel in OUTSIDE_PAGES:
            new = DOCS / OUTSIDE_PAGES[rel]
        elif rel is not None and rel.startswith("docs/") and source_dir != page_dir:
            new = ROOT / rel
        else:
            return m.group(0)
        link = os.path.relpath(new, page_dir).replace(os.sep, "/")
        return f"{m.group(1)}{link}{'#' + anchor if anchor else ''}{m.group(3)}"

    return _LINK.sub(fix, markdown)


def on_files(files, config):
    from mkdocs.structure.files import File

    for repo_path, page in OUTSIDE_PAGES.items():
        text = (ROOT / repo_path).read_text()
        text = _rewrite_links(text, (ROOT / repo_path).parent, (DOCS / page).parent)
        files.append(File.generated(config, page, content=text))
    return files


def on_page_markdown(markdown, page, config, files):
    src = page.file.src_uri
    if src not in OUTSIDE_PAGES.values():
        here = (DOCS / src).parent
        markdown = _rewrite_links(markdown, here, here)
    if src.startswith("paper/"):
        markdown = _report_anchors(markdown)
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, _public_table())
    return markdown


def _report_anchors(markdown: str) -> str:
    """``<a id="NAME"></a>`` before each heading ``## NAME: ...`` linked as ``#NAME``
    that has no such anchor yet (see the module docstring)."""
    wanted = set(re.findall(r"\]\(#([\w-]+)\)", markdown))
    have = set(re.findall(r"id=[\"']([\w-]+)[\"']", markdown))

    def anchor(m: re.Match) -> str:
        name = m.group(2)
        if name in wanted and name not in have:
            return f'<a id="{name}"></a>\n\n{m.group(0)}'
        return m.group(0)

    return re.sub(r"^(#{2,3}) ([\w-]+):", anchor, markdown, flags=re.M)


# ------------------------------------------------------------------ the API check
def _documented_modules() -> list[str]:
    """Modules the API pages render in full (``::: module`` without ``members:``)."""
    out = []
    for page in sorted((DOCS / "api").glob("*.md")):
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^::: ([\w.]+)\s*$", line)
            if not m:
                continue
            block = []
            for nxt in lines[i + 1 :]:
                if nxt and not nxt.startswith(" "):
                    break
                block.append(nxt)
            if not any(re.match(r"\s+members:", b) for b in block):
                out.append(m.group(1))
    return out


def _public(mod) -> list[str]:
    """Public names of a module: its ``__all__``, else the functions, classes and
    constants it defines itself."""
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    names = []
    for name, obj in vars(mod).items():
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if obj.__module__ == mod.__name__:
                names.append(name)
        elif name.isupper():
            names.append(name)
    return names


def _has_doc(name: str, obj) -> bool:
    doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
    return bool(doc and doc.strip() and not doc.startswith(f"{name}("))  # not a dataclass'


def _summary(obj) -> str:
    if not (inspect.isclass(obj) or callable(obj)):
        return f"constant: `{obj!r}`"[:80]
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
    return first[:160] + ("..." if len(first) > 160 else "")


def _public_table() -> str:
    _src()
    import spinglass_icl

    modules = [importlib.import_module(m) for m in _documented_modules()]
    where = {}
    for mod in modules:
        for name in _public(mod):
            where.setdefault(name, mod.__name__)
            obj = getattr(mod, name, None)
            if obj is None:
                log.warning("API: %s.__all__ names %r, which it does not have", mod.__name__, name)
            elif (inspect.isclass(obj) or inspect.isfunction(obj)) and not _has_doc(name, obj):
                log.warning("API: %s.%s has no docstring", mod.__name__, name)
    rows = ["| name | what it is |", "| --- | --- |"]
    for name in spinglass_icl.__all__:
        if name not in where:
            log.warning("API: spinglass_icl.%s is documented on no API page", name)
            continue
        obj = getattr(spinglass_icl, name)
        rows.append(f"| [`sg.{name}`][{where[name]}.{name}] | {_summary(obj)} |")
    return "\n".join(rows) + "\n"

"""``report.md``, ``report.html`` and ``results.json`` from the figures present in a folder.

The report is rebuilt from every ``<DIR>/<figure>/result.json`` found, in the order of
:data:`~spinglass_icl.experiments.FIGURES`, so running figures one at a time keeps all
their sections. The HTML is self-contained: every PNG is embedded as base64, and a
tiny inline script writes the number of loaded images into ``#img-status`` (used by
the headless-browser test).
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

from ..safeio import atomic_write_text
from . import FIGURES
from .common import RECORD_KEYS

__all__ = ["collect", "build_report"]


def collect(out: Path) -> list[dict]:
    """The records of all figures present under ``out``, in report order."""
    recs = []
    for name in FIGURES:
        p = out / name / "result.json"
        if p.exists():
            try:
                rec = json.loads(p.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            # a broken record (e.g. ``[]``) is left out; the next reproduce redoes it
            if isinstance(rec, dict) and all(k in rec for k in (*RECORD_KEYS, "seconds")):
                recs.append(rec)
    return recs


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) > 8:
        return "[" + ", ".join(_fmt(x) for x in v[:4]) + f", ... ({len(v)} values)]"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


def _verdict(rec: dict) -> str:
    a = rec.get("agrees")
    return {True: "agrees with the paper", False: "differs from the paper"}.get(
        a, "no claim tested"
    )


def _markdown(recs: list[dict]) -> str:
    lines = [
        "# spinglass-icl: reproduction report",
        "",
        "Li, Bai & Huang, *Spin glass model of in-context learning* (arXiv:2408.02288), "
        "remade by `spinglass-icl reproduce`.",
        "",
        "| figure | preset | seconds | verdict |",
        "|---|---|---|---|",
    ]
    for r in recs:
        lines.append(
            f"| [{r['figure']}](#{r['figure']}) | {r['preset']} | {r['seconds']:.1f} "
            f"| {_verdict(r)} |"
        )
    total = sum(r["seconds"] for r in recs)
    lines += ["", f"Total time of the figures: {total:.1f} s.", ""]
    for r in recs:
        lines += [
            f"## {r['figure']}: {r['title']}",
            "",
            f"![{r['figure']}]({r['figure']}/figure.png)",
            "",
            f"**Paper's claim.** {r['claim']}",
            "",
            f"**Our result ({_verdict(r)}).** {r['summary']}",
            "",
            f"- preset `{r['preset']}`, convention `{r['convention']}`, device `{r['device']}`, "
            f"seed {r['seed']}, time {r['seconds']:.1f} s ({r.get('machine', '')})",
            "- parameters: " + ", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items()),
        ]
        if r.get("seeds"):
            lines.append("- seeds: " + ", ".join(f"{k}={_fmt(v)}" for k, v in r["seeds"].items()))
        lines.append(
            "- key numbers: " + "; ".join(f"{k} = {_fmt(v)}" for k, v in r["numbers"].items())
        )
        lines.append("- files: " + ", ".join(f"`{r['figure']}/{f}`" for f in r["files"]))
        if r.get("notes"):
            lines += ["", "Notes:"] + [f"- {n}" for n in r["notes"]]
        lines.append("")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
line-height:1.45;color:#222}
img{max-width:100%;border:1px solid #ddd}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}
.claim{background:#f4f6fa;padding:.5em 1em}.ours{background:#f3faf3;padding:.5em 1em}
.differs{background:#fff4e5}.small{font-size:90%;color:#444}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
  }
  var s = document.getElementById('img-status');
  s.setAttribute('data-loaded', String(ok));
  s.setAttribute('data-total', String(imgs.length));
  s.textContent = 'images loaded: ' + ok + ' / ' + imgs.length;
});
"""


def _html(recs: list[dict], out: Path) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>spinglass-icl reproduction report</title>",
        f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>",
        "<h1>spinglass-icl: reproduction report</h1>",
        "<p>Li, Bai &amp; Huang, <i>Spin glass model of in-context learning</i> "
        "(arXiv:2408.02288), remade by <code>spinglass-icl reproduce</code>. "
        f"Built {e(time.strftime('%Y-%m-%d %H:%M:%S'))}.</p>",
        "<p id='img-status' data-loaded='-1' data-total='-1'>images loading</p>",
        "<table><tr><th>figure</th><th>preset</th><th>seconds</th><th>verdict</th></tr>",
    ]
    for r in recs:
        parts.append(
            f"<tr><td><a href='#{e(r['figure'])}'>{e(r['figure'])}</a></td>"
            f"<td>{e(r['preset'])}</td><td>{r['seconds']:.1f}</td><td>{e(_verdict(r))}</td></tr>"
        )
    parts.append("</table>")
    for r in recs:
        png = out / r["figure"] / "figure.png"
        parts.append(f"<h2 id='{e(r['figure'])}'>{e(r['figure'])}: {e(r['title'])}</h2>")
        if png.exists():
            b64 = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f"<img alt='{e(r['figure'])}' src='data:image/png;base64,{b64}'>")
        cls = "ours differs" if r.get("agrees") is False else "ours"
        parts += [
            f"<p class='claim'><b>Paper's claim.</b> {e(r['claim'])}</p>",
            f"<p class='{cls}'><b>Our result ({e(_verdict(r))}).</b> {e(r['summary'])}</p>",
            "<ul class='small'>",
            f"<li>preset <code>{e(r['preset'])}</code>, convention "
            f"<code>{e(r['convention'])}</code>, device <code>{e(r['device'])}</code>, "
            f"seed {r['seed']}, time {r['seconds']:.1f} s ({e(r.get('machine', ''))})</li>",
            "<li>parameters: "
            + e(", ".join(f"{k}={_fmt(v)}" for k, v in r["params"].items()))
            + "</li>",
        ]
        if r.get("seeds"):
            parts.append(
                "<li>seeds: "
                + e(", ".join(f"{k}={_fmt(v)}" for k, v in r["seeds"].items()))
                + "</li>"
            )
        parts.append(
            "<li>key numbers: "
            + e("; ".join(f"{k} = {_fmt(v)}" for k, v in r["numbers"].items()))
            + "</li>"
        )
        parts.append(
            "<li>files: " + e(", ".join(f"{r['figure']}/{f}" for f in r["files"])) + "</li></ul>"
        )
        if r.get("notes"):
            parts.append("<p><b>Notes</b></p><ul>")
            parts += [f"<li>{e(n)}</li>" for n in r["notes"]]
            parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build_report(out: Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``results.json`` into ``out``.

    Returns
    -------
    dict
        ``{"md": ..., "html": ..., "json": ...}`` paths.
    """
    out = Path(out)
    recs = collect(out)
    md = out / "report.md"
    atomic_write_text(md, _markdown(recs))
    ht = out / "report.html"
    atomic_write_text(ht, _html(recs, out))
    js = out / "results.json"
    results = {
        "figures": {
            r["figure"]: {
                k: r[k]
                for k in (
                    "title",
                    "preset",
                    "convention",
                    "seed",
                    "seeds",
                    "device",
                    "params",
                    "seconds",
                    "numbers",
                    "agrees",
                    "files",
                    "finished",
                )
                if k in r
            }
            for r in recs
        },
        "total_seconds": sum(r["seconds"] for r in recs),
    }
    atomic_write_text(js, json.dumps(results, indent=2, allow_nan=False) + "\n")
    return {"md": md, "html": ht, "json": js}

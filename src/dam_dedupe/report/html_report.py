"""The report as one self-contained HTML page that opens offline.

Every string that came from a store (names, paths, reasons) is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.5em} table{border-collapse:collapse} td,th{padding:.25em .6em;text-align:left;vertical-align:top}
.summary td:first-child{color:#555} .card{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.8em}
.card h2{font-size:1.05em;margin:0 0 .4em} .members{display:flex;flex-wrap:wrap;gap:.8em}
.member{width:14em;border:1px solid #eee;padding:.4em;font-size:.85em;word-break:break-all}
.member.canonical{border-color:#2a7;background:#f3fbf6} .member img{width:64px;height:64px;image-rendering:pixelated}
.tag{display:inline-block;padding:0 .4em;border-radius:3px;background:#eee} .canonical .tag{background:#2a7;color:#fff}
.reason{color:#555} #filter{width:30em;padding:.3em}
"""

SCRIPT = """
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('.card').forEach(function (card) {
    card.style.display = card.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
  });
});
"""


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _member(m: dict[str, Any]) -> str:
    role = "canonical" if m["canonical"] else m["match"]
    thumb = f'<img alt="" src="{escape(m["thumbnail"])}">' if m.get("thumbnail") else ""
    dims = f"{m['width']}×{m['height']} {escape(m['format'] or '')}" if m["width"] else ""
    relation = escape(str(m["evidence"].get("relation", "")))
    return (
        f'<div class="member{" canonical" if m["canonical"] else ""}">{thumb}<br>'
        f'<span class="tag">{escape(role)}</span> {relation}<br>'
        f"<b>{escape(m['name'])}</b><br>{escape(m['path'])}<br>{_size(m['size'])} · {dims}<br>"
        f"modified {escape(m['modified'] or 'unknown')}</div>"
    )


def render_html(report: dict[str, Any]) -> str:
    """Render the report document as a complete HTML page."""
    s = report["summary"]
    summary_rows = [
        ("Assets listed", s["assets"]),
        ("Images", s["images"]),
        ("Clusters of copies", s["clusters"]),
        ("Duplicate copies", s["duplicate_copies"]),
        ("Reclaimable", _size(s["reclaimable_bytes"])),
        ("Errors", s["errors"]),
        ("Gone since an earlier scan", s["gone"]),
    ]
    cards = [
        f'<div class="card"><h2>{escape(c["id"])} · {c["copies"]} copies · {_size(c["reclaimable_bytes"])} '
        f'reclaimable</h2><p class="reason">Canonical: {escape(c["canonical_reason"])}</p>'
        f'<div class="members">{"".join(_member(m) for m in c["members"])}</div></div>'
        for c in report["clusters"]
    ]
    errors = "".join(f"<tr><td>{escape(e['path'])}</td><td>{escape(e['reason'])}</td></tr>" for e in report["errors"])
    sources = ", ".join(escape(src["name"] or src["uri"]) for src in report["sources"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dam-dedupe report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body><h1>Duplicate image audit</h1>
<p>Generated {escape(report["generated"])} by {escape(report["generator"])} · sources: {sources}</p>
<table class="summary">{"".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in summary_rows)}</table>
<h1>Clusters</h1><p><input id="filter" type="search" placeholder="Filter by name, path, match…"></p>
{"".join(cards) or "<p>No duplicates found.</p>"}
<h1>Errors</h1>{f"<table><tr><th>Location</th><th>Reason</th></tr>{errors}</table>" if errors else "<p>None.</p>"}
<script>{SCRIPT}</script></body></html>
"""

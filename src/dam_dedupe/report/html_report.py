"""The report as one self-contained HTML page that opens offline.

The summary (figures, charts as inline SVG, the per-source table) is rendered here.
The cluster cards, the personal-data register and the other long lists are rendered
in the browser, a screenful at a time, from the report's facts embedded in the page
gzip-compressed (``DecompressionStream``), so that a report of ten thousand clusters
stays small and opens without freezing the browser. The page loads nothing from the
network. Python escapes every string it writes; the script writes store strings only
as text nodes, never as markup.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import string
from html import escape
from importlib import resources
from typing import Any

import numpy as np

from dam_dedupe.preview import preview_type
from dam_dedupe.report.charts import bar_chart, histogram

ASSETS = resources.files("dam_dedupe.report") / "assets"
HISTOGRAM_CAP = 10


def size_text(n: float) -> str:
    """Bytes as a short human-readable size (binary units)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def money(amount: float, currency: str) -> str:
    """An amount with its currency, to the cent; a non-zero amount under a cent shows as ``< 0.01``."""
    return f"< 0.01 {currency}" if 0 < amount < 0.01 else f"{amount:,.2f} {currency}"


def _packed(value: object) -> str:
    """JSON, gzip-compressed, base64: safe inside a ``<script>`` element whatever the strings hold."""
    return base64.b64encode(gzip.compress(json.dumps(value, ensure_ascii=False).encode("utf-8"), 6)).decode("ascii")


PREVIEW_BUDGET = 40 * 1024 * 1024
"""At most this many bytes of colour previews go into one page (about 10,000 of them); the rest show grey."""

DISPLAY_SIDE = 32
"""Thumbnails are shown 32 pixels square (stored ones may be finer: the matcher keeps 64x64)."""


def display_thumbnail(raw: bytes) -> bytes:
    """A stored square greyscale thumbnail reduced by averaging to :data:`DISPLAY_SIDE`; empty if it is not one."""
    side = math.isqrt(len(raw))
    if not raw or side * side != len(raw) or side % DISPLAY_SIDE:
        return b""
    factor = side // DISPLAY_SIDE
    pixels = np.frombuffer(raw, dtype=np.uint8).reshape(DISPLAY_SIDE, factor, DISPLAY_SIDE, factor)
    return pixels.mean(axis=(1, 3)).round().astype(np.uint8).tobytes()


def pack_thumbnail(raw: bytes) -> bytes:
    """A greyscale thumbnail in 16 grey levels, two pixels a byte (high nibble first): half the size."""
    pixels = np.frombuffer(raw, dtype=np.uint8) >> 4
    if len(pixels) % 2:
        pixels = np.append(pixels, 0)
    return ((pixels[0::2] << 4) | pixels[1::2]).astype(np.uint8).tobytes()


def _page_data(report: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The facts the script renders, and the unique thumbnails (packed by :func:`pack_thumbnail`, in order).

    Each member's colour preview goes in as a data URI while the page's previews stay within
    :data:`PREVIEW_BUDGET`; past it (a very large report) members show the grey thumbnail only.
    """
    thumbs: dict[bytes, int] = {}
    previews: dict[bytes, int] = {}
    spent = 0
    clusters = []
    for c in report["clusters"]:
        members = []
        for m in c["members"]:
            raw = display_thumbnail(m.get("thumbnail") or b"")
            index = thumbs.setdefault(raw, len(thumbs)) if raw else -1
            preview: bytes | None = m.get("preview")
            shown = -1
            if preview and (preview in previews or spent + len(preview) <= PREVIEW_BUDGET):
                if preview not in previews:
                    spent += len(preview)
                shown = previews.setdefault(preview, len(previews))
            members.append({k: v for k, v in m.items() if k not in ("thumbnail", "preview")} | {"t": index, "p": shown})
        clusters.append(c | {"members": members})
    data = {
        "currency": report["currency"],
        "risk_tiers": report["risk_tiers"],
        "generated": report["generated"],
        "sources": [s["name"] for s in report["sources"]],
        "thumb_side": DISPLAY_SIDE,
        "previews": [f"data:{preview_type(p)};base64," + base64.b64encode(p).decode("ascii") for p in previews],
        "clusters": clusters,
        "register": report["personal_data_register"],
        "licensed": report["licensed"],
        "cross_jurisdiction": report["cross_jurisdiction"],
    }
    return data, b"".join(pack_thumbnail(raw) for raw in thumbs)


def _charts(report: dict[str, Any]) -> str:
    s, currency = report["summary"], report["currency"]
    sources = report["sources"]
    histogram_counts: dict[str, int] = {}
    for copies, count in s["copies_histogram"].items():
        label = copies if int(copies) < HISTOGRAM_CAP else f"{HISTOGRAM_CAP}+"
        histogram_counts[label] = histogram_counts.get(label, 0) + count
    pd, lic = s["personal_data"], s["licensed"]
    return "".join(
        [
            bar_chart(
                "Reclaimable storage by source",
                [(x["name"], x["reclaimable_bytes"], size_text(x["reclaimable_bytes"])) for x in sources],
            ),
            bar_chart(
                f"Monthly cost of the duplicate copies by source ({currency})",
                [(x["name"], x["monthly_cost"], money(x["monthly_cost"], currency)) for x in sources],
            ),
            histogram("Images by number of copies", histogram_counts, "copies"),
            bar_chart(
                "Duplicate copies by match kind", [(kind, n, str(n)) for kind, n in s["duplicates_by_match"].items()]
            ),
            bar_chart(
                "Personal data and licensed imagery",
                [
                    ("images showing people", pd["images"], str(pd["images"])),
                    ("clusters showing people", pd["clusters"], str(pd["clusters"])),
                    ("licensed images", lic["images"], str(lic["images"])),
                    ("licensed clusters", lic["clusters"], str(lic["clusters"])),
                    ("licensed, copied across", lic["spread_clusters"], str(lic["spread_clusters"])),
                ],
            ),
        ]
    )


def _figures(report: dict[str, Any]) -> str:
    s, currency = report["summary"], report["currency"]
    mc = s["metadata_comparison"]
    rows = [
        ("Assets listed", s["assets"]),
        ("Images", s["images"]),
        ("Clusters of copies", s["clusters"]),
        ("Duplicate copies", s["duplicate_copies"]),
        ("Reclaimable", size_text(s["reclaimable_bytes"])),
        ("Monthly cost of the duplicates", money(s["monthly_cost"], currency)),
        ("Images showing people (personal data)", s["personal_data"]["images"]),
        ("Licensed images", s["licensed"]["images"]),
        ("Clusters spanning jurisdictions", s["cross_jurisdiction_clusters"]),
        ("Clusters decided by reviewers", s["decided_clusters"]),
        ("Errors", s["errors"]),
        ("Gone since an earlier scan", s["gone"]),
    ]
    figures = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    comparison = (
        f"<p>Comparing file name and size finds <b>{mc['name_and_size_copies']}</b> duplicate copies; "
        f"content matching finds <b>{mc['content_copies']}</b>. Name and size miss "
        f"<b>{mc['missed_by_name_and_size']}</b> of the content copies (renamed, re-encoded or resized) and "
        f"wrongly pair <b>{mc['name_and_size_false_matches']}</b> files that only share a name and size.</p>"
    )
    return f'<table class="figures">{figures}</table><h3>What sorting by name and size would miss</h3>{comparison}'


def _source_table(report: dict[str, Any]) -> str:
    currency = report["currency"]
    head = (
        "Source",
        "Residency",
        "Risk tier",
        "Department",
        "Price / GB-month",
        "Duplicate copies",
        "Reclaimable",
        "Monthly cost",
        "Showing people",
        "Licensed",
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(str(v))}</td>"
            for v in (
                s["name"],
                s["residency"] or "not set",
                s["risk_tier"] or "not set",
                s["department"] or "not set",
                money(s["price_per_gb_month"], currency),
                s["duplicate_copies"],
                size_text(s["reclaimable_bytes"]),
                money(s["monthly_cost"], currency),
                s["personal_data_images"],
                s["licensed_images"],
            )
        )
        + "</tr>"
        for s in report["sources"]
    )
    header = "".join(f"<th>{h}</th>" for h in head)
    return f'<table class="grid" id="source-table"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>'


def _errors(report: dict[str, Any]) -> str:
    if not report["errors"]:
        return "<p>None.</p>"
    rows = "".join(
        f"<tr><td>{escape(e['scope'])}</td><td>{escape(e['path'])}</td><td>{escape(e['reason'])}</td></tr>"
        for e in report["errors"]
    )
    return f'<table class="grid"><tr><th>Scope</th><th>Location</th><th>Reason</th></tr>{rows}</table>'


def render_html(report: dict[str, Any]) -> str:
    """Render the report document (built with thumbnails) as a complete, self-contained HTML page."""
    data, thumbs = _page_data(report)
    page = string.Template((ASSETS / "report.html").read_text(encoding="utf-8"))
    return page.substitute(
        style=(ASSETS / "report.css").read_text(encoding="utf-8"),
        script=(ASSETS / "report.js").read_text(encoding="utf-8"),
        generated=escape(report["generated"]),
        generator=escape(report["generator"]),
        schema=escape(report["schema"]),
        sources=", ".join(escape(s["name"]) for s in report["sources"]) or "none",
        figures=_figures(report),
        charts=_charts(report),
        source_table=_source_table(report),
        errors=_errors(report),
        data=_packed(data),
        thumbs=base64.b64encode(gzip.compress(thumbs, 6)).decode("ascii"),
    )

"""Small inline SVG charts, drawn in Python: no JavaScript library, nothing from the network.

Every label is escaped; a label too long for its row is shortened, with the full text
in a ``<title>`` tooltip.
"""

from __future__ import annotations

from html import escape

WIDTH = 460
ROW = 22
LABEL = 170
PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#4a5568")


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar_chart(title: str, rows: list[tuple[str, float, str]]) -> str:
    """A horizontal bar chart: one row per ``(label, value, value as text)``."""
    if not rows:
        return f'<figure class="chart"><figcaption>{escape(title)}</figcaption><p class="muted">No data.</p></figure>'
    top = max(value for _l, value, _t in rows) or 1
    span = WIDTH - LABEL - 90
    bars = []
    for i, (label, value, text) in enumerate(rows):
        y = i * ROW
        width = max(1.0, span * value / top) if value else 0
        bars.append(
            f'<g transform="translate(0,{y})"><title>{escape(label)}: {escape(text)}</title>'
            f'<text x="{LABEL - 6}" y="15" text-anchor="end">{escape(_short(label))}</text>'
            f'<rect x="{LABEL}" y="4" width="{width:.1f}" height="14" fill="{PALETTE[i % len(PALETTE)]}"></rect>'
            f'<text x="{LABEL + width + 4:.1f}" y="15">{escape(text)}</text></g>'
        )
    height = len(rows) * ROW + 4
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg role="img" aria-label="{escape(title)}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(bars)}</svg></figure>'
    )


def histogram(title: str, counts: dict[str, int], axis: str) -> str:
    """A vertical bar chart of ``counts`` (label to count), labels along the bottom under ``axis``."""
    if not counts:
        return f'<figure class="chart"><figcaption>{escape(title)}</figcaption><p class="muted">No data.</p></figure>'
    top = max(counts.values()) or 1
    bar, gap, plot = 34, 8, 120
    bars = []
    for i, (label, count) in enumerate(counts.items()):
        x = 10 + i * (bar + gap)
        h = max(1.0, plot * count / top)
        bars.append(
            f"<g><title>{escape(label)} {escape(axis)}: {count}</title>"
            f'<rect x="{x}" y="{20 + plot - h:.1f}" width="{bar}" height="{h:.1f}" fill="{PALETTE[0]}"></rect>'
            f'<text x="{x + bar / 2}" y="{14 + plot - h:.1f}" text-anchor="middle">{count}</text>'
            f'<text x="{x + bar / 2}" y="{36 + plot}" text-anchor="middle">{escape(label)}</text></g>'
        )
    width = max(WIDTH, 20 + len(counts) * (bar + gap))
    height = plot + 58
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(bars)}'
        f'<text x="10" y="{height - 4}">{escape(axis)}</text></svg></figure>'
    )

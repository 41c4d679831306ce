"""Reports: one document of facts (:func:`build_report`), written as JSON, CSV or HTML."""

from __future__ import annotations

import json
from pathlib import Path

from dam_dedupe.catalog import Catalog
from dam_dedupe.report.build import SCHEMA, build_report
from dam_dedupe.report.csv_report import TABLES, write_csv
from dam_dedupe.report.html_report import render_html
from dam_dedupe.report.settings import ReportSettings

FORMATS = ("json", "csv", "html")

__all__ = ["FORMATS", "SCHEMA", "TABLES", "ReportSettings", "build_report", "write_report"]


def write_report(
    catalog: Catalog, fmt: str, path: str | Path, settings: ReportSettings | None = None, table: str = "members"
) -> None:
    """Write the catalog's report in ``fmt`` (``json``, ``csv`` or ``html``) to ``path``.

    ``table`` picks the CSV table (one of :data:`~dam_dedupe.report.csv_report.TABLES`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; known: {', '.join(FORMATS)}")
    report = build_report(catalog, settings, with_thumbnails=fmt == "html")
    path = Path(path)
    if fmt == "json":
        path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8-sig", newline="") as out:
            write_csv(report, out, table)
    else:
        path.write_text(render_html(report), encoding="utf-8")

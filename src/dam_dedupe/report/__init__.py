"""Reports: one document of facts (:func:`build_report`), written as JSON, CSV or HTML."""

from __future__ import annotations

import json
from pathlib import Path

from dam_dedupe.catalog import Catalog
from dam_dedupe.report.build import SCHEMA, build_report
from dam_dedupe.report.csv_report import write_csv
from dam_dedupe.report.html_report import render_html

FORMATS = ("json", "csv", "html")

__all__ = ["FORMATS", "SCHEMA", "build_report", "write_report"]


def write_report(catalog: Catalog, fmt: str, path: str | Path) -> None:
    """Write the catalog's report in ``fmt`` (``json``, ``csv`` or ``html``) to ``path``."""
    report = build_report(catalog, with_thumbnails=fmt == "html")
    path = Path(path)
    if fmt == "json":
        path.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8-sig", newline="") as out:
            write_csv(report, out)
    elif fmt == "html":
        path.write_text(render_html(report), encoding="utf-8")
    else:
        raise ValueError(f"unknown report format {fmt!r}; known: {', '.join(FORMATS)}")
